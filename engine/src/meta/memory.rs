//! In-memory metadata: one mutex over plain maps, with the same contract
//! as etcd. For the embedded default and unit tests.

use super::{
    check_deletable, check_seal, sealed, validate_log_name, EpochWatch, LogId, LogInfo, MetaError,
    MetaResult, MetaStore, SealInfo, SegmentId, SegmentInfo, SegmentWatch,
};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
struct State {
    names: HashMap<String, LogId>,
    logs: HashMap<LogId, LogInfo>,
    segments: HashMap<LogId, BTreeMap<SegmentId, SegmentInfo>>,
    next_log_id: LogId,
    watchers: HashMap<LogId, Vec<tokio::sync::mpsc::Sender<()>>>,
    epoch_watchers: HashMap<LogId, Vec<tokio::sync::watch::Sender<u64>>>,
    list_segments_calls: u64,
}

impl State {
    fn segments_changed(&mut self, log: LogId) {
        if let Some(watchers) = self.watchers.get_mut(&log) {
            watchers.retain(|w| !w.is_closed());
            for watcher in watchers.iter() {
                let _ = watcher.try_send(());
            }
        }
    }
}

/// Clones share the same records.
#[derive(Clone, Default)]
pub struct MemoryMeta {
    state: Arc<Mutex<State>>,
}

impl MemoryMeta {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times `list_segments` was called: tests bound what a
    /// reader costs the metadata store.
    pub fn list_segments_calls(&self) -> u64 {
        self.state().list_segments_calls
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("memory meta lock poisoned")
    }
}

fn log_mut(state: &mut State, log: LogId) -> MetaResult<&mut LogInfo> {
    state
        .logs
        .get_mut(&log)
        .ok_or_else(|| MetaError::NotFound(format!("log id {log}")))
}

fn check_epoch(state: &mut State, log: LogId, epoch: u64) -> MetaResult<()> {
    let current = log_mut(state, log)?.epoch;
    if current != epoch {
        return Err(MetaError::Fenced {
            caller: epoch,
            current,
        });
    }
    Ok(())
}

#[async_trait]
impl MetaStore for MemoryMeta {
    async fn create_log(&self, name: &str) -> MetaResult<LogInfo> {
        validate_log_name(name)?;
        let mut state = self.state();
        if state.names.contains_key(name) {
            return Err(MetaError::AlreadyExists(format!("log {name}")));
        }
        state.next_log_id += 1;
        let info = LogInfo {
            id: state.next_log_id,
            name: name.to_string(),
            epoch: 0,
            truncated_below: 0,
        };
        state.names.insert(name.to_string(), info.id);
        state.logs.insert(info.id, info.clone());
        Ok(info)
    }

    async fn get_log(&self, name: &str) -> MetaResult<LogInfo> {
        let state = self.state();
        state
            .names
            .get(name)
            .and_then(|id| state.logs.get(id))
            .cloned()
            .ok_or_else(|| MetaError::NotFound(format!("log {name}")))
    }

    async fn list_logs(&self) -> MetaResult<Vec<LogInfo>> {
        let state = self.state();
        let mut logs: Vec<LogInfo> = state.logs.values().cloned().collect();
        logs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(logs)
    }

    async fn delete_log(&self, name: &str) -> MetaResult<()> {
        let mut state = self.state();
        let id = state
            .names
            .remove(name)
            .ok_or_else(|| MetaError::NotFound(format!("log {name}")))?;
        state.logs.remove(&id);
        state.segments.remove(&id);
        state.segments_changed(id);
        state.watchers.remove(&id);
        state.epoch_watchers.remove(&id);
        Ok(())
    }

    async fn bump_epoch(&self, log: LogId, expected: u64) -> MetaResult<u64> {
        let mut state = self.state();
        let info = log_mut(&mut state, log)?;
        if info.epoch != expected {
            return Err(MetaError::Fenced {
                caller: expected,
                current: info.epoch,
            });
        }
        info.epoch += 1;
        let epoch = info.epoch;
        if let Some(watchers) = state.epoch_watchers.get_mut(&log) {
            watchers.retain(|w| w.send(epoch).is_ok());
        }
        Ok(epoch)
    }

    async fn create_segment(
        &self,
        log: LogId,
        epoch: u64,
        segment: &SegmentInfo,
    ) -> MetaResult<()> {
        let mut state = self.state();
        check_epoch(&mut state, log, epoch)?;
        let segments = state.segments.entry(log).or_default();
        if segments.contains_key(&segment.id) {
            return Err(MetaError::AlreadyExists(format!(
                "segment {} of log {log}",
                segment.id
            )));
        }
        segments.insert(segment.id, segment.clone());
        state.segments_changed(log);
        Ok(())
    }

    async fn list_segments(&self, log: LogId) -> MetaResult<Vec<SegmentInfo>> {
        let mut state = self.state();
        state.list_segments_calls += 1;
        log_mut(&mut state, log)?;
        Ok(state
            .segments
            .get(&log)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn seal_segment(
        &self,
        log: LogId,
        epoch: u64,
        segment: SegmentId,
        seal: SealInfo,
    ) -> MetaResult<SegmentInfo> {
        let mut state = self.state();
        check_epoch(&mut state, log, epoch)?;
        let record = state
            .segments
            .get_mut(&log)
            .and_then(|s| s.get_mut(&segment))
            .ok_or_else(|| MetaError::NotFound(format!("segment {segment} of log {log}")))?;
        check_seal(record, &seal)?;
        *record = sealed(record, &seal);
        let record = record.clone();
        state.segments_changed(log);
        Ok(record)
    }

    async fn truncate(&self, log: LogId, offset: u64) -> MetaResult<()> {
        let mut state = self.state();
        let info = log_mut(&mut state, log)?;
        info.truncated_below = info.truncated_below.max(offset);
        Ok(())
    }

    async fn delete_segment(&self, log: LogId, segment: SegmentId) -> MetaResult<()> {
        let mut state = self.state();
        let truncated_below = log_mut(&mut state, log)?.truncated_below;
        let segments = state.segments.entry(log).or_default();
        let record = segments
            .get(&segment)
            .ok_or_else(|| MetaError::NotFound(format!("segment {segment} of log {log}")))?;
        check_deletable(record, truncated_below)?;
        segments.remove(&segment);
        state.segments_changed(log);
        Ok(())
    }

    async fn watch_segments(&self, log: LogId) -> MetaResult<SegmentWatch> {
        let mut state = self.state();
        log_mut(&mut state, log)?;
        let (tx, watch) = SegmentWatch::channel();
        state.watchers.entry(log).or_default().push(tx);
        Ok(watch)
    }

    async fn watch_epoch(&self, log: LogId) -> MetaResult<EpochWatch> {
        let mut state = self.state();
        let current = log_mut(&mut state, log)?.epoch;
        let (tx, watch) = EpochWatch::channel(current);
        state.epoch_watchers.entry(log).or_default().push(tx);
        Ok(watch)
    }
}

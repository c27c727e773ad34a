//! etcd metadata. etcd-client is tokio-based, so it runs on one dedicated
//! control thread with a current-thread tokio runtime; callers (glommio
//! shards, plain threads, tokio tasks) send it jobs over a bounded channel
//! and await a oneshot reply. It is off the append path by design.
//!
//! Keys, all under the configured prefix `P`:
//!
//! | key                               | value                              |
//! |-----------------------------------|------------------------------------|
//! | `P/next-log-id`                   | next log id to hand out (decimal)  |
//! | `P/names/<name>`                  | the log's id (decimal)             |
//! | `P/logs/<id:020>/info`            | JSON `{id, name}`                  |
//! | `P/logs/<id:020>/epoch`           | current writer epoch (decimal)     |
//! | `P/logs/<id:020>/truncated-below` | truncation point (decimal)         |
//! | `P/logs/<id:020>/segments/<s:020>`| JSON [`SegmentInfo`]               |
//!
//! Every guarded write is one etcd transaction whose compares carry the
//! guard (the epoch value, a key's absence, or a record's mod revision).

use super::{
    check_deletable, check_seal, sealed, validate_log_name, EpochWatch, LogId, LogInfo, MetaError,
    MetaResult, MetaStore, SealInfo, SegmentId, SegmentInfo, SegmentWatch,
};
use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KvClient, Txn, TxnOp, TxnOpResponse,
};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use watch::Follower;

mod watch;

pub const ENV_ETCD_ENDPOINTS: &str = "WOODPECKER_ETCD_ENDPOINTS";

/// Requests queued to the control thread at most.
const JOBS_MAX: usize = 1024;
/// Attempts of an optimistic read-then-transact loop before giving up.
const CAS_ATTEMPTS_MAX: usize = 64;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EtcdConfig {
    /// `host:port` or `http://host:port` of each member.
    pub endpoints: Vec<String>,
    /// Every key lives under this prefix.
    pub prefix: String,
    pub connect_timeout_ms: u64,
    pub request_timeout_ms: u64,
    /// HTTP/2 keep-alive pings: one after this much silence on the
    /// connection (etcd refuses pings more often than every 5 s by
    /// default)...
    pub keep_alive_interval_ms: u64,
    /// ...and a connection whose ping is not answered within this is dead:
    /// requests fail over and watches are re-established, so a partition is
    /// found within interval + timeout.
    pub keep_alive_timeout_ms: u64,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: vec!["127.0.0.1:2379".to_string()],
            prefix: "/woodpecker".to_string(),
            connect_timeout_ms: 5_000,
            request_timeout_ms: 10_000,
            keep_alive_interval_ms: 5_000,
            keep_alive_timeout_ms: 3_000,
        }
    }
}

impl EtcdConfig {
    /// Endpoints from `WOODPECKER_ETCD_ENDPOINTS` (comma-separated).
    pub fn from_env() -> Result<EtcdConfig, String> {
        let value = std::env::var(ENV_ETCD_ENDPOINTS)
            .ok()
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| format!("{ENV_ETCD_ENDPOINTS} is not set"))?;
        let config = EtcdConfig {
            endpoints: value.split(',').map(|s| s.trim().to_string()).collect(),
            ..EtcdConfig::default()
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.endpoints.is_empty() || self.endpoints.iter().any(|e| e.is_empty()) {
            return Err("etcd endpoints must be a non-empty list".to_string());
        }
        if !self.prefix.starts_with('/') || self.prefix.ends_with('/') {
            return Err(format!(
                "etcd prefix {:?} must start with '/' and not end with it",
                self.prefix
            ));
        }
        if [
            self.connect_timeout_ms,
            self.request_timeout_ms,
            self.keep_alive_interval_ms,
            self.keep_alive_timeout_ms,
        ]
        .contains(&0)
        {
            return Err("etcd timeouts and keep-alive intervals must be positive".to_string());
        }
        Ok(())
    }
}

type Job = Box<dyn FnOnce(Client) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// etcd-backed metadata; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct EtcdMeta {
    jobs: tokio::sync::mpsc::Sender<Job>,
    keys: Keys,
    request_timeout: Duration,
}

#[derive(Clone)]
struct Keys {
    prefix: String,
}

impl Keys {
    fn next_log_id(&self) -> String {
        format!("{}/next-log-id", self.prefix)
    }
    fn names(&self) -> String {
        format!("{}/names/", self.prefix)
    }
    fn name(&self, name: &str) -> String {
        format!("{}/names/{name}", self.prefix)
    }
    fn log(&self, id: LogId) -> String {
        format!("{}/logs/{id:020}/", self.prefix)
    }
    fn info(&self, id: LogId) -> String {
        format!("{}info", self.log(id))
    }
    fn epoch(&self, id: LogId) -> String {
        format!("{}epoch", self.log(id))
    }
    fn truncated(&self, id: LogId) -> String {
        format!("{}truncated-below", self.log(id))
    }
    fn segments(&self, id: LogId) -> String {
        format!("{}segments/", self.log(id))
    }
    fn segment(&self, id: LogId, segment: SegmentId) -> String {
        format!("{}segments/{segment:020}", self.log(id))
    }
}

#[derive(Serialize, Deserialize)]
struct InfoRecord {
    id: LogId,
    name: String,
}

fn unavailable(err: etcd_client::Error) -> MetaError {
    MetaError::Unavailable(format!("etcd: {err}"))
}

fn parse_u64(key: &str, value: &[u8]) -> MetaResult<u64> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| MetaError::Corrupt(format!("{key} is not a number")))
}

fn parse_json<T: for<'de> Deserialize<'de>>(key: &str, value: &[u8]) -> MetaResult<T> {
    serde_json::from_slice(value).map_err(|e| MetaError::Corrupt(format!("{key}: {e}")))
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("metadata records serialize")
}

/// The value of the single key a `Get` in a transaction's else-branch read.
fn txn_get_value(responses: &[TxnOpResponse], i: usize) -> Option<(Vec<u8>, i64)> {
    match responses.get(i) {
        Some(TxnOpResponse::Get(get)) => get
            .kvs()
            .first()
            .map(|kv| (kv.value().to_vec(), kv.mod_revision())),
        _ => None,
    }
}

impl EtcdMeta {
    /// Starts the control thread and connects to etcd.
    pub fn connect(config: &EtcdConfig) -> MetaResult<EtcdMeta> {
        config.validate().map_err(MetaError::Invalid)?;
        let (jobs, mut queue) = tokio::sync::mpsc::channel::<Job>(JOBS_MAX);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let endpoints = config.endpoints.clone();
        let connect_timeout = Duration::from_millis(config.connect_timeout_ms);
        let request_timeout = Duration::from_millis(config.request_timeout_ms);
        let keep_alive = (
            Duration::from_millis(config.keep_alive_interval_ms),
            Duration::from_millis(config.keep_alive_timeout_ms),
        );
        std::thread::Builder::new()
            .name("woodpecker-etcd".to_string())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(MetaError::Unavailable(format!("tokio: {e}"))));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let options = ConnectOptions::new()
                        .with_connect_timeout(connect_timeout)
                        .with_timeout(request_timeout)
                        .with_keep_alive(keep_alive.0, keep_alive.1)
                        .with_require_leader(true);
                    let connecting = Client::connect(&endpoints, Some(options));
                    let client = match tokio::time::timeout(connect_timeout, connecting).await {
                        Ok(Ok(client)) => client,
                        Ok(Err(e)) => {
                            let _ = ready_tx.send(Err(unavailable(e)));
                            return;
                        }
                        Err(_) => {
                            let _ = ready_tx.send(Err(MetaError::Unavailable(format!(
                                "etcd at {endpoints:?}: connect timed out"
                            ))));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    // Ends when every `EtcdMeta` clone is dropped.
                    while let Some(job) = queue.recv().await {
                        tokio::spawn(job(client.clone()));
                    }
                });
            })
            .map_err(|e| MetaError::Unavailable(format!("spawning the etcd thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| MetaError::Unavailable("etcd control thread died".to_string()))??;
        let meta = EtcdMeta {
            jobs,
            keys: Keys {
                prefix: config.prefix.clone(),
            },
            request_timeout,
        };
        Ok(meta)
    }

    /// Hands `job` to the control thread.
    async fn submit(&self, job: Job) -> MetaResult<()> {
        self.jobs
            .send(job)
            .await
            .map_err(|_| MetaError::Unavailable("etcd control thread stopped".to_string()))
    }

    /// Runs `work` on the control thread, within the request timeout.
    async fn call<T, F, Fut>(&self, work: F) -> MetaResult<T>
    where
        T: Send + 'static,
        F: FnOnce(KvClient, Keys) -> Fut + Send + 'static,
        Fut: Future<Output = MetaResult<T>> + Send + 'static,
    {
        let (reply_tx, reply_rx) = tokio::sync::oneshot::channel();
        let timeout = self.request_timeout;
        let keys = self.keys.clone();
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                let kv = client.kv_client();
                let result = match tokio::time::timeout(timeout, work(kv, keys)).await {
                    Ok(result) => result,
                    Err(_) => Err(MetaError::Unavailable("etcd request timed out".to_string())),
                };
                let _ = reply_tx.send(result);
            })
        });
        self.submit(job).await?;
        reply_rx
            .await
            .map_err(|_| MetaError::Unavailable("etcd request dropped".to_string()))?
    }
}

async fn get_u64(kv: &mut KvClient, key: &str) -> MetaResult<Option<(u64, i64)>> {
    let resp = kv.get(key, None).await.map_err(unavailable)?;
    match resp.kvs().first() {
        Some(item) => Ok(Some((parse_u64(key, item.value())?, item.mod_revision()))),
        None => Ok(None),
    }
}

/// A segment record and its mod revision (the guard of a later txn).
async fn get_segment(
    kv: &mut KvClient,
    key: &str,
    log: LogId,
    segment: SegmentId,
) -> MetaResult<(SegmentInfo, i64)> {
    let resp = kv.get(key, None).await.map_err(unavailable)?;
    let Some(item) = resp.kvs().first() else {
        return Err(MetaError::NotFound(format!(
            "segment {segment} of log {log}"
        )));
    };
    Ok((parse_json(key, item.value())?, item.mod_revision()))
}

async fn read_log(kv: &mut KvClient, keys: &Keys, id: LogId) -> MetaResult<LogInfo> {
    let mut info: Option<InfoRecord> = None;
    let (mut epoch, mut truncated_below) = (None, None);
    // Only the three scalar keys: segments are read by `list_segments`.
    for key in [keys.info(id), keys.epoch(id), keys.truncated(id)] {
        let resp = kv.get(key.as_str(), None).await.map_err(unavailable)?;
        let Some(item) = resp.kvs().first() else {
            continue;
        };
        if key == keys.info(id) {
            info = Some(parse_json(&key, item.value())?);
        } else if key == keys.epoch(id) {
            epoch = Some(parse_u64(&key, item.value())?);
        } else {
            truncated_below = Some(parse_u64(&key, item.value())?);
        }
    }
    match (info, epoch, truncated_below) {
        (Some(info), Some(epoch), Some(truncated_below)) => Ok(LogInfo {
            id,
            name: info.name,
            epoch,
            truncated_below,
        }),
        (None, None, None) => Err(MetaError::NotFound(format!("log id {id}"))),
        _ => Err(MetaError::Corrupt(format!(
            "log id {id} is missing records"
        ))),
    }
}

async fn lookup_name(kv: &mut KvClient, keys: &Keys, name: &str) -> MetaResult<LogId> {
    match get_u64(kv, &keys.name(name)).await? {
        Some((id, _)) => Ok(id),
        None => Err(MetaError::NotFound(format!("log {name}"))),
    }
}

/// After a failed fenced transaction whose else-branch read the epoch
/// first: `Fenced` if the epoch moved, `None` if it did not.
fn fenced_by(
    responses: &[TxnOpResponse],
    key: &str,
    log: LogId,
    caller: u64,
) -> MetaResult<Option<MetaError>> {
    match txn_get_value(responses, 0) {
        None => Err(MetaError::NotFound(format!("log id {log}"))),
        Some((value, _)) => {
            let current = parse_u64(key, &value)?;
            Ok((current != caller).then_some(MetaError::Fenced { caller, current }))
        }
    }
}

#[async_trait]
impl MetaStore for EtcdMeta {
    async fn create_log(&self, name: &str) -> MetaResult<LogInfo> {
        validate_log_name(name)?;
        let name = name.to_string();
        self.call(move |mut kv, keys| async move {
            let name_key = keys.name(&name);
            let counter = keys.next_log_id();
            for _ in 0..CAS_ATTEMPTS_MAX {
                let (id, guard) = match get_u64(&mut kv, &counter).await? {
                    Some((next, rev)) => (
                        next,
                        Compare::mod_revision(counter.as_str(), CompareOp::Equal, rev),
                    ),
                    None => (1, Compare::version(counter.as_str(), CompareOp::Equal, 0)),
                };
                let info = InfoRecord {
                    id,
                    name: name.clone(),
                };
                let txn = Txn::new()
                    .when([
                        Compare::version(name_key.as_str(), CompareOp::Equal, 0),
                        guard,
                    ])
                    .and_then([
                        TxnOp::put(counter.as_str(), (id + 1).to_string(), None),
                        TxnOp::put(name_key.as_str(), id.to_string(), None),
                        TxnOp::put(keys.info(id), to_json(&info), None),
                        TxnOp::put(keys.epoch(id), "0", None),
                        TxnOp::put(keys.truncated(id), "0", None),
                    ])
                    .or_else([TxnOp::get(name_key.as_str(), None)]);
                let resp = kv.txn(txn).await.map_err(unavailable)?;
                if resp.succeeded() {
                    return Ok(LogInfo {
                        id,
                        name,
                        epoch: 0,
                        truncated_below: 0,
                    });
                }
                if txn_get_value(&resp.op_responses(), 0).is_some() {
                    return Err(MetaError::AlreadyExists(format!("log {name}")));
                }
            }
            Err(MetaError::Unavailable(
                "log id counter too contended".to_string(),
            ))
        })
        .await
    }

    async fn get_log(&self, name: &str) -> MetaResult<LogInfo> {
        let name = name.to_string();
        self.call(move |mut kv, keys| async move {
            let id = lookup_name(&mut kv, &keys, &name).await?;
            read_log(&mut kv, &keys, id).await
        })
        .await
    }

    async fn list_logs(&self) -> MetaResult<Vec<LogInfo>> {
        self.call(move |mut kv, keys| async move {
            let names = keys.names();
            let resp = kv
                .get(names.as_str(), Some(GetOptions::new().with_prefix()))
                .await
                .map_err(unavailable)?;
            let mut logs = Vec::with_capacity(resp.kvs().len());
            for item in resp.kvs() {
                let id = parse_u64(&names, item.value())?;
                logs.push(read_log(&mut kv, &keys, id).await?);
            }
            logs.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(logs)
        })
        .await
    }

    async fn delete_log(&self, name: &str) -> MetaResult<()> {
        let name = name.to_string();
        self.call(move |mut kv, keys| async move {
            let id = lookup_name(&mut kv, &keys, &name).await?;
            let name_key = keys.name(&name);
            let txn = Txn::new()
                .when([Compare::value(
                    name_key.as_str(),
                    CompareOp::Equal,
                    id.to_string(),
                )])
                .and_then([
                    TxnOp::delete(name_key.as_str(), None),
                    TxnOp::delete(
                        keys.log(id),
                        Some(etcd_client::DeleteOptions::new().with_prefix()),
                    ),
                ]);
            let resp = kv.txn(txn).await.map_err(unavailable)?;
            if resp.succeeded() {
                Ok(())
            } else {
                Err(MetaError::NotFound(format!("log {name}")))
            }
        })
        .await
    }

    async fn bump_epoch(&self, log: LogId, expected: u64) -> MetaResult<u64> {
        self.call(move |mut kv, keys| async move {
            let key = keys.epoch(log);
            let txn = Txn::new()
                .when([Compare::value(
                    key.as_str(),
                    CompareOp::Equal,
                    expected.to_string(),
                )])
                .and_then([TxnOp::put(key.as_str(), (expected + 1).to_string(), None)])
                .or_else([TxnOp::get(key.as_str(), None)]);
            let resp = kv.txn(txn).await.map_err(unavailable)?;
            if resp.succeeded() {
                return Ok(expected + 1);
            }
            Err(
                fenced_by(&resp.op_responses(), &key, log, expected)?.unwrap_or_else(|| {
                    MetaError::Conflict(format!("epoch of log {log} changed during the bump"))
                }),
            )
        })
        .await
    }

    async fn create_segment(
        &self,
        log: LogId,
        epoch: u64,
        segment: &SegmentInfo,
    ) -> MetaResult<()> {
        let segment = segment.clone();
        self.call(move |mut kv, keys| async move {
            let epoch_key = keys.epoch(log);
            let key = keys.segment(log, segment.id);
            let txn = Txn::new()
                .when([
                    Compare::value(epoch_key.as_str(), CompareOp::Equal, epoch.to_string()),
                    Compare::version(key.as_str(), CompareOp::Equal, 0),
                ])
                .and_then([TxnOp::put(key.as_str(), to_json(&segment), None)])
                .or_else([TxnOp::get(epoch_key.as_str(), None)]);
            let resp = kv.txn(txn).await.map_err(unavailable)?;
            if resp.succeeded() {
                return Ok(());
            }
            if let Some(fenced) = fenced_by(&resp.op_responses(), &epoch_key, log, epoch)? {
                return Err(fenced);
            }
            Err(MetaError::AlreadyExists(format!(
                "segment {} of log {log}",
                segment.id
            )))
        })
        .await
    }

    async fn list_segments(&self, log: LogId) -> MetaResult<Vec<SegmentInfo>> {
        self.call(move |mut kv, keys| async move {
            let prefix = keys.segments(log);
            let resp = kv
                .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
                .await
                .map_err(unavailable)?;
            if resp.kvs().is_empty() && get_u64(&mut kv, &keys.epoch(log)).await?.is_none() {
                return Err(MetaError::NotFound(format!("log id {log}")));
            }
            let mut segments = resp
                .kvs()
                .iter()
                .map(|item| parse_json::<SegmentInfo>(&prefix, item.value()))
                .collect::<MetaResult<Vec<_>>>()?;
            segments.sort_by_key(|s| s.id);
            Ok(segments)
        })
        .await
    }

    async fn seal_segment(
        &self,
        log: LogId,
        epoch: u64,
        segment: SegmentId,
        seal: SealInfo,
    ) -> MetaResult<SegmentInfo> {
        self.call(move |mut kv, keys| async move {
            let epoch_key = keys.epoch(log);
            let key = keys.segment(log, segment);
            for _ in 0..CAS_ATTEMPTS_MAX {
                let (record, revision) = get_segment(&mut kv, &key, log, segment).await?;
                check_seal(&record, &seal)?;
                let updated = sealed(&record, &seal);
                let txn = Txn::new()
                    .when([
                        Compare::value(epoch_key.as_str(), CompareOp::Equal, epoch.to_string()),
                        Compare::mod_revision(key.as_str(), CompareOp::Equal, revision),
                    ])
                    .and_then([TxnOp::put(key.as_str(), to_json(&updated), None)])
                    .or_else([TxnOp::get(epoch_key.as_str(), None)]);
                let resp = kv.txn(txn).await.map_err(unavailable)?;
                if resp.succeeded() {
                    return Ok(updated);
                }
                if let Some(fenced) = fenced_by(&resp.op_responses(), &epoch_key, log, epoch)? {
                    return Err(fenced);
                }
                // The record changed under us: read it again.
            }
            Err(MetaError::Unavailable(format!(
                "segment {segment} too contended"
            )))
        })
        .await
    }

    async fn truncate(&self, log: LogId, offset: u64) -> MetaResult<()> {
        self.call(move |mut kv, keys| async move {
            let key = keys.truncated(log);
            for _ in 0..CAS_ATTEMPTS_MAX {
                let Some((current, revision)) = get_u64(&mut kv, &key).await? else {
                    return Err(MetaError::NotFound(format!("log id {log}")));
                };
                if current >= offset {
                    return Ok(());
                }
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        key.as_str(),
                        CompareOp::Equal,
                        revision,
                    )])
                    .and_then([TxnOp::put(key.as_str(), offset.to_string(), None)]);
                if kv.txn(txn).await.map_err(unavailable)?.succeeded() {
                    return Ok(());
                }
            }
            Err(MetaError::Unavailable(format!(
                "truncation of log {log} too contended"
            )))
        })
        .await
    }

    async fn delete_segment(&self, log: LogId, segment: SegmentId) -> MetaResult<()> {
        self.call(move |mut kv, keys| async move {
            let key = keys.segment(log, segment);
            let truncated_key = keys.truncated(log);
            let (record, revision) = get_segment(&mut kv, &key, log, segment).await?;
            let Some((truncated_below, _)) = get_u64(&mut kv, &truncated_key).await? else {
                return Err(MetaError::NotFound(format!("log id {log}")));
            };
            check_deletable(&record, truncated_below)?;
            // The point only grows, so it is enough that the record is unchanged.
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.as_str(),
                    CompareOp::Equal,
                    revision,
                )])
                .and_then([TxnOp::delete(key.as_str(), None)]);
            if kv.txn(txn).await.map_err(unavailable)?.succeeded() {
                Ok(())
            } else {
                Err(MetaError::Conflict(format!(
                    "segment {segment} changed during deletion"
                )))
            }
        })
        .await
    }

    async fn watch_segments(&self, log: LogId) -> MetaResult<SegmentWatch> {
        let (tx, watch) = SegmentWatch::channel();
        let key = self.keys.segments(log);
        self.follow(key, Follower::Segments(tx)).await?;
        Ok(watch)
    }

    async fn watch_epoch(&self, log: LogId) -> MetaResult<EpochWatch> {
        // The initial value is read by the follower before it watches.
        let (tx, watch) = EpochWatch::channel(0);
        let key = self.keys.epoch(log);
        self.follow(key, Follower::Epoch(tx)).await?;
        Ok(watch)
    }
}

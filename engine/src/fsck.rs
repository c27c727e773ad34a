//! fsck: reads every segment record and every object of a log, checks each
//! fragment whole (every checksum), offsets dense across fragments and
//! segments, seals against the objects, fence markers, and objects nothing
//! refers to; reports what it finds and what is safe to repair.
//!
//! Objects are listed before records: a segment's record is created before
//! its first object and deleted after its last, so an object whose record
//! is missing from the later listing really has none (a deletion cut
//! short), never a segment created during the check.

use crate::error::Result;
use crate::format::fragment::DecodedFragment;
use crate::format::marker::{decode_fence_marker, FENCE_MARKER_BYTES};
use crate::layout::Layout;
use crate::meta::{LogInfo, MetaStore, SegmentId, SegmentInfo, SegmentState};
use crate::store::{list_all, ObjectMeta, ObjectStore};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Data is unreadable, out of place, or wasting space: fsck fails.
    Problem,
    /// Worth knowing, not wrong (an open segment, a pending deletion).
    Note,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub log: String,
    /// The segment it is about, if one.
    pub segment: Option<SegmentId>,
    pub detail: String,
}

/// A repair fsck knows to be safe.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "repair")]
pub enum Repair {
    /// Objects nothing can ever read: fragments past a seal, or of a
    /// segment whose record is gone. Deleting them frees space only.
    DeleteObjects { log: String, keys: Vec<String> },
    /// An open segment: recover and seal it by opening a writer of the log
    /// (which fences its current writer, if one still runs).
    SealOpenSegment { log: String, segment: SegmentId },
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    pub logs: u64,
    pub segments: u64,
    pub fragments: u64,
    pub fence_markers: u64,
    pub entries: u64,
    pub bytes: u64,
    pub findings: Vec<Finding>,
    pub repairs: Vec<Repair>,
}

impl Report {
    /// Adds another part of the check (another log's) to this report.
    pub fn absorb(&mut self, other: Report) {
        self.logs += other.logs;
        self.segments += other.segments;
        self.fragments += other.fragments;
        self.fence_markers += other.fence_markers;
        self.entries += other.entries;
        self.bytes += other.bytes;
        self.findings.extend(other.findings);
        self.repairs.extend(other.repairs);
    }

    pub fn problems(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Problem)
            .count()
    }
}

/// Checks one log into `report`.
pub async fn check_log<S: ObjectStore + ?Sized>(
    store: &S,
    meta: &dyn MetaStore,
    layout: &Layout,
    log: &LogInfo,
    report: &mut Report,
) -> Result<()> {
    let objects = list_all(store, &layout.log_prefix(log.id)).await?;
    let segments = meta.list_segments(log.id).await?;
    report.logs += 1;
    let mut check = LogCheck {
        store,
        layout,
        log,
        report,
    };
    let by_segment = check.group(objects);
    let mut expected: Option<u64> = None;
    for (i, segment) in segments.iter().enumerate() {
        check.report.segments += 1;
        if let Some(end) = expected {
            if segment.start_offset() != end {
                check.problem(
                    Some(segment.id),
                    format!(
                        "starts at offset {} but the segment before it ends at {end}",
                        segment.start_offset()
                    ),
                );
            }
        }
        if segment.state == SegmentState::Open && i + 1 < segments.len() {
            check.problem(
                Some(segment.id),
                "is open but is not the log's last segment".to_string(),
            );
        }
        let objects = by_segment.get(&segment.id).map_or(&[][..], Vec::as_slice);
        check.segment(segment, objects).await?;
        expected = Some(match segment.state {
            SegmentState::Sealed => segment.end_offset,
            SegmentState::Open => segment.first_offset,
        });
    }
    for (id, objects) in &by_segment {
        if !segments.iter().any(|s| s.id == *id) {
            check.problem(
                Some(*id),
                format!(
                    "{} objects of a segment with no record (a deletion cut short)",
                    objects.len()
                ),
            );
            check.delete(objects.iter().map(|o| o.key.clone()).collect());
        }
    }
    Ok(())
}

/// Objects of logs that have no record (a deletion cut short), by the
/// log directory they are under. Objects first, then records, as above.
pub async fn orphaned_logs<S: ObjectStore + ?Sized>(
    store: &S,
    meta: &dyn MetaStore,
    layout: &Layout,
) -> Result<BTreeMap<String, Vec<String>>> {
    let root = layout.root();
    let objects = list_all(store, &root).await?;
    let logs = meta.list_logs().await?;
    let mut orphans: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for object in objects {
        let rest = &object.key[root.len()..];
        let log_dir = rest.split('/').next().unwrap_or_default();
        let known = log_dir
            .parse::<u64>()
            .is_ok_and(|id| logs.iter().any(|l| l.id == id));
        if !known {
            orphans
                .entry(log_dir.to_string())
                .or_default()
                .push(object.key);
        }
    }
    Ok(orphans)
}

struct LogCheck<'a, S: ?Sized> {
    store: &'a S,
    layout: &'a Layout,
    log: &'a LogInfo,
    report: &'a mut Report,
}

impl<S: ObjectStore + ?Sized> LogCheck<'_, S> {
    fn finding(&mut self, severity: Severity, segment: Option<SegmentId>, detail: String) {
        self.report.findings.push(Finding {
            severity,
            log: self.log.name.clone(),
            segment,
            detail,
        });
    }

    fn problem(&mut self, segment: Option<SegmentId>, detail: String) {
        self.finding(Severity::Problem, segment, detail);
    }

    fn note(&mut self, segment: Option<SegmentId>, detail: String) {
        self.finding(Severity::Note, segment, detail);
    }

    fn delete(&mut self, keys: Vec<String>) {
        self.report.repairs.push(Repair::DeleteObjects {
            log: self.log.name.clone(),
            keys,
        });
    }

    /// The log's objects by segment id; anything else is a problem.
    fn group(&mut self, objects: Vec<ObjectMeta>) -> BTreeMap<SegmentId, Vec<ObjectMeta>> {
        let prefix = self.layout.log_prefix(self.log.id);
        let mut by_segment: BTreeMap<SegmentId, Vec<ObjectMeta>> = BTreeMap::new();
        for object in objects {
            let segment = object.key[prefix.len()..]
                .split_once('/')
                .and_then(|(dir, _)| dir.parse::<SegmentId>().ok())
                .filter(|id| {
                    self.layout
                        .parse_fragment_key(self.log.id, *id, &object.key)
                        .is_some()
                });
            match segment {
                Some(id) => by_segment.entry(id).or_default().push(object),
                None => self.problem(
                    None,
                    format!("{}: not a fragment or fence marker key", object.key),
                ),
            }
        }
        by_segment
    }

    async fn segment(&mut self, segment: &SegmentInfo, objects: &[ObjectMeta]) -> Result<()> {
        let id = Some(segment.id);
        if segment.state == SegmentState::Sealed && segment.end_offset <= self.log.truncated_below {
            self.note(
                id,
                format!(
                    "below the truncation point ({}): awaiting deletion, {} objects left",
                    self.log.truncated_below,
                    objects.len()
                ),
            );
            return Ok(());
        }
        let mut next = segment.start_offset();
        // Fragments 0..valid.len() are valid and in place: (end offset,
        // entries, bytes) of each.
        let mut valid: Vec<(u64, u64, u64)> = Vec::new();
        let mut past_run = Vec::new();
        for object in objects {
            let index = self
                .layout
                .parse_fragment_key(self.log.id, segment.id, &object.key)
                .expect("grouped by key");
            let body = self.store.get(&object.key).await?;
            if body.len() == FENCE_MARKER_BYTES {
                match decode_fence_marker(&body) {
                    Some(epoch) => {
                        self.report.fence_markers += 1;
                        if epoch <= segment.epoch {
                            self.problem(
                                id,
                                format!("{}: fence marker of epoch {epoch}, not above the segment's writer epoch {}", object.key, segment.epoch),
                            );
                        }
                    }
                    None => self.problem(
                        id,
                        format!("{}: neither a fragment nor a fence marker", object.key),
                    ),
                }
                continue;
            }
            if index != valid.len() as u64 {
                past_run.push(object.key.clone());
                continue;
            }
            match DecodedFragment::decode(&body) {
                Err(e) => {
                    self.problem(id, format!("{}: {e}", object.key));
                    past_run.push(object.key.clone());
                }
                Ok(fragment) => {
                    let header = fragment.header;
                    if header.segment_id != segment.id
                        || header.log_id != self.log.id
                        || header.fragment_index != index
                    {
                        self.problem(
                            id,
                            format!(
                                "{}: its header names another place (log {}, segment {}, index {})",
                                object.key, header.log_id, header.segment_id, header.fragment_index
                            ),
                        );
                    } else if header.first_offset != next {
                        self.problem(
                            id,
                            format!(
                                "{}: starts at offset {} where {next} was expected",
                                object.key, header.first_offset
                            ),
                        );
                    }
                    next = header.end_offset();
                    valid.push((next, u64::from(header.entry_count), body.len() as u64));
                }
            }
        }
        let visible = match segment.state {
            SegmentState::Sealed => valid.len().min(segment.fragment_count as usize),
            SegmentState::Open => valid.len(),
        };
        for (_, entries, bytes) in &valid[..visible] {
            self.report.fragments += 1;
            self.report.entries += entries;
            self.report.bytes += bytes;
        }
        let end = visible
            .checked_sub(1)
            .map_or(segment.start_offset(), |last| valid[last].0);
        let run = valid.len() as u64;
        match segment.state {
            SegmentState::Sealed => self.sealed(segment, run, end, past_run),
            SegmentState::Open => {
                self.note(id, format!("open (writer epoch {}): {run} fragments durable, up to offset {end}; a writer holds it, or the next writer's recovery seals it", segment.epoch));
                if !past_run.is_empty() {
                    self.note(id, format!("{} fragments past the durable run: never visible; recovery fences them off", past_run.len()));
                }
                self.report.repairs.push(Repair::SealOpenSegment {
                    log: self.log.name.clone(),
                    segment: segment.id,
                });
            }
        }
        Ok(())
    }

    /// A sealed segment: `run` valid fragments in place, the first
    /// `fragment_count` of them ending at `end`; `extra` objects past them.
    fn sealed(&mut self, segment: &SegmentInfo, run: u64, end: u64, mut extra: Vec<String>) {
        let id = Some(segment.id);
        if run < segment.fragment_count {
            self.problem(
                id,
                format!(
                    "sealed with {} fragments but only {run} are present and valid",
                    segment.fragment_count
                ),
            );
            return;
        }
        if segment.fragment_count > 0 && end != segment.end_offset {
            self.problem(
                id,
                format!(
                    "sealed at offset {} but its fragments end at {end}",
                    segment.end_offset
                ),
            );
        }
        let past_seal: Vec<String> = (segment.fragment_count..run)
            .map(|index| self.layout.fragment_key(self.log.id, segment.id, index))
            .collect();
        extra.extend(past_seal);
        if !extra.is_empty() {
            self.problem(
                id,
                format!(
                    "{} orphaned objects past the seal (a fenced writer's late uploads): never visible",
                    extra.len()
                ),
            );
            self.delete(extra);
        }
    }
}

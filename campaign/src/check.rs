//! The history checker. After a run, with every fault healed, it recovers
//! each log (opens a writer and closes it), reads it whole, and holds the
//! run's history against it:
//!
//! 1. offsets are dense from the truncation point to the end;
//! 2. every entry's bytes are those its origin wrote, and no origin
//!    appears twice;
//! 3. every acknowledged entry at or past the truncation point is there,
//!    at its offset, with its bytes;
//! 4. no append that failed saying it was not written is there;
//! 5. every entry a reader returned is there at the offset it was read at
//!    (what a reader saw never changes), each reader session read offsets
//!    in order without gaps, and a fresh reader reads the log to its end
//!    within a bound (no reader waits forever).

use crate::entries::{payload, Origin};
use crate::settings::{Settings, LOGS};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use woodpecker_shards::{Client, StartAt};

/// What the run's processes printed, parsed.
#[derive(Default)]
pub struct History {
    /// (log, offset, origin) of every acknowledgement.
    pub acks: Vec<(usize, u64, Origin)>,
    /// (log, origin, error kind) of appends that failed as not written.
    pub not_sent: Vec<(usize, Origin, String)>,
    pub unknown: usize,
    /// Per reader process, its lines in order.
    pub readers: Vec<Vec<String>>,
    pub problems: Vec<String>,
}

impl History {
    pub fn add_writer(&mut self, lines: &[String]) {
        for line in lines {
            let fields: Vec<&str> = line.split(' ').collect();
            let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            match (fields[0], num(1), num(2), num(3), num(4)) {
                ("ack", Some(log), Some(offset), Some(writer), Some(seq)) => {
                    self.acks
                        .push((log as usize, offset, Origin { writer, seq }))
                }
                ("notsent", Some(log), Some(writer), Some(seq), _) => self.not_sent.push((
                    log as usize,
                    Origin { writer, seq },
                    fields.get(4).unwrap_or(&"").to_string(),
                )),
                ("unknown", ..) => self.unknown += 1,
                _ => self.problems.push(format!("writer: {line}")),
            }
        }
    }

    pub fn acked_offsets(&self, log: usize) -> Vec<u64> {
        let mut offsets: Vec<u64> = self
            .acks
            .iter()
            .filter(|(l, _, _)| *l == log)
            .map(|(_, o, _)| *o)
            .collect();
        offsets.sort_unstable();
        offsets
    }
}

/// Runs `future` with a deadline; `None` if it did not finish in time.
pub fn within<F: std::future::Future>(seconds: u64, future: F) -> Option<F::Output> {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
        .block_on(async { tokio::time::timeout(Duration::from_secs(seconds), future).await })
        .ok()
}

#[derive(Default, Debug, Clone, Copy)]
pub struct Checked {
    pub acks: usize,
    pub entries: usize,
    pub reads: usize,
}

/// Recovers every log, as a new writer would (opens one and closes it);
/// returns where each log ends (`None` if it could not be recovered).
pub fn recover(client: &Client, settings: &Settings) -> (Vec<Option<u64>>, Vec<String>) {
    let mut violations = Vec::new();
    let ends = (0..LOGS)
        .map(|log| {
            let name = settings.log_name(log);
            let mut fail = |what: String| violations.push(format!("log {log}: {what}"));
            match within(60, client.open_writer(&name)) {
                Some(Ok(writer)) => {
                    let end = writer.durable_offset();
                    match within(30, writer.close()) {
                        Some(Ok(())) => Some(end),
                        other => {
                            fail(format!("closing the recovering writer: {other:?}"));
                            None
                        }
                    }
                }
                Some(Err(err)) => {
                    fail(format!("cannot open a writer after the run: {err}"));
                    None
                }
                None => {
                    fail("opening a writer after the run hung".to_string());
                    None
                }
            }
        })
        .collect();
    (ends, violations)
}

/// The highest offset of `log` a reader's `lines` show it returned.
pub fn reader_reached(lines: &[String], log: usize) -> Option<u64> {
    lines
        .iter()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (fields[0] == "read" && fields.get(1) == Some(&log.to_string().as_str()))
                .then(|| fields.get(2)?.parse().ok())
                .flatten()
        })
        .max()
}

/// Holds the history against the recovered logs, which end at `ends`.
pub fn check(
    client: &Client,
    settings: &Settings,
    history: &History,
    ends: &[Option<u64>],
) -> (Checked, Vec<String>) {
    let mut checked = Checked::default();
    let mut violations = history.problems.clone();
    for (log, recovered_end) in ends.iter().enumerate().take(LOGS) {
        let name = settings.log_name(log);
        let mut fail = |what: String| violations.push(format!("log {log}: {what}"));
        let Some(recovered_end) = *recovered_end else {
            continue;
        };
        let truncated = match within(30, client.get_log(&name)) {
            Some(Ok(info)) => info.truncated_below,
            other => {
                fail(format!("reading the log record: {other:?}"));
                continue;
            }
        };
        let entries = match within(120, client.scan(&name)) {
            Some(Ok(entries)) => entries,
            other => {
                fail(format!("scan: {:?}", other.map(|r| r.map(|e| e.len()))));
                continue;
            }
        };
        // 1 and 2.
        let mut at: HashMap<u64, Origin> = HashMap::new();
        let mut seen: HashSet<Origin> = HashSet::new();
        let mut expected = truncated;
        for entry in entries.iter().filter(|e| e.offset >= truncated) {
            checked.entries += 1;
            if entry.offset != expected {
                fail(format!(
                    "offset {} follows {}",
                    entry.offset,
                    expected.wrapping_sub(1)
                ));
                expected = entry.offset;
            }
            expected += 1;
            let Some(origin) = Origin::of(&entry.properties) else {
                fail(format!("entry {} has no origin", entry.offset));
                continue;
            };
            if entry.payload[..] != payload(log, origin)[..] {
                fail(format!(
                    "entry {} ({origin:?}) has other bytes",
                    entry.offset
                ));
            }
            if !seen.insert(origin) {
                fail(format!(
                    "{origin:?} appears twice (again at {})",
                    entry.offset
                ));
            }
            at.insert(entry.offset, origin);
        }
        let end = expected;
        if end != recovered_end.max(truncated) {
            fail(format!(
                "the log ends at {end}, its recovery said {recovered_end}"
            ));
        }
        // 3.
        for (_, offset, origin) in history.acks.iter().filter(|(l, _, _)| *l == log) {
            if *offset < truncated {
                continue;
            }
            checked.acks += 1;
            match at.get(offset) {
                Some(found) if found == origin => {}
                found => fail(format!(
                    "acknowledged {origin:?} at {offset}, found {found:?} (log ends at {end})"
                )),
            }
        }
        // 4.
        for (_, origin, kind) in history.not_sent.iter().filter(|(l, _, _)| *l == log) {
            if seen.contains(origin) {
                fail(format!(
                    "{origin:?} failed as not written ({kind}), yet it is in the log"
                ));
            }
        }
        // 5.
        for (r, lines) in history.readers.iter().enumerate() {
            checked.reads += check_reads(log, lines, truncated, &at, &mut |what| {
                fail(format!("reader {r}: {what}"))
            });
            let reached = reader_reached(lines, log);
            if end > truncated && reached.is_none_or(|r| r + 1 < end) {
                fail(format!(
                    "reader {r} stopped at {reached:?}, short of the end {end}, and waited"
                ));
            }
        }
        if end > truncated {
            match within(60, read_to(client, &name, end)) {
                Some(Ok(read)) => {
                    for (offset, origin) in read {
                        if at.get(&offset) != Some(&origin) {
                            fail(format!("a fresh reader read {origin:?} at {offset}"));
                        }
                    }
                }
                Some(Err(err)) => fail(format!("a fresh reader failed: {err}")),
                None => fail(format!("a fresh reader did not reach offset {end} in 60 s")),
            }
        }
    }
    (checked, violations)
}

/// Checks one reader's lines about `log`; returns the reads checked.
fn check_reads(
    log: usize,
    lines: &[String],
    truncated: u64,
    at: &HashMap<u64, Origin>,
    fail: &mut dyn FnMut(String),
) -> usize {
    let mut next: Option<u64> = None;
    let mut reads = 0;
    for line in lines {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.get(1).and_then(|f| f.parse::<usize>().ok()) != Some(log) {
            continue;
        }
        match fields[0] {
            "session" => next = fields.get(2).and_then(|f| f.parse().ok()),
            "read" => {
                let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
                let (Some(offset), Some(writer), Some(seq)) = (num(2), num(3), num(4)) else {
                    fail(format!("bad line {line}"));
                    continue;
                };
                if next.is_some_and(|n| n != offset) {
                    fail(format!(
                        "read {offset} where {} was next",
                        next.unwrap_or(0)
                    ));
                }
                next = Some(offset + 1);
                if offset >= truncated {
                    reads += 1;
                    let origin = Origin { writer, seq };
                    if at.get(&offset) != Some(&origin) {
                        fail(format!(
                            "read {origin:?} at {offset}, the log has {:?}",
                            at.get(&offset)
                        ));
                    }
                }
            }
            "rerr" => {
                let kind = fields.get(2).copied().unwrap_or("");
                if kind == "Corrupt" {
                    fail(format!("reader error: {line}"));
                }
            }
            _ => fail(format!("bad line {line}")),
        }
    }
    reads
}

/// Reads `name` from the start up to `end` with a new reader.
async fn read_to(
    client: &Client,
    name: &str,
    end: u64,
) -> woodpecker_engine::Result<Vec<(u64, Origin)>> {
    let mut reader = client.open_reader(name, StartAt::Earliest).await?;
    let mut read = Vec::new();
    loop {
        let entry = reader.next().await?;
        let origin = Origin::of(&entry.properties).unwrap_or(Origin {
            writer: u64::MAX,
            seq: u64::MAX,
        });
        read.push((entry.offset, origin));
        if entry.offset + 1 >= end {
            return Ok(read);
        }
    }
}

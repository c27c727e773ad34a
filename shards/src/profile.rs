//! Where an append's time goes, stage by stage, when
//! `Config::profile_stages` is on: each append carries the instant it was
//! queued, its fragment the instants it was written, closed, started
//! uploading and seen durable, and its acknowledgement is split into the
//! stages below when it is sent. Off by default: it costs two clock reads
//! per append and a lock per acknowledged fragment.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The write path's stages, in the order an append passes them.
pub const STAGES: [&str; 5] = ["ring", "fill", "slot", "upload", "order"];

/// What each stage is (the same order as [`STAGES`]): `ring` from the
/// call until copied into a fragment (waiting for a buffer included),
/// `fill` until the fragment closed (full, or by the flush policy), `slot`
/// until its upload started, `upload` until the driver saw it durable,
/// `order` until its acks were sent (after every earlier fragment's).
pub const STAGE_HELP: [&str; 5] = [
    "in the ingest ring",
    "in the open fragment",
    "closed, waiting for an upload slot",
    "the fragment's upload",
    "durable, waiting for earlier ones",
];

/// One append's instants (a batch's are those of its last entry).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stamp {
    pub queued: Instant,
    pub written: Instant,
    pub entries: u64,
}

/// A fragment's instants, from close to acknowledgement.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FragmentTimes {
    pub closed: Instant,
    pub started: Instant,
    pub durable: Instant,
    pub acked: Instant,
}

/// Histograms of each stage, in microseconds, every append counted.
pub(crate) struct Profiler {
    stages: Mutex<Vec<Histogram<u64>>>,
}

impl Default for Profiler {
    fn default() -> Self {
        let histogram = || Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
        Profiler {
            stages: Mutex::new(STAGES.iter().map(|_| histogram()).collect()),
        }
    }
}

fn micros(from: Instant, to: Instant) -> u64 {
    to.saturating_duration_since(from).as_micros() as u64
}

impl Profiler {
    /// Splits the acknowledged appends of one fragment into their stages.
    pub(crate) fn record(&self, stamps: &[Stamp], times: FragmentTimes) {
        let mut stages = self.stages.lock().expect("profile lock");
        let shared = [
            micros(times.closed, times.started),
            micros(times.started, times.durable),
            micros(times.durable, times.acked),
        ];
        for stamp in stamps {
            let own = [
                micros(stamp.queued, stamp.written),
                micros(stamp.written, times.closed),
            ];
            for (histogram, value) in stages.iter_mut().zip(own.iter().chain(&shared)) {
                histogram.saturating_record_n(*value, stamp.entries);
            }
        }
    }

    pub(crate) fn snapshot(&self) -> StageProfile {
        let stages = self.stages.lock().expect("profile lock");
        StageProfile {
            stages: STAGES
                .iter()
                .zip(STAGE_HELP)
                .zip(stages.iter())
                .map(|((name, help), h)| StageLatency::new(name, help, h))
                .collect(),
        }
    }
}

/// One stage's latency over every profiled append, in milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageLatency {
    pub stage: &'static str,
    pub help: &'static str,
    pub entries: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl StageLatency {
    fn new(stage: &'static str, help: &'static str, h: &Histogram<u64>) -> StageLatency {
        let ms = |micros: u64| Duration::from_micros(micros).as_secs_f64() * 1e3;
        StageLatency {
            stage,
            help,
            entries: h.len(),
            mean_ms: h.mean() / 1e3,
            p50_ms: ms(h.value_at_quantile(0.5)),
            p90_ms: ms(h.value_at_quantile(0.9)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// Every stage's latency, in the order an append passes them. The stages'
/// means add up to the mean time from queued to acknowledged.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StageProfile {
    pub stages: Vec<StageLatency>,
}

impl StageProfile {
    /// Sum of the stages' means: queued to ack sent, on average.
    pub fn mean_total_ms(&self) -> f64 {
        self.stages.iter().map(|s| s.mean_ms).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stage_gets_its_own_span_and_every_entry_counts() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let profiler = Profiler::default();
        let stamps = [
            Stamp {
                queued: at(0),
                written: at(1),
                entries: 1,
            },
            Stamp {
                queued: at(2),
                written: at(5),
                entries: 3,
            },
        ];
        let times = FragmentTimes {
            closed: at(10),
            started: at(12),
            durable: at(20),
            acked: at(21),
        };
        profiler.record(&stamps, times);
        let profile = profiler.snapshot();
        let by_name = |name: &str| {
            profile
                .stages
                .iter()
                .find(|s| s.stage == name)
                .unwrap()
                .clone()
        };
        assert_eq!(by_name("ring").entries, 4);
        assert!((by_name("ring").max_ms - 3.0).abs() < 0.01);
        assert!((by_name("fill").max_ms - 9.0).abs() < 0.01);
        assert!((by_name("slot").p50_ms - 2.0).abs() < 0.01);
        assert!((by_name("upload").p50_ms - 8.0).abs() < 0.01);
        assert!((by_name("order").p50_ms - 1.0).abs() < 0.01);
        // (1 + 3*3)/4 ring + (9 + 3*5)/4 fill + 2 + 8 + 1.
        assert!((profile.mean_total_ms() - 19.5).abs() < 0.05, "{profile:?}");
    }
}

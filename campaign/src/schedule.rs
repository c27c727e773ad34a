//! A run's fault schedule, made from its seed alone: the same seed gives
//! the same faults, in the same order, at the same moments.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// SIGKILL the writer process (segments roll every few fragments, so
    /// often mid-roll); a new one starts after the fault's duration.
    KillWriter,
    /// A second writer process on the same logs for the duration: the two
    /// fence each other, back and forth.
    DuelingWriter,
    EtcdRestart,
    /// SIGSTOP etcd for the duration (past its 2 s request timeouts).
    EtcdPause,
    MinioRestart,
    /// SIGSTOP MinIO for the duration.
    MinioPause,
    /// 20-80 ms on every chunk through the proxy.
    ProxyLatency,
    /// Connections reset mid-request.
    ProxyReset,
    /// Replies swallowed after the request took effect.
    ProxySwallow,
    /// Connections hang, and those open stay dead afterwards.
    ProxyPartition,
    /// Truncate a log at half its acknowledged entries; retention in the
    /// writer then deletes segments under the reader.
    Truncate,
}

pub const FAULTS: [Fault; 11] = [
    Fault::KillWriter,
    Fault::DuelingWriter,
    Fault::EtcdRestart,
    Fault::EtcdPause,
    Fault::MinioRestart,
    Fault::MinioPause,
    Fault::ProxyLatency,
    Fault::ProxyReset,
    Fault::ProxySwallow,
    Fault::ProxyPartition,
    Fault::Truncate,
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// From the start of the run.
    pub at: Duration,
    pub fault: Fault,
    pub lasts: Duration,
    /// Which log, for faults that pick one.
    pub log: usize,
    /// A number for the fault's own choices (a latency, a rate).
    pub knob: u32,
}

/// Faults one after another (never two at once, so each one's effect is
/// its own) from 0.3 s until `window` is over.
pub fn schedule(seed: u64, window: Duration, logs: usize) -> Vec<Event> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut events = Vec::new();
    let mut at = Duration::from_millis(rng.u64(300..800));
    while at < window {
        let fault = FAULTS[rng.usize(..FAULTS.len())];
        let lasts = Duration::from_millis(match fault {
            Fault::Truncate => 0,
            Fault::EtcdPause | Fault::MinioPause => rng.u64(500..3_500),
            _ => rng.u64(200..2_500),
        });
        events.push(Event {
            at,
            fault,
            lasts,
            log: rng.usize(..logs),
            knob: rng.u32(..1000),
        });
        at += lasts + Duration::from_millis(rng.u64(100..700));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_its_schedule() {
        let window = Duration::from_secs(6);
        assert_eq!(schedule(42, window, 3), schedule(42, window, 3));
        assert_ne!(schedule(42, window, 3), schedule(43, window, 3));
        let events = schedule(42, window, 3);
        assert!(!events.is_empty());
        assert!(events.windows(2).all(|w| w[0].at + w[0].lasts < w[1].at));
    }
}

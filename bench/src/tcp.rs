//! The machine's TCP trouble counters (Linux `/proc/net/snmp` and
//! `/proc/net/netstat`), read before and after a benchmark phase.
//!
//! A phase's ack latency tail can come from TCP rather than from the
//! engine or the store: a segment retransmitted after a loss probe or a
//! timeout stalls its connection for milliseconds to hundreds of them, and
//! a receiver that advertises a zero window stops its sender until it
//! reads. On loopback neither should happen, so a phase whose counters
//! moved had stalls the engine did not cause. The counters are the whole
//! machine's (every process, every interface), not this benchmark's alone.

use serde::Serialize;

/// Counts since boot, or (from [`TcpCounters::since`]) over a phase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TcpCounters {
    /// Segments sent again (`Tcp: RetransSegs`).
    pub retransmitted_segments: u64,
    /// Tail loss probes sent (`TcpExt: TCPLossProbes`).
    pub loss_probes: u64,
    /// Times a receiver closed its window to zero
    /// (`TcpExt: TCPToZeroWindowAdv`).
    pub zero_window_adverts: u64,
}

impl TcpCounters {
    /// The counters now; `None` where the files are not there (not
    /// Linux) or do not name them.
    pub fn read() -> Option<TcpCounters> {
        let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
        let netstat = std::fs::read_to_string("/proc/net/netstat").ok()?;
        Self::parse(&snmp, &netstat)
    }

    /// The counters in the two files' texts.
    pub fn parse(snmp: &str, netstat: &str) -> Option<TcpCounters> {
        Some(TcpCounters {
            retransmitted_segments: counter(snmp, "Tcp", "RetransSegs")?,
            loss_probes: counter(netstat, "TcpExt", "TCPLossProbes")?,
            zero_window_adverts: counter(netstat, "TcpExt", "TCPToZeroWindowAdv")?,
        })
    }

    /// What the counters rose by since `earlier`.
    pub fn since(&self, earlier: &TcpCounters) -> TcpCounters {
        TcpCounters {
            retransmitted_segments: self
                .retransmitted_segments
                .saturating_sub(earlier.retransmitted_segments),
            loss_probes: self.loss_probes.saturating_sub(earlier.loss_probes),
            zero_window_adverts: self
                .zero_window_adverts
                .saturating_sub(earlier.zero_window_adverts),
        }
    }

    /// The sum of two phases' counts.
    pub fn plus(&self, other: &TcpCounters) -> TcpCounters {
        TcpCounters {
            retransmitted_segments: self.retransmitted_segments + other.retransmitted_segments,
            loss_probes: self.loss_probes + other.loss_probes,
            zero_window_adverts: self.zero_window_adverts + other.zero_window_adverts,
        }
    }
}

/// The value of `name` in a file of `Group: names...` / `Group: values...`
/// line pairs.
fn counter(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|line| line.starts_with(&prefix));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let names = names[prefix.len()..].split_whitespace();
        let mut values = values[prefix.len()..].split_whitespace();
        for n in names {
            let value = values.next()?;
            if n == name {
                return value.parse().ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "\
Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 123
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 10 9 0 1 4 1000 900 17 0 3 0
Udp: InDatagrams NoPorts
Udp: 5 6
";

    const NETSTAT: &str = "\
TcpExt: SyncookiesSent TCPLossProbes TCPLossProbeRecovery TCPToZeroWindowAdv
TcpExt: 0 42 1 410
IpExt: InNoRoutes InTruncatedPkts
IpExt: 0 0
";

    #[test]
    fn counters_are_found_by_group_and_name() {
        let counters = TcpCounters::parse(SNMP, NETSTAT).expect("all three named");
        assert_eq!(
            counters,
            TcpCounters {
                retransmitted_segments: 17,
                loss_probes: 42,
                zero_window_adverts: 410,
            }
        );
    }

    #[test]
    fn a_missing_counter_is_none_not_zero() {
        let netstat = NETSTAT.replace("TCPToZeroWindowAdv", "SomethingElse");
        assert_eq!(TcpCounters::parse(SNMP, &netstat), None);
        assert_eq!(TcpCounters::parse("", NETSTAT), None);
    }

    #[test]
    fn a_phase_counts_what_rose_during_it() {
        let before = TcpCounters::parse(SNMP, NETSTAT).unwrap();
        let after = TcpCounters {
            retransmitted_segments: 20,
            loss_probes: 42,
            zero_window_adverts: 500,
        };
        let phase = after.since(&before);
        assert_eq!(phase.retransmitted_segments, 3);
        assert_eq!(phase.loss_probes, 0);
        assert_eq!(phase.zero_window_adverts, 90);
        assert_eq!(phase.plus(&phase).zero_window_adverts, 180);
        // A counter that went down (a namespace change) counts nothing.
        assert_eq!(before.since(&after).zero_window_adverts, 0);
    }

    #[test]
    fn this_machine_has_the_counters() {
        if cfg!(target_os = "linux") {
            assert!(TcpCounters::read().is_some());
        }
    }
}

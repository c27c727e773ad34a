//! Fault tooling shared by the integration tests and the fault campaign:
//! etcd and MinIO servers of the caller's own on free 127.0.0.1 ports, that
//! it may kill, restart and pause (SIGSTOP) without disturbing anyone else,
//! and [`proxy::FaultProxy`], a TCP proxy that adds latency, drops
//! connections and swallows replies.

pub mod proxy;
pub mod servers;

pub use proxy::{FaultProxy, ProxyMode};
pub use servers::{PrivateEtcd, PrivateMinio};

/// Lowest port handed out by [`free_port`].
const PORTS_FROM: u16 = 10_000;

/// A free TCP port on 127.0.0.1 (bound, then released), below the
/// kernel's ephemeral range: a server restarted on it (etcd, MinIO, the
/// proxy) cannot find it taken by the local end of some outgoing
/// connection, which a port from the ephemeral range can be, at random.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    let below = ephemeral_low().unwrap_or(32_768);
    let span = u64::from(below.saturating_sub(PORTS_FROM).max(1));
    for _ in 0..10_000 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let draw = DRAWS.fetch_add(1, Ordering::Relaxed);
        let mixed = (nanos
            ^ u64::from(std::process::id()) << 32
            ^ draw.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
        let port = PORTS_FROM + ((mixed >> 29) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {PORTS_FROM}..{below}");
}

/// The low end of the kernel's ephemeral port range.
fn ephemeral_low() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_lie_below_the_ephemeral_range_and_vary() {
        let below = ephemeral_low().unwrap_or(32_768);
        let ports: std::collections::BTreeSet<u16> = (0..50).map(|_| free_port()).collect();
        assert!(
            ports.iter().all(|&p| (PORTS_FROM..below).contains(&p)),
            "{ports:?}"
        );
        assert!(ports.len() > 40, "ports repeat too often: {ports:?}");
    }
}

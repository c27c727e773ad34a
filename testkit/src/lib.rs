//! Fault tooling shared by the integration tests and the fault campaign:
//! etcd and MinIO servers of the caller's own on free 127.0.0.1 ports, that
//! it may kill, restart and pause (SIGSTOP) without disturbing anyone else,
//! and [`proxy::FaultProxy`], a TCP proxy that adds latency, drops
//! connections and swallows replies.

pub mod proxy;
pub mod servers;

pub use proxy::{FaultProxy, ProxyMode};
pub use servers::{PrivateEtcd, PrivateMinio};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

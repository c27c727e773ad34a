//! `woodpecker serve`: the HTTP service over an embedded client, until
//! SIGTERM or SIGINT (a graceful shutdown: requests in flight finish, the
//! writers seal); a second signal exits at once.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use woodpecker_engine::meta::etcd::{EtcdConfig, EtcdMeta};
use woodpecker_engine::meta::memory::MemoryMeta;
use woodpecker_engine::meta::MetaStore;
use woodpecker_engine::store::{StoreConfig, StoreFactory};
use woodpecker_net::server::{Server, ServerConfig};
use woodpecker_shards::{Client, Config};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "WOODPECKER_LISTEN", default_value = "127.0.0.1:9600")]
    listen: SocketAddr,
    /// Object store: local (files under --local-dir), s3 (endpoint from
    /// WOODPECKER_S3_*) or memory (lost on exit: for trials).
    #[arg(long, env = "WOODPECKER_STORE", default_value = "local")]
    store: String,
    /// Directory of the local store.
    #[arg(long, env = "WOODPECKER_LOCAL_DIR", default_value = "woodpecker-data")]
    local_dir: PathBuf,
    /// Metadata: etcd (endpoints from WOODPECKER_ETCD_ENDPOINTS) or memory
    /// (lost on exit: for trials).
    #[arg(long, env = "WOODPECKER_META", default_value = "etcd")]
    meta: String,
    /// Shards (executor threads, one listener each).
    #[arg(long, env = "WOODPECKER_SHARDS", default_value_t = 1)]
    shards: usize,
    /// Bytes of one request body at most.
    #[arg(long, default_value_t = ServerConfig::default().body_bytes_max)]
    body_bytes_max: usize,
    /// Open connections at most.
    #[arg(long, default_value_t = ServerConfig::default().connections_max)]
    connections_max: usize,
    /// Seconds a request head may take to arrive (and an idle connection
    /// stays open).
    #[arg(long, default_value_t = 30)]
    header_timeout_s: u64,
    /// Seconds shutdown waits for requests in flight.
    #[arg(long, default_value_t = 30)]
    shutdown_deadline_s: u64,
}

pub fn run(args: ServeArgs) -> Result<(), String> {
    // Blocked here, before any thread starts, so every thread inherits the
    // mask and the signals wait for `sigwait` below.
    let signals = block_signals();
    let meta: Arc<dyn MetaStore> = match args.meta.as_str() {
        "etcd" => {
            let config = EtcdConfig::from_env().map_err(|e| format!("--meta etcd: {e}"))?;
            Arc::new(EtcdMeta::connect(&config).map_err(|e| format!("etcd: {e}"))?)
        }
        "memory" => Arc::new(MemoryMeta::new()),
        other => return Err(format!("unknown --meta {other:?}: expected etcd or memory")),
    };
    let store = StoreConfig::from_kind(&args.store, args.local_dir.clone())
        .and_then(StoreFactory::new)
        .map_err(|e| format!("store: {e}"))?;
    let config = Config {
        shards: args.shards,
        ..Config::default()
    };
    let client = Client::start(config, store, meta).map_err(|e| e.to_string())?;
    let server_config = ServerConfig {
        listen: args.listen,
        body_bytes_max: args.body_bytes_max,
        connections_max: args.connections_max,
        header_timeout: Duration::from_secs(args.header_timeout_s),
        shutdown_deadline: Duration::from_secs(args.shutdown_deadline_s),
        ..ServerConfig::default()
    };
    let server = Server::start(client, server_config).map_err(|e| e.to_string())?;
    // The one line on stdout: scripts and tests read the address from it.
    println!("listening on {}", server.local_addr());
    let first = wait_signal(&signals);
    tracing::info!(signal = first, "shutting down");
    std::thread::spawn(move || {
        let second = wait_signal(&signals);
        tracing::warn!(signal = second, "second signal: exiting at once");
        std::process::exit(1);
    });
    if server.shutdown() {
        Ok(())
    } else {
        Err("requests were still in flight at the shutdown deadline".to_string())
    }
}

fn block_signals() -> libc::sigset_t {
    // SAFETY: the set is initialised by sigemptyset before use, and
    // pthread_sigmask only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_signal(set: &libc::sigset_t) -> i32 {
    let mut signal = 0;
    // SAFETY: `set` is a valid, initialised signal set.
    unsafe { libc::sigwait(set, &mut signal) };
    signal
}

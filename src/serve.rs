//! `woodpecker serve`: the HTTP service over an embedded client, until
//! SIGTERM or SIGINT (a graceful shutdown: requests in flight finish, the
//! writers seal); a second signal exits at once.

use std::time::Duration;
use woodpecker_net::server::{tls, Auth, Server, ServerConfig};
use woodpecker_tuning::{Flag, Loaded, ServeSettings};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:9600; serve.listen].
    #[arg(long)]
    listen: Option<String>,
    /// Object store: local (files under --local-dir), s3 (store.s3.* or
    /// WOODPECKER_S3_*) or memory (lost on exit: for trials) [default:
    /// local; store.kind].
    #[arg(long)]
    store: Option<String>,
    /// Directory of the local store [default: woodpecker-data; store.local_dir].
    #[arg(long)]
    local_dir: Option<String>,
    /// Metadata: etcd (meta.etcd.* or WOODPECKER_ETCD_ENDPOINTS) or memory
    /// (lost on exit: for trials) [default: etcd; meta.kind].
    #[arg(long)]
    meta: Option<String>,
    /// Shards (executor threads, one listener each) [default: 1; engine.shards].
    #[arg(long)]
    shards: Option<String>,
    /// Bytes of one request body at most [default: 64MiB; serve.body_bytes_max].
    #[arg(long)]
    body_bytes_max: Option<String>,
    /// Open connections at most [default: 4096; serve.connections_max].
    #[arg(long)]
    connections_max: Option<String>,
    /// How long a request head may take to arrive, and an idle connection
    /// stays open [default: 30s; serve.header_timeout_ms].
    #[arg(long)]
    header_timeout: Option<String>,
    /// How long shutdown waits for requests in flight [default: 30s;
    /// serve.shutdown_deadline_ms].
    #[arg(long)]
    shutdown_deadline: Option<String>,
    /// PEM certificate chain: serve HTTPS [serve.tls_cert_path].
    #[arg(long)]
    tls_cert: Option<String>,
    /// PEM private key of --tls-cert [serve.tls_key_path].
    #[arg(long)]
    tls_key: Option<String>,
}

impl ServeArgs {
    /// The flags given, as configuration overrides.
    pub fn flags(&self) -> Vec<Flag> {
        Flag::given(&[
            ("serve.listen", "listen", &self.listen),
            ("store.kind", "store", &self.store),
            ("store.local_dir", "local-dir", &self.local_dir),
            ("meta.kind", "meta", &self.meta),
            ("engine.shards", "shards", &self.shards),
            (
                "serve.body_bytes_max",
                "body-bytes-max",
                &self.body_bytes_max,
            ),
            (
                "serve.connections_max",
                "connections-max",
                &self.connections_max,
            ),
            (
                "serve.header_timeout_ms",
                "header-timeout",
                &self.header_timeout,
            ),
            (
                "serve.shutdown_deadline_ms",
                "shutdown-deadline",
                &self.shutdown_deadline,
            ),
            ("serve.tls_cert_path", "tls-cert", &self.tls_cert),
            ("serve.tls_key_path", "tls-key", &self.tls_key),
        ])
    }
}

pub fn run(loaded: &Loaded) -> Result<(), String> {
    // Blocked here, before any thread starts, so every thread inherits the
    // mask and the signals wait for `sigwait` below.
    let signals = block_signals();
    let mut settings = loaded.settings.clone();
    // A server is the cache in front of object storage for its readers.
    if loaded.is_default("engine.fragment_cache_bytes") {
        settings.engine.fragment_cache_bytes = SERVE_FRAGMENT_CACHE_BYTES;
    }
    let settings = &settings;
    let client = crate::start::client(settings)?;
    let server_config = server_config(&settings.serve)?;
    if server_config.auth.is_open() && !server_config.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %server_config.listen,
            "no bearer token is configured (serve.tokens): anyone who reaches this address can \
             read and write every log"
        );
    }
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

/// The server's configuration from the `serve` settings.
fn server_config(serve: &ServeSettings) -> Result<ServerConfig, String> {
    Ok(ServerConfig {
        listen: serve
            .listen
            .parse()
            .map_err(|e| format!("serve.listen: {e}"))?,
        body_bytes_max: to_usize(serve.body_bytes_max),
        batch_entries_max: to_usize(serve.batch_entries_max),
        read_bytes_max: to_usize(serve.read_bytes_max),
        read_entries_max: to_usize(serve.read_entries_max),
        connections_max: to_usize(serve.connections_max),
        receive_buffer_bytes: to_usize(serve.receive_buffer_bytes),
        header_timeout: Duration::from_millis(serve.header_timeout_ms),
        read_wait_max: Duration::from_millis(serve.read_wait_max_ms),
        shutdown_deadline: Duration::from_millis(serve.shutdown_deadline_ms),
        auth: Auth::new(&serve.tokens, &serve.read_only_tokens),
        tls: if serve.tls_cert_path.is_empty() {
            None
        } else {
            Some(tls::server_config(
                &serve.tls_cert_path,
                &serve.tls_key_path,
            )?)
        },
    })
}

/// `engine.fragment_cache_bytes` of a server unless configured.
const SERVE_FRAGMENT_CACHE_BYTES: usize = 256 << 20;

fn to_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The server library's defaults and the settings' defaults are
    /// written in two places (the library runs without the settings): a
    /// server started with nothing configured gets the library's.
    #[test]
    fn the_serve_settings_defaults_are_the_servers() {
        let from_settings = server_config(&ServeSettings::default()).unwrap();
        let library = ServerConfig::default();
        assert_eq!(from_settings.listen, library.listen);
        assert_eq!(from_settings.body_bytes_max, library.body_bytes_max);
        assert_eq!(from_settings.batch_entries_max, library.batch_entries_max);
        assert_eq!(from_settings.read_bytes_max, library.read_bytes_max);
        assert_eq!(from_settings.read_entries_max, library.read_entries_max);
        assert_eq!(from_settings.connections_max, library.connections_max);
        assert_eq!(
            from_settings.receive_buffer_bytes,
            library.receive_buffer_bytes
        );
        assert_eq!(from_settings.header_timeout, library.header_timeout);
        assert_eq!(from_settings.read_wait_max, library.read_wait_max);
        assert_eq!(from_settings.shutdown_deadline, library.shutdown_deadline);
        assert!(from_settings.auth.is_open() && library.auth.is_open());
        assert!(from_settings.tls.is_none() && library.tls.is_none());
    }
}

//! `woodpecker serve`: the HTTP API (v1) over an embedded [`Client`].
//!
//! Each shard of the client accepts on its own `SO_REUSEPORT` listener
//! and serves its connections with hyper's HTTP/1.1 server on its own
//! executor; a request for a log another shard owns reaches that shard
//! through the client's cross-shard API (the writer's ring, a reader's
//! task), so no request leaves the shards and no tokio runtime is on the
//! data path. The server holds one writer per log it appends to, opened
//! on the first append (which fences any other writer).

mod auth;
mod conn;
mod dedup;
mod follow;
mod handlers;
mod process;
mod read;
pub mod tls;
mod writers;

pub use auth::Auth;

use crate::error::{ApiError, Code};
use event_listener::Event;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use woodpecker_engine::{Error, ErrorKind, Result};
use woodpecker_shards::Client;
use writers::Writers;

/// The server's settings and limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Bytes of one request body at most.
    pub body_bytes_max: usize,
    /// Entries of one append at most.
    pub batch_entries_max: usize,
    /// Payload bytes of one read response at most (the first entry is
    /// always sent whole).
    pub read_bytes_max: usize,
    /// Entries of one read response at most.
    pub read_entries_max: usize,
    /// Open connections at most; more are closed as they arrive.
    pub connections_max: usize,
    /// `SO_RCVBUF` of the listeners, which their connections inherit (0:
    /// the kernel's default, autotuned). A request body larger than the
    /// kernel's small initial window otherwise fills it before the shard
    /// reads, the window closes, and the connection stalls in TCP.
    pub receive_buffer_bytes: usize,
    /// A request's head must arrive within this (also how long an idle
    /// keep-alive connection stays open).
    pub header_timeout: Duration,
    /// Longest a read waits for its first entry when asked to wait.
    pub read_wait_max: Duration,
    /// How long shutdown waits for requests in flight.
    pub shutdown_deadline: Duration,
    /// The bearer tokens accepted (none: the API is open).
    pub auth: Auth,
    /// Serve HTTPS with this configuration ([`tls::server_config`]).
    pub tls: Option<Arc<futures_rustls::rustls::ServerConfig>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9600)),
            body_bytes_max: 64 << 20,
            batch_entries_max: 65_536,
            read_bytes_max: 16 << 20,
            read_entries_max: 65_536,
            connections_max: 4096,
            receive_buffer_bytes: 4 << 20,
            header_timeout: Duration::from_secs(30),
            read_wait_max: Duration::from_secs(30),
            shutdown_deadline: Duration::from_secs(30),
            auth: Auth::default(),
            tls: None,
        }
    }
}

/// What every shard's connections share.
pub(crate) struct Shared {
    pub client: Client,
    pub config: ServerConfig,
    pub writers: Writers,
    pub dedup: dedup::Dedup,
    pub metrics: prometheus::Registry,
    pub requests: prometheus::IntCounterVec,
    pub request_seconds: prometheus::HistogramVec,
    stopping: AtomicBool,
    stop: Event,
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    idle: Event,
}

impl Shared {
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Resolves once shutdown begins.
    pub async fn stopped(&self) {
        loop {
            if self.stopping() {
                return;
            }
            let listener = self.stop.listen();
            if self.stopping() {
                return;
            }
            listener.await;
        }
    }
}

/// Counts a request in flight while it lives.
pub(crate) struct InFlight(Arc<Shared>);

impl InFlight {
    pub fn new(shared: &Arc<Shared>) -> InFlight {
        shared.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify(usize::MAX);
        }
    }
}

/// A running server. Stop it with [`Server::shutdown`].
pub struct Server {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl Server {
    /// Binds `config.listen` on every shard of `client` and starts serving.
    /// Port 0 picks a free port (the same on every shard): see
    /// [`Server::local_addr`].
    pub fn start(client: Client, config: ServerConfig) -> Result<Server> {
        // A bind without SO_REUSEPORT first: it fails if anyone holds the
        // address (another server would otherwise share it silently), and
        // it resolves port 0.
        let probe = std::net::TcpListener::bind(config.listen).map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    " (another process holds it; a server stopped moments ago holds it until \
                     its shutdown ends)"
                }
                _ => "",
            };
            Error::new(
                ErrorKind::Invalid,
                format!("cannot listen on {}: {e}{hint}", config.listen),
            )
        })?;
        let addr = probe
            .local_addr()
            .map_err(|e| Error::new(ErrorKind::Invalid, format!("listener address: {e}")))?;
        drop(probe);
        let metrics = prometheus::Registry::new();
        metrics
            .register(Box::new(client.metrics()))
            .map_err(|e| Error::new(ErrorKind::Invalid, e.to_string()))?;
        // The process's own figures under their standard names
        // (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
        // `process_open_fds`, ...).
        metrics
            .register(Box::new(process::ProcessMetrics::for_self()))
            .expect("a fresh registry takes the process collector");
        let requests = prometheus::IntCounterVec::new(
            prometheus::Opts::new(
                "woodpecker_http_requests_total",
                "HTTP requests answered, by route and status code.",
            ),
            &["route", "status"],
        )
        .expect("valid counter options");
        metrics
            .register(Box::new(requests.clone()))
            .expect("a fresh registry takes the request counter");
        let request_seconds = prometheus::HistogramVec::new(
            prometheus::HistogramOpts::new(
                "woodpecker_http_request_duration_seconds",
                "From a request's head to its answer (an append's answer waits for \
                 durability; a follow stream's for its first bytes), by route.",
            )
            .buckets(prometheus::exponential_buckets(0.000_1, 2.0, 18).expect("valid buckets")),
            &["route"],
        )
        .expect("valid histogram options");
        metrics
            .register(Box::new(request_seconds.clone()))
            .expect("a fresh registry takes the request histogram");
        let shared = Arc::new(Shared {
            writers: Writers::new(client.clone()),
            dedup: dedup::Dedup::default(),
            client: client.clone(),
            config,
            metrics,
            requests,
            request_seconds,
            stopping: AtomicBool::new(false),
            stop: Event::new(),
            connections: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            idle: Event::new(),
        });
        for shard in 0..client.shards() {
            let shared = shared.clone();
            let bound = woodpecker_shards::block_on(
                client.run_on_shard(shard, move || async move { conn::listen(shared, addr) }),
            )?;
            bound.map_err(|e| {
                Error::new(
                    ErrorKind::Invalid,
                    format!("shard {shard} cannot listen on {addr}: {e}"),
                )
            })?;
        }
        tracing::info!(%addr, shards = client.shards(), "serving");
        Ok(Server { shared, addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish (up to the shutdown
    /// deadline: appends are answered once durable), closes the writers
    /// (sealing their segments) and shuts the client down. Returns whether
    /// every request finished in time.
    pub fn shutdown(self) -> bool {
        let shared = &self.shared;
        shared.stopping.store(true, Ordering::Release);
        shared.stop.notify(usize::MAX);
        let deadline = Instant::now() + shared.config.shutdown_deadline;
        let drained = woodpecker_shards::block_on(async {
            loop {
                if shared.in_flight.load(Ordering::Acquire) == 0 {
                    return true;
                }
                let listener = shared.idle.listen();
                if shared.in_flight.load(Ordering::Acquire) == 0 {
                    return true;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                let timer = futures_timer::Delay::new(left);
                futures::future::select(listener, timer).await;
            }
        });
        if !drained {
            tracing::warn!("requests still in flight at the shutdown deadline");
        }
        woodpecker_shards::block_on(shared.writers.close_all());
        shared.client.shutdown();
        drained
    }
}

/// An error answered for a request that is refused while shutting down.
pub(crate) fn shutting_down() -> ApiError {
    ApiError::new(Code::Closed, "the server is shutting down")
}

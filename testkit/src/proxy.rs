//! A TCP proxy on 127.0.0.1 in front of a real server, with faults: added
//! latency, a partition (connections hang and stay dead after it heals, as
//! when a peer loses its TCP state), connections reset in the middle of a
//! request, and replies swallowed after the request reached the server.
//!
//! One thread accepts; each connection has a pump thread per direction.
//! Random choices come from per-connection generators seeded from the
//! proxy's seed and the connection's number.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the proxy treats traffic from now on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward everything.
    Pass,
    /// Forward, waiting this long before each chunk, both ways.
    Latency(Duration),
    /// Forward nothing: every connection open now or made meanwhile hangs,
    /// and stays dead after the mode changes.
    Partition,
    /// Reset a connection, with this chance per mille per chunk the client
    /// sends, before forwarding the chunk: requests cut mid-way.
    ResetRequests(u32),
    /// Forward the request; then, with this chance per mille per
    /// connection, discard the server's reply and reset the connection: the
    /// request took effect, its client never hears.
    SwallowReplies(u32),
}

/// Polling period of blocked reads and of the accept loop.
const TICK: Duration = Duration::from_millis(20);
const CHUNK_BYTES: usize = 64 << 10;

struct Shared {
    mode: Mutex<ProxyMode>,
    stop: AtomicBool,
    /// Bumped by `reset_all`: connections older than it close.
    reset_generation: AtomicU64,
    /// Bumped by every partition: connections older than it are dead.
    partitions: AtomicU64,
    /// Client connections open now.
    open: AtomicU64,
    seed: u64,
}

impl Shared {
    fn mode(&self) -> ProxyMode {
        *self.mode.lock().expect("proxy mode lock")
    }
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `target`.
    pub fn start(target: SocketAddr, seed: u64) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(ProxyMode::Pass),
            stop: AtomicBool::new(false),
            reset_generation: AtomicU64::new(0),
            partitions: AtomicU64::new(0),
            open: AtomicU64::new(0),
            seed,
        });
        let accept_shared = shared.clone();
        let accept = std::thread::Builder::new()
            .name("fault-proxy".to_string())
            .spawn(move || accept_loop(listener, target, accept_shared))
            .expect("proxy thread");
        FaultProxy {
            port,
            shared,
            accept: Some(accept),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn set(&self, mode: ProxyMode) {
        let mut current = self.shared.mode.lock().expect("proxy mode lock");
        if mode == ProxyMode::Partition && *current != ProxyMode::Partition {
            self.shared.partitions.fetch_add(1, Ordering::SeqCst);
        }
        *current = mode;
    }

    pub fn mode(&self) -> ProxyMode {
        self.shared.mode()
    }

    /// Client connections open now (each closes when its client or the
    /// server closes it, or a fault resets it).
    pub fn open_connections(&self) -> u64 {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Resets every connection open now (new ones are unaffected).
    pub fn reset_all(&self) {
        self.shared.reset_generation.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    let mut number = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                number += 1;
                let shared = shared.clone();
                let _ = std::thread::Builder::new()
                    .name("fault-proxy-conn".to_string())
                    .spawn(move || connection(client, target, shared, number));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(TICK),
            Err(_) => std::thread::sleep(TICK),
        }
    }
}

/// What the two pumps of one connection share.
struct Link {
    client: TcpStream,
    server: TcpStream,
    /// Set by a partition: nothing more is forwarded, ever.
    dead: AtomicBool,
    /// The partitions there had been when the connection was made.
    partitions: u64,
    /// Set when either side closed or a fault reset the connection.
    closed: AtomicBool,
    generation: u64,
    rng: Mutex<fastrand::Rng>,
}

impl Link {
    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    fn chance(&self, per_mille: u32) -> bool {
        self.rng.lock().expect("rng lock").u32(..1000) < per_mille
    }
}

fn connection(client: TcpStream, target: SocketAddr, shared: Arc<Shared>, number: u64) {
    shared.open.fetch_add(1, Ordering::SeqCst);
    forward(client, target, &shared, number);
    shared.open.fetch_sub(1, Ordering::SeqCst);
}

fn forward(client: TcpStream, target: SocketAddr, shared: &Arc<Shared>, number: u64) {
    let generation = shared.reset_generation.load(Ordering::SeqCst);
    let partitions = shared.partitions.load(Ordering::SeqCst);
    let dead = shared.mode() == ProxyMode::Partition;
    let server = match TcpStream::connect_timeout(&target, Duration::from_secs(5)) {
        Ok(server) => server,
        Err(_) if dead => {
            // A partition hides even a refused connect: hold the client.
            while shared.mode() == ProxyMode::Partition && !shared.stop.load(Ordering::SeqCst) {
                std::thread::sleep(TICK);
            }
            return;
        }
        Err(_) => return,
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    for stream in [&client, &server] {
        let _ = stream.set_read_timeout(Some(TICK));
    }
    let link = Arc::new(Link {
        client,
        server,
        dead: AtomicBool::new(dead),
        partitions,
        closed: AtomicBool::new(false),
        generation,
        rng: Mutex::new(fastrand::Rng::with_seed(
            shared.seed ^ number.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        )),
    });
    let upstream = {
        let (link, shared) = (link.clone(), shared.clone());
        std::thread::spawn(move || pump(&link, &shared, true))
    };
    pump(&link, shared, false);
    let _ = upstream.join();
}

/// Moves bytes one way (`to_server`: client to server) until a side
/// closes, a fault resets the link, or the proxy stops.
fn pump(link: &Link, shared: &Shared, to_server: bool) {
    let (mut from, mut to) = if to_server {
        (&link.client, &link.server)
    } else {
        (&link.server, &link.client)
    };
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut swallow_decided = false;
    loop {
        if shared.stop.load(Ordering::SeqCst)
            || link.closed.load(Ordering::SeqCst)
            || shared.reset_generation.load(Ordering::SeqCst) != link.generation
        {
            link.close();
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => {
                link.close();
                return;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => {
                link.close();
                return;
            }
        };
        let mode = shared.mode();
        if mode == ProxyMode::Partition
            || shared.partitions.load(Ordering::SeqCst) != link.partitions
        {
            link.dead.store(true, Ordering::SeqCst);
        }
        if link.dead.load(Ordering::SeqCst) {
            continue;
        }
        match mode {
            ProxyMode::Latency(delay) => std::thread::sleep(delay),
            ProxyMode::ResetRequests(per_mille) if to_server && link.chance(per_mille) => {
                link.close();
                return;
            }
            ProxyMode::SwallowReplies(per_mille) if !to_server && !swallow_decided => {
                swallow_decided = true;
                if link.chance(per_mille) {
                    link.close();
                    return;
                }
            }
            _ => {}
        }
        if to.write_all(&buf[..n]).is_err() {
            link.close();
            return;
        }
    }
}

//! Accepting and serving connections on one shard.

use super::{handlers, Shared};
use futures::future::{select, Either};
use glommio::net::TcpListener;
use glommio::net::TcpStream;
use hyper::rt::{Sleep, Timer};
use send_wrapper::SendWrapper;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use woodpecker_engine::hyper_io::{HyperIo, Stream};

/// Binds the address on this shard (with `SO_REUSEPORT`, so every shard
/// has its own listener and the kernel spreads connections over them) and
/// starts accepting.
pub(super) fn listen(shared: Arc<Shared>, addr: SocketAddr) -> std::io::Result<()> {
    let socket = listening_socket(addr, shared.config.receive_buffer_bytes)?;
    // SAFETY: the descriptor is a bound, listening TCP socket whose
    // ownership passes to the listener.
    let listener = unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) };
    glommio::spawn_local(accept_loop(shared, listener)).detach();
    Ok(())
}

/// A listening socket with `SO_REUSEPORT` and also `SO_REUSEADDR`, which
/// the connections it accepts inherit: the `TIME_WAIT` sockets they leave
/// when the server closes them then do not keep the next server process
/// off the address for a minute. They inherit its receive buffer too
/// (`receive_buffer_bytes`, unless 0), set before `listen` so the window
/// scale of each handshake allows all of it.
fn listening_socket(addr: SocketAddr, receive_buffer_bytes: usize) -> std::io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if receive_buffer_bytes > 0 {
        socket.set_recv_buffer_size(receive_buffer_bytes)?;
        // Linux doubles the value asked for (half is its bookkeeping) and
        // caps it at net.core.rmem_max first.
        let granted = socket.recv_buffer_size()? / 2;
        // Every shard's listener meets the same cap: say it once.
        static WARNED: AtomicBool = AtomicBool::new(false);
        if granted < receive_buffer_bytes && !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                asked = receive_buffer_bytes,
                granted,
                "serve.receive_buffer_bytes is capped by the kernel (net.core.rmem_max); \
                 raise that, or set 0 to leave the buffers to the kernel's autotuning"
            );
        }
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket)
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        let accepted = match select(Box::pin(listener.accept()), Box::pin(shared.stopped())).await {
            Either::Left((accepted, _)) => accepted,
            Either::Right(_) => return,
        };
        let stream = match accepted {
            Ok(stream) => stream,
            Err(err) => {
                // Out of descriptors, or the peer gave up: keep accepting,
                // after a pause so a persistent error does not spin.
                tracing::warn!(error = %err, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let open = shared.connections.fetch_add(1, Ordering::AcqRel) + 1;
        if open > shared.config.connections_max {
            shared.connections.fetch_sub(1, Ordering::AcqRel);
            tracing::warn!(open, "connection refused: at the connection limit");
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        glommio::spawn_local(handshake_and_serve(shared.clone(), stream)).detach();
    }
}

/// Serves a connection, over TLS when the server has a certificate. The
/// handshake must end within the header timeout.
async fn handshake_and_serve(shared: Arc<Shared>, tcp: TcpStream) {
    let stream = match shared.config.tls.clone() {
        None => Some(Stream::Plain(tcp)),
        Some(config) => {
            let accept = futures_rustls::TlsAcceptor::from(config).accept(tcp);
            let limit = glommio::timer::Timer::new(shared.config.header_timeout);
            match select(accept, limit).await {
                Either::Left((Ok(tls), _)) => Some(Stream::Tls(Box::new(
                    futures_rustls::TlsStream::Server(tls),
                ))),
                Either::Left((Err(err), _)) => {
                    tracing::debug!(error = %err, "TLS handshake failed");
                    None
                }
                Either::Right(_) => {
                    tracing::debug!("TLS handshake timed out");
                    None
                }
            }
        }
    };
    if let Some(stream) = stream {
        serve(&shared, stream).await;
    }
    shared.connections.fetch_sub(1, Ordering::AcqRel);
}

/// Serves one connection until the peer closes it, it idles past the
/// header timeout, or shutdown (which lets the request in progress end).
async fn serve(shared: &Arc<Shared>, stream: Stream) {
    let service_shared = shared.clone();
    let service = hyper::service::service_fn(move |request| {
        let shared = service_shared.clone();
        async move { Ok::<_, std::convert::Infallible>(handlers::handle(shared, request).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(ShardTimer)
        .header_read_timeout(shared.config.header_timeout)
        .max_buf_size(1 << 20);
    let mut connection =
        Box::pin(builder.serve_connection(HyperIo::acking_at_once(stream), service));
    let result = match select(connection.as_mut(), Box::pin(shared.stopped())).await {
        Either::Left((result, _)) => result,
        Either::Right((_, _)) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "connection ended with an error");
    }
}

/// hyper's timer (header timeouts) on the shard's own timers. hyper's
/// `Sleep` must be `Send` and glommio's timers are not, so each is in a
/// `SendWrapper`: a connection never leaves the shard that accepted it,
/// so its sleeps are polled and dropped there (elsewhere the wrapper
/// would panic). A timer thread (`futures-timer`) would be woken for
/// every request and preempt the shard it woke on.
#[derive(Clone, Copy)]
struct ShardTimer;

struct ShardSleep(SendWrapper<glommio::timer::Timer>);

impl std::future::Future for ShardSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        Pin::new(&mut *self.get_mut().0).poll(cx).map(drop)
    }
}

impl Sleep for ShardSleep {}

impl Timer for ShardTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        Box::pin(ShardSleep(SendWrapper::new(glommio::timer::Timer::new(
            duration,
        ))))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        self.sleep(deadline.saturating_duration_since(Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_connections_inherit_the_receive_buffer() {
        /// The receive buffer (what the kernel grants, without its
        /// bookkeeping half) of a connection accepted on `listener`.
        fn accepted_buffer(listener: &Socket) -> usize {
            let addr = listener.local_addr().unwrap().as_socket().unwrap();
            let _client = std::net::TcpStream::connect(addr).unwrap();
            let (accepted, _) = listener.accept().unwrap();
            accepted.recv_buffer_size().unwrap() / 2
        }
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        let asked = 1 << 20;
        // Capped by net.core.rmem_max where that is lower.
        let rmem_max: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(usize::MAX);
        let granted = accepted_buffer(&listening_socket(any_port, asked).unwrap());
        assert!(
            granted >= asked.min(rmem_max),
            "accepted with {granted} bytes, asked for {asked}"
        );
        // Unset, the kernel's default (autotuned) stays: below what was asked.
        assert!(accepted_buffer(&listening_socket(any_port, 0).unwrap()) < asked);
    }
}

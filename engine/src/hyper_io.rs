//! hyper over glommio sockets: [`HyperIo`] adapts a `futures-io` stream
//! (a glommio `TcpStream`, or TLS over one) to hyper's `rt::Read` and
//! `rt::Write`, for the S3 client's connections and the service's.

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Most bytes one socket read asks for.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// Bytes a plain-socket read offers glommio when it must wait for data.
const WAIT_READ_BYTES: usize = 4 << 10;

/// A byte stream hyper can drive.
pub trait Socket: AsyncRead + AsyncWrite + Unpin {
    /// The socket's descriptor when the stream's bytes are the socket's
    /// bytes (no TLS in between): reads then go straight from the kernel
    /// into hyper's buffer.
    fn plain_fd(&self) -> Option<RawFd>;
}

impl Socket for TcpStream {
    fn plain_fd(&self) -> Option<RawFd> {
        Some(std::os::fd::AsRawFd::as_raw_fd(self))
    }
}

/// A TCP stream, plain or TLS (either end: the S3 client's connections
/// and the service's).
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<futures_rustls::TlsStream<TcpStream>>),
}

impl Socket for Stream {
    fn plain_fd(&self) -> Option<RawFd> {
        match self {
            Stream::Plain(tcp) => Some(std::os::fd::AsRawFd::as_raw_fd(tcp)),
            Stream::Tls(_) => None,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// Adapts a [`Socket`] to hyper's I/O traits.
pub struct HyperIo<S> {
    stream: S,
    quick_acks: bool,
}

impl<S: Socket> HyperIo<S> {
    pub fn new(stream: S) -> HyperIo<S> {
        HyperIo {
            stream,
            quick_acks: false,
        }
    }

    /// Acknowledges what each read takes at once (`TCP_QUICKACK`, set
    /// again after every read of a plain socket: the kernel drops it when
    /// it judges the connection interactive). The service's connections
    /// need it: a request's last segment otherwise waits for the answer to
    /// carry its ACK, and the answer waits until the batch is durable, so
    /// the client's loss probes fire and retransmit spuriously, stalling
    /// the connection.
    pub fn acking_at_once(stream: S) -> HyperIo<S> {
        HyperIo {
            stream,
            quick_acks: true,
        }
    }
}

impl<S: Socket> hyper::rt::Read for HyperIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let quick_acks = this.quick_acks;
        let stream = &mut this.stream;
        let plain = stream.plain_fd();
        // A plain socket reads straight into hyper's uninitialized buffer
        // with a non-blocking recv: zeroing the buffer first (what a `&mut
        // [u8]` read needs) cost as much CPU as the copy from the kernel.
        if let Some(fd) = plain {
            let unfilled: &mut [MaybeUninit<u8>] = unsafe { buf.as_mut() };
            let cap = unfilled.len().min(READ_CHUNK_BYTES);
            // SAFETY: the kernel writes at most `cap` bytes into the
            // buffer, which is valid for writes of that many bytes.
            let received =
                unsafe { libc::recv(fd, unfilled.as_mut_ptr().cast(), cap, libc::MSG_DONTWAIT) };
            if received > 0 && quick_acks {
                quick_ack(fd);
            }
            if received >= 0 {
                // SAFETY: the kernel initialized `received` bytes.
                unsafe { buf.advance(received as usize) };
                return Poll::Ready(Ok(()));
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::WouldBlock {
                return Poll::Ready(Err(err));
            }
            // Nothing yet: glommio registers for readiness (below, with a
            // small zeroed buffer in case bytes arrived in between).
        }
        // SAFETY: the part read into is zeroed before being viewed as `[u8]`,
        // and `advance` is called with the count the stream wrote into it.
        // Reads are capped so the zeroing stays proportional to the bytes read.
        let filled = unsafe {
            let unfilled: &mut [MaybeUninit<u8>] = buf.as_mut();
            let cap = match plain {
                Some(_) => unfilled.len().min(WAIT_READ_BYTES),
                None => unfilled.len().min(READ_CHUNK_BYTES),
            };
            let unfilled = &mut unfilled[..cap];
            for byte in unfilled.iter_mut() {
                byte.write(0);
            }
            let bytes = &mut *(unfilled as *mut [MaybeUninit<u8>] as *mut [u8]);
            Pin::new(&mut *stream).poll_read(cx, bytes)
        };
        match filled {
            Poll::Ready(Ok(n)) => {
                // SAFETY: `n` bytes were initialized by the read above.
                unsafe { buf.advance(n) };
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: Socket> hyper::rt::Write for HyperIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    /// Vectored writes make hyper queue body chunks instead of copying
    /// them into its own buffer: an upload's bytes go from the fragment
    /// buffer to the socket with no copy in between.
    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_close(cx)
    }
}

/// Puts the socket in quick-ACK mode (best effort: a failure only costs
/// latency).
fn quick_ack(fd: RawFd) {
    let on: libc::c_int = 1;
    // SAFETY: `on` outlives the call and the length is its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_QUICKACK,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};

    fn in_quick_ack_mode(fd: RawFd) -> bool {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` outlive the call and describe a c_int.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0);
        value != 0
    }

    /// A read through the adapter leaves the socket in quick-ACK mode only
    /// when asked to, even after request/answer turns made the kernel
    /// delay its ACKs.
    fn read_after_turns(quick_acks: bool) -> bool {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        let mut byte = [0u8; 1];
        for _ in 0..4 {
            client.write_all(b"q").unwrap();
            server.read_exact(&mut byte).unwrap();
            server.write_all(b"a").unwrap();
            client.read_exact(&mut byte).unwrap();
        }
        let fd = server.as_raw_fd();
        assert!(
            !in_quick_ack_mode(fd),
            "the turns should make it interactive"
        );
        client.write_all(b"next request").unwrap();
        let raw = server.into_raw_fd();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                // SAFETY: the descriptor is a connected TCP socket whose
                // ownership passes to the stream.
                let stream = unsafe { TcpStream::from_raw_fd(raw) };
                let mut io = if quick_acks {
                    HyperIo::acking_at_once(stream)
                } else {
                    HyperIo::new(stream)
                };
                let mut storage = [MaybeUninit::<u8>::uninit(); 64];
                let mut buf = hyper::rt::ReadBuf::uninit(&mut storage);
                futures_lite::future::poll_fn(|cx| {
                    hyper::rt::Read::poll_read(Pin::new(&mut io), cx, buf.unfilled())
                })
                .await
                .unwrap();
                assert_eq!(buf.filled(), b"next request");
                in_quick_ack_mode(raw)
            })
            .unwrap()
            .join()
            .unwrap()
    }

    #[test]
    fn reads_acknowledge_at_once_when_asked() {
        assert!(read_after_turns(true));
        assert!(!read_after_turns(false));
    }
}

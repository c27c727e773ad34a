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
pub struct HyperIo<S>(pub S);

impl<S: Socket> hyper::rt::Read for HyperIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = &mut self.get_mut().0;
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
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
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
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_close(cx)
    }
}

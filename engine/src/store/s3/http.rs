//! HTTP/1.1 for the S3 client: hyper's client connection driven over
//! glommio sockets (plain or rustls), with a small keep-alive pool.
//!
//! hyper is runtime-agnostic but speaks its own I/O traits;
//! [`crate::hyper_io::HyperIo`] adapts the connection's stream to them.
//! Each connection's driver task runs on the current glommio executor, so
//! requests never leave the shard's core.

use super::body::BodyPool;
use crate::hyper_io::{HyperIo, Stream};
use bytes::Bytes;
use futures_rustls::rustls;
use glommio::net::TcpStream;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Where connections go and how.
pub struct Endpoint {
    /// As in the URL (brackets around an IPv6 address): for the Host header.
    pub host: String,
    /// The address when `host` is an IP literal; names are resolved per
    /// new connection, off the shard.
    pub ip: Option<IpAddr>,
    pub port: u16,
    /// `Some` for HTTPS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub connect_timeout: Duration,
}

impl Endpoint {
    /// The endpoint's addresses. A name is looked up on glommio's blocking
    /// thread (`getaddrinfo` may take seconds; on the shard it would stall
    /// every log there).
    async fn addresses(&self) -> Result<Vec<SocketAddr>, HttpError> {
        if let Some(ip) = self.ip {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let (host, port) = (self.host.clone(), self.port);
        let looked_up = glommio::executor()
            .spawn_blocking(move || {
                (host.as_str(), port)
                    .to_socket_addrs()
                    .map(Iterator::collect::<Vec<_>>)
            })
            .await;
        match looked_up {
            Ok(addresses) if !addresses.is_empty() => Ok(addresses),
            Ok(_) => Err(HttpError::Transport(format!(
                "resolving {}: no addresses",
                self.host
            ))),
            Err(e) => Err(HttpError::Transport(format!(
                "resolving {}: {e}",
                self.host
            ))),
        }
    }

    /// The server name TLS checks the certificate against.
    fn server_name(&self) -> Result<rustls::pki_types::ServerName<'static>, HttpError> {
        match self.ip {
            Some(ip) => Ok(rustls::pki_types::ServerName::IpAddress(ip.into())),
            None => rustls::pki_types::ServerName::try_from(self.host.clone())
                .map_err(|e| HttpError::Transport(format!("server name: {e}"))),
        }
    }
}

/// A failed exchange: `Transport` errors are retriable and close the
/// connection.
#[derive(Debug)]
pub enum HttpError {
    Transport(String),
    Timeout,
}

pub struct Response {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Keep-alive HTTP/1.1 connections to one endpoint, at most
/// `connections_max` open at once; requests beyond that wait. A failed
/// request empties the idle list, so its retry does not meet another
/// connection silenced by the same fault.
pub struct Pool {
    endpoint: Endpoint,
    idle: RefCell<Vec<SendRequest<Full<Bytes>>>>,
    permits: glommio::sync::Semaphore,
    bodies: Arc<BodyPool>,
}

/// Idle response-body buffers kept per connection pool (one per shard).
const BODY_POOL_IDLE_BYTES_MAX: usize = 128 << 20;
/// Most bytes reserved up front for a body (a bad Content-Length must not
/// allocate gigabytes; longer bodies still grow as they arrive).
const BODY_RESERVE_BYTES_MAX: usize = 256 << 20;

impl Pool {
    pub fn new(endpoint: Endpoint, connections_max: usize) -> Pool {
        Pool {
            endpoint,
            idle: RefCell::new(Vec::new()),
            permits: glommio::sync::Semaphore::new(connections_max.max(1) as u64),
            bodies: BodyPool::new(BODY_POOL_IDLE_BYTES_MAX),
        }
    }

    pub fn authority(&self) -> String {
        let default_port = if self.endpoint.tls.is_some() { 443 } else { 80 };
        if self.endpoint.port == default_port {
            self.endpoint.host.clone()
        } else {
            format!("{}:{}", self.endpoint.host, self.endpoint.port)
        }
    }

    /// A TCP connection to the first of the endpoint's addresses that
    /// accepts one.
    async fn connect_tcp(&self) -> Result<TcpStream, HttpError> {
        let mut last_error = None;
        for address in self.endpoint.addresses().await? {
            match TcpStream::connect_timeout(address, self.endpoint.connect_timeout).await {
                Ok(tcp) => return Ok(tcp),
                Err(e) => last_error = Some(format!("{address}: {e}")),
            }
        }
        Err(HttpError::Transport(format!(
            "connect {}: {}",
            self.authority(),
            last_error.unwrap_or_default()
        )))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, HttpError> {
        let tcp = self.connect_tcp().await?;
        let _ = tcp.set_nodelay(true);
        let stream = match &self.endpoint.tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let name = self.endpoint.server_name()?;
                let tls = futures_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| HttpError::Transport(format!("TLS handshake: {e}")))?;
                Stream::Tls(Box::new(futures_rustls::TlsStream::Client(tls)))
            }
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(HyperIo::new(stream))
            .await
            .map_err(|e| HttpError::Transport(format!("HTTP handshake: {e}")))?;
        glommio::spawn_local(async move {
            let _ = connection.await;
        })
        .detach();
        Ok(sender)
    }

    /// Sends one request and reads the whole response, within `timeout`.
    pub async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let _permit = self
            .permits
            .acquire_permit(1)
            .await
            .map_err(|e| HttpError::Transport(format!("connection pool closed: {e}")))?;
        let exchange = async {
            let mut sender = match self.take_idle() {
                Some(sender) => sender,
                None => self.connect().await?,
            };
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| HttpError::Transport(format!("request: {e}")))?;
            let (parts, mut body) = response.into_parts();
            let length = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
                .min(BODY_RESERVE_BYTES_MAX);
            let mut buffer = self.bodies.take(length);
            while let Some(frame) = body.frame().await {
                let frame =
                    frame.map_err(|e| HttpError::Transport(format!("response body: {e}")))?;
                if let Some(data) = frame.data_ref() {
                    buffer.extend_from_slice(data);
                }
            }
            let body = self.bodies.freeze(buffer);
            let reusable = !parts
                .headers
                .get(http::header::CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            if reusable && !sender.is_closed() {
                self.idle.borrow_mut().push(sender);
            }
            Ok(Response {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        let deadline = async {
            glommio::timer::sleep(timeout).await;
            Err(HttpError::Timeout)
        };
        let outcome = futures_lite::future::or(exchange, deadline).await;
        if outcome.is_err() {
            // The path to the server failed this request; the idle
            // connections went over the same path and may be as dead (a
            // partition, a middlebox that lost their state). Retries start
            // on new connections, not one deadline per pooled one.
            self.idle.borrow_mut().clear();
        }
        outcome
    }

    /// Drops the idle connections: each one's task then ends and closes
    /// its socket.
    pub fn close_idle(&self) {
        self.idle.borrow_mut().clear();
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.borrow_mut();
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }
}

/// A rustls client configuration trusting the web PKI roots plus the
/// certificates in `extra_ca_pem` (for example a self-signed MinIO).
pub fn tls_config(extra_ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        let mut reader = pem;
        let mut added = 0;
        for cert in rustls_pemfile::certs(&mut reader) {
            let cert = cert.map_err(|e| format!("reading CA certificate: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("adding CA certificate: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("the CA certificate file holds no PEM certificate".to_string());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

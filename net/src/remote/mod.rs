//! The remote client: the embedded client's API over a `woodpecker serve`
//! process, so an application switches between the two by configuration.
//! Errors carry the engine's kinds (the server's codes map back to them).
//!
//! HTTP runs on a small tokio runtime of the client's own (reqwest); every
//! method returns a future that any executor can await, as the embedded
//! client's do. A [`RemoteWriter`] sends its appends in call order, in
//! batch requests pipelined up to `requests_in_flight_max` (each names the
//! unanswered one before it, so the server keeps their order), gathering
//! what is appended while requests are in flight into the next (group
//! commit), and retries a request that failed retriably with the same
//! producer id and sequence number, so a retry after a lost reply is not
//! written twice. A [`RemoteReader`]
//! follows the log with one streamed request, reconnecting from the next
//! offset when the stream breaks.

mod reader;
mod writer;

pub use reader::RemoteReader;
pub use writer::{RemoteAck, RemoteWriter};

use crate::error::ApiError;
use crate::json::{
    JsonCreate, JsonLog, JsonLogInfo, JsonLogPage, JsonTail, JsonTruncate, JsonWriter,
};
use crate::timing::ServerTiming;
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use woodpecker_engine::meta::LogInfo;
use woodpecker_engine::{Error, ErrorKind, Result};
use woodpecker_shards::StartAt;

/// How to reach the server.
#[derive(Clone)]
pub struct RemoteConfig {
    /// `http://HOST:PORT` or `https://HOST:PORT`.
    pub url: String,
    /// A bearer token, if the server asks for one.
    pub token: Option<String>,
    /// PEM file of an extra CA to trust (a server with a private CA).
    pub ca_cert_path: Option<String>,
    /// How long one request may take (follow streams excepted).
    pub request_timeout: Duration,
    /// How long a writer retries one batch before it gives up.
    pub retry_deadline: Duration,
    /// Bytes of appends a writer holds at most, queued or in flight; past
    /// it, appends fail at once with a retriable `Unavailable` (nothing
    /// written).
    pub writer_queue_bytes_max: usize,
    /// Bytes of one append request at most (keep it within the server's
    /// `serve.body_bytes_max`).
    pub batch_bytes_max: usize,
    /// Append requests a writer keeps in flight at most (pipelined: the
    /// server writes them in order).
    pub requests_in_flight_max: usize,
    /// Called with every answered append request's timing (on the
    /// client's runtime thread: keep it short), to split the latency an
    /// application sees into the server's part and the rest.
    pub append_observer: Option<AppendObserver>,
}

/// See [`RemoteConfig::append_observer`].
pub type AppendObserver = Arc<dyn Fn(&AppendTiming) + Send + Sync>;

/// One append request that the server answered with success.
#[derive(Debug, Clone, Copy)]
pub struct AppendTiming {
    pub entries: usize,
    /// Bytes of the request body.
    pub bytes: usize,
    /// From handing the request to the HTTP client to the whole answer
    /// received (the last attempt's, when it was retried).
    pub round_trip: Duration,
    /// The server's own account (its `Server-Timing` header), if it gave
    /// one.
    pub server: Option<ServerTiming>,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &self.url)
            .field("token", &self.token.as_ref().map(|_| "********"))
            .field("ca_cert_path", &self.ca_cert_path)
            .finish_non_exhaustive()
    }
}

impl RemoteConfig {
    pub fn new(url: impl Into<String>) -> RemoteConfig {
        RemoteConfig {
            url: url.into(),
            token: None,
            ca_cert_path: None,
            request_timeout: Duration::from_secs(60),
            retry_deadline: Duration::from_secs(30),
            writer_queue_bytes_max: 256 << 20,
            batch_bytes_max: 16 << 20,
            requests_in_flight_max: 16,
            append_observer: None,
        }
    }
}

/// A client of a `woodpecker serve` process. Cheap to clone.
#[derive(Clone)]
pub struct RemoteClient {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub http: reqwest::Client,
    pub config: RemoteConfig,
    base: url::Url,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl RemoteClient {
    pub fn new(config: RemoteConfig) -> Result<RemoteClient> {
        let invalid = |what: String| Error::new(ErrorKind::Invalid, what);
        let base = url::Url::parse(&config.url)
            .map_err(|e| invalid(format!("server URL {:?}: {e}", config.url)))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid(format!(
                "server URL {:?}: http or https",
                config.url
            )));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(20));
        if let Some(path) = &config.ca_cert_path {
            let pem = std::fs::read(path)
                .map_err(|e| invalid(format!("reading the CA certificate {path}: {e}")))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| invalid(format!("the CA certificate {path}: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| invalid(format!("HTTP client: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("woodpecker-remote")
            .enable_all()
            .build()
            .map_err(|e| invalid(format!("the remote client's runtime: {e}")))?;
        Ok(RemoteClient {
            inner: Arc::new(Inner {
                http,
                config,
                base,
                runtime: Some(runtime),
            }),
        })
    }

    /// Runs `future` on the client's runtime; awaitable from any executor.
    fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T>> + Send + 'static,
    ) -> impl Future<Output = Result<T>> {
        let handle = self.inner.spawn(future);
        async move { joined(handle.await) }
    }

    pub fn create_log(&self, name: &str) -> impl Future<Output = Result<LogInfo>> {
        let inner = self.inner.clone();
        let body = JsonCreate {
            name: name.to_string(),
        };
        self.run(async move {
            let request = inner.http.post(inner.url(&["v1", "logs"])).json(&body);
            let log: JsonLog = json(inner.send(request).await?)?;
            Ok(log_info(log))
        })
    }

    pub fn get_log(&self, name: &str) -> impl Future<Output = Result<LogInfo>> {
        let inner = self.inner.clone();
        let name = name.to_string();
        self.run(async move {
            let request = inner.http.get(inner.url(&["v1", "logs", &name]));
            let info: JsonLogInfo = json(inner.send(request).await?)?;
            Ok(log_info(info.log))
        })
    }

    /// Every log, by name.
    pub fn list_logs(&self) -> impl Future<Output = Result<Vec<LogInfo>>> {
        let inner = self.inner.clone();
        self.run(async move {
            let mut logs = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let mut url = inner.url(&["v1", "logs"]);
                if let Some(after) = &after {
                    url.query_pairs_mut().append_pair("after", after);
                }
                let page: JsonLogPage = json(inner.send(inner.http.get(url)).await?)?;
                logs.extend(page.logs.into_iter().map(log_info));
                match page.next_after {
                    Some(next) => after = Some(next),
                    None => return Ok(logs),
                }
            }
        })
    }

    pub fn delete_log(&self, name: &str) -> impl Future<Output = Result<()>> {
        let inner = self.inner.clone();
        let name = name.to_string();
        self.run(async move {
            let request = inner.http.delete(inner.url(&["v1", "logs", &name]));
            inner.send(request).await.map(drop)
        })
    }

    /// Truncates the log below `offset`.
    pub fn truncate(&self, name: &str, offset: u64) -> impl Future<Output = Result<()>> {
        let inner = self.inner.clone();
        let name = name.to_string();
        self.run(async move {
            let request = inner
                .http
                .post(inner.url(&["v1", "logs", &name, "truncate"]))
                .json(&JsonTruncate { offset });
            inner.send(request).await.map(drop)
        })
    }

    /// The log's durable end (its next offset).
    pub fn end_offset(&self, name: &str) -> impl Future<Output = Result<u64>> {
        let inner = self.inner.clone();
        let name = name.to_string();
        self.run(async move {
            let request = inner.http.get(inner.url(&["v1", "logs", &name, "tail"]));
            let tail: JsonTail = json(inner.send(request).await?)?;
            Ok(tail.end_offset)
        })
    }

    /// The server's `/metrics` (Prometheus text format).
    pub fn metrics_text(&self) -> impl Future<Output = Result<String>> {
        let inner = self.inner.clone();
        self.run(async move {
            let body = inner.send(inner.http.get(inner.url(&["metrics"]))).await?;
            String::from_utf8(body.to_vec())
                .map_err(|e| Error::new(ErrorKind::Corrupt, format!("the server's metrics: {e}")))
        })
    }

    /// The log's writer: the server opens its writer of the log anew,
    /// fencing any other (as opening an embedded writer does).
    pub fn open_writer(&self, name: &str) -> impl Future<Output = Result<RemoteWriter>> {
        let inner = self.inner.clone();
        let name = name.to_string();
        let spawner = self.inner.clone();
        self.run(async move {
            let request = inner.http.post(inner.url(&["v1", "logs", &name, "writer"]));
            let opened: JsonWriter = json(inner.send(request).await?)?;
            let log = json::<JsonLogInfo>(
                inner
                    .send(inner.http.get(inner.url(&["v1", "logs", &name])))
                    .await?,
            )?;
            Ok((opened, log_info(log.log)))
        })
        .map_ok(move |(opened, log)| RemoteWriter::start(spawner, log, opened.epoch))
    }

    /// A reader of the log from `start`, following it past its end.
    /// `Latest` is the log's end when the reader is opened, as with the
    /// embedded reader: an entry appended after this returns is read.
    pub fn open_reader(
        &self,
        name: &str,
        start: StartAt,
    ) -> impl Future<Output = Result<RemoteReader>> {
        let inner = self.inner.clone();
        let name = name.to_string();
        let spawner = self.inner.clone();
        self.run(async move {
            let request = inner.http.get(inner.url(&["v1", "logs", &name]));
            let info: JsonLogInfo = json(inner.send(request).await?)?;
            let start = match start {
                StartAt::Latest => {
                    let request = inner.http.get(inner.url(&["v1", "logs", &name, "tail"]));
                    let tail: JsonTail = json(inner.send(request).await?)?;
                    StartAt::Offset(tail.end_offset)
                }
                start => start,
            };
            Ok((log_info(info.log), start))
        })
        .map_ok(move |(log, start)| RemoteReader::start(spawner, log, start))
    }
}

/// `map` for the `Result` of a future, without naming its type.
trait MapOk<T>: Future<Output = Result<T>> + Sized {
    fn map_ok<U>(self, f: impl FnOnce(T) -> U) -> impl Future<Output = Result<U>> {
        async move { self.await.map(f) }
    }
}

impl<T, F: Future<Output = Result<T>>> MapOk<T> for F {}

impl Inner {
    pub fn spawn<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the client")
            .spawn(future)
    }

    /// The server's URL with these path segments (each percent-encoded).
    pub fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked: the URL can be a base")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// The request with the bearer token, if the client has one.
    pub fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.config.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends a request (with the token); the body of a 2xx answer, else
    /// the server's error with its kind.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Bytes> {
        self.send_reading(request, |_| ())
            .await
            .map(|(body, ())| body)
    }

    /// [`Inner::send`], also giving what `read` takes from the answer's
    /// headers.
    pub async fn send_reading<T>(
        &self,
        request: reqwest::RequestBuilder,
        read: impl FnOnce(&reqwest::header::HeaderMap) -> T,
    ) -> Result<(Bytes, T)> {
        let response = self.authorized(request).send().await.map_err(transport)?;
        let status = response.status();
        let read = read(response.headers());
        let body = response.bytes().await.map_err(transport)?;
        if status.is_success() {
            return Ok((body, read));
        }
        Err(answer_error(status, &body))
    }
}

/// The error a non-2xx answer carries.
pub(crate) fn answer_error(status: reqwest::StatusCode, body: &[u8]) -> Error {
    match serde_json::from_slice::<ApiError>(body) {
        Ok(api) => api.into(),
        Err(_) => Error::new(
            if status.is_server_error() {
                ErrorKind::Unavailable
            } else {
                ErrorKind::Invalid
            },
            format!(
                "the server answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ),
        ),
    }
}

/// A request that got no answer: the server may be down or restarting.
pub(crate) fn transport(err: reqwest::Error) -> Error {
    // reqwest's message names the URL, never the Authorization header.
    Error::new(
        ErrorKind::Unavailable,
        format!("the server did not answer: {err}"),
    )
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(body: Bytes) -> Result<T> {
    serde_json::from_slice(&body)
        .map_err(|e| Error::new(ErrorKind::Corrupt, format!("the server's answer: {e}")))
}

fn joined<T>(joined: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    joined.unwrap_or_else(|e| {
        Err(Error::new(
            ErrorKind::Closed,
            format!("the remote client stopped: {e}"),
        ))
    })
}

fn log_info(log: JsonLog) -> LogInfo {
    LogInfo {
        id: log.id,
        name: log.name,
        epoch: log.epoch,
        truncated_below: log.truncated_below,
    }
}

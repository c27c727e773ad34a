//! S3-compatible object store (MinIO, AWS S3, others).
//!
//! Requests are signed with AWS SigV4 by `rusty-s3` (query-string
//! signatures, with the headers that matter, `If-None-Match` and
//! `x-amz-checksum-crc32c`, signed too) and sent through [`http::Pool`],
//! hyper over glommio sockets. Transient failures (transport errors,
//! timeouts, 5xx, 429, `SlowDown`) are retried with capped exponential
//! backoff and full jitter.

pub mod body;
pub mod http;
pub mod xml;

use self::http::{Endpoint, HttpError, Pool, Response};
use self::xml::error_code;
use super::{
    check_range, validate_key, ListPage, ObjectMeta, ObjectStore, StoreError, StoreResult,
};
use ::http::{header, Method, StatusCode};
use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use futures_rustls::rustls;
use http_body_util::Full;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const ENV_S3_ENDPOINT: &str = "WOODPECKER_S3_ENDPOINT";
pub const ENV_S3_BUCKET: &str = "WOODPECKER_S3_BUCKET";
pub const ENV_S3_ACCESS_KEY: &str = "WOODPECKER_S3_ACCESS_KEY";
pub const ENV_S3_SECRET_KEY: &str = "WOODPECKER_S3_SECRET_KEY";
pub const ENV_S3_REGION: &str = "WOODPECKER_S3_REGION";
/// Optional: PEM file of an extra CA certificate to trust (HTTPS endpoints).
pub const ENV_S3_CA_CERT: &str = "WOODPECKER_S3_CA_CERT";

/// How long a request signature stays valid; requests are signed per attempt.
const SIGNATURE_TTL: Duration = Duration::from_secs(900);

/// Settings of the S3 client. Defaults suit a local MinIO or AWS S3.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// `http://host:port` or `https://host:port`, without the bucket.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    /// `https://bucket.host/key` instead of `https://host/bucket/key`.
    pub virtual_hosted: bool,
    /// Extra CA certificate (PEM) to trust, e.g. for a self-signed server.
    pub ca_cert_path: Option<PathBuf>,
    /// Open connections per store instance (per shard).
    pub connections_max: usize,
    pub connect_timeout_ms: u64,
    /// Whole-request deadline, body included.
    pub request_timeout_ms: u64,
    /// Retries after the first attempt.
    pub retries_max: u32,
    pub retry_backoff_initial_ms: u64,
    pub retry_backoff_max_ms: u64,
    /// Send `x-amz-checksum-crc32c` with every upload.
    pub send_checksum: bool,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config {
            endpoint: String::new(),
            bucket: String::new(),
            region: "us-east-1".to_string(),
            access_key: String::new(),
            secret_key: String::new(),
            virtual_hosted: false,
            ca_cert_path: None,
            connections_max: 64,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 60_000,
            retries_max: 6,
            retry_backoff_initial_ms: 20,
            retry_backoff_max_ms: 2_000,
            send_checksum: true,
        }
    }
}

/// Shows everything but the secret key, so a logged configuration never
/// carries it.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = if self.secret_key.is_empty() {
            ""
        } else {
            "<masked>"
        };
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &secret)
            .field("virtual_hosted", &self.virtual_hosted)
            .field("ca_cert_path", &self.ca_cert_path)
            .field("connections_max", &self.connections_max)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("retries_max", &self.retries_max)
            .field("retry_backoff_initial_ms", &self.retry_backoff_initial_ms)
            .field("retry_backoff_max_ms", &self.retry_backoff_max_ms)
            .field("send_checksum", &self.send_checksum)
            .finish()
    }
}

impl S3Config {
    /// Reads endpoint, bucket, keys and region from the `WOODPECKER_S3_*`
    /// environment variables; the rest keeps its defaults.
    pub fn from_env() -> Result<S3Config, String> {
        let required = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("{name} is not set"))
        };
        let mut config = S3Config {
            endpoint: required(ENV_S3_ENDPOINT)?,
            bucket: required(ENV_S3_BUCKET)?,
            access_key: required(ENV_S3_ACCESS_KEY)?,
            secret_key: required(ENV_S3_SECRET_KEY)?,
            ..S3Config::default()
        };
        if let Ok(region) = std::env::var(ENV_S3_REGION) {
            if !region.is_empty() {
                config.region = region;
            }
        }
        if let Ok(ca) = std::env::var(ENV_S3_CA_CERT) {
            if !ca.is_empty() {
                config.ca_cert_path = Some(ca.into());
            }
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.endpoint)
            .map_err(|e| format!("S3 endpoint {:?}: {e}", self.endpoint))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("S3 endpoint {:?} is not http(s)", self.endpoint));
        }
        if self.bucket.is_empty() {
            return Err("S3 bucket is empty".to_string());
        }
        if self.connections_max == 0 {
            return Err("s3 connections_max must be at least 1".to_string());
        }
        if self.request_timeout_ms == 0 || self.connect_timeout_ms == 0 {
            return Err("S3 timeouts must be positive".to_string());
        }
        if self.retry_backoff_initial_ms > self.retry_backoff_max_ms {
            return Err("retry_backoff_initial_ms exceeds retry_backoff_max_ms".to_string());
        }
        Ok(())
    }
}

/// One S3 client; `!Send`, made on the executor thread that uses it.
pub struct S3Store {
    config: S3Config,
    bucket: Bucket,
    credentials: Credentials,
    pool: Pool,
    rng: std::cell::RefCell<fastrand::Rng>,
}

impl S3Store {
    /// A client on this thread; reads the CA file, if any (a blocking
    /// call: on a shard, use [`S3Store::with_tls`] with [`S3Store::tls`]
    /// prepared beforehand).
    pub fn new(config: S3Config) -> StoreResult<S3Store> {
        let tls = S3Store::tls(&config)?;
        S3Store::with_tls(config, tls)
    }

    /// The TLS settings for `config`'s endpoint (`None` for plain HTTP),
    /// with its extra CA read from disk. `Send + Sync`: prepare once, share
    /// with every shard.
    pub fn tls(config: &S3Config) -> StoreResult<Option<Arc<rustls::ClientConfig>>> {
        config.validate().map_err(StoreError::Invalid)?;
        let endpoint = url::Url::parse(&config.endpoint).expect("validated");
        if endpoint.scheme() != "https" {
            return Ok(None);
        }
        let extra_ca = match &config.ca_cert_path {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                StoreError::Invalid(format!("reading CA certificate {}: {e}", path.display()))
            })?),
            None => None,
        };
        let tls = http::tls_config(extra_ca.as_deref()).map_err(StoreError::Invalid)?;
        Ok(Some(Arc::new(tls)))
    }

    /// A client on this thread with TLS settings from [`S3Store::tls`].
    pub fn with_tls(
        config: S3Config,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> StoreResult<S3Store> {
        config.validate().map_err(StoreError::Invalid)?;
        let endpoint = url::Url::parse(&config.endpoint).expect("validated");
        let style = if config.virtual_hosted {
            UrlStyle::VirtualHost
        } else {
            UrlStyle::Path
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| StoreError::Invalid(format!("S3 bucket address: {e:?}")))?;
        let base = bucket.base_url();
        if (base.scheme() == "https") != tls.is_some() {
            return Err(StoreError::Invalid(format!(
                "TLS settings do not match the endpoint {}",
                config.endpoint
            )));
        }
        let ip = match base.host() {
            Some(url::Host::Ipv4(ip)) => Some(ip.into()),
            Some(url::Host::Ipv6(ip)) => Some(ip.into()),
            _ => None,
        };
        let endpoint = Endpoint {
            host: base
                .host_str()
                .expect("bucket URLs have a host")
                .to_string(),
            ip,
            port: base.port_or_known_default().expect("http(s) has a port"),
            tls,
            connect_timeout: Duration::from_millis(config.connect_timeout_ms),
        };
        let pool = Pool::new(endpoint, config.connections_max);
        let credentials = Credentials::new(config.access_key.clone(), config.secret_key.clone());
        Ok(S3Store {
            bucket,
            credentials,
            pool,
            rng: std::cell::RefCell::new(fastrand::Rng::new()),
            config,
        })
    }

    pub fn config(&self) -> &S3Config {
        &self.config
    }

    fn request(
        &self,
        method: Method,
        url: url::Url,
        headers: &[(header::HeaderName, String)],
        body: Bytes,
    ) -> ::http::Request<Full<Bytes>> {
        let mut target = url.path().to_string();
        if let Some(query) = url.query() {
            target.push('?');
            target.push_str(query);
        }
        let mut builder = ::http::Request::builder()
            .method(method)
            .uri(target)
            .header(header::HOST, self.pool.authority());
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        builder.body(Full::new(body)).expect("valid request parts")
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self.config.retry_backoff_max_ms;
        let exp = self
            .config
            .retry_backoff_initial_ms
            .saturating_mul(1u64 << attempt.min(20))
            .min(cap);
        Duration::from_millis(self.rng.borrow_mut().u64(exp / 2..=exp.max(1)))
    }

    /// Sends the request `build` makes (signed afresh per attempt), retrying
    /// transient failures. Returns the first non-retriable response, and
    /// whether an earlier attempt may have taken effect on the server.
    async fn call(
        &self,
        what: &str,
        build: &dyn Fn() -> ::http::Request<Full<Bytes>>,
    ) -> StoreResult<(Response, bool)> {
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let mut ambiguous = false;
        let mut attempt = 0u32;
        loop {
            let failure = match self.pool.send(build(), timeout).await {
                Ok(response) if !is_retriable(&response) => return Ok((response, ambiguous)),
                Ok(response) => format!("{}: {}", response.status, error_code(&response.body)),
                Err(HttpError::Timeout) => "timed out".to_string(),
                Err(HttpError::Transport(e)) => e,
            };
            ambiguous = true;
            if attempt >= self.config.retries_max {
                return Err(StoreError::Unavailable(format!(
                    "{what}: {failure} (after {} attempts)",
                    attempt + 1
                )));
            }
            tracing::debug!(what, failure, attempt, "retrying S3 request");
            glommio::timer::sleep(self.backoff(attempt)).await;
            attempt += 1;
        }
    }

    fn upload_headers(
        &self,
        data: &[u8],
        if_absent: bool,
        crc32c: Option<u32>,
    ) -> Vec<(header::HeaderName, String)> {
        let mut headers = Vec::new();
        if if_absent {
            headers.push((header::IF_NONE_MATCH, "*".to_string()));
        }
        if self.config.send_checksum {
            headers.push((
                header::HeaderName::from_static("x-amz-checksum-crc32c"),
                crc32c_base64(crc32c.unwrap_or_else(|| crc32c::crc32c(data))),
            ));
        }
        headers
    }

    async fn put_object(
        &self,
        key: &str,
        data: Bytes,
        if_absent: bool,
        crc32c: Option<u32>,
    ) -> StoreResult<bool> {
        validate_key(key)?;
        let headers = self.upload_headers(&data, if_absent, crc32c);
        let build = || {
            let mut action = self.bucket.put_object(Some(&self.credentials), key);
            for (name, value) in &headers {
                action.headers_mut().insert(name.as_str(), value.as_str());
            }
            let url = action.sign(SIGNATURE_TTL);
            self.request(Method::PUT, url, &headers, data.clone())
        };
        let (response, ambiguous) = self.call(key, &build).await?;
        if response.status.is_success() {
            return Ok(true);
        }
        let err = status_error(key, &response);
        if if_absent && ambiguous && matches!(err, StoreError::AlreadyExists(_)) {
            // An earlier attempt may have written the object before its
            // reply was lost: it is ours if it holds our bytes.
            if self.get(key).await? == data {
                return Ok(true);
            }
        }
        Err(err)
    }
}

fn crc32c_base64(crc: u32) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

fn is_retriable(response: &Response) -> bool {
    let status = response.status;
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return true;
    }
    if status.is_success() || status.is_redirection() {
        // Only error replies carry a code; never scan a data body.
        return false;
    }
    let code = error_code(&response.body);
    ["SlowDown", "RequestTimeout", "ConditionalRequestConflict"]
        .iter()
        .any(|c| code.starts_with(c))
}

fn status_error(key: &str, response: &Response) -> StoreError {
    let detail = format!("{key}: {} {}", response.status, error_code(&response.body));
    match response.status {
        StatusCode::NOT_FOUND => StoreError::NotFound(detail),
        StatusCode::PRECONDITION_FAILED => StoreError::AlreadyExists(detail),
        s if s.is_server_error() => StoreError::Unavailable(detail),
        _ => StoreError::Invalid(detail),
    }
}

fn expect_success(key: &str, response: &Response) -> StoreResult<()> {
    if response.status.is_success() {
        Ok(())
    } else {
        Err(status_error(key, response))
    }
}

fn content_length(key: &str, response: &Response) -> StoreResult<u64> {
    response
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| StoreError::Unavailable(format!("{key}: no Content-Length")))
}

#[async_trait(?Send)]
impl ObjectStore for S3Store {
    fn close_idle(&self) {
        self.pool.close_idle();
    }

    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.put_object(key, data, false, None).await.map(|_| ())
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.put_object(key, data, true, None).await.map(|_| ())
    }

    async fn put_if_absent_with_crc32c(
        &self,
        key: &str,
        data: Bytes,
        crc32c: u32,
    ) -> StoreResult<()> {
        self.put_object(key, data, true, Some(crc32c))
            .await
            .map(|_| ())
    }

    async fn create_multipart(&self, key: &str) -> StoreResult<String> {
        validate_key(key)?;
        let build = || {
            let url = self
                .bucket
                .create_multipart_upload(Some(&self.credentials), key)
                .sign(SIGNATURE_TTL);
            self.request(Method::POST, url, &[], Bytes::new())
        };
        let (response, _) = self.call(key, &build).await?;
        expect_success(key, &response)?;
        xml::upload_id(key, &response.body)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        data: Bytes,
    ) -> StoreResult<String> {
        let headers = self.upload_headers(&data, false, None);
        let build = || {
            let mut action =
                self.bucket
                    .upload_part(Some(&self.credentials), key, part_number, upload_id);
            for (name, value) in &headers {
                action.headers_mut().insert(name.as_str(), value.as_str());
            }
            let url = action.sign(SIGNATURE_TTL);
            self.request(Method::PUT, url, &headers, data.clone())
        };
        let (response, _) = self.call(key, &build).await?;
        expect_success(key, &response)?;
        response
            .headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| StoreError::Unavailable(format!("{key}: part reply without ETag")))
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
        if_absent: bool,
    ) -> StoreResult<()> {
        let headers: Vec<(header::HeaderName, String)> = if if_absent {
            vec![(header::IF_NONE_MATCH, "*".to_string())]
        } else {
            Vec::new()
        };
        let build = || {
            let mut action = self.bucket.complete_multipart_upload(
                Some(&self.credentials),
                key,
                upload_id,
                etags.iter().map(String::as_str),
            );
            for (name, value) in &headers {
                action.headers_mut().insert(name.as_str(), value.as_str());
            }
            let url = action.sign(SIGNATURE_TTL);
            let body = Bytes::from(action.body());
            self.request(Method::POST, url, &headers, body)
        };
        let (response, _) = self.call(key, &build).await?;
        expect_success(key, &response)?;
        // S3 may answer 200 and put the error in the body.
        if response.body.windows(7).any(|w| w == b"<Error>") {
            return Err(StoreError::Unavailable(format!(
                "{key}: CompleteMultipartUpload failed: {}",
                error_code(&response.body)
            )));
        }
        Ok(())
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        let build = || {
            let url = self
                .bucket
                .abort_multipart_upload(Some(&self.credentials), key, upload_id)
                .sign(SIGNATURE_TTL);
            self.request(Method::DELETE, url, &[], Bytes::new())
        };
        let (response, _) = self.call(key, &build).await?;
        match response.status {
            StatusCode::NOT_FOUND => Ok(()),
            _ => expect_success(key, &response),
        }
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        validate_key(key)?;
        let build = || {
            let url = self
                .bucket
                .get_object(Some(&self.credentials), key)
                .sign(SIGNATURE_TTL);
            self.request(Method::GET, url, &[], Bytes::new())
        };
        let (response, _) = self.call(key, &build).await?;
        expect_success(key, &response)?;
        Ok(response.body)
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> StoreResult<Bytes> {
        validate_key(key)?;
        check_range(key, &range, u64::MAX)?;
        let headers = [(
            header::RANGE,
            format!("bytes={}-{}", range.start, range.end - 1),
        )];
        let build = || {
            let url = self
                .bucket
                .get_object(Some(&self.credentials), key)
                .sign(SIGNATURE_TTL);
            self.request(Method::GET, url, &headers, Bytes::new())
        };
        let (response, _) = self.call(key, &build).await?;
        if response.status == StatusCode::RANGE_NOT_SATISFIABLE {
            return Err(StoreError::Invalid(format!(
                "{key}: range {range:?} outside the object"
            )));
        }
        expect_success(key, &response)?;
        if response.status != StatusCode::PARTIAL_CONTENT && response.status != StatusCode::OK {
            return Err(status_error(key, &response));
        }
        let body = if response.status == StatusCode::OK {
            // Whole object returned: the range must lie within it.
            check_range(key, &range, response.body.len() as u64)?;
            response
                .body
                .slice(range.start as usize..range.end as usize)
        } else {
            response.body
        };
        if body.len() as u64 != range.end - range.start {
            return Err(StoreError::Invalid(format!(
                "{key}: range {range:?} reaches past the end of the object"
            )));
        }
        Ok(body)
    }

    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        validate_key(key)?;
        let build = || {
            let url = self
                .bucket
                .head_object(Some(&self.credentials), key)
                .sign(SIGNATURE_TTL);
            self.request(Method::HEAD, url, &[], Bytes::new())
        };
        let (response, _) = self.call(key, &build).await?;
        expect_success(key, &response)?;
        Ok(ObjectMeta {
            key: key.to_string(),
            size: content_length(key, &response)?,
        })
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> StoreResult<ListPage> {
        let build = || {
            let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
            action.with_prefix(prefix);
            action.with_max_keys(max_keys.clamp(1, super::LIST_PAGE_KEYS_MAX));
            if let Some(key) = start_after {
                action.with_start_after(key);
            }
            let url = action.sign(SIGNATURE_TTL);
            self.request(Method::GET, url, &[], Bytes::new())
        };
        let (response, _) = self.call(prefix, &build).await?;
        expect_success(prefix, &response)?;
        xml::list_page(prefix, &response.body)
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        validate_key(key)?;
        let build = || {
            let url = self
                .bucket
                .delete_object(Some(&self.credentials), key)
                .sign(SIGNATURE_TTL);
            self.request(Method::DELETE, url, &[], Bytes::new())
        };
        let (response, _) = self.call(key, &build).await?;
        match response.status {
            StatusCode::NOT_FOUND => Ok(()),
            _ => expect_success(key, &response),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_reads_code_and_message() {
        let body = b"<Error><Code>SlowDown</Code><Message>Please reduce</Message></Error>";
        assert_eq!(error_code(body), "SlowDown: Please reduce");
        assert_eq!(error_code(b"garbage"), "");
    }

    #[test]
    fn debug_output_masks_the_secret_key() {
        let config = S3Config {
            access_key: "AKID".into(),
            secret_key: "very-secret-key".into(),
            ..S3Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("very-secret-key"), "{shown}");
        assert!(
            shown.contains("AKID") && shown.contains("<masked>"),
            "{shown}"
        );
    }

    #[test]
    fn checksum_is_big_endian_base64() {
        // CRC32C("123456789") = 0xE3069283.
        assert_eq!(crc32c_base64(crc32c::crc32c(b"123456789")), "4waSgw==");
    }

    #[test]
    fn config_validation_names_the_problem() {
        let config = S3Config {
            endpoint: "ftp://x".into(),
            bucket: "b".into(),
            ..S3Config::default()
        };
        assert!(config.validate().unwrap_err().contains("not http"));
        let config = S3Config {
            endpoint: "http://127.0.0.1:9000".into(),
            ..S3Config::default()
        };
        assert!(config.validate().unwrap_err().contains("bucket"));
    }

    #[test]
    fn virtual_hosted_and_path_style_addresses() {
        let run = |virtual_hosted| {
            let config = S3Config {
                endpoint: "https://s3.eu-west-1.amazonaws.com".into(),
                bucket: "wal-bucket".into(),
                region: "eu-west-1".into(),
                virtual_hosted,
                ..S3Config::default()
            };
            glommio::LocalExecutor::default().run(async move {
                let store = S3Store::new(config).unwrap();
                (
                    store.pool.authority(),
                    store.bucket.object_url("a/b").to_string(),
                )
            })
        };
        let (host, url) = run(true);
        assert_eq!(host, "wal-bucket.s3.eu-west-1.amazonaws.com");
        assert_eq!(url, "https://wal-bucket.s3.eu-west-1.amazonaws.com/a/b");
        let (host, url) = run(false);
        assert_eq!(host, "s3.eu-west-1.amazonaws.com");
        assert_eq!(url, "https://s3.eu-west-1.amazonaws.com/wal-bucket/a/b");
    }
}

//! The object store as each shard uses it, timed: every request's duration
//! goes to a histogram by operation, and every failure to a counter by
//! operation and kind. One clock read and one histogram update per request
//! (per fragment or read, never per append).

use crate::stats::Stats;
use async_trait::async_trait;
use bytes::Bytes;
use std::future::Future;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use woodpecker_engine::store::{ListPage, ObjectMeta, ObjectStore, Op, StoreError, StoreResult};

pub(crate) struct MeteredStore {
    inner: Rc<dyn ObjectStore>,
    stats: Arc<Stats>,
}

impl MeteredStore {
    pub(crate) fn wrap(inner: Rc<dyn ObjectStore>, stats: Arc<Stats>) -> Rc<dyn ObjectStore> {
        Rc::new(MeteredStore { inner, stats })
    }

    async fn timed<T>(&self, op: Op, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let started = Instant::now();
        let result = call.await;
        let seconds = started.elapsed().as_secs_f64();
        self.stats
            .histograms
            .store_seconds
            .with_label_values(&[op.name()])
            .observe(seconds);
        if let Err(err) = &result {
            self.stats
                .histograms
                .store_errors
                .with_label_values(&[op.name(), error_kind(err)])
                .inc();
        }
        result
    }
}

/// The `cause` label of a retried upload: what the last attempt met.
pub(crate) fn retry_cause(err: &StoreError) -> &'static str {
    let StoreError::Unavailable(detail) = err else {
        return error_kind(err);
    };
    let status = |code: &str| detail.contains(&format!(": {code} "));
    if detail.contains("timed out") {
        "timeout"
    } else if status("429") || status("503") || detail.contains("SlowDown") {
        "throttled"
    } else if (500..600).any(|code| status(&code.to_string())) {
        "server_error"
    } else {
        "transport"
    }
}

/// The `kind` label of a failed request.
pub(crate) fn error_kind(err: &StoreError) -> &'static str {
    match err {
        StoreError::NotFound(_) => "not_found",
        StoreError::AlreadyExists(_) => "already_exists",
        StoreError::Unavailable(_) => "unavailable",
        StoreError::Invalid(_) => "invalid",
    }
}

#[async_trait(?Send)]
impl ObjectStore for MeteredStore {
    fn close_idle(&self) {
        self.inner.close_idle();
    }

    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.timed(Op::Put, self.inner.put(key, data)).await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.timed(Op::PutIfAbsent, self.inner.put_if_absent(key, data))
            .await
    }

    async fn put_if_absent_with_crc32c(
        &self,
        key: &str,
        data: Bytes,
        crc32c: u32,
    ) -> StoreResult<()> {
        let call = self.inner.put_if_absent_with_crc32c(key, data, crc32c);
        self.timed(Op::PutIfAbsent, call).await
    }

    async fn create_multipart(&self, key: &str) -> StoreResult<String> {
        self.timed(Op::CreateMultipart, self.inner.create_multipart(key))
            .await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        data: Bytes,
    ) -> StoreResult<String> {
        let call = self.inner.upload_part(key, upload_id, part_number, data);
        self.timed(Op::UploadPart, call).await
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
        if_absent: bool,
    ) -> StoreResult<()> {
        let call = self
            .inner
            .complete_multipart(key, upload_id, etags, if_absent);
        self.timed(Op::CompleteMultipart, call).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        let call = self.inner.abort_multipart(key, upload_id);
        self.timed(Op::AbortMultipart, call).await
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        self.timed(Op::Get, self.inner.get(key)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> StoreResult<Bytes> {
        self.timed(Op::GetRange, self.inner.get_range(key, range))
            .await
    }

    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        self.timed(Op::Head, self.inner.head(key)).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> StoreResult<ListPage> {
        let call = self.inner.list_page(prefix, start_after, max_keys);
        self.timed(Op::List, call).await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.timed(Op::Delete, self.inner.delete(key)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_named_by_what_the_attempt_met() {
        let unavailable = |detail: &str| StoreError::Unavailable(detail.into());
        let cases = [
            ("put a: timed out (after 3 attempts)", "timeout"),
            (
                "put a: 503 Service Unavailable: SlowDown (after 1 attempts)",
                "throttled",
            ),
            (
                "put a: 429 Too Many Requests: (after 1 attempts)",
                "throttled",
            ),
            (
                "put a: 500 Internal Server Error: InternalError",
                "server_error",
            ),
            ("put a/500: connection reset by peer", "transport"),
        ];
        for (detail, cause) in cases {
            assert_eq!(retry_cause(&unavailable(detail)), cause, "{detail}");
        }
        assert_eq!(retry_cause(&StoreError::Invalid("x".into())), "invalid");
    }
}

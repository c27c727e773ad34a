//! Fault injection over any object store: error rates, added latency, lost
//! replies (the operation took effect but the caller hears an error), and a
//! crash point after which every operation fails. Rules apply per operation
//! and per key prefix; randomness comes from one seed, so a run replays.
//!
//! Latency uses glommio's timer: a `FaultStore` runs on a glommio executor.

use super::{ListPage, ObjectMeta, ObjectStore, Op, StoreError, StoreResult};
use async_trait::async_trait;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::ops::Range;
use std::time::Duration;

/// One fault rule; it applies to an operation when `ops` is empty or holds
/// it, and the key starts with `key_prefix`.
#[derive(Debug, Clone, Default)]
pub struct FaultRule {
    pub ops: Vec<Op>,
    pub key_prefix: String,
    /// Probability that the operation fails before reaching the store.
    pub error_rate: f64,
    /// Probability that the operation reaches the store, takes effect, and
    /// its reply is lost (the caller gets `Unavailable`).
    pub lost_reply_rate: f64,
    /// Latency added before the operation.
    pub latency: Duration,
}

impl FaultRule {
    fn applies(&self, op: Op, key: &str) -> bool {
        (self.ops.is_empty() || self.ops.contains(&op)) && key.starts_with(&self.key_prefix)
    }
}

pub struct FaultStore<S> {
    inner: S,
    rules: RefCell<Vec<FaultRule>>,
    rng: RefCell<fastrand::Rng>,
    ops_done: Cell<u64>,
    fail_after_ops: Cell<Option<u64>>,
}

enum Verdict {
    Fail,
    LoseReply,
    Pass,
}

impl<S: ObjectStore> FaultStore<S> {
    pub fn new(inner: S, seed: u64) -> Self {
        FaultStore {
            inner,
            rules: RefCell::new(Vec::new()),
            rng: RefCell::new(fastrand::Rng::with_seed(seed)),
            ops_done: Cell::new(0),
            fail_after_ops: Cell::new(None),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn add_rule(&self, rule: FaultRule) {
        self.rules.borrow_mut().push(rule);
    }

    pub fn clear_rules(&self) {
        self.rules.borrow_mut().clear();
        self.fail_after_ops.set(None);
    }

    /// Every operation after the first `n` (counted from now) fails, as if
    /// the process had crashed at that point.
    pub fn fail_after(&self, n: u64) {
        self.fail_after_ops.set(Some(self.ops_done.get() + n));
    }

    /// Operations seen so far.
    pub fn ops_done(&self) -> u64 {
        self.ops_done.get()
    }

    async fn judge(&self, op: Op, key: &str) -> Verdict {
        let seq = self.ops_done.get();
        self.ops_done.set(seq + 1);
        if self.fail_after_ops.get().is_some_and(|limit| seq >= limit) {
            return Verdict::Fail;
        }
        let (latency, verdict) = {
            let rules = self.rules.borrow();
            let mut rng = self.rng.borrow_mut();
            let mut latency = Duration::ZERO;
            let mut verdict = Verdict::Pass;
            for rule in rules.iter().filter(|r| r.applies(op, key)) {
                latency += rule.latency;
                if rng.f64() < rule.error_rate {
                    verdict = Verdict::Fail;
                } else if rng.f64() < rule.lost_reply_rate && !matches!(verdict, Verdict::Fail) {
                    verdict = Verdict::LoseReply;
                }
            }
            (latency, verdict)
        };
        if !latency.is_zero() {
            glommio::timer::sleep(latency).await;
        }
        verdict
    }

    async fn run<T>(
        &self,
        op: Op,
        key: &str,
        call: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        match self.judge(op, key).await {
            Verdict::Fail => Err(StoreError::Unavailable(format!(
                "injected fault: {op:?} {key}"
            ))),
            Verdict::LoseReply => {
                let _ = call.await;
                Err(StoreError::Unavailable(format!(
                    "injected lost reply: {op:?} {key}"
                )))
            }
            Verdict::Pass => call.await,
        }
    }
}

#[async_trait(?Send)]
impl<S: ObjectStore> ObjectStore for FaultStore<S> {
    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        self.run(Op::Put, key, self.inner.put(key, data)).await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<()> {
        let call = self.inner.put_if_absent(key, data);
        self.run(Op::PutIfAbsent, key, call).await
    }

    async fn put_if_absent_with_crc32c(
        &self,
        key: &str,
        data: Bytes,
        crc32c: u32,
    ) -> StoreResult<()> {
        let call = self.inner.put_if_absent_with_crc32c(key, data, crc32c);
        self.run(Op::PutIfAbsent, key, call).await
    }

    async fn create_multipart(&self, key: &str) -> StoreResult<String> {
        let call = self.inner.create_multipart(key);
        self.run(Op::CreateMultipart, key, call).await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        data: Bytes,
    ) -> StoreResult<String> {
        let call = self.inner.upload_part(key, upload_id, part_number, data);
        self.run(Op::UploadPart, key, call).await
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
        self.run(Op::CompleteMultipart, key, call).await
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
        let call = self.inner.abort_multipart(key, upload_id);
        self.run(Op::AbortMultipart, key, call).await
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        self.run(Op::Get, key, self.inner.get(key)).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> StoreResult<Bytes> {
        self.run(Op::GetRange, key, self.inner.get_range(key, range))
            .await
    }

    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        self.run(Op::Head, key, self.inner.head(key)).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> StoreResult<ListPage> {
        let call = self.inner.list_page(prefix, start_after, max_keys);
        self.run(Op::List, prefix, call).await
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.run(Op::Delete, key, self.inner.delete(key)).await
    }
}

//! A metadata store whose segment creates and seals fail as an etcd outage
//! would: the next `n` of them answer `Unavailable`, either before reaching
//! the store or after taking effect (a lost reply).

use async_trait::async_trait;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use woodpecker_engine::meta::memory::MemoryMeta;
use woodpecker_engine::meta::{
    EpochWatch, LogId, LogInfo, MetaError, MetaResult, MetaStore, SealInfo, SegmentId, SegmentInfo,
    SegmentWatch,
};

pub struct FlakyMeta {
    pub inner: MemoryMeta,
    failures_left: AtomicU64,
    lose_replies: AtomicBool,
    pub failed: AtomicU64,
}

impl FlakyMeta {
    pub fn new() -> FlakyMeta {
        FlakyMeta {
            inner: MemoryMeta::new(),
            failures_left: AtomicU64::new(0),
            lose_replies: AtomicBool::new(false),
            failed: AtomicU64::new(0),
        }
    }

    /// The next `n` segment creates and seals fail; with `lose_replies`
    /// they take effect first.
    pub fn fail_next(&self, n: u64, lose_replies: bool) {
        self.lose_replies.store(lose_replies, Ordering::SeqCst);
        self.failures_left.store(n, Ordering::SeqCst);
    }

    /// `call`, unless an outage is due: then `Unavailable`, after running
    /// `call` if the reply is to be lost.
    async fn outage_or<T>(&self, call: impl Future<Output = MetaResult<T>>) -> MetaResult<T> {
        match self.take_failure() {
            None => call.await,
            Some(true) => {
                call.await?;
                Err(outage())
            }
            Some(false) => Err(outage()),
        }
    }

    fn take_failure(&self) -> Option<bool> {
        self.failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .ok()
            .map(|_| {
                self.failed.fetch_add(1, Ordering::SeqCst);
                self.lose_replies.load(Ordering::SeqCst)
            })
    }
}

fn outage() -> MetaError {
    MetaError::Unavailable("injected etcd outage".to_string())
}

#[async_trait]
impl MetaStore for FlakyMeta {
    async fn create_log(&self, name: &str) -> MetaResult<LogInfo> {
        self.inner.create_log(name).await
    }
    async fn get_log(&self, name: &str) -> MetaResult<LogInfo> {
        self.inner.get_log(name).await
    }
    async fn list_logs(&self) -> MetaResult<Vec<LogInfo>> {
        self.inner.list_logs().await
    }
    async fn delete_log(&self, name: &str) -> MetaResult<()> {
        self.inner.delete_log(name).await
    }
    async fn bump_epoch(&self, log: LogId, expected: u64) -> MetaResult<u64> {
        self.inner.bump_epoch(log, expected).await
    }
    async fn create_segment(
        &self,
        log: LogId,
        epoch: u64,
        segment: &SegmentInfo,
    ) -> MetaResult<()> {
        self.outage_or(self.inner.create_segment(log, epoch, segment))
            .await
    }
    async fn list_segments(&self, log: LogId) -> MetaResult<Vec<SegmentInfo>> {
        self.inner.list_segments(log).await
    }
    async fn seal_segment(
        &self,
        log: LogId,
        epoch: u64,
        segment: SegmentId,
        seal: SealInfo,
    ) -> MetaResult<SegmentInfo> {
        self.outage_or(self.inner.seal_segment(log, epoch, segment, seal))
            .await
    }
    async fn truncate(&self, log: LogId, offset: u64) -> MetaResult<()> {
        self.inner.truncate(log, offset).await
    }
    async fn delete_segment(&self, log: LogId, segment: SegmentId) -> MetaResult<()> {
        self.inner.delete_segment(log, segment).await
    }
    async fn watch_segments(&self, log: LogId) -> MetaResult<SegmentWatch> {
        self.inner.watch_segments(log).await
    }
    async fn watch_epoch(&self, log: LogId) -> MetaResult<EpochWatch> {
        self.inner.watch_epoch(log).await
    }
}

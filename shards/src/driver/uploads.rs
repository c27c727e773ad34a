//! The driver's uploads: starting them, applying their results in order
//! (acknowledgements, seals), and the epoch watch that reports a fence.

use super::*;

/// Upload results, pushed by upload tasks, and the epoch watch's news,
/// drained by the driver.
#[derive(Default)]
pub(super) struct Completions {
    /// Sequence number, outcome, and the fragment's bytes when it succeeded.
    pub(super) done: RefCell<VecDeque<(u64, Result<Bytes>)>>,
    /// The log's epoch, once the watch saw it pass this writer's.
    pub(super) fenced_by: Cell<Option<u64>>,
    pub(super) waker: RefCell<Option<Waker>>,
}

impl Completions {
    pub(super) fn push(&self, seq: u64, outcome: Result<Bytes>) {
        self.done.borrow_mut().push_back((seq, outcome));
        self.wake();
    }

    pub(super) fn fence(&self, epoch: u64) {
        self.fenced_by.set(Some(epoch));
        self.wake();
    }

    pub(super) fn wake(&self) {
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    pub(super) fn is_ready(&self) -> bool {
        !self.done.borrow().is_empty() || self.fenced_by.get().is_some()
    }
}

/// Watches the log's epoch until it passes `epoch` (another writer opened
/// the log), then tells the driver, so a writer learns of its fence without
/// uploading. Re-establishes a broken watch with backoff; the driver drops
/// the task when it ends.
pub(super) async fn watch_fence(
    meta: Arc<dyn MetaStore>,
    log: LogId,
    epoch: u64,
    news: Rc<Completions>,
) {
    let mut backoff = FENCE_WATCH_RETRY_MIN;
    loop {
        match meta.watch_epoch(log).await {
            Ok(mut watch) => match watch.above(epoch).await {
                Ok(current) => return news.fence(current),
                Err(err) => tracing::warn!(log, error = %err, "epoch watch ended; re-watching"),
            },
            Err(err) => tracing::warn!(log, error = %err, "cannot watch the epoch; retrying"),
        }
        glommio::timer::sleep(backoff).await;
        backoff = (backoff * 2).min(FENCE_WATCH_RETRY_MAX);
    }
}

impl LogDriver {
    pub(super) fn start_uploads(&mut self) {
        if self.failed.is_some() {
            return;
        }
        let max = self.config().uploads_in_flight_max;
        for pending in self.pipeline.iter_mut() {
            if self.uploads_in_flight >= max {
                break;
            }
            let Some(data) = pending.data.take() else {
                continue;
            };
            self.uploads_in_flight += 1;
            if let Some(profile) = pending.profile.as_mut() {
                profile.started = Some(Instant::now());
            }
            let store = self.services.store.clone();
            let config = self.services.config.clone();
            let completions = self.completions.clone();
            let stats = self.services.stats.clone();
            let key = pending.key.clone();
            let seq = pending.seq;
            let crc32c = pending.crc32c;
            glommio::spawn_local(async move {
                let len = data.len() as u64;
                let started = std::time::Instant::now();
                let outcome =
                    upload_fragment(&*store, &config, &stats, &key, data.clone(), crc32c).await;
                if outcome.is_ok() {
                    stats.fragments_uploaded.fetch_add(1, Ordering::Relaxed);
                    stats.bytes_uploaded.fetch_add(len, Ordering::Relaxed);
                    let took = started.elapsed();
                    let micros = took.as_micros() as u64;
                    stats.upload_micros.fetch_add(micros, Ordering::Relaxed);
                    stats.upload_micros_max.fetch_max(micros, Ordering::Relaxed);
                    stats.histograms.upload_seconds.observe(took.as_secs_f64());
                }
                completions.push(seq, outcome.map(|()| data));
            })
            .detach();
        }
    }

    /// Applies upload results and acknowledges, in order, every fragment
    /// at the front of the pipeline that is durable.
    pub(super) async fn drain_completions(&mut self) {
        if let Some(current) = self.completions.fenced_by.take() {
            self.fenced(current);
        }
        loop {
            let Some((seq, outcome)) = self.completions.done.borrow_mut().pop_front() else {
                break;
            };
            self.uploads_in_flight -= 1;
            if let Some(pending) = self.pipeline.iter_mut().find(|p| p.seq == seq) {
                pending.outcome = Some(outcome);
                if let Some(profile) = pending.profile.as_mut() {
                    profile.durable = Some(Instant::now());
                }
            }
        }
        // Refill the freed upload slots before acknowledging (thousands of
        // acks per fragment) and before the next ingest turn.
        self.start_uploads();
        while self.pipeline.front().is_some_and(|p| p.outcome.is_some()) {
            let pending = self.pipeline.pop_front().expect("checked");
            let outcome = pending.outcome.expect("checked");
            let data = match outcome {
                Ok(data) => data,
                Err(err) => {
                    for ack in pending.acks {
                        ack.complete(&Err(err.clone()));
                    }
                    self.fail(err);
                    continue;
                }
            };
            if let Some(err) = self.failed_sent.clone() {
                // Durable, but behind a failed fragment: never acknowledged,
                // yet visible after recovery if that fragment landed after all.
                for ack in pending.acks {
                    ack.complete(&Err(err.clone()));
                }
                continue;
            }
            assert!(
                pending.end_offset >= self.durable.durable.load(Ordering::Acquire),
                "acknowledgements go forward"
            );
            let store = &self.services.store;
            self.durable.publish(|| crate::reader::RecentFragment {
                segment: pending.segment_id,
                index: pending.fragment_index,
                key: pending.key.clone(),
                // The fragment cache's copy if it kept one (it does for a
                // log read on this shard), else a copy: the pooled buffer
                // must go back to the pool.
                bytes: store
                    .cached(&pending.key)
                    .unwrap_or_else(|| Bytes::copy_from_slice(&data)),
            });
            drop(data);
            let acked = pending.end_offset - self.durable.durable.load(Ordering::Acquire);
            let stats = &self.services.stats;
            stats.acks.fetch_add(acked, Ordering::Relaxed);
            stats
                .histograms
                .ack_seconds
                .observe(pending.opened_at.elapsed().as_secs_f64());
            if let Some(profile) = pending.profile.as_deref() {
                let acked = Instant::now();
                let times = crate::profile::FragmentTimes {
                    closed: profile.closed,
                    started: profile.started.unwrap_or(acked),
                    durable: profile.durable.unwrap_or(acked),
                    acked,
                };
                stats.profiler.record(&profile.stamps, times);
            }
            self.durable.advance(pending.end_offset);
            self.expect_returns(acked as usize, pending.opened_at.elapsed());
            let mut acks = pending.acks;
            for ack in acks.drain(..) {
                ack.complete(&Ok(()));
            }
            if self.spare_acks.len() < SPARE_ACK_LISTS_MAX {
                self.spare_acks.push(acks);
            }
            if let Some(seal) = pending.seal.filter(|_| self.failed.is_none()) {
                self.seal(pending.segment_id, seal).await;
            }
        }
    }

    pub(super) async fn seal(&mut self, segment: SegmentId, seal: SealInfo) {
        let result = crate::upload::seal_segment(
            &*self.services.meta,
            &self.services.config,
            self.log,
            self.epoch,
            segment,
            seal,
        )
        .await;
        match result {
            Ok(()) => {
                tracing::debug!(
                    log = self.log,
                    segment,
                    end_offset = seal.end_offset,
                    "segment sealed"
                );
                self.services
                    .stats
                    .segment_seals
                    .fetch_add(1, Ordering::Relaxed);
                self.last_sealed = Some(segment);
            }
            Err(err) => self.fail(err),
        }
    }
}

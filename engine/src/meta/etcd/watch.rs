//! Watches that outlive a broken stream. An etcd restart, a leader change
//! or a partition (found by the connection's HTTP/2 keep-alive) breaks a
//! watch stream; the follower re-establishes it from the revision after the
//! last one it saw, with backoff, until the watching side goes away.

use super::{parse_u64, unavailable, EtcdMeta, Job};
use crate::meta::{MetaError, MetaResult};
use etcd_client::{Client, WatchOptions, WatchResponse, WatchStream};
use std::time::Duration;

/// Backoff between attempts to re-establish a broken watch.
const WATCH_RETRY_MIN: Duration = Duration::from_millis(50);
const WATCH_RETRY_MAX: Duration = Duration::from_secs(2);

/// Who a watch reports to.
pub(super) enum Follower {
    /// Wakes a segment watch on any change under a prefix; after a break
    /// it wakes it too (events may have been missed, and the reader's
    /// check-then-wait loop re-reads the records).
    Segments(tokio::sync::mpsc::Sender<()>),
    /// Carries the newest value of an epoch key; the key is read again
    /// before every (re)start, so a missed bump is never lost.
    Epoch(tokio::sync::watch::Sender<u64>),
}

impl Follower {
    async fn closed(&self) {
        match self {
            Follower::Segments(tx) => tx.closed().await,
            Follower::Epoch(tx) => tx.closed().await,
        }
    }

    fn options(&self) -> WatchOptions {
        match self {
            Follower::Segments(_) => WatchOptions::new().with_prefix(),
            Follower::Epoch(_) => WatchOptions::new(),
        }
    }

    /// Catches up before a (re)start; returns the revision to watch from.
    async fn catch_up(
        &self,
        client: &Client,
        key: &str,
        next_revision: Option<i64>,
    ) -> MetaResult<Option<i64>> {
        match self {
            Follower::Segments(tx) => {
                let _ = tx.try_send(());
                Ok(next_revision)
            }
            Follower::Epoch(_) => {
                let response = client
                    .kv_client()
                    .get(key, None)
                    .await
                    .map_err(unavailable)?;
                if let Some(item) = response.kvs().first() {
                    self.epoch_seen(parse_u64(key, item.value())?);
                }
                Ok(response.header().map(|h| h.revision() + 1))
            }
        }
    }

    fn epoch_seen(&self, epoch: u64) {
        if let Follower::Epoch(tx) = self {
            tx.send_if_modified(|current| {
                let newer = epoch > *current;
                if newer {
                    *current = epoch;
                }
                newer
            });
        }
    }

    fn changed(&self, key: &str, response: &WatchResponse) {
        match self {
            Follower::Segments(tx) => {
                if !response.events().is_empty() {
                    let _ = tx.try_send(());
                }
            }
            Follower::Epoch(_) => {
                // A deleted key (the log is gone) carries no value to parse.
                for event in response.events() {
                    if let Some(Ok(epoch)) = event.kv().map(|kv| parse_u64(key, kv.value())) {
                        self.epoch_seen(epoch);
                    }
                }
            }
        }
    }
}

async fn start(
    client: &Client,
    key: &str,
    follower: &Follower,
    next_revision: Option<i64>,
) -> MetaResult<WatchStream> {
    let mut options = follower.options();
    if let Some(revision) = follower.catch_up(client, key, next_revision).await? {
        options = options.with_start_revision(revision);
    }
    client
        .watch_client()
        .watch(key, Some(options))
        .await
        .map_err(unavailable)
}

impl EtcdMeta {
    /// Watches `key` for `follower` on the control thread. Returns once
    /// the first watch is established (its failure is the caller's); later
    /// breaks are repaired in the background until `follower`'s receiving
    /// side is dropped, which ends the watch.
    pub(super) async fn follow(&self, key: String, follower: Follower) -> MetaResult<()> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let timeout = self.request_timeout;
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                let mut ready = Some(ready_tx);
                let mut next_revision: Option<i64> = None;
                let mut backoff = WATCH_RETRY_MIN;
                loop {
                    let started = tokio::time::timeout(
                        timeout,
                        start(&client, &key, &follower, next_revision),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        Err(MetaError::Unavailable("etcd watch timed out".to_string()))
                    });
                    match started {
                        Ok(mut stream) => {
                            match ready.take() {
                                Some(ready) => {
                                    let _ = ready.send(Ok(()));
                                }
                                None => tracing::info!(key, "etcd watch resumed"),
                            }
                            loop {
                                tokio::select! {
                                    _ = follower.closed() => return,
                                    message = stream.message() => match message {
                                        Ok(Some(response)) if response.canceled() => {
                                            // E.g. the start revision was compacted.
                                            next_revision = None;
                                            break;
                                        }
                                        Ok(Some(response)) => {
                                            if let Some(header) = response.header() {
                                                next_revision = Some(header.revision() + 1);
                                            }
                                            follower.changed(&key, &response);
                                            backoff = WATCH_RETRY_MIN;
                                        }
                                        _ => break,
                                    },
                                }
                            }
                            tracing::warn!(key, "etcd watch broken; re-establishing it");
                        }
                        Err(e) => {
                            if let Some(ready) = ready.take() {
                                let _ = ready.send(Err(e));
                                return;
                            }
                            tracing::warn!(key, error = %e, "etcd watch broken; retrying");
                            // The revision may be compacted away: watch from
                            // now (every follower catches up first).
                            next_revision = None;
                        }
                    }
                    tokio::select! {
                        _ = follower.closed() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(WATCH_RETRY_MAX);
                }
            })
        });
        self.submit(job).await?;
        ready_rx
            .await
            .map_err(|_| MetaError::Unavailable("etcd watch dropped".to_string()))?
    }
}

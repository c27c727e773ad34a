//! The writer's calls that leave the shard, with their one retry policy:
//! fragment uploads and segment create/seal in metadata. Each call retries
//! transient failures with capped, jittered backoff, within a total
//! deadline (`upload_deadline_ms`, `metadata_deadline_ms`) that bounds
//! every attempt and the store's own retries together, so a fragment can
//! never hang a writer for longer than its deadline. The error says which
//! deadline ran out and whether the call may have taken effect.

use crate::config::Config;
use crate::stats::Stats;
use bytes::Bytes;
use futures::future::{select, Either};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use woodpecker_engine::format::marker::decode_fence_marker;
use woodpecker_engine::meta::{
    LogId, MetaError, MetaResult, MetaStore, SealInfo, SegmentId, SegmentInfo, SegmentState,
};
use woodpecker_engine::store::{ObjectStore, StoreError};
use woodpecker_engine::{Error, ErrorKind, Result};

/// Backoff of metadata retries while etcd is unavailable.
const METADATA_BACKOFF_INITIAL_MS: u64 = 50;
const METADATA_BACKOFF_MAX_MS: u64 = 2_000;

/// Sleep before retry `attempt` (0-based): exponential from `initial_ms`,
/// capped at `max_ms`, jittered to between half and all of it.
fn backoff(initial_ms: u64, max_ms: u64, attempt: u32) -> Duration {
    let full = initial_ms
        .saturating_mul(1 << attempt.min(16))
        .min(max_ms)
        .max(1);
    Duration::from_millis(fastrand::u64(full / 2..=full))
}

/// Runs `call`, or gives `None` once `deadline` passes (the call is dropped,
/// which cancels it).
async fn before<T>(deadline: Instant, call: impl Future<Output = T>) -> Option<T> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    let call = std::pin::pin!(call);
    let timer = std::pin::pin!(glommio::timer::sleep(remaining));
    match select(call, timer).await {
        Either::Left((value, _)) => Some(value),
        Either::Right(_) => None,
    }
}

/// Uploads one fragment with put-if-absent (multipart above the
/// threshold), retrying transient failures until `upload_retries_max`
/// retries or `upload_deadline_ms` in all.
///
/// If the key is already taken: by our own bytes (an earlier attempt whose
/// reply was lost), that is success; by a fence marker or anything else,
/// another writer has taken over and this one is `Fenced`. Giving up after
/// an attempt that may have reached the store is `OutcomeUnknown` (the
/// bytes may be there); a definite refusal is `WriterFailed`.
pub(crate) async fn upload_fragment(
    store: &dyn ObjectStore,
    config: &Config,
    stats: &Stats,
    key: &str,
    data: Bytes,
    crc32c: u32,
) -> Result<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_millis(config.upload_deadline_ms);
    let mut attempt = 0u32;
    // Whether some attempt ended without a definite answer.
    let mut ambiguous = false;
    loop {
        let put = async {
            if data.len() > config.multipart_threshold_bytes {
                woodpecker_engine::store::put_multipart_if_absent(
                    store,
                    key,
                    data.clone(),
                    config.multipart_part_bytes,
                    config.multipart_parallel_max,
                )
                .await
            } else {
                store
                    .put_if_absent_with_crc32c(key, data.clone(), crc32c)
                    .await
            }
        };
        let outcome = before(deadline, put).await;
        let err = match outcome {
            Some(Ok(())) => return Ok(()),
            Some(Err(StoreError::AlreadyExists(_))) => {
                return match before(deadline, store.get(key)).await {
                    Some(Ok(existing)) if existing == data => Ok(()),
                    Some(Ok(existing)) => Err(Error::new(
                        ErrorKind::Fenced,
                        match decode_fence_marker(&existing) {
                            Some(epoch) => {
                                format!("{key} was fenced by the writer of epoch {epoch}")
                            }
                            None => format!("{key} was written by another writer"),
                        },
                    )),
                    // Our bytes or another writer's: unknown.
                    Some(Err(err)) => Err(gave_up(key, started, attempt, true, &err.into())),
                    None => Err(gave_up(
                        key,
                        started,
                        attempt,
                        true,
                        &deadline_passed(config),
                    )),
                };
            }
            Some(Err(err)) => err,
            None => {
                return Err(gave_up(
                    key,
                    started,
                    attempt,
                    true,
                    &deadline_passed(config),
                ));
            }
        };
        ambiguous |= err.is_retriable();
        let retry_at = Instant::now()
            + backoff(
                config.upload_backoff_initial_ms,
                config.upload_backoff_max_ms,
                attempt,
            );
        if !err.is_retriable() || attempt >= config.upload_retries_max || retry_at >= deadline {
            return Err(gave_up(key, started, attempt, ambiguous, &err.into()));
        }
        stats.upload_retries.fetch_add(1, Ordering::Relaxed);
        stats
            .histograms
            .upload_retries
            .with_label_values(&[crate::metered::retry_cause(&err)])
            .inc();
        glommio::timer::sleep(retry_at.saturating_duration_since(Instant::now())).await;
        attempt += 1;
    }
}

fn deadline_passed(config: &Config) -> Error {
    Error::new(
        ErrorKind::Unavailable,
        format!(
            "the upload deadline of {} ms passed (upload_deadline_ms)",
            config.upload_deadline_ms
        ),
    )
}

fn gave_up(key: &str, started: Instant, attempt: u32, ambiguous: bool, cause: &Error) -> Error {
    let kind = if ambiguous {
        ErrorKind::OutcomeUnknown
    } else {
        ErrorKind::WriterFailed
    };
    Error::new(
        kind,
        format!(
            "uploading {key} failed after {} attempts in {} ms: {cause}",
            attempt + 1,
            started.elapsed().as_millis()
        ),
    )
}

/// Retries a metadata call while etcd is unavailable, until
/// `metadata_deadline_ms`. `settled` decides, after a failure that may
/// have taken effect, whether the call's effect is already there (an
/// earlier attempt succeeded though its reply was lost).
async fn with_meta_retries<T, F, Fut>(config: &Config, what: &str, mut call: F) -> Result<T>
where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = MetaResult<T>>,
{
    let started = Instant::now();
    let deadline = started + Duration::from_millis(config.metadata_deadline_ms);
    let mut attempt = 0u32;
    loop {
        let err = match before(deadline, call(attempt > 0)).await {
            Some(Ok(value)) => return Ok(value),
            Some(Err(MetaError::Unavailable(detail))) => detail,
            Some(Err(err)) => return Err(err.into()),
            None => "the call did not finish".to_string(),
        };
        let retry_at = Instant::now()
            + backoff(
                METADATA_BACKOFF_INITIAL_MS,
                METADATA_BACKOFF_MAX_MS,
                attempt,
            );
        if retry_at >= deadline {
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "{what}: metadata unavailable for {} ms, past metadata_deadline_ms ({} ms; {} attempts): {err}",
                    started.elapsed().as_millis(),
                    config.metadata_deadline_ms,
                    attempt + 1
                ),
            ));
        }
        tracing::warn!(what, attempt, error = %err, "metadata unavailable; retrying");
        glommio::timer::sleep(retry_at.saturating_duration_since(Instant::now())).await;
        attempt += 1;
    }
}

/// Creates `segment`, retrying while etcd is unavailable; an
/// `AlreadyExists` after a failed attempt is success if the record is ours.
pub(crate) async fn create_segment(
    meta: &dyn MetaStore,
    config: &Config,
    log: LogId,
    epoch: u64,
    segment: &SegmentInfo,
) -> Result<()> {
    let what = format!("creating segment {} of log {log}", segment.id);
    with_meta_retries(config, &what, |retried| async move {
        match meta.create_segment(log, epoch, segment).await {
            Err(MetaError::AlreadyExists(detail)) if retried => {
                let ours = find_segment(meta, log, segment.id)
                    .await?
                    .is_some_and(|s| s.epoch == epoch && s.first_offset == segment.first_offset);
                if ours {
                    Ok(())
                } else {
                    Err(MetaError::AlreadyExists(detail))
                }
            }
            other => other,
        }
    })
    .await
}

/// Seals `segment`, retrying while etcd is unavailable; a `Conflict`
/// (already sealed) after a failed attempt is success if the seal is ours.
pub(crate) async fn seal_segment(
    meta: &dyn MetaStore,
    config: &Config,
    log: LogId,
    epoch: u64,
    segment: SegmentId,
    seal: SealInfo,
) -> Result<()> {
    let what = format!("sealing segment {segment} of log {log}");
    with_meta_retries(config, &what, |retried| async move {
        match meta.seal_segment(log, epoch, segment, seal).await {
            Ok(_) => Ok(()),
            Err(MetaError::Conflict(detail)) if retried => {
                let ours = find_segment(meta, log, segment).await?.is_some_and(|s| {
                    s.state == SegmentState::Sealed
                        && s.end_offset == seal.end_offset
                        && s.fragment_count == seal.fragment_count
                        && s.bytes == seal.bytes
                });
                if ours {
                    Ok(())
                } else {
                    Err(MetaError::Conflict(detail))
                }
            }
            Err(err) => Err(err),
        }
    })
    .await
}

async fn find_segment(
    meta: &dyn MetaStore,
    log: LogId,
    segment: SegmentId,
) -> MetaResult<Option<SegmentInfo>> {
    let segments = meta.list_segments(log).await?;
    Ok(segments.into_iter().find(|s| s.id == segment))
}

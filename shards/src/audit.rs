//! The retention auditor: one task per shard deletes segments wholly below
//! their log's truncation point, objects first and then the record, once
//! they have been seen there for `retention_ms`. It never touches a segment
//! that reaches the truncation point (the metadata layer re-checks that in
//! the same atomic step as the deletion).

use crate::driver::ShardServices;
use crate::shard_of;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use woodpecker_engine::meta::{LogId, SegmentId, SegmentState};
use woodpecker_engine::store::list_all;
use woodpecker_engine::Result;

type FirstSeen = HashMap<(LogId, SegmentId), Instant>;

pub(crate) fn spawn_auditor(
    services: ShardServices,
    shard: usize,
    shards: usize,
) -> glommio::task::JoinHandle<()> {
    glommio::spawn_local(async move {
        let interval = Duration::from_millis(services.config.audit_interval_ms);
        let mut seen = FirstSeen::new();
        loop {
            glommio::timer::sleep(interval).await;
            let pass = crate::catch_panic(audit_pass(&services, shard, shards, Some(&mut seen)));
            match pass.await {
                Ok(Ok(_)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(shard, error = %err, "retention audit failed; will retry")
                }
                Err(panic) => tracing::error!(shard, panic, "retention audit panicked; will retry"),
            }
        }
    })
    .detach()
}

/// One pass over the logs this shard owns; with `seen`, a segment is
/// deleted only once it was first seen deletable `retention_ms` ago, without
/// it at once. Returns how many segments were deleted.
pub(crate) async fn audit_pass(
    services: &ShardServices,
    shard: usize,
    shards: usize,
    mut seen: Option<&mut FirstSeen>,
) -> Result<usize> {
    let retention = Duration::from_millis(services.config.retention_ms);
    let mut deleted = 0;
    // Segments deletable in this pass; what was seen before and is gone by
    // now (log deleted, segment deleted elsewhere) is forgotten.
    let mut deletable_now = HashSet::new();
    for log in services.meta.list_logs().await? {
        if shard_of(log.id, shards) != shard {
            continue;
        }
        for segment in services.meta.list_segments(log.id).await? {
            let deletable =
                segment.state == SegmentState::Sealed && segment.end_offset <= log.truncated_below;
            if !deletable {
                continue;
            }
            deletable_now.insert((log.id, segment.id));
            if let Some(seen) = seen.as_deref_mut() {
                let first = *seen
                    .entry((log.id, segment.id))
                    .or_insert_with(Instant::now);
                if first.elapsed() < retention {
                    continue;
                }
            }
            let prefix = services.layout.segment_prefix(log.id, segment.id);
            for object in list_all(&*services.store, &prefix).await? {
                services.store.delete(&object.key).await?;
            }
            services.meta.delete_segment(log.id, segment.id).await?;
            services
                .stats
                .segments_deleted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(seen) = seen.as_deref_mut() {
                seen.remove(&(log.id, segment.id));
            }
            deleted += 1;
        }
    }
    if let Some(seen) = seen {
        seen.retain(|key, _| deletable_now.contains(key));
    }
    Ok(deleted)
}

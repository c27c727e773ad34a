//! Tail latency: from an append's acknowledgement to a tailing reader
//! seeing the entry, for any writer and reader (embedded or remote).

use super::ReadArgs;
use crate::latency::{self, LatencyMs};
use crate::BenchError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Appends with `append` at `tail_rate` for `duration_s` while `next`
/// (the tailing reader, on a thread of its own: the offset of the next
/// entry it sees) reads from `base`; acknowledgement-to-seen latency.
pub(super) fn latency(
    base: u64,
    args: &ReadArgs,
    mut next: impl FnMut() -> woodpecker_engine::Result<u64> + Send + 'static,
    mut append: impl FnMut() -> woodpecker_engine::Result<()>,
) -> Result<LatencyMs, BenchError> {
    let count = ((args.tail_rate * args.duration_s as f64) as usize).max(1);
    let epoch = Instant::now();
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
    let reader_acked = acked.clone();
    let seen = std::thread::spawn(move || {
        let mut histogram = latency::histogram();
        for i in 0..count {
            let offset = next().map_err(|e| BenchError::Failed(format!("tail: {e}")))?;
            let seen_at = epoch.elapsed();
            if offset != base + i as u64 {
                return Err(BenchError::Failed(format!(
                    "tail saw {offset} for {}",
                    base + i as u64
                )));
            }
            // The ack may be observed after the reader saw the entry.
            let deadline = Instant::now() + Duration::from_secs(10);
            let ack_nanos = loop {
                let nanos = reader_acked[i].load(Ordering::Acquire);
                if nanos > 0 || Instant::now() > deadline {
                    break nanos;
                }
                std::thread::yield_now();
            };
            let ack = Duration::from_nanos(ack_nanos);
            latency::record(&mut histogram, seen_at.saturating_sub(ack));
        }
        Ok(histogram)
    });
    let interval = Duration::from_secs_f64(1.0 / args.tail_rate);
    for (i, slot) in acked.iter().enumerate() {
        let due = epoch + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        append().map_err(|e| BenchError::Failed(format!("append: {e}")))?;
        slot.store(
            (epoch.elapsed().as_nanos() as u64).max(1),
            Ordering::Release,
        );
    }
    let histogram = seen
        .join()
        .map_err(|_| BenchError::Failed("tail reader panicked".into()))??;
    Ok(LatencyMs::from_histogram(&histogram))
}

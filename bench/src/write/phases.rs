//! What runs beside the engine phases: the raw PUT phases of the baseline,
//! and the --keep-mb truncator.

use super::*;

/// The --keep-mb consumer: truncates every log to about `keep_mb` below
/// its durable end every [`TRUNCATE_INTERVAL`].
pub(super) struct Truncator {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Result<(), BenchError>>,
}

impl Truncator {
    pub(super) fn start(
        client: Client,
        writers: Vec<Arc<LogWriter>>,
        keep_mb: u64,
        entry_bytes: usize,
    ) -> Self {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let keep_entries = (keep_mb * 1_000_000).div_ceil(entry_bytes.max(1) as u64);
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(TRUNCATE_INTERVAL);
                for (i, writer) in writers.iter().enumerate() {
                    let Some(below) = writer.durable_offset().checked_sub(keep_entries) else {
                        continue;
                    };
                    block_on(client.truncate(&log_name(i), below))
                        .map_err(|e| BenchError::Failed(format!("truncating: {e}")))?;
                }
            }
            Ok(())
        });
        Truncator { stop, thread }
    }

    /// Stops truncating (the auditor deletes segments on its own; the
    /// client's stats count them).
    pub(super) fn stop(self) -> Result<(), BenchError> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| BenchError::Failed("the truncator panicked".into()))?
    }
}

/// The latency summary of every phase's PUTs together.
pub(super) fn merged_histogram<'h>(
    phases: impl Iterator<Item = &'h Histogram<u64>>,
) -> Option<Histogram<u64>> {
    let mut merged: Option<Histogram<u64>> = None;
    for phase in phases {
        match merged.as_mut() {
            Some(all) => all.add(phase).expect("same bounds"),
            None => merged = Some(phase.clone()),
        }
    }
    merged
}

/// [`raw_puts`] and the client CPU seconds it took per GB put.
pub(super) fn timed_raw_puts(
    factory: StoreFactory,
    object_bytes: usize,
    inflight: usize,
    duration: Duration,
) -> Result<(raw::PhaseReport, f64), BenchError> {
    let cpu_started = crate::process_cpu_seconds();
    let report = raw_puts(factory, object_bytes, inflight, duration)?;
    let cpu = crate::process_cpu_seconds() - cpu_started;
    let cpu_s_per_gb = cpu / (report.bytes as f64 / 1e9).max(1e-9);
    Ok((report, cpu_s_per_gb))
}

/// Raw PUTs of `object_bytes` objects, `inflight` at a time, on one shard.
fn raw_puts(
    factory: StoreFactory,
    object_bytes: usize,
    inflight: usize,
    duration: Duration,
) -> Result<raw::PhaseReport, BenchError> {
    let core = woodpecker_shards::available_cores().first().copied();
    let shard = woodpecker_shards::spawn_shard("bench-raw-put", core, false, move || async move {
        let store = factory.open()?;
        let data = Bytes::from(raw::pattern(object_bytes));
        let prefix = format!("bench-raw/{:016x}", raw::fastrand_u64());
        let limits = Limits {
            objects: usize::MAX,
            duration,
            inflight,
        };
        let report = raw::put_phase(&store, &prefix, &data, &limits, false).await?;
        raw::delete_phase(&store, &prefix, report.objects).await?;
        Ok::<_, BenchError>(report)
    })
    .map_err(|e| BenchError::Failed(e.to_string()))?;
    shard
        .join()
        .map_err(|e| BenchError::Failed(e.to_string()))?
}

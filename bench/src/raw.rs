//! `bench raw`: the object store's own PUT and GET throughput and latency,
//! with no engine in between: the baseline every engine figure is divided by.
//!
//! For each in-flight level, PUT up to `objects` objects of `object_bytes`
//! with that many requests in flight (stopping early at `duration_s`), then
//! GET them back with the same parallelism, check their length, and delete
//! them. Runs on one pinned shard, as the engine does.

use crate::latency::{self, LatencyMs};
use crate::BenchError;
use bytes::Bytes;
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};
use woodpecker_engine::store::ObjectStore;
use woodpecker_tuning::{Loaded, StoreFactory, StoreKind};

#[derive(Debug, Clone, clap::Args)]
pub struct RawArgs {
    #[command(flatten)]
    pub target: crate::StoreArgs,
    /// Size of each object.
    #[arg(long, default_value_t = 8 << 20)]
    pub object_bytes: usize,
    /// Requests in flight; one run per comma-separated value.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub inflight: Vec<usize>,
    /// Objects per run, at most.
    #[arg(long, default_value_t = 64)]
    pub objects: usize,
    /// Seconds per phase, at most.
    #[arg(long, default_value_t = 20)]
    pub duration_s: u64,
    /// PUT as the engine does: If-None-Match (put-if-absent) with an
    /// x-amz-checksum-crc32c the server verifies.
    #[arg(long)]
    pub conditional: bool,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Throughput and latency of one phase. MB = 10^6 bytes.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub objects: usize,
    pub bytes: u64,
    pub seconds: f64,
    pub mb_s: f64,
    pub ops_s: f64,
    pub latency_ms: LatencyMs,
    /// The latencies themselves, to merge phases.
    #[serde(skip)]
    pub histogram: hdrhistogram::Histogram<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LevelReport {
    pub inflight: usize,
    pub put: PhaseReport,
    pub get: PhaseReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct RawReport {
    pub store: String,
    pub object_bytes: usize,
    pub levels: Vec<LevelReport>,
}

impl RawArgs {
    fn validate(&self) -> Result<(), BenchError> {
        if self.object_bytes == 0 || self.objects == 0 || self.duration_s == 0 {
            return Err(BenchError::Invalid(
                "--object-bytes, --objects and --duration-s must be positive".into(),
            ));
        }
        if self.inflight.is_empty() || self.inflight.contains(&0) {
            return Err(BenchError::Invalid(
                "--inflight values must be positive".into(),
            ));
        }
        Ok(())
    }
}

pub fn run(args: RawArgs, loaded: &Loaded) -> Result<RawReport, BenchError> {
    args.validate()?;
    let (factory, temp_dir) = bench_store(loaded)?;
    let core = woodpecker_shards::available_cores().first().copied();
    let shard = woodpecker_shards::spawn_shard("bench-raw", core, false, move || async move {
        let store = factory.open()?;
        let data = Bytes::from(pattern(args.object_bytes));
        let run_id = format!("bench-raw/{:016x}", fastrand_u64());
        let mut levels = Vec::new();
        for &inflight in &args.inflight {
            let prefix = format!("{run_id}/{inflight}");
            let limits = Limits {
                objects: args.objects,
                duration: Duration::from_secs(args.duration_s),
                inflight,
            };
            let put = put_phase(&store, &prefix, &data, &limits, args.conditional).await?;
            let get = get_phase(&store, &prefix, put.objects, &limits, data.len()).await?;
            delete_phase(&store, &prefix, put.objects).await?;
            levels.push(LevelReport { inflight, put, get });
        }
        Ok::<_, BenchError>(RawReport {
            store: factory.config().kind().to_string(),
            object_bytes: args.object_bytes,
            levels,
        })
    })
    .map_err(|e| BenchError::Failed(e.to_string()))?;
    let report = shard
        .join()
        .map_err(|e| BenchError::Failed(e.to_string()))?;
    if let Some(dir) = temp_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    report
}

pub(crate) struct Limits {
    pub objects: usize,
    pub duration: Duration,
    pub inflight: usize,
}

pub(crate) fn key(prefix: &str, i: usize) -> String {
    format!("{prefix}/{i:08}")
}

pub(crate) fn pattern(len: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

pub(crate) fn fastrand_u64() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (std::process::id() as u64).rotate_left(32)
}

/// The configured store a benchmark runs on, and the temporary directory
/// to remove afterwards (a local store whose directory nobody configured).
pub(crate) fn bench_store(loaded: &Loaded) -> Result<(StoreFactory, Option<PathBuf>), BenchError> {
    let temp_dir =
        if loaded.settings.store.kind == StoreKind::Local && loaded.is_default("store.local_dir") {
            Some(tempdir()?)
        } else {
            None
        };
    let config = loaded
        .settings
        .store_config(temp_dir.clone())
        .map_err(|e| BenchError::Invalid(format!("store: {e}")))?;
    Ok((StoreFactory::new(config)?, temp_dir))
}

pub(crate) fn tempdir() -> Result<PathBuf, BenchError> {
    let dir = std::env::temp_dir().join(format!("woodpecker-bench-{:016x}", fastrand_u64()));
    std::fs::create_dir_all(&dir)
        .map_err(|e| BenchError::Invalid(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Runs `op(i)` for i = 0, 1, ... with `inflight` in flight, until
/// `objects` were started or `duration` passed; returns how many completed.
pub(crate) async fn drive<F, Fut>(
    limits: &Limits,
    total: usize,
    op: F,
) -> Result<PhaseReport, BenchError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<u64, BenchError>>,
{
    let next = Cell::new(0usize);
    let histogram = RefCell::new(latency::histogram());
    let bytes = Cell::new(0u64);
    let done = Cell::new(0usize);
    let started = Instant::now();
    let worker = || async {
        loop {
            let i = next.get();
            if i >= total || started.elapsed() >= limits.duration {
                return Ok::<(), BenchError>(());
            }
            next.set(i + 1);
            let t0 = Instant::now();
            let n = op(i).await?;
            latency::record(&mut histogram.borrow_mut(), t0.elapsed());
            bytes.set(bytes.get() + n);
            done.set(done.get() + 1);
        }
    };
    let workers = (0..limits.inflight).map(|_| worker());
    for result in futures::future::join_all(workers).await {
        result?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let histogram = histogram.into_inner();
    Ok(PhaseReport {
        objects: done.get(),
        bytes: bytes.get(),
        seconds,
        mb_s: bytes.get() as f64 / 1e6 / seconds,
        ops_s: done.get() as f64 / seconds,
        latency_ms: LatencyMs::from_histogram(&histogram),
        histogram,
    })
}

/// PUTs `data` under numbered keys; `conditional` as the engine uploads
/// fragments (put-if-absent with the CRC32C checksum).
pub(crate) async fn put_phase(
    store: &Rc<dyn ObjectStore>,
    prefix: &str,
    data: &Bytes,
    limits: &Limits,
    conditional: bool,
) -> Result<PhaseReport, BenchError> {
    let crc = crc32c::crc32c(data);
    drive(limits, limits.objects, |i| async move {
        let key = key(prefix, i);
        if conditional {
            store
                .put_if_absent_with_crc32c(&key, data.clone(), crc)
                .await?;
        } else {
            store.put(&key, data.clone()).await?;
        }
        Ok(data.len() as u64)
    })
    .await
}

/// Deletions in flight when a phase's objects are cleaned up, and how
/// long the clean-up may take.
const DELETES_IN_FLIGHT: usize = 16;
const DELETE_LIMIT: Duration = Duration::from_secs(600);

/// Deletes the numbered keys `0..objects` under `prefix` (deleting a
/// missing key succeeds).
pub(crate) async fn delete_phase(
    store: &Rc<dyn ObjectStore>,
    prefix: &str,
    objects: usize,
) -> Result<(), BenchError> {
    let limits = Limits {
        objects,
        duration: DELETE_LIMIT,
        inflight: DELETES_IN_FLIGHT,
    };
    drive(&limits, objects, |i| async move {
        store.delete(&key(prefix, i)).await?;
        Ok(0)
    })
    .await
    .map(|_| ())
}

pub(crate) async fn get_phase(
    store: &Rc<dyn ObjectStore>,
    prefix: &str,
    objects: usize,
    limits: &Limits,
    expected_len: usize,
) -> Result<PhaseReport, BenchError> {
    let limits = Limits {
        objects,
        duration: limits.duration,
        inflight: limits.inflight,
    };
    drive(&limits, objects, |i| async move {
        let body = store.get(&key(prefix, i)).await?;
        if body.len() != expected_len {
            return Err(BenchError::Failed(format!(
                "object {i} came back with {} bytes, not {expected_len}",
                body.len()
            )));
        }
        Ok(body.len() as u64)
    })
    .await
}

pub fn print_table(report: &RawReport) {
    println!(
        "raw object-store throughput: store={} object={} bytes (MB = 10^6 bytes)",
        report.store, report.object_bytes
    );
    println!(
        "{:>8} {:>6} {:>10} {:>10} {:>10} | {:>6} {:>10} {:>10} {:>10}",
        "inflight", "puts", "PUT MB/s", "p50 ms", "p99 ms", "gets", "GET MB/s", "p50 ms", "p99 ms"
    );
    for level in &report.levels {
        println!(
            "{:>8} {:>6} {:>10.1} {:>10.2} {:>10.2} | {:>6} {:>10.1} {:>10.2} {:>10.2}",
            level.inflight,
            level.put.objects,
            level.put.mb_s,
            level.put.latency_ms.p50,
            level.put.latency_ms.p99,
            level.get.objects,
            level.get.mb_s,
            level.get.latency_ms.p50,
            level.get.latency_ms.p99,
        );
    }
}

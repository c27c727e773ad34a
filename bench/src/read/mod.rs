//! `bench read`: catch-up read throughput of a prepared log against raw
//! parallel GETs of the same objects in the same run (catch-up rounds
//! alternating with raw phases, raw first and last), and tail latency
//! (acknowledgement to the reader seeing the entry) for a reader in the
//! writer's client and for a reader in a second client, which polls the
//! store exactly as a reader in another process does.

use crate::latency::LatencyMs;
use crate::raw;
use crate::BenchError;
use bytes::Bytes;
use futures::stream::{self, StreamExt};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use woodpecker_engine::layout::Layout;
use woodpecker_engine::meta::memory::MemoryMeta;
use woodpecker_engine::meta::MetaStore;
use woodpecker_engine::store::StoreFactory;
use woodpecker_shards::{block_on, Client, Config, StartAt};
use woodpecker_tuning::Loaded;

mod service;
mod tail;

#[derive(Debug, Clone, clap::Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub target: crate::StoreArgs,
    #[command(flatten)]
    pub service: crate::service::ServiceArgs,
    /// With --target: concurrent readers of the log in the phases that
    /// alternate with one reader's (GETs per GB for each).
    #[arg(long, default_value_t = 4)]
    pub readers: usize,
    /// Payload bytes per entry.
    #[arg(long, default_value_t = 1024)]
    pub entry_bytes: usize,
    /// Megabytes (10^6 bytes) of payload written before the catch-up read.
    #[arg(long, default_value_t = 512)]
    pub prepare_mb: u64,
    /// Seconds of each tail-latency phase (and the catch-up limit).
    #[arg(long, default_value_t = 5)]
    pub duration_s: u64,
    /// Catch-up reads of the whole log, alternating with raw GET phases
    /// (raw first and last).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Entries per second appended during the tail phases.
    #[arg(long, default_value_t = 500.0)]
    pub tail_rate: f64,
    #[arg(long, default_value_t = 8 << 20)]
    pub fragment_bytes: usize,
    /// Fragment bytes a reader fetches ahead.
    #[arg(long, default_value_t = 64 << 20)]
    pub prefetch_bytes: usize,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    pub json: bool,
}

/// MB = 10^6 bytes of payload.
#[derive(Debug, Clone, Serialize)]
pub struct ReadReport {
    pub store: String,
    /// The server read through (`--target`); the catch-up figures are
    /// then the service's, there is no raw baseline, and the tail
    /// latencies are of a follower beside the writer and of a second
    /// client.
    pub target: Option<String>,
    /// Concurrent readers of the `_readers` figures (with --target).
    pub readers: usize,
    pub entry_bytes: usize,
    pub entries: u64,
    pub seconds: f64,
    pub throughput_mb_s: f64,
    /// Each catch-up round's throughput, in order.
    pub throughput_mb_s_rounds: Vec<f64>,
    /// With --target: all readers' bytes together per second, when
    /// `readers` read the log at once (mean over rounds, and each round).
    pub throughput_mb_s_readers: Option<f64>,
    pub throughput_mb_s_readers_rounds: Vec<f64>,
    /// With --target: object-store GETs the server made per GB of the log
    /// read, with one reader, and with `readers` concurrent readers
    /// (shared through its fragment cache, so about as many).
    pub gets_per_gb_one_reader: Option<f64>,
    pub gets_per_gb_readers: Option<f64>,
    pub fragments: usize,
    pub raw_get_mb_s: Option<f64>,
    /// Each raw GET phase in order (first and last, alternating with the
    /// catch-up rounds).
    pub raw_get_mb_s_phases: Vec<f64>,
    pub raw_get_inflight: usize,
    pub ratio_to_raw: Option<f64>,
    /// Client CPU seconds (all threads) per GB read during the catch-up.
    pub cpu_s_per_gb: f64,
    /// The same for the raw GETs (mean of the phases).
    pub raw_get_cpu_s_per_gb: Option<f64>,
    pub tail_latency_ms: LatencyMs,
    pub tail_latency_cross_ms: LatencyMs,
}

pub fn run(args: ReadArgs, loaded: &Loaded) -> Result<ReadReport, BenchError> {
    if args.entry_bytes == 0
        || args.rounds == 0
        || args.prepare_mb == 0
        || args.duration_s == 0
        || !args.tail_rate.is_finite()
        || args.tail_rate <= 0.0
    {
        return Err(BenchError::Invalid(
            "sizes, durations and rates must be positive".into(),
        ));
    }
    if let Some(remote) = args.service.client()? {
        return service::run(&args, remote, args.service.remote_config());
    }
    let (factory, temp_dir) = raw::bench_store(loaded)?;
    let config = Config {
        fragment_bytes_max: args.fragment_bytes,
        shard_buffer_bytes_max: 12 * args.fragment_bytes,
        reader_prefetch_bytes_max: args.prefetch_bytes,
        key_prefix: format!("bench-read-{:016x}", raw::fastrand_u64()),
        ..loaded.settings.engine.clone()
    };
    let meta: Arc<dyn MetaStore> = Arc::new(MemoryMeta::new());
    let client =
        Client::start(config.clone(), factory.clone(), meta.clone()).map_err(failed("client"))?;
    let second =
        Client::start(config.clone(), factory.clone(), meta.clone()).map_err(failed("client"))?;
    let name = "bench-read";
    block_on(client.create_log(name)).map_err(failed("create"))?;

    // Prepare.
    let entries = (args.prepare_mb * 1_000_000).div_ceil(args.entry_bytes as u64);
    let writer = block_on(client.open_writer(name)).map_err(failed("open writer"))?;
    append_all(args.entry_bytes, entries, 256, 256, |batch| {
        writer.append_batch(batch)
    })?;
    block_on(writer.close()).map_err(failed("close"))?;

    // Catch-up reads of the whole log alternate with raw GETs of the same
    // fragment objects with the reader's parallelism (raw first and last),
    // so drift of a shared machine or store favours neither side.
    let inflight = config.reader_prefetch_fragments();
    let mut raw_phases = Vec::new();
    let (fragments, raw_mb_s, raw_cpu) = raw_gets(&factory, &config, meta.clone(), name, inflight)?;
    raw_phases.push((raw_mb_s, raw_cpu));
    let limit = Duration::from_secs(args.duration_s.max(60));
    let (mut seconds, mut cpu_seconds, mut bytes) = (0.0, 0.0, 0u64);
    let mut read = 0;
    let mut round_mb_s = Vec::new();
    for _ in 0..args.rounds {
        let started = Instant::now();
        let cpu_started = crate::process_cpu_seconds();
        let mut reader =
            block_on(client.open_reader(name, StartAt::Earliest)).map_err(failed("open reader"))?;
        let (mut round_read, mut round_bytes) = (0u64, 0u64);
        while round_read < entries && started.elapsed() < limit {
            let batch = block_on(reader.read_batch(8 << 20)).map_err(failed("read"))?;
            for entry in &batch {
                if entry.offset != round_read || entry.payload.len() != args.entry_bytes {
                    return Err(BenchError::Failed(format!(
                        "entry {} is not what was written",
                        entry.offset
                    )));
                }
                round_read += 1;
                round_bytes += entry.payload.len() as u64;
            }
        }
        let round_seconds = started.elapsed().as_secs_f64();
        cpu_seconds += crate::process_cpu_seconds() - cpu_started;
        drop(reader);
        seconds += round_seconds;
        bytes += round_bytes;
        read = round_read;
        round_mb_s.push(round_bytes as f64 / 1e6 / round_seconds);
        let (_, raw_mb_s, raw_cpu) = raw_gets(&factory, &config, meta.clone(), name, inflight)?;
        raw_phases.push((raw_mb_s, raw_cpu));
    }
    let throughput_mb_s = bytes as f64 / 1e6 / seconds;
    let cpu_s_per_gb = cpu_seconds / (bytes as f64 / 1e9).max(1e-9);
    // Every raw phase has figures, or none does (the null store).
    let raw_get_mb_s_phases: Vec<f64> = raw_phases.iter().filter_map(|(r, _)| *r).collect();
    let raw_get_cpu: Vec<f64> = raw_phases.iter().filter_map(|(_, c)| *c).collect();
    let raw_get_mb_s = crate::mean(&raw_get_mb_s_phases);
    let raw_get_cpu_s_per_gb = crate::mean(&raw_get_cpu);

    // Tail latency, in the writer's client and from a second client.
    let writer = block_on(client.open_writer(name)).map_err(failed("open writer"))?;
    let tail_in = tail_latency(&client, &writer, name, &args)?;
    let tail_cross = tail_latency(&second, &writer, name, &args)?;
    let _ = block_on(writer.close());
    let _ = block_on(client.delete_log(name));
    second.shutdown();
    client.shutdown();
    if let Some(dir) = temp_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(ReadReport {
        store: factory.config().kind().to_string(),
        target: None,
        readers: 1,
        throughput_mb_s_readers: None,
        throughput_mb_s_readers_rounds: Vec::new(),
        gets_per_gb_one_reader: None,
        gets_per_gb_readers: None,
        entry_bytes: args.entry_bytes,
        entries: read,
        seconds,
        throughput_mb_s,
        fragments,
        raw_get_mb_s,
        raw_get_mb_s_phases,
        raw_get_inflight: inflight,
        ratio_to_raw: raw_get_mb_s.map(|raw| throughput_mb_s / raw),
        throughput_mb_s_rounds: round_mb_s,
        cpu_s_per_gb,
        raw_get_cpu_s_per_gb,
        tail_latency_ms: tail_in,
        tail_latency_cross_ms: tail_cross,
    })
}

/// Appends `entries` entries of `entry_bytes` with `append`, `batch` at a
/// time, `pending_max` batches unacknowledged at most.
pub(super) fn append_all<A>(
    entry_bytes: usize,
    entries: u64,
    batch: u64,
    pending_max: usize,
    mut append: impl FnMut(Vec<Bytes>) -> A,
) -> Result<(), BenchError>
where
    A: std::future::Future<Output = woodpecker_engine::Result<std::ops::Range<u64>>>,
{
    let payload = Bytes::from(raw::pattern(entry_bytes));
    let mut pending = Vec::new();
    let mut sent = 0;
    while sent < entries {
        let n = batch.min(entries - sent);
        pending.push(append(vec![payload.clone(); n as usize]));
        sent += n;
        if pending.len() >= pending_max {
            block_on(futures::future::try_join_all(pending.drain(..)))
                .map_err(failed("prepare"))?;
        }
    }
    block_on(futures::future::try_join_all(pending)).map_err(failed("prepare"))?;
    Ok(())
}

pub(super) fn failed(what: &'static str) -> impl Fn(woodpecker_engine::Error) -> BenchError {
    move |e| BenchError::Failed(format!("{what}: {e}"))
}

/// GETs every fragment of the log, `inflight` at a time, on one shard:
/// (fragments, MB/s, client CPU seconds per GB), no figures for the null
/// store.
fn raw_gets(
    factory: &StoreFactory,
    config: &Config,
    meta: Arc<dyn MetaStore>,
    name: &str,
    inflight: usize,
) -> Result<(usize, Option<f64>, Option<f64>), BenchError> {
    let factory = factory.clone();
    let prefix = config.key_prefix.clone();
    let name = name.to_string();
    let core = woodpecker_shards::available_cores().first().copied();
    let shard = woodpecker_shards::spawn_shard("bench-raw-get", core, false, move || async move {
        let store = factory.open()?;
        let layout = Layout::new(&prefix)?;
        let log = meta
            .get_log(&name)
            .await
            .map_err(|e| BenchError::Failed(e.to_string()))?;
        let mut keys = Vec::new();
        for segment in meta
            .list_segments(log.id)
            .await
            .map_err(|e| BenchError::Failed(e.to_string()))?
        {
            for fragment in layout.list_fragments(&*store, log.id, segment.id).await? {
                keys.push(fragment.key);
            }
        }
        if factory.config().kind() == "null" {
            return Ok((keys.len(), None, None));
        }
        let started = Instant::now();
        let cpu_started = crate::process_cpu_seconds();
        let bytes: Vec<u64> = stream::iter(keys.iter())
            .map(|key| {
                let store = store.clone();
                async move { store.get(key).await.map(|b| b.len() as u64) }
            })
            .buffered(inflight)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let total: u64 = bytes.iter().sum();
        let cpu = crate::process_cpu_seconds() - cpu_started;
        Ok::<_, BenchError>((
            keys.len(),
            Some(total as f64 / 1e6 / started.elapsed().as_secs_f64()),
            Some(cpu / (total as f64 / 1e9)),
        ))
    })
    .map_err(|e| BenchError::Failed(e.to_string()))?;
    shard
        .join()
        .map_err(|e| BenchError::Failed(e.to_string()))?
}

/// Appends at `tail_rate` for `duration_s` while a reader of `client`
/// tails; returns acknowledgement-to-seen latency.
fn tail_latency(
    client: &Client,
    writer: &woodpecker_shards::LogWriter,
    name: &str,
    args: &ReadArgs,
) -> Result<LatencyMs, BenchError> {
    let mut reader = block_on(client.open_reader(name, StartAt::Latest))
        .map_err(|e| BenchError::Failed(format!("open tail reader: {e}")))?;
    let payload = Bytes::from(raw::pattern(args.entry_bytes));
    tail::latency(
        writer.durable_offset(),
        args,
        move || block_on(reader.next()).map(|entry| entry.offset),
        || block_on(writer.append(payload.clone())).map(|_| ()),
    )
}

pub fn print_summary(report: &ReadReport) {
    println!(
        "read: store={} entry={} B, {} entries, {} fragments",
        report.store, report.entry_bytes, report.entries, report.fragments
    );
    println!(
        "  catch-up rounds MB/s: [{}]; raw GET phases MB/s: [{}]",
        crate::mb_s_list(&report.throughput_mb_s_rounds),
        crate::mb_s_list(&report.raw_get_mb_s_phases)
    );
    if let (Some(target), Some(many), Some(one_gets), Some(many_gets)) = (
        &report.target,
        report.throughput_mb_s_readers,
        report.gets_per_gb_one_reader,
        report.gets_per_gb_readers,
    ) {
        println!(
            "  through {target}: 1 reader {:.1} MB/s, {} readers {:.1} MB/s together \
             (rounds [{}]); GETs per GB of the log: 1 reader {:.1}, {} readers {:.1}",
            report.throughput_mb_s,
            report.readers,
            many,
            crate::mb_s_list(&report.throughput_mb_s_readers_rounds),
            one_gets,
            report.readers,
            many_gets
        );
    }
    println!(
        "  catch-up {:.1} MB/s over {:.1} s; raw GET {} ({} in flight); engine/raw = {}",
        report.throughput_mb_s,
        report.seconds,
        report
            .raw_get_mb_s
            .map_or("n/a".into(), |r| format!("{r:.1} MB/s")),
        report.raw_get_inflight,
        report
            .ratio_to_raw
            .map_or("n/a".into(), |r| format!("{r:.3}")),
    );
    println!(
        "  client CPU s/GB: catch-up {:.2}, raw GET {}",
        report.cpu_s_per_gb,
        report
            .raw_get_cpu_s_per_gb
            .map_or("n/a".into(), |c| format!("{c:.2}")),
    );
    let beside = match report.target {
        Some(_) => "follower on the writer's server",
        None => "in-process",
    };
    for (label, l) in [
        (beside, &report.tail_latency_ms),
        ("second client", &report.tail_latency_cross_ms),
    ] {
        println!(
            "  tail latency after ack ({label}) ms: p50 {:.3} p99 {:.3} max {:.3}",
            l.p50, l.p99, l.max
        );
    }
}

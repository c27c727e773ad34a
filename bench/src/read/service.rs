//! `bench read --target URL`: catch-up reads through a `woodpecker serve`
//! process, by one reader and by `--readers` concurrent readers of the same
//! log in alternating phases, with the object-store GETs the server made
//! in each (from its `/metrics`): readers of one range share the server's
//! fragment cache and its GETs in flight, so N readers should cost about
//! as many GETs as one. Then tail latency through the server.

use super::{append_all, failed, tail, ReadArgs, ReadReport};
use crate::raw;
use crate::service::server_stats;
use crate::BenchError;
use bytes::Bytes;
use std::time::Instant;
use woodpecker_net::remote::{RemoteClient, RemoteConfig};
use woodpecker_shards::{block_on, StartAt};

/// Appends the prepare phase keeps unacknowledged at most (bounded by the
/// remote writer's queue).
const PREPARE_BYTES_IN_FLIGHT: usize = 16 << 20;

/// One catch-up phase: its readers' bytes together, and the GETs.
struct Phase {
    mb_s: f64,
    gets: u64,
    seconds: f64,
    cpu_seconds: f64,
}

pub(super) fn run(
    args: &ReadArgs,
    remote: RemoteClient,
    config: RemoteConfig,
) -> Result<ReadReport, BenchError> {
    let readers = args.readers;
    if readers == 0 {
        return Err(BenchError::Invalid("--readers must be positive".into()));
    }
    let name = format!("bench-read-{:016x}", raw::fastrand_u64());
    block_on(remote.create_log(&name)).map_err(failed("create"))?;
    let result = measure(args, &remote, config, &name);
    let _ = block_on(remote.delete_log(&name));
    result
}

fn measure(
    args: &ReadArgs,
    remote: &RemoteClient,
    config: RemoteConfig,
    name: &str,
) -> Result<ReadReport, BenchError> {
    let entries = (args.prepare_mb * 1_000_000).div_ceil(args.entry_bytes as u64);
    let (before, _) = server_stats(remote)?;
    prepare(args, remote, name, entries)?;
    let (after, _) = server_stats(remote)?;
    let log_gb = entries as f64 * args.entry_bytes as f64 / 1e9;

    // One reader and N readers alternate, so drift of a shared machine or
    // store favours neither.
    let (mut one, mut many) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        one.push(catch_up(args, remote, name, entries, 1)?);
        many.push(catch_up(args, remote, name, entries, args.readers)?);
    }
    let sum = |phases: &[Phase], f: fn(&Phase) -> f64| phases.iter().map(f).sum::<f64>();
    let seconds = sum(&one, |p| p.seconds);
    let gets_per_gb =
        |phases: &[Phase]| sum(phases, |p| p.gets as f64) / phases.len() as f64 / log_gb;

    // Tail latency: a follower on the server beside the writer, and one
    // of a second client (its own connections).
    let writer = block_on(remote.open_writer(name)).map_err(failed("open writer"))?;
    let payload = Bytes::from(raw::pattern(args.entry_bytes));
    let second = RemoteClient::new(config).map_err(failed("second client"))?;
    let mut tails = Vec::new();
    for client in [remote, &second] {
        let mut reader =
            block_on(client.open_reader(name, StartAt::Latest)).map_err(failed("tail reader"))?;
        let end = block_on(remote.end_offset(name)).map_err(failed("tail"))?;
        tails.push(tail::latency(
            end,
            args,
            move || block_on(reader.next()).map(|entry| entry.offset),
            || block_on(writer.append(payload.clone())).map(|_| ()),
        )?);
    }
    let _ = block_on(writer.close());
    let bytes = entries as f64 * args.entry_bytes as f64;
    Ok(ReadReport {
        store: "server".into(),
        target: args.service.url.clone(),
        readers: args.readers,
        entry_bytes: args.entry_bytes,
        entries,
        seconds,
        throughput_mb_s: bytes * one.len() as f64 / 1e6 / seconds,
        throughput_mb_s_rounds: one.iter().map(|p| p.mb_s).collect(),
        throughput_mb_s_readers: Some(
            bytes * args.readers as f64 * many.len() as f64 / 1e6 / sum(&many, |p| p.seconds),
        ),
        throughput_mb_s_readers_rounds: many.iter().map(|p| p.mb_s).collect(),
        gets_per_gb_one_reader: Some(gets_per_gb(&one)),
        gets_per_gb_readers: Some(gets_per_gb(&many)),
        fragments: (after.fragments_uploaded - before.fragments_uploaded) as usize,
        raw_get_mb_s: None,
        raw_get_mb_s_phases: Vec::new(),
        raw_get_inflight: 0,
        ratio_to_raw: None,
        cpu_s_per_gb: sum(&one, |p| p.cpu_seconds) / (bytes * one.len() as f64 / 1e9),
        raw_get_cpu_s_per_gb: None,
        tail_latency_ms: tails[0],
        tail_latency_cross_ms: tails[1],
    })
}

/// Writes `entries` entries through the server.
fn prepare(
    args: &ReadArgs,
    remote: &RemoteClient,
    name: &str,
    entries: u64,
) -> Result<(), BenchError> {
    let writer = block_on(remote.open_writer(name)).map_err(failed("open writer"))?;
    let batch = ((1 << 20) / args.entry_bytes).max(1) as u64;
    let pending_max = (PREPARE_BYTES_IN_FLIGHT / (batch as usize * args.entry_bytes)).max(1);
    append_all(args.entry_bytes, entries, batch, pending_max, |batch| {
        writer.append_batch(batch)
    })?;
    block_on(writer.close()).map_err(failed("close"))
}

/// `readers` concurrent readers of the whole log from its start, each
/// checking every entry's offset and size.
fn catch_up(
    args: &ReadArgs,
    remote: &RemoteClient,
    name: &str,
    entries: u64,
    readers: usize,
) -> Result<Phase, BenchError> {
    let (_, gets_before) = server_stats(remote)?;
    let started = Instant::now();
    let cpu_started = crate::process_cpu_seconds();
    let threads: Vec<_> = (0..readers)
        .map(|_| {
            let (remote, name) = (remote.clone(), name.to_string());
            let entry_bytes = args.entry_bytes;
            std::thread::spawn(move || -> Result<(), BenchError> {
                let mut reader = block_on(remote.open_reader(&name, StartAt::Earliest))
                    .map_err(failed("open reader"))?;
                for offset in 0..entries {
                    let entry = block_on(reader.next()).map_err(failed("read"))?;
                    if entry.offset != offset || entry.payload.len() != entry_bytes {
                        return Err(BenchError::Failed(format!(
                            "entry {} is not what was written at {offset}",
                            entry.offset
                        )));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .map_err(|_| BenchError::Failed("a reader panicked".into()))??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = crate::process_cpu_seconds() - cpu_started;
    let (_, gets_after) = server_stats(remote)?;
    let bytes = entries as f64 * args.entry_bytes as f64 * readers as f64;
    Ok(Phase {
        mb_s: bytes / 1e6 / seconds,
        gets: gets_after - gets_before,
        seconds,
        cpu_seconds,
    })
}

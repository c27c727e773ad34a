//! The flush policies against a store with added latency: under
//! `adaptive`, an append at low load is acknowledged within about one
//! upload, not the flush interval; under a saturating load fragments still
//! fill, and beside a running upload only a fragment worth one ships;
//! acknowledgements stay in offset order and no fragment is empty
//! (the scan decodes every fragment, and an empty one does not decode).

mod common;

use bytes::Bytes;
use common::*;
use futures::stream::{FuturesUnordered, StreamExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use woodpecker_engine::store::fault::FaultRule;
use woodpecker_engine::store::Op;
use woodpecker_shards::{Config, FlushPolicy};

const UPLOAD_LATENCY: Duration = Duration::from_millis(50);
const FLUSH_INTERVAL_MS: u64 = 1_000;

fn slow_uploads() -> Vec<FaultRule> {
    vec![FaultRule {
        ops: vec![Op::PutIfAbsent],
        latency: UPLOAD_LATENCY,
        ..FaultRule::default()
    }]
}

fn config(policy: FlushPolicy) -> Config {
    Config {
        flush_policy: policy,
        flush_interval_ms: FLUSH_INTERVAL_MS,
        ..small_config()
    }
}

/// The ack time of single appends, one at a time.
fn lone_append_latencies(policy: FlushPolicy) -> Vec<Duration> {
    let (client, clean) = fault_clients(config(policy), slow_uploads(), None);
    within(30, client.create_log("lone")).unwrap();
    let writer = within(10, client.open_writer("lone")).unwrap();
    let latencies = (0..5)
        .map(|seq| {
            let started = Instant::now();
            assert_eq!(within(10, writer.append(entry(seq))).unwrap(), seq as u64);
            started.elapsed()
        })
        .collect();
    within(10, writer.close()).unwrap();
    let acked: Vec<_> = (0..5).map(|seq| (seq as u64, entry(seq))).collect();
    assert_log_holds(&clean, "lone", 0, &acked);
    latencies
}

#[test]
fn adaptive_acknowledges_a_lone_append_within_about_one_upload() {
    for latency in lone_append_latencies(FlushPolicy::Adaptive) {
        assert!(
            latency >= UPLOAD_LATENCY && latency < UPLOAD_LATENCY * 4,
            "a lone append took {latency:?}; one upload takes {UPLOAD_LATENCY:?}"
        );
    }
}

#[test]
fn interval_waits_the_interval_before_a_lone_append_ships() {
    for latency in lone_append_latencies(FlushPolicy::Interval) {
        assert!(
            latency >= Duration::from_millis(FLUSH_INTERVAL_MS),
            "a lone append took {latency:?}, less than the interval"
        );
    }
}

#[test]
fn adaptive_fragments_fill_under_a_saturating_load() {
    let config = config(FlushPolicy::Adaptive);
    let fragment_bytes_max = config.fragment_bytes_max as u64;
    let (client, clean) = fault_clients(config, slow_uploads(), None);
    within(30, client.create_log("busy")).unwrap();
    let writer = Arc::new(within(10, client.open_writer("busy")).unwrap());
    // 4 x 256 appends of about 750 bytes in flight: every upload slot
    // busy all along.
    let acked = concurrent_appends(&writer, 4, 3_000, 256);
    let stats = client.stats();
    let mean = stats.bytes_uploaded / stats.fragments_uploaded;
    assert!(
        mean * 2 >= fragment_bytes_max,
        "{} fragments of {mean} bytes on average; the limit is {fragment_bytes_max}",
        stats.fragments_uploaded
    );
    let writer = Arc::into_inner(writer).expect("the appenders are done");
    within(10, writer.close()).unwrap();
    assert_log_holds(&clean, "busy", 0, &acked);
}

/// A slot that frees while appends are still queued does not ship the
/// open fragment: the driver takes the whole backlog first (up to the
/// fragment's size), so a saturated writer's fragments do not shrink to
/// one ingest turn (4,096 requests) each time an upload ends.
#[test]
fn adaptive_ships_only_once_the_queued_appends_are_in() {
    let fragment_bytes_max = 1 << 20;
    let config = Config {
        fragment_bytes_max,
        shard_buffer_bytes_max: 16 << 20,
        ..config(FlushPolicy::Adaptive)
    };
    let (client, clean) = fault_clients(config, slow_uploads(), None);
    within(30, client.create_log("queued")).unwrap();
    let writer = Arc::new(within(10, client.open_writer("queued")).unwrap());
    // 40,000 appends of 32 bytes, 10,000 queued at once per thread: more
    // than one ingest turn waits in the ring while upload slots are free.
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let writer = writer.clone();
            std::thread::spawn(move || {
                let payloads: Vec<_> = (0..10_000)
                    .map(|seq| Bytes::from(format!("{t:>4}{seq:>28}")))
                    .collect();
                within(60, async move {
                    let appends: FuturesUnordered<_> = payloads
                        .into_iter()
                        .map(|data| {
                            let append = writer.append(data.clone());
                            async move { (append.await.expect("append"), data) }
                        })
                        .collect();
                    appends.collect::<Vec<_>>().await
                })
            })
        })
        .collect();
    let mut acked: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("appender"))
        .collect();
    acked.sort_by_key(|(offset, _)| *offset);
    let stats = client.stats();
    let mean = stats.bytes_uploaded / stats.fragments_uploaded;
    assert!(
        mean * 4 >= fragment_bytes_max as u64,
        "{} fragments of {mean} bytes on average for {} bytes; the limit is {fragment_bytes_max}",
        stats.fragments_uploaded,
        stats.bytes_uploaded
    );
    let writer = Arc::into_inner(writer).expect("the appenders are done");
    within(10, writer.close()).unwrap();
    assert_log_holds(&clean, "queued", 0, &acked);
}

/// While an upload runs, appends that do not add up to
/// `flush_bytes_per_upload` gather in the open fragment and ship together
/// when it ends (not each in a PUT of its own beside it); appends that do
/// ship beside it at once.
#[test]
fn adaptive_ships_beside_a_running_upload_only_a_fragment_worth_it() {
    let upload_latency = Duration::from_millis(200);
    let config = Config {
        flush_bytes_per_upload: 16 << 10,
        ..config(FlushPolicy::Adaptive)
    };
    let rules = vec![FaultRule {
        ops: vec![Op::PutIfAbsent],
        latency: upload_latency,
        ..FaultRule::default()
    }];
    let (client, clean) = fault_clients(config, rules, None);
    within(30, client.create_log("worth")).unwrap();
    let writer = within(10, client.open_writer("worth")).unwrap();
    let mut acked = Vec::new();

    // 1 entry ships alone; 10 of 1,000 bytes, one per 5 ms while it
    // uploads, are less than 16 KiB: they wait for it and ship together.
    let first = writer.append(entry(0));
    std::thread::sleep(Duration::from_millis(20));
    let small: Vec<_> = (1..=10)
        .map(|seq| {
            let ack = writer.append(entry(seq));
            std::thread::sleep(Duration::from_millis(5));
            ack
        })
        .collect();
    acked.push((within(10, first).unwrap(), entry(0)));
    for (seq, ack) in (1..=10).zip(small) {
        acked.push((within(10, ack).unwrap(), entry(seq)));
    }
    let fragments = client.stats().fragments_uploaded;
    assert!(
        fragments <= 3,
        "{fragments} fragments for 11 small appends: they should gather while one uploads"
    );

    // 1 entry ships alone; 40 of 1,000 bytes at once, more than 16 KiB,
    // ship beside it: all are durable about one upload later, not two.
    let started = Instant::now();
    let first = writer.append(entry(11));
    std::thread::sleep(Duration::from_millis(20));
    let batch: Vec<_> = (12..52).map(entry).collect();
    let range = within(10, writer.append_batch(batch)).unwrap();
    let waited = started.elapsed();
    acked.push((within(10, first).unwrap(), entry(11)));
    acked.extend(range.zip(12..52).map(|(offset, seq)| (offset, entry(seq))));
    assert!(
        waited < upload_latency * 2 - Duration::from_millis(20),
        "a batch worth an upload waited {waited:?} beside one of {upload_latency:?}"
    );
    within(10, writer.close()).unwrap();
    assert_log_holds(&clean, "worth", 0, &acked);
}

/// A caller that keeps 8 appends in flight answers each acknowledgement
/// with its next append, one by one: the open fragment waits for all 8
/// (briefly) instead of shipping the first alone and leaving 7 a whole
/// upload behind it; a caller that sends fewer waits only briefly longer.
#[test]
fn adaptive_waits_briefly_for_the_appends_an_acknowledgement_brings_back() {
    // Long uploads: the brief wait (an eighth of one) dwarfs the
    // scheduling noise of a busy test machine.
    let upload_latency = Duration::from_millis(200);
    let rules = vec![FaultRule {
        ops: vec![Op::PutIfAbsent],
        latency: upload_latency,
        ..FaultRule::default()
    }];
    let (client, clean) = fault_clients(config(FlushPolicy::Adaptive), rules, None);
    within(30, client.create_log("returns")).unwrap();
    let writer = within(10, client.open_writer("returns")).unwrap();
    let total = 64;
    let (mut acked, slowest) = within(30, async {
        let append = |seq: usize| {
            let ack = writer.append(entry(seq));
            let started = Instant::now();
            async move { (seq, ack.await.expect("append"), started.elapsed()) }
        };
        let mut in_flight: FuturesUnordered<_> = (0..8).map(append).collect();
        let mut next = 8;
        let mut acked = Vec::new();
        let mut slowest = Duration::ZERO;
        while let Some((seq, offset, waited)) = in_flight.next().await {
            acked.push((offset, entry(seq)));
            if seq >= 8 {
                slowest = slowest.max(waited);
            }
            if next < total {
                // The caller's own work between an ack and its next append.
                std::thread::sleep(Duration::from_micros(300));
                in_flight.push(append(next));
                next += 1;
            }
        }
        (acked, slowest)
    });
    // The first 8 have no acknowledgement to go by: 1 ships alone.
    let fragments = client.stats().fragments_uploaded;
    assert!(
        fragments <= total as u64 / 8 + 2,
        "{fragments} fragments for {total} appends, 8 in flight"
    );
    assert!(
        slowest < upload_latency * 3 / 2,
        "an append took {slowest:?}; one upload takes {upload_latency:?}"
    );
    let started = Instant::now();
    acked.push((
        within(10, writer.append(entry(total))).unwrap(),
        entry(total),
    ));
    let lone = started.elapsed();
    assert!(
        lone < upload_latency * 3 / 2,
        "1 append where 8 were expected took {lone:?}"
    );
    within(10, writer.close()).unwrap();
    acked.sort_by_key(|(offset, _)| *offset);
    assert_log_holds(&clean, "returns", 0, &acked);
}

/// With `profile_stages`, every append's latency splits into its stages:
/// a lone append's time is the 50 ms upload, the stages' means add up to
/// about what the caller waited, and without the setting nothing is kept.
#[test]
fn the_stage_profile_puts_a_lone_appends_time_in_the_upload() {
    let config = Config {
        profile_stages: true,
        ..config(FlushPolicy::Adaptive)
    };
    let (client, _clean) = fault_clients(config, slow_uploads(), None);
    within(30, client.create_log("profiled")).unwrap();
    let writer = within(10, client.open_writer("profiled")).unwrap();
    let mut waited = Duration::ZERO;
    for seq in 0..5 {
        let started = Instant::now();
        within(10, writer.append(entry(seq))).unwrap();
        waited += started.elapsed();
    }
    within(10, writer.close()).unwrap();
    let profile = client.stage_profile();
    let names: Vec<_> = profile.stages.iter().map(|s| s.stage).collect();
    assert_eq!(names, ["ring", "fill", "slot", "upload", "order"]);
    for stage in &profile.stages {
        assert_eq!(stage.entries, 5, "{stage:?}");
    }
    let upload = &profile.stages[3];
    assert!(upload.p50_ms >= 50.0 && upload.p50_ms < 200.0, "{upload:?}");
    let mean_waited_ms = waited.as_secs_f64() * 1e3 / 5.0;
    let total = profile.mean_total_ms();
    assert!(
        total <= mean_waited_ms + 0.5 && total >= 0.9 * mean_waited_ms,
        "stages {total:.2} ms of {mean_waited_ms:.2} ms waited: {profile:?}"
    );
    // The same figures in the client's metrics, in seconds.
    let text = client.metrics().render();
    let median_upload = text
        .lines()
        .find(|l| {
            l.starts_with("woodpecker_append_stage_seconds{")
                && l.contains("quantile=\"0.5\"")
                && l.contains("stage=\"upload\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no median upload stage in\n{text}"));
    assert!(
        (median_upload * 1e3 - upload.p50_ms).abs() < 0.01,
        "{median_upload}"
    );
    for stage in ["ring", "fill", "slot", "upload", "order"] {
        let mean = format!("woodpecker_append_stage_mean_seconds{{stage=\"{stage}\"}}");
        assert!(text.contains(&mean), "{mean} missing");
    }

    let (quiet, _) = fault_clients(config_without_profile(), slow_uploads(), None);
    within(30, quiet.create_log("quiet")).unwrap();
    let writer = within(10, quiet.open_writer("quiet")).unwrap();
    within(10, writer.append(entry(0))).unwrap();
    within(10, writer.close()).unwrap();
    assert!(quiet.stage_profile().stages.iter().all(|s| s.entries == 0));
    assert!(!quiet.metrics().render().contains("woodpecker_append_stage"));
}

fn config_without_profile() -> Config {
    config(FlushPolicy::Adaptive)
}

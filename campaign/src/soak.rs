//! The soak: appends at half load for a long time while the object store
//! stalls (MinIO stopped with SIGSTOP) for a minute at a time. Appends wait
//! through a stall (the deadlines are longer than it), memory stays within
//! the fragment buffers plus 64 MiB, and appends flow again after each
//! stall; at the end the history is checked as after a campaign run.

use crate::check::{check, recover, within, History};
use crate::children::{self, Proc};
use crate::run::{Cluster, RSS_SLACK_BYTES};
use crate::settings::{Settings, LOGS, SHARDS, SHARD_BUFFER_BYTES};
use crate::worker::Load;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Appends in flight per log.
const WINDOW: usize = 64;
/// How long the unpaced probe that finds full load runs.
const PROBE: Duration = Duration::from_secs(5);
/// How long appends may take to flow again after the last stall.
const RECOVERY: Duration = Duration::from_secs(60);

fn acks(proc: &Proc) -> usize {
    proc.lines()
        .iter()
        .filter(|l| l.starts_with("ack "))
        .count()
}

fn sample_for(procs: &[&Proc], lasts: Duration) {
    let until = Instant::now() + lasts;
    while Instant::now() < until {
        for proc in procs {
            proc.sample_rss();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn soak(seed: u64, total: Duration, stall: Duration, calm: Duration) -> i32 {
    let mut cluster = Cluster::start(seed);
    let dir = tempfile::tempdir().expect("temp dir");
    let direct = Settings {
        deadline_ms: (stall + Duration::from_secs(60)).as_millis() as u64,
        lifetime_secs: (total + RECOVERY + PROBE).as_secs() + 120,
        ..Settings::campaign(
            cluster.etcd.endpoint(),
            cluster.minio.endpoint(),
            format!("soak{seed:x}"),
        )
    };
    let proxied = Settings {
        s3: format!("http://{}", cluster.proxy.addr()),
        ..direct.clone()
    };
    let checker = direct.client(true).expect("checker client");
    for log in 0..LOGS {
        within(30, checker.create_log(&direct.log_name(log)))
            .expect("creating a log in time")
            .expect("creating a log");
    }
    let mut history = History::default();
    let mut problems = Vec::new();

    let full = Load {
        window: WINDOW,
        rate: 0,
    };
    let mut probe = children::writer(&proxied, 1, full, dir.path());
    std::thread::sleep(PROBE);
    problems.extend(probe.kill());
    history.add_writer(&probe.lines());
    let full_rate = acks(&probe) as u64 / PROBE.as_secs() / LOGS as u64;
    let load = Load {
        window: WINDOW,
        rate: (full_rate / 2).max(1),
    };
    println!(
        "soak: full load {full_rate} appends/s per log ({LOGS} logs); soaking at {} for {} s, MinIO stalled {} s after every {} s",
        load.rate,
        total.as_secs(),
        stall.as_secs(),
        calm.as_secs()
    );

    let mut writer = children::writer(&proxied, 2, load, dir.path());
    let mut reader = children::reader(&proxied, dir.path());
    let started = Instant::now();
    let mut stalls = 0;
    while started.elapsed() < total {
        let before = acks(&writer);
        sample_for(
            &[&writer, &reader],
            calm.min(total.saturating_sub(started.elapsed())),
        );
        let calm_acks = acks(&writer) - before;
        if started.elapsed() >= total {
            break;
        }
        cluster.minio.pause();
        stalls += 1;
        let before = acks(&writer);
        sample_for(&[&writer, &reader], stall);
        let stall_acks = acks(&writer) - before;
        cluster.minio.resume();
        println!(
            "soak: {:>4} s: {calm_acks} acks in {} s calm, {stall_acks} during stall {stalls}; RSS writer {} MiB, reader {} MiB",
            started.elapsed().as_secs(),
            calm.as_secs(),
            writer.rss_max.load(Ordering::Relaxed) >> 20,
            reader.rss_max.load(Ordering::Relaxed) >> 20,
        );
    }
    cluster.heal();
    let healed_at = acks(&writer);
    let flowing = Instant::now();
    while acks(&writer) < healed_at + (load.rate as usize * LOGS * 5) {
        if flowing.elapsed() > RECOVERY {
            problems.push(format!(
                "appends did not flow again within {} s",
                RECOVERY.as_secs()
            ));
            break;
        }
        sample_for(&[&writer, &reader], Duration::from_millis(500));
    }
    println!(
        "soak: 5 s worth of appends acknowledged within {:.1} s of the last stall",
        flowing.elapsed().as_secs_f64()
    );
    problems.extend(writer.kill());
    history.add_writer(&writer.lines());
    let (ends, recovery) = recover(&checker, &direct);
    problems.extend(recovery);
    sample_for(&[&reader], Duration::from_secs(10));
    problems.extend(reader.kill());
    history.readers.push(reader.lines());
    history.problems.extend(problems);
    let bound = (SHARDS * SHARD_BUFFER_BYTES) as u64 + RSS_SLACK_BYTES;
    let rss = [&writer, &reader].map(|p| p.rss_max.load(Ordering::Relaxed));
    for (proc, rss) in [&writer, &reader].iter().zip(rss) {
        if rss > bound {
            history
                .problems
                .push(format!("{} reached {} MiB of RSS", proc.role, rss >> 20));
        }
    }
    let (checked, violations) = check(&checker, &direct, &history, &ends);
    println!(
        "soak: {} s, {stalls} stalls of {} s; RSS max writer {} MiB, reader {} MiB (bound {} MiB: {} MiB of fragment buffers + {} MiB); checked {} acks, {} entries, {} reads; {} not written, {} outcome unknown; {} violations",
        started.elapsed().as_secs(),
        stall.as_secs(),
        rss[0] >> 20,
        rss[1] >> 20,
        bound >> 20,
        (SHARDS * SHARD_BUFFER_BYTES) >> 20,
        RSS_SLACK_BYTES >> 20,
        checked.acks,
        checked.entries,
        checked.reads,
        history.not_sent.len(),
        history.unknown,
        violations.len()
    );
    for violation in &violations {
        println!("  VIOLATION: {violation}");
    }
    checker.shutdown();
    i32::from(!violations.is_empty())
}

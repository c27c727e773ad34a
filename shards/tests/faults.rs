//! The write path over a fault-injecting store: retried errors and lost
//! replies, a store that goes down for good, and a slow store that must
//! back-pressure instead of buffering without bound.

mod common;

use bytes::Bytes;
use common::*;
use std::sync::Arc;
use std::time::Duration;
use woodpecker_engine::store::fault::FaultRule;
use woodpecker_engine::store::Op;
use woodpecker_engine::ErrorKind;
use woodpecker_shards::Config;

#[test]
fn errors_and_lost_replies_are_retried_and_nothing_is_lost() {
    let rules = vec![FaultRule {
        ops: vec![Op::PutIfAbsent],
        error_rate: 0.2,
        lost_reply_rate: 0.3,
        ..FaultRule::default()
    }];
    // About half the attempts fail, so a fragment exhausts 9 attempts once
    // in 512; the adaptive policy ships hundreds of small fragments here.
    // With 31 attempts none gives up (2^-31 each): every append must land.
    let config = Config {
        upload_retries_max: 30,
        ..small_config()
    };
    let (client, clean) = fault_clients(config, rules, None);
    within(30, client.create_log("flaky")).unwrap();
    let writer = Arc::new(within(30, client.open_writer("flaky")).unwrap());
    let acked = concurrent_appends(&writer, 3, 2_000, 32);
    assert_eq!(acked.len(), 6_000);
    let writer = Arc::try_unwrap(writer).ok().unwrap();
    within(30, writer.close()).unwrap();
    assert_log_holds(&clean, "flaky", 0, &acked);

    // Each retry is counted by its cause, each failed request by its kind.
    let retries = client.stats().upload_retries as f64;
    assert!(retries > 0.0);
    let metrics = client.metrics().render();
    let sample = |series: &str| {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    assert_eq!(
        sample("woodpecker_upload_retries_total{cause=\"transport\"}"),
        retries
    );
    assert!(
        sample("woodpecker_store_errors_total{kind=\"unavailable\",op=\"put_if_absent\"}")
            >= retries
    );
    assert!(
        sample("woodpecker_store_request_duration_seconds_count{op=\"put_if_absent\"}") > retries
    );
}

#[test]
fn a_dead_store_fails_appends_in_order_and_never_acks_what_is_not_durable() {
    let config = Config {
        upload_retries_max: 3,
        ..small_config()
    };
    // Opening takes a few operations; then some fragments land; then the store dies.
    let (client, clean) = fault_clients(config, Vec::new(), Some(40));
    within(30, client.create_log("dying")).unwrap();
    let writer = within(30, client.open_writer("dying")).unwrap();
    let mut acked = Vec::new();
    let mut first_error = None;
    let mut never_written = Vec::new();
    for seq in 0..5_000 {
        let data = payload(0, seq);
        match within(30, writer.append(data.clone())) {
            Ok(offset) => {
                assert!(first_error.is_none(), "an ack after a failure");
                acked.push((offset, data));
            }
            Err(err) => {
                // Sent and maybe durable, or never sent; either way the
                // writer is gone.
                assert!(
                    matches!(
                        err.kind(),
                        ErrorKind::OutcomeUnknown | ErrorKind::WriterFailed
                    ),
                    "{err}"
                );
                assert!(err.needs_reopen(), "{err}");
                if err.kind() == ErrorKind::WriterFailed {
                    never_written.push(data);
                }
                first_error.get_or_insert(err);
            }
        }
    }
    assert!(first_error.is_some(), "the store died, appends must fail");
    assert!(
        !acked.is_empty(),
        "appends before the failure were acknowledged"
    );
    drop(writer);
    // Every acknowledged entry is durable, as the clean view shows.
    let entries = within(30, clean.scan("dying")).unwrap();
    for (offset, data) in &acked {
        assert!(
            entries[*offset as usize].payload == data[..],
            "acked {offset} not durable"
        );
    }
    // What the writer said it never sent is not there.
    for data in &never_written {
        assert!(!entries.iter().any(|e| e.payload == data[..]));
    }
}

#[test]
fn a_slow_store_back_pressures_with_bounded_memory() {
    let config = Config {
        fragment_bytes_max: 64 << 10,
        shard_buffer_bytes_max: 128 << 10, // two fragment buffers in all
        ring_requests_max: 64,
        uploads_in_flight_max: 1,
        ..small_config()
    };
    let rules = vec![FaultRule {
        ops: vec![Op::PutIfAbsent],
        latency: Duration::from_millis(200),
        ..FaultRule::default()
    }];
    let (client, clean) = fault_clients(config, rules, None);
    within(30, client.create_log("slow")).unwrap();
    let writer = within(30, client.open_writer("slow")).unwrap();
    let mut accepted = Vec::new();
    let mut refused = None;
    for seq in 0..10_000 {
        let data = Bytes::from(vec![seq as u8; 1024]);
        match writer.try_append(data.clone()) {
            Ok(ack) => accepted.push((ack, data)),
            Err(err) => {
                refused = Some(err);
                break;
            }
        }
    }
    let err = refused.expect("a full writer refuses instead of buffering without bound");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_retriable());
    // Two 64 KiB buffers of ~1 KiB entries plus the 64-request ring.
    assert!(
        accepted.len() < 64 + 2 * 64 + 8,
        "{} accepted",
        accepted.len()
    );
    // The ring was full when the append was refused; the driver drains it
    // only as buffers free (the first after a 200 ms upload).
    let stats = client.stats();
    assert!(
        stats.ring_requests > 32 && stats.ring_requests <= 64,
        "{stats:?}"
    );
    assert!(stats.buffers_in_use <= 2, "{stats:?}");
    assert!(client
        .metrics()
        .render()
        .contains("\nwoodpecker_ingest_ring_requests "));
    // Everything accepted is acknowledged once the store catches up.
    let mut acked = Vec::new();
    for (ack, data) in accepted {
        acked.push((within(30, ack).unwrap(), data));
    }
    // There is room again, for batches too.
    let batch = vec![Bytes::from_static(b"b0"), Bytes::from_static(b"b1")];
    let range = within(30, writer.try_append_batch(batch.clone()).unwrap()).unwrap();
    assert_eq!(range, acked.len() as u64..acked.len() as u64 + 2);
    acked.extend(range.zip(batch));
    within(30, writer.close()).unwrap();
    assert_log_holds(&clean, "slow", 0, &acked);
    let stats = client.stats();
    assert_eq!(
        (stats.ring_requests, stats.buffers_in_use),
        (0, 0),
        "{stats:?}"
    );
}

#[test]
fn appends_from_one_thread_commit_in_call_order_even_when_the_ring_is_full() {
    let config = Config {
        fragment_bytes_max: 64 << 10,
        shard_buffer_bytes_max: 128 << 10,
        ring_requests_max: 4,
        uploads_in_flight_max: 1,
        ..small_config()
    };
    let rules = vec![FaultRule {
        ops: vec![Op::PutIfAbsent],
        latency: Duration::from_millis(100),
        ..FaultRule::default()
    }];
    let (client, _clean) = fault_clients(config, rules, None);
    within(30, client.create_log("order")).unwrap();
    let writer = within(30, client.open_writer("order")).unwrap();
    let mut accepted = Vec::new();
    while let Ok(ack) = writer.try_append(Bytes::from(vec![0u8; 1024])) {
        accepted.push(ack);
    }
    // The ring is full: both calls wait for room; the later one is awaited first.
    let first = writer.append(Bytes::from_static(b"first"));
    let second = writer.append(Bytes::from_static(b"second"));
    let second = within(30, second).unwrap();
    let first = within(30, first).unwrap();
    assert!(first < second, "first got {first}, second {second}");
    for ack in accepted {
        within(30, ack).unwrap();
    }
    within(30, writer.close()).unwrap();
}

#[test]
fn a_log_with_a_stalled_store_does_not_starve_the_others_of_buffers() {
    let config = Config {
        shards: 1,
        fragment_bytes_max: 64 << 10,
        shard_buffer_bytes_max: 8 * (64 << 10), // 8 buffers for both logs
        uploads_in_flight_max: 8,
        ..small_config()
    };
    let meta = Arc::new(woodpecker_engine::meta::memory::MemoryMeta::new());
    let stalled = within(
        10,
        woodpecker_engine::meta::MetaStore::create_log(&*meta, "stalled"),
    )
    .unwrap();
    // Every upload of the stalled log takes 3 s.
    let rules = vec![FaultRule {
        ops: vec![Op::PutIfAbsent],
        key_prefix: woodpecker_engine::layout::Layout::new(&config.key_prefix)
            .unwrap()
            .log_prefix(stalled.id),
        latency: Duration::from_secs(3),
        ..FaultRule::default()
    }];
    let (client, _clean) = fault_clients_on(config, meta, rules, None);
    within(10, client.create_log("busy")).unwrap();
    let slow = within(10, client.open_writer("stalled")).unwrap();
    let busy = within(10, client.open_writer("busy")).unwrap();
    // The stalled log fills as many buffers as it may.
    let mut pending = Vec::new();
    for _ in 0..64 {
        pending.push(slow.append(Bytes::from(vec![1u8; 16 << 10])));
        std::thread::sleep(Duration::from_millis(3));
    }
    let started = std::time::Instant::now();
    for seq in 0..50u64 {
        assert_eq!(
            within(10, busy.append(Bytes::from(vec![2u8; 1024]))).unwrap(),
            seq
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the busy log waited {:?} for buffers",
        started.elapsed()
    );
    for ack in pending {
        within(30, ack).unwrap();
    }
    within(10, busy.close()).unwrap();
    within(10, slow.close()).unwrap();
}

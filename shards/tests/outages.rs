//! Outages the writer must ride out or name truthfully: etcd unavailable
//! during segment rolls (with replies lost or not), a fragment upload past
//! its deadline, and appends whose outcome is unknown.

mod common;

use common::flaky_meta::FlakyMeta;
use common::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use woodpecker_engine::layout::Layout;
use woodpecker_engine::meta::memory::MemoryMeta;
use woodpecker_engine::meta::{MetaStore, SegmentState};
use woodpecker_engine::store::fault::FaultRule;
use woodpecker_engine::store::memory::MemoryStore;
use woodpecker_engine::store::{Op, StoreFactory};
use woodpecker_engine::ErrorKind;
use woodpecker_shards::{Client, Config};

fn etcd_outage_during_rolls(lose_replies: bool) {
    let meta = Arc::new(FlakyMeta::new());
    let client = Client::start(
        rolling_config(),
        StoreFactory::with_memory(MemoryStore::new()),
        meta.clone(),
    )
    .unwrap();
    let log = within(10, client.create_log("rolling")).unwrap();
    let writer = within(10, client.open_writer("rolling")).unwrap();
    let mut acked = Vec::new();
    for seq in 0..60 {
        if seq % 10 == 5 {
            meta.fail_next(3, lose_replies);
        }
        let payload = entry(seq);
        let offset = within(30, writer.append(payload.clone()))
            .unwrap_or_else(|err| panic!("append {seq} failed across the outage: {err}"));
        acked.push((offset, payload));
    }
    within(30, writer.close()).unwrap();
    assert!(meta.failed.load(Ordering::SeqCst) >= 15, "the outages hit");
    let segments = within(10, meta.list_segments(log.id)).unwrap();
    assert!(segments.len() > 10, "{} segments", segments.len());
    assert!(segments.iter().all(|s| s.state == SegmentState::Sealed));
    assert_log_holds(&client, "rolling", 0, &acked);
}

#[test]
fn a_writer_rides_out_etcd_outages_during_rolls() {
    etcd_outage_during_rolls(false);
}

#[test]
fn a_writer_rides_out_lost_etcd_replies_during_rolls() {
    etcd_outage_during_rolls(true);
}

#[test]
fn an_etcd_outage_past_the_deadline_stops_the_writer_and_says_so() {
    let meta = Arc::new(FlakyMeta::new());
    let config = Config {
        metadata_deadline_ms: 300,
        ..rolling_config()
    };
    let client = Client::start(
        config,
        StoreFactory::with_memory(MemoryStore::new()),
        meta.clone(),
    )
    .unwrap();
    within(10, client.create_log("down")).unwrap();
    let writer = within(10, client.open_writer("down")).unwrap();
    meta.fail_next(u64::MAX, false);
    let started = Instant::now();
    let outcomes: Vec<_> = (0..12)
        .map(|seq| writer.append(entry(seq)))
        .map(|ack| within(10, ack))
        .collect();
    assert!(started.elapsed() < Duration::from_secs(5));
    let failed: Vec<_> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    assert!(!failed.is_empty(), "a roll needs etcd");
    for err in &failed {
        assert!(err.needs_reopen(), "{err}");
        assert!(!err.is_retriable(), "{err}");
    }
    let last = failed.last().unwrap();
    assert_eq!(last.kind(), ErrorKind::WriterFailed, "{last}");
    assert!(last.to_string().contains("metadata_deadline_ms"), "{last}");
    // etcd is back: a new writer recovers and goes on.
    meta.fail_next(0, false);
    let writer = within(10, client.open_writer("down")).unwrap();
    within(10, writer.append(entry(99))).unwrap();
    within(10, writer.close()).unwrap();
}

#[test]
fn an_upload_past_its_deadline_fails_within_it() {
    let config = Config {
        upload_deadline_ms: 300,
        ..small_config()
    };
    let rules = vec![FaultRule {
        ops: vec![Op::PutIfAbsent],
        latency: Duration::from_secs(20),
        ..FaultRule::default()
    }];
    let (client, _clean) = fault_clients(config, rules, None);
    within(10, client.create_log("stuck")).unwrap();
    let writer = within(10, client.open_writer("stuck")).unwrap();
    let started = Instant::now();
    let err = within(10, writer.append(&b"x"[..])).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}");
    assert!(err.to_string().contains("upload_deadline_ms"), "{err}");
}

#[test]
fn an_append_whose_upload_may_have_landed_is_outcome_unknown() {
    let config = Config {
        upload_retries_max: 0,
        ..small_config()
    };
    let meta = Arc::new(MemoryMeta::new());
    let log = within(10, meta.create_log("maybe")).unwrap();
    // Fragment 1 lands, but its reply is lost.
    let rules = vec![FaultRule {
        ops: vec![Op::PutIfAbsent],
        key_prefix: Layout::new(&config.key_prefix)
            .unwrap()
            .fragment_key(log.id, 0, 1),
        lost_reply_rate: 1.0,
        ..FaultRule::default()
    }];
    let (client, clean) = fault_clients_on(config, meta, rules, None);
    let writer = within(10, client.open_writer("maybe")).unwrap();
    assert_eq!(within(10, writer.append(&b"landed"[..])).unwrap(), 0);
    let maybe = within(10, writer.append(&b"maybe"[..])).unwrap_err();
    assert_eq!(maybe.kind(), ErrorKind::OutcomeUnknown, "{maybe}");
    let after = within(10, writer.append(&b"never"[..])).unwrap_err();
    assert_eq!(after.kind(), ErrorKind::WriterFailed, "{after}");
    drop(writer);
    // Recovery finds the fragment whose reply was lost; nothing after it.
    let writer = within(10, clean.open_writer("maybe")).unwrap();
    within(10, writer.close()).unwrap();
    let payloads: Vec<Vec<u8>> = within(10, clean.scan("maybe"))
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(payloads, [b"landed".to_vec(), b"maybe".to_vec()]);
}

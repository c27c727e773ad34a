//! Segment rolls under faults: a writer that dies while a rolled segment's
//! last fragment is still uploading, and a writer closed right after a roll.
//! Tiny fragments and segments, so every few entries roll a segment.

mod common;

use bytes::Bytes;
use common::*;
use futures::future::join_all;
use std::sync::Arc;
use std::time::Duration;
use woodpecker_engine::layout::Layout;
use woodpecker_engine::meta::memory::MemoryMeta;
use woodpecker_engine::meta::{MetaStore, SegmentState};
use woodpecker_engine::store::fault::FaultRule;
use woodpecker_engine::store::Op;
use woodpecker_shards::{Config, StartAt};

#[test]
fn a_writer_dying_mid_roll_leaves_no_hole_in_the_offsets() {
    let config = Config {
        upload_retries_max: 0,
        ..rolling_config()
    };
    let meta = Arc::new(MemoryMeta::new());
    let log = within(10, meta.create_log("hole")).unwrap();
    // Segment 0's last fragment (index 1) is slow and then fails for good;
    // the fragments of later segments land meanwhile.
    let stuck = Layout::new(&config.key_prefix)
        .unwrap()
        .fragment_key(log.id, 0, 1);
    let rules = vec![FaultRule {
        ops: vec![Op::PutIfAbsent],
        key_prefix: stuck,
        error_rate: 1.0,
        latency: Duration::from_millis(300),
        ..FaultRule::default()
    }];
    let (faulty, clean) = fault_clients_on(config, meta.clone(), rules, None);
    let writer = within(10, faulty.open_writer("hole")).unwrap();
    let acks: Vec<_> = (0..30).map(|seq| writer.append(entry(seq))).collect();
    let outcomes = within(30, join_all(acks));
    let acked: Vec<(u64, Bytes)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(seq, outcome)| outcome.as_ref().ok().map(|&offset| (offset, entry(seq))))
        .collect();
    assert_eq!(acked.len(), 3, "only segment 0's first fragment is acked");
    let segments = within(10, meta.list_segments(log.id)).unwrap();
    assert!(
        segments.len() > 2,
        "later segments were created during the stall: {segments:?}"
    );
    drop(writer);
    faulty.shutdown();
    // A reader ahead of the durable end, inside a segment past the hole,
    // must not see what recovery is about to void.
    let mut ahead = within(10, clean.open_reader("hole", StartAt::Offset(10))).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(ahead.try_next().unwrap().is_none(), "read past a hole");

    // A new writer recovers; the entries past the failed fragment were never
    // acknowledged and must stay invisible, and the log must stay dense.
    let writer = within(10, clean.open_writer("hole")).unwrap();
    let mut expected = acked.clone();
    for seq in 100..110 {
        let payload = entry(seq);
        let offset = within(10, writer.append(payload.clone())).unwrap();
        expected.push((offset, payload));
    }
    within(10, writer.close()).unwrap();
    assert_log_holds(&clean, "hole", 0, &expected);
    let read = within(10, ahead.next()).unwrap();
    assert_eq!(read.offset, 10);
    assert!(
        read.payload == expected[10].1,
        "the reader ahead saw a voided entry"
    );
    let mut reader = within(10, clean.open_reader("hole", StartAt::Earliest)).unwrap();
    for (offset, payload) in &expected {
        let read = within(10, reader.next()).expect("a reader from Earliest reads on");
        assert_eq!(read.offset, *offset);
        assert!(read.payload == payload[..], "entry {offset} differs");
    }
}

#[test]
fn close_right_after_a_roll_seals_every_segment() {
    let config = rolling_config();
    // Slow uploads keep the rolled segment's last fragment in flight when
    // close begins.
    let rules = vec![FaultRule {
        ops: vec![Op::PutIfAbsent],
        latency: Duration::from_millis(50),
        ..FaultRule::default()
    }];
    let meta = Arc::new(MemoryMeta::new());
    let log = within(10, meta.create_log("closing")).unwrap();
    let (faulty, clean) = fault_clients_on(config, meta.clone(), rules, None);
    let writer = within(10, faulty.open_writer("closing")).unwrap();
    let acks: Vec<_> = (0..6).map(|seq| writer.append(entry(seq))).collect();
    std::thread::sleep(Duration::from_millis(20));
    within(10, writer.close()).unwrap();
    let acked: Vec<(u64, Bytes)> = within(10, join_all(acks))
        .into_iter()
        .enumerate()
        .map(|(seq, outcome)| (outcome.unwrap(), entry(seq)))
        .collect();
    let segments = within(10, meta.list_segments(log.id)).unwrap();
    assert!(segments.len() >= 2, "the writer rolled: {segments:?}");
    for segment in &segments {
        assert_eq!(
            segment.state,
            SegmentState::Sealed,
            "segment {} is left open after close: {segments:?}",
            segment.id
        );
    }
    assert_log_holds(&clean, "closing", 0, &acked);
}

/// Retention deletes a segment's objects before its record, so a writer
/// dying in between leaves a sealed record below the truncation point whose
/// objects are gone. The log still scans, and reads from the truncation
/// point.
#[test]
fn a_segment_half_deleted_below_the_truncation_point_is_skipped() {
    let (client, store, meta) = memory_client(rolling_config());
    let log = within(10, client.create_log("half")).unwrap();
    let writer = within(10, client.open_writer("half")).unwrap();
    let acked: Vec<_> = (0..12)
        .map(|seq| (within(10, writer.append(entry(seq))).unwrap(), entry(seq)))
        .collect();
    within(10, writer.close()).unwrap();
    within(10, client.truncate("half", 9)).unwrap();
    let layout = Layout::new(&client.config().key_prefix).unwrap();
    let mut emptied = 0;
    for segment in within(10, meta.list_segments(log.id)).unwrap() {
        if segment.state == SegmentState::Sealed && segment.end_offset <= 9 {
            let objects =
                futures::executor::block_on(layout.list_fragments(&store, log.id, segment.id))
                    .unwrap();
            for object in objects {
                futures::executor::block_on(woodpecker_engine::store::ObjectStore::delete(
                    &store,
                    &object.key,
                ))
                .unwrap();
            }
            emptied += 1;
        }
    }
    assert!(emptied > 0, "some segment lies wholly below offset 9");
    assert_log_holds(&client, "half", 9, &acked[9..]);
    let mut reader = within(10, client.open_reader("half", StartAt::Earliest)).unwrap();
    assert_eq!(within(10, reader.next()).unwrap().offset, 9);
}

/// A reader catching up over many sealed segments lists the segment
/// records a few times, not once per segment: each listing carries every
/// record, so once per segment made a catch-up over S segments cost S^2
/// records from etcd.
#[test]
fn catching_up_over_many_segments_lists_them_a_few_times_not_once_each() {
    let (client, _store, meta) = memory_client(rolling_config());
    within(10, client.create_log("long")).unwrap();
    let writer = within(10, client.open_writer("long")).unwrap();
    let acks: Vec<_> = (0..240).map(|seq| writer.append(entry(seq))).collect();
    let acked: Vec<(u64, Bytes)> = within(30, join_all(acks))
        .into_iter()
        .enumerate()
        .map(|(seq, outcome)| (outcome.unwrap(), entry(seq)))
        .collect();
    within(10, writer.close()).unwrap();
    let log = within(10, meta.get_log("long")).unwrap();
    let segments = within(10, meta.list_segments(log.id)).unwrap().len();
    assert!(segments >= 40, "the log rolled often: {segments} segments");
    let before = meta.list_segments_calls();
    let mut reader = within(10, client.open_reader("long", StartAt::Earliest)).unwrap();
    for (offset, data) in &acked {
        let read = within(10, reader.next()).unwrap();
        assert_eq!(read.offset, *offset);
        assert!(read.payload == data[..], "entry {offset} differs");
    }
    let calls = meta.list_segments_calls() - before;
    assert!(
        calls <= 4,
        "reading {segments} sealed segments listed them {calls} times"
    );
}

//! Readers under faults: fragments that land out of order while another
//! process tails, and objects missing from a sealed segment.

mod common;

use bytes::Bytes;
use common::*;
use std::sync::Arc;
use std::time::Duration;
use woodpecker_engine::layout::Layout;
use woodpecker_engine::meta::memory::MemoryMeta;
use woodpecker_engine::meta::MetaStore;
use woodpecker_engine::store::fault::FaultRule;
use woodpecker_engine::store::{ObjectStore, Op};
use woodpecker_engine::ErrorKind;
use woodpecker_shards::{Config, StartAt};

#[test]
fn a_tail_reader_in_another_client_reads_fragments_that_land_out_of_order() {
    let config = small_config();
    let meta = Arc::new(MemoryMeta::new());
    let log = within(10, meta.create_log("tail")).unwrap();
    // Fragment 1 lands long after fragments 2, 3, ... are listed.
    let late = Layout::new(&config.key_prefix)
        .unwrap()
        .fragment_key(log.id, 0, 1);
    let rules = vec![FaultRule {
        ops: vec![Op::PutIfAbsent],
        key_prefix: late,
        latency: Duration::from_millis(400),
        ..FaultRule::default()
    }];
    let (faulty, clean) = fault_clients_on(config, meta, rules, None);
    let writer = within(10, faulty.open_writer("tail")).unwrap();
    // The reader's client holds no writer of the log: it polls the store.
    let mut reader = within(10, clean.open_reader("tail", StartAt::Earliest)).unwrap();
    let mut acks = Vec::new();
    for seq in 0..6u8 {
        // Each append closes its own fragment (2 ms flush interval).
        acks.push(writer.append(Bytes::from(vec![seq; 100])));
        std::thread::sleep(Duration::from_millis(30));
    }
    for (seq, ack) in acks.into_iter().enumerate() {
        assert_eq!(within(10, ack).unwrap(), seq as u64);
    }
    for seq in 0..6u8 {
        let entry = within(5, reader.next()).expect("the tail reader stalled");
        assert_eq!(entry.offset, seq as u64);
        assert!(entry.payload == vec![seq; 100]);
    }
    within(10, writer.close()).unwrap();
}

#[test]
fn a_fragment_missing_from_a_sealed_segment_is_an_error_not_a_dead_shard() {
    let config = Config {
        shards: 1,
        ..small_config()
    };
    let layout = Layout::new(&config.key_prefix).unwrap();
    let (client, store, _meta) = memory_client(config);
    let log = within(10, client.create_log("lossy")).unwrap();
    let writer = within(10, client.open_writer("lossy")).unwrap();
    for seq in 0..4u8 {
        within(10, writer.append(Bytes::from(vec![seq; 100]))).unwrap();
    }
    within(10, writer.close()).unwrap();
    // The object of fragment 2 is lost (or deleted under the reader).
    let lost = layout.fragment_key(log.id, 0, 2);
    within(10, async { store.delete(&lost).await }).unwrap();
    let mut reader = within(10, client.open_reader("lossy", StartAt::Earliest)).unwrap();
    let mut error = None;
    for _ in 0..4 {
        match within(10, reader.next()) {
            Ok(_) => {}
            Err(err) => {
                error = Some(err);
                break;
            }
        }
    }
    let error = error.expect("a missing fragment is reported");
    assert_eq!(error.kind(), ErrorKind::Corrupt, "{error}");
    assert!(error.to_string().contains("missing"), "{error}");
    // The shard still serves its other logs.
    within(10, client.create_log("other")).unwrap();
    let writer = within(10, client.open_writer("other")).unwrap();
    assert_eq!(within(10, writer.append(&b"still here"[..])).unwrap(), 0);
    within(10, writer.close()).unwrap();
    let mut reader = within(10, client.open_reader("other", StartAt::Earliest)).unwrap();
    assert!(within(10, reader.next()).unwrap().payload == b"still here"[..]);
}

//! The write path: ordered dense acks under concurrency, fencing, segment
//! rolling; on the in-memory store and on the real MinIO and etcd.

mod common;

use bytes::Bytes;
use common::*;
use std::sync::Arc;
use woodpecker_engine::meta::SegmentState;
use woodpecker_engine::ErrorKind;
use woodpecker_shards::{block_on, Client, Config};

fn many_appenders(client: &Client, threads: usize, per_thread: usize) {
    within(30, client.create_log("many")).unwrap();
    let writer = Arc::new(within(30, client.open_writer("many")).unwrap());
    let acked = concurrent_appends(&writer, threads, per_thread, 64);
    assert_eq!(acked.len(), threads * per_thread);
    let writer = Arc::try_unwrap(writer).ok().expect("appenders are done");
    within(30, writer.close()).unwrap();
    assert_log_holds(client, "many", 0, &acked);
}

#[test]
fn memory_many_concurrent_appenders() {
    let (client, _, _) = memory_client(small_config());
    many_appenders(&client, 4, 5_000);
}

#[test]
fn real_many_concurrent_appenders() {
    let (client, _) = real_client(small_config());
    many_appenders(&client, 4, 600);
}

#[test]
fn real_batches_and_properties() {
    let (client, _) = real_client(small_config());
    within(30, client.create_log("batches")).unwrap();
    let writer = within(30, client.open_writer("batches")).unwrap();
    let batch: Vec<Bytes> = (0..500).map(|i| payload(9, i)).collect();
    let range = within(30, writer.append_batch(batch.clone())).unwrap();
    assert_eq!(range, 0..500);
    let props = vec![(Bytes::from_static(b"trace"), Bytes::from_static(b"abc"))];
    let offset = within(30, writer.append_with(Bytes::from_static(b"p"), props)).unwrap();
    assert_eq!(offset, 500);
    let too_big = vec![0u8; writer.entry_bytes_max() + 1];
    let err = within(30, writer.append(too_big)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    within(30, writer.close()).unwrap();
    let entries = within(30, client.scan("batches")).unwrap();
    assert_eq!(entries.len(), 501);
    for (entry, data) in entries.iter().zip(&batch) {
        assert_eq!(entry.payload, data[..]);
    }
    assert_eq!(
        entries[500].properties,
        vec![(b"trace".to_vec(), b"abc".to_vec())]
    );
}

/// The second writer fences the first: the first gets `Fenced`, and no
/// acknowledged entry of either is lost.
fn fencing(client: &Client, other: &Client) {
    within(30, client.create_log("fenced")).unwrap();
    let first = Arc::new(within(30, client.open_writer("fenced")).unwrap());
    let mut acked = concurrent_appends(&first, 2, 200, 16);

    // Appends keep flowing from the first writer while the second opens.
    let streaming = {
        let first = first.clone();
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            for seq in 0..100_000 {
                let data = payload(7, seq);
                match within(30, first.append(data.clone())) {
                    Ok(offset) => acked.push((offset, data)),
                    Err(err) => return (acked, err),
                }
            }
            panic!("the first writer was never fenced");
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(100));
    let second = within(30, other.open_writer("fenced")).unwrap();
    assert!(second.epoch() > first.epoch());
    let (streamed, err) = streaming.join().unwrap();
    // Its one append in flight was sent: Fenced if its upload met the fence
    // marker, OutcomeUnknown if the writer learned of the fence otherwise.
    assert!(
        matches!(err.kind(), ErrorKind::Fenced | ErrorKind::OutcomeUnknown),
        "{err}"
    );
    acked.extend(streamed);

    // Later appends of the fenced writer fail too.
    let late = within(30, first.append(Bytes::from_static(b"late"))).unwrap_err();
    assert!(
        matches!(late.kind(), ErrorKind::Fenced | ErrorKind::Closed),
        "{late}"
    );

    let start = second.durable_offset();
    let max_first = acked.iter().map(|(o, _)| *o).max().unwrap();
    assert!(
        start > max_first,
        "the new writer starts after every acked entry"
    );
    let mut second_acked = Vec::new();
    for seq in 0..50 {
        let data = payload(8, seq);
        second_acked.push((within(30, second.append(data.clone())).unwrap(), data));
    }
    within(30, second.close()).unwrap();
    let entries = within(60, client.scan("fenced")).unwrap();
    for (offset, data) in acked.iter().chain(&second_acked) {
        let entry = &entries[*offset as usize];
        assert_eq!(entry.offset, *offset);
        assert!(
            entry.payload == data[..],
            "acked entry {offset} lost or changed"
        );
    }
    assert_eq!(entries.len() as u64, start + 50);
}

#[test]
fn memory_second_writer_fences_the_first() {
    let config = small_config();
    let (client, store, meta) = memory_client(config.clone());
    let other = Client::start(
        config,
        woodpecker_engine::store::StoreFactory::with_memory(store),
        meta,
    )
    .unwrap();
    fencing(&client, &other);
}

#[test]
fn real_second_writer_fences_the_first() {
    let config = small_config();
    let (client, etcd) = real_client(config.clone());
    let other = real_client_on(config, &etcd);
    fencing(&client, &other);
}

#[test]
fn idle_fenced_writer_fails_its_next_append() {
    let (client, _, _) = memory_client(small_config());
    block_on(client.create_log("idle")).unwrap();
    let first = block_on(client.open_writer("idle")).unwrap();
    first.append_blocking(Bytes::from_static(b"a")).unwrap();
    let second = block_on(client.open_writer("idle")).unwrap();
    let err = first.append_blocking(Bytes::from_static(b"b")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    assert_eq!(second.append_blocking(Bytes::from_static(b"c")).unwrap(), 1);
    block_on(second.close()).unwrap();
    let payloads: Vec<Vec<u8>> = block_on(client.scan("idle"))
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(payloads, [b"a".to_vec(), b"c".to_vec()]);
}

fn check_segments_dense(
    client: &Client,
    meta: &dyn woodpecker_engine::meta::MetaStore,
    name: &str,
) -> usize {
    let log = block_on(client.get_log(name)).unwrap();
    let segments = block_on(meta.list_segments(log.id)).unwrap();
    let mut next = 0;
    for segment in &segments {
        assert_eq!(segment.first_offset, next, "offsets dense across segments");
        assert_eq!(segment.state, SegmentState::Sealed);
        next = segment.end_offset;
    }
    segments.len()
}

#[test]
fn segments_roll_by_size() {
    let config = Config {
        segment_bytes_max: 64 << 10,
        ..small_config()
    };
    let (client, _, meta) = memory_client(config);
    block_on(client.create_log("roll")).unwrap();
    let writer = Arc::new(block_on(client.open_writer("roll")).unwrap());
    let acked = concurrent_appends(&writer, 1, 1_000, 32);
    let writer = Arc::try_unwrap(writer).ok().unwrap();
    block_on(writer.close()).unwrap();
    let segments = check_segments_dense(&client, &*meta, "roll");
    assert!(segments >= 5, "{segments} segments");
    assert_log_holds(&client, "roll", 0, &acked);
}

#[test]
fn segments_roll_by_age() {
    let config = Config {
        segment_age_max_ms: 40,
        ..small_config()
    };
    let (client, _, meta) = memory_client(config);
    block_on(client.create_log("aged")).unwrap();
    let writer = block_on(client.open_writer("aged")).unwrap();
    let mut acked = Vec::new();
    for seq in 0..30 {
        let data = payload(1, seq);
        acked.push((writer.append_blocking(data.clone()).unwrap(), data));
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    block_on(writer.close()).unwrap();
    let segments = check_segments_dense(&client, &*meta, "aged");
    assert!(segments >= 4, "{segments} segments");
    assert_log_holds(&client, "aged", 0, &acked);
}

#[test]
fn reopening_continues_the_log() {
    let (client, _) = real_client(small_config());
    within(30, client.create_log("reopen")).unwrap();
    let mut acked = Vec::new();
    for round in 0..3 {
        let writer = within(30, client.open_writer("reopen")).unwrap();
        for seq in 0..20 {
            let data = payload(round, seq);
            acked.push((within(30, writer.append(data.clone())).unwrap(), data));
        }
        if round == 1 {
            drop(writer); // not closed: the next open recovers it
            std::thread::sleep(std::time::Duration::from_millis(50));
        } else {
            within(30, writer.close()).unwrap();
        }
    }
    assert_log_holds(&client, "reopen", 0, &acked);
    within(30, client.delete_log("reopen")).unwrap();
    assert!(within(30, client.get_log("reopen")).is_err());
}

#[test]
fn real_large_fragments_go_multipart() {
    let config = Config {
        fragment_bytes_max: 12 << 20,
        multipart_threshold_bytes: 6 << 20,
        multipart_part_bytes: 5 << 20,
        shard_buffer_bytes_max: 48 << 20,
        flush_interval_ms: 500,
        ..small_config()
    };
    let (client, _) = real_client(config);
    within(30, client.create_log("large")).unwrap();
    let writer = Arc::new(within(30, client.open_writer("large")).unwrap());
    let appends: Vec<_> = (0..30)
        .map(|seq| {
            let mut data = vec![seq as u8; 1 << 20];
            data[..8].copy_from_slice(&(seq as u64).to_le_bytes());
            let data = Bytes::from(data);
            let ack = writer.append(data.clone());
            async move { (ack.await.unwrap(), data) }
        })
        .collect();
    let acked = within(120, futures::future::join_all(appends));
    let writer = Arc::try_unwrap(writer).ok().unwrap();
    within(60, writer.close()).unwrap();
    let stats = client.stats();
    assert!(
        stats.bytes_uploaded / stats.fragments_uploaded > 6 << 20,
        "fragments were large enough for multipart: {stats:?}"
    );
    assert_log_holds(&client, "large", 0, &acked);
}

#[test]
fn memory_conditional_batches_are_checked_where_offsets_are_assigned() {
    let (client, _, _) = memory_client(small_config());
    within(30, client.create_log("cond")).unwrap();
    let writer = within(30, client.open_writer("cond")).unwrap();
    let batch = |n: usize| -> Vec<(Bytes, woodpecker_shards::Properties)> {
        (0..n).map(|i| (payload(3, i), Vec::new())).collect()
    };
    // Pipelined without waiting: each expects where the one before ends.
    let first = writer.append_batch_expecting(0, batch(3));
    let second = writer.append_batch_expecting(3, batch(2));
    let stale = writer.append_batch_expecting(3, batch(4));
    let plain = writer.append_batch_with(batch(1));
    assert_eq!(within(30, first).unwrap(), 0..3);
    assert_eq!(within(30, second).unwrap(), 3..5);
    let err = within(30, stale).unwrap_err();
    assert_eq!(
        (err.kind(), err.log_end()),
        (ErrorKind::ConditionFailed, Some(5))
    );
    assert_eq!(
        within(30, plain).unwrap(),
        5..6,
        "the refused batch took no offsets"
    );
    within(30, writer.close()).unwrap();
    assert_eq!(within(30, client.scan("cond")).unwrap().len(), 6);
}

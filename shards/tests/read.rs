//! The read path against the real MinIO and etcd: history read back
//! byte-identical from anywhere, tailing in and out of the writer's client,
//! truncation and retention, and corruption reported, never returned.

mod common;

use bytes::Bytes;
use common::*;
use std::time::{Duration, Instant};
use woodpecker_engine::store::s3::S3Store;
use woodpecker_engine::store::ObjectStore;
use woodpecker_engine::ErrorKind;
use woodpecker_shards::{Client, Config, LogWriter, ReadEntry, StartAt};

type Written = Vec<(u64, Bytes, Vec<(Bytes, Bytes)>)>;

fn read_config() -> Config {
    Config {
        fragment_bytes_max: 4 << 20,
        shard_buffer_bytes_max: 48 << 20,
        segment_bytes_max: 6 << 20,
        reader_prefetch_bytes_max: 16 << 20,
        ..small_config()
    }
}

/// Writes a random history: empty to >1 MiB payloads, some properties,
/// several segment rolls and two recoveries (writers dropped unclosed).
fn write_history(client: &Client, name: &str) -> Written {
    within(30, client.create_log(name)).unwrap();
    let mut rng = fastrand::Rng::with_seed(11);
    let mut written = Vec::new();
    for round in 0..3 {
        let writer = within(30, client.open_writer(name)).unwrap();
        for _ in 0..60 {
            let len = match rng.u8(..10) {
                0 => 0,
                1 => rng.usize((1 << 20)..(1 << 20) + 300_000),
                _ => rng.usize(1..20_000),
            };
            let payload = Bytes::from((0..len).map(|_| rng.u8(..)).collect::<Vec<u8>>());
            let props: Vec<(Bytes, Bytes)> = (0..rng.usize(0..3))
                .map(|i| {
                    (
                        Bytes::from(format!("k{i}")),
                        Bytes::from(vec![rng.u8(..); rng.usize(0..40)]),
                    )
                })
                .collect();
            let offset = within(30, writer.append_with(payload.clone(), props.clone())).unwrap();
            written.push((offset, payload, props));
        }
        if round < 2 {
            drop(writer); // unclosed: the next writer recovers the segment
        } else {
            within(30, writer.close()).unwrap();
        }
    }
    written
}

fn check(entry: &ReadEntry, expected: &(u64, Bytes, Vec<(Bytes, Bytes)>)) {
    assert_eq!(entry.offset, expected.0);
    assert!(
        entry.payload == expected.1,
        "payload of {} differs",
        entry.offset
    );
    assert_eq!(
        entry.properties, expected.2,
        "properties of {}",
        entry.offset
    );
}

#[test]
fn history_reads_back_from_anywhere() {
    let (client, _) = real_client(read_config());
    let written = write_history(&client, "history");
    assert_eq!(
        written.last().unwrap().0 as usize + 1,
        written.len(),
        "offsets dense"
    );

    let mut reader = within(30, client.open_reader("history", StartAt::Earliest)).unwrap();
    for expected in &written {
        check(&within(30, reader.next()).unwrap(), expected);
    }
    let mut rng = fastrand::Rng::with_seed(5);
    for _ in 0..6 {
        let start = rng.usize(0..written.len());
        let mut reader = within(
            30,
            client.open_reader("history", StartAt::Offset(start as u64)),
        )
        .unwrap();
        for expected in &written[start..] {
            check(&within(30, reader.next()).unwrap(), expected);
        }
    }
    // Bulk reads.
    let mut reader = within(30, client.open_reader("history", StartAt::Earliest)).unwrap();
    let mut seen = 0;
    while seen < written.len() {
        let batch = within(30, reader.read_batch(256 << 10)).unwrap();
        assert!(!batch.is_empty());
        for entry in &batch {
            check(entry, &written[seen]);
            seen += 1;
        }
    }
    // Nothing past the end: a reader at the end has nothing ready.
    assert!(reader.try_next().unwrap().is_none());
}

fn tail(client: &Client, writer: &LogWriter, name: &str) {
    let mut reader = within(30, client.open_reader(name, StartAt::Latest)).unwrap();
    for seq in 0..20 {
        let payload = payload(3, seq);
        let offset = within(30, writer.append(payload.clone())).unwrap();
        let acked = Instant::now();
        let entry = within(30, reader.next()).unwrap();
        assert_eq!((entry.offset, &entry.payload), (offset, &payload));
        assert!(
            acked.elapsed() < Duration::from_secs(2),
            "tail took {:?}",
            acked.elapsed()
        );
    }
}

#[test]
fn tail_readers_in_and_out_of_the_writers_client() {
    let config = read_config();
    let (client, etcd) = real_client(config.clone());
    within(30, client.create_log("tail")).unwrap();
    let writer = within(30, client.open_writer("tail")).unwrap();
    writer
        .append_blocking(Bytes::from_static(b"before"))
        .unwrap();
    // In the writer's client: woken by the writer.
    tail(&client, &writer, "tail");
    // Another client (as another process would): polls the store.
    let other = real_client_on(config, &etcd);
    tail(&other, &writer, "tail");
    // A reader follows the log across a writer change (roll and recovery).
    let mut reader = within(30, other.open_reader("tail", StartAt::Latest)).unwrap();
    drop(writer);
    let next = within(30, client.open_writer("tail")).unwrap();
    let offset = within(30, next.append(Bytes::from_static(b"after"))).unwrap();
    let entry = within(30, reader.next()).unwrap();
    assert_eq!((entry.offset, &entry.payload[..]), (offset, &b"after"[..]));
}

#[test]
fn truncation_and_retention() {
    let config = Config {
        segment_bytes_max: 64 << 10,
        ..small_config()
    };
    let (client, etcd) = real_client(config.clone());
    within(30, client.create_log("trunc")).unwrap();
    let writer = within(30, client.open_writer("trunc")).unwrap();
    let mut written = Vec::new();
    for seq in 0..400 {
        let data = Bytes::from(vec![seq as u8; 1000]);
        written.push((within(30, writer.append(data.clone())).unwrap(), data));
    }
    // With the writer open, the end is its durable offset (no listing).
    let err = within(30, client.truncate("trunc", 401)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
    within(30, client.truncate("trunc", 50)).unwrap();
    within(30, writer.close()).unwrap();
    let meta = woodpecker_engine::meta::etcd::EtcdMeta::connect(&etcd).unwrap();
    use woodpecker_engine::meta::MetaStore;
    let log = within(30, client.get_log("trunc")).unwrap();
    let before = within(30, meta.list_segments(log.id)).unwrap();
    assert!(before.len() >= 4, "{} segments", before.len());

    let point = 250u64;
    let err = within(30, client.truncate("trunc", 10_000)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    within(30, client.truncate("trunc", point)).unwrap();
    let err = within(30, client.open_reader("trunc", StartAt::Offset(10))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("truncated"), "{err}");
    let mut reader = within(30, client.open_reader("trunc", StartAt::Earliest)).unwrap();
    assert_eq!(within(30, reader.next()).unwrap().offset, point);

    let deleted = within(60, client.audit_now()).unwrap();
    let after = within(30, meta.list_segments(log.id)).unwrap();
    let gone: Vec<_> = before.iter().filter(|s| s.end_offset <= point).collect();
    assert_eq!(deleted, gone.len());
    assert!(!gone.is_empty());
    assert_eq!(after.len(), before.len() - gone.len());
    assert!(
        after.iter().all(|s| s.end_offset > point),
        "only segments below the point go"
    );
    // Their objects are gone; the rest stays readable.
    let store_check = {
        let layout = woodpecker_engine::layout::Layout::new(&config.key_prefix).unwrap();
        let gone: Vec<u64> = gone.iter().map(|s| s.id).collect();
        let kept: Vec<u64> = after.iter().map(|s| s.id).collect();
        glommio::LocalExecutor::default().run(async move {
            let store = S3Store::new(s3_config()).unwrap();
            let count = |seg| {
                let prefix = layout.segment_prefix(log.id, seg);
                let store = &store;
                async move {
                    woodpecker_engine::store::list_all(store, &prefix)
                        .await
                        .unwrap()
                        .len()
                }
            };
            let mut gone_objects = 0;
            for seg in gone {
                gone_objects += count(seg).await;
            }
            let mut kept_objects = 0;
            for seg in kept {
                kept_objects += count(seg).await;
            }
            (gone_objects, kept_objects)
        })
    };
    assert_eq!(store_check.0, 0, "deleted segments' objects are gone");
    assert!(store_check.1 > 0);
    let mut reader = within(30, client.open_reader("trunc", StartAt::Offset(point))).unwrap();
    for (offset, data) in &written[point as usize..] {
        let entry = within(30, reader.next()).unwrap();
        assert_eq!((entry.offset, &entry.payload), (*offset, data));
    }
    within(30, client.delete_log("trunc")).unwrap();
}

#[test]
fn a_flipped_byte_in_minio_is_reported_as_corrupt() {
    let config = read_config();
    let (client, _) = real_client(config.clone());
    within(30, client.create_log("rot")).unwrap();
    let writer = within(30, client.open_writer("rot")).unwrap();
    for seq in 0..30 {
        within(30, writer.append(payload(1, seq))).unwrap();
        if seq == 14 {
            std::thread::sleep(Duration::from_millis(20)); // end the first fragment
        }
    }
    within(30, writer.close()).unwrap();
    let log = within(30, client.get_log("rot")).unwrap();
    // Flip one byte in the payload area of the last fragment.
    let layout = woodpecker_engine::layout::Layout::new(&config.key_prefix).unwrap();
    let first_bad = glommio::LocalExecutor::default().run(async move {
        let store = S3Store::new(s3_config()).unwrap();
        let fragments = layout.list_fragments(&store, log.id, 0).await.unwrap();
        assert!(fragments.len() >= 2);
        let victim = fragments.last().unwrap();
        let mut bytes = store.get(&victim.key).await.unwrap().to_vec();
        let header = woodpecker_engine::format::FragmentHeader::decode(&bytes).unwrap();
        bytes[64 + 20] ^= 0x40;
        store.put(&victim.key, Bytes::from(bytes)).await.unwrap();
        header.first_offset
    });
    let mut reader = within(30, client.open_reader("rot", StartAt::Earliest)).unwrap();
    for offset in 0..first_bad {
        assert_eq!(within(30, reader.next()).unwrap().offset, offset);
    }
    let err = within(30, reader.next()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    // And it stays an error.
    assert_eq!(
        within(30, reader.next()).unwrap_err().kind(),
        ErrorKind::Corrupt
    );
}

/// A dropped reader stops its task: the shard keeps serving the writer and
/// new readers, and the client shuts down (a spinning reader task would
/// starve the shard's cooperative executor).
#[test]
fn a_dropped_reader_does_not_stall_its_shard() {
    let (client, _, _) = memory_client(small_config());
    within(10, client.create_log("t")).unwrap();
    let writer = within(10, client.open_writer("t")).unwrap();
    for i in 0..50u8 {
        within(10, writer.append(vec![i; 100])).unwrap();
    }
    within(10, writer.close()).unwrap();
    let writer = within(10, client.open_writer("t")).unwrap();
    let mut catch_up = within(10, client.open_reader("t", StartAt::Earliest)).unwrap();
    assert_eq!(within(10, catch_up.next()).unwrap().offset, 0);
    drop(catch_up);
    let mut tail = within(10, client.open_reader("t", StartAt::Latest)).unwrap();
    for i in 0..20u8 {
        let offset = within(10, writer.append(vec![i; 10])).unwrap();
        assert_eq!(within(10, tail.next()).unwrap().offset, offset);
    }
    drop(tail);
    drop(writer);
    let started = Instant::now();
    client.shutdown();
    assert!(started.elapsed() < Duration::from_secs(10));
}

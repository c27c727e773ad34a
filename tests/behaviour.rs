//! One behaviour suite, run against the embedded client (on the real MinIO
//! and etcd) and against the remote client talking to a real
//! `woodpecker serve` process on the same servers: logs, appends read
//! back byte-identical across segment rolls, concurrent appends, readers
//! at the tail, conditional appends, truncation, and the error kinds.

mod served;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use served::*;
use std::ops::Range;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use woodpecker_engine::meta::etcd::{EtcdConfig, EtcdMeta};
use woodpecker_engine::store::s3::S3Config;
use woodpecker_engine::store::{StoreConfig, StoreFactory};
use woodpecker_engine::{ErrorKind, Result};
use woodpecker_net::remote::{RemoteClient, RemoteConfig, RemoteReader, RemoteWriter};
use woodpecker_shards::{
    block_on, Client, Config, LogReader, LogWriter, Properties, ReadEntry, StartAt,
};

/// Fragments and segments small enough that the suite's logs roll.
const FRAGMENT_BYTES: u64 = 16 << 10;
const SEGMENT_BYTES: u64 = 64 << 10;

/// What the suite needs of a client.
trait Wal: Sync {
    fn create_log(&self, name: &str) -> Result<()>;
    fn log_names(&self) -> Result<Vec<String>>;
    fn delete_log(&self, name: &str) -> Result<()>;
    fn truncate(&self, name: &str, offset: u64) -> Result<()>;
    fn writer(&self, name: &str) -> Result<Box<dyn Writer>>;
    fn reader(&self, name: &str, start: StartAt) -> Result<Box<dyn Reader>>;
}

trait Writer: Send + Sync {
    fn append_with(&self, payload: Bytes, props: Properties) -> BoxFuture<'static, Result<u64>>;
    fn append_batch_with(
        &self,
        entries: Vec<(Bytes, Properties)>,
    ) -> BoxFuture<'static, Result<Range<u64>>>;
    fn append_batch_expecting(
        &self,
        expected: u64,
        entries: Vec<(Bytes, Properties)>,
    ) -> BoxFuture<'static, Result<Range<u64>>>;
    fn close(self: Box<Self>) -> Result<()>;
}

trait Reader: Send {
    fn next(&mut self) -> BoxFuture<'_, Result<ReadEntry>>;
}

/// The embedded client and the remote one, behind the suite's traits:
/// their methods have the same names and shapes.
struct Embedded(Client);
struct Remote(RemoteClient);

macro_rules! adapt {
    ($wal:ident, $writer:ty, $reader:ty) => {
        impl Wal for $wal {
            fn create_log(&self, name: &str) -> Result<()> {
                block_on(self.0.create_log(name)).map(drop)
            }
            fn log_names(&self) -> Result<Vec<String>> {
                Ok(block_on(self.0.list_logs())?
                    .into_iter()
                    .map(|l| l.name)
                    .collect())
            }
            fn delete_log(&self, name: &str) -> Result<()> {
                block_on(self.0.delete_log(name))
            }
            fn truncate(&self, name: &str, offset: u64) -> Result<()> {
                block_on(self.0.truncate(name, offset))
            }
            fn writer(&self, name: &str) -> Result<Box<dyn Writer>> {
                Ok(Box::new(block_on(self.0.open_writer(name))?))
            }
            fn reader(&self, name: &str, start: StartAt) -> Result<Box<dyn Reader>> {
                Ok(Box::new(block_on(self.0.open_reader(name, start))?))
            }
        }

        impl Writer for $writer {
            fn append_with(
                &self,
                payload: Bytes,
                props: Properties,
            ) -> BoxFuture<'static, Result<u64>> {
                <$writer>::append_with(self, payload, props).boxed()
            }
            fn append_batch_with(
                &self,
                entries: Vec<(Bytes, Properties)>,
            ) -> BoxFuture<'static, Result<Range<u64>>> {
                <$writer>::append_batch_with(self, entries).boxed()
            }
            fn append_batch_expecting(
                &self,
                expected: u64,
                entries: Vec<(Bytes, Properties)>,
            ) -> BoxFuture<'static, Result<Range<u64>>> {
                <$writer>::append_batch_expecting(self, expected, entries).boxed()
            }
            fn close(self: Box<Self>) -> Result<()> {
                block_on(<$writer>::close(*self))
            }
        }

        impl Reader for $reader {
            fn next(&mut self) -> BoxFuture<'_, Result<ReadEntry>> {
                <$reader>::next(self).boxed()
            }
        }
    };
}

adapt!(Embedded, LogWriter, LogReader);
adapt!(Remote, RemoteWriter, RemoteReader);

/// Runs the suite on both clients.
fn on_both(suite: impl Fn(&dyn Wal)) {
    let mut etcd = EtcdConfig::from_env().expect("etcd from scripts/servers.sh");
    etcd.prefix = format!("/woodpecker-behaviour/{}", unique("e"));
    let embedded = Client::start(
        Config {
            fragment_bytes_max: FRAGMENT_BYTES as usize,
            segment_bytes_max: SEGMENT_BYTES,
            key_prefix: unique("behaviour"),
            ..Config::default()
        },
        StoreFactory::new(StoreConfig::S3(S3Config::from_env().expect("MinIO"))).unwrap(),
        Arc::new(EtcdMeta::connect(&etcd).unwrap()),
    )
    .unwrap();
    suite(&Embedded(embedded.clone()));
    embedded.shutdown();

    let (fragment, segment) = (FRAGMENT_BYTES.to_string(), SEGMENT_BYTES.to_string());
    let served = Served::start_with(
        &[],
        &[
            ("WOODPECKER_ENGINE_FRAGMENT_BYTES_MAX", &fragment),
            ("WOODPECKER_ENGINE_SEGMENT_BYTES_MAX", &segment),
        ],
        Stdio::inherit(),
        "http",
    );
    let remote = RemoteClient::new(RemoteConfig::new(served.base.clone())).unwrap();
    suite(&Remote(remote));
}

/// `future`, failing the test past `seconds`: nothing may hang.
fn within<T>(seconds: u64, future: impl std::future::Future<Output = T>) -> T {
    let deadline = futures_timer::Delay::new(Duration::from_secs(seconds));
    match block_on(futures::future::select(Box::pin(future), deadline)) {
        futures::future::Either::Left((value, _)) => value,
        futures::future::Either::Right(_) => panic!("timed out after {seconds} s"),
    }
}

fn body(i: u64) -> (Bytes, Properties) {
    let mut payload = format!("entry {i}:").into_bytes();
    payload.resize(700 + (i as usize * 131) % 900, (i % 251) as u8);
    let props = vec![(
        Bytes::from_static(b"seq"),
        Bytes::from(i.to_be_bytes().to_vec()),
    )];
    (Bytes::from(payload), props)
}

fn assert_entry(entry: &ReadEntry, i: u64) {
    let (payload, props) = body(i);
    assert_eq!(entry.offset, i);
    assert_eq!(entry.payload, payload, "payload of {i}");
    assert_eq!(entry.properties, props, "properties of {i}");
}

#[test]
fn logs_are_created_listed_and_deleted() {
    on_both(|wal| {
        let name = unique("crud");
        wal.create_log(&name).unwrap();
        assert_eq!(
            wal.create_log(&name).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        assert!(wal.log_names().unwrap().contains(&name));
        let missing = unique("missing");
        let err = wal.writer(&missing).err().expect("no such log");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        wal.delete_log(&name).unwrap();
        assert!(!wal.log_names().unwrap().contains(&name));
    });
}

#[test]
fn appends_read_back_byte_identical_across_rolls() {
    on_both(|wal| {
        let name = unique("roll");
        wal.create_log(&name).unwrap();
        let writer = wal.writer(&name).unwrap();
        // Pipelined singles and batches: offsets follow call order.
        let mut acks = Vec::new();
        let mut i = 0;
        while i < 600 {
            if i % 100 < 50 {
                let (payload, props) = body(i);
                acks.push(
                    writer
                        .append_with(payload, props)
                        .map(|r| r.map(|o| o..o + 1))
                        .boxed(),
                );
                i += 1;
            } else {
                acks.push(writer.append_batch_with((i..i + 10).map(body).collect()));
                i += 10;
            }
        }
        let mut next = 0;
        for ack in acks {
            let range = within(60, ack).unwrap();
            assert_eq!(range.start, next, "acks follow call order");
            next = range.end;
        }
        assert_eq!(next, 600);
        writer.close().unwrap();

        let mut reader = wal.reader(&name, StartAt::Earliest).unwrap();
        for i in 0..600 {
            assert_entry(&within(60, reader.next()).unwrap(), i);
        }
        let mut middle = wal.reader(&name, StartAt::Offset(433)).unwrap();
        assert_entry(&within(60, middle.next()).unwrap(), 433);
    });
}

#[test]
fn concurrent_appenders_get_dense_offsets_in_their_call_order() {
    on_both(|wal| {
        let name = unique("concurrent");
        wal.create_log(&name).unwrap();
        let writer = wal.writer(&name).unwrap();
        let per_thread = 150u64;
        let offsets: Vec<Vec<u64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4u64)
                .map(|t| {
                    let writer = &writer;
                    scope.spawn(move || {
                        let acks: Vec<_> = (0..per_thread)
                            .map(|i| {
                                let payload = Bytes::from(format!("t{t} i{i}"));
                                writer.append_with(payload, Properties::new())
                            })
                            .collect();
                        acks.into_iter().map(|a| within(60, a).unwrap()).collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut all: Vec<u64> = offsets.iter().flatten().copied().collect();
        for thread in &offsets {
            assert!(
                thread.windows(2).all(|w| w[0] < w[1]),
                "one thread's appends keep its order"
            );
        }
        all.sort_unstable();
        assert_eq!(all, (0..4 * per_thread).collect::<Vec<_>>());
        writer.close().unwrap();
    });
}

#[test]
fn a_reader_at_the_tail_sees_new_entries() {
    on_both(|wal| {
        let name = unique("tail");
        wal.create_log(&name).unwrap();
        let writer = wal.writer(&name).unwrap();
        within(60, writer.append_batch_with((0..5).map(body).collect())).unwrap();
        let mut reader = wal.reader(&name, StartAt::Latest).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        within(60, writer.append_batch_with((5..15).map(body).collect())).unwrap();
        for i in 5..15 {
            assert_entry(&within(60, reader.next()).unwrap(), i);
        }
        writer.close().unwrap();
    });
}

#[test]
fn latest_is_the_end_when_the_reader_opens() {
    on_both(|wal| {
        let name = unique("latest");
        wal.create_log(&name).unwrap();
        let writer = wal.writer(&name).unwrap();
        let mut next = 0;
        for round in 0..5 {
            within(
                60,
                writer.append_batch_with((next..next + 3).map(body).collect()),
            )
            .unwrap();
            next += 3;
            // No pause: the entry appended at once after the open is read.
            let mut reader = wal.reader(&name, StartAt::Latest).unwrap();
            let (payload, props) = body(next);
            within(60, writer.append_with(payload, props)).unwrap();
            let entry = within(60, reader.next()).unwrap();
            assert_eq!(entry.offset, next, "round {round}");
            assert_entry(&entry, next);
            next += 1;
        }
        writer.close().unwrap();
    });
}

#[test]
fn a_conditional_append_is_written_only_at_the_end() {
    on_both(|wal| {
        let name = unique("cond");
        wal.create_log(&name).unwrap();
        let writer = wal.writer(&name).unwrap();
        assert_eq!(
            within(
                60,
                writer.append_batch_expecting(0, (0..3).map(body).collect())
            )
            .unwrap(),
            0..3
        );
        let err = within(60, writer.append_batch_expecting(1, vec![body(99)])).unwrap_err();
        assert_eq!(
            (err.kind(), err.log_end()),
            (ErrorKind::ConditionFailed, Some(3))
        );
        assert_eq!(
            within(60, writer.append_batch_with(vec![body(3)])).unwrap(),
            3..4
        );
        writer.close().unwrap();
        let mut reader = wal.reader(&name, StartAt::Earliest).unwrap();
        for i in 0..4 {
            assert_entry(&within(60, reader.next()).unwrap(), i);
        }
    });
}

#[test]
fn truncation_refuses_reads_below_it() {
    on_both(|wal| {
        let name = unique("trunc");
        wal.create_log(&name).unwrap();
        let writer = wal.writer(&name).unwrap();
        within(60, writer.append_batch_with((0..20).map(body).collect())).unwrap();
        wal.truncate(&name, 10).unwrap();
        let below = wal
            .reader(&name, StartAt::Offset(3))
            .and_then(|mut reader| within(60, reader.next()));
        assert_eq!(below.unwrap_err().kind(), ErrorKind::Invalid);
        let mut reader = wal.reader(&name, StartAt::Offset(12)).unwrap();
        assert_entry(&within(60, reader.next()).unwrap(), 12);
        writer.close().unwrap();
    });
}

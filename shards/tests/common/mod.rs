//! Helpers for the write-path tests: clients on memory or on the real
//! servers, appender threads, and checks against a full scan.
#![allow(dead_code)]

pub mod flaky_meta;

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use woodpecker_engine::meta::etcd::{EtcdConfig, EtcdMeta};
use woodpecker_engine::meta::memory::MemoryMeta;
use woodpecker_engine::meta::MetaStore;
use woodpecker_engine::store::fault::{FaultRule, FaultStore};
use woodpecker_engine::store::memory::MemoryStore;
use woodpecker_engine::store::s3::S3Config;
use woodpecker_engine::store::{ObjectStore, StoreConfig, StoreFactory};
use woodpecker_shards::{Client, Config, LogWriter};

const SERVERS_HINT: &str = "start the test servers with `scripts/servers.sh start` and source \
     the environment it prints (scripts/test.sh does both)";

pub fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{nanos:x}{:08x}", fastrand::u32(..))
}

/// Small fragments and a short flush interval, so tests make many fragments.
pub fn small_config() -> Config {
    Config {
        fragment_bytes_max: 64 << 10,
        shard_buffer_bytes_max: 4 << 20,
        segment_bytes_max: 64 << 20,
        flush_interval_ms: 2,
        upload_backoff_initial_ms: 1,
        upload_backoff_max_ms: 20,
        key_prefix: unique(),
        ..Config::default()
    }
}

/// 4 KiB fragments of three ~1 KiB entries ([`entry`]); a segment rolls
/// at its second fragment.
pub fn rolling_config() -> Config {
    Config {
        fragment_bytes_max: 4096,
        segment_bytes_max: 4096,
        shard_buffer_bytes_max: 64 << 10,
        ..small_config()
    }
}

/// A 1,000-byte payload that names its sequence number.
pub fn entry(seq: usize) -> Bytes {
    let mut bytes = format!("entry {seq}:").into_bytes();
    bytes.resize(1000, seq as u8);
    Bytes::from(bytes)
}

pub fn memory_client(config: Config) -> (Client, MemoryStore, Arc<MemoryMeta>) {
    let store = MemoryStore::new();
    let meta = Arc::new(MemoryMeta::new());
    let client = Client::start(
        config,
        StoreFactory::with_memory(store.clone()),
        meta.clone(),
    )
    .expect("client");
    (client, store, meta)
}

pub fn etcd_config() -> EtcdConfig {
    let mut config = EtcdConfig::from_env()
        .unwrap_or_else(|e| panic!("no etcd server for this test ({e}): {SERVERS_HINT}"));
    config.prefix = format!("/woodpecker-test/{}", unique());
    config
}

pub fn s3_config() -> S3Config {
    S3Config::from_env()
        .unwrap_or_else(|e| panic!("no S3 server for this test ({e}): {SERVERS_HINT}"))
}

/// A client on the real MinIO and etcd, under fresh prefixes.
pub fn real_client(config: Config) -> (Client, EtcdConfig) {
    let etcd = etcd_config();
    let client = real_client_on(config, &etcd);
    (client, etcd)
}

pub fn real_client_on(config: Config, etcd: &EtcdConfig) -> Client {
    let meta: Arc<dyn MetaStore> = Arc::new(EtcdMeta::connect(etcd).expect("etcd"));
    Client::start(
        config,
        StoreFactory::new(StoreConfig::S3(s3_config())).expect("S3 store"),
        meta,
    )
    .expect("client")
}

/// Runs `future` on a tokio runtime, failing the test if it takes longer
/// than `seconds`: nothing may hang.
pub fn within<F: std::future::Future>(seconds: u64, future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(seconds), future)
                .await
                .unwrap_or_else(|_| panic!("timed out after {seconds} s"))
        })
}

/// A payload that says who wrote it, of a size that varies with `seq`.
pub fn payload(writer: usize, seq: usize) -> Bytes {
    let len = (seq * 37 + writer * 11) % 1500;
    let mut bytes = format!("w{writer}s{seq}:").into_bytes();
    bytes.extend((0..len).map(|i| (i as u8).wrapping_mul(writer as u8 + 3)));
    Bytes::from(bytes)
}

/// `threads` threads each append `per_thread` entries with up to `window`
/// in flight. Every ack is checked to come only once every lower offset is
/// durable. Returns (offset, payload) of every acknowledged entry.
pub fn concurrent_appends(
    writer: &Arc<LogWriter>,
    threads: usize,
    per_thread: usize,
    window: usize,
) -> Vec<(u64, Bytes)> {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let writer = writer.clone();
            std::thread::spawn(move || {
                within(120, async move {
                    let mut acked = Vec::with_capacity(per_thread);
                    let mut in_flight = FuturesUnordered::new();
                    for seq in 0..per_thread {
                        let data = payload(t, seq);
                        let append = writer.append(data.clone());
                        in_flight.push(async move { (append.await, data) });
                        while in_flight.len() >= window {
                            acked.push(check_ack(&writer, in_flight.next().await.unwrap()));
                        }
                    }
                    while let Some(done) = in_flight.next().await {
                        acked.push(check_ack(&writer, done));
                    }
                    acked
                })
            })
        })
        .collect();
    handles
        .into_iter()
        .flat_map(|h| h.join().expect("appender thread"))
        .collect()
}

fn check_ack(
    writer: &LogWriter,
    (result, data): (woodpecker_engine::Result<u64>, Bytes),
) -> (u64, Bytes) {
    let offset = result.expect("append acknowledged");
    assert!(
        writer.durable_offset() > offset,
        "offset {offset} acknowledged before the prefix below it was durable"
    );
    (offset, data)
}

/// The log holds exactly `acked`, densely from `first`, byte for byte.
pub fn assert_log_holds(client: &Client, name: &str, first: u64, acked: &[(u64, Bytes)]) {
    let mut acked = acked.to_vec();
    acked.sort_by_key(|(offset, _)| *offset);
    for (i, (offset, _)) in acked.iter().enumerate() {
        assert_eq!(
            *offset,
            first + i as u64,
            "acknowledged offsets are dense and unique"
        );
    }
    let entries = within(120, client.scan(name)).expect("scan");
    let visible: Vec<_> = entries.iter().filter(|e| e.offset >= first).collect();
    assert_eq!(
        visible.len(),
        acked.len(),
        "every acknowledged entry, nothing else"
    );
    for (entry, (offset, data)) in visible.iter().zip(&acked) {
        assert_eq!(entry.offset, *offset);
        assert!(entry.payload == data[..], "entry {offset} differs");
    }
}

/// A client whose shards see `store` through fault rules; and a clean
/// client on the same store and metadata, to check what really landed.
pub fn fault_clients(
    config: Config,
    rules: Vec<FaultRule>,
    fail_after: Option<u64>,
) -> (Client, Client) {
    fault_clients_on(config, Arc::new(MemoryMeta::new()), rules, fail_after)
}

/// [`fault_clients`] on the given metadata.
pub fn fault_clients_on(
    config: Config,
    meta: Arc<MemoryMeta>,
    rules: Vec<FaultRule>,
    fail_after: Option<u64>,
) -> (Client, Client) {
    let store = MemoryStore::new();
    let inner = store.clone();
    let factory = StoreFactory::custom(move || {
        let faulty = FaultStore::new(inner.clone(), 42);
        for rule in &rules {
            faulty.add_rule(rule.clone());
        }
        if let Some(n) = fail_after {
            faulty.fail_after(n);
        }
        Ok(Rc::new(faulty) as Rc<dyn ObjectStore>)
    });
    let faulty = Client::start(config.clone(), factory, meta.clone()).unwrap();
    let clean = Client::start(config, StoreFactory::with_memory(store), meta).unwrap();
    (faulty, clean)
}

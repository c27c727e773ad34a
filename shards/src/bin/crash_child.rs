//! Test fixture for `tests/crash.rs` (not a tool): opens the writer of a log (fencing
//! any earlier one) on the real MinIO and etcd, appends as fast as it can
//! with 32 appends in flight, and prints `offset crc32c length` for every
//! acknowledged entry, until it is killed (or after 60 s).
//!
//! Usage: crash_child LOG KEY_PREFIX ETCD_PREFIX ROUND

use bytes::Bytes;
use futures::stream::{FuturesUnordered, StreamExt};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use woodpecker_engine::meta::etcd::{EtcdConfig, EtcdMeta};
use woodpecker_engine::store::s3::S3Config;
use woodpecker_engine::store::{StoreConfig, StoreFactory};
use woodpecker_shards::{block_on, Client, Config};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, log, key_prefix, etcd_prefix, round] = &args[..] else {
        panic!("usage: crash_child LOG KEY_PREFIX ETCD_PREFIX ROUND");
    };
    let round: usize = round.parse().unwrap();
    let etcd = EtcdConfig {
        prefix: etcd_prefix.clone(),
        ..EtcdConfig::from_env().unwrap()
    };
    let config = Config {
        fragment_bytes_max: 256 << 10,
        flush_interval_ms: 3,
        key_prefix: key_prefix.clone(),
        ..Config::default()
    };
    let meta = Arc::new(EtcdMeta::connect(&etcd).unwrap());
    let store = StoreFactory::new(StoreConfig::S3(S3Config::from_env().unwrap())).unwrap();
    let client = Client::start(config, store, meta).unwrap();
    let writer = block_on(client.open_writer(log)).unwrap();
    let started = Instant::now();
    let stdout = std::io::stdout();
    block_on(async {
        let mut in_flight = FuturesUnordered::new();
        let mut seq = 0usize;
        while started.elapsed() < Duration::from_secs(60) {
            while in_flight.len() < 32 {
                let data = payload(round, seq);
                let crc = crc32c::crc32c(&data);
                let len = data.len();
                let append = writer.append(data);
                in_flight.push(async move { (append.await, crc, len) });
                seq += 1;
            }
            let (result, crc, len) = in_flight.next().await.unwrap();
            let offset = result.expect("append");
            let mut out = stdout.lock();
            writeln!(out, "{offset} {crc} {len}").unwrap();
            out.flush().unwrap();
        }
    });
}

fn payload(round: usize, seq: usize) -> Bytes {
    let len = (seq * 131 + round * 17) % 3000;
    let mut bytes = format!("r{round}s{seq}:").into_bytes();
    bytes.extend((0..len).map(|i| (i as u8) ^ (seq as u8)));
    Bytes::from(bytes)
}

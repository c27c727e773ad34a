//! Requests abandoned at their deadline on silent connections (a partition
//! that keeps the sockets open and answers nothing) must close those
//! connections: left open, each keeps a socket and a pending read on the
//! shard's ring, and enough of them wedge the shard.

mod common;

use std::time::{Duration, Instant};
use woodpecker_engine::store::s3::{S3Config, S3Store};
use woodpecker_engine::store::ObjectStore;
use woodpecker_testkit::{FaultProxy, ProxyMode};

/// A fault proxy in front of the test MinIO (seeded), and the MinIO
/// settings pointing at it.
fn proxied_minio(seed: u64) -> (FaultProxy, S3Config) {
    let real = common::s3_config();
    let target = real
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("the test MinIO listens on an IP address");
    let proxy = FaultProxy::start(target, seed);
    let config = S3Config {
        endpoint: format!("http://{}", proxy.addr()),
        ..real
    };
    (proxy, config)
}

#[test]
fn requests_timed_out_on_a_partition_close_their_connections() {
    let (proxy, proxied) = proxied_minio(3);
    let config = S3Config {
        request_timeout_ms: 300,
        retries_max: 0,
        ..proxied
    };
    common::run_local(|| async move {
        let store = S3Store::new(config).unwrap();
        proxy.set(ProxyMode::Partition);
        let keys: Vec<String> = (0..16).map(|i| format!("partitioned/{i}")).collect();
        let gets = keys.iter().map(|key| store.head(key));
        for outcome in futures::future::join_all(gets).await {
            assert!(outcome.is_err(), "a request through a partition failed");
        }
        proxy.set(ProxyMode::Pass);
        let deadline = Instant::now() + Duration::from_secs(5);
        while proxy.open_connections() > 0 && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            proxy.open_connections(),
            0,
            "connections abandoned at the deadline are still open"
        );
        // And the store works again, on new connections.
        let missing = store.head("partitioned/none").await;
        assert!(
            matches!(
                missing,
                Err(woodpecker_engine::store::StoreError::NotFound(_))
            ),
            "{missing:?}"
        );
    });
}

/// Keep-alive connections that sat idle through a partition are as dead
/// as the ones it caught mid-request (a middlebox that lost their state):
/// after the first request on one times out, the retry must not take the
/// next dead one from the pool, or a request walks through every idle
/// connection, one deadline each, and fails although the network healed.
#[test]
fn a_request_after_a_partition_does_not_retry_on_dead_idle_connections() {
    let (proxy, proxied) = proxied_minio(5);
    let timeout_ms = 300;
    let config = S3Config {
        request_timeout_ms: timeout_ms,
        retries_max: 4,
        retry_backoff_initial_ms: 1,
        retry_backoff_max_ms: 5,
        ..proxied
    };
    common::run_local(|| async move {
        let store = S3Store::new(config).unwrap();
        // Eight connections, all idle in the pool afterwards.
        let keys: Vec<String> = (0..8).map(|i| format!("idle/{i}")).collect();
        let heads = keys.iter().map(|key| store.head(key));
        for outcome in futures::future::join_all(heads).await {
            assert!(
                matches!(
                    outcome,
                    Err(woodpecker_engine::store::StoreError::NotFound(_))
                ),
                "{outcome:?}"
            );
        }
        assert_eq!(
            proxy.open_connections(),
            8,
            "the pool keeps its connections"
        );
        // A partition comes and goes while they sit idle.
        proxy.set(ProxyMode::Partition);
        glommio::timer::sleep(Duration::from_millis(50)).await;
        proxy.set(ProxyMode::Pass);
        let started = Instant::now();
        let outcome = store.head("idle/none").await;
        let took = started.elapsed();
        assert!(
            matches!(
                outcome,
                Err(woodpecker_engine::store::StoreError::NotFound(_))
            ),
            "the request after the partition healed failed: {outcome:?} after {took:?}"
        );
        assert!(
            took < Duration::from_millis(2 * timeout_ms + 200),
            "the request took {took:?}: it retried on more than one dead connection"
        );
    });
}

//! Requests abandoned at their deadline on silent connections (a partition
//! that keeps the sockets open and answers nothing) must close those
//! connections: left open, each keeps a socket and a pending read on the
//! shard's ring, and enough of them wedge the shard.

mod common;

use std::time::{Duration, Instant};
use woodpecker_engine::store::s3::{S3Config, S3Store};
use woodpecker_engine::store::ObjectStore;
use woodpecker_testkit::{FaultProxy, ProxyMode};

#[test]
fn requests_timed_out_on_a_partition_close_their_connections() {
    let real = common::s3_config();
    let target = real
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("the test MinIO listens on an IP address");
    let proxy = FaultProxy::start(target, 3);
    let config = S3Config {
        endpoint: format!("http://{}", proxy.addr()),
        request_timeout_ms: 300,
        retries_max: 0,
        ..real
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

//! etcd restarted or partitioned under a client: requests fail as
//! `Unavailable` while it is away and work again after; segment and epoch
//! watches resume and fire.

mod common;

use common::PrivateEtcd;
use std::time::Duration;
use woodpecker_engine::meta::etcd::{EtcdConfig, EtcdMeta};
use woodpecker_engine::meta::{MetaStore, SegmentInfo};
use woodpecker_testkit::{FaultProxy, ProxyMode};

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(60), future)
                .await
                .expect("timed out")
        })
}

/// A client of `etcd` with short request timeouts.
fn connect(etcd: &PrivateEtcd) -> EtcdMeta {
    EtcdMeta::connect(&EtcdConfig {
        endpoints: vec![etcd.endpoint()],
        request_timeout_ms: 2_000,
        ..EtcdConfig::default()
    })
    .unwrap()
}

#[test]
fn segment_watches_survive_an_etcd_restart() {
    let mut etcd = PrivateEtcd::start();
    let meta = connect(&etcd);
    block_on(async {
        let log = meta.create_log("watched").await.unwrap();
        let epoch = meta.bump_epoch(log.id, 0).await.unwrap();
        let mut watch = meta.watch_segments(log.id).await.unwrap();
        meta.create_segment(log.id, epoch, &SegmentInfo::new_open(0, epoch, 0))
            .await
            .unwrap();
        watch.changed().await.unwrap();

        etcd.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        etcd.restart();
        // Calls work again once the client reconnects.
        let mut created = Err(None);
        for _ in 0..100 {
            let segment = SegmentInfo::new_open(1, epoch, 0);
            match meta.create_segment(log.id, epoch, &segment).await {
                Ok(()) => {
                    created = Ok(());
                    break;
                }
                Err(err) => created = Err(Some(err)),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        created.expect("etcd answers again after its restart");
        // The watch resumed and saw it (or reported the gap as a change).
        tokio::time::timeout(Duration::from_secs(10), watch.changed())
            .await
            .expect("the watch fires after the restart")
            .expect("the watch survived the restart");
    });
}

#[test]
fn epoch_watches_survive_an_etcd_restart() {
    let mut etcd = PrivateEtcd::start();
    let meta = connect(&etcd);
    block_on(async {
        let log = meta.create_log("fenced").await.unwrap();
        let epoch = meta.bump_epoch(log.id, 0).await.unwrap();
        let mut watch = meta.watch_epoch(log.id).await.unwrap();
        etcd.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        etcd.restart();
        let mut bumped = None;
        for _ in 0..100 {
            if let Ok(next) = meta.bump_epoch(log.id, epoch).await {
                bumped = Some(next);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let bumped = bumped.expect("etcd answers again after its restart");
        let seen = tokio::time::timeout(Duration::from_secs(10), watch.above(epoch))
            .await
            .expect("the epoch watch sees the bump made after the restart")
            .unwrap();
        assert_eq!(seen, bumped);
    });
}

/// A partition that loses the connection's state (the proxy keeps the old
/// connection open but forwards nothing, ever) is found by the keep-alive:
/// the watch is re-established on a new connection and sees changes made
/// after the partition healed.
#[test]
fn a_watch_behind_a_partition_is_re_established_by_the_keep_alive() {
    let etcd = PrivateEtcd::start();
    let target = etcd.endpoint().parse().unwrap();
    let proxy = FaultProxy::start(target, 7);
    let through_proxy = EtcdMeta::connect(&EtcdConfig {
        endpoints: vec![proxy.addr()],
        request_timeout_ms: 2_000,
        ..EtcdConfig::default()
    })
    .unwrap();
    let direct = EtcdMeta::connect(&EtcdConfig {
        endpoints: vec![etcd.endpoint()],
        ..EtcdConfig::default()
    })
    .unwrap();
    block_on(async {
        let log = direct.create_log("partitioned").await.unwrap();
        let epoch = direct.bump_epoch(log.id, 0).await.unwrap();
        let mut watch = through_proxy.watch_segments(log.id).await.unwrap();
        proxy.set(ProxyMode::Partition);
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.set(ProxyMode::Pass);
        // Drain any wake-up from before the change.
        let _ = tokio::time::timeout(Duration::from_millis(100), watch.changed()).await;
        direct
            .create_segment(log.id, epoch, &SegmentInfo::new_open(0, epoch, 0))
            .await
            .unwrap();
        let keep_alive = EtcdConfig::default();
        let bound = Duration::from_millis(
            keep_alive.keep_alive_interval_ms + keep_alive.keep_alive_timeout_ms + 10_000,
        );
        tokio::time::timeout(bound, watch.changed())
            .await
            .expect("the watch fires once the keep-alive found the dead connection")
            .unwrap();
    });
}

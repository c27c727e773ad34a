//! etcd restarted under a client: requests fail as `Unavailable` while it
//! is down and work again after; segment watches resume and fire.

mod common;

use common::PrivateEtcd;
use std::time::Duration;
use woodpecker_engine::meta::etcd::{EtcdConfig, EtcdMeta};
use woodpecker_engine::meta::{MetaStore, SegmentInfo};

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

#[test]
fn segment_watches_survive_an_etcd_restart() {
    let mut etcd = PrivateEtcd::start();
    let config = EtcdConfig {
        endpoints: vec![etcd.endpoint()],
        request_timeout_ms: 2_000,
        ..EtcdConfig::default()
    };
    let meta = EtcdMeta::connect(&config).unwrap();
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

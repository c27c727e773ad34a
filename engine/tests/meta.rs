//! The metadata contract (the fencing guarantees on `MetaStore`), run
//! against the in-memory implementation and the real etcd.

mod common;

use futures::executor::block_on;
use std::time::Duration;
use woodpecker_engine::meta::etcd::{EtcdConfig, EtcdMeta};
use woodpecker_engine::meta::memory::MemoryMeta;
use woodpecker_engine::meta::{MetaError, MetaStore, SealInfo, SegmentInfo, SegmentState};

/// Fails instead of hanging if a watch never fires.
async fn within<F: std::future::Future>(future: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(10), future)
        .await
        .expect("a watch fired")
}

/// Runs `future` on a tokio runtime (for `within`'s timer).
fn run<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

async fn contract<M: MetaStore>(meta: &M) {
    // Logs: create, duplicate, get, list, bad names.
    let a = meta.create_log("orders").await.unwrap();
    assert_eq!((a.epoch, a.truncated_below), (0, 0));
    assert!(matches!(
        meta.create_log("orders").await,
        Err(MetaError::AlreadyExists(_))
    ));
    let b = meta.create_log("events").await.unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(meta.get_log("orders").await.unwrap(), a);
    let names: Vec<String> = meta
        .list_logs()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["events", "orders"]);
    assert!(matches!(
        meta.get_log("missing").await,
        Err(MetaError::NotFound(_))
    ));
    assert!(matches!(
        meta.create_log("bad/name").await,
        Err(MetaError::Invalid(_))
    ));

    // Guarantee 1: epochs are a compare-and-swap.
    assert_eq!(meta.bump_epoch(a.id, 0).await.unwrap(), 1);
    assert!(matches!(
        meta.bump_epoch(a.id, 0).await,
        Err(MetaError::Fenced {
            caller: 0,
            current: 1
        })
    ));
    assert_eq!(meta.get_log("orders").await.unwrap().epoch, 1);

    // Guarantees 2 and 3: fenced, at-most-once segment creation.
    let seg0 = SegmentInfo::new_open(0, 1, 0);
    meta.create_segment(a.id, 1, &seg0).await.unwrap();
    assert!(matches!(
        meta.create_segment(a.id, 1, &seg0).await,
        Err(MetaError::AlreadyExists(_))
    ));
    assert!(matches!(
        meta.create_segment(a.id, 0, &SegmentInfo::new_open(1, 0, 0))
            .await,
        Err(MetaError::Fenced { .. })
    ));

    // A new writer takes over: the old epoch can no longer seal.
    assert_eq!(meta.bump_epoch(a.id, 1).await.unwrap(), 2);
    let seal = SealInfo {
        end_offset: 42,
        fragment_count: 3,
        bytes: 4096,
    };
    assert!(matches!(
        meta.seal_segment(a.id, 1, 0, seal).await,
        Err(MetaError::Fenced {
            caller: 1,
            current: 2
        })
    ));
    assert_eq!(
        meta.list_segments(a.id).await.unwrap()[0].state,
        SegmentState::Open
    );

    // Guarantee 4: the current writer seals once, and it is final.
    let sealed = meta.seal_segment(a.id, 2, 0, seal).await.unwrap();
    assert_eq!(
        (sealed.state, sealed.end_offset, sealed.fragment_count),
        (SegmentState::Sealed, 42, 3)
    );
    let again = SealInfo {
        end_offset: 50,
        ..seal
    };
    assert!(matches!(
        meta.seal_segment(a.id, 2, 0, again).await,
        Err(MetaError::Conflict(_))
    ));
    assert!(matches!(
        meta.seal_segment(a.id, 2, 9, seal).await,
        Err(MetaError::NotFound(_))
    ));
    meta.create_segment(a.id, 2, &SegmentInfo::new_open(1, 2, 42))
        .await
        .unwrap();
    let segments = meta.list_segments(a.id).await.unwrap();
    assert_eq!(segments.iter().map(|s| s.id).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(segments[0].end_offset, 42);

    // Guarantee 5: truncation only moves forward.
    meta.truncate(a.id, 10).await.unwrap();
    meta.truncate(a.id, 5).await.unwrap();
    assert_eq!(meta.get_log("orders").await.unwrap().truncated_below, 10);

    // Guarantee 7: only sealed segments wholly below the point are deleted;
    // and a segment watch sees changes.
    let mut watch = meta.watch_segments(a.id).await.unwrap();
    assert!(matches!(
        meta.delete_segment(a.id, 0).await,
        Err(MetaError::Conflict(_))
    ));
    meta.truncate(a.id, 42).await.unwrap();
    assert!(
        matches!(
            meta.delete_segment(a.id, 1).await,
            Err(MetaError::Conflict(_))
        ),
        "open"
    );
    meta.delete_segment(a.id, 0).await.unwrap();
    within(watch.changed()).await.unwrap();
    let ids: Vec<u64> = meta
        .list_segments(a.id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, [1]);
    meta.seal_segment(
        a.id,
        2,
        1,
        SealInfo {
            end_offset: 50,
            fragment_count: 1,
            bytes: 10,
        },
    )
    .await
    .unwrap();
    within(watch.changed()).await.unwrap();
    meta.create_segment(a.id, 2, &SegmentInfo::new_open(2, 2, 50))
        .await
        .unwrap();
    within(watch.changed()).await.unwrap();

    // A seal below the segment's first offset only voids it: no fragments,
    // no bytes; it then starts (and ends) where the log stood.
    meta.create_segment(a.id, 2, &SegmentInfo::new_open(3, 2, 60))
        .await
        .unwrap();
    let short = SealInfo {
        end_offset: 55,
        fragment_count: 1,
        bytes: 10,
    };
    assert!(matches!(
        meta.seal_segment(a.id, 2, 3, short).await,
        Err(MetaError::Invalid(_))
    ));
    let void = SealInfo {
        end_offset: 55,
        fragment_count: 0,
        bytes: 0,
    };
    let voided = meta.seal_segment(a.id, 2, 3, void).await.unwrap();
    assert!(voided.is_empty_sealed());
    assert_eq!((voided.start_offset(), voided.end_offset), (55, 55));

    // Deleting a log removes its records; the name can be reused with a new id.
    meta.delete_log("orders").await.unwrap();
    assert!(matches!(
        meta.get_log("orders").await,
        Err(MetaError::NotFound(_))
    ));
    assert!(matches!(
        meta.list_segments(a.id).await,
        Err(MetaError::NotFound(_))
    ));
    let reborn = meta.create_log("orders").await.unwrap();
    assert_ne!(reborn.id, a.id);
    assert_eq!(reborn.epoch, 0);
}

/// Two writers bump the same epoch at once, many times: exactly one wins.
async fn concurrent_bumps<M: MetaStore>(meta: &M) {
    let log = meta.create_log("contended").await.unwrap();
    for round in 0..20u64 {
        let (x, y) = futures::join!(
            meta.bump_epoch(log.id, round),
            meta.bump_epoch(log.id, round)
        );
        let wins = [&x, &y].iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {x:?} {y:?}");
        let loser = if x.is_ok() { y } else { x };
        assert!(matches!(loser, Err(MetaError::Fenced { .. })));
        assert_eq!(meta.get_log("contended").await.unwrap().epoch, round + 1);
    }
}

/// An epoch watch starts from the current epoch and sees later bumps,
/// including one made while nobody waited.
async fn epoch_watch<M: MetaStore>(meta: &M) {
    let log = meta.create_log("watched-epoch").await.unwrap();
    let first = meta.bump_epoch(log.id, 0).await.unwrap();
    let mut watch = meta.watch_epoch(log.id).await.unwrap();
    assert_eq!(within(watch.above(0)).await.unwrap(), first);
    let waiting = tokio::time::timeout(Duration::from_millis(200), watch.above(first)).await;
    assert!(waiting.is_err(), "no bump yet: {waiting:?}");
    let second = meta.bump_epoch(log.id, first).await.unwrap();
    let third = meta.bump_epoch(log.id, second).await.unwrap();
    // etcd may deliver the second bump's event before the third is made:
    // the watch then answers the second, and the third next.
    let seen = within(watch.above(first)).await.unwrap();
    assert!(
        seen == second || seen == third,
        "{seen}: neither {second} nor {third}"
    );
    if seen == second {
        assert_eq!(within(watch.above(second)).await.unwrap(), third);
    }
}

/// Concurrent creates of one name: one log, one winner.
async fn concurrent_creates<M: MetaStore>(meta: &M) {
    let attempts = (0..8).map(|_| meta.create_log("racy"));
    let results = futures::future::join_all(attempts).await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
}

#[test]
fn memory_meta_contract() {
    run(async {
        let meta = MemoryMeta::new();
        contract(&meta).await;
        concurrent_bumps(&meta).await;
        concurrent_creates(&meta).await;
        epoch_watch(&meta).await;
    });
}

#[test]
fn etcd_meta_contract() {
    let meta = common::etcd_meta();
    run(async {
        contract(&meta).await;
        concurrent_bumps(&meta).await;
        concurrent_creates(&meta).await;
        epoch_watch(&meta).await;
    });
}

#[test]
fn etcd_bumps_race_across_threads() {
    // Two independent clients (two control threads), as two writer processes.
    let config = common::etcd_config();
    let first = EtcdMeta::connect(&config).unwrap();
    let second = EtcdMeta::connect(&config).unwrap();
    let log = block_on(first.create_log("two-clients")).unwrap();
    for round in 0..10u64 {
        let a = first.clone();
        let b = second.clone();
        let ta = std::thread::spawn(move || block_on(a.bump_epoch(log.id, round)));
        let tb = std::thread::spawn(move || block_on(b.bump_epoch(log.id, round)));
        let (ra, rb) = (ta.join().unwrap(), tb.join().unwrap());
        assert_eq!(
            [&ra, &rb].iter().filter(|r| r.is_ok()).count(),
            1,
            "{ra:?} {rb:?}"
        );
    }
}

#[test]
fn etcd_unreachable_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = EtcdConfig {
        endpoints: vec![format!("127.0.0.1:{port}")],
        connect_timeout_ms: 300,
        request_timeout_ms: 300,
        ..EtcdConfig::default()
    };
    let started = std::time::Instant::now();
    let result = EtcdMeta::connect(&config).and_then(|meta| block_on(meta.list_logs()).map(|_| ()));
    assert!(
        matches!(result, Err(MetaError::Unavailable(_))),
        "{:?}",
        result.err()
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

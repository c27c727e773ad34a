//! The fault-injecting store: rules per operation and key prefix, lost
//! replies, crash points and latency, replayable from a seed.

mod common;

use bytes::Bytes;
use common::run_local;
use std::time::{Duration, Instant};
use woodpecker_engine::store::fault::{FaultRule, FaultStore};
use woodpecker_engine::store::memory::MemoryStore;
use woodpecker_engine::store::{ObjectStore, Op, StoreError};

#[test]
fn errors_apply_per_operation_and_prefix() {
    run_local(|| async {
        let store = FaultStore::new(MemoryStore::new(), 1);
        store.add_rule(FaultRule {
            ops: vec![Op::Put],
            key_prefix: "flaky/".into(),
            error_rate: 1.0,
            ..FaultRule::default()
        });
        let err = store
            .put("flaky/a", Bytes::from_static(b"x"))
            .await
            .unwrap_err();
        assert!(err.is_retriable());
        assert!(matches!(
            store.inner().get("flaky/a").await,
            Err(StoreError::NotFound(_))
        ));
        store
            .put("steady/a", Bytes::from_static(b"x"))
            .await
            .unwrap();
        store
            .put_if_absent("flaky/b", Bytes::from_static(b"x"))
            .await
            .unwrap();
    });
}

#[test]
fn lost_reply_takes_effect_but_reports_failure() {
    run_local(|| async {
        let store = FaultStore::new(MemoryStore::new(), 2);
        store.add_rule(FaultRule {
            lost_reply_rate: 1.0,
            ..FaultRule::default()
        });
        assert!(store.put("k", Bytes::from_static(b"v")).await.is_err());
        assert_eq!(
            store.inner().get("k").await.unwrap(),
            Bytes::from_static(b"v")
        );
    });
}

#[test]
fn fail_after_n_operations_models_a_crash() {
    run_local(|| async {
        let store = FaultStore::new(MemoryStore::new(), 3);
        store.fail_after(3);
        for i in 0..3 {
            store.put(&format!("k{i}"), Bytes::new()).await.unwrap();
        }
        for i in 3..10 {
            assert!(store.put(&format!("k{i}"), Bytes::new()).await.is_err());
            assert!(store.get("k0").await.is_err());
        }
        store.clear_rules();
        store.get("k0").await.unwrap();
    });
}

#[test]
fn latency_is_added() {
    run_local(|| async {
        let store = FaultStore::new(MemoryStore::new(), 4);
        store.add_rule(FaultRule {
            ops: vec![Op::Get],
            latency: Duration::from_millis(30),
            ..FaultRule::default()
        });
        store.put("k", Bytes::new()).await.unwrap();
        let started = Instant::now();
        store.get("k").await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(30));
    });
}

#[test]
fn same_seed_same_faults() {
    let outcomes = |seed| {
        run_local(move || async move {
            let store = FaultStore::new(MemoryStore::new(), seed);
            store.add_rule(FaultRule {
                error_rate: 0.5,
                ..FaultRule::default()
            });
            let mut outcomes = Vec::new();
            for i in 0..64 {
                outcomes.push(store.put(&format!("k{i}"), Bytes::new()).await.is_ok());
            }
            outcomes
        })
    };
    assert_eq!(outcomes(7), outcomes(7));
    assert!(outcomes(7).contains(&true) && outcomes(7).contains(&false));
}

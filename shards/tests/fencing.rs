//! A writer learns that another writer took its log from the epoch watch,
//! not only at its next upload; its uploads in flight are still told the
//! truth.

mod common;

use bytes::Bytes;
use common::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use woodpecker_engine::meta::memory::MemoryMeta;
use woodpecker_engine::store::fault::FaultRule;
use woodpecker_engine::store::Op;
use woodpecker_engine::ErrorKind;

/// Every upload of the first writer takes this long.
const SLOW_PUT: Duration = Duration::from_secs(3);

fn slow_puts() -> Vec<FaultRule> {
    vec![FaultRule {
        ops: vec![Op::PutIfAbsent, Op::Put],
        latency: SLOW_PUT,
        ..FaultRule::default()
    }]
}

#[test]
fn an_idle_fenced_writer_fails_its_next_append_without_uploading() {
    let (slow, other) = fault_clients_on(
        small_config(),
        Arc::new(MemoryMeta::new()),
        slow_puts(),
        None,
    );
    within(10, slow.create_log("idle")).unwrap();
    let first = within(10, slow.open_writer("idle")).unwrap();
    let second = within(10, other.open_writer("idle")).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let started = Instant::now();
    let err = within(10, first.append(Bytes::from_static(b"late"))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");
    assert!(
        started.elapsed() < SLOW_PUT / 3,
        "the fence was found by an upload ({:?}), not by the epoch watch",
        started.elapsed()
    );
    let err = within(10, first.close()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Fenced, "{err}");

    assert_eq!(within(10, second.append(entry(1))).unwrap(), 0);
    within(10, second.close()).unwrap();
    assert_log_holds(&other, "idle", 0, &[(0, entry(1))]);
}

/// Appends in flight when the fence is seen finish as their uploads do:
/// acknowledged if they landed in order (they are in the log), an error
/// otherwise; appends not sent yet fail `Fenced`, and are not in the log.
#[test]
fn appends_in_flight_at_the_fence_are_acknowledged_only_if_in_the_log() {
    let (slow, other) = fault_clients_on(
        small_config(),
        Arc::new(MemoryMeta::new()),
        slow_puts(),
        None,
    );
    within(10, slow.create_log("busy")).unwrap();
    let first = Arc::new(within(10, slow.open_writer("busy")).unwrap());
    let appends: Vec<_> = (0..40)
        .map(|seq| {
            let writer = first.clone();
            std::thread::spawn(move || {
                let result = within(30, writer.append(entry(seq)));
                std::thread::sleep(Duration::from_millis(5));
                (seq, result)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let second = within(10, other.open_writer("busy")).unwrap();
    let results: Vec<_> = appends.into_iter().map(|t| t.join().unwrap()).collect();
    within(10, second.close()).unwrap();

    let entries = within(30, other.scan("busy")).unwrap();
    let in_log: Vec<Vec<u8>> = entries.into_iter().map(|e| e.payload).collect();
    for (seq, result) in results {
        let stored = in_log.iter().any(|p| p[..] == entry(seq)[..]);
        match result {
            Ok(offset) => assert!(
                in_log
                    .get(offset as usize)
                    .is_some_and(|p| p[..] == entry(seq)[..]),
                "append {seq} acknowledged at {offset} but not in the log"
            ),
            Err(err) if err.kind() == ErrorKind::Fenced => {
                assert!(!stored, "append {seq} failed Fenced but is in the log")
            }
            Err(err) => assert_eq!(err.kind(), ErrorKind::OutcomeUnknown, "{err}"),
        }
    }
}

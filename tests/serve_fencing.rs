//! Two `woodpecker serve` processes appending to one log (real etcd and
//! MinIO): the later fences the earlier, which answers `fenced` from then
//! on and takes the log back only when asked; no acknowledged entry of
//! either is lost, and offsets stay dense.

mod served;

use served::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use woodpecker_net::framing::{self, FramedEntry, MEDIA_TYPE};

/// An acknowledged batch: its first offset and its entries.
type Acked = (u64, Vec<FramedEntry>);

/// Appends batches to the entries `url` until `stop`, or until the server
/// answers anything but 200; the acknowledged batches, and the code of the
/// answer that ended it.
fn append_until(url: &str, base: u64, stop: &AtomicBool) -> (Vec<Acked>, String) {
    let agent = agent();
    let mut acked = Vec::new();
    for round in 0..100_000u64 {
        if stop.load(Ordering::Relaxed) {
            return (acked, "stopped".into());
        }
        let batch: Vec<FramedEntry> = (0..10).map(|i| entry(base + round * 10 + i)).collect();
        let (status, body) = call(
            agent.post(url),
            Some((MEDIA_TYPE, &framing::encode(&batch))),
        );
        let answer = json(&body);
        if status != 200 {
            return (acked, answer["code"].as_str().unwrap_or("?").to_string());
        }
        acked.push((answer["first_offset"].as_u64().unwrap(), batch));
    }
    (acked, "rounds".into())
}

#[test]
fn the_later_server_fences_the_earlier_and_nothing_acknowledged_is_lost() {
    let first = Served::start(&[]);
    let second = Served::start(&[]);
    let agent = agent();
    let name = unique("two-servers");
    create(&agent, &first, &name);

    let stop = Arc::new(AtomicBool::new(false));
    let appender = {
        let stop = stop.clone();
        let url = first.url(&format!("/v1/logs/{name}/entries"));
        std::thread::spawn(move || append_until(&url, 0, &stop))
    };
    std::thread::sleep(Duration::from_millis(500));
    // The second server's first append opens its writer: a new epoch.
    let taken_at = append(&agent, &second, &name, &[entry(5_000_000)]);
    let started = Instant::now();
    while !appender.is_finished() && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    let (acked_first, ended) = appender.join().unwrap();
    assert!(
        matches!(ended.as_str(), "fenced" | "outcome_unknown"),
        "the first server's appends end fenced (or unknown, if in flight), not {ended:?}"
    );
    assert!(
        !acked_first.is_empty(),
        "the first server appended before it was fenced"
    );

    // Fenced stays fenced until asked.
    let (status, body) = call(
        agent.post(&first.url(&format!("/v1/logs/{name}/entries"))),
        Some((MEDIA_TYPE, &framing::encode(&[entry(1)]))),
    );
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (409, Some("fenced"))
    );
    let acked_second = vec![
        (taken_at, vec![entry(5_000_000)]),
        (
            append(&agent, &second, &name, &[entry(5_000_001)]),
            vec![entry(5_000_001)],
        ),
    ];

    let all = read_all(&agent, &second, &name);
    for (i, got) in all.iter().enumerate() {
        assert_eq!(got.offset, Some(i as u64), "dense offsets");
    }
    for (first_offset, batch) in acked_first.iter().chain(&acked_second) {
        for (i, want) in batch.iter().enumerate() {
            let got = &all[*first_offset as usize + i];
            assert_eq!(
                (&got.payload, &got.properties),
                (&want.payload, &want.properties)
            );
        }
    }
}

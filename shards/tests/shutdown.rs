//! A client's shutdown gives back what it took: a process that starts and
//! shuts down clients (the fault campaign's checker does, once per run)
//! keeps neither sockets nor threads of them. Alone in its file, so no
//! other test's sockets are counted.

mod common;

use bytes::Bytes;
use common::*;
use std::time::{Duration, Instant};
use woodpecker_shards::StartAt;

fn sockets() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn real_shutdown_releases_sockets_and_threads() {
    // A first client warms up what lives for the process (name resolution,
    // tracing), so only the clients' own leftovers are counted.
    let cycle = || {
        let (client, _) = real_client(small_config());
        within(30, client.create_log("released")).unwrap();
        let writer = within(30, client.open_writer("released")).unwrap();
        let acks: Vec<_> = (0..200)
            .map(|i| writer.append(Bytes::from(vec![i as u8; 4000])))
            .collect();
        for ack in acks {
            within(30, ack).unwrap();
        }
        within(30, writer.close()).unwrap();
        let mut reader = within(30, client.open_reader("released", StartAt::Earliest)).unwrap();
        for _ in 0..200 {
            within(30, reader.next()).unwrap();
        }
        drop(reader);
        client.shutdown();
    };
    cycle();
    let (sockets_before, threads_before) = (sockets(), threads());
    for _ in 0..3 {
        cycle();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while (sockets() > sockets_before || threads() > threads_before) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = (sockets(), threads());
    assert!(
        after.0 <= sockets_before && after.1 <= threads_before,
        "sockets and threads {after:?} after three more clients came and went, \
         {:?} before",
        (sockets_before, threads_before)
    );
}

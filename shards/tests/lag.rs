//! The reader-lag gauge: entries a reader's caller has not taken yet, out
//! of those known durable, as readers fall behind, catch up and go away.

mod common;

use common::*;
use woodpecker_shards::StartAt;

#[test]
fn reader_lag_follows_what_the_caller_has_taken() {
    let (client, _store, _meta) = memory_client(small_config());
    within(30, client.create_log("lagging")).unwrap();
    let writer = within(10, client.open_writer("lagging")).unwrap();
    for seq in 0..100 {
        within(10, writer.append(entry(seq))).unwrap();
    }
    assert_eq!(client.stats().reader_lag_max, 0, "no reader yet");

    let mut reader = within(10, client.open_reader("lagging", StartAt::Earliest)).unwrap();
    // The writer is in this client: its 100 durable entries are known.
    assert_eq!(client.stats().reader_lag_max, 100);
    for _ in 0..10 {
        within(10, reader.next()).unwrap();
    }
    assert_eq!(client.stats().reader_lag_max, 90);
    let batch = within(10, reader.read_batch(usize::MAX)).unwrap();
    let taken = 10 + batch.len() as u64;
    assert_eq!(client.stats().reader_lag_max, 100 - taken);
    for _ in taken..100 {
        within(10, reader.next()).unwrap();
    }
    assert_eq!(client.stats().reader_lag_max, 0);
    assert!(client
        .metrics()
        .render()
        .contains("\nwoodpecker_reader_lag_entries 0\n"));

    within(10, writer.append(entry(100))).unwrap();
    assert_eq!(client.stats().reader_lag_max, 1, "a new durable entry");
    drop(reader);
    assert_eq!(
        client.stats().reader_lag_max,
        0,
        "a dropped reader lags nothing"
    );
    within(10, writer.close()).unwrap();
}

//! The fragment cache: readers of what this client wrote to a log read
//! here lately are served from memory, concurrent readers of the same
//! fragments share one GET each, and the cache holds no more than its
//! budget.

mod common;

use common::*;
use woodpecker_engine::meta::MetaStore;
use woodpecker_engine::store::StoreFactory;
use woodpecker_shards::{Client, Config, StartAt};

const ENTRIES: usize = 400;

fn cached(config: Config, cache_bytes: usize) -> Config {
    Config {
        fragment_cache_bytes: cache_bytes,
        fragment_bytes_max: 16 << 10,
        ..config
    }
}

fn read_all(client: &Client, name: &str, readers: usize) {
    std::thread::scope(|scope| {
        for _ in 0..readers {
            scope.spawn(|| {
                let mut reader = within(30, client.open_reader(name, StartAt::Earliest)).unwrap();
                for seq in 0..ENTRIES {
                    let got = within(30, reader.next()).unwrap();
                    assert_eq!((got.offset, got.payload), (seq as u64, entry(seq)));
                }
            });
        }
    });
}

fn write_all(client: &Client, name: &str) {
    let writer = within(30, client.open_writer(name)).unwrap();
    let acks: Vec<_> = (0..ENTRIES).map(|seq| writer.append(entry(seq))).collect();
    for ack in acks {
        within(30, ack).unwrap();
    }
    within(30, writer.close()).unwrap();
}

#[test]
fn fragments_written_to_a_log_nobody_reads_are_not_kept() {
    let (client, _store, _meta) = memory_client(cached(small_config(), 64 << 20));
    within(30, client.create_log("unread")).unwrap();
    write_all(&client, "unread");
    let fragments = client.stats().fragments_uploaded;
    assert!(fragments > 10, "{fragments} fragments");
    // No reader was open while it was written: a reader now GETs every
    // fragment, and a second one is served from what the first fetched.
    read_all(&client, "unread", 1);
    assert_eq!(client.stats().cache_misses, fragments);
    read_all(&client, "unread", 1);
    assert_eq!(client.stats().cache_misses, fragments);
    client.shutdown();
}

#[test]
fn memory_readers_share_gets_and_the_writer_s_fragments_need_none() {
    // One key prefix for every client of the test.
    let base = small_config();
    let (writing, store, meta) = memory_client(cached(base.clone(), 64 << 20));
    within(30, writing.create_log("cached")).unwrap();
    // A reader of the log on the writing client: the log counts as read.
    let tail = within(30, writing.open_reader("cached", StartAt::Latest)).unwrap();
    write_all(&writing, "cached");
    drop(tail);
    let fragments = writing.stats().fragments_uploaded;
    assert!(fragments > 10, "{fragments} fragments");

    // The writing client kept what it wrote: its readers GET nothing.
    read_all(&writing, "cached", 2);
    assert_eq!(writing.stats().cache_misses, 0);
    assert!(writing.stats().cache_hits >= 2 * fragments);

    // Another client, four readers at once: one GET per fragment.
    let meta: std::sync::Arc<dyn MetaStore> = meta;
    let reading = Client::start(
        cached(base.clone(), 64 << 20),
        StoreFactory::with_memory(store.clone()),
        meta.clone(),
    )
    .unwrap();
    read_all(&reading, "cached", 4);
    let stats = reading.stats();
    assert!(
        stats.cache_misses <= fragments,
        "{} whole-fragment GETs for {fragments} fragments and 4 readers",
        stats.cache_misses
    );
    assert!(stats.cache_hits >= 3 * fragments - 3, "{stats:?}");

    // A cache smaller than the log still serves everything, and without
    // one every reader GETs every fragment.
    let small = Client::start(
        cached(base.clone(), 64 << 10),
        StoreFactory::with_memory(store.clone()),
        meta.clone(),
    )
    .unwrap();
    read_all(&small, "cached", 2);
    let uncached = Client::start(base, StoreFactory::with_memory(store), meta).unwrap();
    read_all(&uncached, "cached", 1);
    assert_eq!(
        uncached.stats().cache_hits + uncached.stats().cache_misses,
        0
    );
    for client in [writing, reading, small, uncached] {
        client.shutdown();
    }
}

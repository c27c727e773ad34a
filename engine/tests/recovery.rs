//! Recovery against a live zombie writer: it keeps landing fragments while
//! a new writer fences and seals the segment. The zombie must be stopped
//! exactly where the seal says the segment ends.

mod common;

use bytes::Bytes;
use common::run_local;
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;
use woodpecker_engine::format::fragment::{
    encoded_entry_bytes, fragment_bytes_for, FragmentEncoder, FragmentMeta, NO_PROPERTIES,
};
use woodpecker_engine::layout::Layout;
use woodpecker_engine::meta::memory::MemoryMeta;
use woodpecker_engine::meta::{MetaStore, SegmentInfo, SegmentState};
use woodpecker_engine::recovery::recover_segment;
use woodpecker_engine::store::fault::{FaultRule, FaultStore};
use woodpecker_engine::store::memory::MemoryStore;
use woodpecker_engine::store::{ObjectStore, StoreError};

fn fragment(segment: u64, index: u64) -> Bytes {
    let buf = vec![0u8; fragment_bytes_for(encoded_entry_bytes(8, NO_PROPERTIES))];
    let meta = FragmentMeta {
        log_id: 1,
        segment_id: segment,
        fragment_index: index,
        writer_epoch: 1,
        first_offset: index,
    };
    let mut encoder = FragmentEncoder::new(buf, Vec::new(), meta);
    encoder.push(&index.to_le_bytes(), NO_PROPERTIES).unwrap();
    encoder.finish(false).unwrap();
    Bytes::copy_from_slice(encoder.bytes())
}

#[test]
fn a_racing_zombie_is_fenced_exactly_at_the_seal() {
    for round in 0..10u64 {
        run_local(|| async move {
            let store = Rc::new(FaultStore::new(MemoryStore::new(), round));
            store.add_rule(FaultRule {
                latency: Duration::from_micros(300 + round * 100),
                ..FaultRule::default()
            });
            let meta = MemoryMeta::new();
            let layout = Layout::new("wal").unwrap();
            let log = meta.create_log("zombie").await.unwrap();
            meta.bump_epoch(log.id, 0).await.unwrap();
            meta.create_segment(log.id, 1, &SegmentInfo::new_open(0, 1, 0))
                .await
                .unwrap();
            for index in 0..3 {
                store
                    .put_if_absent(&layout.fragment_key(1, 0, index), fragment(0, index))
                    .await
                    .unwrap();
            }
            // The zombie writes on, one fragment after another, until fenced.
            let stopped_at = Rc::new(Cell::new(None));
            let zombie = {
                let (store, layout, stopped_at) =
                    (store.clone(), layout.clone(), stopped_at.clone());
                glommio::spawn_local(async move {
                    for index in 3..10_000 {
                        let key = layout.fragment_key(1, 0, index);
                        match store.put_if_absent(&key, fragment(0, index)).await {
                            Ok(()) => {}
                            Err(StoreError::AlreadyExists(_)) => {
                                stopped_at.set(Some(index));
                                return;
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            };
            glommio::timer::sleep(Duration::from_millis(round)).await;
            let epoch = meta.bump_epoch(log.id, 1).await.unwrap();
            let segment = meta.list_segments(log.id).await.unwrap().remove(0);
            let sealed = recover_segment(&*store, &meta, &layout, log.id, epoch, &segment)
                .await
                .unwrap();
            zombie.await;
            assert_eq!(sealed.state, SegmentState::Sealed);
            let stopped = stopped_at.get().expect("the zombie was fenced");
            assert_eq!(sealed.fragment_count, stopped, "round {round}");
            assert_eq!(sealed.end_offset, stopped, "one entry per fragment");
        });
    }
}

//! fsck over logs made by real writers: clean logs pass; a flipped byte, a
//! missing fragment, objects nobody refers to and an open segment are each
//! found; the safe repairs leave a clean log with every entry readable.

mod common;

use bytes::Bytes;
use common::{entry, memory_client, real_client, rolling_config, within};
use woodpecker_engine::format::marker::encode_fence_marker;
use woodpecker_engine::fsck::{Repair, Report, Severity};
use woodpecker_engine::layout::Layout;
use woodpecker_engine::meta::{MetaStore, SegmentState};
use woodpecker_engine::store::memory::MemoryStore;
use woodpecker_engine::store::ObjectStore;
use woodpecker_shards::Client;

fn problems(report: &Report) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Problem)
        .map(|f| format!("{} {:?}: {}", f.log, f.segment, f.detail))
        .collect()
}

/// A log of `count` entries over several segments, its writer closed.
fn write_log(client: &Client, name: &str, count: usize) {
    within(10, client.create_log(name)).unwrap();
    let writer = within(10, client.open_writer(name)).unwrap();
    for seq in 0..count {
        within(10, writer.append(entry(seq))).unwrap();
    }
    within(10, writer.close()).unwrap();
}

fn put(store: &MemoryStore, key: &str, data: Bytes) {
    futures::executor::block_on(store.put(key, data)).unwrap();
}

#[test]
fn a_clean_log_passes_and_every_entry_is_counted() {
    let (client, _store, _meta) = memory_client(rolling_config());
    write_log(&client, "clean", 20);
    let report = within(10, client.fsck(None)).unwrap();
    assert_eq!(problems(&report), Vec::<String>::new());
    assert_eq!(report.logs, 1);
    assert_eq!(report.entries, 20);
    assert!(report.segments >= 3, "{report:?}");
    assert!(report.repairs.is_empty(), "{:?}", report.repairs);
}

#[test]
fn corruption_and_missing_fragments_are_problems() {
    let (client, store, meta) = memory_client(rolling_config());
    write_log(&client, "broken", 20);
    let log = within(10, meta.get_log("broken")).unwrap();
    let layout = Layout::new(&client.config().key_prefix).unwrap();
    let segments = within(10, meta.list_segments(log.id)).unwrap();
    let sealed: Vec<_> = segments
        .iter()
        .filter(|s| s.state == SegmentState::Sealed && s.fragment_count > 0)
        .collect();
    assert!(sealed.len() >= 2);
    // A flipped byte in the first segment's first fragment.
    let key = layout.fragment_key(log.id, sealed[0].id, 0);
    let mut bytes = futures::executor::block_on(store.get(&key))
        .unwrap()
        .to_vec();
    bytes[100] ^= 0x40;
    store.overwrite_raw(&key, Bytes::from(bytes));
    // The second segment's first fragment gone.
    let gone = layout.fragment_key(log.id, sealed[1].id, 0);
    futures::executor::block_on(store.delete(&gone)).unwrap();

    let report = within(10, client.fsck(Some("broken"))).unwrap();
    let found = problems(&report).join("\n");
    assert!(
        found.contains(&format!("{key}: corrupt fragment")),
        "{found}"
    );
    assert!(
        found.contains(&format!(
            "sealed with {} fragments but only 0 are present",
            sealed[1].fragment_count
        )),
        "{found}"
    );
    // Neither is repairable: nothing is proposed that would hide them.
    assert!(report.repairs.is_empty(), "{:?}", report.repairs);
}

#[test]
fn orphaned_objects_are_found_and_repaired_without_touching_the_log() {
    let (client, store, meta) = memory_client(rolling_config());
    write_log(&client, "kept", 12);
    let log = within(10, meta.get_log("kept")).unwrap();
    let layout = Layout::new(&client.config().key_prefix).unwrap();
    let segments = within(10, meta.list_segments(log.id)).unwrap();
    let sealed = segments.iter().find(|s| s.fragment_count > 0).unwrap();
    // A zombie's late fragment past a seal (a copy of a real one, so only
    // its place is wrong), a fence marker, a segment with no record, and a
    // log with no record.
    let first =
        futures::executor::block_on(store.get(&layout.fragment_key(log.id, sealed.id, 0))).unwrap();
    let late = layout.fragment_key(log.id, sealed.id, sealed.fragment_count + 1);
    put(&store, &late, first.clone());
    put(
        &store,
        &layout.fragment_key(log.id, sealed.id, sealed.fragment_count),
        encode_fence_marker(sealed.epoch + 1),
    );
    let lost_segment = layout.fragment_key(log.id, 999, 0);
    put(&store, &lost_segment, first.clone());
    let lost_log = layout.fragment_key(777_777, 1, 0);
    put(&store, &lost_log, first);

    let report = within(10, client.fsck(None)).unwrap();
    let found = problems(&report).join("\n");
    assert!(
        found.contains("1 orphaned objects past the seal"),
        "{found}"
    );
    assert!(
        found.contains("objects of a segment with no record"),
        "{found}"
    );
    assert!(found.contains("objects of a log with no record"), "{found}");
    assert_eq!(report.fence_markers, 1);
    assert_eq!(report.entries, 12, "the late copy is not counted");
    let mut deleted: Vec<&String> = report
        .repairs
        .iter()
        .flat_map(|r| match r {
            Repair::DeleteObjects { keys, .. } => keys.iter().collect::<Vec<_>>(),
            Repair::SealOpenSegment { .. } => Vec::new(),
        })
        .collect();
    deleted.sort();
    let mut expected = vec![&late, &lost_segment, &lost_log];
    expected.sort();
    assert_eq!(deleted, expected);

    within(10, client.repair(&report.repairs)).unwrap();
    let after = within(10, client.fsck(None)).unwrap();
    assert_eq!(problems(&after), Vec::<String>::new());
    assert_eq!(within(10, client.scan("kept")).unwrap().len(), 12);
}

/// On the real MinIO and etcd: a log whose writer (in another client, as
/// in another process) still holds its segment open. fsck notes it and
/// proposes sealing it; the repair seals it with every acknowledged entry
/// and fences that writer, whose next append says so.
#[test]
fn an_open_segment_is_noted_and_the_repair_seals_it_fencing_its_writer() {
    let (client, etcd) = real_client(rolling_config());
    within(10, client.create_log("open")).unwrap();
    let writer = within(10, client.open_writer("open")).unwrap();
    for seq in 0..5 {
        within(10, writer.append(entry(seq))).unwrap();
    }

    let admin = common::real_client_on(client.config().clone(), &etcd);
    let report = within(20, admin.fsck(Some("open"))).unwrap();
    assert_eq!(problems(&report), Vec::<String>::new());
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.severity == Severity::Note && f.detail.starts_with("open (writer epoch")),
        "{:?}",
        report.findings
    );
    let seals = report
        .repairs
        .iter()
        .filter(|r| matches!(r, Repair::SealOpenSegment { .. }))
        .count();
    assert_eq!(seals, 1, "{:?}", report.repairs);
    within(20, admin.repair(&report.repairs)).unwrap();
    let after = within(20, admin.fsck(Some("open"))).unwrap();
    assert_eq!(problems(&after), Vec::<String>::new());
    assert!(after.repairs.is_empty(), "{:?}", after.repairs);
    assert_eq!(after.entries, 5);
    let fenced = within(20, writer.append(entry(5))).unwrap_err();
    assert!(fenced.needs_reopen(), "{fenced}");
}

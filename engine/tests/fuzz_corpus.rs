//! The fuzz corpora (fuzz/corpus/<target>/, grown by `cargo fuzz`, checked
//! in) replayed through the fuzz targets in a normal build, with checksums
//! checked: no input in them panics. The seed fragments are made here;
//! `WOODPECKER_WRITE_FUZZ_SEEDS=1 cargo test -p woodpecker-engine --test
//! fuzz_corpus` writes them again.

use std::path::{Path, PathBuf};
use woodpecker_engine::format::fragment::{DecodedFragment, FragmentEncoder, FragmentMeta};
use woodpecker_engine::format::marker::encode_fence_marker;
use woodpecker_engine::fuzz_targets;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = corpus(target);
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} panics {target}", path.display());
        inputs += 1;
    }
    inputs
}

/// Small valid fragments: no entries' properties, some, a last-of-segment
/// flag, one entry.
fn seed_fragments() -> Vec<Vec<u8>> {
    let shapes: [(usize, usize, bool); 4] =
        [(3, 0, false), (5, 2, true), (1, 1, false), (8, 0, true)];
    shapes
        .iter()
        .enumerate()
        .map(|(i, &(entries, props, last))| {
            let meta = FragmentMeta {
                log_id: 1 + i as u64,
                segment_id: 2,
                fragment_index: 3,
                writer_epoch: 4,
                first_offset: 100 * i as u64,
            };
            let mut encoder = FragmentEncoder::new(vec![0u8; 4096], Vec::new(), meta);
            for e in 0..entries {
                let payload = vec![b'a' + e as u8; 5 + e * 3];
                let properties: Vec<(Vec<u8>, Vec<u8>)> = (0..props)
                    .map(|p| (format!("k{p}").into_bytes(), vec![b'v'; p + 1]))
                    .collect();
                encoder.push(&payload, &properties).unwrap();
            }
            let len = encoder.finish(last).unwrap();
            let bytes = encoder.bytes()[..len].to_vec();
            DecodedFragment::decode(&bytes).expect("a seed is a valid fragment");
            bytes
        })
        .collect()
}

#[test]
fn seeds_are_checked_in() {
    let seeds: Vec<(&str, String, Vec<u8>)> = seed_fragments()
        .into_iter()
        .enumerate()
        .map(|(i, bytes)| ("fragment", format!("seed-{i}"), bytes))
        .chain([(
            "fence_marker",
            "seed-0".to_string(),
            encode_fence_marker(7).to_vec(),
        )])
        .collect();
    for (target, name, bytes) in seeds {
        let path = corpus(target).join(name);
        if std::env::var_os("WOODPECKER_WRITE_FUZZ_SEEDS").is_some() {
            std::fs::create_dir_all(corpus(target)).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(stored, bytes, "{} is stale", path.display());
    }
}

#[test]
fn corpora_do_not_panic() {
    assert!(replay("fragment", fuzz_targets::fragment) >= 4);
    assert!(replay("fence_marker", fuzz_targets::fence_marker) >= 1);
    assert!(replay("s3_xml", fuzz_targets::s3_xml) >= 3);
}

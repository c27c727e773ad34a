//! The fragment format: round trips, pinned bytes, corruption detection,
//! and a decoder that never panics on arbitrary input.

mod common;

use proptest::prelude::*;
use woodpecker_engine::format::fragment::{
    decode_entry, encoded_entry_bytes, fragment_bytes_for, DecodedFragment, FormatError,
    FragmentEncoder, FragmentHeader, FragmentMeta, FragmentTail, FRAGMENT_HEADER_BYTES,
    NO_PROPERTIES,
};

type Entry = (Vec<u8>, Vec<(Vec<u8>, Vec<u8>)>);

fn meta() -> FragmentMeta {
    FragmentMeta {
        log_id: 7,
        segment_id: 3,
        fragment_index: 12,
        writer_epoch: 5,
        first_offset: 1000,
    }
}

fn encode(entries: &[Entry], last: bool) -> Vec<u8> {
    let size: usize = entries
        .iter()
        .map(|(payload, props)| {
            let props: Vec<(&[u8], &[u8])> = props
                .iter()
                .map(|(k, v)| (k.as_slice(), v.as_slice()))
                .collect();
            encoded_entry_bytes(payload.len(), &props)
        })
        .sum();
    let buf = vec![0u8; fragment_bytes_for(size)];
    let mut encoder = FragmentEncoder::new(buf, Vec::new(), meta());
    for (i, (payload, props)) in entries.iter().enumerate() {
        let props: Vec<(&[u8], &[u8])> = props
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        assert_eq!(encoder.push(payload, &props).unwrap(), 1000 + i as u64);
    }
    let len = encoder.finish(last).unwrap();
    let (buf, _) = encoder.into_parts();
    assert_eq!(
        len,
        buf.len(),
        "fragment_bytes_for sizes the buffer exactly"
    );
    buf
}

fn assert_round_trip(entries: &[Entry], bytes: &[u8]) {
    let fragment = DecodedFragment::decode(bytes).unwrap();
    assert_eq!(fragment.header.entry_count as usize, entries.len());
    let decoded: Vec<_> = fragment.entries().collect();
    assert_eq!(decoded.len(), entries.len());
    for (i, (entry, (payload, props))) in decoded.iter().zip(entries).enumerate() {
        assert_eq!(entry.offset, 1000 + i as u64);
        assert_eq!(entry.payload, payload.as_slice());
        let got: Vec<(Vec<u8>, Vec<u8>)> = entry
            .properties
            .iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(&got, props);
    }
}

fn sample_entries() -> Vec<Entry> {
    vec![
        (b"hello".to_vec(), vec![]),
        (vec![], vec![(b"k".to_vec(), b"v".to_vec())]),
        (
            b"world!".to_vec(),
            vec![(b"trace".to_vec(), b"abc".to_vec()), (vec![], vec![])],
        ),
    ]
}

#[test]
fn round_trip_edge_sizes() {
    let big = common::bytes(1, (1 << 20) + 17);
    let many_props: Vec<(Vec<u8>, Vec<u8>)> = (0..300)
        .map(|i| {
            (
                format!("key-{i}").into_bytes(),
                common::bytes(i, (i % 50) as usize),
            )
        })
        .collect();
    let entries: Vec<Entry> = vec![
        (vec![], vec![]),
        (big.clone(), vec![]),
        (b"x".to_vec(), many_props),
        (
            vec![],
            vec![(vec![7u8; 70_000].into_iter().take(65_535).collect(), big)],
        ),
    ];
    let bytes = encode(&entries, true);
    assert_round_trip(&entries, &bytes);
    let header = FragmentHeader::decode(&bytes).unwrap();
    assert!(header.is_last_of_segment());
    assert_eq!(header.last_offset(), 1003);
}

#[test]
fn random_fragments_round_trip() {
    let mut rng = fastrand::Rng::with_seed(42);
    for round in 0..200 {
        let count = rng.usize(1..40);
        let entries: Vec<Entry> = (0..count)
            .map(|_| {
                let payload = common::bytes(rng.u64(..), rng.usize(0..3000));
                let props = (0..rng.usize(0..4))
                    .map(|_| {
                        (
                            common::bytes(rng.u64(..), rng.usize(0..20)),
                            common::bytes(rng.u64(..), rng.usize(0..100)),
                        )
                    })
                    .collect();
                (payload, props)
            })
            .collect();
        let bytes = encode(&entries, round % 2 == 0);
        assert_round_trip(&entries, &bytes);
    }
}

#[test]
fn encoder_reports_full_and_reuses_scratch() {
    let mut buf = [0u8; 200];
    let mut encoder = FragmentEncoder::new(&mut buf[..], Vec::with_capacity(16), meta());
    let mut pushed = 0;
    loop {
        match encoder.push(&[1u8; 30], NO_PROPERTIES) {
            Ok(_) => pushed += 1,
            Err(FormatError::Full) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(pushed >= 2);
    let len = encoder.finish(false).unwrap();
    assert!(len <= 200);
    // Reuse: the same buffer and index serve the next fragment.
    let first = encoder.bytes().to_vec();
    assert_eq!(first.len(), len);
    let next = FragmentMeta {
        fragment_index: 13,
        first_offset: 1000 + pushed as u64,
        ..meta()
    };
    encoder.reset(next);
    encoder.push(b"next", NO_PROPERTIES).unwrap();
    encoder.finish(true).unwrap();
    let second = encoder.bytes().to_vec();
    let (_, index) = encoder.into_parts();
    assert_eq!(
        index.capacity(),
        16,
        "scratch index reused, not reallocated"
    );
    let decoded = DecodedFragment::decode(&first).unwrap();
    assert_eq!(decoded.entries().count(), pushed);
    let decoded = DecodedFragment::decode(&second).unwrap();
    assert_eq!(decoded.header.fragment_index, 13);
    assert_eq!(
        decoded.entries().next().unwrap().offset,
        1000 + pushed as u64
    );
}

#[test]
fn empty_fragment_is_refused() {
    let mut encoder = FragmentEncoder::new(vec![0u8; 200], Vec::new(), meta());
    assert!(encoder.finish(false).is_err());
}

const PINNED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fragment-v1.bin");

/// The bytes of a known fragment are pinned: a change to the format must be
/// deliberate (regenerate with WOODPECKER_BLESS=1 and bump the version).
#[test]
fn known_fragment_matches_checked_in_bytes() {
    let bytes = encode(&sample_entries(), true);
    if std::env::var("WOODPECKER_BLESS").is_ok() {
        std::fs::write(PINNED, &bytes).unwrap();
    }
    let pinned = std::fs::read(PINNED).expect("checked-in fragment");
    assert_eq!(bytes, pinned, "fragment format v1 changed");
    assert_round_trip(&sample_entries(), &pinned);
    assert_eq!(&pinned[..4], b"WPFG");
    assert_eq!(&pinned[pinned.len() - 4..], b"GFPW");
}

#[test]
fn every_byte_flip_is_corruption() {
    let bytes = encode(&sample_entries(), false);
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[i] ^= mask;
            match DecodedFragment::decode(&bad) {
                Err(FormatError::Corrupt(_)) => {}
                other => panic!("flip {mask:#x} at byte {i} gave {other:?}"),
            }
        }
    }
}

#[test]
fn every_truncation_and_extension_is_corruption() {
    let bytes = encode(&sample_entries(), false);
    for len in 0..bytes.len() {
        assert!(
            matches!(
                DecodedFragment::decode(&bytes[..len]),
                Err(FormatError::Corrupt(_))
            ),
            "truncation to {len} bytes was accepted"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(DecodedFragment::decode(&longer).is_err());
}

#[test]
fn ranged_read_pieces_decode_and_check() {
    let entries = sample_entries();
    let bytes = encode(&entries, false);
    let header = FragmentHeader::decode(&bytes[..FRAGMENT_HEADER_BYTES]).unwrap();
    let tail = FragmentTail::decode(&header, &bytes[bytes.len() - header.tail_bytes()..]).unwrap();
    // Read entry 2 alone, as a ranged GET would.
    let start = FRAGMENT_HEADER_BYTES + tail.index[2] as usize;
    let end = FRAGMENT_HEADER_BYTES + header.entries_bytes as usize;
    let (entry, used) = decode_entry(&bytes[start..end], header.first_offset + 2).unwrap();
    assert_eq!(entry.payload, b"world!");
    assert_eq!(used, end - start);
    // The same bytes claimed for another offset are refused.
    assert!(decode_entry(&bytes[start..end], header.first_offset + 1).is_err());
    // A flipped index byte is caught by the tail alone.
    let mut bad_tail = bytes[bytes.len() - header.tail_bytes()..].to_vec();
    bad_tail[0] ^= 1;
    assert!(FragmentTail::decode(&header, &bad_tail).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decoder_never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = DecodedFragment::decode(&data);
        let _ = FragmentHeader::decode(&data);
        let _ = decode_entry(&data, 0);
    }

    #[test]
    fn decoder_never_panics_on_mutated_fragments(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        let mut data = encode(&sample_entries(), true);
        for (at, value) in edits {
            let at = at % data.len();
            data[at] = value;
        }
        let cut = data.len() - cut % 8;
        data.truncate(cut);
        if let Ok(fragment) = DecodedFragment::decode(&data) {
            // Only an unchanged fragment may decode.
            prop_assert_eq!(fragment.entries().count(), 3);
            prop_assert_eq!(&data, &encode(&sample_entries(), true));
        }
    }
}

#[test]
fn a_header_whose_offsets_overflow_is_corrupt_even_with_a_valid_checksum() {
    let mut bytes = encode(
        &[(b"a".to_vec(), Vec::new()), (b"b".to_vec(), Vec::new())],
        false,
    );
    // first_offset (bytes 40..48) so that first_offset + entry_count wraps,
    // with the header checksum (bytes 60..64) made valid again.
    bytes[40..48].copy_from_slice(&(u64::MAX - 1).to_le_bytes());
    let crc = crc32c::crc32c(&bytes[..60]);
    bytes[60..64].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        FragmentHeader::decode(&bytes),
        Err(FormatError::Corrupt(_))
    ));
    assert!(DecodedFragment::decode(&bytes).is_err());
}

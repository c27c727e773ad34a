//! The service's binary entry framing (docs/FORMAT.md, "Service entry
//! framing"): a batch of entries, each its payload and properties, as one
//! request or response body. Every integer is little-endian.
//!
//! ```text
//! entry      = [offset u64]            (responses only)
//!              payload_len u32
//!              property_count u16
//!              property_count x (key_len u16, key, value_len u32, value)
//!              payload
//! ```
//!
//! The decoder checks every length against what is left and against the
//! [`Limits`] before it allocates, so no input makes it panic, loop or
//! allocate more than the body it was given.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use woodpecker_shards::PROPERTY_OVERHEAD_BYTES;

pub mod fuzz;
mod stream;
pub use stream::{decode_stream, ChunkDecoder};

/// The media type of a framed body.
pub const MEDIA_TYPE: &str = "application/vnd.woodpecker.entries";

/// One entry of a framed body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramedEntry {
    /// Present in responses (read), absent in requests (append).
    pub offset: Option<u64>,
    pub payload: Bytes,
    pub properties: Vec<(Bytes, Bytes)>,
}

impl From<woodpecker_shards::ReadEntry> for FramedEntry {
    /// A read entry as a read answer carries it.
    fn from(entry: woodpecker_shards::ReadEntry) -> FramedEntry {
        FramedEntry {
            offset: Some(entry.offset),
            payload: entry.payload,
            properties: entry.properties,
        }
    }
}

/// What a decoded body may hold at most.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub entries_max: usize,
    /// One entry's size as the engine counts it
    /// (`woodpecker_shards::entry_bytes`): payload, and per property its
    /// key, its value and 6 bytes of lengths.
    pub entry_bytes_max: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("entry {entry}: {what} runs past the end of the body")]
    Truncated { entry: usize, what: &'static str },
    #[error("more than {max} entries in one body")]
    TooManyEntries { max: usize },
    #[error("entry {entry} holds {bytes} bytes, more than the limit of {max}")]
    EntryTooLarge {
        entry: usize,
        bytes: usize,
        max: usize,
    },
}

/// Bytes of an entry's fixed fields (no offset).
const ENTRY_HEAD_BYTES: usize = 4 + 2;
const PROPERTY_HEAD_BYTES: usize = 2 + 4;

impl FramingError {
    /// The same error, counted as entry `entry` of its body.
    fn at_entry(self, entry: usize) -> FramingError {
        match self {
            FramingError::Truncated { what, .. } => FramingError::Truncated { entry, what },
            FramingError::EntryTooLarge { bytes, max, .. } => {
                FramingError::EntryTooLarge { entry, bytes, max }
            }
            other => other,
        }
    }
}

/// Decodes a body of entries, with offsets if `with_offsets`. The entries'
/// bytes are slices of `body` (no copies).
pub fn decode(
    mut body: Bytes,
    with_offsets: bool,
    limits: Limits,
) -> Result<Vec<FramedEntry>, FramingError> {
    let mut entries = Vec::new();
    while body.has_remaining() {
        let entry = entries.len();
        if entry == limits.entries_max {
            return Err(FramingError::TooManyEntries {
                max: limits.entries_max,
            });
        }
        let truncated = |what| FramingError::Truncated { entry, what };
        let offset = if with_offsets {
            if body.remaining() < 8 {
                return Err(truncated("the offset"));
            }
            Some(body.get_u64_le())
        } else {
            None
        };
        if body.remaining() < ENTRY_HEAD_BYTES {
            return Err(truncated("the entry header"));
        }
        let payload_len = body.get_u32_le() as usize;
        let property_count = body.get_u16_le() as usize;
        let mut bytes = payload_len;
        let too_large = |bytes| FramingError::EntryTooLarge {
            entry,
            bytes,
            max: limits.entry_bytes_max,
        };
        if bytes > limits.entry_bytes_max {
            return Err(too_large(bytes));
        }
        let mut properties = Vec::with_capacity(property_count.min(body.remaining() / 6));
        for _ in 0..property_count {
            if body.remaining() < PROPERTY_HEAD_BYTES {
                return Err(truncated("a property header"));
            }
            let key_len = body.get_u16_le() as usize;
            // The key, then the value's length.
            if body.remaining() < key_len + 4 {
                return Err(truncated("a property key"));
            }
            let key = body.split_to(key_len);
            let value_len = body.get_u32_le() as usize;
            bytes = bytes.saturating_add(PROPERTY_OVERHEAD_BYTES + key_len + value_len);
            if bytes > limits.entry_bytes_max {
                return Err(too_large(bytes));
            }
            if body.remaining() < value_len {
                return Err(truncated("a property value"));
            }
            let value = body.split_to(value_len);
            properties.push((key, value));
        }
        if body.remaining() < payload_len {
            return Err(truncated("the payload"));
        }
        let payload = body.split_to(payload_len);
        entries.push(FramedEntry {
            offset,
            payload,
            properties,
        });
    }
    Ok(entries)
}

/// Bytes `entry` takes when encoded.
pub fn encoded_len(entry: &FramedEntry) -> usize {
    entry.offset.map_or(0, |_| 8)
        + ENTRY_HEAD_BYTES
        + entry
            .properties
            .iter()
            .map(|(k, v)| PROPERTY_HEAD_BYTES + k.len() + v.len())
            .sum::<usize>()
        + entry.payload.len()
}

/// Appends `entry` to `out`. Panics if a payload exceeds `u32::MAX` bytes,
/// a property key `u16::MAX` or a value `u32::MAX`, or an entry has more
/// than `u16::MAX` properties (the engine's entry limit is far below).
pub fn encode_into(entry: &FramedEntry, out: &mut BytesMut) {
    out.reserve(encoded_len(entry));
    if let Some(offset) = entry.offset {
        out.put_u64_le(offset);
    }
    out.put_u32_le(u32::try_from(entry.payload.len()).expect("payload length fits u32"));
    out.put_u16_le(u16::try_from(entry.properties.len()).expect("property count fits u16"));
    for (key, value) in &entry.properties {
        out.put_u16_le(u16::try_from(key.len()).expect("property key fits u16"));
        out.put_slice(key);
        out.put_u32_le(u32::try_from(value.len()).expect("property value fits u32"));
        out.put_slice(value);
    }
    out.put_slice(&entry.payload);
}

/// Encodes a body of entries.
pub fn encode(entries: &[FramedEntry]) -> Bytes {
    let mut out = BytesMut::with_capacity(entries.iter().map(encoded_len).sum());
    for entry in entries {
        encode_into(entry, &mut out);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(super) const LIMITS: Limits = Limits {
        entries_max: 1000,
        entry_bytes_max: 1 << 20,
    };

    pub(super) fn entry(
        offset: Option<u64>,
        payload: &[u8],
        props: &[(&[u8], &[u8])],
    ) -> FramedEntry {
        FramedEntry {
            offset,
            payload: Bytes::copy_from_slice(payload),
            properties: props
                .iter()
                .map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v)))
                .collect(),
        }
    }

    #[test]
    fn the_documented_layout() {
        let body = encode(&[entry(None, b"hi", &[(b"k", b"vv")])]);
        let expected: &[u8] = &[
            2, 0, 0, 0, // payload_len
            1, 0, // property_count
            1, 0, b'k', // key
            2, 0, 0, 0, b'v', b'v', // value
            b'h', b'i',
        ];
        assert_eq!(&body[..], expected);
        let with_offset = encode(&[entry(Some(7), b"", &[])]);
        assert_eq!(
            &with_offset[..],
            &[7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn an_empty_body_is_no_entries() {
        assert_eq!(decode(Bytes::new(), false, LIMITS).unwrap(), vec![]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let body = encode(&[entry(Some(3), b"payload", &[(b"key", b"value")])]);
        for len in 1..body.len() {
            let err = decode(body.slice(..len), true, LIMITS).unwrap_err();
            assert!(
                matches!(err, FramingError::Truncated { entry: 0, .. }),
                "{len}: {err}"
            );
        }
    }

    #[test]
    fn limits_are_enforced_before_allocation() {
        let big = [0xff, 0xff, 0xff, 0xff, 0, 0];
        let err = decode(Bytes::copy_from_slice(&big), false, LIMITS).unwrap_err();
        assert!(matches!(err, FramingError::EntryTooLarge { .. }), "{err}");
        let many = encode(&vec![entry(None, b"", &[]); 3]);
        let limits = Limits {
            entries_max: 2,
            ..LIMITS
        };
        assert_eq!(
            decode(many, false, limits).unwrap_err(),
            FramingError::TooManyEntries { max: 2 }
        );
        let props = encode(&[entry(None, b"ab", &[(b"cd", b"ef")])]);
        let limits = Limits {
            entry_bytes_max: 5,
            ..LIMITS
        };
        // A property counts its key, its value and 6 bytes of lengths.
        assert!(matches!(
            decode(props.clone(), false, limits).unwrap_err(),
            FramingError::EntryTooLarge { bytes: 12, .. }
        ));
        let exact = Limits {
            entry_bytes_max: 12,
            ..LIMITS
        };
        assert_eq!(decode(props, false, exact).unwrap().len(), 1);
        // A value declared over the limit is refused before its bytes are
        // looked for, as the chunk decoder refuses it before they arrive.
        let mut declared = BytesMut::new();
        declared.put_slice(&[1, 0, 0, 0, 1, 0, 1, 0, b'k']);
        declared.put_u32_le(100);
        assert!(matches!(
            decode(declared.freeze(), false, limits).unwrap_err(),
            FramingError::EntryTooLarge { bytes: 108, .. }
        ));
    }

    proptest! {
        #[test]
        fn round_trips(
            raw in proptest::collection::vec(
                (any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64),
                 proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..8),
                                            proptest::collection::vec(any::<u8>(), 0..8)), 0..4)),
                0..8),
            with_offsets in any::<bool>(),
        ) {
            let entries: Vec<FramedEntry> = raw.iter().map(|(o, p, props)| FramedEntry {
                offset: with_offsets.then_some(*o),
                payload: Bytes::copy_from_slice(p),
                properties: props.iter().map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v))).collect(),
            }).collect();
            let body = encode(&entries);
            prop_assert_eq!(body.len(), entries.iter().map(encoded_len).sum::<usize>());
            prop_assert_eq!(decode(body, with_offsets, LIMITS).unwrap(), entries);
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256), with_offsets in any::<bool>()) {
            let _ = decode(Bytes::from(body), with_offsets, LIMITS);
        }
    }
}

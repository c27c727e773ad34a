//! Fence marker, format version 1: the object a recovering writer puts
//! (with put-if-absent) at the first fragment index past a dead or fenced
//! writer's last durable fragment, so that writer can never land a fragment
//! there afterwards.
//!
//! | offset | size | field   | meaning                          |
//! |-------:|-----:|---------|----------------------------------|
//! | 0      | 8    | magic   | `b"WPFENCE1"`                    |
//! | 8      | 8    | epoch   | epoch of the writer that fenced  |
//!
//! Exactly 16 bytes; no fragment is that short, so a listing's sizes tell
//! marker candidates apart before any read.

use bytes::Bytes;

pub const FENCE_MARKER_MAGIC: [u8; 8] = *b"WPFENCE1";
pub const FENCE_MARKER_BYTES: usize = 16;

pub fn encode_fence_marker(epoch: u64) -> Bytes {
    let mut bytes = Vec::with_capacity(FENCE_MARKER_BYTES);
    bytes.extend_from_slice(&FENCE_MARKER_MAGIC);
    bytes.extend_from_slice(&epoch.to_le_bytes());
    Bytes::from(bytes)
}

/// The epoch of the writer that placed this marker, if `bytes` is one.
pub fn decode_fence_marker(bytes: &[u8]) -> Option<u64> {
    if bytes.len() != FENCE_MARKER_BYTES || bytes[..8] != FENCE_MARKER_MAGIC {
        return None;
    }
    Some(u64::from_le_bytes(bytes[8..].try_into().expect("8 bytes")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip_and_size() {
        let marker = encode_fence_marker(42);
        assert_eq!(marker.len(), FENCE_MARKER_BYTES);
        assert_eq!(decode_fence_marker(&marker), Some(42));
        assert_eq!(decode_fence_marker(b"WPFENCE1"), None);
        const _: () = assert!(FENCE_MARKER_BYTES < crate::format::FRAGMENT_HEADER_BYTES);
    }
}

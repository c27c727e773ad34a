//! The framing's fuzz target (`fuzz/fuzz_targets/entry_framing.rs`), here
//! so that the checked-in corpus is replayed by the normal test suite
//! (`net/tests/framing_corpus.rs`): decoding any bytes never panics, what
//! decodes encodes back to exactly the same bytes, the stream decoder
//! (bytes as they arrive, here in two pieces split by the first byte)
//! takes the same entries as the whole-body decoder or fails likewise, and
//! the chunk decoder (an append's body as it arrives, in the same two
//! pieces) gives exactly what the whole-body decoder gives.

use super::{decode, decode_stream, encode, ChunkDecoder, Limits};
use bytes::BytesMut;

/// Panics if `data` breaks any of the properties above.
pub fn check(data: &[u8]) {
    let limits = Limits {
        entries_max: 1024,
        entry_bytes_max: 1 << 16,
    };
    for with_offsets in [false, true] {
        let body = bytes::Bytes::copy_from_slice(data);
        let whole = decode(body.clone(), with_offsets, limits);
        let cut = data
            .first()
            .map_or(0, |&b| usize::from(b) % (data.len() + 1));
        let mut decoder = ChunkDecoder::new(with_offsets, limits);
        let chunked = (|| {
            decoder.push(body.slice(..cut))?;
            decoder.push(body.slice(cut..))?;
            decoder.finish()
        })();
        assert_eq!(chunked, whole);
        if let Ok(entries) = &whole {
            assert_eq!(&encode(entries)[..], data);
        }
        let mut buf = BytesMut::from(&data[..cut]);
        let mut streamed = Vec::new();
        let mut failed = false;
        for piece in [&data[..0], &data[cut..]] {
            buf.extend_from_slice(piece);
            match decode_stream(&mut buf, with_offsets, limits) {
                Ok(entries) => streamed.extend(entries),
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        match whole {
            Ok(entries) if entries.len() <= limits.entries_max => {
                assert!(!failed && buf.is_empty());
                assert_eq!(streamed, entries);
            }
            _ => assert!(failed || !buf.is_empty() || streamed.len() > limits.entries_max - 1),
        }
    }
}

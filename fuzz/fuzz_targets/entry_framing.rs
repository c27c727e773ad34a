//! The service's entry framing: decoding any bytes never panics, what
//! decodes encodes back to exactly the same bytes, and the stream decoder
//! (bytes as they arrive, here in two pieces split by the first byte)
//! takes the same entries as the whole-body decoder, or fails likewise.
#![no_main]

use bytes::BytesMut;
use woodpecker_net::framing::{decode, decode_stream, encode, Limits};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        entries_max: 1024,
        entry_bytes_max: 1 << 16,
    };
    for with_offsets in [false, true] {
        let body = bytes::Bytes::copy_from_slice(data);
        let whole = decode(body, with_offsets, limits);
        if let Ok(entries) = &whole {
            assert_eq!(&encode(entries)[..], data);
        }
        let cut = data.first().map_or(0, |&b| usize::from(b) % (data.len() + 1));
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
});

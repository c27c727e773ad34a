//! The service's entry framing: decoding any bytes never panics, and what
//! decodes encodes back to exactly the same bytes.
#![no_main]

use woodpecker_net::framing::{decode, encode, Limits};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        entries_max: 1024,
        entry_bytes_max: 1 << 16,
    };
    for with_offsets in [false, true] {
        let body = bytes::Bytes::copy_from_slice(data);
        if let Ok(entries) = decode(body, with_offsets, limits) {
            assert_eq!(&encode(&entries)[..], data);
        }
    }
});

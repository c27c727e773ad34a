//! The bodies of the fuzz targets (fuzz/fuzz_targets/), one per decoder of
//! bytes from outside, kept here so the corpus replay test
//! (tests/fuzz_corpus.rs) runs exactly what the fuzzer runs. Each panics
//! only if a decoder breaks its own promises.

use crate::format::fragment::{decode_entry, DecodedFragment, FragmentHeader, FragmentTail};
use crate::format::marker::{decode_fence_marker, encode_fence_marker};
use crate::store::s3::xml;

/// A fragment object as read back from storage: the whole-object decoder
/// and the ranged-read decoders (header, then tail, then one entry).
pub fn fragment(data: &[u8]) {
    if let Ok(fragment) = DecodedFragment::decode(data) {
        let header = fragment.header;
        let mut count = 0u64;
        for entry in fragment.entries() {
            assert_eq!(entry.offset, header.first_offset + count);
            std::hint::black_box(entry.properties.iter().count());
            count += 1;
        }
        assert_eq!(count, header.entry_count as u64);
    }
    if let Ok(header) = FragmentHeader::decode(data) {
        std::hint::black_box((header.end_offset(), header.fragment_bytes()));
        if let Some(at) = data.len().checked_sub(header.tail_bytes()) {
            std::hint::black_box(FragmentTail::decode(&header, &data[at..]).ok());
        }
    }
    if let Some((&first, rest)) = data.split_first() {
        if let Ok((entry, used)) = decode_entry(rest, first as u64) {
            assert!(used <= rest.len());
            std::hint::black_box(entry.properties.iter().count());
        }
    }
}

/// A fence marker object: anything but exactly a marker is `None`.
pub fn fence_marker(data: &[u8]) {
    if let Some(epoch) = decode_fence_marker(data) {
        assert_eq!(encode_fence_marker(epoch)[..], data[..]);
    }
}

/// An S3 reply body: a listing, a multipart upload id, an error.
pub fn s3_xml(data: &[u8]) {
    if let Ok(page) = xml::list_page("prefix/", data) {
        if let Some(next) = &page.next {
            assert_eq!(Some(next), page.objects.last().map(|o| &o.key));
        }
    }
    std::hint::black_box(xml::upload_id("key", data).ok());
    std::hint::black_box(xml::error_code(data));
}

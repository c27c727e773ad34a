//! Fragment, format version 1: one object holding a contiguous run of entries
//! of one segment, readable with no other metadata.
//!
//! ```text
//! +--------------------+ 0
//! | header (64 bytes)  |
//! +--------------------+ 64
//! | entry 0            |  entry = entry header (12 bytes) + properties + payload
//! | entry 1            |
//! | ...                |
//! +--------------------+ 64 + entries_bytes
//! | index              |  entry_count x u32: start of each entry, relative to byte 64
//! +--------------------+
//! | footer (16 bytes)  |
//! +--------------------+ total = 64 + entries_bytes + 4 * entry_count + 16
//! ```
//!
//! Header (all little-endian):
//!
//! | offset | size | field            | meaning                                        |
//! |-------:|-----:|------------------|------------------------------------------------|
//! | 0      | 4    | `magic`          | `b"WPFG"`                                      |
//! | 4      | 2    | `version`        | 1                                              |
//! | 6      | 2    | `flags`          | bit 0: last fragment of its segment            |
//! | 8      | 8    | `log_id`         | stable id of the log                           |
//! | 16     | 8    | `segment_id`     | segment within the log                         |
//! | 24     | 8    | `fragment_index` | position of this fragment in its segment, from 0 |
//! | 32     | 8    | `writer_epoch`   | fencing epoch of the writer that produced it    |
//! | 40     | 8    | `first_offset`   | log offset of entry 0                          |
//! | 48     | 8    | `entries_bytes`  | length of the entry region                     |
//! | 56     | 4    | `entry_count`    | number of entries (at least 1)                 |
//! | 60     | 4    | `header_crc`     | CRC32C of bytes 0..60                          |
//!
//! Entry header: `payload_len: u32`, `props_len: u32`, `entry_crc: u32`; then
//! `props_len` bytes of properties, each `key_len: u16`, `value_len: u32`,
//! key bytes, value bytes; then `payload_len` payload bytes. `entry_crc` is
//! the CRC32C of the entry's log offset (`u64`), `payload_len`, `props_len`,
//! the property bytes and the payload, so an entry read on its own (ranged
//! GET) is checked, and an entry found at the wrong place is caught.
//!
//! Footer: `entry_count: u32` (repeated, so a reader of the tail alone can
//! size the index), `index_crc: u32` (CRC32C of the index bytes),
//! `fragment_crc: u32` (CRC32C of every byte before this field), and
//! `end_magic: u32` = `b"GFPW"`.

use super::crc;
use bytemuck::{Pod, Zeroable};
use std::mem::size_of;

/// `b"WPFG"` read as a little-endian `u32`.
pub const FRAGMENT_MAGIC: u32 = u32::from_le_bytes(*b"WPFG");
/// `b"GFPW"` read as a little-endian `u32`; the last four bytes of a fragment.
pub const FRAGMENT_END_MAGIC: u32 = u32::from_le_bytes(*b"GFPW");
/// The only version this code writes and reads.
pub const FRAGMENT_VERSION: u16 = 1;
/// Header flag: this is the last fragment of its segment (written on a clean close).
pub const FRAGMENT_FLAG_LAST_OF_SEGMENT: u16 = 1;
const FRAGMENT_FLAGS_KNOWN: u16 = FRAGMENT_FLAG_LAST_OF_SEGMENT;

pub const FRAGMENT_HEADER_BYTES: usize = size_of::<FragmentHeader>();
pub const FRAGMENT_FOOTER_BYTES: usize = size_of::<FragmentFooter>();
const ENTRY_HEADER_BYTES: usize = size_of::<EntryHeader>();
const INDEX_SLOT_BYTES: usize = size_of::<u32>();
const PROPERTY_HEADER_BYTES: usize = 2 + 4;
/// Largest entry region; index slots are `u32` positions into it.
pub const FRAGMENT_ENTRIES_BYTES_MAX: usize = u32::MAX as usize;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct FragmentHeader {
    pub magic: u32,
    pub version: u16,
    pub flags: u16,
    pub log_id: u64,
    pub segment_id: u64,
    pub fragment_index: u64,
    pub writer_epoch: u64,
    pub first_offset: u64,
    pub entries_bytes: u64,
    pub entry_count: u32,
    pub header_crc: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
struct EntryHeader {
    payload_len: u32,
    props_len: u32,
    entry_crc: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
struct FragmentFooter {
    entry_count: u32,
    index_crc: u32,
    fragment_crc: u32,
    end_magic: u32,
}

const _: () = assert!(FRAGMENT_HEADER_BYTES == 64);
const _: () = assert!(ENTRY_HEADER_BYTES == 12);
const _: () = assert!(FRAGMENT_FOOTER_BYTES == 16);
const HEADER_CRC_SPAN: usize = 60;
const _: () = assert!(std::mem::offset_of!(FragmentHeader, header_crc) == HEADER_CRC_SPAN);

/// What goes wrong encoding or decoding a fragment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The entry does not fit in the rest of the buffer; close the fragment and retry.
    #[error("fragment buffer full")]
    Full,
    /// The entry could never be encoded (a length overflows its field).
    #[error("entry too large: {0}")]
    TooLarge(&'static str),
    /// The bytes are not a valid fragment; never returned as data.
    #[error("corrupt fragment: {0}")]
    Corrupt(&'static str),
}

/// Whether a stored checksum matches the computed one. Fuzzing builds
/// (`--cfg fuzzing`, set by `cargo fuzz`) accept any, so the fuzzer reaches
/// the structural checks behind every checksum.
#[inline]
fn crc_ok(stored: u32, computed: u32) -> bool {
    cfg!(fuzzing) || stored == computed
}

fn corrupt(what: &'static str) -> FormatError {
    FormatError::Corrupt(what)
}

/// The identity of a fragment, written into its header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FragmentMeta {
    pub log_id: u64,
    pub segment_id: u64,
    pub fragment_index: u64,
    pub writer_epoch: u64,
    pub first_offset: u64,
}

/// Properties of an entry that has none.
pub const NO_PROPERTIES: &[(&[u8], &[u8])] = &[];

/// Bytes one entry takes in a fragment, its index slot included.
pub fn encoded_entry_bytes<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    payload_len: usize,
    props: &[(K, V)],
) -> usize {
    ENTRY_HEADER_BYTES + props_bytes(props) + payload_len + INDEX_SLOT_BYTES
}

/// Bytes a fragment with `entries_bytes` of entries (index slots included, as
/// counted by [`encoded_entry_bytes`]) takes in all.
pub fn fragment_bytes_for(entries_and_index_bytes: usize) -> usize {
    FRAGMENT_HEADER_BYTES + entries_and_index_bytes + FRAGMENT_FOOTER_BYTES
}

fn props_bytes<K: AsRef<[u8]>, V: AsRef<[u8]>>(props: &[(K, V)]) -> usize {
    props
        .iter()
        .map(|(k, v)| PROPERTY_HEADER_BYTES + k.as_ref().len() + v.as_ref().len())
        .sum()
}

/// Writes one fragment into a caller-provided buffer `B` (a slice, a
/// `Vec<u8>`, or an aligned pooled buffer).
///
/// Entries are copied once, straight into the buffer, and their CRC32C is
/// computed over the bytes just written. Entry positions go into an index
/// vector whose capacity is reused across fragments ([`Self::reset`],
/// [`Self::into_parts`]), so encoding in steady state allocates nothing.
pub struct FragmentEncoder<B> {
    buf: B,
    index: Vec<u32>,
    meta: FragmentMeta,
    /// End of the entry region written so far (absolute position in `buf`).
    end: usize,
    /// CRC32C of the entry region so far, kept while the bytes are hot so
    /// `finish` never re-reads the fragment.
    entries_crc: u32,
    shift: crc::ShiftCache,
    /// CRC32C of the whole finished fragment.
    object_crc: u32,
    finished: bool,
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> FragmentEncoder<B> {
    /// Starts a fragment in `buf`; `index` is cleared and used as scratch.
    pub fn new(buf: B, mut index: Vec<u32>, meta: FragmentMeta) -> Self {
        index.clear();
        FragmentEncoder {
            buf,
            index,
            meta,
            end: FRAGMENT_HEADER_BYTES,
            entries_crc: 0,
            shift: crc::ShiftCache::default(),
            object_crc: 0,
            finished: false,
        }
    }

    /// Starts a new fragment in the same buffer and index.
    pub fn reset(&mut self, meta: FragmentMeta) {
        self.index.clear();
        self.meta = meta;
        self.end = FRAGMENT_HEADER_BYTES;
        self.entries_crc = 0;
        self.finished = false;
    }

    pub fn meta(&self) -> &FragmentMeta {
        &self.meta
    }

    pub fn entry_count(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes the fragment would take if finished now.
    pub fn encoded_len(&self) -> usize {
        self.end + self.index.len() * INDEX_SLOT_BYTES + FRAGMENT_FOOTER_BYTES
    }

    /// Offset the next pushed entry will get.
    pub fn next_offset(&self) -> u64 {
        self.meta.first_offset + self.index.len() as u64
    }

    /// The encoded bytes; complete once [`Self::finish`] returned.
    pub fn bytes(&self) -> &[u8] {
        &self.buf.as_ref()[..self.encoded_len()]
    }

    /// CRC32C of the whole fragment (all of [`Self::bytes`]) once finished,
    /// derived from the fragment checksum without another pass.
    pub fn object_crc32c(&self) -> u32 {
        assert!(self.finished, "the fragment is not finished");
        self.object_crc
    }

    /// Takes back the buffer and the index scratch.
    pub fn into_parts(self) -> (B, Vec<u32>) {
        (self.buf, self.index)
    }

    /// Appends one entry and returns its log offset. Properties are any
    /// slice of byte-like pairs, so the caller need not build a new list.
    pub fn push<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &mut self,
        payload: &[u8],
        props: &[(K, V)],
    ) -> Result<u64, FormatError> {
        assert!(!self.finished, "push after finish");
        let payload_len = u32::try_from(payload.len())
            .map_err(|_| FormatError::TooLarge("payload over 4 GiB"))?;
        for (key, value) in props {
            let (key, value) = (key.as_ref(), value.as_ref());
            if key.len() > u16::MAX as usize {
                return Err(FormatError::TooLarge("property key over 64 KiB"));
            }
            if value.len() > u32::MAX as usize {
                return Err(FormatError::TooLarge("property value over 4 GiB"));
            }
        }
        let props_len = u32::try_from(props_bytes(props))
            .map_err(|_| FormatError::TooLarge("properties over 4 GiB"))?;
        let record_bytes = ENTRY_HEADER_BYTES + props_len as usize + payload.len();
        let entries_bytes_after = self.end - FRAGMENT_HEADER_BYTES + record_bytes;
        if entries_bytes_after > FRAGMENT_ENTRIES_BYTES_MAX {
            return Err(FormatError::Full);
        }
        let needed = self.encoded_len() + record_bytes + INDEX_SLOT_BYTES;
        if needed > self.buf.as_ref().len() {
            return Err(FormatError::Full);
        }

        let offset = self.next_offset();
        let start = self.end;
        let buf = self.buf.as_mut();
        let mut at = start + ENTRY_HEADER_BYTES;
        for (key, value) in props {
            let (key, value) = (key.as_ref(), value.as_ref());
            buf[at..at + 2].copy_from_slice(&(key.len() as u16).to_le_bytes());
            buf[at + 2..at + 6].copy_from_slice(&(value.len() as u32).to_le_bytes());
            at += PROPERTY_HEADER_BYTES;
            buf[at..at + key.len()].copy_from_slice(key);
            at += key.len();
            buf[at..at + value.len()].copy_from_slice(value);
            at += value.len();
        }
        buf[at..at + payload.len()].copy_from_slice(payload);
        at += payload.len();
        debug_assert_eq!(at, start + record_bytes);

        let body = &buf[start + ENTRY_HEADER_BYTES..at];
        let seed = entry_seed(offset, payload_len, props_len);
        let entry_crc = crc32c::crc32c_append(seed, body);
        let header = EntryHeader {
            payload_len,
            props_len,
            entry_crc,
        };
        let header_bytes = bytemuck::bytes_of(&header);
        // The running fragment checksum follows from the entry checksum: one
        // pass over the payload, not two.
        let running = crc32c::crc32c_append(self.entries_crc, header_bytes);
        let shift = self.shift.get(body.len());
        self.entries_crc = crc::rebase(entry_crc, seed, running, shift);
        buf[start..start + ENTRY_HEADER_BYTES].copy_from_slice(header_bytes);
        self.index.push((start - FRAGMENT_HEADER_BYTES) as u32);
        self.end = at;
        Ok(offset)
    }

    /// Writes index, footer and header; returns the fragment's length. The
    /// bytes are then [`Self::bytes`]. A fragment holds at least one entry.
    pub fn finish(&mut self, last_of_segment: bool) -> Result<usize, FormatError> {
        if self.index.is_empty() {
            return Err(FormatError::TooLarge("a fragment needs at least one entry"));
        }
        assert!(!self.finished, "finish called twice");
        self.finished = true;
        let entry_count = self.index.len() as u32;
        let entries_bytes = (self.end - FRAGMENT_HEADER_BYTES) as u64;
        let mut header = FragmentHeader {
            magic: FRAGMENT_MAGIC,
            version: FRAGMENT_VERSION,
            flags: if last_of_segment {
                FRAGMENT_FLAG_LAST_OF_SEGMENT
            } else {
                0
            },
            log_id: self.meta.log_id,
            segment_id: self.meta.segment_id,
            fragment_index: self.meta.fragment_index,
            writer_epoch: self.meta.writer_epoch,
            first_offset: self.meta.first_offset,
            entries_bytes,
            entry_count,
            header_crc: 0,
        };
        header.header_crc = crc32c::crc32c(&bytemuck::bytes_of(&header)[..HEADER_CRC_SPAN]);
        let index_start = self.end;
        let index_bytes: &[u8] = bytemuck::cast_slice(self.index.as_slice());
        let footer_start = index_start + index_bytes.len();
        let index_crc = crc32c::crc32c(index_bytes);
        let buf = self.buf.as_mut();
        buf[..FRAGMENT_HEADER_BYTES].copy_from_slice(bytemuck::bytes_of(&header));
        buf[index_start..footer_start].copy_from_slice(index_bytes);
        buf[footer_start..footer_start + 4].copy_from_slice(&entry_count.to_le_bytes());
        buf[footer_start + 4..footer_start + 8].copy_from_slice(&index_crc.to_le_bytes());
        // CRC of everything before the fragment_crc field: the header's CRC
        // combined with the running CRC of the entries, index and footer start.
        let tail_crc = crc32c::crc32c_append(self.entries_crc, &buf[index_start..footer_start + 8]);
        let tail_len = footer_start + 8 - FRAGMENT_HEADER_BYTES;
        let fragment_crc = crc::combine(
            crc32c::crc32c(&buf[..FRAGMENT_HEADER_BYTES]),
            tail_crc,
            tail_len,
        );
        debug_assert_eq!(fragment_crc, crc32c::crc32c(&buf[..footer_start + 8]));
        buf[footer_start + 8..footer_start + 12].copy_from_slice(&fragment_crc.to_le_bytes());
        buf[footer_start + 12..footer_start + 16]
            .copy_from_slice(&FRAGMENT_END_MAGIC.to_le_bytes());
        let total = footer_start + FRAGMENT_FOOTER_BYTES;
        let object_crc = crc32c::crc32c_append(fragment_crc, &buf[footer_start + 8..total]);
        debug_assert_eq!(object_crc, crc32c::crc32c(&buf[..total]));
        debug_assert_eq!(total, self.encoded_len());
        self.object_crc = object_crc;
        Ok(total)
    }
}

/// The CRC32C of an entry's offset and lengths: the seed its checksum
/// continues from over the property and payload bytes.
fn entry_seed(offset: u64, payload_len: u32, props_len: u32) -> u32 {
    let mut prefix = [0u8; 16];
    prefix[..8].copy_from_slice(&offset.to_le_bytes());
    prefix[8..12].copy_from_slice(&payload_len.to_le_bytes());
    prefix[12..].copy_from_slice(&props_len.to_le_bytes());
    crc32c::crc32c(&prefix)
}

impl FragmentHeader {
    /// Decodes and checks a header from the first 64 bytes of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<FragmentHeader, FormatError> {
        let bytes = bytes
            .get(..FRAGMENT_HEADER_BYTES)
            .ok_or(corrupt("shorter than a header"))?;
        let header: FragmentHeader = bytemuck::pod_read_unaligned(bytes);
        if header.magic != FRAGMENT_MAGIC {
            return Err(corrupt("bad magic"));
        }
        if !crc_ok(header.header_crc, crc32c::crc32c(&bytes[..HEADER_CRC_SPAN])) {
            return Err(corrupt("header checksum mismatch"));
        }
        if header.version != FRAGMENT_VERSION {
            return Err(corrupt("unknown format version"));
        }
        if header.flags & !FRAGMENT_FLAGS_KNOWN != 0 {
            return Err(corrupt("unknown header flags"));
        }
        if header.entry_count == 0 {
            return Err(corrupt("fragment without entries"));
        }
        if header.entries_bytes > FRAGMENT_ENTRIES_BYTES_MAX as u64 {
            return Err(corrupt("entry region too long"));
        }
        if header
            .first_offset
            .checked_add(header.entry_count as u64)
            .is_none()
        {
            return Err(corrupt("entry offsets overflow"));
        }
        Ok(header)
    }

    pub fn is_last_of_segment(&self) -> bool {
        self.flags & FRAGMENT_FLAG_LAST_OF_SEGMENT != 0
    }

    /// The log offset after this fragment's last entry.
    pub fn end_offset(&self) -> u64 {
        self.first_offset + self.entry_count as u64
    }

    /// Total length of the fragment this header describes.
    pub fn fragment_bytes(&self) -> u64 {
        FRAGMENT_HEADER_BYTES as u64
            + self.entries_bytes
            + self.entry_count as u64 * INDEX_SLOT_BYTES as u64
            + FRAGMENT_FOOTER_BYTES as u64
    }

    /// Bytes at the end of the fragment that hold the index and footer.
    pub fn tail_bytes(&self) -> usize {
        self.entry_count as usize * INDEX_SLOT_BYTES + FRAGMENT_FOOTER_BYTES
    }

    pub fn last_offset(&self) -> u64 {
        self.first_offset + self.entry_count as u64 - 1
    }
}

/// The index and footer of a fragment, read on their own (for ranged reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentTail {
    /// Start of each entry, relative to the start of the entry region.
    pub index: Vec<u32>,
}

impl FragmentTail {
    /// Decodes the index and footer from `tail`, the last
    /// `header.tail_bytes()` bytes of a fragment, checking the index CRC.
    pub fn decode(header: &FragmentHeader, tail: &[u8]) -> Result<FragmentTail, FormatError> {
        if tail.len() != header.tail_bytes() {
            return Err(corrupt("tail length does not match header"));
        }
        let (index_bytes, footer_bytes) = tail.split_at(tail.len() - FRAGMENT_FOOTER_BYTES);
        let footer: FragmentFooter = bytemuck::pod_read_unaligned(footer_bytes);
        check_footer(&footer, header, index_bytes)?;
        let index: Vec<u32> = index_bytes
            .chunks_exact(INDEX_SLOT_BYTES)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        check_index_shape(&index, header.entries_bytes)?;
        Ok(FragmentTail { index })
    }
}

fn check_footer(
    footer: &FragmentFooter,
    header: &FragmentHeader,
    index_bytes: &[u8],
) -> Result<(), FormatError> {
    if footer.end_magic != FRAGMENT_END_MAGIC {
        return Err(corrupt("bad end magic"));
    }
    if footer.entry_count != header.entry_count {
        return Err(corrupt("footer entry count differs from header"));
    }
    if !crc_ok(footer.index_crc, crc32c::crc32c(index_bytes)) {
        return Err(corrupt("index checksum mismatch"));
    }
    Ok(())
}

fn check_index_shape(index: &[u32], entries_bytes: u64) -> Result<(), FormatError> {
    if index.first() != Some(&0) {
        return Err(corrupt("index does not start at 0"));
    }
    let minimal_step = ENTRY_HEADER_BYTES as u32;
    for pair in index.windows(2) {
        if pair[1] < pair[0].saturating_add(minimal_step) {
            return Err(corrupt("index not increasing"));
        }
    }
    if *index.last().expect("checked non-empty") as u64 + ENTRY_HEADER_BYTES as u64 > entries_bytes
    {
        return Err(corrupt("index points past the entry region"));
    }
    Ok(())
}

/// One entry, borrowed from a decoded fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    pub offset: u64,
    pub payload: &'a [u8],
    pub properties: Properties<'a>,
}

/// The properties of one entry, already validated; iterate for `(key, value)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Properties<'a> {
    bytes: &'a [u8],
}

impl<'a> Properties<'a> {
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let mut rest = self.bytes;
        std::iter::from_fn(move || {
            let (key, value, tail) = split_property(rest).ok()??;
            rest = tail;
            Some((key, value))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

type SplitProperty<'a> = Option<(&'a [u8], &'a [u8], &'a [u8])>;

fn split_property(bytes: &[u8]) -> Result<SplitProperty<'_>, FormatError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() < PROPERTY_HEADER_BYTES {
        return Err(corrupt("property header cut short"));
    }
    let key_len = u16::from_le_bytes([bytes[0], bytes[1]]) as usize;
    let value_len = u32::from_le_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]) as usize;
    let rest = &bytes[PROPERTY_HEADER_BYTES..];
    if rest.len() < key_len || rest.len() - key_len < value_len {
        return Err(corrupt("property runs past its entry"));
    }
    let (key, rest) = rest.split_at(key_len);
    let (value, rest) = rest.split_at(value_len);
    Ok(Some((key, value, rest)))
}

/// Decodes and checks one entry at the start of `bytes`, which must hold the
/// entry of log offset `offset`; returns it and the bytes it took.
///
/// Used for ranged reads of a sub-range of a fragment: the entry checksum
/// binds the bytes to `offset`.
pub fn decode_entry(bytes: &[u8], offset: u64) -> Result<(EntryRef<'_>, usize), FormatError> {
    check_entry(bytes, offset).map(|checked| (checked.entry, checked.used))
}

/// An entry checked by [`check_entry`], with what its checksum was built
/// from (to extend the fragment checksum without another pass).
struct CheckedEntry<'a> {
    entry: EntryRef<'a>,
    used: usize,
    seed: u32,
    entry_crc: u32,
    body_len: usize,
}

fn check_entry(bytes: &[u8], offset: u64) -> Result<CheckedEntry<'_>, FormatError> {
    let head = bytes
        .get(..ENTRY_HEADER_BYTES)
        .ok_or(corrupt("entry header cut short"))?;
    let header: EntryHeader = bytemuck::pod_read_unaligned(head);
    let body_len = header.props_len as usize + header.payload_len as usize;
    let body = bytes[ENTRY_HEADER_BYTES..]
        .get(..body_len)
        .ok_or(corrupt("entry runs past the entry region"))?;
    let seed = entry_seed(offset, header.payload_len, header.props_len);
    if !crc_ok(header.entry_crc, crc32c::crc32c_append(seed, body)) {
        return Err(corrupt("entry checksum mismatch"));
    }
    let (props, payload) = body.split_at(header.props_len as usize);
    let mut rest = props;
    while let Some((_, _, tail)) = split_property(rest)? {
        rest = tail;
    }
    Ok(CheckedEntry {
        entry: EntryRef {
            offset,
            payload,
            properties: Properties { bytes: props },
        },
        used: ENTRY_HEADER_BYTES + body_len,
        seed,
        entry_crc: header.entry_crc,
        body_len,
    })
}

/// Splits a checked entry without checking it again.
fn parse_entry(bytes: &[u8], offset: u64) -> (EntryRef<'_>, usize) {
    let header: EntryHeader = bytemuck::pod_read_unaligned(&bytes[..ENTRY_HEADER_BYTES]);
    let body_len = header.props_len as usize + header.payload_len as usize;
    let body = &bytes[ENTRY_HEADER_BYTES..ENTRY_HEADER_BYTES + body_len];
    let (props, payload) = body.split_at(header.props_len as usize);
    let entry = EntryRef {
        offset,
        payload,
        properties: Properties { bytes: props },
    };
    (entry, ENTRY_HEADER_BYTES + body_len)
}

/// A whole fragment, fully checked: header, footer, index, every entry and
/// the fragment checksum. Entries are borrowed from the input bytes.
#[derive(Debug, Clone)]
pub struct DecodedFragment<'a> {
    pub header: FragmentHeader,
    entries: &'a [u8],
}

impl<'a> DecodedFragment<'a> {
    pub fn decode(bytes: &'a [u8]) -> Result<DecodedFragment<'a>, FormatError> {
        let header = FragmentHeader::decode(bytes)?;
        if bytes.len() as u64 != header.fragment_bytes() {
            return Err(corrupt("length does not match header"));
        }
        let crc_span = bytes.len() - 8;
        let stored_crc = u32::from_le_bytes(
            bytes[crc_span..crc_span + 4]
                .try_into()
                .expect("four bytes"),
        );
        let entries_end = FRAGMENT_HEADER_BYTES + header.entries_bytes as usize;
        let tail = FragmentTail::decode(&header, &bytes[entries_end..])?;
        let entries = &bytes[FRAGMENT_HEADER_BYTES..entries_end];
        // One pass over the payloads: each entry's checksum is checked and
        // the fragment checksum follows from it (see `crc`).
        let mut fragment_crc = crc32c::crc32c(&bytes[..FRAGMENT_HEADER_BYTES]);
        let mut shift = crc::ShiftCache::default();
        let mut at = 0usize;
        for (i, &start) in tail.index.iter().enumerate() {
            if start as usize != at {
                return Err(corrupt("index disagrees with entries"));
            }
            let checked = check_entry(&entries[at..], header.first_offset + i as u64)?;
            let running =
                crc32c::crc32c_append(fragment_crc, &entries[at..at + ENTRY_HEADER_BYTES]);
            fragment_crc = crc::rebase(
                checked.entry_crc,
                checked.seed,
                running,
                shift.get(checked.body_len),
            );
            at += checked.used;
        }
        if at != entries.len() {
            return Err(corrupt("bytes after the last entry"));
        }
        fragment_crc = crc32c::crc32c_append(fragment_crc, &bytes[entries_end..crc_span]);
        if !crc_ok(stored_crc, fragment_crc) {
            return Err(corrupt("fragment checksum mismatch"));
        }
        Ok(DecodedFragment { header, entries })
    }

    /// Entries in offset order. The fragment was checked whole by `decode`.
    pub fn entries(&self) -> impl Iterator<Item = EntryRef<'a>> + '_ {
        let mut at = 0usize;
        let mut offset = self.header.first_offset;
        let entries = self.entries;
        std::iter::from_fn(move || {
            if at >= entries.len() {
                return None;
            }
            let (entry, used) = parse_entry(&entries[at..], offset);
            at += used;
            offset += 1;
            Some(entry)
        })
    }
}

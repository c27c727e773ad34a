//! Decoding framed entries from bytes as they arrive: a follow read's
//! stream ([`decode_stream`]) and an append's request body in the chunks
//! the connection delivers ([`ChunkDecoder`]).

use super::{decode, FramedEntry, FramingError, Limits, ENTRY_HEAD_BYTES, PROPERTY_OVERHEAD_BYTES};
use bytes::{Bytes, BytesMut};

/// Takes the whole entries at the front of `buf`, a stream's bytes as
/// they arrive (a follow read), and leaves a partial last entry in it for
/// the next call. Fails as soon as the entry in front breaks a limit,
/// without waiting for its bytes.
pub fn decode_stream(
    buf: &mut BytesMut,
    with_offsets: bool,
    limits: Limits,
) -> Result<Vec<FramedEntry>, FramingError> {
    let mut entries = Vec::new();
    while let Extent::Whole(len) = extent(buf, with_offsets, limits)? {
        entries.push(decode_one(
            buf.split_to(len).freeze(),
            with_offsets,
            limits,
        )?);
    }
    Ok(entries)
}

/// Bytes a split entry's carry takes ahead of the bytes that arrived
/// (hyper's read buffer holds as much per connection).
const CARRY_RESERVE_MAX: usize = 1 << 20;

/// Decodes a body from its chunks without joining them: an entry that
/// lies within one chunk is a slice of it; only an entry split between
/// chunks is copied, into a buffer of its own size. Gives the entries and
/// errors [`decode`] gives for the whole body, failing as soon as an
/// entry breaks a limit.
pub struct ChunkDecoder {
    with_offsets: bool,
    limits: Limits,
    /// The start of an entry split between chunks.
    carry: BytesMut,
    entries: Vec<FramedEntry>,
}

impl ChunkDecoder {
    pub fn new(with_offsets: bool, limits: Limits) -> ChunkDecoder {
        ChunkDecoder {
            with_offsets,
            limits,
            carry: BytesMut::new(),
            entries: Vec::new(),
        }
    }

    /// Takes the body's next chunk.
    pub fn push(&mut self, mut chunk: Bytes) -> Result<(), FramingError> {
        while !chunk.is_empty() {
            let at = self.entries.len();
            if at == self.limits.entries_max {
                return Err(FramingError::TooManyEntries {
                    max: self.limits.entries_max,
                });
            }
            let indexed = |e: FramingError| e.at_entry(at);
            if self.carry.is_empty() {
                match extent(&chunk, self.with_offsets, self.limits).map_err(indexed)? {
                    Extent::Whole(len) => self.take(chunk.split_to(len))?,
                    Extent::AtLeast(need) => {
                        // With its headers in, `need` is the whole entry:
                        // room for it now, so the carry is not grown (and
                        // copied again) as the rest arrives. A client
                        // that announces a large entry and stalls gets at
                        // most `CARRY_RESERVE_MAX` ahead of its bytes.
                        self.carry
                            .reserve(need.min(CARRY_RESERVE_MAX).max(chunk.len()));
                        self.carry.extend_from_slice(&chunk);
                        return Ok(());
                    }
                }
                continue;
            }
            // Complete the split entry: as many bytes as it is known to
            // need, then look again (its headers tell the rest).
            match extent(&self.carry, self.with_offsets, self.limits).map_err(indexed)? {
                Extent::Whole(len) => {
                    debug_assert_eq!(len, self.carry.len());
                    let whole = self.carry.split().freeze();
                    self.take(whole)?;
                }
                Extent::AtLeast(need) => {
                    let more = (need - self.carry.len()).min(chunk.len());
                    self.carry.reserve(need - self.carry.len());
                    self.carry.extend_from_slice(&chunk.split_to(more));
                    if let Extent::Whole(_) =
                        extent(&self.carry, self.with_offsets, self.limits).map_err(indexed)?
                    {
                        let whole = self.carry.split().freeze();
                        self.take(whole)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The body ended: its entries, or the error for a partial last one.
    pub fn finish(self) -> Result<Vec<FramedEntry>, FramingError> {
        if self.carry.is_empty() {
            return Ok(self.entries);
        }
        let at = self.entries.len();
        match decode(self.carry.freeze(), self.with_offsets, self.limits) {
            Err(err) => Err(err.at_entry(at)),
            Ok(_) => unreachable!("a whole entry is never left in the carry"),
        }
    }

    fn take(&mut self, whole: Bytes) -> Result<(), FramingError> {
        let at = self.entries.len();
        let entry =
            decode_one(whole, self.with_offsets, self.limits).map_err(|e| e.at_entry(at))?;
        self.entries.push(entry);
        Ok(())
    }
}

/// Decodes the one whole entry `bytes` holds.
fn decode_one(
    bytes: Bytes,
    with_offsets: bool,
    limits: Limits,
) -> Result<FramedEntry, FramingError> {
    let one = Limits {
        entries_max: 1,
        ..limits
    };
    let mut entries = decode(bytes, with_offsets, one)?;
    Ok(entries.pop().expect("a whole entry decodes to one entry"))
}

/// How much of the entry at the front of a buffer is there.
#[derive(Debug, PartialEq, Eq)]
enum Extent {
    /// All of it: its length.
    Whole(usize),
    /// Not all: the buffer must hold at least this many bytes (more than
    /// it does) before it can tell more.
    AtLeast(usize),
}

/// The extent of the entry at the front of `buf`. Checks the entry's size
/// against the limits as soon as its headers are there.
fn extent(buf: &[u8], with_offsets: bool, limits: Limits) -> Result<Extent, FramingError> {
    let too_large = |bytes| FramingError::EntryTooLarge {
        entry: 0,
        bytes,
        max: limits.entry_bytes_max,
    };
    let mut at = if with_offsets { 8 } else { 0 };
    let Some(head) = buf.get(at..at + ENTRY_HEAD_BYTES) else {
        return Ok(Extent::AtLeast(at + ENTRY_HEAD_BYTES));
    };
    let payload_len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
    let property_count = u16::from_le_bytes(head[4..].try_into().expect("2 bytes")) as usize;
    let mut bytes = payload_len;
    if bytes > limits.entry_bytes_max {
        return Err(too_large(bytes));
    }
    at += ENTRY_HEAD_BYTES;
    for _ in 0..property_count {
        let Some(key) = buf.get(at..at + 2) else {
            return Ok(Extent::AtLeast(at + 2));
        };
        let key_len = u16::from_le_bytes(key.try_into().expect("2 bytes")) as usize;
        at += 2 + key_len;
        let Some(value) = buf.get(at..at + 4) else {
            return Ok(Extent::AtLeast(at + 4));
        };
        let value_len = u32::from_le_bytes(value.try_into().expect("4 bytes")) as usize;
        at += 4;
        bytes = bytes.saturating_add(PROPERTY_OVERHEAD_BYTES + key_len + value_len);
        if bytes > limits.entry_bytes_max {
            return Err(too_large(bytes));
        }
        at += value_len;
    }
    at += payload_len;
    Ok(if buf.len() >= at {
        Extent::Whole(at)
    } else {
        Extent::AtLeast(at)
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{entry, LIMITS};
    use super::super::{encode, Buf};
    use super::*;
    use proptest::prelude::*;

    /// `body` cut at `cuts` (any order, any positions), as chunks.
    fn chunks(body: &Bytes, cuts: Vec<usize>) -> Vec<Bytes> {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (body.len() + 1)).collect();
        cuts.push(body.len());
        cuts.sort_unstable();
        let mut from = 0;
        cuts.into_iter()
            .map(|cut| {
                let chunk = body.slice(from..cut);
                from = cut;
                chunk
            })
            .collect()
    }

    fn chunked(
        body: &Bytes,
        cuts: Vec<usize>,
        with_offsets: bool,
        limits: Limits,
    ) -> Result<Vec<FramedEntry>, FramingError> {
        let mut decoder = ChunkDecoder::new(with_offsets, limits);
        for chunk in chunks(body, cuts) {
            decoder.push(chunk)?;
        }
        decoder.finish()
    }

    #[test]
    fn an_entry_within_a_chunk_is_not_copied() {
        let body = encode(&[
            entry(None, b"first", &[]),
            entry(None, b"second", &[(b"k", b"v")]),
        ]);
        let mut decoder = ChunkDecoder::new(false, LIMITS);
        decoder.push(body.clone()).unwrap();
        let entries = decoder.finish().unwrap();
        let within = |b: &Bytes| body.as_ptr_range().contains(&b.as_ptr());
        assert!(entries.iter().all(|e| within(&e.payload)));
    }

    #[test]
    fn a_split_entry_is_copied_into_one_buffer_of_its_size() {
        let payload = vec![7u8; 64 << 10];
        let body = encode(&[
            entry(None, b"a", &[]),
            entry(None, &payload, &[(b"k", b"v")]),
        ]);
        let mut decoder = ChunkDecoder::new(false, LIMITS);
        decoder.push(body.slice(..body.len() / 3)).unwrap();
        let carry = decoder.carry.as_ptr_range();
        // The split entry is all of the body but the first entry's 7 bytes.
        assert!(
            decoder.carry.capacity() >= body.len() - 7,
            "room for the whole entry"
        );
        decoder
            .push(body.slice(body.len() / 3..body.len() / 2))
            .unwrap();
        decoder.push(body.slice(body.len() / 2..)).unwrap();
        let entries = decoder.finish().unwrap();
        assert_eq!(entries[1].payload, payload);
        // Where the first part was copied to, never moved since: the
        // payload follows the entry's header and its one property.
        let header = 6 + (2 + 1 + 4 + 1);
        assert_eq!(
            entries[1].payload.as_ptr() as usize,
            carry.start as usize + header
        );
    }

    #[test]
    fn errors_name_the_entry_they_are_in() {
        let body = encode(&[
            entry(None, b"ok", &[]),
            entry(None, b"payload", &[(b"key", b"value")]),
        ]);
        for len in 11..body.len() {
            let err = chunked(&body.slice(..len), vec![9, len / 2], false, LIMITS).unwrap_err();
            assert!(
                matches!(err, FramingError::Truncated { entry: 1, .. }),
                "{len}: {err}"
            );
        }
        let big = encode(&[entry(None, b"", &[]), entry(None, &[7; 64], &[])]);
        let limits = Limits {
            entry_bytes_max: 10,
            ..LIMITS
        };
        // Refused once the header is in, before the payload arrives.
        let mut decoder = ChunkDecoder::new(false, limits);
        decoder.push(big.slice(..6)).unwrap();
        let err = decoder.push(big.slice(6..12)).unwrap_err();
        assert_eq!(
            err,
            FramingError::EntryTooLarge {
                entry: 1,
                bytes: 64,
                max: 10
            }
        );
    }

    proptest! {
        #[test]
        fn a_stream_decodes_the_same_whatever_its_chunks(
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20),
            cuts in proptest::collection::vec(0usize..4000, 0..10),
        ) {
            let entries: Vec<FramedEntry> = payloads
                .iter()
                .enumerate()
                .map(|(i, p)| entry(Some(i as u64), p, &[(b"key", &p[..p.len().min(5)])]))
                .collect();
            let body = encode(&entries);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in chunks(&body, cuts.clone()) {
                buf.extend_from_slice(&chunk);
                got.extend(decode_stream(&mut buf, true, LIMITS).unwrap());
            }
            prop_assert!(!buf.has_remaining());
            prop_assert_eq!(&got, &entries);
            prop_assert_eq!(chunked(&body, cuts, true, LIMITS).unwrap(), entries);
        }

        #[test]
        fn chunks_decode_as_the_whole_body_does(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            cuts in proptest::collection::vec(0usize..256, 0..6),
            with_offsets in any::<bool>(),
            entries_max in 1usize..4,
        ) {
            let limits = Limits { entries_max, entry_bytes_max: 64 };
            let body = Bytes::from(body);
            let whole = decode(body.clone(), with_offsets, limits);
            prop_assert_eq!(chunked(&body, cuts, with_offsets, limits), whole);
        }
    }
}

//! The persisted formats, one file per persisted object.
//!
//! Everything written to object storage is described here and nowhere else;
//! `docs/FORMAT.md` is the prose twin of these modules and changes with them.
//! All integers are fixed-width little-endian (the crate refuses to build on
//! big-endian targets, so `bytemuck` casts of the header structs are exactly
//! the on-wire bytes).

pub(crate) mod crc;
pub mod fragment;
pub mod marker;

pub use fragment::{
    DecodedFragment, EntryRef, FormatError, FragmentEncoder, FragmentHeader, FragmentMeta,
    FragmentTail, Properties, FRAGMENT_FLAG_LAST_OF_SEGMENT, FRAGMENT_FOOTER_BYTES,
    FRAGMENT_HEADER_BYTES, FRAGMENT_MAGIC, FRAGMENT_VERSION,
};

#[cfg(not(target_endian = "little"))]
compile_error!("woodpecker's on-wire format is little-endian and is written with bytemuck casts");

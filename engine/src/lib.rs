//! The storage core of Woodpecker: the fragment format, the object-store
//! layer and the metadata layer, plus the public error type.
//!
//! The thread-per-core runtime lives in `woodpecker-shards`; this crate has
//! no threads of its own except the etcd control thread.

pub mod error;
pub mod format;
pub mod fsck;
#[doc(hidden)]
pub mod fuzz_targets;
pub mod hyper_io;
pub mod layout;
pub mod meta;
pub mod recovery;
pub mod scan;
pub mod store;

pub use error::{Error, ErrorKind, Result};

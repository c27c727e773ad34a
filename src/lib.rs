//! Woodpecker: a write-ahead log whose durable layer is S3-compatible object
//! storage and whose only coordination is etcd.
//!
//! This facade re-exports the crates of the workspace.

pub use woodpecker_engine as engine;
pub use woodpecker_shards as shards;
pub use woodpecker_tuning as tuning;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

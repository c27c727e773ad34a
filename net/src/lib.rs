//! The network service: an HTTP API served by hyper on the shard executors,
//! and a remote client (reqwest) offering the same API as the embedded one.
//!
//! Nothing here yet: the service is built on the write and read paths,
//! which come first. The crate exists so the workspace has its final shape.

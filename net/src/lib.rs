//! The network service: an HTTP API (v1) served by hyper on the shard
//! executors, and a remote client offering the same API as the embedded
//! one. Built so far: the API's wire pieces (entry framing, JSON bodies,
//! error codes, routes) and the server; the remote client comes next.

pub mod error;
pub mod framing;
pub mod json;
pub mod routes;
pub mod server;

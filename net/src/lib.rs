//! The network service: an HTTP API (v1) served by hyper on the shard
//! executors, and a remote client offering the same API as the embedded
//! one: the API's wire pieces (entry framing, JSON bodies, error codes,
//! routes, the `Server-Timing` of appends), the server, and the remote
//! client.

pub mod error;
pub mod framing;
pub mod json;
pub mod remote;
pub mod routes;
pub mod server;
pub mod timing;

//! The thread-per-core runtime: glommio executors pinned to cores, and the
//! placement of logs on shards.
//!
//! Each shard is one `LocalExecutor` on its own thread, pinned to one core,
//! driving its own io_uring rings. The ingest rings, buffer pools and the
//! flush/upload pipeline of the write path live here too as they arrive.

mod admin;
mod audit;
pub mod buffer;
mod cache;
pub mod client;
pub mod config;
mod driver;
mod lag;
mod metered;
pub mod metrics;
pub mod profile;
pub mod reader;
pub mod ring;
mod share;
mod stats;
mod upload;

pub use client::{block_on, Ack, Client, LogStatus, LogWriter};
pub use config::{Config, FlushPolicy};
pub use driver::{entry_bytes, Properties, PROPERTY_OVERHEAD_BYTES};
pub use metrics::Metrics;
pub use profile::StageProfile;
pub use reader::{LogReader, ReadEntry, StartAt};
pub use stats::StatsSnapshot;

use futures::FutureExt;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};
use std::future::Future;
use std::panic::AssertUnwindSafe;

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error("starting shard executor {name}: {detail}")]
    Start { name: String, detail: String },
    #[error("shard executor {name} panicked or failed: {detail}")]
    Join { name: String, detail: String },
}

/// Cores this process may run on, in order.
pub fn available_cores() -> Vec<usize> {
    let mut cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    cores.sort_unstable();
    cores
}

/// The shard that owns `log_id` among `shards` shards: stable for a given
/// id and shard count, and spread evenly (splitmix64 finalizer).
pub fn shard_of(log_id: u64, shards: usize) -> usize {
    assert!(shards > 0, "at least one shard");
    let mut z = log_id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % shards as u64) as usize
}

/// A running shard executor; `join` waits for its future's output.
pub struct ShardHandle<T: Send + 'static> {
    name: String,
    handle: ExecutorJoinHandle<T>,
}

impl<T: Send + 'static> ShardHandle<T> {
    pub fn join(self) -> Result<T, ShardError> {
        self.handle.join().map_err(|e| ShardError::Join {
            name: self.name,
            detail: e.to_string(),
        })
    }
}

/// Starts a glommio executor on a new thread, pinned to `core` when given,
/// and runs the future `make` builds there. With `detect_stalls`, a task
/// that holds the core too long is reported with its backtrace as a `log`
/// warning.
pub fn spawn_shard<F, Fut, T>(
    name: &str,
    core: Option<usize>,
    detect_stalls: bool,
    make: F,
) -> Result<ShardHandle<T>, ShardError>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let placement = match core {
        Some(core) => Placement::Fixed(core),
        None => Placement::Unbound,
    };
    let mut builder = LocalExecutorBuilder::new(placement).name(name);
    if detect_stalls {
        builder = builder.detect_stalls(Some(Box::new(glommio::DefaultStallDetectionHandler {})));
    }
    let handle = builder.spawn(make).map_err(|e| ShardError::Start {
        name: name.to_string(),
        detail: e.to_string(),
    })?;
    Ok(ShardHandle {
        name: name.to_string(),
        handle,
    })
}

/// Runs `future`, turning a panic in it into `Err` with the panic's
/// message, so one task's bug never takes its shard (and every log on it)
/// down. The caller reports it.
pub(crate) async fn catch_panic<F: Future>(future: F) -> Result<F::Output, String> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|panic| {
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_stable_and_spread() {
        let mut counts = [0usize; 4];
        for id in 0..40_000u64 {
            let shard = shard_of(id, 4);
            assert_eq!(shard, shard_of(id, 4));
            counts[shard] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "{counts:?}");
        }
        assert_eq!(shard_of(123, 1), 0);
    }

    #[test]
    fn a_panicking_task_leaves_its_shard_running() {
        let handle = spawn_shard("test-panic", None, false, || async {
            let task = glommio::spawn_local(catch_panic(async {
                let fragments: Vec<u64> = Vec::new();
                fragments[3] // what a short listing once did to a reader
            }));
            let caught = task.await;
            let after = glommio::spawn_local(async { 7 }).await;
            (caught, after)
        })
        .unwrap();
        let (caught, after) = handle.join().unwrap();
        assert!(caught.unwrap_err().contains("index out of bounds"));
        assert_eq!(after, 7);
    }

    #[test]
    fn pinned_shard_runs_on_its_core() {
        let core = available_cores()[0];
        let handle = spawn_shard("test-shard", Some(core), true, || async {
            std::thread::current().name().map(str::to_string)
        })
        .unwrap();
        let name = handle.join().unwrap().unwrap_or_default();
        assert!(name.starts_with("test-shard"), "{name}");
    }
}

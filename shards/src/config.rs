//! The one configuration struct of the embedded client, with documented
//! defaults and validation. Every queue and buffer has a named bound here.

use serde::{Deserialize, Serialize};
use woodpecker_engine::format::fragment::fragment_bytes_for;

/// When a writer ships the fragment it is filling (see
/// [`Config::flush_policy`]).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FlushPolicy {
    /// Group commit: the open fragment ships as soon as one of the log's
    /// upload slots is free and it is worth one (see
    /// [`Config::flush_bytes_per_upload`]); while it waits, entries gather
    /// and ship together (or at `flush_interval_ms`). Right after
    /// acknowledgements, while nothing uploads, it waits briefly for as
    /// many appends as were acknowledged (docs/ARCHITECTURE.md). An ack
    /// costs about one PUT at low load; fragments stay large under load.
    #[default]
    Adaptive,
    /// The open fragment ships `flush_interval_ms` after its first entry
    /// (or when full): fewest PUTs, an interval added to every ack.
    Interval,
}

impl std::str::FromStr for FlushPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<FlushPolicy, String> {
        match s {
            "adaptive" => Ok(FlushPolicy::Adaptive),
            "interval" => Ok(FlushPolicy::Interval),
            other => Err(format!(
                "unknown flush policy {other:?}: expected adaptive or interval"
            )),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Shards: pinned executors, each owning a share of the logs. Default 1.
    pub shards: usize,
    /// Pin shard `i` to the `i`-th available core. Default true.
    pub pin_cores: bool,
    /// Largest fragment, in bytes; the size of each pooled buffer. Default 8 MiB.
    pub fragment_bytes_max: usize,
    /// Most entries in one fragment. Default 65,536.
    pub fragment_entries_max: usize,
    /// When a fragment that is neither full nor at `fragment_entries_max`
    /// closes: `interval` at `flush_interval_ms`, `adaptive` (group commit)
    /// as soon as an upload slot is free, the fragment is worth one
    /// (`flush_bytes_per_upload`) and every append queued so far is in it.
    /// Default adaptive.
    pub flush_policy: FlushPolicy,
    /// A fragment is closed this long after its first entry at the latest,
    /// full or not (under `adaptive`, the bound while every upload slot is
    /// busy). Default 10 ms.
    pub flush_interval_ms: u64,
    /// Under `adaptive`, while `k` of the log's uploads run, the open
    /// fragment ships beside them only once it holds `k` times this many
    /// bytes (with none running it ships at once): concurrent uploads
    /// carry bandwidth, and a small fragment waits for a running upload
    /// instead of slowing every upload in flight down. 0 ships whenever a
    /// slot is free. Default 1 MiB.
    pub flush_bytes_per_upload: usize,
    /// Fragments of one log uploading at once. Default 8.
    pub uploads_in_flight_max: usize,
    /// Fragment buffer memory per shard, shared by its logs; when it is all
    /// in use, appends wait. At least two fragment buffers. Default 256 MiB.
    pub shard_buffer_bytes_max: usize,
    /// Fragment buffers one writer may hold at once (open, uploading, and
    /// waiting for acks), so a log whose store stalls cannot take the
    /// shard's whole pool; every other writer keeps a guaranteed buffer,
    /// so a shard admits at most `shard_buffer_bytes_max /
    /// fragment_bytes_max` writers. Default 10.
    pub log_buffers_max: usize,
    /// Append requests queued in one writer's ingest ring. Default 16,384.
    pub ring_requests_max: usize,
    /// Fragments larger than this go as multipart uploads. Default 16 MiB.
    pub multipart_threshold_bytes: usize,
    /// Part size of multipart uploads (at least 5 MiB). Default 8 MiB.
    pub multipart_part_bytes: usize,
    /// Parts of one fragment uploading at once. Default 4.
    pub multipart_parallel_max: usize,
    /// Retries of a failed fragment upload before the writer gives up and
    /// fails that fragment's appends and every later one. Default 8.
    pub upload_retries_max: u32,
    /// Total time one fragment's upload may take, every attempt and the
    /// object store's own retries included; past it the writer gives up as
    /// with `upload_retries_max`. Default 30,000 ms.
    pub upload_deadline_ms: u64,
    /// Total time a writer retries one metadata call (segment create or
    /// seal) while etcd is unreachable (a leader election, a restart)
    /// before it gives up. Default 30,000 ms.
    pub metadata_deadline_ms: u64,
    pub upload_backoff_initial_ms: u64,
    /// Cap of the exponential upload backoff. Default 2,000 ms.
    pub upload_backoff_max_ms: u64,
    /// A segment rolls once it holds this many bytes. Default 1 GiB.
    pub segment_bytes_max: u64,
    /// A segment rolls once it is this old. Default 10 minutes.
    pub segment_age_max_ms: u64,
    /// Prefix of every object key. Default `wal`.
    pub key_prefix: String,
    /// Fragment bytes a reader fetches ahead of its caller. Default 64 MiB.
    pub reader_prefetch_bytes_max: usize,
    /// Bytes of recently fetched fragments (and written ones, of logs read
    /// on the client lately) each client keeps in memory, split over its
    /// shards, so readers at a log's tail and readers of the same range
    /// share GETs. 0 (the default) keeps none;
    /// `woodpecker serve` keeps 256 MiB unless configured.
    pub fragment_cache_bytes: usize,
    /// Segments wholly below a log's truncation point are deleted (objects
    /// and records) once they have been seen there this long. Default 10 min.
    pub retention_ms: u64,
    /// How often each shard's auditor looks for such segments. Default 30 s.
    pub audit_interval_ms: u64,
    /// Report executor stalls (a task holding the core 10 ms past its
    /// budget) with a backtrace, as `log` warnings (the `woodpecker` binary
    /// prints them on stderr; an embedding application sees them through
    /// its logger). Default: on in debug builds.
    pub stall_detection: bool,
    /// Split every append's latency into the write path's stages (ring,
    /// fill, slot, upload, order; [`crate::profile`]), read with
    /// `Client::stage_profile`. Costs two clock reads per append and a
    /// lock per fragment. Default false.
    pub profile_stages: bool,
}

/// The sizes a fragment may have (its header counts bytes in 32 bits).
pub const FRAGMENT_BYTES: std::ops::RangeInclusive<usize> = 4096..=u32::MAX as usize;

impl Default for Config {
    fn default() -> Self {
        Config {
            shards: 1,
            pin_cores: true,
            fragment_bytes_max: 8 << 20,
            fragment_entries_max: 65_536,
            flush_policy: FlushPolicy::Adaptive,
            flush_interval_ms: 10,
            flush_bytes_per_upload: 1 << 20,
            uploads_in_flight_max: 8,
            shard_buffer_bytes_max: 256 << 20,
            log_buffers_max: 10,
            ring_requests_max: 16_384,
            multipart_threshold_bytes: 16 << 20,
            multipart_part_bytes: 8 << 20,
            multipart_parallel_max: 4,
            upload_retries_max: 8,
            upload_deadline_ms: 30_000,
            metadata_deadline_ms: 30_000,
            upload_backoff_initial_ms: 10,
            upload_backoff_max_ms: 2_000,
            segment_bytes_max: 1 << 30,
            segment_age_max_ms: 600_000,
            key_prefix: "wal".to_string(),
            reader_prefetch_bytes_max: 64 << 20,
            fragment_cache_bytes: 0,
            retention_ms: 600_000,
            audit_interval_ms: 30_000,
            stall_detection: cfg!(debug_assertions),
            profile_stages: false,
        }
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), String> {
        let fail = |msg: String| Err(msg);
        if self.shards == 0 {
            return fail("shards must be at least 1".into());
        }
        if !FRAGMENT_BYTES.contains(&self.fragment_bytes_max) {
            return fail(format!(
                "fragment_bytes_max {} must be between 4 KiB and 4 GiB",
                self.fragment_bytes_max
            ));
        }
        if self.fragment_entries_max == 0 {
            return fail("fragment_entries_max must be at least 1".into());
        }
        if self.flush_interval_ms == 0 {
            return fail("flush_interval_ms must be at least 1".into());
        }
        if self.uploads_in_flight_max == 0 {
            return fail("uploads_in_flight_max must be at least 1".into());
        }
        if self.shard_buffer_bytes_max < 2 * self.fragment_bytes_max {
            return fail(format!(
                "shard_buffer_bytes_max {} must hold at least two fragments of {} bytes",
                self.shard_buffer_bytes_max, self.fragment_bytes_max
            ));
        }
        if self.log_buffers_max == 0 {
            return fail("log_buffers_max must be at least 1".into());
        }
        if self.ring_requests_max < 2 {
            return fail("ring_requests_max must be at least 2".into());
        }
        if self.multipart_part_bytes < woodpecker_engine::store::MULTIPART_PART_BYTES_MIN {
            return fail("multipart_part_bytes must be at least 5 MiB".into());
        }
        if self.multipart_parallel_max == 0 {
            return fail("multipart_parallel_max must be at least 1".into());
        }
        if self.upload_deadline_ms == 0 || self.metadata_deadline_ms == 0 {
            return fail("upload_deadline_ms and metadata_deadline_ms must be positive".into());
        }
        if self.upload_backoff_initial_ms > self.upload_backoff_max_ms {
            return fail("upload_backoff_initial_ms exceeds upload_backoff_max_ms".into());
        }
        if self.segment_bytes_max < self.fragment_bytes_max as u64 || self.segment_age_max_ms == 0 {
            return fail("segments must hold at least one fragment and live at least 1 ms".into());
        }
        if self.audit_interval_ms == 0 {
            return fail("audit_interval_ms must be at least 1".into());
        }
        woodpecker_engine::layout::Layout::new(&self.key_prefix)
            .map_err(|e| format!("key_prefix: {e}"))?;
        Ok(())
    }

    /// Fragment buffers in each shard's pool.
    pub fn buffers_per_shard(&self) -> usize {
        self.shard_buffer_bytes_max / self.fragment_bytes_max
    }

    /// Fragments a reader fetches ahead (at least one).
    pub fn reader_prefetch_fragments(&self) -> usize {
        (self.reader_prefetch_bytes_max / self.fragment_bytes_max).max(1)
    }

    /// Largest payload (with its properties) one entry can carry.
    pub fn entry_bytes_max(&self) -> usize {
        self.fragment_bytes_max - fragment_bytes_for(16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_mistakes_are_named() {
        Config::default().validate().unwrap();
        let bad = Config {
            shard_buffer_bytes_max: 1 << 20,
            ..Config::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .contains("shard_buffer_bytes_max"));
        let bad = Config {
            key_prefix: "a//b".into(),
            ..Config::default()
        };
        assert!(bad.validate().unwrap_err().contains("key_prefix"));
    }
}

//! What a run's processes share: where the servers are, the run's key and
//! metadata prefixes, and the engine configuration, chosen so that faults
//! bite (small fragments and segments, so segments roll every few
//! fragments; in the campaign, deadlines a few seconds long, so long
//! faults stop writers).

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use woodpecker_engine::meta::etcd::{EtcdConfig, EtcdMeta};
use woodpecker_engine::store::s3::S3Config;
use woodpecker_engine::store::{StoreConfig, StoreFactory};
use woodpecker_engine::Result;
use woodpecker_shards::{Client, Config};
use woodpecker_testkit::PrivateMinio;

/// Logs of every run, spread over the two shards of each process.
pub const LOGS: usize = 3;
pub const SHARDS: usize = 2;
/// Fragment buffer memory of one shard.
pub const SHARD_BUFFER_BYTES: usize = 1 << 20;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    pub etcd: String,
    /// The S3 endpoint: the fault proxy for writers and readers, MinIO
    /// itself for the checker.
    pub s3: String,
    /// The run's etcd prefix and object key prefix.
    pub prefix: String,
    /// How long the writer retries one fragment upload or metadata call
    /// before it stops.
    pub deadline_ms: u64,
    /// How long a child process lives at most, whatever happens to its
    /// parent.
    pub lifetime_secs: u64,
}

impl Settings {
    /// The settings of a campaign run.
    pub fn campaign(etcd: String, s3: String, prefix: String) -> Settings {
        Settings {
            etcd,
            s3,
            prefix,
            deadline_ms: 6_000,
            lifetime_secs: 180,
        }
    }

    pub fn lifetime(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lifetime_secs)
    }

    pub fn log_name(&self, log: usize) -> String {
        format!("log-{log}")
    }

    pub fn config(&self, checker: bool) -> Config {
        Config {
            shards: SHARDS,
            pin_cores: false,
            fragment_bytes_max: 16 << 10,
            shard_buffer_bytes_max: SHARD_BUFFER_BYTES,
            segment_bytes_max: 48 << 10,
            flush_interval_ms: 3,
            upload_deadline_ms: self.deadline_ms,
            metadata_deadline_ms: self.deadline_ms,
            upload_backoff_initial_ms: 5,
            upload_backoff_max_ms: 500,
            reader_prefetch_bytes_max: 1 << 20,
            key_prefix: self.prefix.clone(),
            // Writers delete truncated segments soon, under the readers;
            // the checker never does.
            retention_ms: if checker { 3_600_000 } else { 500 },
            audit_interval_ms: if checker { 3_600_000 } else { 300 },
            stall_detection: false,
            ..Config::default()
        }
    }

    pub fn client(&self, checker: bool) -> Result<Client> {
        let etcd = EtcdConfig {
            endpoints: vec![self.etcd.clone()],
            prefix: format!("/campaign/{}", self.prefix),
            request_timeout_ms: 2_000,
            connect_timeout_ms: 2_000,
            ..EtcdConfig::default()
        };
        let s3 = S3Config {
            endpoint: self.s3.clone(),
            bucket: PrivateMinio::BUCKET.to_string(),
            region: PrivateMinio::REGION.to_string(),
            access_key: PrivateMinio::ACCESS_KEY.to_string(),
            secret_key: PrivateMinio::SECRET_KEY.to_string(),
            request_timeout_ms: 2_000,
            connect_timeout_ms: 1_000,
            ..S3Config::default()
        };
        let meta = Arc::new(EtcdMeta::connect(&etcd)?);
        Client::start(
            self.config(checker),
            StoreFactory::new(StoreConfig::S3(s3))?,
            meta,
        )
    }
}

//! Configuration: which object store and metadata service to use, their
//! settings, and the `WOODPECKER_*` environment variables that point at
//! servers (the names `scripts/servers.sh` prints).
//!
//! The one configuration struct of the write path, with presets and the
//! endpoint probe, grows here.

use std::path::PathBuf;
use std::rc::Rc;
use woodpecker_engine::meta::etcd::EtcdConfig;
use woodpecker_engine::store::local::LocalStore;
use woodpecker_engine::store::memory::MemoryStore;
use woodpecker_engine::store::s3::{S3Config, S3Store};
use woodpecker_engine::store::{ObjectStore, StoreError};

pub use woodpecker_engine::meta::etcd::ENV_ETCD_ENDPOINTS;
pub use woodpecker_engine::store::s3::{
    ENV_S3_ACCESS_KEY, ENV_S3_BUCKET, ENV_S3_CA_CERT, ENV_S3_ENDPOINT, ENV_S3_REGION,
    ENV_S3_SECRET_KEY,
};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
}

/// Which object store, and its settings.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// Objects in this process's memory (shared by every shard).
    Memory,
    /// One file per object under a directory: the embedded default.
    Local {
        dir: PathBuf,
    },
    S3(S3Config),
}

impl StoreConfig {
    /// Parses `memory`, `local` or `s3`; `s3` reads the `WOODPECKER_S3_*`
    /// variables and `local` uses `local_dir`.
    pub fn from_kind(kind: &str, local_dir: PathBuf) -> Result<StoreConfig, ConfigError> {
        match kind {
            "memory" => Ok(StoreConfig::Memory),
            "local" => Ok(StoreConfig::Local { dir: local_dir }),
            "s3" => S3Config::from_env()
                .map(StoreConfig::S3)
                .map_err(|e| ConfigError::Invalid(format!("--store s3: {e}"))),
            other => Err(ConfigError::Invalid(format!(
                "unknown store {other:?}: expected memory, local or s3"
            ))),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            StoreConfig::Memory => "memory",
            StoreConfig::Local { .. } => "local",
            StoreConfig::S3(_) => "s3",
        }
    }
}

/// Opens stores on executor threads. `Send + Sync`: build it once, then call
/// [`StoreFactory::open`] on each shard (S3 connections and DMA files
/// belong to the thread that opened them; the memory store is shared).
#[derive(Clone)]
pub struct StoreFactory {
    config: StoreConfig,
    memory: MemoryStore,
}

impl StoreFactory {
    pub fn new(config: StoreConfig) -> StoreFactory {
        StoreFactory {
            config,
            memory: MemoryStore::new(),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub fn open(&self) -> Result<Rc<dyn ObjectStore>, StoreError> {
        Ok(match &self.config {
            StoreConfig::Memory => Rc::new(self.memory.clone()),
            StoreConfig::Local { dir } => Rc::new(LocalStore::open(dir.clone())?),
            StoreConfig::S3(config) => Rc::new(S3Store::new(config.clone())?),
        })
    }
}

/// etcd settings from `WOODPECKER_ETCD_ENDPOINTS`.
pub fn etcd_from_env() -> Result<EtcdConfig, ConfigError> {
    EtcdConfig::from_env().map_err(ConfigError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_kinds_parse_and_explain_mistakes() {
        let dir = PathBuf::from("/tmp/x");
        assert_eq!(
            StoreConfig::from_kind("memory", dir.clone())
                .unwrap()
                .kind(),
            "memory"
        );
        assert_eq!(
            StoreConfig::from_kind("local", dir.clone()).unwrap().kind(),
            "local"
        );
        let err = StoreConfig::from_kind("gcs", dir).unwrap_err().to_string();
        assert!(err.contains("memory, local or s3"), "{err}");
    }
}

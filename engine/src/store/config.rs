//! Choosing and opening a store on each shard.

use super::local::LocalStore;
use super::memory::MemoryStore;
use super::null::NullStore;
use super::s3::{S3Config, S3Store};
use super::{ObjectStore, StoreError};
use futures_rustls::rustls;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

/// Which object store, and its settings.
#[derive(Clone, Debug)]
pub enum StoreConfig {
    /// Objects in this process's memory (shared by every shard).
    Memory,
    /// Keys and sizes only, bytes discarded: the engine's own ceiling.
    Null,
    /// One file per object under a directory: the embedded default.
    Local {
        dir: PathBuf,
    },
    S3(S3Config),
}

impl StoreConfig {
    /// Parses `memory`, `null`, `local` or `s3`; `s3` reads the `WOODPECKER_S3_*`
    /// variables and `local` uses `local_dir`.
    pub fn from_kind(kind: &str, local_dir: PathBuf) -> Result<StoreConfig, StoreError> {
        match kind {
            "memory" => Ok(StoreConfig::Memory),
            "null" => Ok(StoreConfig::Null),
            "local" => Ok(StoreConfig::Local { dir: local_dir }),
            "s3" => S3Config::from_env()
                .map(StoreConfig::S3)
                .map_err(|e| StoreError::Invalid(format!("--store s3: {e}"))),
            other => Err(StoreError::Invalid(format!(
                "unknown store {other:?}: expected memory, null, local or s3"
            ))),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            StoreConfig::Memory => "memory",
            StoreConfig::Null => "null",
            StoreConfig::Local { .. } => "local",
            StoreConfig::S3(_) => "s3",
        }
    }
}

/// Makes a store on the calling executor thread (for custom and
/// fault-injecting stores).
pub type OpenStore = dyn Fn() -> Result<Rc<dyn ObjectStore>, StoreError> + Send + Sync;

/// Opens stores on executor threads. `Send + Sync`: build it once, then call
/// [`StoreFactory::open`] on each shard (S3 connections and DMA files
/// belong to the thread that opened them; the memory store is shared).
#[derive(Clone)]
pub struct StoreFactory {
    config: StoreConfig,
    memory: MemoryStore,
    null: NullStore,
    /// The local store, its directories made on the caller's thread.
    local: Option<LocalStore>,
    /// TLS settings of an HTTPS S3 endpoint, its CA file read already.
    s3_tls: Option<Arc<rustls::ClientConfig>>,
    custom: Option<Arc<OpenStore>>,
}

impl StoreFactory {
    /// Does the blocking preparation here, on the caller's thread (a local
    /// store's directories, an S3 CA file), so no shard blocks on it.
    pub fn new(config: StoreConfig) -> Result<StoreFactory, StoreError> {
        let local = match &config {
            StoreConfig::Local { dir } => Some(LocalStore::open(dir.clone())?),
            _ => None,
        };
        let s3_tls = match &config {
            StoreConfig::S3(s3) => S3Store::tls(s3)?,
            _ => None,
        };
        Ok(StoreFactory {
            config,
            memory: MemoryStore::new(),
            null: NullStore::new(),
            local,
            s3_tls,
            custom: None,
        })
    }

    /// A factory that calls `open` on each shard; `kind` names it in reports.
    pub fn custom(
        open: impl Fn() -> Result<Rc<dyn ObjectStore>, StoreError> + Send + Sync + 'static,
    ) -> StoreFactory {
        StoreFactory {
            config: StoreConfig::Memory,
            memory: MemoryStore::new(),
            null: NullStore::new(),
            local: None,
            s3_tls: None,
            custom: Some(Arc::new(open)),
        }
    }

    /// A factory whose memory store is `memory` (to share it with a test).
    pub fn with_memory(memory: MemoryStore) -> StoreFactory {
        StoreFactory {
            config: StoreConfig::Memory,
            memory,
            null: NullStore::new(),
            local: None,
            s3_tls: None,
            custom: None,
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    pub fn open(&self) -> Result<Rc<dyn ObjectStore>, StoreError> {
        if let Some(open) = &self.custom {
            return open();
        }
        Ok(match &self.config {
            StoreConfig::Memory => Rc::new(self.memory.clone()),
            StoreConfig::Null => Rc::new(self.null.clone()),
            StoreConfig::Local { .. } => Rc::new(self.local.clone().expect("opened by new")),
            StoreConfig::S3(config) => {
                Rc::new(S3Store::with_tls(config.clone(), self.s3_tls.clone())?)
            }
        })
    }
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
        assert!(err.contains("memory, null, local or s3"), "{err}");
    }
}

//! Everything one `woodpecker` process is configured with, as one serde
//! struct: the engine, the object store, the metadata service and the HTTP
//! service. Its serialized field paths (`engine.flush_interval_ms`,
//! `store.s3.endpoint`, ...) are the configuration file's own keys.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use woodpecker_engine::meta::etcd::EtcdConfig;
use woodpecker_engine::store::s3::S3Config;
use woodpecker_engine::store::StoreConfig;
use woodpecker_shards::Config;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The embedded engine (`woodpecker_shards::Config`).
    pub engine: Config,
    pub store: StoreSettings,
    pub meta: MetaSettings,
    pub serve: ServeSettings,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One file per object under `local_dir`: the embedded default.
    #[default]
    Local,
    S3,
    /// This process's memory, lost on exit: for trials.
    Memory,
    /// Keys and sizes only, bytes discarded: the engine's own ceiling.
    Null,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    pub kind: StoreKind,
    /// Directory of the local store.
    pub local_dir: PathBuf,
    /// Used when `kind` is `s3`.
    pub s3: S3Config,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            kind: StoreKind::Local,
            local_dir: PathBuf::from("woodpecker-data"),
            s3: S3Config::default(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MetaKind {
    #[default]
    Etcd,
    /// This process's memory, lost on exit: for trials.
    Memory,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetaSettings {
    pub kind: MetaKind,
    /// Used when `kind` is `etcd`.
    pub etcd: EtcdConfig,
}

/// `woodpecker serve`'s listener and request limits.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    /// `HOST:PORT` to listen on.
    pub listen: String,
    /// Bytes of one request body at most.
    pub body_bytes_max: u64,
    /// Entries of one append at most.
    pub batch_entries_max: u64,
    /// Payload bytes of one read response at most.
    pub read_bytes_max: u64,
    /// Entries of one read response at most.
    pub read_entries_max: u64,
    /// Open connections at most.
    pub connections_max: u64,
    /// The receive buffer (`SO_RCVBUF`) of every accepted connection; 0
    /// leaves the kernel's default and its autotuning.
    pub receive_buffer_bytes: u64,
    /// A request head must arrive within this; also the idle keep-alive.
    pub header_timeout_ms: u64,
    /// Longest a read waits for its first entry when asked to wait.
    pub read_wait_max_ms: u64,
    /// How long a graceful shutdown waits for requests in flight.
    pub shutdown_deadline_ms: u64,
    /// Bearer tokens that may do everything (none, and no read-only
    /// token: the API is open).
    pub tokens: Vec<String>,
    /// Bearer tokens that may only read.
    pub read_only_tokens: Vec<String>,
    /// PEM certificate chain: serve HTTPS (with `tls_key_path`).
    pub tls_cert_path: String,
    /// PEM private key of the certificate.
    pub tls_key_path: String,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            listen: "127.0.0.1:9600".to_string(),
            body_bytes_max: 64 << 20,
            batch_entries_max: 65_536,
            read_bytes_max: 16 << 20,
            read_entries_max: 65_536,
            connections_max: 4096,
            receive_buffer_bytes: 4 << 20,
            header_timeout_ms: 30_000,
            read_wait_max_ms: 30_000,
            shutdown_deadline_ms: 30_000,
            tokens: Vec::new(),
            read_only_tokens: Vec::new(),
            tls_cert_path: String::new(),
            tls_key_path: String::new(),
        }
    }
}

impl Settings {
    /// Checks every part that this process will use: the engine always, the
    /// S3 client when the store is S3, etcd when the metadata is etcd.
    pub fn validate(&self) -> Result<(), String> {
        self.engine.validate().map_err(|e| format!("engine: {e}"))?;
        self.store_config(None)?;
        if self.meta.kind == MetaKind::Etcd {
            self.meta
                .etcd
                .validate()
                .map_err(|e| format!("meta.etcd: {e}"))?;
        }
        self.serve
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| format!("serve.listen {:?}: {e}", self.serve.listen))?;
        if self.serve.tls_cert_path.is_empty() != self.serve.tls_key_path.is_empty() {
            return Err(
                "serve.tls_cert_path and serve.tls_key_path go together: set both or neither"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// The object store these settings name; `local_dir` replaces the
    /// configured directory of a local store (a benchmark's temporary one).
    pub fn store_config(&self, local_dir: Option<PathBuf>) -> Result<StoreConfig, String> {
        Ok(match self.store.kind {
            StoreKind::Local => StoreConfig::Local {
                dir: local_dir.unwrap_or_else(|| self.store.local_dir.clone()),
            },
            StoreKind::Memory => StoreConfig::Memory,
            StoreKind::Null => StoreConfig::Null,
            StoreKind::S3 => {
                let s3 = &self.store.s3;
                let required = [
                    ("endpoint", &s3.endpoint, "WOODPECKER_S3_ENDPOINT"),
                    ("bucket", &s3.bucket, "WOODPECKER_S3_BUCKET"),
                    ("access_key", &s3.access_key, "WOODPECKER_S3_ACCESS_KEY"),
                    ("secret_key", &s3.secret_key, "WOODPECKER_S3_SECRET_KEY"),
                ];
                for (key, value, env) in required {
                    if value.is_empty() {
                        return Err(format!(
                            "store.s3.{key} is not set (in the configuration file, or {env})"
                        ));
                    }
                }
                s3.validate().map_err(|e| format!("store.s3: {e}"))?;
                StoreConfig::S3(s3.clone())
            }
        })
    }
}

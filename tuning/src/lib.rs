//! Configuration: one YAML file (this project's keys and Woodpecker's own
//! `woodpecker.yaml` keys), `WOODPECKER_*` environment variables and
//! command-line flags, layered in that order over documented defaults into
//! one [`Settings`]; docs/CONFIG.md is the prose twin of this crate.

pub mod file;
pub mod keys;
pub mod layers;
pub mod settings;
pub mod units;
pub mod woodpecker;

use woodpecker_engine::meta::etcd::EtcdConfig;

pub use layers::{load, load_with, Flag, Loaded, Origin, ENV_CONFIG};
pub use settings::{MetaKind, MetaSettings, ServeSettings, Settings, StoreKind, StoreSettings};
pub use woodpecker_engine::meta::etcd::ENV_ETCD_ENDPOINTS;
pub use woodpecker_engine::store::s3::{
    ENV_S3_ACCESS_KEY, ENV_S3_BUCKET, ENV_S3_CA_CERT, ENV_S3_ENDPOINT, ENV_S3_REGION,
    ENV_S3_SECRET_KEY,
};
pub use woodpecker_engine::store::{StoreConfig, StoreFactory};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Invalid(String),
    /// Every problem found in a file or the environment, a line each.
    #[error("{}", .0.join("\n"))]
    File(Vec<String>),
}

/// etcd settings from `WOODPECKER_ETCD_ENDPOINTS`.
pub fn etcd_from_env() -> Result<EtcdConfig, ConfigError> {
    EtcdConfig::from_env().map_err(ConfigError::Invalid)
}

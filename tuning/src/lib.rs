//! Configuration: which object store and metadata service to use, their
//! settings, and the `WOODPECKER_*` environment variables that point at
//! servers (the names `scripts/servers.sh` prints).

use woodpecker_engine::meta::etcd::EtcdConfig;

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
}

/// etcd settings from `WOODPECKER_ETCD_ENDPOINTS`.
pub fn etcd_from_env() -> Result<EtcdConfig, ConfigError> {
    EtcdConfig::from_env().map_err(ConfigError::Invalid)
}

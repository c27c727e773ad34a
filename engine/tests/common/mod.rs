//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use std::future::Future;
use woodpecker_engine::meta::etcd::{EtcdConfig, EtcdMeta};
use woodpecker_engine::store::s3::S3Config;

const SERVERS_HINT: &str = "start the test servers with `scripts/servers.sh start` and source \
     the environment it prints (scripts/test.sh does both)";

/// Runs `make()` on a fresh glommio executor on this thread.
pub fn run_local<F, Fut, T>(make: F) -> T
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("glommio executor")
        .run(make())
}

/// The real MinIO the test script started; fails loudly if there is none.
pub fn s3_config() -> S3Config {
    S3Config::from_env()
        .unwrap_or_else(|e| panic!("no S3 server for this test ({e}): {SERVERS_HINT}"))
}

/// The MinIO serving HTTPS with a test CA.
pub fn s3_tls_config() -> S3Config {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: {SERVERS_HINT}"))
    };
    S3Config {
        endpoint: var("WOODPECKER_TEST_S3_TLS_ENDPOINT"),
        ca_cert_path: Some(var("WOODPECKER_TEST_S3_TLS_CA_CERT").into()),
        ..s3_config()
    }
}

/// The real etcd, under a prefix no other test uses.
pub fn etcd_meta() -> EtcdMeta {
    EtcdMeta::connect(&etcd_config()).expect("connecting to etcd")
}

/// Settings for the real etcd, under a fresh prefix.
pub fn etcd_config() -> EtcdConfig {
    let mut config = EtcdConfig::from_env()
        .unwrap_or_else(|e| panic!("no etcd server for this test ({e}): {SERVERS_HINT}"));
    config.prefix = format!("/woodpecker-test/{}", unique());
    config
}

/// A fresh name for keys and prefixes, unique across test runs.
pub fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{nanos:x}{:08x}", fastrand::u32(..))
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

#[allow(unused_imports)]
pub use woodpecker_testkit::PrivateEtcd;

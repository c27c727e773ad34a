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

/// An etcd server of one test's own (the `etcd` binary that
/// scripts/install-deps.sh installs), on free 127.0.0.1 ports, that the
/// test may kill, restart and pause without disturbing other tests.
pub struct PrivateEtcd {
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<std::process::Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl PrivateEtcd {
    pub fn start() -> PrivateEtcd {
        let mut etcd = PrivateEtcd {
            dir: tempfile::tempdir().expect("temp dir"),
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        };
        etcd.restart();
        etcd
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    /// Kills the server with SIGKILL (its data stays).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same ports and data, and waits
    /// until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = std::process::Command::new("etcd")
            .args(["--name", "private", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .arg(format!("--initial-cluster=private={peer}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting etcd ({e}): {SERVERS_HINT}"));
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.client_port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "etcd did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for PrivateEtcd {
    fn drop(&mut self) {
        self.kill();
    }
}

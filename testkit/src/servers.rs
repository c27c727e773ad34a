//! etcd and MinIO servers of the caller's own: the binaries that
//! scripts/install-deps.sh installs, on free 127.0.0.1 ports with data in a
//! temporary directory, to kill (SIGKILL; the data stays), restart on the
//! same ports and data, and pause (SIGSTOP) and resume.

use crate::free_port;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "run scripts/install-deps.sh (scripts/test.sh does)";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One server process: how to start it, and the running child.
struct Daemon {
    name: &'static str,
    command: Box<dyn Fn() -> Command + Send>,
    log: PathBuf,
    port: u16,
    /// A GET on this path answers 200 once the server is ready.
    health: &'static str,
    child: Option<Child>,
    paused: bool,
}

impl Daemon {
    /// A server not started yet, logging to `log`, ready when a GET of
    /// `health` on `port` answers 200.
    fn new(
        name: &'static str,
        command: impl Fn() -> Command + Send + 'static,
        log: PathBuf,
        port: u16,
        health: &'static str,
    ) -> Daemon {
        Daemon {
            name,
            command: Box::new(command),
            log,
            port,
            health,
            child: None,
            paused: false,
        }
    }

    fn start(&mut self) {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log file");
        let child = (self.command)()
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} ({e}): {INSTALL_HINT}", self.name));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while http_status(self.port, "GET", self.health) != Some(200) {
            if Instant::now() > deadline {
                let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail = &tail[tail.len().saturating_sub(2000)..];
                panic!(
                    "{} did not start on port {}; its log ends:\n{tail}",
                    self.name, self.port
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    fn signal(&mut self, signal: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on the pid of a child this value owns and has
            // not reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        }
    }

    fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.paused = true;
    }

    fn resume(&mut self) {
        self.signal(libc::SIGCONT);
        self.paused = false;
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The status of a bodyless HTTP/1.1 request to 127.0.0.1:`port`.
fn http_status(port: u16, method: &str, path: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

macro_rules! daemon_controls {
    ($server:ty) => {
        impl $server {
            /// Kills the server with SIGKILL (its data stays).
            pub fn kill(&mut self) {
                self.daemon.kill();
            }
            /// Starts it (again) on the same port and data, and waits until
            /// it is ready.
            pub fn restart(&mut self) {
                self.daemon.start();
            }
            /// Stops it with SIGSTOP: connections stay open, nothing answers.
            pub fn pause(&mut self) {
                self.daemon.pause();
            }
            pub fn resume(&mut self) {
                self.daemon.resume();
            }
            pub fn is_running(&self) -> bool {
                self.daemon.child.is_some()
            }
            pub fn is_paused(&self) -> bool {
                self.daemon.paused
            }
            pub fn port(&self) -> u16 {
                self.daemon.port
            }
        }
    };
}

/// A single-member etcd cluster.
pub struct PrivateEtcd {
    _dir: tempfile::TempDir,
    daemon: Daemon,
}

daemon_controls!(PrivateEtcd);

impl PrivateEtcd {
    pub fn start() -> PrivateEtcd {
        let dir = tempfile::tempdir().expect("temp dir");
        let (client_port, peer_port) = (free_port(), free_port());
        let data = dir.path().join("data");
        let command = move || {
            let client = format!("http://127.0.0.1:{client_port}");
            let peer = format!("http://127.0.0.1:{peer_port}");
            let mut command = Command::new("etcd");
            command
                .args(["--name", "private", "--data-dir"])
                .arg(&data)
                .args(["--listen-client-urls", &client])
                .args(["--advertise-client-urls", &client])
                .args(["--listen-peer-urls", &peer])
                .args(["--initial-advertise-peer-urls", &peer])
                .arg(format!("--initial-cluster=private={peer}"));
            command
        };
        let mut etcd = PrivateEtcd {
            daemon: Daemon::new(
                "etcd",
                command,
                dir.path().join("etcd.log"),
                client_port,
                "/health",
            ),
            _dir: dir,
        };
        etcd.restart();
        etcd
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.daemon.port)
    }
}

/// A single-drive MinIO with one bucket.
pub struct PrivateMinio {
    _dir: tempfile::TempDir,
    daemon: Daemon,
}

daemon_controls!(PrivateMinio);

impl PrivateMinio {
    pub const ACCESS_KEY: &'static str = "campaign";
    pub const SECRET_KEY: &'static str = "campaign-secret-key";
    pub const BUCKET: &'static str = "campaign";
    pub const REGION: &'static str = "us-east-1";

    pub fn start() -> PrivateMinio {
        let dir = tempfile::tempdir().expect("temp dir");
        let (port, console) = (free_port(), free_port());
        let binary = minio_binary();
        let data = dir.path().join("data");
        let command = move || {
            let mut command = Command::new(&binary);
            command
                .env("MINIO_ROOT_USER", Self::ACCESS_KEY)
                .env("MINIO_ROOT_PASSWORD", Self::SECRET_KEY)
                .env("MINIO_BROWSER", "off")
                .env("MINIO_UPDATE", "off")
                .env("MINIO_REGION", Self::REGION)
                .args(["server", "--quiet", "--address"])
                .arg(format!("127.0.0.1:{port}"))
                .arg("--console-address")
                .arg(format!("127.0.0.1:{console}"))
                .arg(&data);
            command
        };
        let mut minio = PrivateMinio {
            daemon: Daemon::new(
                "minio",
                command,
                dir.path().join("minio.log"),
                port,
                "/minio/health/live",
            ),
            _dir: dir,
        };
        minio.restart();
        minio.make_bucket();
        minio
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.daemon.port)
    }

    fn make_bucket(&self) {
        let endpoint = url::Url::parse(&self.endpoint()).expect("endpoint URL");
        let bucket = rusty_s3::Bucket::new(
            endpoint,
            rusty_s3::UrlStyle::Path,
            Self::BUCKET.to_string(),
            Self::REGION.to_string(),
        )
        .expect("bucket");
        let credentials = rusty_s3::Credentials::new(Self::ACCESS_KEY, Self::SECRET_KEY);
        let url = rusty_s3::S3Action::sign(
            &bucket.create_bucket(&credentials),
            Duration::from_secs(300),
        );
        let path = &url.as_str()[url.origin().ascii_serialization().len()..];
        // Live is not ready: early requests may get 503.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let status = http_status(self.daemon.port, "PUT", path);
            if status == Some(200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "creating the bucket: status {status:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// MinIO's binary: `$MINIO`, else `minio` on the PATH, else the one `go
/// install` put in `$HOME/go/bin`.
fn minio_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("MINIO") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("minio"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        Path::new(&std::env::var("HOME").unwrap_or_default()).join("go/bin/minio")
    })
}

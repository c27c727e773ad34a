//! A real `woodpecker serve` process on the real etcd and MinIO, and
//! the HTTP helpers the service tests share.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use woodpecker_net::framing::{self, FramedEntry, Limits, MEDIA_TYPE};

pub const LIMITS: Limits = Limits {
    entries_max: 1 << 20,
    entry_bytes_max: 1 << 24,
};

pub struct Served {
    pub child: Child,
    pub base: String,
}

impl Served {
    /// Starts a server on a free port, on MinIO and etcd.
    pub fn start(extra: &[&str]) -> Served {
        Served::start_with(extra, &[], Stdio::inherit(), "http")
    }

    /// [`Served::start`] with extra environment, its stderr (the log) sent
    /// to `stderr`, and the URL scheme of its address.
    pub fn start_with(extra: &[&str], env: &[(&str, &str)], stderr: Stdio, scheme: &str) -> Served {
        Served::start_at("127.0.0.1:0", extra, env, stderr, scheme)
    }

    /// [`Served::start_with`] listening on `listen`.
    pub fn start_at(
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
        stderr: Stdio,
        scheme: &str,
    ) -> Served {
        let mut child = serve_command(listen)
            .args(extra)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("starting woodpecker serve");
        let addr = listening_addr(&mut child);
        Served {
            child,
            base: format!("{scheme}://{addr}"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGTERM, then the exit status within `limit`.
    pub fn terminate(mut self, limit: Duration) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "serve did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `woodpecker serve` on `listen`, on MinIO and etcd, without the
/// caller's `RUST_LOG`.
pub fn serve_command(listen: &str) -> Command {
    assert!(
        std::env::var("WOODPECKER_S3_ENDPOINT").is_ok(),
        "WOODPECKER_S3_ENDPOINT is not set: start the servers with scripts/servers.sh start"
    );
    let mut command = Command::new(env!("CARGO_BIN_EXE_woodpecker"));
    command
        .args([
            "serve", "--listen", listen, "--store", "s3", "--meta", "etcd",
        ])
        .env_remove("RUST_LOG");
    command
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// Status and body of a request, whatever the status.
pub fn call(request: ureq::Request, body: Option<(&str, &[u8])>) -> (u16, Vec<u8>) {
    let result = match body {
        Some((content_type, bytes)) => request.set("content-type", content_type).send_bytes(bytes),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(err) => panic!("request failed: {err}"),
    };
    let status = response.status();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes).unwrap();
    (status, bytes)
}

/// Reads `stream` until the server closes it (a reset counts as closed)
/// and returns what it sent before; panics if it is still open at the
/// stream's read timeout.
pub fn read_until_closed(stream: &mut std::net::TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    match std::io::Read::read_to_end(stream, &mut all) {
        Ok(_) => all,
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => all,
        Err(err) => panic!("the connection stayed open: {err}"),
    }
}

/// A metric's value from a server's `/metrics` (0 if absent).
pub fn metric(served: &Served, line_start: &str) -> f64 {
    let (_, body) = call(agent().get(&served.url("/metrics")), None);
    String::from_utf8(body)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

pub fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{nanos}", std::process::id())
}

pub fn create(agent: &ureq::Agent, served: &Served, name: &str) {
    let body = format!(r#"{{"name":"{name}"}}"#);
    let (status, answer) = call(
        agent.post(&served.url("/v1/logs")),
        Some(("application/json", body.as_bytes())),
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
}

pub fn entry(i: u64) -> FramedEntry {
    FramedEntry {
        offset: None,
        payload: bytes::Bytes::from(vec![(i % 251) as u8; 100 + (i as usize * 37) % 3000]),
        properties: vec![(
            bytes::Bytes::from(format!("k{}", i % 3)),
            bytes::Bytes::from(vec![0xff, (i % 256) as u8]),
        )],
    }
}

/// Appends a framed batch; its first offset.
pub fn append(agent: &ureq::Agent, served: &Served, name: &str, entries: &[FramedEntry]) -> u64 {
    let body = framing::encode(entries);
    let (status, answer) = call(
        agent.post(&served.url(&format!("/v1/logs/{name}/entries"))),
        Some((MEDIA_TYPE, &body)),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let answer = json(&answer);
    assert_eq!(answer["count"], entries.len() as u64);
    answer["first_offset"].as_u64().unwrap()
}

/// Every entry of the log, read in bounded pages.
pub fn read_all(agent: &ureq::Agent, served: &Served, name: &str) -> Vec<FramedEntry> {
    let mut all = Vec::new();
    let mut from = 0u64;
    loop {
        let url = served.url(&format!(
            "/v1/logs/{name}/entries?from={from}&max_bytes=100000"
        ));
        let (status, body) = call(agent.get(&url), None);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let page = framing::decode(body.into(), true, LIMITS).unwrap();
        if page.is_empty() {
            return all;
        }
        from = page.last().unwrap().offset.unwrap() + 1;
        all.extend(page);
    }
}

pub fn assert_holds(read: &[FramedEntry], expected: &[FramedEntry]) {
    assert_eq!(read.len(), expected.len());
    for (i, (got, want)) in read.iter().zip(expected).enumerate() {
        assert_eq!(got.offset, Some(i as u64));
        assert_eq!(
            (&got.payload, &got.properties),
            (&want.payload, &want.properties),
            "entry {i}"
        );
    }
}

/// The address a `woodpecker serve` child prints on its first line
/// (its stdout piped).
pub fn listening_addr(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string()
}

//! The run's child processes: spawned from this same binary, their stdout
//! lines collected by a thread each, their stderr kept in a file (checked
//! for panics), their RSS sampled.

use crate::settings::Settings;
use crate::worker::Load;
use std::io::BufRead;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct Proc {
    pub role: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    collector: Option<std::thread::JoinHandle<()>>,
    stderr: PathBuf,
    pub rss_max: Arc<AtomicU64>,
    killed: bool,
}

impl Proc {
    pub fn spawn(role: &str, args: &[String], stderr: PathBuf) -> Proc {
        let err = std::fs::File::create(&stderr).expect("stderr file");
        let mut child = Command::new(std::env::current_exe().expect("own binary"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("spawning a campaign child");
        let stdout = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let collector = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines lock").push(line);
            }
        });
        Proc {
            role: role.to_string(),
            child,
            lines,
            collector: Some(collector),
            stderr,
            rss_max: Arc::new(AtomicU64::new(0)),
            killed: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines printed so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lines lock").clone()
    }

    /// Resident memory now, in bytes (0 once the process is gone).
    pub fn sample_rss(&self) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()));
        let kib = status
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse::<u64>().ok())
            })
            .unwrap_or(0);
        self.rss_max.fetch_max(kib * 1024, Ordering::Relaxed);
    }

    /// SIGKILLs the process and collects everything it printed. Returns
    /// the problems found: it had exited on its own, or panicked.
    pub fn kill(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Ok(Some(status)) = self.child.try_wait() {
            problems.push(format!("{} exited on its own: {status}", self.role));
        }
        let _ = self.child.kill();
        let status = self.child.wait();
        self.killed = true;
        if let Some(collector) = self.collector.take() {
            let _ = collector.join();
        }
        if let Ok(status) = status {
            if status.signal().is_none_or(|s| s != libc::SIGKILL) && problems.is_empty() {
                problems.push(format!("{} exited on its own: {status}", self.role));
            }
        }
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        if let Some(at) = stderr.find("panicked at") {
            let end = (at + 600).min(stderr.len());
            let end = (at..=end)
                .rev()
                .find(|&i| stderr.is_char_boundary(i))
                .unwrap_or(at);
            problems.push(format!("{} panicked: {}", self.role, &stderr[at..end]));
        }
        problems
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.killed {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A writer process of every log, with origin id `id`.
pub fn writer(settings: &Settings, id: u64, load: Load, dir: &Path) -> Proc {
    let args = [
        "writer".to_string(),
        "--settings".to_string(),
        serde_json::to_string(settings).expect("settings"),
        "--id".to_string(),
        id.to_string(),
        "--window".to_string(),
        load.window.to_string(),
        "--rate".to_string(),
        load.rate.to_string(),
    ];
    Proc::spawn(
        &format!("writer {id}"),
        &args,
        dir.join(format!("writer-{id}.err")),
    )
}

/// A reader process tailing every log.
pub fn reader(settings: &Settings, dir: &Path) -> Proc {
    let args = [
        "reader".to_string(),
        "--settings".to_string(),
        serde_json::to_string(settings).expect("settings"),
    ];
    Proc::spawn("reader", &args, dir.join("reader.err"))
}

//! One run: fresh logs under a fresh prefix, a writer process and a reader
//! process, the seed's faults one after another, then the checker.

use crate::check::{check, reader_reached, recover, within, Checked, History};
use crate::children::{self, Proc};
use crate::schedule::{schedule, Event, Fault};
use crate::settings::{Settings, LOGS, SHARDS, SHARD_BUFFER_BYTES};
use crate::worker::Load;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use woodpecker_testkit::{FaultProxy, PrivateEtcd, PrivateMinio, ProxyMode};

/// Eight appends in flight per log, unpaced.
const LOAD: Load = Load { window: 8, rate: 0 };
/// Memory a process may use past its configured buffers.
pub const RSS_SLACK_BYTES: u64 = 64 << 20;
/// After the last fault: writers go on this long with everything healed.
const SETTLE: Duration = Duration::from_millis(1_000);
/// Once the logs are recovered, the reader must reach their ends within
/// this: no reader waits forever.
const CATCH_UP: Duration = Duration::from_secs(15);

/// The servers every run of a campaign uses; runs leave them healed.
pub struct Cluster {
    pub etcd: PrivateEtcd,
    pub minio: PrivateMinio,
    /// In front of MinIO for writers and readers (not the checker).
    pub proxy: FaultProxy,
}

impl Cluster {
    pub fn start(seed: u64) -> Cluster {
        let etcd = PrivateEtcd::start();
        let minio = PrivateMinio::start();
        let target = format!("127.0.0.1:{}", minio.port())
            .parse()
            .expect("address");
        let proxy = FaultProxy::start(target, seed);
        Cluster { etcd, minio, proxy }
    }

    /// Every server up and answering, the proxy passing traffic.
    pub fn heal(&mut self) {
        self.proxy.set(ProxyMode::Pass);
        if self.etcd.is_paused() {
            self.etcd.resume();
        }
        if !self.etcd.is_running() {
            self.etcd.restart();
        }
        if self.minio.is_paused() {
            self.minio.resume();
        }
        if !self.minio.is_running() {
            self.minio.restart();
        }
    }
}

#[derive(Debug, Default)]
pub struct RunReport {
    pub seed: u64,
    pub faults: BTreeMap<Fault, usize>,
    pub checked: Checked,
    pub unknown: usize,
    pub violations: Vec<String>,
    pub rss_max_bytes: u64,
}

struct Run<'c> {
    cluster: &'c mut Cluster,
    proxied: Settings,
    checker: woodpecker_shards::Client,
    dir: tempfile::TempDir,
    next_writer: u64,
    writer: Option<Proc>,
    reader: Option<Proc>,
    done: Vec<Proc>,
    history: History,
    problems: Vec<String>,
}

impl Run<'_> {
    fn spawn_writer(&mut self) -> Proc {
        self.next_writer += 1;
        children::writer(&self.proxied, self.next_writer, LOAD, self.dir.path())
    }

    fn live(&self) -> impl Iterator<Item = &Proc> {
        self.writer.iter().chain(self.reader.iter())
    }

    /// Waits until `until`, sampling the processes' memory.
    fn wait_until(&self, until: Instant, duelist: Option<&Proc>) {
        loop {
            for proc in self.live().chain(duelist) {
                proc.sample_rss();
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(100)));
        }
    }

    fn retire(&mut self, mut proc: Proc) {
        self.problems.extend(proc.kill());
        if proc.role.starts_with("writer") {
            self.history.add_writer(&proc.lines());
        } else {
            self.history.readers.push(proc.lines());
        }
        self.done.push(proc);
    }

    fn apply(&mut self, event: &Event) {
        let until = Instant::now() + event.lasts;
        let proxy_mode = match event.fault {
            Fault::ProxyLatency => Some(ProxyMode::Latency(Duration::from_millis(
                20 + event.knob as u64 % 60,
            ))),
            Fault::ProxyReset => Some(ProxyMode::ResetRequests(50 + event.knob % 300)),
            Fault::ProxySwallow => Some(ProxyMode::SwallowReplies(100 + event.knob % 500)),
            Fault::ProxyPartition => Some(ProxyMode::Partition),
            _ => None,
        };
        if let Some(mode) = proxy_mode {
            self.cluster.proxy.set(mode);
            self.wait_until(until, None);
            self.cluster.proxy.set(ProxyMode::Pass);
            return;
        }
        match event.fault {
            Fault::KillWriter => {
                if let Some(writer) = self.writer.take() {
                    self.retire(writer);
                }
                self.wait_until(until, None);
                self.writer = Some(self.spawn_writer());
            }
            Fault::DuelingWriter => {
                let duelist = self.spawn_writer();
                self.wait_until(until, Some(&duelist));
                self.retire(duelist);
            }
            Fault::EtcdRestart => {
                self.cluster.etcd.kill();
                self.wait_until(until, None);
                self.cluster.etcd.restart();
            }
            Fault::EtcdPause => {
                self.cluster.etcd.pause();
                self.wait_until(until, None);
                self.cluster.etcd.resume();
            }
            Fault::MinioRestart => {
                self.cluster.minio.kill();
                self.wait_until(until, None);
                self.cluster.minio.restart();
            }
            Fault::MinioPause => {
                self.cluster.minio.pause();
                self.wait_until(until, None);
                self.cluster.minio.resume();
            }
            Fault::Truncate => self.truncate(event.log),
            _ => unreachable!("proxy faults are handled above"),
        }
    }

    /// Truncates `log` at half of what was acknowledged so far.
    fn truncate(&mut self, log: usize) {
        let mut history = History::default();
        for proc in self.writer.iter().chain(self.done.iter()) {
            if proc.role.starts_with("writer") {
                history.add_writer(&proc.lines());
            }
        }
        let offsets = history.acked_offsets(log);
        let Some(&last) = offsets.last() else { return };
        let name = self.proxied.log_name(log);
        match within(10, self.checker.truncate(&name, last / 2)) {
            Some(Ok(())) => {}
            Some(Err(err)) => self.problems.push(format!("truncating {name}: {err}")),
            None => self.problems.push(format!("truncating {name} hung")),
        }
    }
}

/// Runs the seed's schedule over `window` and checks the outcome.
pub fn run_once(cluster: &mut Cluster, seed: u64, window: Duration) -> RunReport {
    cluster.heal();
    let direct = Settings::campaign(
        cluster.etcd.endpoint(),
        cluster.minio.endpoint(),
        format!("s{seed:016x}-{:x}", fastrand::u32(..)),
    );
    let proxied = Settings {
        s3: format!("http://{}", cluster.proxy.addr()),
        ..direct.clone()
    };
    let mut report = RunReport {
        seed,
        ..RunReport::default()
    };
    let checker = match direct.client(true) {
        Ok(client) => client,
        Err(err) => {
            report.violations.push(format!("checker client: {err}"));
            return report;
        }
    };
    for log in 0..LOGS {
        let name = direct.log_name(log);
        match within(30, checker.create_log(&name)) {
            Some(Ok(_)) => {}
            other => {
                report
                    .violations
                    .push(format!("creating {name}: {other:?}"));
                return report;
            }
        }
    }
    let mut run = Run {
        cluster,
        proxied,
        checker,
        dir: tempfile::tempdir().expect("temp dir"),
        next_writer: 0,
        writer: None,
        reader: None,
        done: Vec::new(),
        history: History::default(),
        problems: Vec::new(),
    };
    run.writer = Some(run.spawn_writer());
    run.reader = Some(children::reader(&run.proxied, run.dir.path()));
    let started = Instant::now();
    for event in schedule(seed, window, LOGS) {
        run.wait_until(started + event.at, None);
        *report.faults.entry(event.fault).or_default() += 1;
        run.apply(&event);
    }
    run.cluster.heal();
    run.wait_until(Instant::now() + SETTLE, None);
    if let Some(writer) = run.writer.take() {
        run.retire(writer);
    }
    let (ends, mut recovery_problems) = recover(&run.checker, &direct);
    run.problems.append(&mut recovery_problems);
    // The reader must reach every log's end within the bound.
    let deadline = Instant::now() + CATCH_UP;
    while Instant::now() < deadline {
        let lines = run.reader.as_ref().map(|r| r.lines()).unwrap_or_default();
        let behind = ends.iter().enumerate().any(|(log, end)| {
            end.is_some_and(|end| reader_reached(&lines, log).is_none_or(|r| r + 1 < end))
        });
        if !behind {
            break;
        }
        run.wait_until(Instant::now() + Duration::from_millis(100), None);
    }
    if let Some(reader) = run.reader.take() {
        run.retire(reader);
    }
    let bound = (SHARDS * SHARD_BUFFER_BYTES) as u64 + RSS_SLACK_BYTES;
    for proc in &run.done {
        let rss = proc.rss_max.load(std::sync::atomic::Ordering::Relaxed);
        report.rss_max_bytes = report.rss_max_bytes.max(rss);
        if rss > bound {
            run.problems.push(format!(
                "{} reached {} MiB of RSS (bound {} MiB)",
                proc.role,
                rss >> 20,
                bound >> 20
            ));
        }
    }
    let (checked, violations) = check(&run.checker, &direct, &run.history, &ends);
    report.checked = checked;
    report.unknown = run.history.unknown;
    report.violations = run.problems;
    report.violations.extend(violations);
    run.checker.shutdown();
    if !report.violations.is_empty() {
        // Keep what the processes printed, for the post-mortem.
        for proc in &run.done {
            let name = proc.role.replace(' ', "-");
            let _ = std::fs::write(
                run.dir.path().join(format!("{name}.out")),
                proc.lines().join("\n"),
            );
        }
        let kept = run.dir.keep();
        report
            .violations
            .push(format!("the run's output is kept in {}", kept.display()));
    }
    report
}

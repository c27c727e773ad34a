//! One side of a `bench write` run: the engine in this process, or a
//! server through the remote client (`--target`). Each runs its rounds of
//! appenders and keeps its own figures, so the two can alternate in one
//! run and be compared.

use super::*;
use crate::service::{server_cpu_seconds, server_stats};
use crate::tcp::TcpCounters;
use woodpecker_net::remote::RemoteClient;
use woodpecker_shards::StatsSnapshot;

/// Where a side's upload counters come from.
enum Source {
    Embedded(Client),
    Remote(RemoteClient),
}

pub(super) struct Side {
    pub(super) label: &'static str,
    source: Source,
    pub(super) names: Vec<String>,
    pub(super) writers: Vec<BenchWriter>,
    pub(super) histogram: Histogram<u64>,
    pub(super) entries: u64,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
    pub(super) seconds: f64,
    pub(super) cpu_seconds: f64,
    /// The server's CPU seconds over this side's rounds (a remote side).
    pub(super) server_cpu_seconds: f64,
    pub(super) round_mb_s: Vec<f64>,
    /// The machine's TCP trouble counters over this side's rounds (`None`
    /// where they cannot be read).
    pub(super) tcp: Option<TcpCounters>,
    /// The counters when the run started (a server's count from its start).
    pub(super) stats_started: StatsSnapshot,
}

impl Side {
    /// The engine in this process, writing `logs` new logs.
    pub(super) fn embedded(client: &Client, logs: usize) -> Result<Side, BenchError> {
        let names: Vec<String> = (0..logs).map(log_name).collect();
        let writers = names
            .iter()
            .map(|name| {
                block_on(client.create_log(name))
                    .and_then(|_| block_on(client.open_writer(name)))
                    .map(|w| BenchWriter::Embedded(Arc::new(w)))
                    .map_err(|e| BenchError::Failed(format!("opening {name}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Side::new(
            "engine",
            Source::Embedded(client.clone()),
            names,
            writers,
            client.stats(),
        ))
    }

    /// The server behind `remote`, writing `logs` new logs (named apart
    /// from any other run's: the server keeps its logs).
    pub(super) fn remote(remote: &RemoteClient, logs: usize) -> Result<Side, BenchError> {
        let run = raw::fastrand_u64();
        let names: Vec<String> = (0..logs)
            .map(|i| format!("bench-write-{run:016x}-{i}"))
            .collect();
        let writers = names
            .iter()
            .map(|name| {
                block_on(remote.create_log(name))
                    .and_then(|_| block_on(remote.open_writer(name)))
                    .map(|w| BenchWriter::Remote(Arc::new(w)))
                    .map_err(|e| BenchError::Failed(format!("opening {name} on the server: {e}")))
            })
            .collect::<Result<_, _>>()?;
        let (stats, _) = server_stats(remote)?;
        Ok(Side::new(
            "service",
            Source::Remote(remote.clone()),
            names,
            writers,
            stats,
        ))
    }

    fn new(
        label: &'static str,
        source: Source,
        names: Vec<String>,
        writers: Vec<BenchWriter>,
        stats_started: StatsSnapshot,
    ) -> Side {
        Side {
            label,
            source,
            names,
            writers,
            histogram: latency::histogram(),
            entries: 0,
            errors: 0,
            first_error: None,
            seconds: 0.0,
            cpu_seconds: 0.0,
            server_cpu_seconds: 0.0,
            round_mb_s: Vec::new(),
            tcp: Some(TcpCounters::default()),
            stats_started,
        }
    }

    /// The upload counters now (a server's since it started).
    pub(super) fn stats(&self) -> Result<StatsSnapshot, BenchError> {
        match &self.source {
            Source::Embedded(client) => Ok(client.stats()),
            Source::Remote(remote) => server_stats(remote).map(|(stats, _)| stats),
        }
    }

    /// The server's CPU seconds so far (0 for the embedded side).
    fn server_cpu_seconds_now(&self) -> Result<f64, BenchError> {
        match &self.source {
            Source::Embedded(_) => Ok(0.0),
            Source::Remote(remote) => server_cpu_seconds(remote),
        }
    }

    /// One round of `args.appenders` appender threads until `duration`
    /// has passed; false if an append failed.
    pub(super) fn round(
        &mut self,
        args: &WriteArgs,
        duration: Duration,
        rate: Option<f64>,
    ) -> Result<bool, BenchError> {
        let started = Instant::now();
        let cpu_started = crate::process_cpu_seconds();
        let server_cpu_started = self.server_cpu_seconds_now()?;
        let tcp_started = TcpCounters::read();
        let deadline = started + duration;
        let threads: Vec<_> = (0..args.appenders)
            .map(|i| {
                let writer = self.writers[i % self.writers.len()].clone();
                let args = args.clone();
                std::thread::spawn(move || appender(writer, &args, deadline, rate))
            })
            .collect();
        let mut entries = 0;
        for thread in threads {
            let result = thread
                .join()
                .map_err(|_| BenchError::Failed("an appender panicked".into()))?;
            self.histogram.add(&result.histogram).expect("same bounds");
            entries += result.entries;
            self.errors += result.errors;
            self.first_error = self.first_error.take().or(result.first_error);
        }
        let seconds = started.elapsed().as_secs_f64();
        self.cpu_seconds += crate::process_cpu_seconds() - cpu_started;
        self.server_cpu_seconds += self.server_cpu_seconds_now()? - server_cpu_started;
        self.tcp = match (self.tcp, tcp_started, TcpCounters::read()) {
            (Some(sum), Some(before), Some(after)) => Some(sum.plus(&after.since(&before))),
            _ => None,
        };
        self.seconds += seconds;
        self.entries += entries;
        self.round_mb_s
            .push(entries as f64 * args.entry_bytes as f64 / 1e6 / seconds);
        Ok(self.first_error.is_none())
    }

    /// Closes the writers and deletes the logs.
    pub(super) fn finish(self) {
        for writer in self.writers {
            writer.close();
        }
        for name in &self.names {
            let _ = match &self.source {
                Source::Embedded(client) => block_on(client.delete_log(name)),
                Source::Remote(remote) => block_on(remote.delete_log(name)),
            };
        }
    }

    /// The side's figures, against its counters `stats` at the end.
    pub(super) fn figures(&self, entry_bytes: usize, stats: &StatsSnapshot) -> SideFigures {
        let uploads = stats.fragments_uploaded - self.stats_started.fragments_uploaded;
        let bytes = stats.bytes_uploaded - self.stats_started.bytes_uploaded;
        let payload_bytes = self.entries as f64 * entry_bytes as f64;
        let seconds = self.seconds.max(1e-9);
        let gb = (payload_bytes / 1e9).max(1e-9);
        SideFigures {
            throughput_mb_s: payload_bytes / 1e6 / seconds,
            throughput_mb_s_rounds: self.round_mb_s.clone(),
            entries: self.entries,
            entries_per_s: self.entries as f64 / seconds,
            ack_latency_ms: LatencyMs::from_histogram(&self.histogram),
            fragments: uploads,
            avg_fragment_bytes: bytes / uploads.max(1),
            puts_per_s: uploads as f64 / seconds,
            cpu_s_per_gb: self.cpu_seconds / gb,
            server_cpu_s_per_gb: matches!(self.source, Source::Remote(_))
                .then(|| self.server_cpu_seconds / gb),
            tcp: self.tcp,
        }
    }
}

/// One side's figures, as the report gives them.
#[derive(Debug, Clone, Serialize)]
pub struct SideFigures {
    pub throughput_mb_s: f64,
    pub throughput_mb_s_rounds: Vec<f64>,
    pub entries: u64,
    pub entries_per_s: f64,
    pub ack_latency_ms: LatencyMs,
    pub fragments: u64,
    pub avg_fragment_bytes: u64,
    pub puts_per_s: f64,
    /// CPU seconds of this process per GB (with a server, the client's
    /// only).
    pub cpu_s_per_gb: f64,
    /// With a server: the server process's CPU seconds per GB over this
    /// side's rounds (its `process_cpu_seconds_total`), so the cost of the
    /// whole service path is the client's plus the server's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_s_per_gb: Option<f64>,
    /// The machine's TCP retransmissions, loss probes and zero-window
    /// adverts during this side's rounds (every process's, every
    /// interface's): on loopback, stalls the engine did not cause.
    pub tcp: Option<TcpCounters>,
}

pub(super) fn log_name(i: usize) -> String {
    format!("bench-{i}")
}

//! What `bench write` and `bench read` need of a `woodpecker serve`
//! process given with `--target`: the remote client, and the server's
//! upload and GET counters read from its `/metrics`, so a service phase
//! reports the same figures as an embedded one.

use crate::BenchError;
use woodpecker_net::remote::{AppendObserver, RemoteClient, RemoteConfig};
use woodpecker_shards::{block_on, StatsSnapshot};

/// The server a benchmark runs against.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServiceArgs {
    /// Benchmark a `woodpecker serve` process at this URL
    /// (`http://HOST:PORT`) through the remote client, in phases
    /// alternating with the embedded engine on the store configured here
    /// (give both the same store, so the two sides are comparable).
    #[arg(long = "target", value_name = "URL")]
    pub url: Option<String>,
    /// The bearer token the server asks for, if any.
    #[arg(long, env = "WOODPECKER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Append requests each remote writer keeps in flight at most
    /// [default: the remote client's, 16].
    #[arg(long, value_name = "N")]
    pub requests_in_flight: Option<usize>,
    /// Bytes of one append request at most [default: the remote
    /// client's].
    #[arg(long, value_name = "BYTES")]
    pub request_bytes: Option<usize>,
}

impl ServiceArgs {
    /// The remote client's configuration for the target.
    pub fn remote_config(&self) -> RemoteConfig {
        let mut config = RemoteConfig::new(self.url.clone().unwrap_or_default());
        config.token = self.token.clone();
        if let Some(n) = self.requests_in_flight {
            config.requests_in_flight_max = n.max(1);
        }
        if let Some(bytes) = self.request_bytes {
            config.batch_bytes_max = bytes.max(1);
        }
        config
    }

    /// The remote client of the target, if one is given.
    pub fn client(&self) -> Result<Option<RemoteClient>, BenchError> {
        self.client_observed(None)
    }

    /// [`ServiceArgs::client`], calling `observer` with every answered
    /// append request.
    pub fn client_observed(
        &self,
        observer: Option<AppendObserver>,
    ) -> Result<Option<RemoteClient>, BenchError> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let mut config = self.remote_config();
        config.append_observer = observer;
        let client = RemoteClient::new(config)
            .map_err(|e| BenchError::Invalid(format!("--target {url}: {e}")))?;
        // Fail early, with the reason, when the server cannot be reached.
        block_on(client.metrics_text())
            .map_err(|e| BenchError::Failed(format!("the server at {url}: {e}")))?;
        Ok(Some(client))
    }
}

/// The server's counters now: its uploads (as the embedded client's
/// [`StatsSnapshot`] has them) and the object-store GETs it made.
pub fn server_stats(client: &RemoteClient) -> Result<(StatsSnapshot, u64), BenchError> {
    let text = server_metrics_text(client)?;
    let metrics = Metrics::parse(&text);
    let stats = StatsSnapshot {
        fragments_uploaded: metrics.sum("woodpecker_fragments_uploaded_total", None) as u64,
        bytes_uploaded: metrics.sum("woodpecker_uploaded_bytes_total", None) as u64,
        upload_micros: (metrics.sum("woodpecker_upload_busy_seconds_total", None) * 1e6) as u64,
        upload_micros_max: (metrics.histogram_max("woodpecker_upload_duration_seconds") * 1e6)
            as u64,
        upload_retries: metrics.sum("woodpecker_upload_retries_total", None) as u64,
        cache_hits: metrics.sum("woodpecker_fragment_cache_hits_total", None) as u64,
        cache_misses: metrics.sum("woodpecker_fragment_cache_misses_total", None) as u64,
        ..StatsSnapshot::default()
    };
    let gets = metrics.sum(
        "woodpecker_store_request_duration_seconds_count",
        Some(("op", "get")),
    ) + metrics.sum(
        "woodpecker_store_request_duration_seconds_count",
        Some(("op", "get_range")),
    );
    Ok((stats, gets as u64))
}

/// The server process's CPU seconds so far (user and system), from its
/// `/metrics` (`process_cpu_seconds_total`).
pub fn server_cpu_seconds(client: &RemoteClient) -> Result<f64, BenchError> {
    let text = server_metrics_text(client)?;
    Ok(Metrics::parse(&text).sum("process_cpu_seconds_total", None))
}

/// The server's `/metrics` text.
fn server_metrics_text(client: &RemoteClient) -> Result<String, BenchError> {
    block_on(client.metrics_text())
        .map_err(|e| BenchError::Failed(format!("reading the server's metrics: {e}")))
}

/// Samples of a Prometheus text exposition: name, labels, value.
struct Metrics<'t> {
    samples: Vec<(&'t str, &'t str, f64)>,
}

impl<'t> Metrics<'t> {
    fn parse(text: &'t str) -> Metrics<'t> {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let value: f64 = value.parse().ok()?;
                let (name, labels) = match series.split_once('{') {
                    Some((name, labels)) => (name, labels.trim_end_matches('}')),
                    None => (series, ""),
                };
                Some((name, labels, value))
            })
            .collect();
        Metrics { samples }
    }

    /// The sum of the samples of `name` (with this label, if given).
    fn sum(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
        let wanted = label.map(|(k, v)| format!("{k}=\"{v}\""));
        self.samples
            .iter()
            .filter(|(n, labels, _)| {
                *n == name
                    && wanted
                        .as_deref()
                        .is_none_or(|w| labels.split(',').any(|l| l == w))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// The upper bound of the smallest bucket of histogram `name` that
    /// holds all its observations: the slowest one, to a bucket's width.
    fn histogram_max(&self, name: &str) -> f64 {
        let count = self.sum(&format!("{name}_count"), None);
        let bucket = format!("{name}_bucket");
        self.samples
            .iter()
            .filter(|(n, _, v)| *n == bucket && *v >= count && count > 0.0)
            .filter_map(|(_, labels, _)| {
                let le = labels.split(',').find_map(|l| l.strip_prefix("le=\""))?;
                le.trim_end_matches('"').parse::<f64>().ok()
            })
            .filter(|le| le.is_finite())
            .fold(None, |min: Option<f64>, le| {
                Some(min.map_or(le, |m| m.min(le)))
            })
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP woodpecker_fragments_uploaded_total Fragments made durable
# TYPE woodpecker_fragments_uploaded_total counter
woodpecker_fragments_uploaded_total 12
woodpecker_store_request_duration_seconds_count{op=\"get\"} 5
woodpecker_store_request_duration_seconds_count{op=\"get_range\"} 2
woodpecker_store_request_duration_seconds_count{op=\"put\"} 9
woodpecker_upload_duration_seconds_bucket{le=\"0.01\"} 3
woodpecker_upload_duration_seconds_bucket{le=\"0.05\"} 12
woodpecker_upload_duration_seconds_bucket{le=\"0.1\"} 12
woodpecker_upload_duration_seconds_bucket{le=\"+Inf\"} 12
woodpecker_upload_duration_seconds_count 12
";

    #[test]
    fn samples_are_summed_by_name_and_label() {
        let metrics = Metrics::parse(TEXT);
        assert_eq!(
            metrics.sum("woodpecker_fragments_uploaded_total", None),
            12.0
        );
        let count = "woodpecker_store_request_duration_seconds_count";
        assert_eq!(metrics.sum(count, Some(("op", "get"))), 5.0);
        assert_eq!(metrics.sum(count, None), 16.0);
        assert_eq!(metrics.sum("absent", None), 0.0);
    }

    #[test]
    fn the_histogram_max_is_the_first_bucket_holding_everything() {
        let metrics = Metrics::parse(TEXT);
        assert_eq!(
            metrics.histogram_max("woodpecker_upload_duration_seconds"),
            0.05
        );
        assert_eq!(metrics.histogram_max("absent"), 0.0);
    }
}

//! The client's counters as Prometheus metrics, in base units (`_total`
//! counters, bytes, seconds). [`Metrics`] is a `prometheus` collector an
//! application registers in its own registry; it reads the shards' relaxed
//! counters when scraped, so the write path pays nothing per scrape.

use crate::stats::{Stats, StatsSnapshot};
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, Opts};
use std::sync::Arc;

/// One client's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    stats: Arc<Stats>,
    descs: Vec<Desc>,
}

/// Name, help and value of each counter.
fn counters(s: &StatsSnapshot) -> [(&'static str, &'static str, f64); 13] {
    [
        (
            "woodpecker_appends_total",
            "Entries written into fragments",
            s.appends as f64,
        ),
        (
            "woodpecker_appended_bytes_total",
            "Payload bytes of the entries written into fragments",
            s.appended_bytes as f64,
        ),
        (
            "woodpecker_acks_total",
            "Entries acknowledged durable",
            s.acks as f64,
        ),
        (
            "woodpecker_fragments_uploaded_total",
            "Fragments made durable",
            s.fragments_uploaded as f64,
        ),
        (
            "woodpecker_uploaded_bytes_total",
            "Bytes of the fragments made durable",
            s.bytes_uploaded as f64,
        ),
        (
            "woodpecker_truncations_total",
            "Truncation points moved by this client",
            s.truncations as f64,
        ),
        (
            "woodpecker_segment_rolls_total",
            "Segments started by a roll",
            s.segment_rolls as f64,
        ),
        (
            "woodpecker_segment_seals_total",
            "Segments sealed by their writer",
            s.segment_seals as f64,
        ),
        (
            "woodpecker_fences_total",
            "Writers fenced by a newer writer",
            s.fences as f64,
        ),
        (
            "woodpecker_segments_deleted_total",
            "Segments the retention auditor deleted",
            s.segments_deleted as f64,
        ),
        (
            "woodpecker_fragment_cache_hits_total",
            "Reads the fragment cache answered, or joined to a GET in flight",
            s.cache_hits as f64,
        ),
        (
            "woodpecker_fragment_cache_misses_total",
            "Whole-fragment reads the fragment cache passed on to the store",
            s.cache_misses as f64,
        ),
        (
            "woodpecker_upload_busy_seconds_total",
            "Upload time summed over successful uploads",
            s.upload_micros as f64 / 1e6,
        ),
    ]
}

const RING_REQUESTS: (&str, &str) = (
    "woodpecker_ingest_ring_requests",
    "Requests waiting in the open writers' ingest rings",
);

const READER_LAG: (&str, &str) = (
    "woodpecker_reader_lag_entries",
    "Largest lag of this client's readers: entries known durable their callers have not taken",
);

const BUFFERS_IN_USE: (&str, &str) = (
    "woodpecker_buffers_in_use",
    "Pooled fragment buffers in use (open, closed or uploading fragments), all shards",
);

const STAGE_SECONDS: (&str, &str) = (
    "woodpecker_append_stage_seconds",
    "With engine.profile_stages: each write-path stage's latency over every append since the \
     start, by stage (ring, fill, slot, upload, order) and quantile (1: the slowest)",
);

const STAGE_MEAN_SECONDS: (&str, &str) = (
    "woodpecker_append_stage_mean_seconds",
    "With engine.profile_stages: each write-path stage's mean latency over every append since \
     the start; the stages' means add up to the mean time from append to acknowledgement",
);

/// The stage profile's gauges, if any append was profiled.
fn stage_families(stats: &Stats) -> Vec<MetricFamily> {
    let profile = stats.profiler.snapshot();
    if profile.stages.iter().all(|s| s.entries == 0) {
        return Vec::new();
    }
    let quantiles = GaugeVec::new(
        Opts::new(STAGE_SECONDS.0, STAGE_SECONDS.1),
        &["stage", "quantile"],
    )
    .expect("valid gauge options");
    let means = GaugeVec::new(
        Opts::new(STAGE_MEAN_SECONDS.0, STAGE_MEAN_SECONDS.1),
        &["stage"],
    )
    .expect("valid gauge options");
    for stage in &profile.stages {
        for (quantile, ms) in [
            ("0.5", stage.p50_ms),
            ("0.9", stage.p90_ms),
            ("0.99", stage.p99_ms),
            ("1", stage.max_ms),
        ] {
            quantiles
                .with_label_values(&[stage.stage, quantile])
                .set(ms / 1e3);
        }
        means
            .with_label_values(&[stage.stage])
            .set(stage.mean_ms / 1e3);
    }
    let mut families = quantiles.collect();
    families.extend(means.collect());
    families
}

/// The histograms and labelled counters, which collect themselves.
fn histograms(stats: &Stats) -> [&dyn Collector; 5] {
    let h = &stats.histograms;
    [
        &h.upload_seconds,
        &h.ack_seconds,
        &h.store_seconds,
        &h.store_errors,
        &h.upload_retries,
    ]
}

impl Metrics {
    pub(crate) fn new(stats: Arc<Stats>) -> Metrics {
        let mut descs: Vec<Desc> = counters(&StatsSnapshot::default())
            .iter()
            .map(|(name, help, _)| {
                Desc::new(
                    name.to_string(),
                    help.to_string(),
                    Vec::new(),
                    Default::default(),
                )
                .expect("valid metric name")
            })
            .collect();
        for (name, help) in [BUFFERS_IN_USE, RING_REQUESTS, READER_LAG] {
            descs.push(
                Desc::new(name.into(), help.into(), Vec::new(), Default::default())
                    .expect("valid metric name"),
            );
        }
        for collector in histograms(&stats) {
            descs.extend(collector.desc().into_iter().cloned());
        }
        for ((name, help), labels) in [
            (
                STAGE_SECONDS,
                vec!["stage".to_string(), "quantile".to_string()],
            ),
            (STAGE_MEAN_SECONDS, vec!["stage".to_string()]),
        ] {
            descs.push(
                Desc::new(name.into(), help.into(), labels, Default::default())
                    .expect("valid metric name"),
            );
        }
        Metrics { stats, descs }
    }

    /// The metrics in Prometheus's text exposition format.
    pub fn render(&self) -> String {
        let registry = prometheus::Registry::new();
        registry
            .register(Box::new(self.clone()))
            .expect("a fresh registry takes the client's metrics");
        let mut text = String::new();
        prometheus::TextEncoder::new()
            .encode_utf8(&registry.gather(), &mut text)
            .expect("text encoding of gathered metrics");
        text
    }
}

impl Collector for Metrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let snapshot = self.stats.snapshot();
        let counters = counters(&snapshot);
        let mut families = Vec::with_capacity(counters.len() + 1);
        for (name, help, value) in counters {
            let counter = prometheus::Counter::with_opts(Opts::new(name, help))
                .expect("valid counter options");
            counter.inc_by(value);
            families.extend(counter.collect());
        }
        for ((name, help), value) in [
            (BUFFERS_IN_USE, snapshot.buffers_in_use),
            (RING_REQUESTS, snapshot.ring_requests),
            (READER_LAG, snapshot.reader_lag_max),
        ] {
            let gauge = prometheus::IntGauge::new(name, help).expect("valid gauge options");
            gauge.set(value as i64);
            families.extend(gauge.collect());
        }
        for collector in histograms(&self.stats) {
            families.extend(collector.collect());
        }
        families.extend(stage_families(&self.stats));
        families
    }
}

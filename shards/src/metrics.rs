//! The client's counters as Prometheus metrics, in base units (`_total`
//! counters, bytes, seconds). [`Metrics`] is a `prometheus` collector an
//! application registers in its own registry; it reads the shards' relaxed
//! counters when scraped, so the write path pays nothing per scrape.

use crate::stats::Stats;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::Opts;
use std::sync::Arc;

/// One client's metrics; cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    stats: Arc<Stats>,
    descs: Vec<Desc>,
}

/// Name and help of each counter, in the order [`counter_values`] gives them.
const COUNTERS: [(&str, &str); 10] = [
    ("woodpecker_appends_total", "Entries written into fragments"),
    ("woodpecker_acks_total", "Entries acknowledged durable"),
    (
        "woodpecker_fragments_uploaded_total",
        "Fragments made durable",
    ),
    (
        "woodpecker_uploaded_bytes_total",
        "Bytes of the fragments made durable",
    ),
    (
        "woodpecker_upload_retries_total",
        "Upload attempts that failed and were retried",
    ),
    (
        "woodpecker_segment_rolls_total",
        "Segments started by a roll",
    ),
    (
        "woodpecker_segment_seals_total",
        "Segments sealed by their writer",
    ),
    (
        "woodpecker_fences_total",
        "Writers fenced by a newer writer",
    ),
    (
        "woodpecker_segments_deleted_total",
        "Segments the retention auditor deleted",
    ),
    (
        "woodpecker_upload_busy_seconds_total",
        "Upload time summed over successful uploads",
    ),
];

fn counter_values(stats: &Stats) -> [f64; 10] {
    let s = stats.snapshot();
    [
        s.appends as f64,
        s.acks as f64,
        s.fragments_uploaded as f64,
        s.bytes_uploaded as f64,
        s.upload_retries as f64,
        s.segment_rolls as f64,
        s.segment_seals as f64,
        s.fences as f64,
        s.segments_deleted as f64,
        s.upload_micros as f64 / 1e6,
    ]
}

impl Metrics {
    pub(crate) fn new(stats: Arc<Stats>) -> Metrics {
        let mut descs: Vec<Desc> = COUNTERS
            .iter()
            .map(|(name, help)| {
                Desc::new(
                    name.to_string(),
                    help.to_string(),
                    Vec::new(),
                    Default::default(),
                )
                .expect("valid metric name")
            })
            .collect();
        descs.extend(stats.upload_seconds.desc().into_iter().cloned());
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
        let mut families = Vec::with_capacity(COUNTERS.len() + 1);
        for ((name, help), value) in COUNTERS.iter().zip(counter_values(&self.stats)) {
            let counter = prometheus::Counter::with_opts(Opts::new(*name, *help))
                .expect("valid counter options");
            counter.inc_by(value);
            families.extend(counter.collect());
        }
        families.extend(self.stats.upload_seconds.collect());
        families
    }
}

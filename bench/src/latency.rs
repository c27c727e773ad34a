//! Latency summaries from HDR histograms, in milliseconds.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;

/// Microsecond-resolution histogram up to one hour.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

pub fn record(histogram: &mut Histogram<u64>, elapsed: Duration) {
    record_n(histogram, elapsed, 1);
}

/// Records `count` samples of the same latency.
pub fn record_n(histogram: &mut Histogram<u64>, elapsed: Duration, count: u64) {
    let micros = (elapsed.as_micros() as u64).clamp(1, histogram.high());
    histogram
        .record_n(micros, count)
        .expect("clamped into range");
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct LatencyMs {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl LatencyMs {
    pub fn from_histogram(histogram: &Histogram<u64>) -> LatencyMs {
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencyMs {
            mean: histogram.mean() / 1000.0,
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p999: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }
}

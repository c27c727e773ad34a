//! From measured PUTs to settings: fit the store's per-request latency and
//! one stream's bandwidth, find the throughput ceiling, and choose the
//! fragment size and uploads in flight for a goal, with the reasons.

use serde::Serialize;

/// Reader GETs and uploads each get this many connections per in-flight
/// request at least, so neither queues behind the other.
const CONNECTIONS_MIN: usize = 16;
/// Settings within this share of the ceiling count as reaching it.
const NEAR_CEILING: f64 = 0.95;
/// What an ack adds to its fragment's upload (the ack's delivery and the
/// fragment's close), as the latency goal budgets it.
const ACK_MARGIN_MS: f64 = 1.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// The most bytes per second, fragments no larger than that needs.
    Throughput,
    /// The most bytes per second whose predicted ack p99 stays under
    /// --p99-ms.
    Latency,
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Goal::Throughput => "throughput",
            Goal::Latency => "latency",
        })
    }
}

/// One measured PUT setting: objects of `object_bytes`, `inflight` at once.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Point {
    pub object_bytes: u64,
    pub inflight: usize,
    pub mb_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// The store as a PUT of `n` bytes sees it: `request_ms + n / stream
/// bandwidth`, up to the ceiling across all concurrency.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Model {
    /// Fixed cost of one request (the fit's intercept), milliseconds.
    pub request_ms: f64,
    /// One request's transfer rate (the fit's slope), MB/s.
    pub stream_mb_s: f64,
    /// Points at one in flight the fit used.
    pub fitted_points: usize,
    /// The most MB/s measured, and where.
    pub ceiling_mb_s: f64,
    pub ceiling_object_bytes: u64,
    pub ceiling_inflight: usize,
}

/// Fits the model to the p50 latency of the points at one in flight (all
/// points' ceiling). `None` without any point.
///
/// The fit is least squares on relative error (each point weighted by
/// 1/p50²): plain least squares lets the large objects' absolute noise set
/// the intercept, and a few milliseconds of jitter on a 32 MiB PUT would
/// swamp the per-request cost that the small objects measure.
pub fn fit(points: &[Point]) -> Option<Model> {
    let ceiling = points
        .iter()
        .max_by(|a, b| a.mb_s.total_cmp(&b.mb_s))
        .copied()?;
    let single: Vec<&Point> = points.iter().filter(|p| p.inflight == 1).collect();
    let basis: Vec<&Point> = if single.is_empty() {
        points.iter().collect()
    } else {
        single
    };
    let weight = |p: &Point| 1.0 / p.p50_ms.max(1e-3).powi(2);
    let total: f64 = basis.iter().map(|p| weight(p)).sum();
    let mean =
        |f: &dyn Fn(&Point) -> f64| basis.iter().map(|p| weight(p) * f(p)).sum::<f64>() / total;
    let mean_x = mean(&|p| p.object_bytes as f64);
    let mean_y = mean(&|p| p.p50_ms);
    let var = mean(&|p| (p.object_bytes as f64 - mean_x).powi(2));
    let cov = mean(&|p| (p.object_bytes as f64 - mean_x) * (p.p50_ms - mean_y));
    // ms per byte; with one size (or noise making it non-positive) the
    // largest object's rate stands for the stream and the rest is latency.
    let slope = if var > 0.0 && cov > 0.0 {
        cov / var
    } else {
        let largest = basis
            .iter()
            .max_by_key(|p| p.object_bytes)
            .expect("not empty");
        largest.p50_ms / largest.object_bytes as f64
    };
    let request_ms = (mean_y - slope * mean_x).max(0.0);
    Some(Model {
        request_ms,
        stream_mb_s: 1.0 / slope / 1e3,
        fitted_points: basis.len(),
        ceiling_mb_s: ceiling.mb_s,
        ceiling_object_bytes: ceiling.object_bytes,
        ceiling_inflight: ceiling.inflight,
    })
}

/// The settings `woodpecker tune` writes, what they are expected to give,
/// and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recommendation {
    pub goal: Goal,
    pub fragment_bytes_max: u64,
    pub uploads_in_flight_max: usize,
    pub flush_interval_ms: u64,
    pub log_buffers_max: usize,
    pub shard_buffer_bytes_max: u64,
    /// Set when the fragment is larger than the default threshold, so the
    /// engine PUTs fragments whole as they were measured.
    pub multipart_threshold_bytes: Option<u64>,
    pub connections_max: usize,
    /// The chosen point's measured PUT throughput and p99.
    pub expected_mb_s: f64,
    pub expected_put_p99_ms: f64,
    /// The chosen point's ack p99 as the latency goal predicts it.
    pub predicted_ack_p99_ms: f64,
    /// False when no measured setting meets the latency goal.
    pub goal_met: bool,
    pub reasons: Vec<String>,
}

/// The throughput goal's interval is about one PUT, but never longer than
/// this: it bounds the ack of an entry that waits for a busy slot.
const FLUSH_INTERVAL_MAX_MS: u64 = 100;

/// Ack p99 under full load at a point: waiting for a slot (one PUT, its
/// p50) and the fragment's own PUT (its p99), plus the ack's margin.
fn predicted_ack_p99(point: &Point) -> f64 {
    point.p99_ms + point.p50_ms + ACK_MARGIN_MS
}

/// Chooses settings for `goal` from the measured points. `get_inflight`
/// is the GET concurrency that read fastest (for connections).
pub fn recommend(
    points: &[Point],
    model: &Model,
    goal: Goal,
    p99_target_ms: Option<f64>,
    get_inflight: usize,
) -> Result<Recommendation, String> {
    let mut reasons = vec![
        format!(
            "fitted to the PUT p50 at {} size(s): {:.1} ms per request + one stream at {:.0} MB/s",
            model.fitted_points, model.request_ms, model.stream_mb_s
        ),
        format!(
            "throughput ceiling {:.0} MB/s, at {} in flight x {}",
            model.ceiling_mb_s,
            model.ceiling_inflight,
            size(model.ceiling_object_bytes)
        ),
    ];
    let smallest =
        |a: &Point, b: &Point| (a.object_bytes, a.inflight).cmp(&(b.object_bytes, b.inflight));
    let (chosen, goal_met) = match goal {
        Goal::Throughput => {
            let near: Vec<&Point> = points
                .iter()
                .filter(|p| p.mb_s >= NEAR_CEILING * model.ceiling_mb_s)
                .collect();
            let chosen = **near
                .iter()
                .min_by(|a, b| smallest(a, b))
                .expect("the ceiling is near");
            reasons.push(format!(
                "chose {} in flight x {}: {:.0} MB/s, the smallest fragments within {:.0}% of \
                 the ceiling (smaller fragments fill and acknowledge sooner)",
                chosen.inflight,
                size(chosen.object_bytes),
                chosen.mb_s,
                (1.0 - NEAR_CEILING) * 100.0
            ));
            (chosen, true)
        }
        Goal::Latency => {
            let target = p99_target_ms.ok_or("--goal latency needs --p99-ms")?;
            let meeting: Vec<&Point> = points
                .iter()
                .filter(|p| predicted_ack_p99(p) <= target)
                .collect();
            match meeting
                .iter()
                .max_by(|a, b| a.mb_s.total_cmp(&b.mb_s).then(smallest(b, a)))
            {
                Some(&&chosen) => {
                    reasons.push(format!(
                        "chose {} in flight x {}: {:.0} MB/s, the most throughput whose \
                         predicted ack p99 ({:.1} ms: PUT p99 {:.1} + a wait for a slot, PUT \
                         p50 {:.1} + {ACK_MARGIN_MS} ms) is under {target} ms",
                        chosen.inflight,
                        size(chosen.object_bytes),
                        chosen.mb_s,
                        predicted_ack_p99(&chosen),
                        chosen.p99_ms,
                        chosen.p50_ms
                    ));
                    (chosen, true)
                }
                None => {
                    let best = *points
                        .iter()
                        .min_by(|a, b| predicted_ack_p99(a).total_cmp(&predicted_ack_p99(b)))
                        .ok_or("nothing was measured")?;
                    reasons.push(format!(
                        "no measured setting meets an ack p99 of {target} ms on this store: \
                         the lowest predicted is {:.1} ms, at {} in flight x {}, chosen",
                        predicted_ack_p99(&best),
                        best.inflight,
                        size(best.object_bytes)
                    ));
                    (best, false)
                }
            }
        }
    };
    let flush_interval_ms = match goal {
        Goal::Throughput => (chosen.p50_ms.ceil() as u64).clamp(10, FLUSH_INTERVAL_MAX_MS),
        Goal::Latency => 10.min((chosen.p50_ms.ceil() as u64).max(1)),
    };
    reasons.push(format!(
        "flush_interval_ms {flush_interval_ms}: fragments ship as soon as an upload slot frees \
         and they are worth one (flush_policy adaptive, flush_bytes_per_upload); the interval \
         bounds how long a fragment may wait, here about one PUT (p50 {:.1} ms){}",
        chosen.p50_ms,
        match goal {
            Goal::Throughput => {
                ", between 10 ms (so fragments fill under load) and 100 ms (so a quiet \
                 log's ack never waits longer)"
            }
            Goal::Latency => ", at most 10 ms",
        }
    ));
    let defaults = woodpecker_shards::Config::default();
    let log_buffers_max = chosen.inflight + 2;
    let shard_buffer_bytes_max = (defaults.shard_buffer_bytes_max as u64)
        .max(2 * log_buffers_max as u64 * chosen.object_bytes);
    reasons.push(format!(
        "log_buffers_max {log_buffers_max} (the uploads in flight and two filling), \
         shard_buffer_bytes_max {} (two such logs per shard at least)",
        size(shard_buffer_bytes_max)
    ));
    let connections_max = (2 * chosen.inflight.max(get_inflight)).max(CONNECTIONS_MIN);
    reasons.push(format!(
        "store.s3.connections_max {connections_max}: uploads and reader GETs ({get_inflight} \
         in flight read fastest) each get their own"
    ));
    let multipart_threshold_bytes = (chosen.object_bytes
        > defaults.multipart_threshold_bytes as u64)
        .then_some(chosen.object_bytes);
    Ok(Recommendation {
        goal,
        fragment_bytes_max: chosen.object_bytes,
        uploads_in_flight_max: chosen.inflight,
        flush_interval_ms,
        log_buffers_max,
        shard_buffer_bytes_max,
        multipart_threshold_bytes,
        connections_max,
        expected_mb_s: chosen.mb_s,
        expected_put_p99_ms: chosen.p99_ms,
        predicted_ack_p99_ms: predicted_ack_p99(&chosen),
        goal_met,
        reasons,
    })
}

/// Bytes with the largest binary unit that divides them (`8MiB`), as the
/// configuration reads them.
pub fn size(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A store of 5 ms per request and 100 MB/s per stream, whose total
    /// is capped at 400 MB/s.
    fn synthetic() -> Vec<Point> {
        let mut points = Vec::new();
        for object_bytes in [MIB / 4, MIB, 4 * MIB, 16 * MIB] {
            for inflight in [1, 4, 16] {
                let single_ms = 5.0 + object_bytes as f64 / 100e6 * 1e3;
                let single_mb_s = object_bytes as f64 / 1e6 / (single_ms / 1e3);
                let mb_s = (single_mb_s * inflight as f64).min(400.0);
                let p50_ms = object_bytes as f64 * inflight as f64 / 1e6 / mb_s * 1e3;
                points.push(Point {
                    object_bytes,
                    inflight,
                    mb_s,
                    p50_ms,
                    p99_ms: p50_ms * 1.5,
                });
            }
        }
        points
    }

    #[test]
    fn the_fit_recovers_request_latency_and_stream_bandwidth() {
        let model = fit(&synthetic()).unwrap();
        assert!((model.request_ms - 5.0).abs() < 0.01, "{model:?}");
        assert!((model.stream_mb_s - 100.0).abs() < 0.1, "{model:?}");
        assert_eq!(model.fitted_points, 4);
        assert_eq!(model.ceiling_mb_s, 400.0);
        assert!(fit(&[]).is_none());
    }

    #[test]
    fn jitter_on_large_objects_does_not_hide_the_request_cost() {
        // 5 ms + 100 MB/s, but the two largest PUTs ran 10% slow.
        let mut points: Vec<Point> = synthetic()
            .into_iter()
            .filter(|p| p.inflight == 1)
            .collect();
        for p in points.iter_mut().filter(|p| p.object_bytes >= 4 * MIB) {
            p.p50_ms *= 1.1;
        }
        let model = fit(&points).unwrap();
        assert!((model.request_ms - 5.0).abs() < 1.0, "{model:?}");
        assert!(
            model.stream_mb_s > 85.0 && model.stream_mb_s < 100.0,
            "{model:?}"
        );
    }

    #[test]
    fn throughput_takes_the_smallest_fragments_near_the_ceiling() {
        let points = synthetic();
        let model = fit(&points).unwrap();
        let advice = recommend(&points, &model, Goal::Throughput, None, 8).unwrap();
        // 256 KiB x 16 reaches the cap (16 x 0.26 MB / 7.6 ms > 400 MB/s).
        let chosen = points
            .iter()
            .find(|p| {
                p.object_bytes == advice.fragment_bytes_max
                    && p.inflight == advice.uploads_in_flight_max
            })
            .unwrap();
        assert!(chosen.mb_s >= 0.95 * 400.0);
        assert_eq!((chosen.object_bytes, chosen.inflight), (MIB / 4, 16));
        for p in &points {
            if p.mb_s >= 0.95 * 400.0 {
                assert!(p.object_bytes >= chosen.object_bytes, "{p:?} is smaller");
            }
        }
        assert!(advice.goal_met);
        assert!(advice.flush_interval_ms >= 10);
        assert_eq!(advice.log_buffers_max, advice.uploads_in_flight_max + 2);
        assert!(advice.connections_max >= 16);
        assert!(advice
            .reasons
            .iter()
            .any(|r| r.contains("ceiling 400 MB/s")));
    }

    #[test]
    fn latency_takes_the_most_throughput_under_the_target_or_says_it_cannot() {
        let points = synthetic();
        let model = fit(&points).unwrap();
        let advice = recommend(&points, &model, Goal::Latency, Some(40.0), 8).unwrap();
        assert!(advice.goal_met);
        assert!(advice.predicted_ack_p99_ms <= 40.0, "{advice:?}");
        for p in &points {
            if predicted_ack_p99(p) <= 40.0 {
                assert!(p.mb_s <= advice.expected_mb_s, "{p:?} is faster");
            }
        }
        assert!(advice.flush_interval_ms <= 10);

        let impossible = recommend(&points, &model, Goal::Latency, Some(1.0), 8).unwrap();
        assert!(!impossible.goal_met);
        assert!(impossible
            .reasons
            .iter()
            .any(|r| r.contains("no measured setting meets")));
        assert!(recommend(&points, &model, Goal::Latency, None, 8).is_err());
    }

    #[test]
    fn large_fragments_are_put_whole_and_get_memory_for_their_buffers() {
        let points = vec![Point {
            object_bytes: 32 * MIB,
            inflight: 8,
            mb_s: 900.0,
            p50_ms: 300.0,
            p99_ms: 400.0,
        }];
        let model = fit(&points).unwrap();
        let advice = recommend(&points, &model, Goal::Throughput, None, 4).unwrap();
        assert_eq!(advice.multipart_threshold_bytes, Some(32 * MIB));
        assert_eq!(advice.shard_buffer_bytes_max, 2 * 10 * 32 * MIB);
        assert_eq!(advice.flush_interval_ms, FLUSH_INTERVAL_MAX_MS);
        assert_eq!(size(advice.shard_buffer_bytes_max), "640MiB");
        assert_eq!(size(256 << 10), "256KiB");
        assert_eq!(size(1000), "1000B");
    }
}

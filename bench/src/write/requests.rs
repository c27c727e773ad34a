//! The service side's append requests, as the remote client saw them
//! answered: their round trips, the part the server accounts for in its
//! `Server-Timing` header, and the rest (the network, both HTTP stacks,
//! the client's runtime), so a service ack latency can be taken apart.

use crate::latency::{self, LatencyMs};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use woodpecker_net::remote::{AppendObserver, AppendTiming};

/// What the remote client's observer records, shared with it.
pub(super) struct RequestTimings {
    recorded: Mutex<Recorded>,
}

struct Recorded {
    requests: u64,
    entries: u64,
    bytes: u64,
    round_trip: Histogram<u64>,
    server: Histogram<u64>,
    outside: Histogram<u64>,
}

/// The append requests of the service phases.
#[derive(Debug, Clone, Serialize)]
pub struct RequestFigures {
    pub requests: u64,
    pub mean_entries: f64,
    pub mean_bytes: f64,
    /// From the request handed to the HTTP client to its answer.
    pub round_trip_ms: LatencyMs,
    /// The server's part (request head to answer, by its `Server-Timing`);
    /// None when the server gave none.
    pub server_ms: Option<LatencyMs>,
    /// Round trip minus the server's part, request by request.
    pub outside_server_ms: Option<LatencyMs>,
}

impl RequestTimings {
    pub(super) fn new() -> Arc<RequestTimings> {
        Arc::new(RequestTimings {
            recorded: Mutex::new(Recorded {
                requests: 0,
                entries: 0,
                bytes: 0,
                round_trip: latency::histogram(),
                server: latency::histogram(),
                outside: latency::histogram(),
            }),
        })
    }

    /// The observer to give the remote client.
    pub(super) fn observer(self: &Arc<Self>) -> AppendObserver {
        let timings = self.clone();
        Arc::new(move |timing: &AppendTiming| timings.record(timing))
    }

    fn record(&self, timing: &AppendTiming) {
        let mut recorded = self.recorded.lock().expect("request timings");
        recorded.requests += 1;
        recorded.entries += timing.entries as u64;
        recorded.bytes += timing.bytes as u64;
        latency::record(&mut recorded.round_trip, timing.round_trip);
        if let Some(server) = timing.server {
            let server = server.total();
            latency::record(&mut recorded.server, server);
            latency::record(
                &mut recorded.outside,
                timing.round_trip.saturating_sub(server),
            );
        }
    }

    /// None before any request was answered.
    pub(super) fn figures(&self) -> Option<RequestFigures> {
        let recorded = self.recorded.lock().expect("request timings");
        let requests = recorded.requests;
        let summary = |h: &Histogram<u64>| (!h.is_empty()).then(|| LatencyMs::from_histogram(h));
        (requests > 0).then(|| RequestFigures {
            requests,
            mean_entries: recorded.entries as f64 / requests as f64,
            mean_bytes: recorded.bytes as f64 / requests as f64,
            round_trip_ms: LatencyMs::from_histogram(&recorded.round_trip),
            server_ms: summary(&recorded.server),
            outside_server_ms: summary(&recorded.outside),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use woodpecker_net::timing::ServerTiming;

    #[test]
    fn the_rest_is_each_round_trip_less_its_server_part() {
        let timings = RequestTimings::new();
        assert!(timings.figures().is_none());
        let observe = timings.observer();
        for (round_trip_ms, durable_ms) in [(5, 4), (7, 3)] {
            observe(&AppendTiming {
                entries: 64,
                bytes: 66_000,
                round_trip: Duration::from_millis(round_trip_ms),
                server: Some(ServerTiming {
                    durable: Duration::from_millis(durable_ms),
                    ..ServerTiming::default()
                }),
            });
        }
        let figures = timings.figures().expect("two requests");
        assert_eq!(figures.requests, 2);
        assert_eq!(figures.mean_entries, 64.0);
        assert_eq!(figures.mean_bytes, 66_000.0);
        // Histogram buckets: within 0.1%.
        let close = |ms: f64, expected: f64| (ms - expected).abs() <= expected / 1000.0;
        assert!(close(figures.round_trip_ms.max, 7.0), "{figures:?}");
        assert!(
            close(figures.server_ms.expect("given").mean, 3.5),
            "{figures:?}"
        );
        let outside = figures.outside_server_ms.expect("given");
        assert!(
            close(outside.p50, 1.0) && close(outside.max, 4.0),
            "{figures:?}"
        );
    }

    #[test]
    fn a_server_without_the_header_leaves_the_split_out() {
        let timings = RequestTimings::new();
        (timings.observer())(&AppendTiming {
            entries: 1,
            bytes: 10,
            round_trip: Duration::from_millis(2),
            server: None,
        });
        let figures = timings.figures().expect("one request");
        assert!(figures.server_ms.is_none() && figures.outside_server_ms.is_none());
    }
}

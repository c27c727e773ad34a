//! Where an append request's time went inside the server, as its answer's
//! `Server-Timing` header says (W3C Server Timing: `name;dur=MS`, comma
//! separated). A client subtracts it from the round trip it measured to
//! learn what the network, the two HTTP stacks and its own queues cost.

use std::time::Duration;

/// The header's name.
pub const SERVER_TIMING: &str = "server-timing";

/// An answered append's time in the server, from the request head to the
/// answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerTiming {
    /// Finding the log's writer (opening it, on a log's first append) and
    /// reading and decoding the request body.
    pub body: Duration,
    /// Waiting for the producer's earlier batch to take its place.
    pub order: Duration,
    /// In the log's writer, until every entry was durable.
    pub durable: Duration,
}

impl ServerTiming {
    /// All of it.
    pub fn total(&self) -> Duration {
        self.body + self.order + self.durable
    }

    /// The header's value: `body;dur=0.066, order;dur=0.003, durable;dur=3.725`.
    pub fn header_value(&self) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        format!(
            "body;dur={:.3}, order;dur={:.3}, durable;dur={:.3}",
            ms(self.body),
            ms(self.order),
            ms(self.durable)
        )
    }

    /// Reads a header value; metrics it does not know and parameters
    /// other than `dur` are skipped. None when it names none of the three
    /// or a duration is not a finite, non-negative number.
    pub fn parse(value: &str) -> Option<ServerTiming> {
        let mut timing = ServerTiming::default();
        let mut known = false;
        for metric in value.split(',') {
            let mut params = metric.split(';').map(str::trim);
            let slot = match params.next()? {
                "body" => &mut timing.body,
                "order" => &mut timing.order,
                "durable" => &mut timing.durable,
                _ => continue,
            };
            let ms: f64 = params.find_map(|p| p.strip_prefix("dur="))?.parse().ok()?;
            *slot = Duration::try_from_secs_f64(ms / 1e3).ok()?;
            known = true;
        }
        known.then_some(timing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_reads_back_to_the_microsecond() {
        let timing = ServerTiming {
            body: Duration::from_micros(66),
            order: Duration::from_micros(3),
            durable: Duration::from_micros(3725),
        };
        let value = timing.header_value();
        assert_eq!(value, "body;dur=0.066, order;dur=0.003, durable;dur=3.725");
        assert_eq!(ServerTiming::parse(&value), Some(timing));
        assert_eq!(timing.total(), Duration::from_micros(3794));
    }

    #[test]
    fn other_metrics_and_parameters_are_skipped() {
        let parsed = ServerTiming::parse(r#"cache;desc="hit", durable;desc="x";dur=2.5"#);
        assert_eq!(
            parsed,
            Some(ServerTiming {
                durable: Duration::from_micros(2500),
                ..ServerTiming::default()
            })
        );
    }

    #[test]
    fn garbage_is_none() {
        for value in [
            "",
            "cache;dur=1",
            "body",
            "body;dur=",
            "body;dur=x",
            "body;dur=-1",
            "body;dur=NaN",
            "durable;dur=1e300",
        ] {
            assert_eq!(ServerTiming::parse(value), None, "{value:?}");
        }
    }
}

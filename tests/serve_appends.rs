//! Conditional and idempotent appends through a real `woodpecker serve`
//! process on the real etcd and MinIO.

mod served;

use served::*;
use std::time::{Duration, Instant};
use woodpecker_net::framing::{self, FramedEntry, MEDIA_TYPE};
use woodpecker_net::timing::{ServerTiming, SERVER_TIMING};

fn post_entries(
    agent: &ureq::Agent,
    served: &Served,
    name: &str,
    query: &str,
    entries: &[FramedEntry],
) -> (u16, serde_json::Value) {
    let body = framing::encode(entries);
    let (status, answer) = call(
        agent.post(&served.url(&format!("/v1/logs/{name}/entries?{query}"))),
        Some((MEDIA_TYPE, &body)),
    );
    (status, json(&answer))
}

#[test]
fn a_conditional_append_writes_only_at_the_expected_end() {
    let served = Served::start(&[]);
    let agent = agent();
    let name = unique("conditional");
    create(&agent, &served, &name);
    let batch: Vec<FramedEntry> = (0..3).map(entry).collect();

    let (status, answer) = post_entries(&agent, &served, &name, "expect_offset=0", &batch);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (
            answer["first_offset"].as_u64(),
            answer["last_offset"].as_u64()
        ),
        (Some(0), Some(2))
    );

    // Another producer's view is stale: refused, with the log's end.
    let (status, answer) = post_entries(&agent, &served, &name, "expect_offset=1", &batch);
    assert_eq!(status, 412, "{answer}");
    assert_eq!(answer["code"], "condition_failed");
    assert_eq!(answer["end_offset"], 3);

    let (status, answer) = post_entries(&agent, &served, &name, "expect_offset=3", &[entry(3)]);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["first_offset"], 3);
    let (status, _) = post_entries(&agent, &served, &name, "expect_offset=x", &[entry(4)]);
    assert_eq!(status, 400);

    // Nothing of the refused batch was written.
    let expected: Vec<FramedEntry> = (0..4).map(entry).collect();
    assert_holds(&read_all(&agent, &served, &name), &expected);
}

#[test]
fn a_retried_batch_of_a_producer_is_written_once() {
    let served = Served::start(&[]);
    let agent = agent();
    let name = unique("idempotent");
    create(&agent, &served, &name);

    let first: Vec<FramedEntry> = (0..2).map(entry).collect();
    let (status, answer) = post_entries(&agent, &served, &name, "producer=p1&seq=1", &first);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["first_offset"], 0);
    // The same batch again (a lost reply's retry): the same offsets.
    let (status, again) = post_entries(&agent, &served, &name, "producer=p1&seq=1", &first);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again, answer);
    // Another producer's seq 1 and p1's seq 2 are new batches.
    let (status, other) = post_entries(&agent, &served, &name, "producer=p2&seq=1", &[entry(2)]);
    assert_eq!((status, other["first_offset"].as_u64()), (200, Some(2)));
    let (status, next) = post_entries(&agent, &served, &name, "producer=p1&seq=2", &[entry(3)]);
    assert_eq!((status, next["first_offset"].as_u64()), (200, Some(3)));

    // Many retries of one batch racing each other: one write.
    let racing: Vec<FramedEntry> = (4..6).map(entry).collect();
    let answers: Vec<(u16, serde_json::Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| post_entries(&agent, &served, &name, "producer=p1&seq=3", &racing))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (status, answer) in &answers {
        assert_eq!(*status, 200, "{answer}");
        assert_eq!(answer["first_offset"], 4);
        assert_eq!(answer["last_offset"], 5);
    }

    // A producer id without a sequence number is refused.
    let (status, answer) = post_entries(&agent, &served, &name, "producer=p1", &[entry(9)]);
    assert_eq!((status, answer["code"].as_str()), (400, Some("malformed")));

    let expected: Vec<FramedEntry> = (0..6).map(entry).collect();
    assert_holds(&read_all(&agent, &served, &name), &expected);
}

#[test]
fn an_append_answer_says_where_its_time_went_in_the_server() {
    let served = Served::start(&[]);
    let agent = agent();
    let name = unique("timing");
    create(&agent, &served, &name);
    let body = framing::encode(&(0..8).map(entry).collect::<Vec<_>>());
    for _ in 0..3 {
        let started = Instant::now();
        let answer = agent
            .post(&served.url(&format!("/v1/logs/{name}/entries")))
            .set("content-type", MEDIA_TYPE)
            .send_bytes(&body)
            .expect("append");
        let round_trip = started.elapsed();
        let header = answer
            .header(SERVER_TIMING)
            .expect("a Server-Timing header");
        let timing = ServerTiming::parse(header).unwrap_or_else(|| panic!("{header:?}"));
        // The upload to MinIO happens in `durable`; the server cannot have
        // spent more than the client waited (the header rounds to 1 µs).
        assert!(timing.durable > Duration::ZERO, "{header}");
        assert!(
            timing.total() <= round_trip + Duration::from_micros(3),
            "{header} against a round trip of {round_trip:?}"
        );
    }
    // Errors carry none: there is no durable part to report.
    let refused = agent
        .post(&served.url(&format!("/v1/logs/{name}/entries?expect_offset=0")))
        .set("content-type", MEDIA_TYPE)
        .send_bytes(&body);
    match refused {
        Err(ureq::Error::Status(412, answer)) => assert!(answer.header(SERVER_TIMING).is_none()),
        other => panic!("expected 412, got {other:?}"),
    }
}

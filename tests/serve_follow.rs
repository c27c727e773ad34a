//! Follow reads on real `woodpecker serve` processes (real etcd and
//! MinIO): entries stream as they become durable, each once and in order,
//! as the binary framing from the server that writes the log and as
//! Server-Sent Events from a second server that only reads it.

mod served;

use served::*;
use std::io::Read;
use std::time::Duration;
use woodpecker_net::framing::{self, FramedEntry};

/// An entry whose properties JSON can carry (SSE events are JSON).
fn text_entry(i: u64) -> FramedEntry {
    FramedEntry {
        properties: vec![(
            bytes::Bytes::from("trace"),
            bytes::Bytes::from(format!("t{i}")),
        )],
        ..entry(i)
    }
}

/// Appends `count` entries from `first` in batches of 10, pausing between
/// batches so the follower sees the log grow.
fn append_slowly(served: &Served, name: &str, first: u64, count: u64) {
    let agent = agent();
    for start in (first..first + count).step_by(10) {
        let batch: Vec<FramedEntry> = (start..(start + 10).min(first + count))
            .map(text_entry)
            .collect();
        assert_eq!(append(&agent, served, name, &batch), start);
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn follow(served: &Served, url: &str, accept: &str) -> (String, Vec<u8>) {
    let response = agent()
        .get(&served.url(url))
        .set("accept", accept)
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let content_type = response.content_type().to_string();
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).unwrap();
    (content_type, body)
}

#[test]
fn a_binary_follow_streams_each_entry_once_in_order() {
    let served = Served::start(&[]);
    let name = unique("follow");
    create(&agent(), &served, &name);
    let expected: Vec<FramedEntry> = (0..300).map(text_entry).collect();
    let body = std::thread::scope(|scope| {
        let follower = scope.spawn(|| {
            let url = format!("/v1/logs/{name}/entries?follow=true&from=0&max_entries=300");
            follow(&served, &url, "*/*")
        });
        std::thread::sleep(Duration::from_millis(200));
        append_slowly(&served, &name, 0, 300);
        follower.join().unwrap()
    });
    let (content_type, body) = body;
    assert_eq!(content_type, framing::MEDIA_TYPE);
    let read = framing::decode(body.into(), true, LIMITS).unwrap();
    assert_holds(&read, &expected);
}

/// The `entry` events of an SSE body: (id, data) each.
fn sse_entries(body: &str) -> Vec<(u64, serde_json::Value)> {
    let mut entries = Vec::new();
    for event in body.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let mut id = None;
        let mut kind = None;
        let mut data = None;
        for line in event.lines() {
            if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.parse::<u64>().unwrap());
            } else if let Some(v) = line.strip_prefix("event: ") {
                kind = Some(v);
            } else if let Some(v) = line.strip_prefix("data: ") {
                data = Some(json(v.as_bytes()));
            } else {
                assert!(line.starts_with(':'), "unexpected line {line:?}");
            }
        }
        match kind {
            Some("entry") => entries.push((id.unwrap(), data.unwrap())),
            None => {} // a keep-alive comment
            Some(other) => panic!("unexpected event {other}: {event}"),
        }
    }
    entries
}

#[test]
fn server_sent_events_from_a_second_server_and_a_resumed_stream() {
    let writing = Served::start(&[]);
    let reading = Served::start(&[]);
    let name = unique("sse");
    create(&agent(), &writing, &name);
    let (content_type, body) = std::thread::scope(|scope| {
        let follower = scope.spawn(|| {
            let url = format!("/v1/logs/{name}/entries?follow=true&max_entries=100");
            follow(&reading, &url, "text/event-stream")
        });
        std::thread::sleep(Duration::from_millis(200));
        append_slowly(&writing, &name, 0, 100);
        follower.join().unwrap()
    });
    assert_eq!(content_type, "text/event-stream");
    let events = sse_entries(&String::from_utf8(body).unwrap());
    assert_eq!(events.len(), 100);
    for (i, (id, data)) in events.iter().enumerate() {
        let want = text_entry(i as u64);
        assert_eq!((*id, data["offset"].as_u64()), (i as u64, Some(i as u64)));
        assert_eq!(data["properties"]["trace"], format!("t{i}"));
        let payload = data["payload"]
            .as_str()
            .map(|t| t.as_bytes().to_vec())
            .unwrap_or_else(|| {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(data["payload_base64"].as_str().unwrap())
                    .unwrap()
            });
        assert_eq!(payload, want.payload.to_vec(), "entry {i}");
    }

    // A reconnecting EventSource sends the last id it saw.
    let response = agent()
        .get(&reading.url(&format!(
            "/v1/logs/{name}/entries?follow=true&max_entries=10"
        )))
        .set("accept", "text/event-stream")
        .set("last-event-id", "49")
        .call()
        .unwrap();
    let events = sse_entries(&response.into_string().unwrap());
    let ids: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, (50..60).collect::<Vec<_>>());
}

#[test]
fn an_open_follow_stream_ends_at_a_graceful_shutdown() {
    let served = Served::start(&[]);
    let name = unique("follow-stop");
    create(&agent(), &served, &name);
    append_slowly(&served, &name, 0, 10);
    let url = served.url(&format!("/v1/logs/{name}/entries?follow=true&from=0"));
    let response = agent().get(&url).call().unwrap();
    let mut reader = response.into_reader();
    let follower = std::thread::spawn(move || {
        let mut body = Vec::new();
        reader.read_to_end(&mut body).map(|_| body)
    });
    std::thread::sleep(Duration::from_millis(300));
    let status = served.terminate(Duration::from_secs(20));
    assert!(status.success(), "serve exits 0 with a follow stream open");
    let body = follower.join().unwrap().expect("the stream ends cleanly");
    let read = framing::decode(body.into(), true, LIMITS).unwrap();
    assert_eq!(read.len(), 10, "what was durable was streamed first");
}

#[test]
fn four_followers_on_a_second_server_cost_one_get_per_fragment() {
    let writing = Served::start(&[]);
    let reading = Served::start(&[]);
    let name = unique("cache");
    create(&agent(), &writing, &name);
    append_slowly(&writing, &name, 0, 200);
    let fragments = metric(&writing, "woodpecker_fragments_uploaded_total");
    assert!(fragments >= 5.0, "{fragments} fragments");
    let gets = "woodpecker_store_request_duration_seconds_count{op=\"get\"}";
    let before = metric(&reading, gets);
    std::thread::scope(|scope| {
        let followers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let url = format!("/v1/logs/{name}/entries?follow=true&from=0&max_entries=200");
                    let (_, body) = follow(&reading, &url, "*/*");
                    framing::decode(body.into(), true, LIMITS).unwrap().len()
                })
            })
            .collect();
        for follower in followers {
            assert_eq!(follower.join().unwrap(), 200);
        }
    });
    let fetched = metric(&reading, gets) - before;
    assert!(
        fetched <= fragments,
        "four followers made {fetched} GETs for {fragments} fragments"
    );
    assert!(metric(&reading, "woodpecker_fragment_cache_hits_total") >= 2.0 * fragments);
}

//! The remote client's retries through a fault proxy that swallows half
//! the server's replies after the server acted on the request: every
//! append is acknowledged once, and the log holds each entry once.

mod served;

use bytes::Bytes;
use served::*;
use std::time::Duration;
use woodpecker_net::remote::{RemoteClient, RemoteConfig};
use woodpecker_shards::{block_on, StartAt};
use woodpecker_testkit::{FaultProxy, ProxyMode};

#[test]
fn retries_after_lost_replies_write_each_entry_once() {
    let served = Served::start(&[]);
    let target = served.base.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(target, 7);
    let direct = RemoteClient::new(RemoteConfig::new(served.base.clone())).unwrap();
    let name = unique("lost-replies");
    block_on(direct.create_log(&name)).unwrap();

    let config = RemoteConfig {
        request_timeout: Duration::from_secs(5),
        ..RemoteConfig::new(format!("http://{}", proxy.addr()))
    };
    let through_proxy = RemoteClient::new(config).unwrap();
    let writer = block_on(through_proxy.open_writer(&name)).unwrap();
    proxy.set(ProxyMode::SwallowReplies(500));
    let mut offsets = Vec::new();
    for round in 0..20u64 {
        let acks: Vec<_> = (0..10)
            .map(|i| writer.append(Bytes::from(format!("entry {}", round * 10 + i))))
            .collect();
        for ack in acks {
            offsets.push(block_on(ack).expect("retried until acknowledged"));
        }
    }
    proxy.set(ProxyMode::Pass);
    assert_eq!(
        offsets,
        (0..200).collect::<Vec<u64>>(),
        "dense, in call order"
    );

    assert_eq!(
        block_on(direct.end_offset(&name)).unwrap(),
        200,
        "nothing written twice"
    );
    let mut reader = block_on(direct.open_reader(&name, StartAt::Earliest)).unwrap();
    for i in 0..200u64 {
        let entry = block_on(reader.next()).unwrap();
        assert_eq!(
            (entry.offset, &entry.payload[..]),
            (i, format!("entry {i}").as_bytes())
        );
    }
}

#[test]
fn pipelined_requests_keep_call_order() {
    let served = Served::start(&[]);
    let name = unique("pipelined");
    // Requests of one entry each, 16 in flight on as many connections:
    // the server writes each after the one before it.
    let config = RemoteConfig {
        batch_bytes_max: 1,
        requests_in_flight_max: 16,
        ..RemoteConfig::new(served.base.clone())
    };
    let client = RemoteClient::new(config).unwrap();
    block_on(client.create_log(&name)).unwrap();
    let writer = block_on(client.open_writer(&name)).unwrap();
    let acks: Vec<_> = (0..2000u64)
        .map(|i| writer.append(Bytes::from(format!("entry {i}"))))
        .collect();
    let offsets: Vec<u64> = acks
        .into_iter()
        .map(|ack| block_on(ack).expect("acknowledged"))
        .collect();
    let misplaced = offsets.iter().enumerate().find(|(i, o)| *i as u64 != **o);
    assert_eq!(misplaced, None, "append i gets offset i (call order)");
    let mut reader = block_on(client.open_reader(&name, StartAt::Earliest)).unwrap();
    for i in 0..2000u64 {
        let entry = block_on(reader.next()).unwrap();
        assert_eq!(
            (entry.offset, &entry.payload[..]),
            (i, format!("entry {i}").as_bytes())
        );
    }
}

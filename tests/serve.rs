//! `woodpecker serve` as a real process against the real etcd and MinIO
//! that `scripts/servers.sh` starts: the API end to end, bad input, a
//! graceful shutdown that loses nothing, and a SIGKILL that loses nothing
//! acknowledged.

mod served;

use served::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use woodpecker_net::framing::{self, FramedEntry, MEDIA_TYPE};

/// A request, its body, and the status and error code it must get.
type Case<'a> = (ureq::Request, Option<(&'a str, &'a [u8])>, u16, &'a str);
/// An acknowledged batch: its first offset and its entries.
type Acked = (u64, Vec<FramedEntry>);

#[test]
fn logs_entries_and_a_graceful_shutdown_that_keeps_everything() {
    let served = Served::start(&[]);
    let agent = agent();
    let name = unique("serve-crud");
    create(&agent, &served, &name);
    let body = format!(r#"{{"name":"{name}"}}"#);
    let (status, answer) = call(
        agent.post(&served.url("/v1/logs")),
        Some(("application/json", body.as_bytes())),
    );
    assert_eq!(
        (status, json(&answer)["code"].as_str()),
        (409, Some("exists"))
    );

    let expected: Vec<FramedEntry> = (0..600).map(entry).collect();
    for (i, batch) in expected.chunks(150).enumerate() {
        assert_eq!(append(&agent, &served, &name, batch), i as u64 * 150);
    }
    assert_holds(&read_all(&agent, &served, &name), &expected);

    let json_body = br#"{"entries":[{"payload":"hello","properties":{"trace":"t1"}},{"payload_base64":"//4="}]}"#;
    let url = served.url(&format!("/v1/logs/{name}/entries"));
    let (status, answer) = call(agent.post(&url), Some(("application/json", json_body)));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert_eq!(json(&answer)["first_offset"], 600);
    let (status, answer) = call(agent.get(&format!("{url}?from=600&format=json")), None);
    assert_eq!(status, 200);
    let answer = json(&answer);
    assert_eq!(answer["entries"][0]["payload"], "hello");
    assert_eq!(answer["entries"][0]["properties"]["trace"], "t1");
    assert_eq!(answer["entries"][1]["payload_base64"], "//4=");
    assert_eq!(answer["next_offset"], 602);
    // At the end, a read answers at once (no wait asked): nothing, and
    // where to go on.
    let (status, answer) = call(agent.get(&format!("{url}?from=latest&format=json")), None);
    let answer = json(&answer);
    assert_eq!((status, answer["next_offset"].as_u64()), (200, Some(602)));
    assert_eq!(answer["entries"].as_array().map(Vec::len), Some(0));
    // Properties that are not UTF-8 are refused as JSON, not mangled.
    let (status, answer) = call(agent.get(&format!("{url}?from=0&format=json")), None);
    assert_eq!(
        (status, json(&answer)["code"].as_str()),
        (406, Some("not_acceptable"))
    );

    let (status, answer) = call(
        agent.get(&served.url(&format!("/v1/logs/{name}/tail"))),
        None,
    );
    assert_eq!(
        (status, json(&answer)["end_offset"].as_u64()),
        (200, Some(602))
    );
    let (status, answer) = call(
        agent.get(&served.url(&format!("/v1/logs?prefix={name}"))),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(json(&answer)["logs"][0]["name"], name.as_str());
    let (status, answer) = call(agent.get(&served.url(&format!("/v1/logs/{name}"))), None);
    let info = json(&answer);
    assert_eq!((status, info["end_offset"].as_u64()), (200, Some(602)));
    assert!(info["writer_epoch"].as_u64().unwrap() >= 1, "{info}");
    let (status, _) = call(agent.get(&served.url("/readyz")), None);
    assert_eq!(status, 200);
    let (status, metrics) = call(agent.get(&served.url("/metrics")), None);
    let metrics = String::from_utf8(metrics).unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("woodpecker_appends_total"), "{metrics}");
    assert!(
        metrics.contains(r#"woodpecker_http_requests_total{route="append",status="200"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"woodpecker_http_request_duration_seconds_count{route="append"}"#),
        "{metrics}"
    );
    // The process's standard figures, as Prometheus names them.
    for name in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(metrics.contains(name), "{name}: {metrics}");
    }

    // SIGTERM: the writer seals; a new server reads every entry back.
    assert!(served.terminate(Duration::from_secs(60)).success());
    let served = Served::start(&[]);
    let read = read_all(&agent, &served, &name);
    assert_eq!(read.len(), 602);
    assert_holds(&read[..600], &expected);
    let (status, answer) = call(agent.get(&served.url(&format!("/v1/logs/{name}"))), None);
    let info = json(&answer);
    assert_eq!(status, 200);
    assert!(
        info["segments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "Sealed"),
        "{info}"
    );
    // It appends after the entries the first server wrote.
    assert_eq!(append(&agent, &served, &name, &expected[..1]), 602);
    let (status, _) = call(agent.delete(&served.url(&format!("/v1/logs/{name}"))), None);
    assert_eq!(status, 204);
    let (status, answer) = call(agent.get(&served.url(&format!("/v1/logs/{name}"))), None);
    assert_eq!(
        (status, json(&answer)["code"].as_str()),
        (404, Some("not_found"))
    );
    assert!(served.terminate(Duration::from_secs(60)).success());
}

#[test]
fn bad_requests_get_a_coded_4xx_and_the_server_serves_on() {
    let served = Served::start(&["--body-bytes-max", "65536"]);
    let agent = agent();
    let name = unique("serve-bad");
    create(&agent, &served, &name);
    let entries = served.url(&format!("/v1/logs/{name}/entries"));
    let good = framing::encode(&[entry(1)]);
    let oversized = vec![0u8; 70_000];
    let cases: Vec<Case> = vec![
        (
            agent.post(&entries),
            Some((MEDIA_TYPE, &good[..good.len() - 1])),
            400,
            "malformed",
        ),
        (
            agent.post(&entries),
            Some((MEDIA_TYPE, &[])),
            400,
            "malformed",
        ),
        (
            agent.post(&entries),
            Some(("application/json", b"{\"entries\":")),
            400,
            "malformed",
        ),
        (
            agent.post(&entries),
            Some(("application/json", b"{\"entries\":[{}]}")),
            400,
            "malformed",
        ),
        (
            agent.post(&entries),
            Some((MEDIA_TYPE, &oversized)),
            413,
            "too_large",
        ),
        (
            agent.post(&served.url("/v1/logs")),
            Some(("application/json", b"{\"name\":\"a b\"}")),
            400,
            "malformed",
        ),
        (
            agent.post(&served.url("/v1/logs/no-such-log/entries")),
            Some((MEDIA_TYPE, &good)),
            404,
            "not_found",
        ),
        (
            agent.get(&served.url("/v1/logs/no-such-log/entries")),
            None,
            404,
            "not_found",
        ),
        (
            agent.get(&format!("{entries}?from=x")),
            None,
            400,
            "malformed",
        ),
        (
            agent.get(&format!("{entries}?max_entries=0")),
            None,
            400,
            "malformed",
        ),
        (
            agent.get(&served.url("/v2/nothing")),
            None,
            404,
            "not_found",
        ),
        (
            agent.put(&served.url("/v1/logs")),
            None,
            405,
            "method_not_allowed",
        ),
        (
            agent.post(&served.url(&format!("/v1/logs/{name}/truncate"))),
            Some(("application/json", b"{\"offset\":99}")),
            400,
            "malformed",
        ),
    ];
    for (i, (request, body, status, code)) in cases.into_iter().enumerate() {
        let (got, answer) = call(request, body);
        assert_eq!(
            got,
            status,
            "case {i}: {}",
            String::from_utf8_lossy(&answer)
        );
        assert_eq!(json(&answer)["code"], code, "case {i}");
    }
    // A connection that sends half a request head and stalls does not
    // stop anyone else.
    let addr = served.base.trim_start_matches("http://").to_string();
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut stalled, b"POST /v1/logs HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert_eq!(append(&agent, &served, &name, &[entry(1)]), 0);
    let (status, _) = call(agent.get(&served.url("/healthz")), None);
    assert_eq!(status, 200);
    drop(stalled);
    assert!(served.terminate(Duration::from_secs(60)).success());
}

/// The header timeout closes a connection whose request head stalls and
/// one left idle after a request (slowloris), on the shard's timers;
/// everyone else is served meanwhile.
#[test]
fn the_header_timeout_closes_stalled_and_idle_connections() {
    let served = Served::start(&["--header-timeout", "300ms"]);
    let addr = served.base.trim_start_matches("http://").to_string();
    let connect = || {
        let stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    };
    let mut stalled = connect();
    std::io::Write::write_all(&mut stalled, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut idle = connect();
    std::io::Write::write_all(&mut idle, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let started = Instant::now();
    let (status, _) = call(agent().get(&served.url("/healthz")), None);
    assert_eq!(status, 200, "others are served meanwhile");
    // The stalled head gets no answer; the idle connection gets the one
    // to its request. Then each reads the end of the connection.
    let stalled_got = String::from_utf8_lossy(&read_until_closed(&mut stalled)).into_owned();
    assert!(
        !stalled_got.contains(" 200 "),
        "a half head is not answered: {stalled_got:?}"
    );
    let idle_got = String::from_utf8_lossy(&read_until_closed(&mut idle)).into_owned();
    assert!(idle_got.starts_with("HTTP/1.1 200"), "{idle_got:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(10),
        "closed after {took:?}, the timeout being 300 ms"
    );
    assert!(served.terminate(Duration::from_secs(60)).success());
}

/// An entry's size counts each property's 6 header bytes with its key and
/// value, as the engine counts it: an entry over the limit only by those
/// bytes is `too_large` (413), framed or JSON, and nothing is written; one
/// at the limit is written.
#[test]
fn an_entry_over_the_limit_by_its_property_headers_is_too_large() {
    let fragment_bytes_max = 65_536;
    let max = woodpecker_shards::Config {
        fragment_bytes_max,
        ..woodpecker_shards::Config::default()
    }
    .entry_bytes_max();
    let served = Served::start_with(
        &[],
        &[(
            "WOODPECKER_ENGINE_FRAGMENT_BYTES_MAX",
            &fragment_bytes_max.to_string(),
        )],
        std::process::Stdio::inherit(),
        "http",
    );
    let agent = agent();
    let name = unique("serve-entry-limit");
    create(&agent, &served, &name);
    // Key and value of one byte each: 1 + 1 + 6 bytes with the payload.
    let sized = |bytes: usize| FramedEntry {
        offset: None,
        payload: bytes::Bytes::from(vec![7u8; bytes - 8]),
        properties: vec![(bytes::Bytes::from("k"), bytes::Bytes::from("v"))],
    };
    let entries = served.url(&format!("/v1/logs/{name}/entries"));
    let over = sized(max + 1);
    let json_over = serde_json::json!({"entries": [{
        "payload": String::from_utf8(over.payload.to_vec()).unwrap(),
        "properties": {"k": "v"},
    }]})
    .to_string();
    for (media, body) in [
        (MEDIA_TYPE, framing::encode(std::slice::from_ref(&over))),
        ("application/json", json_over.into_bytes().into()),
    ] {
        let (status, answer) = call(agent.post(&entries), Some((media, &body)));
        assert_eq!(
            (status, json(&answer)["code"].as_str()),
            (413, Some("too_large")),
            "{media}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let at_limit = sized(max);
    assert_eq!(
        append(&agent, &served, &name, std::slice::from_ref(&at_limit)),
        0
    );
    assert_holds(&read_all(&agent, &served, &name), &[at_limit]);
    assert!(served.terminate(Duration::from_secs(60)).success());
}

#[test]
fn a_sigkilled_server_loses_no_acknowledged_entry() {
    let served = Served::start(&[]);
    let agent = agent();
    let name = unique("serve-kill");
    create(&agent, &served, &name);
    let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let appenders: Vec<_> = (0..4)
        .map(|t| {
            let (acked, stop, agent) = (acked.clone(), stop.clone(), agent.clone());
            let url = served.url(&format!("/v1/logs/{name}/entries"));
            std::thread::spawn(move || {
                for round in 0..10_000u64 {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let batch: Vec<FramedEntry> = (0..20)
                        .map(|i| entry(t * 1_000_000 + round * 20 + i))
                        .collect();
                    let body = framing::encode(&batch);
                    let sent = agent
                        .post(&url)
                        .set("content-type", MEDIA_TYPE)
                        .send_bytes(&body);
                    // No answer, or one cut short by the kill: this batch
                    // was never acknowledged.
                    let Ok(response) = sent else { return };
                    let Ok(answer) = response.into_json::<serde_json::Value>() else {
                        return;
                    };
                    let first = answer["first_offset"].as_u64().unwrap();
                    acked.lock().unwrap().push((first, batch));
                }
            })
        })
        .collect();
    let started = Instant::now();
    while acked.lock().unwrap().len() < 40 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "appends do not progress"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    served.kill();
    stop.store(true, Ordering::Relaxed);
    for appender in appenders {
        appender.join().unwrap();
    }
    let served = Served::start(&[]);
    // Appending again opens a new writer, which recovers the log.
    let read_before = {
        let first = append(&agent, &served, &name, &[entry(7)]);
        let all = read_all(&agent, &served, &name);
        assert_eq!(all.len() as u64, first + 1);
        all
    };
    let acked = acked.lock().unwrap();
    assert!(acked.len() >= 40);
    for (first, batch) in acked.iter() {
        for (i, want) in batch.iter().enumerate() {
            let got = &read_before[*first as usize + i];
            assert_eq!(
                (&got.payload, &got.properties),
                (&want.payload, &want.properties)
            );
        }
    }
    assert!(served.terminate(Duration::from_secs(60)).success());
}

#[test]
fn an_address_in_use_is_refused_with_a_hint() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let output = serve_on(&addr);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "serve started on a taken address");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}"))
            && stderr.contains("a server stopped moments ago holds it until its shutdown ends"),
        "{stderr}"
    );
    drop(holder);
}

#[test]
fn a_restarted_server_takes_its_address_back_at_once() {
    let served = Served::start(&[]);
    let addr = served.base.trim_start_matches("http://").to_string();
    // Connections the server closes leave TIME_WAIT sockets on its port,
    // as any server under load has when it is restarted.
    for _ in 0..3 {
        let mut conn = std::net::TcpStream::connect(&addr).unwrap();
        let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        std::io::Write::write_all(&mut conn, request).unwrap();
        let mut answer = Vec::new();
        std::io::Read::read_to_end(&mut conn, &mut answer).unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    }
    assert!(served.terminate(Duration::from_secs(60)).success());
    let again = Served::start_at(&addr, &[], &[], std::process::Stdio::inherit(), "http");
    let (status, _) = call(agent().get(&again.url("/healthz")), None);
    assert_eq!(status, 200);
    // A second server on a live server's address is still refused.
    let second = serve_on(&addr);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success() && stderr.contains("Address already in use"),
        "{stderr}"
    );
    assert!(again.terminate(Duration::from_secs(60)).success());
}

#[test]
fn a_receive_buffer_over_the_kernel_cap_is_reported_once() {
    let rmem_max: u64 = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let asked = (rmem_max * 2).to_string();
    let log_path = std::env::temp_dir().join(format!("serve-rcvbuf-{}.log", std::process::id()));
    let served = Served::start_with(
        &["--shards", "2"],
        &[("WOODPECKER_SERVE_RECEIVE_BUFFER_BYTES", asked.as_str())],
        std::process::Stdio::from(std::fs::File::create(&log_path).unwrap()),
        "http",
    );
    assert_eq!(call(agent().get(&served.url("/healthz")), None).0, 200);
    assert!(served.terminate(Duration::from_secs(60)).success());
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    let warnings = log.matches("is capped by the kernel").count();
    assert_eq!(
        warnings, 1,
        "one warning for the two shards' listeners: {log}"
    );
}

/// Runs `woodpecker serve` on `addr` to its end (it ends at once when it
/// cannot listen there).
fn serve_on(addr: &str) -> std::process::Output {
    serve_command(addr)
        .output()
        .expect("running woodpecker serve")
}

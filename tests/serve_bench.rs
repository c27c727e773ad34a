//! `bench write --target` and `bench read --target` against a real
//! `woodpecker serve` process, in tiny mode: the service's figures (from
//! its `/metrics`), the embedded engine's beside them, and GETs per GB.

mod served;

use served::*;
use std::process::Command;

fn bench(kind: &str, served: &Served, args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_woodpecker"))
        .args(["bench", kind, "--store", "s3", "--target", &served.base])
        .args(args)
        .arg("--json")
        .output()
        .expect("running woodpecker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench {kind} failed: {stderr}");
    serde_json::from_slice(&output.stdout).expect("one JSON object on stdout")
}

#[test]
fn bench_write_against_a_server_reports_both_sides_and_caps_requests() {
    let served = Served::start(&[]);
    let report = bench(
        "write",
        &served,
        &[
            "--entry-bytes",
            "1024",
            "--batch",
            "16",
            "--window",
            "64",
            "--duration-s",
            "2",
            "--rounds",
            "2",
        ],
    );
    assert_eq!(report["target"], served.base.as_str());
    assert_eq!(report["errors"], 0, "{report}");
    assert!(report["entries"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["fragments"].as_u64().unwrap() > 0,
        "the server's uploads, from its metrics: {report}"
    );
    assert!(report["avg_fragment_bytes"].as_u64().unwrap() > 0);
    assert!(report["puts_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["ack_latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert_eq!(
        report["throughput_mb_s_rounds"].as_array().unwrap().len(),
        2
    );
    // The whole service path's CPU cost: the client's and the server's.
    assert!(
        report["cpu_s_per_gb"].as_f64().unwrap() > 0.0
            && report["server_cpu_s_per_gb"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    let embedded = &report["embedded"];
    assert!(embedded["server_cpu_s_per_gb"].is_null(), "{report}");
    assert!(
        embedded["throughput_mb_s"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(embedded["fragments"].as_u64().unwrap() > 0);
    assert_eq!(
        embedded["throughput_mb_s_rounds"].as_array().unwrap().len(),
        2
    );
    // The machine's TCP trouble counters, for each side's phases.
    for side in [&report, embedded] {
        for counter in [
            "retransmitted_segments",
            "loss_probes",
            "zero_window_adverts",
        ] {
            assert!(side["tcp"][counter].is_u64(), "{counter}: {report}");
        }
    }
    // The service's append requests, taken apart by the server's
    // Server-Timing: each round trip holds the server's part.
    let requests = &report["append_requests"];
    assert!(requests["requests"].as_u64().unwrap() > 0, "{report}");
    assert!(
        requests["mean_entries"].as_f64().unwrap() >= 16.0,
        "{report}"
    );
    let round_trip = requests["round_trip_ms"]["max"].as_f64().unwrap();
    let server = requests["server_ms"]["max"].as_f64().unwrap();
    assert!(server > 0.0 && server <= round_trip * 1.001, "{report}");
    assert!(requests["outside_server_ms"]["p99"].is_f64(), "{report}");
    let ratio = report["service_to_embedded"].as_f64().unwrap();
    let expected =
        report["throughput_mb_s"].as_f64().unwrap() / embedded["throughput_mb_s"].as_f64().unwrap();
    assert!((ratio - expected).abs() < 1e-9, "{report}");
    assert_eq!(
        report["raw_put_mb_s_phases"].as_array().unwrap().len(),
        2,
        "a raw phase after each round: {report}"
    );

    // --request-bytes caps the remote writer's requests: at 1 byte, each
    // batch of 16 appends goes in a request of its own (a request takes
    // at least one append); without the cap the writer gathers what
    // queued while requests were in flight. (Here, not in a test of its
    // own: the bench's logs must be gone when the check below lists them.)
    let append_requests = "woodpecker_http_request_duration_seconds_count{route=\"append\"}";
    let before = metric(&served, append_requests) as u64;
    let capped = bench(
        "write",
        &served,
        &[
            "--entry-bytes",
            "1024",
            "--batch",
            "16",
            "--window",
            "256",
            "--duration-s",
            "1",
            "--rounds",
            "1",
            "--no-raw",
            "--request-bytes",
            "1",
        ],
    );
    assert_eq!(capped["errors"], 0, "{capped}");
    let entries = capped["entries"].as_u64().unwrap();
    assert!(entries > 0, "{capped}");
    let requests = metric(&served, append_requests) as u64 - before;
    assert_eq!(requests, entries / 16, "{capped}");
    // The client counted the same requests answered.
    assert_eq!(
        capped["append_requests"]["requests"].as_u64(),
        Some(requests),
        "{capped}"
    );

    let (status, logs) = call(agent().get(&served.url("/v1/logs")), None);
    let logs = String::from_utf8_lossy(&logs);
    assert_eq!(status, 200);
    assert!(
        !logs.contains("bench-write-"),
        "the bench deletes its logs: {logs}"
    );
}

#[test]
fn bench_read_against_a_server_counts_gets_per_reader_count() {
    // Fragments of 1 MiB and a cache of 2 smaller than the log: the
    // reads reach the store.
    let served = Served::start_with(
        &[],
        &[
            ("WOODPECKER_ENGINE_FRAGMENT_BYTES_MAX", "1MiB"),
            ("WOODPECKER_ENGINE_FRAGMENT_CACHE_BYTES", "2MiB"),
        ],
        std::process::Stdio::inherit(),
        "http",
    );
    let report = bench(
        "read",
        &served,
        &[
            "--prepare-mb",
            "24",
            "--readers",
            "3",
            "--rounds",
            "1",
            "--duration-s",
            "1",
            "--tail-rate",
            "50",
        ],
    );
    assert_eq!(report["target"], served.base.as_str());
    assert_eq!(report["readers"], 3);
    assert_eq!(report["entries"], 24_000_000 / 1024 + 1, "{report}");
    assert!(report["throughput_mb_s"].as_f64().unwrap() > 0.0);
    assert!(report["throughput_mb_s_readers"].as_f64().unwrap() > 0.0);
    let one = report["gets_per_gb_one_reader"].as_f64().unwrap();
    let many = report["gets_per_gb_readers"].as_f64().unwrap();
    assert!(one > 0.0, "one reader's reads reach the store: {report}");
    assert!(many > 0.0, "{report}");
    assert!(report["tail_latency_ms"]["p99"].as_f64().unwrap() >= 0.0);
    assert!(report["tail_latency_cross_ms"]["max"].as_f64().unwrap() > 0.0);
}

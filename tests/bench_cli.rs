//! The bench tool in tiny mode, so it never rots: every store, JSON output
//! parsed and checked for the fields the docs promise.

use std::process::Command;

/// Runs `woodpecker bench <kind> --store <store> <args> --json`; the
/// report it printed.
fn bench_json(kind: &str, store: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_woodpecker"))
        .args(["bench", kind, "--store", store])
        .args(args)
        .arg("--json")
        .output()
        .expect("running woodpecker");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench {kind} --store {store} failed: {stderr}"
    );
    serde_json::from_slice(&output.stdout).expect("one JSON object on stdout")
}

fn bench_raw(store: &str) -> serde_json::Value {
    bench_json(
        "raw",
        store,
        &[
            "--object-bytes",
            "65536",
            "--inflight",
            "1,4",
            "--objects",
            "8",
            "--duration-s",
            "20",
        ],
    )
}

fn check(report: &serde_json::Value, store: &str) {
    assert_eq!(report["store"], store);
    let levels = report["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for level in levels {
        for phase in ["put", "get"] {
            assert_eq!(level[phase]["objects"], 8, "{level}");
            assert!(level[phase]["mb_s"].as_f64().unwrap() > 0.0);
            for q in ["p50", "p90", "p99", "p999", "max"] {
                assert!(level[phase]["latency_ms"][q].as_f64().unwrap() >= 0.0);
            }
        }
    }
}

#[test]
fn bench_raw_memory_and_local() {
    check(&bench_raw("memory"), "memory");
    check(&bench_raw("local"), "local");
}

#[test]
fn bench_raw_against_minio() {
    assert!(
        std::env::var("WOODPECKER_S3_ENDPOINT").is_ok(),
        "WOODPECKER_S3_ENDPOINT is not set: start the servers with scripts/servers.sh start \
         and source the environment it prints (scripts/test.sh does both)"
    );
    check(&bench_raw("s3"), "s3");
}

#[test]
fn bench_rejects_bad_arguments_clearly() {
    let output = Command::new(env!("CARGO_BIN_EXE_woodpecker"))
        .args(["bench", "raw", "--store", "gcs"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("store.kind (from flag --store)"),
        "{stderr}"
    );
    assert!(stderr.contains("gcs"), "{stderr}");
    assert!(stderr.contains("s3"), "{stderr}");
}

fn bench_write(store: &str, ack_order: &str) -> serde_json::Value {
    let report = bench_json(
        "write",
        store,
        &[
            "--ack-order",
            ack_order,
            "--entry-bytes",
            "512",
            "--duration-s",
            "1",
            "--window",
            "256",
            "--fragment-bytes",
            "65536",
            "--flush-interval-ms",
            "2",
            "--rounds",
            "2",
        ],
    );
    assert_eq!(report["ack_order"], ack_order);
    report
}

fn check_write_basics(report: &serde_json::Value) {
    assert!(report["entries"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["errors"], 0);
    assert!(report["throughput_mb_s"].as_f64().unwrap() > 0.0);
    assert!(report["entries_per_s"].as_f64().unwrap() > 0.0);
    for q in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            report["ack_latency_ms"][q].as_f64().unwrap() > 0.0,
            "{report}"
        );
    }
    assert!(report["cpu_s_per_gb"].as_f64().unwrap() > 0.0, "{report}");
    let (mean, max) = (
        report["upload_latency_mean_ms"].as_f64().unwrap(),
        report["upload_latency_max_ms"].as_f64().unwrap(),
    );
    assert!(max >= mean && mean >= 0.0, "{report}");
}

fn check_write(report: &serde_json::Value, with_raw: bool) {
    check_write_basics(report);
    assert_eq!(
        report["throughput_mb_s_rounds"].as_array().unwrap().len(),
        2
    );
    if with_raw {
        assert!(report["raw_put_mb_s"].as_f64().unwrap() > 0.0, "{report}");
        // A raw phase after each of the two engine rounds; the baseline is
        // their mean.
        let phases: Vec<f64> = report["raw_put_mb_s_phases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_f64().unwrap())
            .collect();
        assert_eq!(phases.len(), 2, "{report}");
        let mean = phases.iter().sum::<f64>() / 2.0;
        assert!((report["raw_put_mb_s"].as_f64().unwrap() - mean).abs() < 1e-9);
        let ratio = report["ratio_to_raw"].as_f64().unwrap();
        let expected =
            report["throughput_mb_s"].as_f64().unwrap() / report["raw_put_mb_s"].as_f64().unwrap();
        assert!((ratio - expected).abs() < 1e-9);
    } else {
        assert!(report["raw_put_mb_s"].is_null() && report["ratio_to_raw"].is_null());
    }
}

#[test]
fn bench_write_every_store() {
    check_write(&bench_write("null", "offset"), false);
    check_write(&bench_write("memory", "any"), false);
    let local = bench_write("local", "offset");
    check_write(&local, true);
    // No socket carried the phase: no TCP counters.
    assert!(local["tcp"].is_null(), "{local}");
    assert!(
        std::env::var("WOODPECKER_S3_ENDPOINT").is_ok(),
        "WOODPECKER_S3_ENDPOINT is not set: start the servers with scripts/servers.sh start"
    );
    let s3 = bench_write("s3", "offset");
    check_write(&s3, true);
    for counter in [
        "retransmitted_segments",
        "loss_probes",
        "zero_window_adverts",
    ] {
        assert!(s3["tcp"][counter].is_u64(), "{counter}: {s3}");
    }
}

#[test]
fn bench_write_at_a_rate_alternates_with_raw_phases() {
    let report = bench_json(
        "write",
        "local",
        &[
            "--rate",
            "2000",
            "--duration-s",
            "1",
            "--rounds",
            "2",
            "--fragment-bytes",
            "65536",
            "--flush-interval-ms",
            "2",
            "--raw-inflight",
            "1",
        ],
    );
    check_write(&report, true);
    assert_eq!(report["raw_inflight"], 1, "{report}");
    // Open loop at 2,000/s for one second in all: about 2,000 entries.
    let entries = report["entries"].as_u64().unwrap();
    assert!((1500..=2100).contains(&entries), "{report}");
    assert!(report["raw_put_latency_ms"]["p99"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_write_truncating_as_it_writes() {
    // Segments of 0.5 MB, truncated to 1 MB behind the durable end: many
    // are deleted during a one-second run.
    let report = bench_json(
        "write",
        "memory",
        &[
            "--duration-s",
            "1",
            "--rounds",
            "1",
            "--window",
            "4096",
            "--fragment-bytes",
            "65536",
            "--keep-mb",
            "1",
        ],
    );
    check_write_basics(&report);
    assert_eq!(report["keep_mb"], 1);
    assert!(report["segments_deleted"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn bench_read_local_and_s3() {
    for store in ["local", "s3"] {
        let report = bench_json(
            "read",
            store,
            &[
                "--prepare-mb",
                "3",
                "--duration-s",
                "1",
                "--tail-rate",
                "100",
                "--fragment-bytes",
                "262144",
                "--rounds",
                "2",
            ],
        );
        assert!(report["entries"].as_u64().unwrap() >= 2900, "{report}");
        assert_eq!(
            report["throughput_mb_s_rounds"].as_array().unwrap().len(),
            2
        );
        assert_eq!(report["raw_get_mb_s_phases"].as_array().unwrap().len(), 3);
        assert!(report["throughput_mb_s"].as_f64().unwrap() > 0.0);
        assert!(report["raw_get_mb_s"].as_f64().unwrap() > 0.0);
        assert!(report["ratio_to_raw"].as_f64().unwrap() > 0.0);
        for tail in ["tail_latency_ms", "tail_latency_cross_ms"] {
            for q in ["p50", "p99", "max"] {
                assert!(report[tail][q].as_f64().unwrap() >= 0.0, "{report}");
            }
        }
    }
}

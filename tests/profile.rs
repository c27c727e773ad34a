//! `bench write --profile` against the real MinIO: every acknowledged
//! append is split into the write path's stages, the stages account for
//! the appenders' ack latency, and the table is printed next to the total.

mod common;

use common::{tiny_write, woodpecker};

#[test]
fn bench_write_profile_splits_every_ack_into_its_stages() {
    assert!(
        std::env::var("WOODPECKER_S3_ENDPOINT").is_ok(),
        "WOODPECKER_S3_ENDPOINT is not set: source the environment scripts/servers.sh prints"
    );
    let mut args = tiny_write("s3");
    args.push("--profile");
    let output = woodpecker(&args, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object on stdout");
    let entries = report["entries"].as_u64().unwrap();
    assert!(entries > 0);
    let stages = report["profile"]["stages"].as_array().unwrap();
    let names: Vec<_> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ring", "fill", "slot", "upload", "order"]);
    let mut engine_ms = 0.0;
    for stage in stages {
        assert_eq!(stage["entries"].as_u64(), Some(entries), "{stage}");
        engine_ms += stage["mean_ms"].as_f64().unwrap();
    }
    // A PUT to MinIO takes time, and the caller waits at least the stages.
    assert!(stages[3]["p50_ms"].as_f64().unwrap() > 0.0, "{stages:?}");
    let total_ms = report["ack_latency_ms"]["mean"].as_f64().unwrap();
    assert!(
        engine_ms <= total_ms * 1.02 + 0.05 && engine_ms >= 0.5 * total_ms,
        "stages sum to {engine_ms} ms of {total_ms} ms"
    );

    // The readable report prints the table.
    let text_args: Vec<&str> = args.into_iter().filter(|a| *a != "--json").collect();
    let output = woodpecker(&text_args, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    for expected in ["where the ack latency goes", "upload", "delivery", "total"] {
        assert!(stdout.contains(expected), "no {expected:?} in\n{stdout}");
    }
}

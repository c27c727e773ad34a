//! `woodpecker tune` against the real MinIO: it probes the store's
//! promises, measures a small grid within its budget, recommends settings
//! and writes a configuration file that loads, without credentials.

use serde_json::Value;
use std::process::{Command, Output};

fn woodpecker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_woodpecker"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("running woodpecker")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn s3_env() {
    assert!(
        std::env::var("WOODPECKER_S3_ENDPOINT").is_ok(),
        "WOODPECKER_S3_ENDPOINT is not set: start the servers with scripts/servers.sh start \
         and source the environment it prints (scripts/test.sh does both)"
    );
}

#[test]
fn tune_probes_minio_measures_within_budget_and_writes_a_loadable_config() {
    s3_env();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("tuned.yaml");
    let started = std::time::Instant::now();
    let run = woodpecker(&[
        "tune",
        "--store",
        "s3",
        "--sizes",
        "256KiB,1MiB",
        "--inflight",
        "1,4",
        "--budget-s",
        "6",
        "--json",
        "--output",
        output.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "tune failed:\n{}{}",
        text(&run.stdout),
        text(&run.stderr)
    );
    // The budget bounds the measurement (plus start-up and clean-up).
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    let report: Value = serde_json::from_slice(&run.stdout).expect("one JSON object");

    // MinIO refuses a second put-if-absent and a wrong checksum.
    assert_eq!(report["probes"]["conditional_put"], "enforced", "{report}");
    assert_eq!(report["probes"]["checksum"], "verified", "{report}");

    let cells = report["grid"]["cells"].as_array().unwrap();
    assert!(!cells.is_empty(), "{report}");
    for cell in cells {
        assert!(cell["put"]["mb_s"].as_f64().unwrap() > 0.0, "{cell}");
        assert!(cell["get"]["mb_s"].as_f64().unwrap() > 0.0, "{cell}");
        let size = cell["object_bytes"].as_u64().unwrap();
        assert!([256 << 10, 1 << 20].contains(&size), "{cell}");
    }
    let model = &report["model"];
    assert!(model["stream_mb_s"].as_f64().unwrap() > 0.0, "{model}");
    assert!(model["ceiling_mb_s"].as_f64().unwrap() > 0.0, "{model}");
    let advice = &report["recommendation"];
    assert_eq!(advice["goal"], "throughput");
    assert!(advice["goal_met"].as_bool().unwrap());
    let fragment = advice["fragment_bytes_max"].as_u64().unwrap();
    let uploads = advice["uploads_in_flight_max"].as_u64().unwrap();
    assert!(
        cells
            .iter()
            .any(|c| c["object_bytes"] == fragment && c["inflight"] == uploads),
        "the recommendation is a measured cell: {advice}"
    );
    assert!(advice["reasons"].as_array().unwrap().len() >= 3, "{advice}");

    let written = std::fs::read_to_string(&output).unwrap();
    let secret = std::env::var("WOODPECKER_S3_SECRET_KEY").unwrap();
    assert!(
        !written.contains(&secret),
        "a secret in the file:\n{written}"
    );
    assert!(!written.contains("access_key:"), "{written}");
    assert!(
        written.contains(&format!("fragment_bytes_max: {}", fragment_size(fragment))),
        "{written}"
    );

    let check = woodpecker(&["config", "check", output.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "the written file does not check:\n{written}\n{}{}",
        text(&check.stdout),
        text(&check.stderr)
    );
    let show = woodpecker(&["--config", output.to_str().unwrap(), "config", "show"]);
    let shown = text(&show.stdout);
    let line = shown
        .lines()
        .find(|l| l.contains("engine.uploads_in_flight_max"))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(line.contains(&uploads.to_string()), "{line}");
    assert!(
        line.contains("file"),
        "the value comes from the file: {line}"
    );
}

/// The configuration's spelling of a fragment size (KiB or MiB).
fn fragment_size(bytes: u64) -> String {
    if bytes.is_multiple_of(1 << 20) {
        format!("{}MiB", bytes >> 20)
    } else {
        format!("{}KiB", bytes >> 10)
    }
}

#[test]
fn tune_prints_a_table_and_refuses_a_latency_goal_without_a_target() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("tuned.yaml");
    let refused = woodpecker(&["tune", "--store", "memory", "--goal", "latency"]);
    assert!(!refused.status.success());
    assert!(text(&refused.stderr).contains("--p99-ms"), "{refused:?}");

    let run = woodpecker(&[
        "tune",
        "--store",
        "memory",
        "--sizes",
        "256KiB",
        "--inflight",
        "1,4",
        "--budget-s",
        "2",
        "--goal",
        "latency",
        "--p99-ms",
        "50",
        "--output",
        output.to_str().unwrap(),
    ]);
    let stdout = text(&run.stdout);
    assert!(run.status.success(), "{stdout}{}", text(&run.stderr));
    for expected in [
        "put-if-absent: enforced",
        "PUT MB/s",
        "256KiB",
        "recommendation (goal latency)",
        "written to",
    ] {
        assert!(stdout.contains(expected), "no {expected:?} in\n{stdout}");
    }
    assert!(std::fs::read_to_string(&output)
        .unwrap()
        .contains("kind: memory"));
}

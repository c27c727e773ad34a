//! The client's Prometheus metrics, as `bench write --metrics` prints them:
//! text format, base units, and values that agree with the run's report.

mod common;

use common::{tiny_write, woodpecker};
use std::collections::HashMap;

/// Metric samples without labels (name -> value) from a text exposition.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn bench_write_metrics_agree_with_its_report() {
    let mut args = tiny_write("local");
    args.push("--metrics");
    let output = woodpecker(&args, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object on stdout");
    let metrics = samples(&stderr);
    let value = |name: &str| {
        *metrics
            .get(name)
            .unwrap_or_else(|| panic!("{name} is missing from {stderr}"))
    };
    let entries = report["entries"].as_f64().unwrap();
    assert!(entries > 0.0);
    // Every acknowledged append was written and acknowledged; the writers
    // closed before the metrics were printed, so nothing is in between.
    assert!(value("woodpecker_appends_total") >= entries, "{stderr}");
    assert_eq!(
        value("woodpecker_acks_total"),
        value("woodpecker_appends_total")
    );
    assert!(value("woodpecker_fragments_uploaded_total") >= report["fragments"].as_f64().unwrap());
    assert_eq!(
        value("woodpecker_upload_duration_seconds_count"),
        value("woodpecker_fragments_uploaded_total")
    );
    assert!(value("woodpecker_uploaded_bytes_total") > entries * 1024.0);
    // Every entry is 1 KiB of payload (the fragments add headers).
    assert_eq!(
        value("woodpecker_appended_bytes_total"),
        value("woodpecker_appends_total") * 1024.0
    );
    assert!(value("woodpecker_upload_duration_seconds_sum") > 0.0);
    assert!(
        value("woodpecker_segment_seals_total") >= 1.0,
        "close seals"
    );
    assert_eq!(value("woodpecker_fences_total"), 0.0);
    // Every acknowledged fragment's wait, and at least one conditional PUT
    // per fragment, timed as requests.
    assert_eq!(
        value("woodpecker_fragment_ack_wait_seconds_count"),
        value("woodpecker_fragments_uploaded_total")
    );
    assert!(
        value("woodpecker_store_request_duration_seconds_count{op=\"put_if_absent\"}")
            >= value("woodpecker_fragments_uploaded_total")
    );
    // The writers closed and gave their buffers back.
    assert_eq!(value("woodpecker_buffers_in_use"), 0.0);
    assert_eq!(value("woodpecker_truncations_total"), 0.0);
    for counter in ["woodpecker_appends_total", "woodpecker_acks_total"] {
        assert!(
            stderr.contains(&format!("# TYPE {counter} counter")),
            "{counter} is a counter: {stderr}"
        );
    }
    assert!(stderr.contains("# TYPE woodpecker_upload_duration_seconds histogram"));
}

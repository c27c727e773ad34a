//! `bench write --report FILE.html` against the real MinIO, opened in
//! headless Chromium (installed by scripts/install-deps.sh): the report's
//! charts must lay out with visible marks.

use std::process::Command;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_html_report_renders_its_charts_in_a_browser() {
    assert!(
        std::env::var("WOODPECKER_S3_ENDPOINT").is_ok(),
        "WOODPECKER_S3_ENDPOINT is not set: source the environment scripts/servers.sh prints"
    );
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let output = Command::new(env!("CARGO_BIN_EXE_woodpecker"))
        .args([
            "bench",
            "write",
            "--store",
            "s3",
            "--duration-s",
            "2",
            "--rounds",
            "2",
        ])
        .args(["--window", "64", "--report", report.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .output()
        .expect("running woodpecker");
    assert!(output.status.success(), "{}", text(&output.stderr));
    let html = std::fs::read_to_string(&report).unwrap();
    for expected in [
        "engine ack",
        "raw PUT",
        "Throughput",
        "Where the ack latency goes",
        "entry_bytes",
    ] {
        assert!(html.contains(expected), "no {expected:?} in the report");
    }
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "the report fetches nothing"
    );

    let dom = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .arg("--user-data-dir=".to_string() + dir.path().join("profile").to_str().unwrap())
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("file://{}", report.display()))
        .output()
        .expect("running chromium (scripts/install-deps.sh installs it)");
    let dom_text = text(&dom.stdout);
    assert!(
        dom_text.contains("data-rendered-charts=\"3\""),
        "the three charts did not render with visible marks:\n{}\n{}",
        dom_text.chars().take(400).collect::<String>(),
        text(&dom.stderr)
    );
}

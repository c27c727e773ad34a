//! The binary's logs: levels and formats from the command line, the
//! engine's events in them, and never a secret, even at trace level.

mod common;

use common::{tiny_write, woodpecker};
use std::process::Output;

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn json_logs_carry_the_engine_events() {
    let mut args = vec!["--log-level", "info", "--log-format", "json"];
    args.extend(tiny_write("local"));
    let output = woodpecker(&args, &[]);
    assert!(output.status.success(), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(
        events.iter().any(|e| e["level"] == "INFO"
            && e["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("writer opened"))),
        "no writer-opened event in {stderr}"
    );
}

#[test]
fn a_bad_log_filter_is_refused_with_its_source() {
    let output = woodpecker(&tiny_write("local"), &[("RUST_LOG", "info,=x=")]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("from RUST_LOG"), "{}", text(&output));
    let mut args = vec!["--log-level", "foo=bar=baz"];
    args.extend(tiny_write("local"));
    let output = woodpecker(&args, &[("RUST_LOG", "info")]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(
        text(&output).contains("from --log-level"),
        "{}",
        text(&output)
    );
}

/// Runs a short S3 benchmark at trace level with the secret key given;
/// everything it printed.
fn traced_s3_run(secret: &str) -> (bool, String) {
    let mut args = vec!["--log-level", "trace"];
    args.extend(tiny_write("s3"));
    let output = woodpecker(&args, &[("WOODPECKER_S3_SECRET_KEY", secret)]);
    (output.status.success(), text(&output))
}

#[test]
fn no_secret_reaches_the_logs_even_at_trace_level() {
    let secret = std::env::var("WOODPECKER_S3_SECRET_KEY")
        .expect("the test servers' environment (scripts/servers.sh) is set");
    let (ok, printed) = traced_s3_run(&secret);
    assert!(ok, "the traced run failed: {printed}");
    assert!(
        printed.contains("TRACE"),
        "the run logged nothing at trace level"
    );
    assert!(
        !printed.contains(&secret),
        "the S3 secret key appears in the output"
    );
    // A wrong secret fails the run; the error must not show it either.
    let wrong = "wrong-secret-0c4f9e2d7a";
    let (ok, printed) = traced_s3_run(wrong);
    assert!(!ok, "a run with a wrong secret key succeeded");
    assert!(
        !printed.contains(wrong),
        "the wrong S3 secret key appears in the output"
    );
}

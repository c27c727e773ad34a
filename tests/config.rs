//! `woodpecker config show|check`, `--config` on every command, and a
//! Woodpecker-format file driving a benchmark against the real MinIO.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `woodpecker` binary with no `WOODPECKER_*` or `RUST_LOG` variable
/// but `env`, so the file under test is what configures it.
fn woodpecker(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_woodpecker"));
    command.args(args).env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("WOODPECKER_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command.output().expect("running woodpecker")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning/tests/data/woodpecker.yaml")
}

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("woodpecker.yaml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn config_check_accepts_a_woodpecker_yaml_with_warnings_and_refuses_mistakes() {
    let path = fixture().display().to_string();
    let output = woodpecker(&["config", "check", &path], &[]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(stdout.contains("warning: "), "{stdout}");
    assert!(stdout.contains("minio.createBucket is ignored"), "{stdout}");
    assert!(stdout.trim_end().ends_with(": ok"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        &dir,
        "woodpecker:\n  logstore:\n    logFileSyncPolicy:\n      maxFlushSise: 2MiB\n      maxInterval: 8MiB\n",
    );
    let output = woodpecker(&["config", "check", &bad], &[]);
    let stderr = text(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(":4: unknown key woodpecker.logstore.logFileSyncPolicy.maxFlushSise; did you mean woodpecker.logstore.logFileSyncPolicy.maxFlushSize?"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            ":5: woodpecker.logstore.logFileSyncPolicy.maxInterval: \"8MiB\" is not a duration"
        ),
        "{stderr}"
    );

    // Values that parse but are out of range fail the check too.
    let small = write(&dir, "engine:\n  fragment_bytes_max: 1KiB\n");
    let output = woodpecker(&["config", "check", &small], &[]);
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("fragment_bytes_max"));
}

#[test]
fn config_show_gives_each_value_and_its_origin_with_secrets_masked() {
    let path = fixture().display().to_string();
    let output = woodpecker(
        &["config", "show", "--config", &path],
        &[
            ("WOODPECKER_STORE_S3_BUCKET", "from-env"),
            ("WOODPECKER_SERVE_TOKENS", "tok-one-81f,tok-two-0c2"),
        ],
    );
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", text(&output.stderr));
    assert!(!stdout.contains("minio-secret-for-tests"), "{stdout}");
    assert!(
        !stdout.contains("tok-one") && !stdout.contains("tok-two"),
        "{stdout}"
    );
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key}:\n{stdout}"))
    };
    assert!(line("store.s3.secret_key").contains("********"));
    assert!(line("serve.tokens").contains("******** (2 values)"));
    assert!(line("store.s3.bucket").contains("environment WOODPECKER_STORE_S3_BUCKET"));
    assert!(line("engine.fragment_bytes_max").contains("2097152"));
    assert!(line("engine.fragment_bytes_max")
        .contains("(woodpecker.logstore.logFileSyncPolicy.maxFlushSize)"));

    // WOODPECKER_CONFIG names the file as --config does.
    let output = woodpecker(&["config", "show"], &[("WOODPECKER_CONFIG", &path)]);
    assert!(text(&output.stdout).contains("(minio.bucketName)"));
}

#[test]
fn flags_override_the_environment_which_overrides_the_file_in_a_benchmark() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        "engine:\n  fragment_bytes_max: 4MiB\n  flush_interval_ms: 20\n  uploads_in_flight_max: 3\nstore:\n  kind: local\n",
    );
    let output = woodpecker(
        &[
            "bench",
            "write",
            "--config",
            &path,
            "--store",
            "memory",
            "--fragment-bytes",
            "1MiB",
            "--duration-s",
            "1",
            "--rounds",
            "1",
            "--window",
            "8",
            "--json",
        ],
        &[("WOODPECKER_ENGINE_FLUSH_INTERVAL_MS", "7")],
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["store"], "memory", "flag over file");
    assert_eq!(report["fragment_bytes_max"], 1 << 20, "flag over file");
    assert_eq!(report["flush_interval_ms"], 7, "environment over file");
    assert_eq!(report["uploads_in_flight_max"], 3, "file over default");
    assert!(report["entries"].as_u64().unwrap() > 0);
}

#[test]
fn a_woodpecker_yaml_drives_a_benchmark_against_minio() {
    let endpoint = std::env::var("WOODPECKER_S3_ENDPOINT").expect(
        "WOODPECKER_S3_ENDPOINT is not set: start the servers with scripts/servers.sh start \
         and source the environment it prints (scripts/test.sh does both)",
    );
    let var = |name: &str| std::env::var(name).unwrap();
    let url = url_parts(&endpoint);
    let secret = var("WOODPECKER_S3_SECRET_KEY");
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir,
        &format!(
            "woodpecker:\n  storage:\n    type: minio\n  logstore:\n    logFileSyncPolicy:\n      maxFlushSize: 1MiB\n      maxFlushThreads: 4\n      maxInterval: 5\nminio:\n  address: {}\n  port: {}\n  accessKeyID: {}\n  secretAccessKey: {secret}\n  bucketName: {}\n  rootPath: config-test\n  createBucket: false\n",
            url.0,
            url.1,
            var("WOODPECKER_S3_ACCESS_KEY"),
            var("WOODPECKER_S3_BUCKET"),
        ),
    );
    let output = woodpecker(
        &[
            "--log-level",
            "trace",
            "bench",
            "write",
            "--config",
            &path,
            "--duration-s",
            "1",
            "--rounds",
            "1",
            "--window",
            "64",
            "--no-raw",
            "--json",
        ],
        &[],
    );
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["store"], "s3");
    assert_eq!(report["fragment_bytes_max"], 1 << 20);
    assert_eq!(report["uploads_in_flight_max"], 4);
    assert_eq!(report["flush_interval_ms"], 5);
    assert!(report["entries"].as_u64().unwrap() > 0);
    assert_eq!(report["errors"], 0);
    assert!(stderr.contains("minio.createBucket is ignored"), "{stderr}");
    assert!(!stderr.contains(&secret), "the secret key was logged");
    assert!(!text(&output.stdout).contains(&secret));
}

/// Host and port of an `http://host:port` endpoint.
fn url_parts(endpoint: &str) -> (String, u16) {
    let rest = endpoint
        .strip_prefix("http://")
        .expect("the test MinIO speaks plain HTTP");
    let (host, port) = rest.trim_end_matches('/').rsplit_once(':').unwrap();
    (host.to_string(), port.parse().unwrap())
}

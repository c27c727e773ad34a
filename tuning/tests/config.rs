//! The configuration file, environment and flags, layered.

use std::path::{Path, PathBuf};
use woodpecker_shards::FlushPolicy;
use woodpecker_tuning::{load_with, ConfigError, Flag, MetaKind, Origin, StoreKind};

fn woodpecker_yaml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/woodpecker.yaml")
}

fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn problems(text: &str) -> String {
    let (_dir, path) = write(text);
    match load_with(Some(&path), &[], &[]) {
        Err(ConfigError::File(problems)) => problems.join("\n"),
        Err(other) => other.to_string(),
        Ok(_) => panic!("{text:?} was accepted"),
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_woodpecker_yaml_maps_to_this_projects_settings() {
    let path = woodpecker_yaml();
    let loaded = load_with(Some(&path), &[], &[]).unwrap();
    let s = &loaded.settings;
    assert_eq!(s.engine.ring_requests_max, 10_000);
    assert_eq!(s.engine.segment_bytes_max, 256_000_000);
    assert_eq!(s.engine.segment_age_max_ms, 600_000, "seconds");
    assert_eq!(s.engine.audit_interval_ms, 10_000, "seconds");
    assert_eq!(s.engine.flush_interval_ms, 200, "milliseconds");
    assert_eq!(s.engine.fragment_entries_max, 10_000);
    assert_eq!(s.engine.shard_buffer_bytes_max, 256_000_000);
    assert_eq!(s.engine.upload_retries_max, 5);
    assert_eq!(s.engine.upload_backoff_max_ms, 1_000);
    assert_eq!(s.engine.fragment_bytes_max, 2 << 20);
    assert_eq!(s.engine.uploads_in_flight_max, 32);
    assert_eq!(s.engine.retention_ms, 259_200_000);
    assert_eq!(s.engine.key_prefix, "files");
    assert_eq!(s.store.kind, StoreKind::S3);
    assert_eq!(s.store.local_dir, PathBuf::from("/var/lib/woodpecker"));
    assert_eq!(s.store.s3.endpoint, "http://localhost:9000");
    assert_eq!(s.store.s3.bucket, "a-bucket");
    assert_eq!(s.store.s3.access_key, "minioadmin");
    assert_eq!(s.store.s3.secret_key, "minio-secret-for-tests");
    assert_eq!(
        s.store.s3.region, "us-east-1",
        "an empty value keeps the default"
    );
    assert_eq!(s.store.s3.request_timeout_ms, 10_000);
    assert_eq!(s.meta.kind, MetaKind::Etcd);
    assert_eq!(s.meta.etcd.endpoints, vec!["localhost:2379".to_string()]);
    assert_eq!(s.meta.etcd.prefix, "/by-dev/woodpecker");
    assert_eq!(s.meta.etcd.request_timeout_ms, 10_000);
    s.validate().unwrap();

    match loaded.origin("engine.fragment_bytes_max") {
        Origin::File { line, key, .. } => {
            assert_eq!(key, "woodpecker.logstore.logFileSyncPolicy.maxFlushSize");
            assert_eq!(*line, 30);
        }
        other => panic!("origin {other}"),
    }
    assert_eq!(*loaded.origin("engine.log_buffers_max"), Origin::Default);

    let warnings = loaded.warnings.join("\n");
    for ignored in [
        "woodpecker.client.segmentAppend.maxRetries",
        "woodpecker.client.segmentRollingPolicy.maxBlocks",
        "woodpecker.client.sessionMonitor",
        "woodpecker.client.quorum",
        "woodpecker.logstore.grpc",
        "minio.createBucket",
        "minio.useIAM",
        "etcd.ssl",
        ":39: log is ignored",
    ] {
        assert!(
            warnings.contains(ignored),
            "no warning for {ignored}:\n{warnings}"
        );
    }
    assert!(!warnings.contains("minio-secret-for-tests"));
}

#[test]
fn an_unknown_or_misspelt_key_is_an_error_naming_its_line_and_the_nearest_key() {
    let text = "woodpecker:\n  client:\n    segmentRollingPolicy:\n      maxSise: 1000\nengine:\n  flush_intervall_ms: 5\nfoo: 1\n";
    let found = problems(text);
    assert!(
        found.contains(":4: unknown key woodpecker.client.segmentRollingPolicy.maxSise; did you mean woodpecker.client.segmentRollingPolicy.maxSize?"),
        "{found}"
    );
    assert!(
        found.contains(
            ":6: unknown key engine.flush_intervall_ms; did you mean engine.flush_interval_ms?"
        ),
        "{found}"
    );
    assert!(found.contains(":7: unknown key foo"), "{found}");
}

#[test]
fn values_carry_their_units_and_wrong_units_are_errors() {
    let (_dir, path) = write(
        "engine:\n  fragment_bytes_max: 4MiB\n  flush_interval_ms: 2s\n  segment_bytes_max: 1GB\n",
    );
    let loaded = load_with(Some(&path), &[], &[]).unwrap();
    assert_eq!(loaded.settings.engine.fragment_bytes_max, 4 << 20);
    assert_eq!(loaded.settings.engine.flush_interval_ms, 2_000);
    assert_eq!(loaded.settings.engine.segment_bytes_max, 1_000_000_000);

    let found = problems("engine:\n  fragment_bytes_max: 10ms\n  flush_interval_ms: 8MiB\n  shards: 2s\n  segment_bytes_max: 8M\n");
    assert!(
        found.contains(":2: engine.fragment_bytes_max: \"10ms\" is not a size"),
        "{found}"
    );
    assert!(
        found.contains(":3: engine.flush_interval_ms: \"8MiB\" is not a duration"),
        "{found}"
    );
    assert!(
        found.contains(":4: engine.shards: \"2s\" is not a whole number"),
        "{found}"
    );
    assert!(found.contains(":5: engine.segment_bytes_max"), "{found}");
}

#[test]
fn a_setting_given_twice_and_an_unsupported_value_are_errors() {
    let found = problems(
        "engine:\n  flush_interval_ms: 5\nwoodpecker:\n  logstore:\n    logFileSyncPolicy:\n      maxInterval: 7\n  storage:\n    type: service\n",
    );
    assert!(
        found.contains(":6: woodpecker.logstore.logFileSyncPolicy.maxInterval sets engine.flush_interval_ms again (already set by engine.flush_interval_ms on line 2)"),
        "{found}"
    );
    assert!(
        found.contains(":8: woodpecker.storage.type: \"service\""),
        "{found}"
    );

    let (_dir, path) = write("engine:\n  flush_policy: sometimes\n");
    let err = load_with(Some(&path), &[], &[]).unwrap_err().to_string();
    assert!(err.contains("engine.flush_policy"), "{err}");
    assert!(err.contains("config.yaml:2"), "{err}");
    assert!(err.contains("sometimes"), "{err}");
}

#[test]
fn flags_override_the_environment_which_overrides_the_file() {
    let (_dir, path) = write("engine:\n  flush_interval_ms: 20\n  shards: 2\n");
    let key = "engine.flush_interval_ms";
    let flag = [Flag {
        key,
        name: "flush-interval-ms",
        value: "40ms".to_string(),
    }];
    let long = env(&[("WOODPECKER_ENGINE_FLUSH_INTERVAL_MS", "30")]);

    let loaded = load_with(None, &[], &[]).unwrap();
    assert_eq!(loaded.settings.engine.flush_interval_ms, 10);
    assert_eq!(*loaded.origin(key), Origin::Default);

    let loaded = load_with(Some(&path), &[], &[]).unwrap();
    assert_eq!(loaded.settings.engine.flush_interval_ms, 20);
    assert!(matches!(loaded.origin(key), Origin::File { line: 2, .. }));

    let loaded = load_with(Some(&path), &long, &[]).unwrap();
    assert_eq!(loaded.settings.engine.flush_interval_ms, 30);
    assert_eq!(
        *loaded.origin(key),
        Origin::Env("WOODPECKER_ENGINE_FLUSH_INTERVAL_MS".into())
    );
    assert_eq!(
        loaded.settings.engine.shards, 2,
        "the file's other keys stay"
    );

    let loaded = load_with(Some(&path), &long, &flag).unwrap();
    assert_eq!(loaded.settings.engine.flush_interval_ms, 40);
    assert_eq!(
        *loaded.origin(key),
        Origin::Flag("flush-interval-ms".into())
    );

    // The short name of before still works; the long name wins over it.
    let both = env(&[
        ("WOODPECKER_SHARDS", "3"),
        ("WOODPECKER_S3_BUCKET", "short"),
        ("WOODPECKER_STORE_S3_BUCKET", "long"),
    ]);
    let loaded = load_with(Some(&path), &both, &[]).unwrap();
    assert_eq!(loaded.settings.engine.shards, 3);
    assert_eq!(loaded.settings.store.s3.bucket, "long");
}

#[test]
fn environment_mistakes_are_named() {
    let loaded = load_with(
        None,
        &env(&[("WOODPECKER_ENGINE_FLUSH_INTERVL_MS", "5")]),
        &[],
    )
    .unwrap();
    let warnings = loaded.warnings.join("\n");
    assert!(
        warnings.contains("WOODPECKER_ENGINE_FLUSH_INTERVL_MS is not a setting; did you mean WOODPECKER_ENGINE_FLUSH_INTERVAL_MS?"),
        "{warnings}"
    );
    let err = load_with(None, &env(&[("WOODPECKER_SHARDS", "two")]), &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("WOODPECKER_SHARDS: \"two\" is not a whole number"),
        "{err}"
    );
    let bad_flag = [Flag {
        key: "engine.fragment_bytes_max",
        name: "fragment-bytes",
        value: "lots".into(),
    }];
    let err = load_with(None, &[], &bad_flag).unwrap_err().to_string();
    assert!(
        err.contains("--fragment-bytes: \"lots\" is not a size"),
        "{err}"
    );
}

#[test]
fn show_lists_every_setting_with_its_origin_and_masks_secrets() {
    let path = woodpecker_yaml();
    let loaded = load_with(
        Some(&path),
        &env(&[("WOODPECKER_S3_BUCKET", "from-env")]),
        &[],
    )
    .unwrap();
    let shown = loaded.show();
    assert!(!shown.contains("minio-secret-for-tests"), "{shown}");
    let line = |key: &str| {
        shown
            .lines()
            .find(|l| l.starts_with(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} in\n{shown}"))
            .to_string()
    };
    assert!(line("store.s3.secret_key").contains("********"));
    assert!(line("store.s3.bucket").contains("from-env"));
    assert!(line("store.s3.bucket").contains("# environment WOODPECKER_S3_BUCKET"));
    assert!(line("store.s3.endpoint").contains("woodpecker.yaml:49 (minio.address)"));
    assert!(line("engine.log_buffers_max").contains("# default"));
    assert_eq!(
        shown.lines().count(),
        woodpecker_tuning::keys::native_keys().len()
    );
    assert_eq!(loaded.settings.engine.flush_policy, FlushPolicy::Adaptive);
}

//! Woodpecker's own `woodpecker.yaml` keys, mapped to this project's
//! settings (docs/CONFIG.md has the same table in prose). A bare number
//! takes the unit Woodpecker documents for that key (seconds for the
//! rolling, auditor and retention intervals, milliseconds for the sync
//! policy, bytes for sizes); a suffix (`10ms`, `8MiB`) overrides it. Keys
//! Woodpecker knows that mean nothing here are accepted with a warning.

use crate::units::BareDuration;

/// What one Woodpecker key does here.
#[derive(Clone, Copy, Debug)]
pub enum Rule {
    /// Sets a setting; a bare duration is in `bare`.
    Sets {
        native: &'static str,
        bare: BareDuration,
    },
    /// Sets a setting through a translation of its text.
    Translates {
        native: &'static str,
        translate: fn(&str) -> Result<String, String>,
    },
    /// Part of `store.s3.endpoint`: `minio.address`, `minio.port`, `minio.useSSL`.
    S3Endpoint,
    /// Part of `meta.etcd.prefix`: `etcd.rootPath`, `woodpecker.meta.prefix`.
    EtcdPrefix,
    /// Known to Woodpecker, no meaning here; the text says why.
    Ignored(&'static str),
}

const MS: BareDuration = BareDuration::Millis;
const SECONDS: BareDuration = BareDuration::Seconds;

const fn sets(native: &'static str) -> Rule {
    Rule::Sets { native, bare: MS }
}

const fn sets_seconds(native: &'static str) -> Rule {
    Rule::Sets {
        native,
        bare: SECONDS,
    }
}

const NO_SERVER: &str = "this project has no LogStore server or quorum";

/// Every leaf key this project reads from a Woodpecker file.
pub const KEYS: &[(&str, Rule)] = &[
    (
        "woodpecker.meta.type",
        Rule::Translates {
            native: "meta.kind",
            translate: meta_type,
        },
    ),
    ("woodpecker.meta.prefix", Rule::EtcdPrefix),
    (
        "woodpecker.client.segmentAppend.queueSize",
        sets("engine.ring_requests_max"),
    ),
    (
        "woodpecker.client.segmentAppend.maxRetries",
        Rule::Ignored("a writer does not retry appends; a fragment's upload retries are engine.upload_retries_max (woodpecker.logstore.*SyncPolicy.maxFlushRetries)"),
    ),
    (
        "woodpecker.client.segmentAppend.maxBatchEntries",
        Rule::Ignored("appends gather into fragments by engine.flush_policy"),
    ),
    (
        "woodpecker.client.segmentAppend.maxBatchBytes",
        Rule::Ignored("appends gather into fragments by engine.flush_policy"),
    ),
    (
        "woodpecker.client.segmentRollingPolicy.maxSize",
        sets("engine.segment_bytes_max"),
    ),
    (
        "woodpecker.client.segmentRollingPolicy.maxInterval",
        sets_seconds("engine.segment_age_max_ms"),
    ),
    (
        "woodpecker.client.segmentRollingPolicy.maxBlocks",
        Rule::Ignored("segments roll by size and age only"),
    ),
    (
        "woodpecker.client.auditor.maxInterval",
        sets_seconds("engine.audit_interval_ms"),
    ),
    (
        "woodpecker.logstore.retentionPolicy.ttl",
        sets_seconds("engine.retention_ms"),
    ),
    (
        "woodpecker.storage.type",
        Rule::Translates {
            native: "store.kind",
            translate: storage_type,
        },
    ),
    ("woodpecker.storage.rootPath", sets("store.local_dir")),
    ("etcd.endpoints", sets("meta.etcd.endpoints")),
    ("etcd.rootPath", Rule::EtcdPrefix),
    ("etcd.requestTimeout", sets("meta.etcd.request_timeout_ms")),
    ("minio.address", Rule::S3Endpoint),
    ("minio.port", Rule::S3Endpoint),
    ("minio.useSSL", Rule::S3Endpoint),
    ("minio.accessKeyID", sets("store.s3.access_key")),
    ("minio.secretAccessKey", sets("store.s3.secret_key")),
    ("minio.bucketName", sets("store.s3.bucket")),
    (
        "minio.createBucket",
        Rule::Ignored("the bucket must exist already: woodpecker never creates one"),
    ),
    (
        "minio.rootPath",
        Rule::Translates {
            native: "engine.key_prefix",
            translate: root_path,
        },
    ),
    ("minio.region", sets("store.s3.region")),
    ("minio.useVirtualHost", sets("store.s3.virtual_hosted")),
    ("minio.requestTimeoutMs", sets("store.s3.request_timeout_ms")),
    ("minio.ssl.tlsCACert", sets("store.s3.ca_cert_path")),
    (
        "minio.useIAM",
        Rule::Ignored("IAM roles are not supported: set accessKeyID and secretAccessKey"),
    ),
    (
        "minio.cloudProvider",
        Rule::Ignored("every store is spoken to as S3 with SigV4"),
    ),
    (
        "minio.gcpCredentialJSON",
        Rule::Ignored("every store is spoken to as S3 with SigV4"),
    ),
    (
        "minio.iamEndpoint",
        Rule::Ignored("IAM roles are not supported"),
    ),
    ("minio.logLevel", Rule::Ignored("logs: --log-level or RUST_LOG")),
    (
        "minio.listObjectsMaxKeys",
        Rule::Ignored("listings use the store's page size"),
    ),
];

/// The sync policy's keys, under both names Woodpecker has used for it.
pub const SYNC_POLICIES: &[&str] = &[
    "woodpecker.logstore.logFileSyncPolicy",
    "woodpecker.logstore.segmentSyncPolicy",
];

pub const SYNC_POLICY_KEYS: &[(&str, Rule)] = &[
    ("maxInterval", sets("engine.flush_interval_ms")),
    (
        "maxIntervalForLocalStorage",
        Rule::Ignored("one flush interval for every store: engine.flush_interval_ms"),
    ),
    (
        "maxIntervalForService",
        Rule::Ignored("one flush interval for every store: engine.flush_interval_ms"),
    ),
    ("maxEntries", sets("engine.fragment_entries_max")),
    ("maxBytes", sets("engine.shard_buffer_bytes_max")),
    ("maxFlushRetries", sets("engine.upload_retries_max")),
    ("retryInterval", sets("engine.upload_backoff_max_ms")),
    ("maxFlushSize", sets("engine.fragment_bytes_max")),
    ("maxFlushThreads", sets("engine.uploads_in_flight_max")),
];

/// Whole sections Woodpecker knows that mean nothing here.
pub const IGNORED_SECTIONS: &[(&str, &str)] = &[
    ("woodpecker.client.sessionMonitor", NO_SERVER),
    ("woodpecker.client.directRead", NO_SERVER),
    ("woodpecker.client.quorum", NO_SERVER),
    (
        "woodpecker.logstore.segmentCompactionPolicy",
        "fragments are not compacted",
    ),
    (
        "woodpecker.logstore.segmentReadPolicy",
        "readers prefetch engine.reader_prefetch_bytes_max",
    ),
    (
        "woodpecker.logstore.fencePolicy",
        "fencing always uses conditional PUTs (If-None-Match)",
    ),
    ("woodpecker.logstore.grpc", NO_SERVER),
    ("woodpecker.logstore.processorCleanupPolicy", NO_SERVER),
    ("woodpecker.logstore.maintenanceStrategy", NO_SERVER),
    ("woodpecker.logstore.nodeSelectionPolicy", NO_SERVER),
    ("woodpecker.logstore.diskWatermarkPolicy", NO_SERVER),
    ("log", "logs: --log-level or RUST_LOG, and --log-format"),
    ("trace", "trace export is not supported"),
    ("etcd.metaSubPath", "every key lives under meta.etcd.prefix"),
    ("etcd.kvSubPath", "every key lives under meta.etcd.prefix"),
    ("etcd.log", "etcd's own logging is etcd's"),
    ("etcd.ssl", "TLS to etcd is not supported yet"),
    ("etcd.use", "an embedded etcd is not supported"),
    ("etcd.data", "an embedded etcd is not supported"),
    ("etcd.auth", "etcd authentication is not supported yet"),
];

/// The rule for a Woodpecker leaf key, if it is one.
pub fn rule(key: &str) -> Option<Rule> {
    if let Some((_, rule)) = KEYS.iter().find(|(k, _)| *k == key) {
        return Some(*rule);
    }
    let (section, leaf) = key.rsplit_once('.')?;
    if !SYNC_POLICIES.contains(&section) {
        return None;
    }
    SYNC_POLICY_KEYS
        .iter()
        .find(|(k, _)| *k == leaf)
        .map(|(_, rule)| *rule)
}

/// Every Woodpecker key and section this project knows (for "did you mean").
pub fn known_keys() -> Vec<String> {
    let mut keys: Vec<String> = KEYS.iter().map(|(k, _)| k.to_string()).collect();
    for section in SYNC_POLICIES {
        keys.extend(
            SYNC_POLICY_KEYS
                .iter()
                .map(|(k, _)| format!("{section}.{k}")),
        );
    }
    keys.extend(IGNORED_SECTIONS.iter().map(|(k, _)| k.to_string()));
    keys
}

fn meta_type(value: &str) -> Result<String, String> {
    match value {
        "etcd" => Ok("etcd".to_string()),
        other => Err(format!("{other:?}: only etcd is supported")),
    }
}

fn storage_type(value: &str) -> Result<String, String> {
    match value {
        "minio" | "default" => Ok("s3".to_string()),
        "local" => Ok("local".to_string()),
        "service" => Err("\"service\": Woodpecker's LogStore service is not part of this project; use minio (S3) or local".to_string()),
        other => Err(format!("{other:?}: expected minio, default or local")),
    }
}

fn root_path(value: &str) -> Result<String, String> {
    let trimmed = value.trim_matches('/');
    if trimmed.is_empty() {
        return Err("the object key prefix must not be empty".to_string());
    }
    Ok(trimmed.to_string())
}

/// `store.s3.endpoint` from Woodpecker's address, port and useSSL, each
/// with Woodpecker's default (`localhost`, `9000`, `false`) when absent.
pub fn s3_endpoint(
    address: Option<&str>,
    port: Option<&str>,
    use_ssl: Option<&str>,
) -> Result<String, String> {
    let use_ssl = crate::units::parse_bool(use_ssl.unwrap_or("false"))
        .map_err(|e| format!("minio.useSSL: {e}"))?;
    let port: u16 = port
        .unwrap_or("9000")
        .trim()
        .parse()
        .map_err(|_| format!("minio.port {:?} is not a port", port.unwrap_or_default()))?;
    let address = address.unwrap_or("localhost").trim();
    let (scheme, host) = match address.split_once("://") {
        Some((scheme, host)) => (scheme, host),
        None if use_ssl => ("https", address),
        None => ("http", address),
    };
    if host.is_empty() || host.contains('/') {
        return Err(format!("minio.address {address:?} is not a host name"));
    }
    Ok(format!("{scheme}://{host}:{port}"))
}

/// `meta.etcd.prefix` from the parts given: `/rootPath/prefix`.
pub fn etcd_prefix(root_path: Option<&str>, meta_prefix: Option<&str>) -> String {
    let parts: Vec<&str> = [root_path, meta_prefix]
        .into_iter()
        .flatten()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .collect();
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys() {
        assert_eq!(
            s3_endpoint(Some("10.0.0.5"), Some("9001"), None).unwrap(),
            "http://10.0.0.5:9001"
        );
        assert_eq!(
            s3_endpoint(None, None, Some("true")).unwrap(),
            "https://localhost:9000"
        );
        assert!(s3_endpoint(None, Some("x"), None).is_err());
        assert_eq!(
            etcd_prefix(Some("by-dev"), Some("woodpecker")),
            "/by-dev/woodpecker"
        );
        assert_eq!(etcd_prefix(None, Some("/wp/")), "/wp");
    }

    #[test]
    fn both_sync_policy_names_are_read() {
        assert!(rule("woodpecker.logstore.logFileSyncPolicy.maxFlushSize").is_some());
        assert!(rule("woodpecker.logstore.segmentSyncPolicy.maxFlushSize").is_some());
        assert!(rule("woodpecker.logstore.otherPolicy.maxFlushSize").is_none());
        assert!(storage_type("service").is_err());
    }
}

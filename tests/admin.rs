//! The admin commands against the real MinIO and etcd: `log ...`, `fsck`
//! (a clean check, a damaged one, and its repair) and `inspect`.

use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};
use woodpecker_engine::store::StoreFactory;

/// The binary on the test servers, under prefixes of its own (etcd and
/// the bucket), so a check of every log sees only this test's logs.
struct Admin {
    prefix: String,
}

impl Admin {
    fn new(name: &str) -> Admin {
        assert!(
            std::env::var("WOODPECKER_S3_ENDPOINT").is_ok(),
            "WOODPECKER_S3_ENDPOINT is not set: start the servers with scripts/servers.sh start \
             and source the environment it prints (scripts/test.sh does both)"
        );
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Admin {
            prefix: format!("admin-{name}-{nanos}"),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_woodpecker"))
            .args(args)
            .env_remove("RUST_LOG")
            .env("WOODPECKER_STORE", "s3")
            .env("WOODPECKER_META", "etcd")
            .env("WOODPECKER_ENGINE_KEY_PREFIX", &self.prefix)
            .env("WOODPECKER_META_ETCD_PREFIX", format!("/{}", self.prefix))
            .output()
            .expect("running woodpecker")
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "woodpecker {args:?} failed:\n{}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A library client on the same servers and prefixes as the binary.
fn client(admin: &Admin) -> (woodpecker_shards::Client, StoreFactory) {
    use std::sync::Arc;
    use woodpecker_engine::meta::etcd::EtcdMeta;
    let mut settings = woodpecker_tuning::load(None, &[]).unwrap().settings;
    settings.store.kind = woodpecker_tuning::StoreKind::S3;
    settings.engine.key_prefix = admin.prefix.clone();
    settings.engine.flush_interval_ms = 1;
    settings.meta.etcd.prefix = format!("/{}", admin.prefix);
    let meta = Arc::new(EtcdMeta::connect(&settings.meta.etcd).unwrap());
    let store = StoreFactory::new(settings.store_config(None).unwrap()).unwrap();
    let client = woodpecker_shards::Client::start(settings.engine.clone(), store.clone(), meta);
    (client.unwrap(), store)
}

/// Writes entries `entry-i` with a property `n=i` to `log`, then closes
/// its writer (the admin commands have no append: an application writes).
fn append(admin: &Admin, log: &str, count: u64) {
    let (client, _) = client(admin);
    woodpecker_shards::block_on(async {
        let writer = client.open_writer(log).await.unwrap();
        for i in 0..count {
            let props = vec![(bytes::Bytes::from("n"), bytes::Bytes::from(i.to_string()))];
            writer
                .append_with(format!("entry-{i}"), props)
                .await
                .unwrap();
        }
        writer.close().await.unwrap();
    });
    client.shutdown();
}

/// Puts raw bytes at `key` in the test bucket (damage for fsck to find).
fn put_object(admin: &Admin, key: &str, bytes: &'static [u8]) {
    let (client, factory) = client(admin);
    let key = key.to_string();
    woodpecker_shards::block_on(client.run_on_shard(0, move || async move {
        let store = factory.open().unwrap();
        store.put(&key, bytes::Bytes::from_static(bytes)).await
    }))
    .unwrap()
    .unwrap();
    client.shutdown();
}

#[test]
fn log_commands_manage_logs_and_print_their_entries() {
    let admin = Admin::new("log");
    assert!(admin
        .ok(&["log", "create", "orders"])
        .contains("created log orders"));
    admin.ok(&["log", "create", "other"]);
    let again = admin.run(&["log", "create", "orders"]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("orders"),
        "{}",
        text(&again.stderr)
    );

    let list = admin.ok(&["log", "list", "--prefix", "ord"]);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with("orders\t"), "{list}");
    let all = admin.ok(&["log", "list", "--json"]);
    assert_eq!(all.lines().count(), 2, "{all}");

    append(&admin, "orders", 10);
    let info: serde_json::Value =
        serde_json::from_str(&admin.ok(&["log", "info", "orders", "--json"])).unwrap();
    assert_eq!(info["end_offset"], 10, "{info}");
    assert_eq!(info["segments"].as_array().unwrap().len(), 1, "{info}");

    let dump = admin.ok(&["log", "dump", "orders", "--from", "3", "--count", "2"]);
    assert_eq!(dump, "3\tentry-3\tn=3\n4\tentry-4\tn=4\n");
    let dump = admin.ok(&["log", "dump", "orders", "--format", "json"]);
    let lines: Vec<serde_json::Value> = dump
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 10, "dump stops at the durable end");
    assert_eq!(lines[9]["payload"], "entry-9");
    assert_eq!(lines[9]["properties"]["n"], "9");
    let hex = admin.ok(&["log", "dump", "orders", "--count", "1", "--format", "hex"]);
    assert_eq!(hex, "0\t656e7472792d30\t6e=30\n");
    let tail = admin.ok(&["log", "tail", "orders", "--from", "8", "--count", "2"]);
    assert_eq!(tail, "8\tentry-8\tn=8\n9\tentry-9\tn=9\n");

    admin.ok(&["log", "truncate", "orders", "5"]);
    let info: serde_json::Value =
        serde_json::from_str(&admin.ok(&["log", "info", "orders", "--json"])).unwrap();
    assert_eq!(info["log"]["truncated_below"], 5, "{info}");
    let dump = admin.ok(&["log", "dump", "orders", "--count", "1"]);
    assert_eq!(
        dump, "5\tentry-5\tn=5\n",
        "dump starts at the truncation point"
    );

    admin.ok(&["log", "delete", "other"]);
    let list = admin.ok(&["log", "list"]);
    assert!(!list.contains("other"), "{list}");
    let missing = admin.run(&["log", "info", "other"]);
    assert!(!missing.status.success());
}

#[test]
fn fsck_passes_a_sound_log_finds_damage_and_repairs_what_is_safe() {
    let admin = Admin::new("fsck");
    admin.ok(&["log", "create", "sound"]);
    append(&admin, "sound", 20);
    let clean = admin.ok(&["fsck"]);
    assert!(clean.contains("0 problems"), "{clean}");
    assert!(clean.contains("20 entries"), "{clean}");

    // A stray object past the seal: a problem, and safe to delete.
    let info: serde_json::Value =
        serde_json::from_str(&admin.ok(&["log", "info", "sound", "--json"])).unwrap();
    let log_id = info["log"]["id"].as_u64().unwrap();
    let stray = format!("{}/{log_id:020}/{:020}/{:020}.frag", admin.prefix, 0, 999);
    let fragment = format!("{}/{log_id:020}/{:020}/{:020}.frag", admin.prefix, 0, 0);
    let inspected = admin.ok(&["inspect", &fragment, "--entries", "2"]);
    assert!(
        inspected.contains(&format!("log id          {log_id}")),
        "{inspected}"
    );
    assert!(inspected.contains("checksums: ok"), "{inspected}");
    assert!(inspected.contains("0\tentry-0\tn=0"), "{inspected}");
    put_object(&admin, &stray, b"not a fragment at all");

    let damaged = admin.run(&["fsck", "sound"]);
    let report = text(&damaged.stdout);
    assert!(!damaged.status.success(), "{report}");
    assert!(report.contains("1 problems"), "{report}");
    assert!(report.contains("delete 1 objects"), "{report}");
    let bad = admin.run(&["inspect", &stray]);
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("not a sound fragment"));

    let dry = admin.run(&["fsck", "--repair", "--dry-run", "--json"]);
    assert!(!dry.status.success(), "a dry run changes nothing");
    let dry: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(dry["problems"], 1, "{dry}");

    let repaired = admin.ok(&["fsck", "--repair"]);
    assert!(repaired.contains("repaired: 1"), "{repaired}");
    assert!(repaired.trim_end().ends_with("0 problems"), "{repaired}");
    admin.ok(&["fsck"]);
    let dump = admin.ok(&["log", "dump", "sound", "--from", "19"]);
    assert_eq!(dump, "19\tentry-19\tn=19\n", "the repair kept the data");
}

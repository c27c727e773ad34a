//! The object-store contract, run against every implementation: in memory,
//! local files (DmaFile), and the real MinIO over HTTP and HTTPS; plus the
//! races, multipart uploads and paginated listings S3 must get right.

mod common;

use bytes::Bytes;
use common::{bytes, run_local, unique};
use futures::stream::{self, StreamExt};
use woodpecker_engine::store::local::LocalStore;
use woodpecker_engine::store::memory::MemoryStore;
use woodpecker_engine::store::s3::S3Store;
use woodpecker_engine::store::{
    list_all, put_multipart, put_multipart_if_absent, ObjectStore, StoreError,
};

async fn contract<S: ObjectStore + ?Sized>(store: &S, prefix: &str) {
    let key = format!("{prefix}/a/object-1");
    let data = Bytes::from(bytes(1, 100_000));

    // put, get, head, overwrite
    assert!(matches!(
        store.get(&key).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.head(&key).await,
        Err(StoreError::NotFound(_))
    ));
    store.put(&key, data.clone()).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), data);
    assert_eq!(store.head(&key).await.unwrap().size, 100_000);
    store.put(&key, Bytes::from_static(b"v2")).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), Bytes::from_static(b"v2"));

    // empty objects
    let empty = format!("{prefix}/a/empty");
    store.put(&empty, Bytes::new()).await.unwrap();
    assert_eq!(store.get(&empty).await.unwrap().len(), 0);

    // put-if-absent
    let once = format!("{prefix}/b/once");
    store
        .put_if_absent(&once, Bytes::from_static(b"first"))
        .await
        .unwrap();
    let again = store
        .put_if_absent(&once, Bytes::from_static(b"second"))
        .await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists(_))),
        "{again:?}"
    );
    assert_eq!(
        store.get(&once).await.unwrap(),
        Bytes::from_static(b"first")
    );

    // ranged reads
    store.put(&key, data.clone()).await.unwrap();
    assert_eq!(
        store.get_range(&key, 10..20).await.unwrap(),
        data.slice(10..20)
    );
    assert_eq!(
        store.get_range(&key, 99_999..100_000).await.unwrap(),
        data.slice(99_999..)
    );
    assert!(matches!(
        store.get_range(&key, 99_990..100_010).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.get_range(&key, 5..5).await,
        Err(StoreError::Invalid(_))
    ));

    // listing with pagination
    for i in 0..7 {
        store
            .put(
                &format!("{prefix}/list/k{i:02}"),
                Bytes::from(vec![i as u8; i]),
            )
            .await
            .unwrap();
    }
    let first = store
        .list_page(&format!("{prefix}/list/"), None, 3)
        .await
        .unwrap();
    assert_eq!(first.objects.len(), 3);
    assert_eq!(first.objects[0].key, format!("{prefix}/list/k00"));
    assert!(first.next.is_some());
    let all = list_all(store, &format!("{prefix}/list/")).await.unwrap();
    let keys: Vec<String> = all.iter().map(|o| o.key.clone()).collect();
    let expected: Vec<String> = (0..7).map(|i| format!("{prefix}/list/k{i:02}")).collect();
    assert_eq!(keys, expected);
    assert_eq!(all[5].size, 5);
    assert!(list_all(store, &format!("{prefix}/nothing-here/"))
        .await
        .unwrap()
        .is_empty());

    // delete is idempotent
    store.delete(&key).await.unwrap();
    store.delete(&key).await.unwrap();
    assert!(matches!(
        store.get(&key).await,
        Err(StoreError::NotFound(_))
    ));

    // multipart: parts in parallel, object byte-identical
    let big = Bytes::from(bytes(2, 12 * 1024 * 1024 + 333));
    let multi = format!("{prefix}/multi/object");
    put_multipart(store, &multi, big.clone(), 5 << 20, 3)
        .await
        .unwrap();
    assert_eq!(store.get(&multi).await.unwrap(), big);
    // conditional multipart: refused if the key is taken, the object unchanged
    let taken = format!("{prefix}/multi/taken");
    store
        .put(&taken, Bytes::from_static(b"first"))
        .await
        .unwrap();
    let refused = put_multipart_if_absent(store, &taken, big.clone(), 5 << 20, 3).await;
    assert!(
        matches!(refused, Err(StoreError::AlreadyExists(_))),
        "{refused:?}"
    );
    assert_eq!(
        store.get(&taken).await.unwrap(),
        Bytes::from_static(b"first")
    );
    let fresh = format!("{prefix}/multi/fresh");
    put_multipart_if_absent(store, &fresh, big.clone(), 5 << 20, 3)
        .await
        .unwrap();
    assert_eq!(store.get(&fresh).await.unwrap(), big);
    let aborted = format!("{prefix}/multi/aborted");
    let upload = store.create_multipart(&aborted).await.unwrap();
    store
        .upload_part(&aborted, &upload, 1, big.slice(..5 << 20))
        .await
        .unwrap();
    store.abort_multipart(&aborted, &upload).await.unwrap();
    assert!(matches!(
        store.get(&aborted).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        put_multipart(store, &multi, big.clone(), 1 << 20, 3).await,
        Err(StoreError::Invalid(_))
    ));

    // bad keys are refused before reaching the store
    for bad in ["", "/abs", "a//b", "a/../b", "a/.hidden", "sp ace"] {
        assert!(
            matches!(
                store.put(bad, Bytes::new()).await,
                Err(StoreError::Invalid(_))
            ),
            "{bad}"
        );
    }
}

/// Eight callers race put-if-absent on one key, `rounds` times: exactly
/// one wins each time and its bytes are what is stored.
async fn put_if_absent_race<S: ObjectStore + ?Sized>(store: &S, prefix: &str, rounds: usize) {
    for round in 0..rounds {
        let key = format!("{prefix}/race/{round}");
        let attempts = (0..8u8).map(|writer| {
            let key = key.clone();
            async move {
                let data = Bytes::from(vec![writer; 4096]);
                (writer, store.put_if_absent(&key, data).await)
            }
        });
        let results = futures::future::join_all(attempts).await;
        let winners: Vec<u8> = results
            .iter()
            .filter(|(_, r)| r.is_ok())
            .map(|(w, _)| *w)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for (_, result) in &results {
            if let Err(e) = result {
                assert!(
                    matches!(e, StoreError::AlreadyExists(_)),
                    "round {round}: {e:?}"
                );
            }
        }
        assert_eq!(
            store.get(&key).await.unwrap(),
            Bytes::from(vec![winners[0]; 4096])
        );
    }
}

#[test]
fn memory_store_contract() {
    run_local(|| async {
        let store = MemoryStore::new();
        contract(&store, "mem").await;
        put_if_absent_race(&store, "mem", 20).await;
    });
}

#[test]
fn local_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    run_local(|| async move {
        let store = LocalStore::open(root).unwrap();
        contract(&store, "local").await;
        put_if_absent_race(&store, "local", 20).await;
    });
}

#[test]
fn local_store_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let again = root.clone();
    run_local(|| async move {
        let store = LocalStore::open(root).unwrap();
        store
            .put("log/1/frag", Bytes::from(bytes(3, 5000)))
            .await
            .unwrap();
    });
    run_local(|| async move {
        let store = LocalStore::open(again).unwrap();
        assert_eq!(
            store.get("log/1/frag").await.unwrap(),
            Bytes::from(bytes(3, 5000))
        );
    });
}

#[test]
fn s3_contract_against_minio() {
    run_local(|| async {
        let store = S3Store::new(common::s3_config()).unwrap();
        contract(&store, &unique()).await;
    });
}

#[test]
fn s3_contract_against_minio_over_https() {
    run_local(|| async {
        let store = S3Store::new(common::s3_tls_config()).unwrap();
        contract(&store, &unique()).await;
    });
}

#[test]
fn s3_https_refuses_an_untrusted_certificate() {
    run_local(|| async {
        let mut config = common::s3_tls_config();
        config.ca_cert_path = None;
        config.retries_max = 0;
        let store = S3Store::new(config).unwrap();
        let err = store.get("whatever").await.unwrap_err();
        assert!(
            matches!(err, StoreError::Unavailable(ref m) if m.contains("TLS")),
            "{err:?}"
        );
    });
}

#[test]
fn s3_put_if_absent_has_exactly_one_winner() {
    run_local(|| async {
        let store = S3Store::new(common::s3_config()).unwrap();
        put_if_absent_race(&store, &unique(), 20).await;
    });
}

#[test]
fn s3_listing_pages_past_1000_keys() {
    run_local(|| async {
        let store = S3Store::new(common::s3_config()).unwrap();
        let prefix = unique();
        let keys: Vec<String> = (0..1100).map(|i| format!("{prefix}/many/{i:05}")).collect();
        stream::iter(keys.iter())
            .for_each_concurrent(32, |key| {
                let store = &store;
                async move { store.put(key, Bytes::from_static(b"x")).await.unwrap() }
            })
            .await;
        let first = store
            .list_page(&format!("{prefix}/many/"), None, 1000)
            .await
            .unwrap();
        assert_eq!(first.objects.len(), 1000);
        assert!(first.next.is_some());
        let listed = list_all(&store, &format!("{prefix}/many/")).await.unwrap();
        let listed: Vec<String> = listed.into_iter().map(|o| o.key).collect();
        assert_eq!(listed, keys);
    });
}

#[test]
fn s3_multipart_parts_in_parallel_are_byte_identical() {
    run_local(|| async {
        let store = S3Store::new(common::s3_config()).unwrap();
        let key = format!("{}/multipart", unique());
        let data = Bytes::from(bytes(9, 33 * 1024 * 1024 + 7));
        put_multipart(&store, &key, data.clone(), 5 << 20, 8)
            .await
            .unwrap();
        let back = store.get(&key).await.unwrap();
        assert_eq!(back.len(), data.len());
        assert!(back == data, "multipart object differs");
        let tail = store
            .get_range(&key, (data.len() - 100) as u64..data.len() as u64)
            .await
            .unwrap();
        assert_eq!(tail, data.slice(data.len() - 100..));
    });
}

#[test]
fn s3_wrong_credentials_are_invalid_not_retried() {
    run_local(|| async {
        let mut config = common::s3_config();
        config.secret_key = "wrong-secret".into();
        let store = S3Store::new(config).unwrap();
        let started = std::time::Instant::now();
        let err = store.put("k", Bytes::from_static(b"x")).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid(ref m) if m.contains("403")),
            "{err:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    });
}

/// The error of a GET from `endpoint`, retried `retries_max` times with
/// short backoff; it must be `Unavailable`, and its message is returned.
fn unavailable_get(endpoint: String, retries_max: u32) -> String {
    run_local(|| async move {
        let mut config = common::s3_config();
        config.endpoint = endpoint;
        config.retries_max = retries_max;
        config.retry_backoff_initial_ms = 5;
        config.retry_backoff_max_ms = 20;
        let store = S3Store::new(config).unwrap();
        match store.get("k").await.unwrap_err() {
            StoreError::Unavailable(message) => message,
            err => panic!("{err:?}"),
        }
    })
}

#[test]
fn s3_unreachable_server_is_unavailable_after_bounded_retries() {
    // A port nothing listens on: bind one, then drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let message = unavailable_get(format!("http://127.0.0.1:{port}"), 3);
    assert!(message.contains("after 4 attempts"), "{message}");
}

#[test]
fn s3_endpoint_given_by_name_is_resolved() {
    let mut config = common::s3_config();
    config.endpoint = config.endpoint.replace("127.0.0.1", "localhost");
    assert!(config.endpoint.contains("localhost"), "{}", config.endpoint);
    run_local(|| async move {
        let store = S3Store::new(config).unwrap();
        contract(&store, &unique()).await;
    });
}

#[test]
fn s3_unknown_host_name_is_unavailable_and_named() {
    // `.invalid` never resolves (RFC 6761).
    let message = unavailable_get("http://woodpecker-test.invalid:9000".into(), 1);
    assert!(
        message.contains("resolving woodpecker-test.invalid"),
        "{message}"
    );
}

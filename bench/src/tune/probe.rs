//! What the store promises, tested: does a put-if-absent (`If-None-Match:
//! *`) refuse a second writer, also among racing writers and for a
//! multipart completion? Fencing is unsafe on a store that does not. Does
//! the server verify the CRC32C checksum sent with an upload?

use bytes::Bytes;
use serde::Serialize;
use std::rc::Rc;
use woodpecker_engine::store::{
    put_multipart_if_absent, ObjectStore, StoreError, MULTIPART_PART_BYTES_MIN,
};

/// Racing writers per key, and keys raced.
const RACERS: usize = 8;
const RACES: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Conditional {
    /// Every put-if-absent of a taken key was refused; one racer won each
    /// race.
    Enforced,
    /// A put-if-absent overwrote or joined an existing object: writers
    /// cannot be fenced on this store.
    Ignored,
    /// The probe could not finish (the detail says why).
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Checksum {
    /// An upload whose CRC32C did not match its bytes was refused.
    Verified,
    /// It was stored: the server (or this store kind) does not check.
    NotVerified,
    /// `store.s3.send_checksum` is off, so none is sent.
    NotSent,
    Failed,
}

#[derive(Clone, Debug, Serialize)]
pub struct Probes {
    pub conditional_put: Conditional,
    pub conditional_detail: String,
    pub checksum: Checksum,
    pub checksum_detail: String,
}

pub async fn run(store: &Rc<dyn ObjectStore>, prefix: &str, sends_checksum: bool) -> Probes {
    let (conditional_put, conditional_detail) = match conditional(store, prefix).await {
        Ok(()) => (
            Conditional::Enforced,
            format!(
                "a second put-if-absent was refused, one of {RACERS} racers won each of \
                 {RACES} races, and a multipart completion with If-None-Match was refused"
            ),
        ),
        Err(Outcome::Ignored(detail)) => (Conditional::Ignored, detail),
        Err(Outcome::Failed(detail)) => (Conditional::Failed, detail),
    };
    let (checksum, checksum_detail) = if sends_checksum {
        checksum(store, prefix).await
    } else {
        (
            Checksum::NotSent,
            "store.s3.send_checksum is off: uploads carry no checksum".to_string(),
        )
    };
    cleanup(store, prefix).await;
    Probes {
        conditional_put,
        conditional_detail,
        checksum,
        checksum_detail,
    }
}

enum Outcome {
    Ignored(String),
    Failed(String),
}

fn failed(step: &str, err: StoreError) -> Outcome {
    Outcome::Failed(format!("{step}: {err}"))
}

async fn conditional(store: &Rc<dyn ObjectStore>, prefix: &str) -> Result<(), Outcome> {
    let key = format!("{prefix}/once");
    store
        .put_if_absent(&key, Bytes::from_static(b"first"))
        .await
        .map_err(|e| failed("put-if-absent of a new key", e))?;
    match store
        .put_if_absent(&key, Bytes::from_static(b"second"))
        .await
    {
        Err(StoreError::AlreadyExists(_)) => {}
        Ok(()) => {
            return Err(Outcome::Ignored(
                "a put-if-absent of a key already taken succeeded".into(),
            ))
        }
        Err(e) => return Err(failed("put-if-absent of a taken key", e)),
    }
    for race in 0..RACES {
        let key = format!("{prefix}/race-{race}");
        let racers = (0..RACERS).map(|i| {
            let key = key.clone();
            async move {
                let body = Bytes::from(format!("racer {i}"));
                (body.clone(), store.put_if_absent(&key, body).await)
            }
        });
        let mut winners = Vec::new();
        for (body, result) in futures::future::join_all(racers).await {
            match result {
                Ok(()) => winners.push(body),
                Err(StoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(failed("racing put-if-absent", e)),
            }
        }
        if winners.len() != 1 {
            return Err(Outcome::Ignored(format!(
                "{} of {RACERS} racing put-if-absent calls on one key succeeded",
                winners.len()
            )));
        }
        let stored = store
            .get(&key)
            .await
            .map_err(|e| failed("reading a race", e))?;
        if stored != winners[0] {
            return Err(Outcome::Ignored(
                "a race's object holds a loser's bytes, not the winner's".into(),
            ));
        }
    }
    multipart(store, &key).await
}

/// A multipart upload completed with If-None-Match onto a taken key (how
/// the engine puts large fragments, through the same helper) must be
/// refused too; the helper aborts the refused upload.
async fn multipart(store: &Rc<dyn ObjectStore>, taken: &str) -> Result<(), Outcome> {
    let data = Bytes::from_static(b"multipart");
    match put_multipart_if_absent(&**store, taken, data, MULTIPART_PART_BYTES_MIN, 1).await {
        Err(StoreError::AlreadyExists(_)) => Ok(()),
        Ok(()) => Err(Outcome::Ignored(
            "a multipart completion with If-None-Match replaced a taken key".into(),
        )),
        Err(e) => Err(failed("a conditional multipart upload", e)),
    }
}

async fn checksum(store: &Rc<dyn ObjectStore>, prefix: &str) -> (Checksum, String) {
    let data = Bytes::from_static(b"checksummed upload");
    let crc = crc32c::crc32c(&data);
    let good = format!("{prefix}/checksum-good");
    if let Err(e) = store
        .put_if_absent_with_crc32c(&good, data.clone(), crc)
        .await
    {
        return (
            Checksum::Failed,
            format!("an upload with its right checksum failed: {e}"),
        );
    }
    let bad = format!("{prefix}/checksum-bad");
    match store
        .put_if_absent_with_crc32c(&bad, data, crc ^ 0x5a5a_5a5a)
        .await
    {
        Err(StoreError::Invalid(detail)) => (
            Checksum::Verified,
            format!("an upload with a wrong CRC32C was refused ({detail})"),
        ),
        Ok(()) => (
            Checksum::NotVerified,
            "an upload with a wrong CRC32C was stored: nothing checks the bytes in transit \
             (fragments still carry their own CRCs, checked on every read)"
                .into(),
        ),
        Err(e) => (
            Checksum::Failed,
            format!("an upload with a wrong CRC32C failed oddly: {e}"),
        ),
    }
}

async fn cleanup(store: &Rc<dyn ObjectStore>, prefix: &str) {
    let mut keys = vec![
        format!("{prefix}/once"),
        format!("{prefix}/checksum-good"),
        format!("{prefix}/checksum-bad"),
    ];
    keys.extend((0..RACES).map(|race| format!("{prefix}/race-{race}")));
    for key in keys {
        let _ = store.delete(&key).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::ops::Range;
    use woodpecker_engine::store::memory::MemoryStore;
    use woodpecker_engine::store::{ListPage, ObjectMeta, StoreResult};

    /// A store that ignores If-None-Match: every put-if-absent is a put.
    struct Careless(MemoryStore);

    #[async_trait(?Send)]
    impl ObjectStore for Careless {
        async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
            self.0.put(key, data).await
        }
        async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<()> {
            self.0.put(key, data).await
        }
        async fn create_multipart(&self, key: &str) -> StoreResult<String> {
            self.0.create_multipart(key).await
        }
        async fn upload_part(
            &self,
            key: &str,
            upload_id: &str,
            part_number: u16,
            data: Bytes,
        ) -> StoreResult<String> {
            self.0.upload_part(key, upload_id, part_number, data).await
        }
        async fn complete_multipart(
            &self,
            key: &str,
            upload_id: &str,
            etags: &[String],
            _if_absent: bool,
        ) -> StoreResult<()> {
            self.0
                .complete_multipart(key, upload_id, etags, false)
                .await
        }
        async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()> {
            self.0.abort_multipart(key, upload_id).await
        }
        async fn get(&self, key: &str) -> StoreResult<Bytes> {
            self.0.get(key).await
        }
        async fn get_range(&self, key: &str, range: Range<u64>) -> StoreResult<Bytes> {
            self.0.get_range(key, range).await
        }
        async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
            self.0.head(key).await
        }
        async fn list_page(
            &self,
            prefix: &str,
            start_after: Option<&str>,
            max_keys: usize,
        ) -> StoreResult<ListPage> {
            self.0.list_page(prefix, start_after, max_keys).await
        }
        async fn delete(&self, key: &str) -> StoreResult<()> {
            self.0.delete(key).await
        }
    }

    #[test]
    fn a_store_that_keeps_its_promises_passes_and_one_that_ignores_them_is_named() {
        futures::executor::block_on(async {
            let honest: Rc<dyn ObjectStore> = Rc::new(MemoryStore::new());
            let probes = run(&honest, "tune-probe", true).await;
            assert_eq!(probes.conditional_put, Conditional::Enforced, "{probes:?}");
            // The memory store does not check checksums.
            assert_eq!(probes.checksum, Checksum::NotVerified, "{probes:?}");
            let list = honest.list_page("tune-probe", None, 100).await.unwrap();
            assert!(list.objects.is_empty(), "the probe cleans up");

            let careless: Rc<dyn ObjectStore> = Rc::new(Careless(MemoryStore::new()));
            let probes = run(&careless, "tune-probe", false).await;
            assert_eq!(probes.conditional_put, Conditional::Ignored);
            assert!(probes
                .conditional_detail
                .contains("already taken succeeded"));
            assert_eq!(probes.checksum, Checksum::NotSent);
        });
    }
}

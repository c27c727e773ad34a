//! The object-store layer: the one narrow trait the engine writes fragments
//! through, and its implementations.
//!
//! * [`s3::S3Store`]: S3-compatible servers (MinIO, AWS S3) over hyper on
//!   glommio sockets, SigV4-signed by `rusty-s3`.
//! * [`local::LocalStore`]: local files through glommio's `DmaFile`
//!   (O_DIRECT, io_uring), the embedded default.
//! * [`memory::MemoryStore`]: in-memory, for unit tests and as the engine's
//!   own throughput ceiling.
//! * [`fault::FaultStore`]: wraps any store and injects errors, latency,
//!   lost replies and crashes, per operation and per key prefix.
//!
//! Futures are `!Send`: a store is used from the executor thread that made
//! it (S3 connections and DMA files belong to one core).

pub mod config;
pub mod fault;
pub mod local;
pub mod memory;
pub mod null;
pub mod s3;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use std::ops::Range;

/// Errors of the object-store layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("object not found: {0}")]
    NotFound(String),
    /// A put-if-absent found the key taken.
    #[error("object already exists: {0}")]
    AlreadyExists(String),
    /// Retriable: network failure, timeout, throttling, 5xx. The operation
    /// may or may not have taken effect.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// The request itself is wrong (bad key, bad range, bad credentials...).
    #[error("invalid object-store request: {0}")]
    Invalid(String),
}

impl StoreError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

pub use config::{StoreConfig, StoreFactory};

/// One listed or inspected object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// One page of a listing; `next` (the last key listed, when more remain)
/// continues it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListPage {
    pub objects: Vec<ObjectMeta>,
    pub next: Option<String>,
}

/// Which operation, for fault injection and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Put,
    PutIfAbsent,
    CreateMultipart,
    UploadPart,
    CompleteMultipart,
    AbortMultipart,
    Get,
    GetRange,
    Head,
    List,
    Delete,
}

impl Op {
    /// Its name in metrics labels (`put_if_absent`, `list`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::PutIfAbsent => "put_if_absent",
            Op::CreateMultipart => "create_multipart",
            Op::UploadPart => "upload_part",
            Op::CompleteMultipart => "complete_multipart",
            Op::AbortMultipart => "abort_multipart",
            Op::Get => "get",
            Op::GetRange => "get_range",
            Op::Head => "head",
            Op::List => "list",
            Op::Delete => "delete",
        }
    }
}

/// The object-store operations the engine needs, and no more.
///
/// Keys are `/`-separated relative paths of ASCII letters, digits and
/// `-_.=`; no component is empty or starts with `.`.
#[async_trait(?Send)]
pub trait ObjectStore {
    /// Stores `data` at `key`, replacing any object there.
    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()>;
    /// Stores `data` at `key` only if no object is there, atomically;
    /// [`StoreError::AlreadyExists`] otherwise. Among concurrent callers on
    /// one key exactly one succeeds.
    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<()>;
    /// [`ObjectStore::put_if_absent`] with the CRC32C of `data` already known
    /// (a fragment's is): a store that sends checksums uses it instead of
    /// reading all of `data` once more. A store whose server verifies
    /// checksums refuses data that does not match `crc32c`
    /// ([`StoreError::Invalid`]); `woodpecker tune` relies on that to find
    /// out whether it does.
    async fn put_if_absent_with_crc32c(
        &self,
        key: &str,
        data: Bytes,
        crc32c: u32,
    ) -> StoreResult<()> {
        let _ = crc32c;
        self.put_if_absent(key, data).await
    }
    /// Starts a multipart upload; returns its upload id.
    async fn create_multipart(&self, key: &str) -> StoreResult<String>;
    /// Uploads part `part_number` (from 1); returns the part's ETag.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        data: Bytes,
    ) -> StoreResult<String>;
    /// Completes an upload from its parts' ETags, in part order. With
    /// `if_absent`, only if no object is at `key` ([`StoreError::AlreadyExists`]
    /// otherwise), atomically, as for [`ObjectStore::put_if_absent`].
    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
        if_absent: bool,
    ) -> StoreResult<()>;
    async fn abort_multipart(&self, key: &str, upload_id: &str) -> StoreResult<()>;
    async fn get(&self, key: &str) -> StoreResult<Bytes>;
    /// Bytes `range` of the object; the range must lie within it.
    async fn get_range(&self, key: &str, range: Range<u64>) -> StoreResult<Bytes>;
    async fn head(&self, key: &str) -> StoreResult<ObjectMeta>;
    /// Up to `max_keys` objects whose keys start with `prefix`, in key
    /// order, after the key `start_after` if given (the `next` of the page
    /// before, or the last key a tailing reader has seen: only newer keys
    /// are listed, not the whole prefix again).
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> StoreResult<ListPage>;
    /// Deletes `key`; deleting a missing key succeeds.
    async fn delete(&self, key: &str) -> StoreResult<()>;

    /// Lets go of pooled idle connections (the shard is stopping), so
    /// their sockets close; a later call opens new ones. Nothing by
    /// default (stores without connections).
    fn close_idle(&self) {}

    /// The whole object at `key` if this store holds it in memory (a
    /// cache in front of the real store), without any I/O; `None` by
    /// default. Lets a caller that needs a copy share the cache's.
    fn cached(&self, _key: &str) -> Option<Bytes> {
        None
    }
}

/// Keys per listing page asked of a store (S3 answers at most 1000).
pub const LIST_PAGE_KEYS_MAX: usize = 1000;

/// Lists every object under `prefix`, page by page.
pub async fn list_all<S: ObjectStore + ?Sized>(
    store: &S,
    prefix: &str,
) -> StoreResult<Vec<ObjectMeta>> {
    let mut objects = Vec::new();
    let mut continuation: Option<String> = None;
    loop {
        let page = store
            .list_page(prefix, continuation.as_deref(), LIST_PAGE_KEYS_MAX)
            .await?;
        objects.extend(page.objects);
        match page.next {
            Some(next) => continuation = Some(next),
            None => return Ok(objects),
        }
    }
}

/// Smallest part S3 accepts, except for the last part.
pub const MULTIPART_PART_BYTES_MIN: usize = 5 << 20;
/// Most parts S3 accepts in one upload.
pub const MULTIPART_PARTS_MAX: usize = 10_000;

/// Uploads `data` as a multipart upload of `part_bytes` parts, at most
/// `parallel_max` in flight; aborts the upload if any part fails.
///
/// Parts are slices of `data` (no copy).
pub async fn put_multipart<S: ObjectStore + ?Sized>(
    store: &S,
    key: &str,
    data: Bytes,
    part_bytes: usize,
    parallel_max: usize,
) -> StoreResult<()> {
    multipart(store, key, data, part_bytes, parallel_max, false).await
}

/// [`put_multipart`] that completes only if no object is at `key`.
pub async fn put_multipart_if_absent<S: ObjectStore + ?Sized>(
    store: &S,
    key: &str,
    data: Bytes,
    part_bytes: usize,
    parallel_max: usize,
) -> StoreResult<()> {
    multipart(store, key, data, part_bytes, parallel_max, true).await
}

async fn multipart<S: ObjectStore + ?Sized>(
    store: &S,
    key: &str,
    data: Bytes,
    part_bytes: usize,
    parallel_max: usize,
    if_absent: bool,
) -> StoreResult<()> {
    if part_bytes < MULTIPART_PART_BYTES_MIN {
        return Err(StoreError::Invalid(format!(
            "multipart part size {part_bytes} is under the 5 MiB minimum"
        )));
    }
    let parts = data.len().div_ceil(part_bytes).max(1);
    if parts > MULTIPART_PARTS_MAX {
        return Err(StoreError::Invalid(format!(
            "{parts} parts exceed the limit of {MULTIPART_PARTS_MAX}"
        )));
    }
    let upload_id = store.create_multipart(key).await?;
    let uploads = stream::iter(0..parts)
        .map(|i| {
            let start = i * part_bytes;
            let end = (start + part_bytes).min(data.len());
            let part = data.slice(start..end);
            let upload_id = upload_id.as_str();
            async move {
                store
                    .upload_part(key, upload_id, (i + 1) as u16, part)
                    .await
            }
        })
        .buffered(parallel_max.max(1))
        .try_collect::<Vec<String>>()
        .await;
    let completed = match uploads {
        Ok(etags) => {
            store
                .complete_multipart(key, &upload_id, &etags, if_absent)
                .await
        }
        Err(err) => Err(err),
    };
    if let Err(err) = completed {
        // Best effort: an upload left behind costs storage, not correctness.
        let _ = store.abort_multipart(key, &upload_id).await;
        return Err(err);
    }
    Ok(())
}

/// One listing page over keys kept in a sorted map (the in-process stores):
/// keys under `prefix`, after `start_after`, at most `max_keys`.
pub(crate) fn list_sorted<V>(
    map: &std::collections::BTreeMap<String, V>,
    prefix: &str,
    start_after: Option<&str>,
    max_keys: usize,
    size: impl Fn(&V) -> u64,
) -> ListPage {
    // Never start before the prefix: keys between would end the scan early.
    let start = match start_after {
        Some(key) if key > prefix => key,
        _ => prefix,
    };
    let mut objects = Vec::new();
    let mut next = None;
    let listed = map
        .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
        .filter(|(key, _)| Some(key.as_str()) != start_after)
        .take_while(|(key, _)| key.starts_with(prefix));
    for (key, value) in listed {
        if objects.len() == max_keys.max(1) {
            next = objects.last().map(|o: &ObjectMeta| o.key.clone());
            break;
        }
        objects.push(ObjectMeta {
            key: key.clone(),
            size: size(value),
        });
    }
    ListPage { objects, next }
}

/// The ETag the in-process stores give a multipart part.
pub(crate) fn part_etag(data: &[u8]) -> String {
    format!("\"{:08x}-{}\"", crc32c::crc32c(data), data.len())
}

/// Checks a key against the rules on [`ObjectStore`].
pub fn validate_key(key: &str) -> StoreResult<()> {
    let valid_char = |c: char| c.is_ascii_alphanumeric() || "-_.=".contains(c);
    let valid = !key.is_empty()
        && key.len() <= 1024
        && key
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && part.chars().all(valid_char));
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("invalid object key {key:?}")))
    }
}

/// Checks that `range` is a non-empty range inside an object of `size` bytes.
pub fn check_range(key: &str, range: &Range<u64>, size: u64) -> StoreResult<()> {
    if range.start >= range.end || range.end > size {
        return Err(StoreError::Invalid(format!(
            "range {range:?} is empty or outside {key} ({size} bytes)"
        )));
    }
    Ok(())
}

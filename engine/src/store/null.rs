//! The null store: remembers keys and sizes, discards the bytes. It
//! measures the engine's own ceiling, with no store work at all (the
//! memory store's copy of every fragment into fresh memory costs more than
//! the engine itself). Reads of object contents fail with `Invalid`.

use super::{validate_key, ListPage, ObjectMeta, ObjectStore, StoreError, StoreResult};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
struct State {
    sizes: BTreeMap<String, u64>,
    uploads: HashMap<String, u64>,
    next_upload_id: u64,
}

#[derive(Clone, Default)]
pub struct NullStore {
    state: Arc<Mutex<State>>,
}

impl NullStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("null store lock poisoned")
    }
}

fn discarded(key: &str) -> StoreError {
    StoreError::Invalid(format!("{key}: the null store discards object contents"))
}

#[async_trait(?Send)]
impl ObjectStore for NullStore {
    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        validate_key(key)?;
        self.state()
            .sizes
            .insert(key.to_string(), data.len() as u64);
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<()> {
        validate_key(key)?;
        let mut state = self.state();
        if state.sizes.contains_key(key) {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        state.sizes.insert(key.to_string(), data.len() as u64);
        Ok(())
    }

    async fn create_multipart(&self, key: &str) -> StoreResult<String> {
        validate_key(key)?;
        let mut state = self.state();
        state.next_upload_id += 1;
        let id = format!("null-{}", state.next_upload_id);
        state.uploads.insert(id.clone(), 0);
        Ok(id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u16,
        data: Bytes,
    ) -> StoreResult<String> {
        let mut state = self.state();
        let size = state
            .uploads
            .get_mut(upload_id)
            .ok_or_else(|| StoreError::NotFound(format!("upload {upload_id} of {key}")))?;
        *size += data.len() as u64;
        Ok(format!("\"{part}\""))
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        _etags: &[String],
        if_absent: bool,
    ) -> StoreResult<()> {
        let mut state = self.state();
        if if_absent && state.sizes.contains_key(key) {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        let size = state
            .uploads
            .remove(upload_id)
            .ok_or_else(|| StoreError::NotFound(format!("upload {upload_id} of {key}")))?;
        state.sizes.insert(key.to_string(), size);
        Ok(())
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> StoreResult<()> {
        self.state().uploads.remove(upload_id);
        Ok(())
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        self.head(key).await?;
        Err(discarded(key))
    }

    async fn get_range(&self, key: &str, _range: Range<u64>) -> StoreResult<Bytes> {
        self.head(key).await?;
        Err(discarded(key))
    }

    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        let size = *self
            .state()
            .sizes
            .get(key)
            .ok_or_else(|| StoreError::NotFound(key.to_string()))?;
        Ok(ObjectMeta {
            key: key.to_string(),
            size,
        })
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> StoreResult<ListPage> {
        let state = self.state();
        Ok(super::list_sorted(
            &state.sizes,
            prefix,
            start_after,
            max_keys,
            |size: &u64| *size,
        ))
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.state().sizes.remove(key);
        Ok(())
    }
}

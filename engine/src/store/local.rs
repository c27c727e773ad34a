//! Local-file object store: one file per object under a root directory,
//! written and read through glommio's `DmaFile` (O_DIRECT on io_uring).
//!
//! Durability: an object is written to a temporary file, `fdatasync`ed,
//! then renamed (put) or hard-linked (put-if-absent: `link` fails if the
//! name is taken, which makes it atomic) into place, and the directory is
//! synced, all before success is reported. A directory made on the way
//! has its parent synced too, so a new key prefix survives a crash.
//!
//! Directory operations (rename, link, listing, directory sync, stat,
//! delete) are blocking system calls with no io_uring form here; they run
//! on glommio's blocking thread, so a slow disk stalls that thread, never
//! the shard and the other logs on it.
//!
//! Names starting with `.` under the root are the store's own: `.tmp/`,
//! `.uploads/` and `.warmup`.

use super::{
    check_range, part_etag, validate_key, ListPage, ObjectMeta, ObjectStore, StoreError,
    StoreResult,
};
use async_trait::async_trait;
use bytes::Bytes;
use glommio::io::{DmaBuffer, DmaFile};
use std::cell::Cell;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Bytes per DMA write; bounds the aligned staging memory of one write.
const WRITE_CHUNK_BYTES: usize = 1 << 20;
const WARMUP_FILE: &str = ".warmup";
const WARMUP_BYTES: usize = 4096;

thread_local! {
    static DMA_WARMED: Cell<bool> = const { Cell::new(false) };
}

#[derive(Clone, Debug)]
pub struct LocalStore {
    root: PathBuf,
}

fn io_error(context: &str, err: io::Error) -> StoreError {
    match err.kind() {
        io::ErrorKind::NotFound => StoreError::NotFound(context.to_string()),
        io::ErrorKind::AlreadyExists => StoreError::AlreadyExists(context.to_string()),
        _ => StoreError::Unavailable(format!("{context}: {err}")),
    }
}

fn glommio_error<T>(context: &str, err: glommio::GlommioError<T>) -> StoreError {
    io_error(context, io::Error::from(err))
}

impl LocalStore {
    /// A store rooted at `root`, created if missing. Blocking: call it off
    /// the shards ([`super::StoreFactory::new`] does) and clone the store.
    pub fn open(root: impl Into<PathBuf>) -> StoreResult<LocalStore> {
        let root = root.into();
        for dir in [root.join(".tmp"), root.join(".uploads")] {
            create_dirs_synced(&dir).map_err(|e| io_error(&dir.to_string_lossy(), e))?;
        }
        let warmup = root.join(WARMUP_FILE);
        if std::fs::metadata(&warmup).map(|m| m.len()).unwrap_or(0) == 0 {
            std::fs::write(&warmup, [0xA5u8; WARMUP_BYTES])
                .map_err(|e| io_error(&warmup.to_string_lossy(), e))?;
        }
        Ok(LocalStore { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Works around glommio issues 605/670: when the first file a thread
    /// opens with `DmaFile` is empty, glommio turns on polled I/O and later
    /// DMA reads fail with EOPNOTSUPP. Opening a non-empty file first, once
    /// per thread, avoids it.
    async fn warm_up_dma(&self) -> StoreResult<()> {
        if DMA_WARMED.get() {
            return Ok(());
        }
        let path = self.root.join(WARMUP_FILE);
        let file = DmaFile::open(&path)
            .await
            .map_err(|e| glommio_error("opening the DMA warm-up file", e))?;
        file.read_at(0, WARMUP_BYTES)
            .await
            .map_err(|e| glommio_error("reading the DMA warm-up file", e))?;
        let _ = file.close().await;
        DMA_WARMED.set(true);
        Ok(())
    }

    fn object_path(&self, key: &str) -> StoreResult<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    fn temp_path(&self) -> PathBuf {
        self.root
            .join(".tmp")
            .join(format!("{:016x}", fastrand::u64(..)))
    }

    fn upload_dir(&self, upload_id: &str) -> StoreResult<PathBuf> {
        if upload_id.is_empty() || !upload_id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(StoreError::Invalid(format!("bad upload id {upload_id:?}")));
        }
        Ok(self.root.join(".uploads").join(upload_id))
    }

    /// Writes `pieces` one after another to a new temporary file, synced.
    async fn write_temp(&self, pieces: &[&[u8]]) -> StoreResult<PathBuf> {
        self.warm_up_dma().await?;
        let path = self.temp_path();
        let context = path.to_string_lossy().into_owned();
        let result = async {
            let file = DmaFile::create(&path)
                .await
                .map_err(|e| glommio_error(&context, e))?;
            let mut writer = AlignedWriter::new(&file);
            for piece in pieces {
                writer
                    .write(piece)
                    .await
                    .map_err(|e| io_error(&context, e))?;
            }
            writer.finish().await.map_err(|e| io_error(&context, e))?;
            file.fdatasync()
                .await
                .map_err(|e| glommio_error(&context, e))?;
            file.close().await.map_err(|e| glommio_error(&context, e))
        }
        .await;
        if result.is_err() {
            let temp = path.clone();
            let _ = blocking(move || std::fs::remove_file(temp)).await;
        }
        result.map(|_| path)
    }

    async fn read_file(
        &self,
        path: &Path,
        key: &str,
        range: Option<Range<u64>>,
    ) -> StoreResult<Bytes> {
        self.warm_up_dma().await?;
        let file = DmaFile::open(path)
            .await
            .map_err(|e| glommio_error(key, e))?;
        let result = async {
            let size = file.file_size().await.map_err(|e| glommio_error(key, e))?;
            let range = match range {
                Some(range) => {
                    check_range(key, &range, size)?;
                    range
                }
                None => 0..size,
            };
            if range.is_empty() {
                return Ok(Bytes::new());
            }
            let read = file
                .read_at(range.start, (range.end - range.start) as usize)
                .await
                .map_err(|e| glommio_error(key, e))?;
            if read.len() as u64 != range.end - range.start {
                return Err(StoreError::Unavailable(format!("{key}: short read")));
            }
            Ok(Bytes::copy_from_slice(&read))
        }
        .await;
        let _ = file.close().await;
        result
    }

    /// Moves a synced temporary file into place and syncs the directory.
    async fn install(
        &self,
        temp: PathBuf,
        target: PathBuf,
        replace: bool,
        key: &str,
    ) -> StoreResult<()> {
        blocking(move || install_now(&temp, &target, replace))
            .await
            .map_err(|e| io_error(key, e))
    }
}

/// Runs blocking file-system calls on glommio's blocking thread.
async fn blocking<T: Send + 'static>(calls: impl FnOnce() -> T + Send + 'static) -> T {
    glommio::executor().spawn_blocking(calls).await
}

async fn exists(path: &Path) -> bool {
    let path = path.to_path_buf();
    blocking(move || path.exists()).await
}

/// Creates `dir` and its missing ancestors, syncing the parent of each one
/// it creates so the new names survive a crash. Returns those it created.
fn create_dirs_synced(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(path) = next.filter(|p| !p.as_os_str().is_empty() && !p.is_dir()) {
        missing.push(path.to_path_buf());
        next = path.parent();
    }
    missing.reverse();
    for path in &missing {
        match std::fs::create_dir(path) {
            // Another thread made it: sync its parent here too, since that
            // thread may not have yet.
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let parent = path.parent().expect("a created directory has a parent");
        std::fs::File::open(parent)?.sync_all()?;
    }
    Ok(missing)
}

fn install_now(temp: &Path, target: &Path, replace: bool) -> io::Result<()> {
    let parent = target.parent().expect("object paths have a parent");
    let result = create_dirs_synced(parent).and_then(|_| {
        if replace {
            std::fs::rename(temp, target)
        } else {
            let linked = std::fs::hard_link(temp, target);
            let _ = std::fs::remove_file(temp);
            linked
        }
    });
    if result.is_err() {
        let _ = std::fs::remove_file(temp);
    }
    result?;
    std::fs::File::open(parent)?.sync_all()
}

/// Feeds bytes to a `DmaFile` in aligned chunks; `finish` pads the last
/// chunk to the alignment and truncates the file to the real length.
struct AlignedWriter<'f> {
    file: &'f DmaFile,
    buf: Option<DmaBuffer>,
    filled: usize,
    written: u64,
}

impl<'f> AlignedWriter<'f> {
    fn new(file: &'f DmaFile) -> Self {
        AlignedWriter {
            file,
            buf: None,
            filled: 0,
            written: 0,
        }
    }

    async fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let buf = self
                .buf
                .get_or_insert_with(|| self.file.alloc_dma_buffer(WRITE_CHUNK_BYTES));
            let n = (WRITE_CHUNK_BYTES - self.filled).min(data.len());
            buf.as_bytes_mut()[self.filled..self.filled + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
            if self.filled == WRITE_CHUNK_BYTES {
                self.flush_chunk().await?;
            }
        }
        Ok(())
    }

    async fn flush_chunk(&mut self) -> io::Result<()> {
        let Some(mut buf) = self.buf.take() else {
            return Ok(());
        };
        let aligned = self.file.align_up(self.filled as u64) as usize;
        buf.as_bytes_mut()[self.filled..aligned].fill(0);
        buf.trim_to_size(aligned);
        let pos = self.written - self.written % self.file.alignment();
        debug_assert_eq!(pos, self.written, "only the last chunk is partial");
        let n = self.file.write_at(buf, pos).await?;
        if n != aligned {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short DMA write"));
        }
        self.written += self.filled as u64;
        self.filled = 0;
        Ok(())
    }

    async fn finish(mut self) -> io::Result<u64> {
        if self.filled > 0 {
            self.flush_chunk().await?;
        }
        self.file.truncate(self.written).await?;
        Ok(self.written)
    }
}

fn part_path(dir: &Path, part_number: u16) -> PathBuf {
    dir.join(format!("part-{part_number:05}"))
}

#[async_trait(?Send)]
impl ObjectStore for LocalStore {
    async fn put(&self, key: &str, data: Bytes) -> StoreResult<()> {
        let target = self.object_path(key)?;
        let temp = self.write_temp(&[&data]).await?;
        self.install(temp, target, true, key).await
    }

    async fn put_if_absent(&self, key: &str, data: Bytes) -> StoreResult<()> {
        let target = self.object_path(key)?;
        if exists(&target).await {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        let temp = self.write_temp(&[&data]).await?;
        self.install(temp, target, false, key).await
    }

    async fn create_multipart(&self, key: &str) -> StoreResult<String> {
        validate_key(key)?;
        let upload_id = format!("{:016x}", fastrand::u64(..));
        let dir = self.upload_dir(&upload_id)?;
        let owner = key.to_string();
        blocking(move || {
            create_dirs_synced(&dir).and_then(|_| std::fs::write(dir.join("key"), owner))
        })
        .await
        .map_err(|e| io_error(key, e))?;
        Ok(upload_id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        data: Bytes,
    ) -> StoreResult<String> {
        let dir = self.upload_dir(upload_id)?;
        let key_file = dir.join("key");
        let owner = blocking(move || std::fs::read_to_string(key_file))
            .await
            .map_err(|e| io_error(&format!("upload {upload_id}"), e))?;
        if owner != key || part_number == 0 {
            return Err(StoreError::Invalid(format!(
                "part {part_number} of upload {upload_id} for {key}"
            )));
        }
        let temp = self.write_temp(&[&data]).await?;
        self.install(temp, part_path(&dir, part_number), true, key)
            .await?;
        Ok(part_etag(&data))
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
        if_absent: bool,
    ) -> StoreResult<()> {
        let target = self.object_path(key)?;
        if if_absent && exists(&target).await {
            return Err(StoreError::AlreadyExists(key.to_string()));
        }
        let dir = self.upload_dir(upload_id)?;
        let mut parts = Vec::with_capacity(etags.len());
        for (i, etag) in etags.iter().enumerate() {
            let path = part_path(&dir, (i + 1) as u16);
            let part = self.read_file(&path, key, None).await?;
            if part_etag(&part) != *etag {
                return Err(StoreError::Invalid(format!("part {} changed", i + 1)));
            }
            parts.push(part);
        }
        let pieces: Vec<&[u8]> = parts.iter().map(|p| p.as_ref()).collect();
        let temp = self.write_temp(&pieces).await?;
        self.install(temp, target, !if_absent, key).await?;
        let _ = blocking(move || std::fs::remove_dir_all(dir)).await;
        Ok(())
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> StoreResult<()> {
        let dir = self.upload_dir(upload_id)?;
        match blocking(move || std::fs::remove_dir_all(dir)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(upload_id, e)),
            _ => Ok(()),
        }
    }

    async fn get(&self, key: &str) -> StoreResult<Bytes> {
        let path = self.object_path(key)?;
        self.read_file(&path, key, None).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> StoreResult<Bytes> {
        let path = self.object_path(key)?;
        self.read_file(&path, key, Some(range)).await
    }

    async fn head(&self, key: &str) -> StoreResult<ObjectMeta> {
        let path = self.object_path(key)?;
        let meta = blocking(move || std::fs::metadata(path))
            .await
            .map_err(|e| io_error(key, e))?;
        if !meta.is_file() {
            return Err(StoreError::NotFound(key.to_string()));
        }
        Ok(ObjectMeta {
            key: key.to_string(),
            size: meta.len(),
        })
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> StoreResult<ListPage> {
        // Walk only the directory the prefix names, not the whole root.
        let base = match prefix.rfind('/') {
            Some(i) => prefix[..i].to_string(),
            None => String::new(),
        };
        let (root, wanted) = (self.root.clone(), prefix.to_string());
        let mut objects = blocking(move || {
            let mut found = Vec::new();
            walk(&root, &base, &mut |key, size| {
                if key.starts_with(&wanted) {
                    found.push(ObjectMeta {
                        key: key.to_string(),
                        size,
                    });
                }
            })
            .map(|()| found)
        })
        .await
        .map_err(|e| io_error(prefix, e))?;
        objects.retain(|o| start_after.is_none_or(|token| o.key.as_str() > token));
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        let max_keys = max_keys.max(1);
        let next = if objects.len() > max_keys {
            objects.truncate(max_keys);
            objects.last().map(|o| o.key.clone())
        } else {
            None
        };
        Ok(ListPage { objects, next })
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        let path = self.object_path(key)?;
        match blocking(move || std::fs::remove_file(path)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(key, e)),
            _ => Ok(()),
        }
    }
}

/// Calls `found(key, size)` for every object file under `root/dir`.
fn walk(root: &Path, dir: &str, found: &mut dyn FnMut(&str, u64)) -> io::Result<()> {
    let entries = match std::fs::read_dir(root.join(dir)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let key = if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(root, &key, found)?;
        } else if kind.is_file() {
            found(&key, entry.metadata()?.len());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_directories_are_created_with_their_parents_synced() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/c");
        std::fs::create_dir(root.path().join("a")).unwrap();
        let created = create_dirs_synced(&dir).unwrap();
        assert_eq!(created, [root.path().join("a/b"), dir.clone()]);
        assert!(dir.is_dir());
        assert!(create_dirs_synced(&dir).unwrap().is_empty());
    }
}

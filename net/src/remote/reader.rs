//! The remote reader: one follow request streams the log's entries in the
//! binary framing; a task decodes them as they arrive and hands them over
//! through a bounded channel. When the stream breaks (the server
//! restarted, a connection dropped) it reconnects from the next offset.

use super::{answer_error, transport, Inner};
use crate::framing::{self, Limits, MEDIA_TYPE};
use bytes::BytesMut;
use std::sync::Arc;
use std::time::Duration;
use woodpecker_engine::meta::LogInfo;
use woodpecker_engine::{Error, ErrorKind, Result};
use woodpecker_shards::{ReadEntry, StartAt};

/// Entries decoded ahead of the caller at most.
const ENTRIES_AHEAD: usize = 1024;
/// One entry's bytes at most (the engine's own bound is far below).
const ENTRY_BYTES_MAX: usize = 1 << 30;

/// A reader of one log through a server, following it past its end.
pub struct RemoteReader {
    log: LogInfo,
    rx: tokio::sync::mpsc::Receiver<Result<ReadEntry>>,
    task: tokio::task::JoinHandle<()>,
}

impl RemoteReader {
    pub(super) fn start(inner: Arc<Inner>, log: LogInfo, start: StartAt) -> RemoteReader {
        let (tx, rx) = tokio::sync::mpsc::channel(ENTRIES_AHEAD);
        let task = inner.spawn(follow(inner.clone(), log.name.clone(), start, tx));
        RemoteReader { log, rx, task }
    }

    pub fn log(&self) -> &LogInfo {
        &self.log
    }

    /// The next entry, waiting at the end of the log for a new one.
    pub async fn next(&mut self) -> Result<ReadEntry> {
        match self.rx.recv().await {
            Some(entry) => entry,
            None => Err(Error::new(ErrorKind::Closed, "the remote reader stopped")),
        }
    }

    /// An entry if one has arrived, without waiting.
    pub fn try_next(&mut self) -> Result<Option<ReadEntry>> {
        match self.rx.try_recv() {
            Ok(entry) => entry.map(Some),
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                Err(Error::new(ErrorKind::Closed, "the remote reader stopped"))
            }
        }
    }
}

impl Drop for RemoteReader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn follow(
    inner: Arc<Inner>,
    log: String,
    start: StartAt,
    tx: tokio::sync::mpsc::Sender<Result<ReadEntry>>,
) {
    // `open_reader` pins Latest to the log's end, so a reconnect before
    // the first entry skips nothing.
    let mut from = match start {
        StartAt::Earliest => "earliest".to_string(),
        StartAt::Offset(offset) => offset.to_string(),
        StartAt::Latest => "latest".to_string(),
    };
    let limits = Limits {
        entries_max: usize::MAX,
        entry_bytes_max: ENTRY_BYTES_MAX,
    };
    let mut backoff = Duration::from_millis(20);
    loop {
        let mut url = inner.url(&["v1", "logs", &log, "entries"]);
        url.query_pairs_mut()
            .append_pair("follow", "true")
            .append_pair("format", "binary")
            .append_pair("from", &from);
        // No request timeout: the stream lives as long as the reader.
        let request = inner
            .http
            .get(url)
            .header(reqwest::header::ACCEPT, MEDIA_TYPE)
            .timeout(Duration::from_secs(365 * 24 * 3600));
        let mut response = match inner.authorized(request).send().await {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => {
                let status = response.status();
                let body = response.bytes().await.unwrap_or_default();
                let err = answer_error(status, &body);
                if err.kind() != ErrorKind::Unavailable && err.kind() != ErrorKind::Closed {
                    let _ = tx.send(Err(err)).await;
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
            Err(err) => {
                tracing::debug!(log, error = %transport(err), "follow request failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let mut buf = BytesMut::new();
        // Until the stream ends (shutdown) or breaks: then follow again
        // from the next offset.
        while let Ok(Some(chunk)) = response.chunk().await {
            backoff = Duration::from_millis(20);
            buf.extend_from_slice(&chunk);
            let entries = match framing::decode_stream(&mut buf, true, limits) {
                Ok(entries) => entries,
                Err(err) => {
                    let err = Error::new(ErrorKind::Corrupt, format!("the follow stream: {err}"));
                    let _ = tx.send(Err(err)).await;
                    return;
                }
            };
            for entry in entries {
                let offset = entry.offset.expect("answers carry offsets");
                from = (offset + 1).to_string();
                let entry = ReadEntry {
                    offset,
                    payload: entry.payload,
                    properties: entry.properties,
                };
                if tx.send(Ok(entry)).await.is_err() {
                    return; // the reader was dropped
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

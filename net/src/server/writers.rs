//! The server's writers: one per log it appends to, opened on the first
//! append (fencing any other writer), shared by every shard's requests.
//!
//! A writer that stopped after a failure (`WriterFailed`,
//! `OutcomeUnknown`) is forgotten, and the next append opens a new one (its
//! recovery finds what the old one left). A fenced writer is remembered as
//! fenced: appends answer `fenced` until a request asks to reopen, so two
//! servers never take a log from each other back and forth on their own.

use crate::error::{ApiError, Code};
use futures::lock::Mutex as AsyncMutex;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use woodpecker_engine::{Error, ErrorKind};
use woodpecker_shards::{Client, LogWriter};

enum State {
    Closed,
    Open(Arc<LogWriter>),
    Fenced(String),
}

type Slot = Arc<AsyncMutex<State>>;

pub(crate) struct Writers {
    client: Client,
    slots: Mutex<HashMap<String, Slot>>,
}

impl Writers {
    pub fn new(client: Client) -> Writers {
        Writers {
            client,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, name: &str) -> Slot {
        let mut slots = self.slots.lock().expect("writers lock");
        slots
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(AsyncMutex::new(State::Closed)))
            .clone()
    }

    /// The log's writer, opened now if the server holds none; if it was
    /// fenced, an error unless `reopen`.
    pub async fn writer(&self, name: &str, reopen: bool) -> Result<Arc<LogWriter>, ApiError> {
        let slot = self.slot(name);
        let mut state = slot.lock().await;
        match &*state {
            State::Open(writer) => return Ok(writer.clone()),
            State::Fenced(detail) if !reopen => {
                return Err(ApiError::new(
                    Code::Fenced,
                    format!("another writer took {name} over ({detail}); reopen to take it back"),
                ))
            }
            State::Fenced(_) | State::Closed => {}
        }
        let writer = Arc::new(self.client.open_writer(name).await?);
        tracing::info!(log = name, epoch = writer.epoch(), "writer opened");
        *state = State::Open(writer.clone());
        Ok(writer)
    }

    /// The epoch of the writer this server holds for the log, if any.
    pub async fn held_epoch(&self, name: &str) -> Option<u64> {
        let slot = self
            .slots
            .lock()
            .expect("writers lock")
            .get(name)
            .cloned()?;
        let state = slot.lock().await;
        match &*state {
            State::Open(writer) => Some(writer.epoch()),
            _ => None,
        }
    }

    /// Opens the log's writer anew, fencing the one this server held.
    pub async fn reopen(&self, name: &str) -> Result<Arc<LogWriter>, ApiError> {
        let slot = self.slot(name);
        {
            let mut state = slot.lock().await;
            if let State::Open(writer) = std::mem::replace(&mut *state, State::Closed) {
                close(name, writer).await;
            }
        }
        self.writer(name, true).await
    }

    /// Notes that an append on `writer` failed with `err`: a stopped
    /// writer is forgotten (or remembered as fenced).
    pub async fn failed(&self, name: &str, writer: &Arc<LogWriter>, err: &Error) {
        if !err.needs_reopen() {
            return;
        }
        let slot = self.slot(name);
        let mut state = slot.lock().await;
        if matches!(&*state, State::Open(current) if Arc::ptr_eq(current, writer)) {
            *state = match err.kind() {
                ErrorKind::Fenced => State::Fenced(err.detail().to_string()),
                _ => State::Closed,
            };
            tracing::warn!(log = name, error = %err, "writer stopped");
        }
    }

    /// Closes the log's writer if the server holds one (before deleting
    /// the log).
    pub async fn forget(&self, name: &str) {
        let slot = self.slots.lock().expect("writers lock").remove(name);
        if let Some(slot) = slot {
            if let State::Open(writer) = std::mem::replace(&mut *slot.lock().await, State::Closed) {
                close(name, writer).await;
            }
        }
    }

    /// Closes every writer, sealing its segment.
    pub async fn close_all(&self) {
        let slots: Vec<(String, Slot)> = self.slots.lock().expect("writers lock").drain().collect();
        for (name, slot) in slots {
            if let State::Open(writer) = std::mem::replace(&mut *slot.lock().await, State::Closed) {
                close(&name, writer).await;
            }
        }
    }
}

/// Closes a writer once no request holds it; one still held is dropped,
/// which closes it without waiting.
async fn close(name: &str, writer: Arc<LogWriter>) {
    match Arc::try_unwrap(writer) {
        Ok(writer) => {
            if let Err(err) = writer.close().await {
                tracing::warn!(log = name, error = %err, "closing the writer failed");
            }
        }
        Err(shared) => drop(shared),
    }
}

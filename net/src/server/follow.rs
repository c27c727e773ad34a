//! Follow reads (`GET /v1/logs/{name}/entries?follow=true`): one response
//! that streams the log's entries from an offset as they become durable,
//! as the binary framing (chunked) or as Server-Sent Events.
//!
//! A task on the connection's shard takes batches from a reader of the log
//! and sends them through a small bounded channel to the response body.
//! At the end of the log the reader waits to be woken: by the writer's
//! durability signal when this server holds the log's writer, else by its
//! own tail polling of the object store. The task ends when the client
//! goes (the body is dropped), at `max_entries` if given, at shutdown, or
//! on an error (an SSE `error` event; the binary stream is cut short, so
//! the client sees an incomplete body, never a clean end).

use super::handlers::BoxError;
use super::Shared;
use crate::error::ApiError;
use crate::framing::{self, FramedEntry, MEDIA_TYPE};
use crate::json::JsonEntry;
use bytes::{Bytes, BytesMut};
use futures::channel::{mpsc, oneshot};
use futures::future::{select, Either};
use futures::{SinkExt, Stream};
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use woodpecker_shards::{LogReader, ReadEntry};

/// Chunks buffered between the reading task and the connection.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Payload bytes gathered into one chunk at most (beyond its first entry).
const CHUNK_BYTES_MAX: usize = 256 << 10;
/// An idle SSE stream sends a comment this often, so proxies keep it open
/// and a client that went away is noticed.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How the entries are written.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Form {
    Binary,
    Sse,
}

type Chunk = Result<Frame<Bytes>, BoxError>;

/// The streaming response: the body ends when the task ends; dropping it
/// (the client went) tells the task to stop.
pub(super) fn respond(
    shared: Arc<Shared>,
    reader: LogReader,
    form: Form,
    max_entries: Option<u64>,
) -> Response<super::handlers::Body> {
    let (tx, rx) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let (gone_tx, gone_rx) = oneshot::channel::<()>();
    glommio::spawn_local(pump(shared, reader, form, max_entries, tx, gone_rx)).detach();
    let content_type = match form {
        Form::Binary => MEDIA_TYPE,
        Form::Sse => "text/event-stream",
    };
    let body = StreamBody::new(Chunks { rx, _gone: gone_tx });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body.boxed_unsync())
        .expect("a valid response")
}

struct Chunks {
    rx: mpsc::Receiver<Chunk>,
    /// Dropped with the body: the task sees its receiver cancelled.
    _gone: oneshot::Sender<()>,
}

impl Stream for Chunks {
    type Item = Chunk;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        Pin::new(&mut self.rx).poll_next(cx)
    }
}

async fn pump(
    shared: Arc<Shared>,
    mut reader: LogReader,
    form: Form,
    max_entries: Option<u64>,
    mut tx: mpsc::Sender<Chunk>,
    gone: oneshot::Receiver<()>,
) {
    let mut left = max_entries.unwrap_or(u64::MAX);
    let stopped = Box::pin(shared.stopped());
    let mut ended = Box::pin(select(gone, stopped));
    while left > 0 {
        let batch = {
            let next = Box::pin(reader.read_batch(CHUNK_BYTES_MAX));
            let wait = match form {
                Form::Sse => Either::Left(glommio::timer::sleep(SSE_KEEP_ALIVE)),
                Form::Binary => Either::Right(futures::future::pending::<()>()),
            };
            let next_or_idle = select(next, Box::pin(wait));
            match select(next_or_idle, ended.as_mut()).await {
                Either::Left((Either::Left((batch, _)), _)) => Some(batch),
                Either::Left((Either::Right(_), _)) => None,
                Either::Right(_) => return,
            }
        };
        let chunk = match batch {
            None => Ok(Bytes::from_static(b": keep-alive\n\n")),
            Some(Ok(mut entries)) => {
                entries.truncate(usize::try_from(left).unwrap_or(usize::MAX));
                left -= entries.len() as u64;
                encode(form, entries)
            }
            Some(Err(err)) => Err(ApiError::from(err)),
        };
        let (frame, last) = match chunk {
            Ok(bytes) => (Ok(Frame::data(bytes)), false),
            Err(err) => match form {
                Form::Sse => (Ok(Frame::data(sse_event("error", None, &err.json()))), true),
                Form::Binary => (Err(BoxError::from(err)), true),
            },
        };
        if tx.send(frame).await.is_err() || last {
            return;
        }
    }
}

/// One chunk of entries in the stream's form.
fn encode(form: Form, entries: Vec<ReadEntry>) -> Result<Bytes, ApiError> {
    let mut out = BytesMut::new();
    for entry in entries {
        let offset = entry.offset;
        let framed = FramedEntry::from(entry);
        match form {
            Form::Binary => framing::encode_into(&framed, &mut out),
            Form::Sse => {
                let json = serde_json::to_string(&JsonEntry::from_framed(&framed)?)
                    .expect("an entry serializes");
                out.extend_from_slice(&sse_event("entry", Some(offset), &json));
            }
        }
    }
    Ok(out.freeze())
}

/// A Server-Sent Event; `data` is one line of JSON.
fn sse_event(event: &str, id: Option<u64>, data: &str) -> Bytes {
    let id = id.map(|id| format!("id: {id}\n")).unwrap_or_default();
    Bytes::from(format!("{id}event: {event}\ndata: {data}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_are_one_json_line_each() {
        let entry = ReadEntry {
            offset: 7,
            payload: Bytes::from_static(b"line one\nline two"),
            properties: vec![(Bytes::from_static(b"k"), Bytes::from_static(b"v"))],
        };
        let text = encode(Form::Sse, vec![entry]).unwrap();
        let text = std::str::from_utf8(&text).unwrap();
        assert_eq!(
            text,
            "id: 7\nevent: entry\ndata: {\"offset\":7,\"payload\":\"line one\\nline two\",\"properties\":{\"k\":\"v\"}}\n\n"
        );
    }
}

//! The log writers an appender drives: the embedded engine's, or a
//! server's through the remote client (`--target`). Both refuse at once
//! when their queue is full, so an appender treats them alike.

use super::*;
use woodpecker_net::remote::{RemoteAck, RemoteWriter};

#[derive(Clone)]
pub(super) enum BenchWriter {
    Embedded(Arc<LogWriter>),
    Remote(Arc<RemoteWriter>),
}

/// An append's acknowledgement: the entries it made durable.
pub(super) enum Acked {
    One(Ack<u64>),
    Batch(Ack<Range<u64>>),
    RemoteOne(RemoteAck<u64>),
    RemoteBatch(RemoteAck<Range<u64>>),
}

impl Future for Acked {
    type Output = woodpecker_engine::Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let count = |range: Range<u64>| range.end - range.start;
        match self.get_mut() {
            Acked::One(ack) => Pin::new(ack).poll(cx).map_ok(|_| 1),
            Acked::Batch(ack) => Pin::new(ack).poll(cx).map_ok(count),
            Acked::RemoteOne(ack) => Pin::new(ack).poll(cx).map_ok(|_| 1),
            Acked::RemoteBatch(ack) => Pin::new(ack).poll(cx).map_ok(count),
        }
    }
}

impl BenchWriter {
    /// Sends one append (`batch` 1) or a batch of copies of `payload`;
    /// `Unavailable` when the writer's queue is full.
    pub(super) fn try_send(
        &self,
        payload: &Bytes,
        batch: usize,
    ) -> woodpecker_engine::Result<Acked> {
        let copies = || vec![payload.clone(); batch];
        match (self, batch) {
            (BenchWriter::Embedded(w), 1) => w.try_append(payload.clone()).map(Acked::One),
            (BenchWriter::Embedded(w), _) => w.try_append_batch(copies()).map(Acked::Batch),
            (BenchWriter::Remote(w), 1) => w.try_append(payload.clone()).map(Acked::RemoteOne),
            (BenchWriter::Remote(w), _) => w.try_append_batch(copies()).map(Acked::RemoteBatch),
        }
    }

    /// Closes the writer if this is its last handle (sealing an embedded
    /// writer's segment; a remote one's server keeps its own writer).
    pub(super) fn close(self) {
        match self {
            BenchWriter::Embedded(w) => {
                if let Ok(w) = Arc::try_unwrap(w) {
                    let _ = block_on(w.close());
                }
            }
            BenchWriter::Remote(w) => {
                if let Ok(w) = Arc::try_unwrap(w) {
                    let _ = block_on(w.close());
                }
            }
        }
    }
}

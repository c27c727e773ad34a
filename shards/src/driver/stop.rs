//! How a writer stops: failing for good, fenced, or closing, with an error
//! for each append that says what became of it.

use super::*;

impl LogDriver {
    /// Stops the writer for good after `cause`: every pending and later
    /// append fails. Appends whose fragment upload had started may be
    /// durable (`OutcomeUnknown`, even when fenced: a seal or create that
    /// meets the new epoch says nothing of the fragments in flight); the
    /// rest were never sent (`WriterFailed`, or `Fenced` if another writer
    /// took over).
    pub(super) fn fail(&mut self, cause: Error) {
        if self.failed.is_none() {
            tracing::warn!(log = self.log, error = %cause, "writer failed");
            self.failed = Some(stopped(&cause, false));
        }
        if self.failed_sent.is_none() {
            self.failed_sent = Some(stopped(&cause, true));
        }
        let err = self.failed.clone().expect("just set");
        let sent = self.failed_sent.clone().expect("set with failed");
        for pending in self.pipeline.drain(..) {
            let err = if pending.data.is_none() { &sent } else { &err };
            for ack in pending.acks {
                ack.complete(&Err(err.clone()));
            }
        }
        self.fail_unsent(&err);
    }

    /// Fails the open fragment, a batch being copied in and every queued
    /// request with `err`.
    pub(super) fn fail_unsent(&mut self, err: &Error) {
        if let Some(open) = self.open.take() {
            for ack in open.acks {
                ack.complete(&Err(err.clone()));
            }
            let (buf, index) = open.encoder.into_parts();
            self.index_scratch = index;
            self.share.give_back(buf);
        }
        if let Some(batch) = self.batch.take() {
            let _ = batch.ack.send(Err(err.clone()));
        }
        self.fail_queued();
    }

    /// The epoch watch saw another writer take the log: nothing more is
    /// sent, and appends not yet sent fail `Fenced`. Uploads in flight
    /// finish and are acknowledged if they land: a fragment durable after
    /// every fragment before it is in the log whatever the new writer's
    /// recovery does (its fence marker takes the first missing index).
    pub(super) fn fenced(&mut self, current: u64) {
        if self.failed.is_some() {
            return;
        }
        let err = Error::new(
            ErrorKind::Fenced,
            format!(
                "another writer took over the log (epoch {current}; this writer's is {})",
                self.epoch
            ),
        );
        tracing::warn!(log = self.log, epoch = self.epoch, current, "writer fenced");
        self.services.stats.fences.fetch_add(1, Ordering::Relaxed);
        self.failed = Some(err.clone());
        let unsent = self
            .pipeline
            .iter()
            .position(|p| p.data.is_some())
            .unwrap_or(self.pipeline.len());
        for pending in self.pipeline.drain(unsent..) {
            for ack in pending.acks {
                ack.complete(&Err(err.clone()));
            }
        }
        self.fail_unsent(&err);
    }

    /// Fails every request still queued (after a failure or close).
    pub(super) fn fail_queued(&mut self) {
        let err = self
            .failed
            .clone()
            .unwrap_or_else(|| Error::new(ErrorKind::Closed, "the writer is closed"));
        let stalled = self.stalled.take();
        for request in stalled
            .into_iter()
            .chain(std::iter::from_fn(|| self.ring.pop()))
        {
            match request {
                Request::Append { ack, .. } => {
                    let _ = ack.send(Err(err.clone()));
                }
                Request::Batch { ack, .. } => {
                    let _ = ack.send(Err(err.clone()));
                }
                Request::Close { ack } => {
                    let _ = ack.send(Err(err.clone()));
                }
            }
        }
    }

    pub(super) async fn begin_close(&mut self, ack: Option<oneshot::Sender<Result<()>>>) {
        self.ring.close();
        self.closing = Some(ack);
        if self.failed.is_none() {
            self.close_fragment().await;
        }
    }

    pub(super) async fn finish_close(&mut self) {
        let result = match self.failed.clone() {
            Some(err) => Err(err),
            None => {
                // Sealed already if its last fragment was the one closed
                // by `begin_close`; a segment rolled to just before has no
                // fragments yet and is sealed here, empty.
                if self.last_sealed != Some(self.segment.id) {
                    let seal = SealInfo {
                        end_offset: self.next_offset,
                        fragment_count: self.segment.next_fragment,
                        bytes: self.segment.bytes,
                    };
                    self.seal(self.segment.id, seal).await;
                }
                match self.failed.clone() {
                    Some(err) => Err(err),
                    None => Ok(()),
                }
            }
        };
        // Anything that raced into the ring before it closed.
        if self.failed.is_none() {
            self.failed = Some(Error::new(ErrorKind::Closed, "the writer is closed"));
        }
        self.fail_queued();
        if let Some(Some(ack)) = self.closing.take() {
            let _ = ack.send(result);
        }
    }
}

/// The error of an append on a writer stopped by `cause`: `OutcomeUnknown`
/// if the append's fragment was `sent` (its upload started: it may be in
/// the log whatever stopped the writer, a fence included, since the new
/// writer's recovery keeps every fragment that landed in order); else
/// `Fenced` if another writer took over, `WriterFailed` otherwise.
pub(super) fn stopped(cause: &Error, sent: bool) -> Error {
    let kind = match (sent, cause.kind()) {
        (true, _) => ErrorKind::OutcomeUnknown,
        (false, ErrorKind::Fenced) => ErrorKind::Fenced,
        (false, _) => ErrorKind::WriterFailed,
    };
    if cause.kind() == kind {
        return cause.clone();
    }
    let detail = if sent {
        format!(
            "may be durable: its fragment was sent, then the writer stopped: {}",
            cause.detail()
        )
    } else {
        format!("not written: the writer stopped: {}", cause.detail())
    };
    Error::new(kind, detail)
}

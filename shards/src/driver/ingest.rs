//! Taking requests from the ingest ring: appends and batches copied into
//! the open fragment, buffers drawn from the writer's share.

use super::*;

impl LogDriver {
    /// Pops and handles requests until the ring is empty, a buffer is
    /// missing, or the turn is over. Returns whether anything happened.
    pub(super) async fn ingest(&mut self) -> bool {
        let mut handled = 0;
        while handled < INGEST_TURN_MAX {
            if self.failed.is_some() || self.closing.is_some() {
                self.fail_queued();
                return handled > 0;
            }
            let progress = if self.batch.is_some() {
                self.continue_batch().await
            } else {
                let request = match self.stalled.take() {
                    Some(request) => request,
                    None => match self.ring.pop() {
                        Some(request) => request,
                        None => return handled > 0,
                    },
                };
                self.handle(request).await
            };
            match progress {
                Progress::Done => handled += 1,
                Progress::NeedBuffer(request) => {
                    self.stalled = request;
                    return handled > 0;
                }
            }
        }
        true
    }

    pub(super) async fn handle(&mut self, request: Request) -> Progress {
        match request {
            Request::Append {
                payload,
                props,
                ack,
                queued_at,
            } => {
                if !self.ensure_open() {
                    return Progress::NeedBuffer(Some(Request::Append {
                        payload,
                        props,
                        ack,
                        queued_at,
                    }));
                }
                match self.push_entry(&payload, &props).await {
                    Ok(Some(offset)) => {
                        let open = self.open.as_mut().expect("entry just pushed");
                        open.acks.push(Ack::One(ack, offset));
                        open.stamp(queued_at, 1);
                        self.close_if_entries_full().await;
                    }
                    Ok(None) => {
                        return Progress::NeedBuffer(Some(Request::Append {
                            payload,
                            props,
                            ack,
                            queued_at,
                        }))
                    }
                    Err(err) => {
                        let _ = ack.send(Err(err));
                    }
                }
                Progress::Done
            }
            Request::Batch {
                entries,
                expect,
                ack,
                queued_at,
            } => {
                if let Some(expected) = expect.filter(|&e| e != self.next_offset) {
                    let _ = ack.send(Err(Error::condition_failed(expected, self.next_offset)));
                    return Progress::Done;
                }
                if let Some(err) = self.check_batch(&entries) {
                    let _ = ack.send(Err(err));
                    return Progress::Done;
                }
                self.batch = Some(BatchInProgress {
                    entries,
                    next: 0,
                    first_offset: None,
                    ack,
                    queued_at,
                });
                self.continue_batch().await
            }
            Request::Close { ack } => {
                self.begin_close(Some(ack)).await;
                Progress::Done
            }
        }
    }

    pub(super) fn check_batch(&self, entries: &[(Bytes, Properties)]) -> Option<Error> {
        if entries.is_empty() {
            return Some(Error::new(ErrorKind::Invalid, "empty batch"));
        }
        let max = self.config().entry_bytes_max();
        entries
            .iter()
            .find(|(payload, props)| entry_bytes(payload, props) > max)
            .map(|_| too_large(max))
    }

    /// Copies the rest of the current batch in.
    pub(super) async fn continue_batch(&mut self) -> Progress {
        loop {
            let batch = self.batch.as_ref().expect("a batch is in progress");
            if batch.next == batch.entries.len() {
                let batch = self.batch.take().expect("checked");
                let first = batch.first_offset.expect("batches are not empty");
                let ack = Ack::Batch(batch.ack, first..self.next_offset);
                let open = self.open.as_mut().expect("holds the batch's last entry");
                open.acks.push(ack);
                open.stamp(batch.queued_at, batch.entries.len() as u64);
                self.close_if_entries_full().await;
                return Progress::Done;
            }
            if !self.ensure_open() {
                return Progress::NeedBuffer(None);
            }
            let (payload, props) = {
                let batch = self.batch.as_ref().expect("checked");
                batch.entries[batch.next].clone()
            };
            match self.push_entry(&payload, &props).await {
                Ok(Some(offset)) => {
                    let batch = self.batch.as_mut().expect("checked");
                    batch.first_offset.get_or_insert(offset);
                    batch.next += 1;
                    if batch.next < batch.entries.len() {
                        self.close_if_entries_full().await;
                    }
                }
                Ok(None) => return Progress::NeedBuffer(None),
                Err(err) => {
                    let batch = self.batch.take().expect("checked");
                    let _ = batch.ack.send(Err(err));
                    return Progress::Done;
                }
            }
        }
    }

    /// Opens a fragment if none is open; false if no buffer is free.
    pub(super) fn ensure_open(&mut self) -> bool {
        if self.open.is_some() {
            return true;
        }
        let Some(buf) = self.share.try_take() else {
            return false;
        };
        let meta = FragmentMeta {
            log_id: self.log,
            segment_id: self.segment.id,
            fragment_index: self.segment.next_fragment,
            writer_epoch: self.epoch,
            first_offset: self.next_offset,
        };
        let index = std::mem::take(&mut self.index_scratch);
        self.open = Some(OpenFragment {
            encoder: FragmentEncoder::new(buf, index, meta),
            acks: self.spare_acks.pop().unwrap_or_default(),
            opened_at: Instant::now(),
            payload_bytes: 0,
            stamps: Vec::new(),
        });
        true
    }

    /// Copies one entry into the open fragment, closing it first if the
    /// entry does not fit. `Ok(None)`: a new buffer is needed and none is free.
    pub(super) async fn push_entry(
        &mut self,
        payload: &[u8],
        props: &Properties,
    ) -> Result<Option<u64>> {
        let max = self.config().entry_bytes_max();
        if entry_bytes(payload, props) > max {
            return Err(too_large(max));
        }
        let open = self.open.as_mut().expect("caller opened a fragment");
        match open.encoder.push(payload, props) {
            Ok(offset) => {
                open.payload_bytes += payload.len() as u64;
                self.next_offset = offset + 1;
                Ok(Some(offset))
            }
            Err(FormatError::Full) => {
                self.close_fragment().await;
                if !self.ensure_open() {
                    return Ok(None);
                }
                let open = self.open.as_mut().expect("just opened");
                let offset = open.encoder.push(payload, props).map_err(Error::from)?;
                open.payload_bytes += payload.len() as u64;
                self.next_offset = offset + 1;
                Ok(Some(offset))
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// Bytes an entry counts against `entry_bytes_max`: its payload and, for
/// each property, its key, its value and their
/// [`PROPERTY_OVERHEAD_BYTES`] (the lengths the fragment stores with them).
pub fn entry_bytes(payload: &[u8], props: &Properties) -> usize {
    payload.len()
        + props
            .iter()
            .map(|(k, v)| PROPERTY_OVERHEAD_BYTES + k.len() + v.len())
            .sum::<usize>()
}

/// What a property costs an entry besides its key and value: the key's
/// `u16` length and the value's `u32` length.
pub const PROPERTY_OVERHEAD_BYTES: usize = 2 + 4;

pub(super) fn too_large(max: usize) -> Error {
    Error::new(
        ErrorKind::Invalid,
        format!("entry larger than {max} bytes (fragment_bytes_max less framing)"),
    )
}

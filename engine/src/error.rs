//! The public error: a coarse [`ErrorKind`] the caller can act on, and the
//! detailed cause for people.

use crate::format::FormatError;
use crate::meta::MetaError;
use crate::store::StoreError;

/// What the caller should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Another writer took over the log; this writer must stop. This
    /// append was not written (one whose upload had started when the
    /// writer stopped gets `OutcomeUnknown` instead).
    Fenced,
    /// Transient: retry later (object store or etcd unreachable, throttled,
    /// or a bounded queue is full).
    Unavailable,
    /// Stored data failed a checksum or structural check; never returned as data.
    Corrupt,
    /// The request is wrong: bad argument, bad configuration.
    Invalid,
    /// The named log does not exist.
    NotFound,
    /// A log of that name exists already.
    AlreadyExists,
    /// The writer, reader or client was closed.
    Closed,
    /// The writer stopped for good after a failure it could not ride out
    /// (object store or etcd unreachable past its deadline); this append was
    /// never sent to storage. Open a new writer (it recovers the log) and
    /// append again.
    WriterFailed,
    /// The append may or may not be durable: its fragment's upload was
    /// attempted and did not end definitely, so after recovery it may be in
    /// the log. Read the log (or append conditionally) before appending it
    /// again, or it may appear twice. The writer has stopped, as with
    /// `WriterFailed`.
    OutcomeUnknown,
    /// A conditional append expected the log to end at another offset;
    /// nothing was written. [`Error::log_end`] gives the log's end.
    ConditionFailed,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind:?}: {detail}")]
pub struct Error {
    kind: ErrorKind,
    detail: String,
    /// The log's end (next offset), for `ConditionFailed`.
    log_end: Option<u64>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Error {
        Error {
            kind,
            detail: detail.into(),
            log_end: None,
        }
    }

    /// A conditional append's refusal: it expected the log to end at
    /// `expected`, and it ends at `end`.
    pub fn condition_failed(expected: u64, end: u64) -> Error {
        Error::condition_failed_with(
            end,
            format!("the append expected the log to end at {expected}; it ends at {end}"),
        )
    }

    /// [`Error::condition_failed`] with the detail given (as a remote
    /// server words it).
    pub fn condition_failed_with(end: u64, detail: impl Into<String>) -> Error {
        Error {
            log_end: Some(end),
            ..Error::new(ErrorKind::ConditionFailed, detail)
        }
    }

    /// The log's end (its next offset) when a conditional append was
    /// refused.
    pub fn log_end(&self) -> Option<u64> {
        self.log_end
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Retry the same call later: nothing was written.
    pub fn is_retriable(&self) -> bool {
        self.kind == ErrorKind::Unavailable
    }

    /// The writer is gone: open a new one to go on appending.
    pub fn needs_reopen(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::WriterFailed | ErrorKind::OutcomeUnknown | ErrorKind::Fenced
        )
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Error {
        let kind = match err {
            StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::NotFound(_) | StoreError::AlreadyExists(_) | StoreError::Invalid(_) => {
                ErrorKind::Invalid
            }
        };
        Error::new(kind, err.to_string())
    }
}

impl From<MetaError> for Error {
    fn from(err: MetaError) -> Error {
        let kind = match err {
            MetaError::Fenced { .. } => ErrorKind::Fenced,
            MetaError::Unavailable(_) => ErrorKind::Unavailable,
            MetaError::Corrupt(_) => ErrorKind::Corrupt,
            // The record's state forbids the call: retrying cannot help.
            MetaError::Conflict(_) | MetaError::Invalid(_) => ErrorKind::Invalid,
            MetaError::NotFound(_) => ErrorKind::NotFound,
            MetaError::AlreadyExists(_) => ErrorKind::AlreadyExists,
        };
        Error::new(kind, err.to_string())
    }
}

impl From<FormatError> for Error {
    fn from(err: FormatError) -> Error {
        let kind = match err {
            FormatError::Corrupt(_) => ErrorKind::Corrupt,
            FormatError::Full | FormatError::TooLarge(_) => ErrorKind::Invalid,
        };
        Error::new(kind, err.to_string())
    }
}

//! The API's errors: a stable machine-readable code, an HTTP status, and
//! a message, as the JSON body `{"code": "...", "message": "..."}`. The
//! same table maps codes to the engine's [`ErrorKind`]s both ways, so the
//! remote client reports the errors the embedded client does.

use serde::{Deserialize, Serialize};
use woodpecker_engine::{Error, ErrorKind};

/// Seconds a client is told to wait before retrying a retriable error.
pub const RETRY_AFTER_S: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// The request cannot be parsed or an argument is out of range.
    Malformed,
    /// No such route, or no such log.
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The log exists already.
    Exists,
    /// A conditional append's expected offset is not the log's end.
    ConditionFailed,
    /// An idempotent batch's sequence number is older than the producer's
    /// window remembers: whether it was written cannot be told.
    SequenceTooOld,
    /// A body, batch or entry over its limit.
    TooLarge,
    /// The response cannot be given in the requested format.
    NotAcceptable,
    /// Another writer took over the log; this server reopens it only when
    /// asked.
    Fenced,
    /// No bearer token, or not one the server accepts.
    Unauthorized,
    /// The token may not do this (a read-only token on a write).
    Forbidden,
    /// Retriable: the object store or etcd is unreachable, or a queue is
    /// full. Nothing was written.
    Unavailable,
    /// The log's writer stopped after a failure; this append was never
    /// sent. Retrying opens a new writer.
    WriterFailed,
    /// The append may or may not be durable. Read the log (or append
    /// conditionally, or with a producer id) before appending it again.
    OutcomeUnknown,
    /// Stored data failed a check.
    Corrupt,
    /// The server is shutting down.
    Closed,
    Internal,
}

impl Code {
    pub fn status(self) -> u16 {
        match self {
            Code::Malformed => 400,
            Code::Unauthorized => 401,
            Code::Forbidden => 403,
            Code::NotFound => 404,
            Code::MethodNotAllowed => 405,
            Code::NotAcceptable => 406,
            Code::Exists | Code::Fenced | Code::SequenceTooOld => 409,
            Code::ConditionFailed => 412,
            Code::TooLarge => 413,
            Code::Unavailable | Code::WriterFailed | Code::Closed => 503,
            Code::OutcomeUnknown | Code::Corrupt | Code::Internal => 500,
        }
    }

    /// Whether the same request may simply be sent again later.
    pub fn retriable(self) -> bool {
        matches!(self, Code::Unavailable | Code::WriterFailed | Code::Closed)
    }

    pub fn from_kind(kind: ErrorKind) -> Code {
        match kind {
            ErrorKind::Fenced => Code::Fenced,
            ErrorKind::Unavailable => Code::Unavailable,
            ErrorKind::Corrupt => Code::Corrupt,
            ErrorKind::Invalid => Code::Malformed,
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::AlreadyExists => Code::Exists,
            ErrorKind::Closed => Code::Closed,
            ErrorKind::WriterFailed => Code::WriterFailed,
            ErrorKind::OutcomeUnknown => Code::OutcomeUnknown,
            ErrorKind::ConditionFailed => Code::ConditionFailed,
        }
    }

    /// The engine's kind for a code, for the remote client.
    pub fn kind(self) -> ErrorKind {
        match self {
            Code::Fenced => ErrorKind::Fenced,
            Code::Unavailable => ErrorKind::Unavailable,
            Code::Corrupt | Code::Internal => ErrorKind::Corrupt,
            Code::NotFound => ErrorKind::NotFound,
            Code::Exists => ErrorKind::AlreadyExists,
            Code::Closed => ErrorKind::Closed,
            Code::WriterFailed => ErrorKind::WriterFailed,
            Code::OutcomeUnknown => ErrorKind::OutcomeUnknown,
            Code::ConditionFailed => ErrorKind::ConditionFailed,
            Code::Malformed
            | Code::MethodNotAllowed
            | Code::SequenceTooOld
            | Code::TooLarge
            | Code::NotAcceptable
            | Code::Unauthorized
            | Code::Forbidden => ErrorKind::Invalid,
        }
    }
}

/// An error answered to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code:?} ({status}): {message}", status = self.code.status())]
pub struct ApiError {
    pub code: Code,
    pub message: String,
    /// With `condition_failed`: the log's end (its next offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_offset: Option<u64>,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            end_offset: None,
        }
    }

    pub fn malformed(message: impl Into<String>) -> ApiError {
        ApiError::new(Code::Malformed, message)
    }

    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("an error serializes")
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> ApiError {
        ApiError {
            end_offset: err.log_end(),
            ..ApiError::new(Code::from_kind(err.kind()), err.detail())
        }
    }
}

impl From<ApiError> for Error {
    fn from(err: ApiError) -> Error {
        match (err.code, err.end_offset) {
            (Code::ConditionFailed, Some(end)) => Error::condition_failed_with(end, err.message),
            _ => Error::new(err.code.kind(), err.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_engine_kind_survives_the_round_trip() {
        use ErrorKind::*;
        for kind in [
            Fenced,
            Unavailable,
            Corrupt,
            Invalid,
            NotFound,
            AlreadyExists,
            Closed,
            WriterFailed,
            OutcomeUnknown,
            ConditionFailed,
        ] {
            assert_eq!(Code::from_kind(kind).kind(), kind);
        }
    }

    #[test]
    fn the_body_is_stable_json() {
        let err = ApiError::new(Code::ConditionFailed, "end is 7");
        assert_eq!(
            err.json(),
            r#"{"code":"condition_failed","message":"end is 7"}"#
        );
        assert_eq!(Code::ConditionFailed.status(), 412);
    }

    #[test]
    fn a_refused_condition_carries_the_log_end_both_ways() {
        let api = ApiError::from(Error::condition_failed(3, 7));
        assert_eq!((api.code, api.end_offset), (Code::ConditionFailed, Some(7)));
        assert!(api.json().contains(r#""end_offset":7"#), "{}", api.json());
        let back: ApiError = serde_json::from_str(&api.json()).unwrap();
        let err = Error::from(back);
        assert_eq!(
            (err.kind(), err.log_end()),
            (ErrorKind::ConditionFailed, Some(7))
        );
    }
}

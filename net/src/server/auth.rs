//! Bearer-token authentication. With no token configured the API is open
//! (as for a server reachable only from its own host); with tokens, every
//! route but the probes (`/healthz`, `/readyz`) needs
//! `Authorization: Bearer <token>`. A read-only token may only read
//! (`GET`). Tokens are compared in constant time, and neither they nor the
//! header ever reach a log or an error body.

use crate::error::{ApiError, Code};
use crate::routes::Route;
use subtle::ConstantTimeEq;

/// The tokens a server accepts.
#[derive(Clone, Default)]
pub struct Auth {
    tokens: Vec<Token>,
}

#[derive(Clone)]
struct Token {
    secret: Vec<u8>,
    read_only: bool,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let read_only = self.tokens.iter().filter(|t| t.read_only).count();
        write!(
            f,
            "Auth {{ tokens: {}, read_only: {read_only} }}",
            self.tokens.len() - read_only
        )
    }
}

impl Auth {
    /// Accepts `tokens` for everything and `read_only` for reads (empty
    /// strings are ignored).
    pub fn new(tokens: &[String], read_only: &[String]) -> Auth {
        let token = |read_only| {
            move |secret: &String| Token {
                secret: secret.as_bytes().to_vec(),
                read_only,
            }
        };
        let tokens = tokens
            .iter()
            .filter(|t| !t.is_empty())
            .map(token(false))
            .chain(read_only.iter().filter(|t| !t.is_empty()).map(token(true)))
            .collect();
        Auth { tokens }
    }

    /// No token configured: every request is let in.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Whether a request with these headers may take this route.
    pub fn check(
        &self,
        route: &Route,
        method: &str,
        headers: &http::HeaderMap,
    ) -> Result<(), ApiError> {
        if self.is_open() || matches!(route, Route::Healthz | Route::Readyz) {
            return Ok(());
        }
        let given = headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::new(Code::Unauthorized, "this server needs a bearer token"))?;
        // Every token is compared, so the time taken does not tell which
        // (or whether one) matched.
        let mut matched: Option<bool> = None;
        for token in &self.tokens {
            if bool::from(token.secret.as_slice().ct_eq(given.as_bytes())) {
                matched = Some(matched.unwrap_or(true) && token.read_only);
            }
        }
        match matched {
            None => Err(ApiError::new(
                Code::Unauthorized,
                "the bearer token is not one this server accepts",
            )),
            Some(true) if !matches!(method, "GET" | "HEAD") => Err(ApiError::new(
                Code::Forbidden,
                "a read-only token cannot change anything",
            )),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn tokens_let_in_what_they_may() {
        let auth = Auth::new(
            &["full-token".into()],
            &["read-token".into(), String::new()],
        );
        let append = Route::Append("l".into());
        let read = Route::Read("l".into());
        let none = http::HeaderMap::new();
        assert_eq!(
            auth.check(&read, "GET", &none).unwrap_err().code,
            Code::Unauthorized
        );
        assert!(auth.check(&Route::Healthz, "GET", &none).is_ok());
        assert!(auth.check(&Route::Readyz, "GET", &none).is_ok());
        let wrong = headers("Bearer full-tokeN");
        assert_eq!(
            auth.check(&read, "GET", &wrong).unwrap_err().code,
            Code::Unauthorized
        );
        let basic = headers("Basic full-token");
        assert_eq!(
            auth.check(&read, "GET", &basic).unwrap_err().code,
            Code::Unauthorized
        );
        let full = headers("Bearer full-token");
        assert!(auth.check(&append, "POST", &full).is_ok());
        let reader = headers("Bearer read-token");
        assert!(auth.check(&read, "GET", &reader).is_ok());
        assert_eq!(
            auth.check(&append, "POST", &reader).unwrap_err().code,
            Code::Forbidden
        );
        assert!(Auth::new(&[], &[]).check(&append, "POST", &none).is_ok());
    }

    #[test]
    fn debug_output_holds_no_token() {
        let auth = Auth::new(&["s3cr3t-value".into()], &["r3ad-value".into()]);
        let shown = format!("{auth:?}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("r3ad"),
            "{shown}"
        );
    }
}

//! The API's routes: one table, which the router matches against and the
//! OpenAPI file (docs/openapi.yaml) is checked against.

use crate::error::{ApiError, Code};

/// A matched request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    ListLogs,
    CreateLog,
    LogInfo(String),
    DeleteLog(String),
    Append(String),
    Read(String),
    Tail(String),
    Truncate(String),
    OpenWriter(String),
    Healthz,
    Readyz,
    Metrics,
}

/// Every route: method and path template (`{name}` is a log name).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/logs"),
    ("POST", "/v1/logs"),
    ("GET", "/v1/logs/{name}"),
    ("DELETE", "/v1/logs/{name}"),
    ("POST", "/v1/logs/{name}/entries"),
    ("GET", "/v1/logs/{name}/entries"),
    ("GET", "/v1/logs/{name}/tail"),
    ("POST", "/v1/logs/{name}/truncate"),
    ("POST", "/v1/logs/{name}/writer"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
];

/// Matches a request's method and path (without the query).
pub fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let name = |s: &str| s.to_string();
    let by_method = |get: Option<Route>, post: Option<Route>, delete: Option<Route>| {
        let chosen = match method {
            "GET" | "HEAD" => get,
            "POST" => post,
            "DELETE" => delete,
            _ => None,
        };
        chosen.ok_or_else(|| {
            ApiError::new(
                Code::MethodNotAllowed,
                format!("{method} is not allowed on {path}"),
            )
        })
    };
    match segments.as_slice() {
        ["v1", "logs"] => by_method(Some(Route::ListLogs), Some(Route::CreateLog), None),
        ["v1", "logs", log] if !log.is_empty() => by_method(
            Some(Route::LogInfo(name(log))),
            None,
            Some(Route::DeleteLog(name(log))),
        ),
        ["v1", "logs", log, "entries"] if !log.is_empty() => by_method(
            Some(Route::Read(name(log))),
            Some(Route::Append(name(log))),
            None,
        ),
        ["v1", "logs", log, "tail"] if !log.is_empty() => {
            by_method(Some(Route::Tail(name(log))), None, None)
        }
        ["v1", "logs", log, "truncate"] if !log.is_empty() => {
            by_method(None, Some(Route::Truncate(name(log))), None)
        }
        ["v1", "logs", log, "writer"] if !log.is_empty() => {
            by_method(None, Some(Route::OpenWriter(name(log))), None)
        }
        ["healthz"] => by_method(Some(Route::Healthz), None, None),
        ["readyz"] => by_method(Some(Route::Readyz), None, None),
        ["metrics"] => by_method(Some(Route::Metrics), None, None),
        _ => Err(ApiError::new(Code::NotFound, format!("no route {path}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_route_matches_and_nothing_else_does() {
        for (method, template) in ROUTES {
            let path = template.replace("{name}", "a-log");
            assert!(route(method, &path).is_ok(), "{method} {path}");
        }
        let err = route("PUT", "/v1/logs").unwrap_err();
        assert_eq!(err.code, Code::MethodNotAllowed);
        for path in [
            "/",
            "/v1",
            "/v1/logs/",
            "/v1/logs/a/b",
            "/v1/logs//entries",
            "/v2/logs",
        ] {
            let err = route("GET", path).unwrap_err();
            assert!(
                matches!(err.code, Code::NotFound | Code::MethodNotAllowed),
                "{path}"
            );
        }
        assert_eq!(
            route("POST", "/v1/logs/x/entries").unwrap(),
            Route::Append("x".to_string())
        );
    }
}

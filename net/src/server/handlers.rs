//! One request: route it, run it against the client, answer it.

use super::dedup::Begin;
use super::{read, shutting_down, InFlight, Shared};
use crate::error::{ApiError, Code, RETRY_AFTER_S};
use crate::framing::{self, FramedEntry, Limits};
use crate::json::{
    JsonAppended, JsonCreate, JsonEntries, JsonLog, JsonLogInfo, JsonLogPage, JsonTail,
    JsonTruncate, JsonWriter,
};
use crate::routes::{route, Route};
use crate::timing::{ServerTiming, SERVER_TIMING};
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};
use woodpecker_shards::{LogWriter, Properties};

/// A response body: whole, or streamed (follow reads).
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Logs per list page when the request does not say.
const LIST_PAGE_DEFAULT: usize = 1000;
/// Longest producer id of an idempotent append.
const PRODUCER_ID_BYTES_MAX: usize = 256;
/// How long readiness checks may take.
const READY_LIMIT: Duration = Duration::from_secs(5);

pub(crate) async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Response<Body> {
    let _in_flight = InFlight::new(&shared);
    let started = Instant::now();
    let routed = route(request.method().as_str(), request.uri().path());
    let label = routed.as_ref().map_or("unknown", route_label);
    let response = match routed {
        Err(err) => error_response(&err),
        Ok(_) if shared.stopping() => error_response(&shutting_down()),
        Ok(route) => {
            match shared
                .config
                .auth
                .check(&route, request.method().as_str(), request.headers())
            {
                Err(err) => error_response(&err),
                Ok(()) => match run(&shared, route, request).await {
                    Ok(response) => response,
                    Err(err) => error_response(&err),
                },
            }
        }
    };
    shared
        .requests
        .with_label_values(&[label, response.status().as_str()])
        .inc();
    shared
        .request_seconds
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn run(
    shared: &Arc<Shared>,
    route: Route,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let query = query(&request);
    let client = &shared.client;
    match route {
        Route::Healthz => Ok(text(StatusCode::OK, "ok\n")),
        Route::Readyz => {
            client.check_ready(READY_LIMIT).await?;
            Ok(text(StatusCode::OK, "ready\n"))
        }
        Route::Metrics => {
            let mut out = String::new();
            prometheus::TextEncoder::new()
                .encode_utf8(&shared.metrics.gather(), &mut out)
                .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
            Ok(response(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                out.into(),
            ))
        }
        Route::ListLogs => {
            let prefix = query.get("prefix").map(String::as_str).unwrap_or("");
            let after = query.get("after").map(String::as_str);
            let limit = number(&query, "limit")?.map_or(LIST_PAGE_DEFAULT, |n| n as usize);
            if limit == 0 {
                return Err(ApiError::malformed("limit must be positive"));
            }
            let mut logs = client.list_logs().await?;
            logs.sort_by(|a, b| a.name.cmp(&b.name));
            let mut page: Vec<JsonLog> = logs
                .iter()
                .filter(|log| log.name.starts_with(prefix))
                .filter(|log| after.is_none_or(|after| log.name.as_str() > after))
                .take(limit + 1)
                .map(JsonLog::from)
                .collect();
            let next_after = (page.len() > limit).then(|| {
                page.truncate(limit);
                page[limit - 1].name.clone()
            });
            json(
                StatusCode::OK,
                &JsonLogPage {
                    logs: page,
                    next_after,
                },
            )
        }
        Route::CreateLog => {
            let body: JsonCreate = json_body(shared, request).await?;
            let log = client.create_log(&body.name).await?;
            json(StatusCode::CREATED, &JsonLog::from(&log))
        }
        Route::LogInfo(name) => {
            let status = client.log_status(&name).await?;
            let info = JsonLogInfo {
                log: JsonLog::from(&status.log),
                end_offset: status.end_offset,
                segments: status.segments,
                writer_epoch: shared.writers.held_epoch(&name).await,
            };
            json(StatusCode::OK, &info)
        }
        Route::DeleteLog(name) => {
            shared.writers.forget(&name).await;
            shared.dedup.forget(&name);
            client.delete_log(&name).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        Route::Append(name) => append(shared, &name, &query, request).await,
        Route::Read(name) => read::read(shared, &name, &query, request.headers()).await,
        Route::Tail(name) => {
            let status = client.log_status(&name).await?;
            json(
                StatusCode::OK,
                &JsonTail {
                    end_offset: status.end_offset,
                },
            )
        }
        Route::Truncate(name) => {
            let body: JsonTruncate = json_body(shared, request).await?;
            client.truncate(&name, body.offset).await?;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        Route::OpenWriter(name) => {
            let writer = shared.writers.reopen(&name).await?;
            let answer = JsonWriter {
                epoch: writer.epoch(),
                durable_offset: writer.durable_offset(),
            };
            json(StatusCode::OK, &answer)
        }
    }
}

/// Appends a batch (binary framing or JSON) and answers once all of it is
/// durable.
async fn append(
    shared: &Arc<Shared>,
    name: &str,
    query: &HashMap<String, String>,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let started = Instant::now();
    let is_json = content_type(request.headers()).starts_with("application/json");
    let reopen = query.get("reopen").is_some_and(|v| v == "true");
    let expect = number(query, "expect_offset")?;
    let producer = producer(query)?;
    let follows = number(query, "follows")?;
    match (&producer, follows) {
        (_, None) => {}
        (Some((_, seq)), Some(follows)) if follows < *seq => {}
        _ => {
            return Err(ApiError::malformed(
                "follows names an earlier batch of the same producer: it needs producer and \
                 seq, and must be below seq",
            ))
        }
    }
    let writer = shared.writers.writer(name, reopen).await?;
    let limits = Limits {
        entries_max: shared.config.batch_entries_max,
        entry_bytes_max: writer.entry_bytes_max(),
    };
    let entries = if is_json {
        let body = body_bytes(shared, request).await?;
        let parsed: JsonEntries = serde_json::from_slice(&body)
            .map_err(|e| ApiError::malformed(format!("append body: {e}")))?;
        if parsed.entries.len() > limits.entries_max {
            return Err(too_large(format!(
                "more than {} entries",
                limits.entries_max
            )));
        }
        parsed
            .entries
            .into_iter()
            .enumerate()
            .map(|(i, entry)| entry.into_framed(i))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        framed_body(shared, request, limits).await?
    };
    let body_read = Instant::now();
    if entries.is_empty() {
        return Err(ApiError::malformed("an append needs at least one entry"));
    }
    for (i, entry) in entries.iter().enumerate() {
        let bytes = woodpecker_shards::entry_bytes(&entry.payload, &entry.properties);
        if bytes > limits.entry_bytes_max {
            return Err(too_large(format!(
                "entry {i} holds {bytes} bytes, more than the limit of {}",
                limits.entry_bytes_max
            )));
        }
    }
    let batch: Vec<_> = entries
        .into_iter()
        .map(|entry| (entry.payload, entry.properties))
        .collect();
    let mut ordered = body_read;
    let range = match producer {
        None => write(shared, name, &writer, expect, batch, || {}).await?,
        Some((producer, seq)) => match shared.dedup.begin(name, &producer, seq) {
            Begin::Append(pending) => {
                let result = match follows {
                    Some(follows) => shared.dedup.wait_for(name, &producer, follows).await,
                    None => Ok(()),
                };
                ordered = Instant::now();
                let result = match result {
                    Ok(()) => {
                        let placed = || shared.dedup.placed(&pending);
                        write(shared, name, &writer, expect, batch, placed).await
                    }
                    Err(err) => Err(err),
                };
                shared.dedup.finish(name, &producer, seq, &pending, &result);
                result?
            }
            Begin::Again(pending) => pending.wait().await?,
            Begin::Written(range) => range,
            Begin::Unknown => {
                return Err(ApiError::new(
                    Code::OutcomeUnknown,
                    format!(
                        "batch {seq} of producer {producer:?} was sent before and its outcome \
                         is unknown; read the log to find out whether it was written"
                    ),
                ))
            }
            Begin::TooOld { oldest } => {
                return Err(ApiError::new(
                    Code::SequenceTooOld,
                    format!(
                        "batch {seq} of producer {producer:?} is older than the oldest the \
                         server remembers ({oldest}); read the log to find out whether it \
                         was written"
                    ),
                ))
            }
        },
    };
    let timing = ServerTiming {
        body: body_read - started,
        order: ordered - body_read,
        durable: ordered.elapsed(),
    };
    let mut answer = json(
        StatusCode::OK,
        &JsonAppended {
            first_offset: range.start,
            last_offset: range.end - 1,
            count: range.end - range.start,
        },
    )?;
    if let Ok(value) = http::HeaderValue::from_str(&timing.header_value()) {
        answer.headers_mut().insert(SERVER_TIMING, value);
    }
    Ok(answer)
}

/// Appends the batch (if the log ends at `expect`, when given); calls
/// `placed` once its place in the writer's line is taken.
async fn write(
    shared: &Shared,
    name: &str,
    writer: &Arc<LogWriter>,
    expect: Option<u64>,
    batch: Vec<(Bytes, Properties)>,
    placed: impl FnOnce(),
) -> Result<Range<u64>, ApiError> {
    let ack = match expect {
        Some(expected) => writer.append_batch_expecting(expected, batch),
        None => writer.append_batch_with(batch),
    };
    placed();
    match ack.await {
        Ok(range) => Ok(range),
        Err(err) => {
            shared.writers.failed(name, writer, &err).await;
            Err(err.into())
        }
    }
}

/// The producer id and sequence number of an idempotent batch.
fn producer(query: &HashMap<String, String>) -> Result<Option<(String, u64)>, ApiError> {
    match (query.get("producer"), number(query, "seq")?) {
        (None, None) => Ok(None),
        (Some(id), Some(seq)) if !id.is_empty() && id.len() <= PRODUCER_ID_BYTES_MAX => {
            Ok(Some((id.clone(), seq)))
        }
        (Some(_), Some(_)) => Err(ApiError::malformed(format!(
            "producer must be 1 to {PRODUCER_ID_BYTES_MAX} bytes"
        ))),
        _ => Err(ApiError::malformed(
            "producer and seq go together: an idempotent batch needs both",
        )),
    }
}

fn too_large(message: String) -> ApiError {
    ApiError::new(Code::TooLarge, message)
}

/// The request body, refused past the body limit.
/// The request's body, at most `body_bytes_max` of it (refused at once if
/// its declared length is over).
fn limited_body(
    shared: &Shared,
    request: Request<Incoming>,
) -> Result<Limited<Incoming>, ApiError> {
    let max = shared.config.body_bytes_max;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(body_too_large(max));
    }
    Ok(Limited::new(request.into_body(), max))
}

fn body_too_large(max: usize) -> ApiError {
    too_large(format!("the body is over the limit of {max} bytes"))
}

/// A body's read failure: over the limit, or the connection's.
fn body_error(max: usize, err: Box<dyn std::error::Error + Send + Sync>) -> ApiError {
    if err
        .downcast_ref::<http_body_util::LengthLimitError>()
        .is_some()
    {
        body_too_large(max)
    } else {
        ApiError::malformed(format!("reading the body: {err}"))
    }
}

async fn body_bytes(shared: &Shared, request: Request<Incoming>) -> Result<Bytes, ApiError> {
    let max = shared.config.body_bytes_max;
    match limited_body(shared, request)?.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) => Err(body_error(max, err)),
    }
}

/// Decodes a framed body as its chunks arrive, without joining them
/// (entries are slices of the chunks they lie in).
async fn framed_body(
    shared: &Shared,
    request: Request<Incoming>,
    limits: Limits,
) -> Result<Vec<FramedEntry>, ApiError> {
    let max = shared.config.body_bytes_max;
    let framing_error = |e: framing::FramingError| match e {
        framing::FramingError::Truncated { .. } => ApiError::malformed(e.to_string()),
        _ => too_large(e.to_string()),
    };
    let mut body = limited_body(shared, request)?;
    let mut decoder = framing::ChunkDecoder::new(false, limits);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| body_error(max, err))?;
        if let Ok(data) = frame.into_data() {
            decoder.push(data).map_err(framing_error)?;
        }
    }
    decoder.finish().map_err(framing_error)
}

async fn json_body<T: serde::de::DeserializeOwned>(
    shared: &Shared,
    request: Request<Incoming>,
) -> Result<T, ApiError> {
    let body = body_bytes(shared, request).await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::malformed(format!("body: {e}")))
}

pub(crate) fn content_type(headers: &http::HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The query's parameters (the last of a repeated name wins).
fn query(request: &Request<Incoming>) -> HashMap<String, String> {
    let raw = request.uri().query().unwrap_or("");
    url::form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub(crate) fn number(query: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    query
        .get(name)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| ApiError::malformed(format!("{name}={v:?} is not a number")))
        })
        .transpose()
}

/// A body sent whole.
fn whole(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn response(status: StatusCode, content_type: &str, body: Bytes) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(whole(body))
        .expect("a valid response")
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn empty(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(whole(Bytes::new()))
        .expect("a valid response")
}

pub(crate) fn json<T: serde::Serialize>(
    status: StatusCode,
    value: &T,
) -> Result<Response<Body>, ApiError> {
    let body =
        serde_json::to_vec(value).map_err(|e| ApiError::new(Code::Internal, e.to_string()))?;
    Ok(response(status, "application/json", body.into()))
}

fn error_response(err: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(err.code.status()).expect("a valid status");
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if err.code.retriable() {
        builder = builder.header(header::RETRY_AFTER, RETRY_AFTER_S);
    }
    if err.code == Code::Unauthorized {
        builder = builder.header(header::WWW_AUTHENTICATE, "Bearer");
    }
    if err.code == Code::TooLarge {
        // The body may be left unread: the connection cannot carry another
        // request, and the client must know not to reuse it.
        builder = builder.header(header::CONNECTION, "close");
    }
    builder
        .body(whole(Bytes::from(err.json())))
        .expect("a valid response")
}

fn route_label(route: &Route) -> &'static str {
    match route {
        Route::ListLogs => "list_logs",
        Route::CreateLog => "create_log",
        Route::LogInfo(_) => "log_info",
        Route::DeleteLog(_) => "delete_log",
        Route::Append(_) => "append",
        Route::Read(_) => "read",
        Route::Tail(_) => "tail",
        Route::Truncate(_) => "truncate",
        Route::OpenWriter(_) => "open_writer",
        Route::Healthz => "healthz",
        Route::Readyz => "readyz",
        Route::Metrics => "metrics",
    }
}

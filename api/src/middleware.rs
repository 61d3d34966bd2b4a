//! Request plumbing: a request id on every request (taken from `x-request-id` when it is sane,
//! generated otherwise, echoed back, written into problem bodies and the request's span), a
//! per-request deadline, one log line per request carrying its id, route (the pattern, never the
//! path's values), method, status and latency, counted in the metrics too ([`crate::metrics`]),
//! `Cache-Control: no-store` under `/api/v1`, problem+json for the extractors' errors (which
//! never quote a submitted value), and admission of long-running work ([`Capacity`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use actix_web::{Error, HttpMessage, HttpRequest};
use tracing::Instrument;

use crate::auth::Principal;
use crate::metrics::metrics;
use crate::problem::{ApiError, FieldError, PROBLEM_JSON, describe_serde_error, redact_values};
use crate::settings::CapacityArgs;
use crate::startup::AppState;

/// The request's id, stored in the request's extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The request id of a request, if the middleware ran.
pub fn request_id(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|r| r.0.clone())
}

/// The deadline of one request.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeout(pub Duration);

/// The largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
        .then(|| s.to_owned())
}

/// The request-context middleware (see the module docs).
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let id =
        req.headers().get(X_REQUEST_ID).and_then(sane_request_id).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // The route's pattern (`/api/v1/cases/{id}`), not the path: a path carries submitted values
    // (whatever was typed where an id belongs). The resource map knows it before routing.
    let route = req.match_pattern().unwrap_or_else(|| NO_ROUTE.to_owned());
    let span = tracing::info_span!("request", request.id = %id, http.method = %req.method(), http.route = %route);
    let mut outcome =
        Outcome { id: id.clone(), route, method: req.method().to_string(), started: Instant::now(), done: false };
    // The request cannot be cloned across routing (actix needs it unique), so an error that
    // escapes every handler passes through as it is; handlers answer their own errors.
    let res = next.call(req).instrument(span.clone()).await;
    let res = match res {
        Ok(res) => res.map_into_boxed_body(),
        Err(e) => {
            span.in_scope(|| outcome.finish(e.as_response_error().status_code().as_u16()));
            return Err(e);
        }
    };
    span.in_scope(|| outcome.finish(res.status().as_u16()));
    let mut res = with_request_id_in_problem(res, &id).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    Ok(res)
}

/// The route label of a request no route matched.
const NO_ROUTE: &str = "(no route)";

/// The status logged and counted for a request whose client left before the answer (nginx's
/// "client closed request").
pub const CLIENT_LEFT: u16 = 499;

/// One request's log line and metrics, written once: when the answer is ready, or, if the client
/// leaves first (actix then drops the request's future), on drop with [`CLIENT_LEFT`].
struct Outcome {
    id: String,
    route: String,
    method: String,
    started: Instant,
    done: bool,
}

impl Outcome {
    fn finish(&mut self, status: u16) {
        self.done = true;
        let latency = self.started.elapsed();
        metrics().observe_request(&self.route, &self.method, status, latency);
        tracing::info!(
            request.id = %self.id,
            http.method = %self.method,
            http.route = %self.route,
            http.status = status,
            latency_ms = latency.as_millis() as u64,
            "request"
        );
    }
}

impl Drop for Outcome {
    fn drop(&mut self) {
        if !self.done {
            self.finish(CLIENT_LEFT);
        }
    }
}

/// What one instance admits at once (`HUIYIN_MAX_STREAMS`, `HUIYIN_MAX_EXPORTS`), what one
/// caller may hold of that (`HUIYIN_MAX_STREAMS_PER_CALLER`, `HUIYIN_MAX_EXPORTS_PER_CALLER`: one
/// token never takes every slot), and the state the long readers use. Event streams, feed pages
/// and exports read through a pool of their own (`HUIYIN_READ_POOL_SIZE`), so however many
/// readers pile up, commands keep theirs.
pub struct Capacity {
    streams: Slots,
    exports: Slots,
    /// The service's state with the event store and the ledger reading through the read pool.
    pub readers: Arc<AppState>,
    /// How long `/readyz` waits for the database.
    pub ready_timeout: Duration,
    /// How long a streamed body may wait for its client to take the next chunk before it is
    /// ended and its slot given back (`HUIYIN_STALLED_CLIENT_MS`).
    pub stalled_client: Duration,
}

/// The slots of one kind of long-running work: all callers' and each caller's.
struct Slots {
    what: &'static str,
    all: Arc<tokio::sync::Semaphore>,
    max: usize,
    per_caller: usize,
    held: Arc<std::sync::Mutex<HashMap<String, usize>>>,
}

impl Slots {
    fn new(what: &'static str, max: usize, per_caller: usize) -> Self {
        Self {
            what,
            all: Arc::new(tokio::sync::Semaphore::new(max)),
            max,
            per_caller: per_caller.max(1),
            held: Arc::default(),
        }
    }

    /// A slot for `caller`, or 429 when they hold their share or every slot is taken.
    fn take(
        &self,
        caller: &Principal,
        gauge: &prometheus::IntGauge,
        rejected: &prometheus::IntCounter,
    ) -> Result<Admitted, ApiError> {
        let caller = format!("{}:{}", caller.role.as_str(), caller.id.as_str());
        {
            let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = held.entry(caller.clone()).or_default();
            if *n >= self.per_caller {
                rejected.inc();
                return Err(ApiError::AtCapacity { what: self.what, limit: self.per_caller, per_caller: true });
            }
            *n += 1;
        }
        let release = Release { held: self.held.clone(), caller };
        let Ok(permit) = self.all.clone().try_acquire_owned() else {
            rejected.inc();
            return Err(ApiError::AtCapacity { what: self.what, limit: self.max, per_caller: false });
        };
        gauge.inc();
        Ok(Admitted { _permit: permit, gauge: gauge.clone(), _release: release })
    }
}

/// Gives a caller's slot back when dropped.
struct Release {
    held: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    caller: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.caller) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.caller);
            }
        }
    }
}

impl Capacity {
    /// The limits of `settings`, with `readers` reading through `read_pool`.
    pub fn new(state: &AppState, read_pool: infra::Pool, settings: &CapacityArgs) -> Self {
        let readers = state.through(read_pool);
        Self {
            streams: Slots::new("event streams", settings.max_streams, settings.max_streams_per_caller),
            exports: Slots::new("exports", settings.max_exports, settings.max_exports_per_caller),
            readers: Arc::new(readers),
            ready_timeout: Duration::from_millis(settings.ready_timeout_ms),
            stalled_client: Duration::from_millis(settings.stalled_client_ms),
        }
    }

    /// A slot for an event stream of `caller`, or 429 (`at-capacity`, Retry-After) when they
    /// hold their share or all are taken.
    pub fn admit_stream(&self, caller: &Principal) -> Result<Admitted, ApiError> {
        let m = metrics();
        self.streams.take(caller, &m.streams_active, &m.streams_rejected)
    }

    /// A slot for an export of `caller`, or 429 (`at-capacity`, Retry-After) when they hold
    /// their share or all are taken.
    pub fn admit_export(&self, caller: &Principal) -> Result<Admitted, ApiError> {
        let m = metrics();
        self.exports.take(caller, &m.exports_active, &m.exports_rejected)
    }
}

/// A running stream or export: its slot (and its caller's) is given back, and the gauge of
/// running ones lowered, when it is dropped. Whatever does the work holds it to the end (the
/// response body, the blocking thread), so the bound counts work, not requests.
pub struct Admitted {
    _permit: tokio::sync::OwnedSemaphorePermit,
    gauge: prometheus::IntGauge,
    _release: Release,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// A streamed body that keeps a minimum pace: `body` runs in a task of its own and hands its
/// chunks over one at a time; when the client has not taken a chunk for `stalled` (it stopped
/// reading, or reads a trickle), the task stops, which drops `body` and whatever it holds (its
/// slot, a read connection), and the response ends. A client that leaves ends it as well.
pub fn paced<S>(body: S, stalled: Duration) -> impl futures_util::Stream<Item = Result<Bytes, actix_web::Error>>
where
    S: futures_util::Stream<Item = Result<Bytes, ApiError>> + Send + 'static,
{
    use futures_util::StreamExt;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, ApiError>>(1);
    tokio::spawn(async move {
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            match tx.send_timeout(chunk, stalled).await {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::SendTimeoutError::Timeout(_)) => {
                    metrics().stalled_clients.inc();
                    tracing::info!(
                        stalled_ms = stalled.as_millis() as u64,
                        "streamed response ended: its client stopped reading"
                    );
                    return;
                }
                Err(tokio::sync::mpsc::error::SendTimeoutError::Closed(_)) => return,
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c.map_err(Into::into), rx)) })
}

/// Whether a path is under `/api/v1`, where responses carry case data.
fn is_api_path(path: &str) -> bool {
    path == "/api/v1" || path.starts_with("/api/v1/")
}

/// `Cache-Control: no-store` on every response under `/api/v1` whose handler did not set its own
/// Cache-Control: those responses carry case data (and personal data, masked or revealed),
/// which no browser or proxy cache may keep.
pub async fn no_store(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let api = is_api_path(req.path());
    let mut res = next.call(req).await?;
    if api && !res.headers().contains_key(header::CACHE_CONTROL) {
        res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

/// Writes the request id into a problem body (problems are small; other bodies stream through).
async fn with_request_id_in_problem(res: ServiceResponse<BoxBody>, id: &str) -> ServiceResponse<BoxBody> {
    let is_problem = res.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == PROBLEM_JSON.as_bytes());
    if !is_problem {
        return res;
    }
    let (req, res) = res.into_parts();
    let (head, body) = res.into_parts();
    let bytes = actix_web::body::to_bytes_limited(body, 64 * 1024).await.ok().and_then(Result::ok).unwrap_or_default();
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut map)) => {
            map.insert("request_id".into(), serde_json::Value::String(id.to_owned()));
            serde_json::to_vec(&map).unwrap_or_else(|_| bytes.to_vec())
        }
        _ => bytes.to_vec(),
    };
    ServiceResponse::new(req, head.set_body(BoxBody::new(body)))
}

/// Runs a handler's work within the request deadline (`HUIYIN_REQUEST_TIMEOUT_MS`), and no
/// longer than the database answers its probe (`db_health`): past the deadline, or once the
/// database counts as down, the work is dropped (the database cancels its statement by
/// `statement_timeout` at the latest) and the caller gets 503. A dropped append either
/// committed or not; a retry with the same Idempotency-Key answers which.
pub async fn within_deadline<T>(
    req: &HttpRequest,
    work: impl std::future::Future<Output = Result<T, ApiError>>,
) -> Result<T, ApiError> {
    let limit = req.app_data::<actix_web::web::Data<RequestTimeout>>().map_or(Duration::from_secs(15), |t| t.0);
    let health = req.app_data::<actix_web::web::Data<crate::db_health::DbHealth>>().cloned();
    let down = async move {
        match health {
            Some(h) => h.went_down().await,
            None => std::future::pending().await,
        }
    };
    let answered = req.app_data::<actix_web::web::Data<crate::db_health::DbHealth>>().cloned();
    tokio::select! {
        answer = tokio::time::timeout(limit, work) => {
            let answer = answer.unwrap_or(Err(ApiError::Timeout));
            if answer.is_ok()
                && let Some(h) = answered
            {
                h.answered();
            }
            answer
        }
        () = down => {
            metrics().requests_failed_fast.inc();
            Err(ApiError::Unavailable)
        }
    }
}

/// Turns a JSON body error into a problem: 413 too large, 415 not JSON, 400 malformed, 422
/// well-formed but wrong (unknown field, wrong type, out-of-range enum). serde's words quote the
/// offending value ("invalid type: integer `13900000000`"): the problem names the field (when
/// serde does), the expected type and the position, never the value ([`describe_serde_error`]).
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> Error {
    json_problem(&err).into()
}

/// The problem a body that failed to read or parse as JSON answers (never quoting a value).
pub fn json_problem(err: &JsonPayloadError) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::PayloadTooLarge { limit: MAX_JSON_BYTES }
        }
        JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            let p = describe_serde_error(&serde_message(e));
            ApiError::Validation(vec![FieldError {
                field: p.field.unwrap_or_else(|| "body".into()),
                message: format!("{} (line {}, column {})", p.message, e.line(), e.column()),
            }])
        }
        JsonPayloadError::Deserialize(e) if e.is_eof() => ApiError::BadRequest {
            code: "malformed-json",
            detail: format!("the body is not valid JSON: it ends early (line {}, column {})", e.line(), e.column()),
        },
        JsonPayloadError::Deserialize(e) => {
            let msg = serde_message(e);
            let what = if JSON_SYNTAX_MESSAGES.contains(&msg.as_str()) { msg } else { redact_values(&msg) };
            ApiError::BadRequest {
                code: "malformed-json",
                detail: format!("the body is not valid JSON: {what} (line {}, column {})", e.line(), e.column()),
            }
        }
        _ => ApiError::BadRequest { code: "malformed-body", detail: "the body could not be read".into() },
    }
}

/// serde_json's syntax messages (its fixed `ErrorCode`s): they quote nothing of the body.
const JSON_SYNTAX_MESSAGES: &[&str] = &[
    "EOF while parsing a list",
    "EOF while parsing an object",
    "EOF while parsing a string",
    "EOF while parsing a value",
    "expected `:`",
    "expected `,` or `]`",
    "expected `,` or `}`",
    "expected ident",
    "expected value",
    "invalid escape",
    "invalid number",
    "number out of range",
    "invalid unicode code point",
    "control character (\\u0000-\\u001F) found while parsing a string",
    "key must be a string",
    "lone leading surrogate in hex escape",
    "trailing comma",
    "trailing characters",
    "unexpected end of hex escape",
    "recursion limit exceeded",
];

/// serde_json's message without the " at line L column C" it appends (reported separately).
fn serde_message(e: &serde_json::Error) -> String {
    let mut msg = e.to_string();
    if let Some(n) = msg.strip_suffix(&format!(" at line {} column {}", e.line(), e.column())).map(str::len) {
        msg.truncate(n);
    }
    msg
}

/// Turns a path error (a bad UUID, say) into a 400 problem, without the value.
pub fn path_error(err: PathError, _req: &HttpRequest) -> Error {
    let detail = match err {
        PathError::Deserialize(e) => format!("invalid path parameter: {}", describe(&e.to_string())),
        _ => "invalid path parameter".into(),
    };
    ApiError::BadRequest { code: "invalid-path", detail }.into()
}

/// Turns a query-string error into a 400 problem, without the value.
pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> Error {
    query_problem(err).into()
}

/// The problem a query string that does not parse answers: 400 `invalid-query`, naming the
/// parameter and the expected type, never the value.
pub fn query_problem(err: QueryPayloadError) -> ApiError {
    let detail = match err {
        QueryPayloadError::Deserialize(e) => format!("invalid query: {}", describe(&e.to_string())),
        _ => "invalid query".into(),
    };
    ApiError::BadRequest { code: "invalid-query", detail }
}

fn describe(msg: &str) -> String {
    let p = describe_serde_error(msg);
    match p.field {
        Some(f) => format!("`{f}` {}", p.message),
        None => p.message,
    }
}

/// The answer for a route that does not exist.
pub async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound("route"))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures_util::StreamExt;

    use super::*;

    /// Sets its flag when dropped: stands for the slot and the connection a body holds.
    struct Held(Arc<AtomicBool>);

    impl Drop for Held {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// A body that always has more to send, holding `held`.
    fn endless(held: Held) -> impl futures_util::Stream<Item = Result<Bytes, ApiError>> + Send + 'static {
        futures_util::stream::unfold(held, |h| async move { Some((Ok(Bytes::from_static(b"data: x\n\n")), h)) })
    }

    /// A client that stops taking chunks once held its stream's slot for as long as its
    /// connection stayed open. `paced` drops the body (and what it holds) once the client has
    /// taken nothing for the stall limit, and not while it keeps reading.
    #[tokio::test]
    async fn a_body_whose_client_stops_reading_is_dropped_and_one_that_reads_is_not() {
        let stalled_flag = Arc::new(AtomicBool::new(false));
        let mut stalled = Box::pin(paced(endless(Held(stalled_flag.clone())), Duration::from_millis(100)));
        assert!(stalled.next().await.is_some());
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(stalled_flag.load(Ordering::SeqCst), "the body of a client that stopped reading is dropped");

        let reading_flag = Arc::new(AtomicBool::new(false));
        let mut reading = Box::pin(paced(endless(Held(reading_flag.clone())), Duration::from_millis(100)));
        for _ in 0..20 {
            assert!(reading.next().await.is_some());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!reading_flag.load(Ordering::SeqCst), "a client that keeps reading keeps its body");
        drop(reading);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(reading_flag.load(Ordering::SeqCst), "a client that leaves ends it too");
    }
}

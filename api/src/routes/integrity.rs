//! For auditors and integrators: chain verification, signed checkpoints, the gap-free feed (as
//! pages and as Server-Sent Events), and personal data (reveal with a recorded purpose, erasure).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse, get, post};
use domain::CaseId;
use infra::FeedCursor;
use uuid::Uuid;

use crate::auth::{Action, Principal};
use crate::dto::*;
use crate::metrics::metrics;
use crate::middleware::{Admitted, Capacity, within_deadline};
use crate::problem::{ApiError, FieldError};
use crate::service;
use crate::startup::AppState;

fn feed_cursor(s: Option<&str>) -> Result<FeedCursor, ApiError> {
    match s {
        None | Some("") => Ok(FeedCursor::START),
        Some(s) => s.parse().map_err(|e: &str| ApiError::BadRequest { code: "invalid-query", detail: e.into() }),
    }
}

fn checkpoint_view(c: infra::integrity::Checkpoint) -> CheckpointView {
    CheckpointView {
        id: c.id,
        cursor: c.cursor,
        event_count: c.event_count,
        log_hash: c.log_hash,
        created_at: c.created_at,
        key_id: c.key_id,
        jws: c.jws,
    }
}

/// Verify a case's hash chain
///
/// Recomputes every event's hash from its stored fields and the previous hash (the recipe is in
/// docs/integrity.md) and answers `ok` with the head hash, or `tampered` with the first bad
/// version.
#[utoipa::path(tag = "integrity", params(("id" = Uuid, Path, description = "The case")), responses((status = 200, description = "The check", body = ChainVerification)), security(("bearer" = [])))]
#[get("/cases/{id}/verify")]
pub async fn verify_case(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let v = within_deadline(&req, service::verify_case(&state, &principal, CaseId::from_uuid(*id))).await?;
    Ok(HttpResponse::Ok().json(v))
}

/// Signed checkpoints
///
/// The checkpoints of the whole log, newest first: feed position, event count, log hash, and the
/// signed export (a compact JWS, EdDSA).
#[utoipa::path(tag = "integrity", responses((status = 200, description = "Checkpoints", body = [CheckpointView])), security(("bearer" = [])))]
#[get("/integrity/checkpoints")]
pub async fn checkpoints(state: Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadIntegrity)?;
    let list = infra::integrity::list(&state.pool, None, 100).await?;
    Ok(HttpResponse::Ok().json(list.into_iter().map(checkpoint_view).collect::<Vec<_>>()))
}

/// The latest checkpoint
///
/// The newest signed checkpoint; its `jws` is the export to keep outside the database.
#[utoipa::path(tag = "integrity", responses(
    (status = 200, description = "The checkpoint", body = CheckpointView),
    (status = 404, description = "No checkpoint has been made yet", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/integrity/checkpoints/latest")]
pub async fn latest_checkpoint(state: Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadIntegrity)?;
    let c = infra::integrity::latest(&state.pool).await?.ok_or(ApiError::NotFound("checkpoint"))?;
    Ok(HttpResponse::Ok().json(checkpoint_view(c)))
}

/// Make a checkpoint now
///
/// Folds the feed since the last checkpoint and signs a new one (the background task does this
/// periodically). Answers 201 with it, or 200 with the latest when nothing was added.
#[utoipa::path(tag = "integrity", responses(
    (status = 201, description = "A new checkpoint", body = CheckpointView),
    (status = 200, description = "Nothing new: the latest", body = CheckpointView)
), security(("bearer" = [])))]
#[post("/integrity/checkpoints")]
pub async fn make_checkpoint(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::MakeCheckpoint)?;
    let signer = state.signer.as_ref().ok_or(ApiError::BadRequest {
        code: "checkpoints-disabled",
        detail: "no checkpoint signing key is configured (HUIYIN_CHECKPOINT_PRIVATE_KEY)".into(),
    })?;
    let made = within_deadline(&req, service::checkpoint(&state, signer)).await?;
    match made {
        Some(c) => Ok(HttpResponse::Created().json(checkpoint_view(c))),
        None => {
            let c = infra::integrity::latest(&state.pool).await?.ok_or(ApiError::NotFound("checkpoint"))?;
            Ok(HttpResponse::Ok().json(checkpoint_view(c)))
        }
    }
}

/// The integrator feed
///
/// Every event in a stable order with its feed position; `next` continues after the page. A
/// consumer that follows it from `0` sees every event exactly once, even while transactions
/// commit out of order: an event becomes visible here only once every transaction that started
/// before it has finished. Handlers see only their unit's cases, without the complainant.
#[utoipa::path(tag = "integrity", params(FeedQuery), responses((status = 200, description = "A page of the feed", body = FeedPage)), security(("bearer" = [])))]
#[get("/events")]
pub async fn feed(capacity: Data<Capacity>, principal: Principal, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadFeed)?;
    let q: FeedQuery = crate::extract::query(&req)?;
    let after = feed_cursor(q.after.as_deref())?;
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::BadRequest { code: "invalid-query", detail: "limit must be 1 to 1000".into() });
        }
    };
    // Through the read pool: however many consumers page the feed, commands keep their pool.
    let page = within_deadline(&req, service::feed(&capacity.readers, &principal, after, limit)).await?;
    let m = metrics();
    m.feed_pages.with_label_values(&["page"]).inc();
    m.feed_events.inc_by(page.events.len() as u64);
    Ok(HttpResponse::Ok().json(page))
}

/// The shortest wait of an event stream for a busy database.
const STREAM_BACKOFF_MIN: Duration = Duration::from_millis(250);
/// The longest wait of an event stream for a busy database.
const STREAM_BACKOFF_MAX: Duration = Duration::from_secs(8);
/// How often a quiet stream sends a comment, so proxies keep the connection.
const STREAM_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Whether a feed read failed because the database is busy or away for now (no connection free
/// in time, a lost connection, a statement timeout): a stream waits and reads again.
fn database_busy(e: &ApiError) -> bool {
    matches!(e, ApiError::Unavailable | ApiError::Timeout)
}

/// The feed, live (Server-Sent Events)
///
/// The same events as `/api/v1/events`, pushed as they become visible: each SSE message has the
/// feed position as its `id`, so a client that reconnects with `Last-Event-ID` (or `?after=`)
/// resumes exactly where it stopped. Woken by PostgreSQL LISTEN/NOTIFY, with a one-second poll
/// as the fallback; a comment every 15 s keeps proxies from closing the connection. When the
/// database is busy or restarting the stream waits (up to 8 s between tries, with comments
/// meanwhile) instead of ending. At most `HUIYIN_MAX_STREAMS` streams are open at once (default
/// 64), and at most `HUIYIN_MAX_STREAMS_PER_CALLER` of one caller (default 8); beyond, 429 with
/// Retry-After. The stream ends when the token that opened it expires, and when its client has
/// taken nothing for `HUIYIN_STALLED_CLIENT_MS` (default 30 s) while data waited.
#[utoipa::path(tag = "integrity", params(StreamQuery), responses(
    (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
    (status = 429, description = "As many event streams are open as are admitted, or as one caller may hold; retry after `Retry-After` seconds", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/events/stream")]
pub async fn stream(
    capacity: Data<Capacity>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadFeed)?;
    let q: StreamQuery = crate::extract::query(&req)?;
    let last_id = req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let start = feed_cursor(last_id.as_deref().or(q.after.as_deref()))?;
    if crate::http_semantics::is_head(&req) {
        // The headers of a stream, without opening one (no slot, no read).
        return Ok(HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/event-stream"))
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .finish());
    }
    // Held by the body: the slot is free again when the stream ends, its client leaves or stops
    // reading (`paced`).
    let slot = capacity.admit_stream(&principal)?;
    struct S {
        readers: Arc<AppState>,
        principal: Principal,
        cursor: FeedCursor,
        buffer: VecDeque<FeedEvent>,
        beat: Instant,
        backoff: Duration,
        done: bool,
        _slot: Admitted,
    }
    let init = S {
        readers: capacity.readers.clone(),
        principal,
        cursor: start,
        buffer: VecDeque::new(),
        beat: Instant::now(),
        backoff: Duration::ZERO,
        done: false,
        _slot: slot,
    };
    let body = futures_util::stream::unfold(init, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            // The stream lives no longer than the token that opened it.
            if chrono::Utc::now().timestamp() >= s.principal.expires_at {
                s.done = true;
                let msg = "event: error\ndata: {\"detail\":\"the token expired; reconnect with a fresh one and Last-Event-ID\"}\n\n";
                return Some((Ok(Bytes::from(msg)), s));
            }
            if let Some(e) = s.buffer.pop_front() {
                let data = serde_json::to_string(&e).unwrap_or_default();
                let msg = format!("id: {}\nevent: case-event\ndata: {data}\n\n", e.feed_position);
                return Some((Ok::<_, ApiError>(Bytes::from(msg)), s));
            }
            let wake = s.readers.feed_wake.clone();
            let notified = wake.notified();
            match service::feed(&s.readers, &s.principal, s.cursor, 200).await {
                Ok(page) => {
                    s.backoff = Duration::ZERO;
                    let m = metrics();
                    m.feed_pages.with_label_values(&["stream"]).inc();
                    m.feed_events.inc_by(page.events.len() as u64);
                    s.cursor = page.next.parse().unwrap_or(s.cursor);
                    if !page.events.is_empty() {
                        s.buffer.extend(page.events);
                        continue;
                    }
                }
                Err(e) if database_busy(&e) => {
                    // Busy or restarting: wait longer each time (with jitter, so that streams
                    // do not come back together) and read again; the client keeps its stream.
                    s.backoff = (s.backoff * 2).clamp(STREAM_BACKOFF_MIN, STREAM_BACKOFF_MAX);
                    metrics().stream_backoffs.inc();
                    tracing::debug!(error = %e, backoff_ms = s.backoff.as_millis() as u64, "event stream waits for the database");
                    if s.beat.elapsed() > STREAM_KEEP_ALIVE {
                        s.beat = Instant::now();
                        return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), s));
                    }
                    let jitter = Duration::from_millis(u64::from(rand::random::<u8>()));
                    tokio::time::sleep(s.backoff + jitter).await;
                    continue;
                }
                Err(e) => {
                    s.done = true;
                    tracing::warn!(error = %e, "event stream ended");
                    return Some((
                        Ok(Bytes::from(
                            "event: error\ndata: {\"detail\":\"the stream failed; reconnect with Last-Event-ID\"}\n\n",
                        )),
                        s,
                    ));
                }
            }
            if s.beat.elapsed() > STREAM_KEEP_ALIVE {
                s.beat = Instant::now();
                return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), s));
            }
            // Woken by a notification, or poll again after a second: a lost NOTIFY never stalls.
            let _ = tokio::time::timeout(Duration::from_secs(1), notified).await;
        }
    });
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(crate::middleware::paced(body, capacity.stalled_client)))
}

/// The least number of letters (any script; Chinese characters count one each) in a reveal's
/// purpose.
pub const MIN_PURPOSE_LETTERS: usize = domain::MIN_REASON_LETTERS;

/// Whether a reveal's purpose states a reason ([`domain::states_a_reason`]): it is recorded in
/// the case's history as why a citizen's identity was shown.
pub fn is_stated_purpose(purpose: &str) -> bool {
    domain::states_a_reason(purpose)
}

/// Reveal the complainant (查看身份)
///
/// Returns the complainant's name, phone and ID number in clear to a permitted role, after
/// appending an access event (who, why, when) to the case: every reveal is in the history. A
/// retry with the same `Idempotency-Key` answers under the access already recorded, for
/// `HUIYIN_REVEAL_REPLAY_S` seconds (5 minutes by default); later it is 409
/// `reveal-replay-expired`.
#[utoipa::path(tag = "personal-data", params(("id" = Uuid, Path, description = "The case")), request_body = RevealRequest, responses((status = 200, description = "The identity", body = RevealedComplainant), (status = 409, description = "`reveal-replay-expired`: retried with its key after the replay window; or the case has no personal data left", content_type = "application/problem+json", body = crate::problem::Problem)), security(("bearer" = [])))]
#[post("/cases/{id}/complainant/reveal")]
pub async fn reveal(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: Path<Uuid>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    // Who may reveal at all is answered before what they wrote (403 before 422).
    principal.require(Action::RevealComplainant)?;
    let body: RevealRequest = crate::extract::json_body(&req, &body)?;
    if !is_stated_purpose(&body.purpose) {
        return Err(ApiError::Validation(vec![FieldError {
            field: "purpose".into(),
            message: domain::ids::reason_rule(),
        }]));
    }
    let purpose = service::reason("purpose", &body.purpose)?;
    // If-Match and Idempotency-Key as for every command: a retried reveal records one access.
    let meta = crate::routes::cases::meta(&req, principal)?;
    let r = within_deadline(
        &req,
        service::reveal(&state, &meta, CaseId::from_uuid(*id), body.purpose_code.into(), purpose, &body),
    )
    .await?;
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(r))
}

/// Erase the complainant's personal data (删除个人信息)
///
/// Shreds the key that seals the complainant's name, phone and ID number: the clear values are
/// gone from everywhere at once (log, projections, exports never held them in clear). The
/// history gains a redaction marker; nothing is rewritten, so every chain still verifies.
#[utoipa::path(tag = "personal-data", params(("id" = Uuid, Path, description = "The case")), responses((status = 204, description = "Erased; the `ETag` is the case's new version", headers(("ETag" = String, description = "The case's version after the redaction marker")))), security(("bearer" = [])))]
#[post("/cases/{id}/complainant/erase")]
pub async fn erase(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    // Who may erase at all is answered before what the headers say (403 before 400).
    principal.require(Action::ErasePersonalData)?;
    // If-Match (a stale version shreds nothing) and Idempotency-Key as for every command.
    let meta = crate::routes::cases::meta(&req, principal)?;
    let version = within_deadline(&req, service::erase(&state, &meta, CaseId::from_uuid(*id))).await?;
    Ok(HttpResponse::NoContent().insert_header((header::ETAG, format!("\"{version}\""))).finish())
}

/// The integrity watch
///
/// Verification that runs continuously behind the feed: every event that becomes visible has
/// its case's hash chain recomputed and its ledger row compared with the replay of the case
/// (within a few seconds once the watch has caught up: it looks every 2 s, and works off a
/// backlog page after page). `failures_total` counts what it found since the service started;
/// `failures` lists the newest 100, newest first; each is also an ERROR log line and counts in
/// the `huiyin_integrity_alarms_total` metric. `caught_up_at` is when it last reached the feed's
/// head.
#[utoipa::path(tag = "integrity", responses((status = 200, description = "The watch's status", body = Object)), security(("bearer" = [])))]
#[get("/integrity/watch")]
pub async fn watch(state: Data<AppState>, principal: Principal) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadIntegrity)?;
    let status = state.watch.lock().await.clone();
    Ok(HttpResponse::Ok().json(status))
}

/// Registers the routes (under `/api/v1`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(verify_case)
        .service(checkpoints)
        .service(latest_checkpoint)
        .service(make_checkpoint)
        .service(feed)
        .service(stream)
        .service(reveal)
        .service(erase)
        .service(watch);
}

//! For auditors and integrators: chain verification, signed checkpoints, the gap-free feed (as
//! pages and as Server-Sent Events), and personal data (reveal with a recorded purpose, erasure).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::web::{Bytes, Data, Json, Path, Query};
use actix_web::{HttpRequest, HttpResponse, get, post};
use domain::CaseId;
use infra::FeedCursor;
use uuid::Uuid;

use crate::auth::{Action, Principal};
use crate::dto::*;
use crate::middleware::{request_id, within_deadline};
use crate::problem::{ApiError, FieldError};
use crate::service::{self, RequestMeta};
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
#[utoipa::path(tag = "integrity", responses((status = 200, description = "The checkpoint", body = CheckpointView)), security(("bearer" = [])))]
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
    let made =
        within_deadline(&req, async { Ok(infra::integrity::make_checkpoint(&state.store, signer).await?) }).await?;
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
pub async fn feed(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    q: Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let after = feed_cursor(q.after.as_deref())?;
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::BadRequest { code: "invalid-query", detail: "limit must be 1 to 1000".into() });
        }
    };
    Ok(HttpResponse::Ok().json(within_deadline(&req, service::feed(&state, &principal, after, limit)).await?))
}

/// The feed, live (Server-Sent Events)
///
/// The same events as `/api/v1/events`, pushed as they become visible: each SSE message has the
/// feed position as its `id`, so a client that reconnects with `Last-Event-ID` (or `?after=`)
/// resumes exactly where it stopped. Woken by PostgreSQL LISTEN/NOTIFY, with a one-second poll
/// as the fallback; a comment every 15 s keeps proxies from closing the connection. The stream
/// ends when the token that opened it expires.
#[utoipa::path(tag = "integrity", params(FeedQuery), responses((status = 200, description = "An event stream", content_type = "text/event-stream", body = String)), security(("bearer" = [])))]
#[get("/events/stream")]
pub async fn stream(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    q: Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadFeed)?;
    let last_id = req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let start = feed_cursor(last_id.as_deref().or(q.after.as_deref()))?;
    struct S {
        state: Data<AppState>,
        principal: Principal,
        cursor: FeedCursor,
        buffer: VecDeque<FeedEvent>,
        beat: Instant,
        done: bool,
    }
    let init = S { state, principal, cursor: start, buffer: VecDeque::new(), beat: Instant::now(), done: false };
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
                return Some((Ok::<_, actix_web::Error>(Bytes::from(msg)), s));
            }
            let wake = s.state.feed_wake.clone();
            let notified = wake.notified();
            match service::feed(&s.state, &s.principal, s.cursor, 200).await {
                Ok(page) => {
                    s.cursor = page.next.parse().unwrap_or(s.cursor);
                    if !page.events.is_empty() {
                        s.buffer.extend(page.events);
                        continue;
                    }
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
            if s.beat.elapsed() > Duration::from_secs(15) {
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
        .streaming(body))
}

/// The least number of letters (any script; Chinese characters count one each) in a reveal's
/// purpose.
pub const MIN_PURPOSE_LETTERS: usize = 4;

/// Whether a reveal's purpose states a reason: at least [`MIN_PURPOSE_LETTERS`] letters or CJK
/// characters (`char::is_alphabetic`: digits, punctuation, spaces and symbols do not count).
/// The purpose is recorded in the case's history as why a citizen's identity was shown, so
/// `.`, `x` or `1234` is no purpose; `核实身份` and `verify identity` are.
pub fn is_stated_purpose(purpose: &str) -> bool {
    purpose.chars().filter(|c| c.is_alphabetic()).count() >= MIN_PURPOSE_LETTERS
}

/// Reveal the complainant (查看身份)
///
/// Returns the complainant's name, phone and ID number in clear to a permitted role, after
/// appending an access event (who, why, when) to the case: every reveal is in the history.
#[utoipa::path(tag = "personal-data", params(("id" = Uuid, Path, description = "The case")), request_body = RevealRequest, responses((status = 200, description = "The identity", body = RevealedComplainant)), security(("bearer" = [])))]
#[post("/cases/{id}/complainant/reveal")]
pub async fn reveal(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: Path<Uuid>,
    body: Json<RevealRequest>,
) -> Result<HttpResponse, ApiError> {
    // Who may reveal at all is answered before what they wrote (403 before 422).
    principal.require(Action::RevealComplainant)?;
    if !is_stated_purpose(&body.purpose) {
        return Err(ApiError::Validation(vec![FieldError {
            field: "purpose".into(),
            message: format!("must state why, in at least {MIN_PURPOSE_LETTERS} letters or characters"),
        }]));
    }
    let purpose = service::reason("purpose", &body.purpose)?;
    let meta = RequestMeta { principal, request_id: request_id(&req), idempotency_key: None, if_match: None };
    let r = within_deadline(&req, service::reveal(&state, &meta, CaseId::from_uuid(*id), purpose, &body.into_inner()))
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
    let meta = RequestMeta { principal, request_id: request_id(&req), idempotency_key: None, if_match: None };
    let version = within_deadline(&req, service::erase(&state, &meta, CaseId::from_uuid(*id))).await?;
    Ok(HttpResponse::NoContent().insert_header((header::ETAG, format!("\"{version}\""))).finish())
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
        .service(erase);
}

//! `/api/v1/cases`: registration, the lifecycle commands, the case and its history.
//!
//! Every command is `POST /api/v1/cases/{id}/<action>` and answers the case after the command,
//! with its `version` and `ETag`. The command is decided against the latest state, decided
//! again when a concurrent write got in first, and refused (409) when it has become illegal or
//! kept losing its races (`contention`). `If-Match` is checked against the version each attempt
//! decides on: one it does not name answers 412 and nothing is written; `*` only asks that the
//! case exist. With `Idempotency-Key`, a retry with the same body returns the first answer; the
//! same key with another body answers 422.

use actix_web::http::header;
use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse, get, post};
use domain::{CaseId, CategoryId, Command, UnitId};
use uuid::Uuid;

use crate::auth::{Action, Principal};
use crate::dto::*;
use crate::extract::{json_body, optional_json_body};
use crate::middleware::{request_id, within_deadline};
use crate::problem::ApiError;
use crate::service::{self, IfMatch, RequestMeta, opt_text, reason, text};
use crate::startup::AppState;

/// The most co-units one assignment names (联办 is a few units, not the town).
pub const MAX_CO_UNITS: usize = 10;

/// The longest Idempotency-Key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;

/// The request's context from its headers: `Idempotency-Key` (1 to 200 visible ASCII
/// characters) and `If-Match` (`*`, or one or more version tags).
pub fn meta(req: &HttpRequest, principal: Principal) -> Result<RequestMeta, ApiError> {
    let idempotency_key = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => {
            let s =
                v.to_str().ok().map(str::trim).filter(|s| {
                    !s.is_empty() && s.len() <= MAX_IDEMPOTENCY_KEY && s.bytes().all(|b| b.is_ascii_graphic())
                });
            let s = s.ok_or(ApiError::BadRequest {
                code: "invalid-idempotency-key",
                detail: format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
            })?;
            Some(s.to_owned())
        }
    };
    let if_match = match req.headers().get(header::IF_MATCH) {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(IfMatch::parse).ok_or(ApiError::BadRequest {
            code: "invalid-if-match",
            detail: "If-Match must be `*` or the case's ETag(s), e.g. \"3\" or \"3\", \"4\"".into(),
        })?),
    };
    Ok(RequestMeta { principal, request_id: request_id(req), idempotency_key, if_match })
}

fn etag(version: u32) -> (header::HeaderName, String) {
    (header::ETAG, format!("\"{version}\""))
}

async fn run(
    state: &AppState,
    req: &HttpRequest,
    principal: Principal,
    id: Uuid,
    action: Action,
    command: Command,
    body: &impl serde::Serialize,
) -> Result<HttpResponse, ApiError> {
    let meta = meta(req, principal)?;
    let view =
        within_deadline(req, service::execute(state, &meta, CaseId::from_uuid(id), action, command, body)).await?;
    Ok(HttpResponse::Ok().insert_header(etag(view.version)).json(view))
}

/// Register a case (受理)
///
/// Registers an opinion, suggestion or complaint from any channel and issues its receipt code.
/// The routing deadline starts at `received_at`, which may lie in the past for paper intake.
/// The complainant's name, phone and ID number are stored encrypted and shown masked.
#[utoipa::path(
    tag = "cases",
    request_body = RegisterCaseRequest,
    responses((status = 201, description = "The registered case", body = CaseView,
        headers(("Location" = String, description = "The case's URL"), ("ETag" = String, description = "The case's version")))),
    security(("bearer" = []))
)]
#[post("/cases")]
pub async fn register(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, actix_web::Error> {
    principal.require(Action::RegisterCase)?;
    let body: RegisterCaseRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let (view, _) = within_deadline(&req, service::register(&state, &meta, body)).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/cases/{}", view.id)))
        .insert_header(etag(view.version))
        .json(view))
}

/// Get a case
///
/// The case as it stands, with its running deadline evaluated now. With `as_of` or `version`,
/// the state as it was then, replayed from the log. A case outside the caller's scope answers
/// 404 exactly like a missing one. The `ETag` is the case's version, the token `If-Match` takes;
/// as the view also carries its deadlines' state as of now, `If-None-Match` answers no 304 here.
#[utoipa::path(
    tag = "cases",
    params(("id" = Uuid, Path, description = "The case"), CaseAsOfQuery),
    responses((status = 200, description = "The case", body = CaseView, headers(("ETag" = String, description = "The case's version")))),
    security(("bearer" = []))
)]
#[get("/cases/{id}")]
pub async fn get_case(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadCase)?;
    let q: CaseAsOfQuery = crate::extract::query(&req)?;
    let id = CaseId::from_uuid(*id);
    let view = if q.as_of.is_none() && q.version.is_none() {
        within_deadline(&req, service::get(&state, &principal, id)).await?
    } else {
        if q.version == Some(0) {
            return Err(ApiError::BadRequest { code: "invalid-query", detail: "version starts at 1".into() });
        }
        let as_of = q.as_of.map(|t| service::bounded_time("as_of", t)).transpose().map_err(|_| {
            ApiError::BadRequest { code: "invalid-query", detail: "as_of must lie between 2000 and 2099".into() }
        })?;
        within_deadline(&req, service::get_as_of(&state, &principal, id, as_of, q.version)).await?
    };
    Ok(HttpResponse::Ok().insert_header(etag(view.version)).json(view))
}

/// A case's history
///
/// The case's events in version order (paged with `after_version` and `limit`), each with who
/// did it (id and role), the request that carried it, its times, its hash and the previous hash.
#[utoipa::path(
    tag = "cases",
    params(("id" = Uuid, Path, description = "The case"), HistoryQuery),
    responses((status = 200, description = "The history", body = EventList)),
    security(("bearer" = []))
)]
#[get("/cases/{id}/events")]
pub async fn events(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadCase)?;
    let q: HistoryQuery = crate::extract::query(&req)?;
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=500).contains(&n) => n as usize,
        Some(_) => return Err(ApiError::BadRequest { code: "invalid-query", detail: "limit must be 1 to 500".into() }),
    };
    let after = q.after_version.unwrap_or(0);
    let list =
        within_deadline(&req, service::history(&state, &principal, CaseId::from_uuid(*id), after, limit)).await?;
    Ok(HttpResponse::Ok().json(list))
}

macro_rules! command_endpoint {
    ($(#[$doc:meta])* $fn:ident, $path:literal, $body:ty, $action:expr, |$b:ident| $build:expr) => {
        $(#[$doc])*
        #[utoipa::path(
            tag = "commands",
            params(("id" = Uuid, Path, description = "The case")),
            request_body = $body,
            responses((status = 200, description = "The case after the command", body = CaseView,
                headers(("ETag" = String, description = "The case's new version")))),
            security(("bearer" = []))
        )]
        #[post($path)]
        pub async fn $fn(
            state: Data<AppState>,
            principal: Principal,
            req: HttpRequest,
            id: Path<Uuid>,
            body: Bytes,
        ) -> Result<HttpResponse, actix_web::Error> {
            // Authorise first: a role that may never send this command gets 403, whatever its body.
            principal.require($action)?;
            let $b: $body = json_body(&req, &body)?;
            let command: Command = $build;
            Ok(run(&state, &req, principal, *id, $action, command, &$b).await?)
        }
    };
}

/// A command whose body is optional (`{}` or nothing at all).
macro_rules! bodyless_endpoint {
    ($(#[$doc:meta])* $fn:ident, $path:literal, $action:expr, $command:expr) => {
        $(#[$doc])*
        #[utoipa::path(
            tag = "commands",
            params(("id" = Uuid, Path, description = "The case")),
            request_body(content = Option<EmptyRequest>, description = "Optional: `{}`, `null` or no body"),
            responses((status = 200, description = "The case after the command", body = CaseView,
                headers(("ETag" = String, description = "The case's new version")))),
            security(("bearer" = []))
        )]
        #[post($path)]
        pub async fn $fn(
            state: Data<AppState>,
            principal: Principal,
            req: HttpRequest,
            id: Path<Uuid>,
            body: Bytes,
        ) -> Result<HttpResponse, ApiError> {
            principal.require($action)?;
            let _: EmptyRequest = optional_json_body(&body)?;
            run(&state, &req, principal, *id, $action, $command, &stringify!($fn)).await
        }
    };
}

bodyless_endpoint!(
    /// Accept a case (受理)
    ///
    /// Accepts a registered case; the overall clock (60 calendar days by default, 信访工作条例
    /// art. 32) starts now. Assigning an unaccepted case accepts it first.
    accept, "/cases/{id}/accept", Action::Accept, Command::Accept
);
command_endpoint!(
    /// Record a notice to the citizen (告知)
    ///
    /// What the citizen was told, how, and whether the receipt code was given. An
    /// `acknowledgement` stops the acknowledgement clock (15 calendar days, 信访工作条例 art. 23;
    /// 15 working days for an identified accusation, 检举控告工作规则 (2020)).
    notify, "/cases/{id}/notices", NoticeRequest, Action::NotifyCitizen,
    |b| Command::NotifyCitizen {
        kind: b.kind.into(),
        method: b.method.into(),
        content: text("content", &b.content)?,
        receipt_code_given: b.receipt_code_given,
        notified_at: b.notified_at.map(|t| service::bounded_time("notified_at", t)).transpose()?,
    }
);
command_endpoint!(
    /// Classify a case
    ///
    /// Sets or changes the category. Deadlines already running keep the rule they came from.
    classify, "/cases/{id}/classify", ClassifyRequest, Action::Classify,
    |b| Command::Classify { category: CategoryId::from_uuid(b.category_id) }
);
/// Assign a case (交办)
///
/// Routes the case to the lead unit (and co-units of joint handling, 联办), starting the unit's
/// sign-for clock (1 working day by default, 2 hours when urgent); the handling clock (15
/// working days, 48 hours when urgent) starts when the unit signs. Without `unit_id` the routing
/// rule (归口) of the case's category and village applies (422 when there is none); the tier is
/// recorded. `due_at` may shorten the handling deadline. A case that accuses a unit is never
/// assigned to it nor to a unit under it (回避, 纪检监察机关处理检举控告工作规则 (2020) art. 47):
/// 409 `recusal`.
#[utoipa::path(
    tag = "commands",
    params(("id" = Uuid, Path, description = "The case")),
    request_body = AssignRequest,
    responses((status = 200, description = "The case after the command", body = CaseView,
        headers(("ETag" = String, description = "The case's new version")))),
    security(("bearer" = []))
)]
#[post("/cases/{id}/assign")]
pub async fn assign(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    id: Path<Uuid>,
    body: Bytes,
) -> Result<HttpResponse, actix_web::Error> {
    principal.require(Action::Assign)?;
    let b: AssignRequest = json_body(&req, &body)?;
    // Headers are checked before anything is loaded (a bad If-Match is 400 on any case).
    meta(&req, principal.clone())?;
    if b.co_unit_ids.len() > MAX_CO_UNITS {
        return Err(ApiError::Validation(vec![crate::problem::FieldError {
            field: "co_unit_ids".into(),
            message: format!("at most {MAX_CO_UNITS} co-units"),
        }])
        .into());
    }
    let due_at = b.due_at.map(|t| service::bounded_time("due_at", t)).transpose()?;
    let note = opt_text("note", b.note.as_deref())?;
    let (unit, tier) =
        within_deadline(&req, service::route(&state, &principal, CaseId::from_uuid(*id), b.unit_id, b.tier)).await?;
    let command = Command::Assign {
        unit,
        co_units: b.co_unit_ids.iter().copied().map(UnitId::from_uuid).collect(),
        due_at,
        note,
        tier: Some(tier),
    };
    Ok(run(&state, &req, principal, *id, Action::Assign, command, &b).await?)
}

bodyless_endpoint!(
    /// Sign for a case (签收)
    ///
    /// A handler of the lead unit (or of a co-unit) signs for the case. For the lead unit the
    /// handling clock starts now.
    sign, "/cases/{id}/sign", Action::SignFor, Command::SignFor
);
command_endpoint!(
    /// Ask to return a case (退单)
    ///
    /// The lead unit says the case is not theirs, with a reason, within the return window (5
    /// working days from assignment by default, 信访工作条例 art. 23). The case waits for the
    /// dispatcher, who approves or refuses. Rework of the unit's own handling (a case reopened to
    /// it after a dissatisfied rating) cannot be returned: 409 `rework-not-returnable`.
    request_return, "/cases/{id}/return", ReasonRequest, Action::RequestReturn,
    |b| Command::RequestReturn { reason: reason("reason", &b.reason)? }
);
command_endpoint!(
    /// Approve a return
    ///
    /// The dispatcher approves the unit's return: to `unit_id` (never the accused unit or one
    /// under it), or back to intake without one.
    approve_return, "/cases/{id}/return/approve", ReturnApproveRequest, Action::DecideReturn,
    |b| Command::ApproveReturn { to_unit: b.unit_id.map(UnitId::from_uuid) }
);
command_endpoint!(
    /// Refuse a return
    ///
    /// The dispatcher refuses the return, with a reason: the unit must handle the case.
    refuse_return, "/cases/{id}/return/refuse", ReasonRequest, Action::DecideReturn,
    |b| Command::RefuseReturn { reason: reason("reason", &b.reason)? }
);
command_endpoint!(
    /// Re-route a case (转办)
    ///
    /// The dispatcher sends the case to another unit (`to_unit_id`, sign-for starts again) or
    /// back to intake. Units do not transfer cases themselves: they ask to return them.
    transfer, "/cases/{id}/transfer", TransferRequest, Action::Transfer,
    |b| Command::Transfer { reason: reason("reason", &b.reason)?, to_unit: b.to_unit_id.map(UnitId::from_uuid) }
);
command_endpoint!(
    /// Record a co-unit's contribution (联办)
    ///
    /// A handler of a co-unit records what it found and did; the case view shows which co-units
    /// have and have not contributed.
    contribute, "/cases/{id}/contributions", NoteRequest, Action::Contribute,
    |b| Command::Contribute { text: text("text", &b.text)? }
);
command_endpoint!(
    /// Ask for an extension (延期申请)
    ///
    /// The handling unit asks for a later handling deadline, with a reason; a supervisor
    /// approves or refuses. At most the policy's days (30 by default), once per round.
    request_extension, "/cases/{id}/extension", ExtendRequest, Action::RequestExtension,
    |b| Command::RequestExtension {
        due_at: service::bounded_time("due_at", b.due_at)?,
        reason: reason("reason", &b.reason)?,
    }
);
bodyless_endpoint!(
    /// Approve the extension asked for
    ///
    /// The handling deadline moves to the one asked for; the overall clock moves by the same
    /// time, at most 30 days, once in the case's life (信访工作条例 art. 32). Record the notice
    /// to the citizen with `POST /cases/{id}/notices` (`kind: extension`).
    approve_extension, "/cases/{id}/extension/approve", Action::DecideExtension, Command::ApproveExtension
);
command_endpoint!(
    /// Refuse the extension asked for
    ///
    /// With a reason; the deadline stays.
    refuse_extension, "/cases/{id}/extension/refuse", ReasonRequest, Action::DecideExtension,
    |b| Command::RefuseExtension { reason: reason("reason", &b.reason)? }
);
command_endpoint!(
    /// Extend the deadline (延期)
    ///
    /// A supervisor extends the handling deadline directly (as if asked and approved): once per
    /// round, by at most the policy's days (30 by default), with a reason; the supervisor is
    /// recorded as the approver, and the overall clock moves with it once.
    extend, "/cases/{id}/extend", ExtendRequest, Action::Extend,
    |b| Command::ExtendDeadline { due_at: service::bounded_time("due_at", b.due_at)?, reason: reason("reason", &b.reason)? }
);
command_endpoint!(
    /// Pause the clocks
    ///
    /// While waiting for the citizen (e.g. supplementary material), with a reason: paused time
    /// does not count on any clock. Stage changes wait until the clocks are resumed. A case with
    /// a clock already past due cannot be paused (409 `pause-overdue`): the pause would hide a
    /// missed limit.
    pause, "/cases/{id}/pause", ReasonRequest, Action::PauseClock,
    |b| Command::PauseClock { reason: reason("reason", &b.reason)? }
);
bodyless_endpoint!(
    /// Resume the clocks
    ///
    /// Every running clock moves by the time it stood.
    resume, "/cases/{id}/resume", Action::PauseClock, Command::ResumeClock
);
command_endpoint!(
    /// Record handling (办理)
    ///
    /// The lead unit records what it found and did (signing for it first if it had not); the
    /// deadline for the reply to the citizen starts.
    handle, "/cases/{id}/handle", HandleRequest, Action::Handle,
    |b| Command::Handle { outcome: b.outcome.into(), result: text("result", &b.result)? }
);
command_endpoint!(
    /// Record the reply to the citizen (答复)
    ///
    /// 件件有回音: the citizen is told the outcome; the follow-up clock (回访, 5 working days by
    /// default) starts. A case linked as a duplicate gets its own reply here too.
    feedback, "/cases/{id}/feedback", FeedbackRequest, Action::Feedback,
    |b| Command::FeedBack { method: b.method.into(), content: text("content", &b.content)? }
);
command_endpoint!(
    /// Record a failed follow-up attempt (回访未果)
    ///
    /// The citizen could not be reached. Once the follow-up window has lapsed with attempts
    /// recorded, the case may close without a rating.
    follow_up_attempt, "/cases/{id}/follow-up-attempts", FollowUpAttemptRequest, Action::RecordFollowUp,
    |b| Command::RecordFollowUpAttempt { method: b.method.into(), note: opt_text("note", b.note.as_deref())? }
);
command_endpoint!(
    /// Record satisfaction (回访)
    ///
    /// The rating, how it was collected (the caller is recorded as the collector) and the
    /// citizen's answer to "was it solved?". `dissatisfied` reopens the case for rework with the
    /// same unit in a new round (with dispatch when that unit was deactivated); a second
    /// dissatisfied rating also puts the case under supervision (督办).
    satisfaction, "/cases/{id}/satisfaction", SatisfactionRequest, Action::Satisfaction,
    |b| Command::RecordSatisfaction {
        rating: b.rating.into(),
        comment: opt_text("comment", b.comment.as_deref())?,
        method: b.method.into(),
        solved: Some(b.solved),
    }
);
command_endpoint!(
    /// Reopen a case (重办)
    ///
    /// Sends a handled, fed-back, rejected or closed case back: to its unit in a new round, or
    /// to intake when it never reached a unit or that unit was deactivated. The overall clock
    /// is not reset.
    reopen, "/cases/{id}/reopen", ReasonRequest, Action::Reopen,
    |b| Command::Reopen { reason: reason("reason", &b.reason)? }
);
command_endpoint!(
    /// Escalate a case (督办)
    ///
    /// Puts the case under the discipline committee's supervision.
    escalate, "/cases/{id}/escalate", ReasonRequest, Action::Escalate,
    |b| Command::Escalate { reason: reason("reason", &b.reason)? }
);
command_endpoint!(
    /// Do not accept a case (不予受理)
    ///
    /// Refuses a received case with a documented code and the reason the citizen will be given;
    /// `out_of_remit` and `legal_channel` name the body the citizen is referred to.
    reject, "/cases/{id}/reject", RejectRequest, Action::Reject,
    |b| Command::Reject {
        code: b.reason_code.into(),
        reason: reason("reason", &b.reason)?,
        referred_to: opt_text("referred_to", b.referred_to.as_deref())?,
    }
);
command_endpoint!(
    /// Close a case (办结)
    ///
    /// After the follow-up: a rating, or failed attempts recorded and the follow-up window
    /// lapsed; a supervisor may close without a rating, or over a dissatisfied citizen, with a
    /// written `note` that states why (at least 4 letters). A rejected case closes at once, a
    /// linked duplicate after its own reply.
    close, "/cases/{id}/close", CloseRequest, Action::Close,
    |b| Command::Close { note: opt_text("note", b.note.as_deref())? }
);
command_endpoint!(
    /// Link as a duplicate (合并)
    ///
    /// Folds this case into another one, checked under both cases' locks: never onto a case
    /// that is itself a duplicate, never when other cases point at this one. The duplicate's
    /// clocks stop; it still gets its own reply before it closes.
    link_duplicate, "/cases/{id}/link-duplicate", LinkDuplicateRequest, Action::LinkDuplicate,
    // The other case's facts are read under both cases' locks when the command runs.
    |b| Command::LinkDuplicate { of: CaseId::from_uuid(b.of), target: domain::LinkTarget::default() }
);
command_endpoint!(
    /// Undo a duplicate link
    ///
    /// The case is its own again, with the clock it had when it was linked.
    unlink_duplicate, "/cases/{id}/unlink-duplicate", ReasonRequest, Action::UnlinkDuplicate,
    |b| Command::UnlinkDuplicate { reason: reason("reason", &b.reason)? }
);
command_endpoint!(
    /// Add a note
    ///
    /// Adds a note to the history; allowed in any open status.
    add_note, "/cases/{id}/notes", NoteRequest, Action::AddNote,
    |b| Command::AddNote { text: text("text", &b.text)? }
);
command_endpoint!(
    /// Ask the citizen a question
    ///
    /// The handling side asks the citizen through the case (numbered from 1, at most 50 per
    /// case); the citizen reads it with the receipt code and answers there, and a citizen with
    /// a phone number or email address is told by the outbox. Neither side learns who the
    /// other is beyond what the case holds. A handler asks about cases at their unit.
    ask_citizen, "/cases/{id}/questions", NoteRequest, Action::AskCitizen,
    |b| Command::AskCitizen { question: text("text", &b.text)? }
);

/// Registers the routes (under `/api/v1`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(register)
        .service(get_case)
        .service(events)
        .service(accept)
        .service(notify)
        .service(classify)
        .service(assign)
        .service(sign)
        .service(request_return)
        .service(approve_return)
        .service(refuse_return)
        .service(transfer)
        .service(contribute)
        .service(request_extension)
        .service(approve_extension)
        .service(refuse_extension)
        .service(extend)
        .service(pause)
        .service(resume)
        .service(handle)
        .service(feedback)
        .service(follow_up_attempt)
        .service(satisfaction)
        .service(reopen)
        .service(escalate)
        .service(reject)
        .service(close)
        .service(link_duplicate)
        .service(unlink_duplicate)
        .service(add_note)
        .service(ask_citizen);
}

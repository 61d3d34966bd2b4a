//! `/api/v1/public`: the citizen's side, without a token (see [`crate::citizen`]). A case is
//! opened by its receipt code in the path and the secret in the `X-Receipt-Secret` header; a
//! wrong code and a wrong secret answer the same 404. Rate-limited per client address (429 with
//! `Retry-After`).

use actix_web::http::header;
use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse, get, post};
use chrono::{DateTime, Utc};
use domain::{CaseId, Command};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::citizen;
use crate::dto::{CaseKind, Channel, ComplainantInput, LocationInput, Rating, RegisterCaseRequest};
use crate::extract::json_body;
use crate::middleware::{request_id, within_deadline};
use crate::problem::ApiError;
use crate::service::{reason, text};
use crate::startup::AppState;

/// The header that carries the receipt secret.
pub const SECRET_HEADER: &str = "X-Receipt-Secret";

/// A citizen's submission (channel `web`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "kind": "complaint", "title": "村道路灯不亮", "description": "东风村村口到小学的路灯坏了两个月，晚上孩子放学很危险。",
    "complainant": {"phone": "13812345678", "anonymous": false},
    "location": {"address": "东风村村口", "lat": 30.123456, "long": 120.654321}
}))]
pub struct PublicSubmitRequest {
    /// Complaint, suggestion or report.
    pub kind: CaseKind,
    /// A short title: 1 to 200 characters, trimmed; not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub title: String,
    /// What the citizen wants to say: 1 to 5000 characters, trimmed; not blank.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub description: String,
    /// The category, if the citizen chose one (`GET /api/v1/public/options`).
    pub category_id: Option<Uuid>,
    /// The village, farm or community it concerns (`GET /api/v1/public/options`).
    pub village_id: Option<Uuid>,
    /// Who the citizen is and how to reach them: a phone number gets text messages, an email
    /// address mails (the acknowledgement with the receipt code, the reply, questions).
    /// Absent: anonymous (the citizen follows the case with the receipt code and secret only).
    pub complainant: Option<ComplainantInput>,
    /// Where the matter is.
    pub location: Option<LocationInput>,
}

/// What a submission answers: the receipt code and the secret, shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicSubmitted {
    /// The receipt code (受理编号), to quote everywhere.
    #[schema(example = "HY-20261201-7K3Q9PXM")]
    pub receipt_code: String,
    /// The secret that opens the case with the code (`X-Receipt-Secret`): 43 characters, shown
    /// only now; it cannot be recovered.
    pub secret: String,
    /// The case as the citizen sees it.
    pub case: PublicCaseView,
}

/// One step of the case as its citizen sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// When.
    pub at: DateTime<Utc>,
    /// `received`, `accepted`, `rejected`, `dispatched`, `handled`, `replied`, `rated`,
    /// `reopened`, `extended`, `information_added`, `question`, `answered`, `withdrawn`, `closed`.
    pub step: String,
    /// The step in words (Chinese).
    pub text: String,
    /// What was said: the reply, a question or answer, a reason, the new due date.
    pub detail: Option<String>,
    /// The question's number, for `question` and `answered`.
    pub question: Option<u32>,
}

/// A question the handling side asked through the case.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicQuestion {
    /// Its number (answer with `POST …/answers`).
    pub number: u32,
    /// The question.
    pub text: String,
    /// When it was asked.
    pub asked_at: DateTime<Utc>,
    /// The citizen's answer, once given.
    pub answer: Option<String>,
}

/// The case as its citizen sees it: no internal notes, no names of staff, no personal data.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicCaseView {
    /// The receipt code.
    pub receipt_code: String,
    /// `received`, `rejected`, `assigned`, `handled`, `fed_back`, `closed` or `withdrawn`.
    pub status: String,
    /// The status in plain words (Chinese).
    #[schema(example = "办理中")]
    pub status_text: String,
    /// The title the citizen gave.
    pub title: String,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// The unit handling it (a unit, never a person).
    pub responsible_unit: Option<String>,
    /// When the answer is due (the overall limit from acceptance, 信访工作条例 art. 32), while it
    /// runs.
    pub answer_due_at: Option<DateTime<Utc>>,
    /// The official reply of the current round.
    pub reply: Option<String>,
    /// Whether the reply waits for the citizen's rating (once per round).
    pub can_rate: bool,
    /// Whether the case can still be withdrawn.
    pub can_withdraw: bool,
    /// Whether information can still be added.
    pub can_add_information: bool,
    /// Questions asked through the case.
    pub questions: Vec<PublicQuestion>,
    /// The public timeline, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

/// Adds information to the case (补充材料).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicTextRequest {
    /// 1 to 5000 characters; not blank.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub text: String,
}

/// Answers a question asked through the case.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicAnswerRequest {
    /// The question's number.
    #[schema(minimum = 1, maximum = 50)]
    pub question: u32,
    /// The answer: 1 to 5000 characters; not blank.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub text: String,
}

/// Rates the reply (回访): once per round. `dissatisfied` sends the case back for rework.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"rating": "satisfied", "solved": true, "comment": "路灯已经修好了，谢谢。"}))]
pub struct PublicRatingRequest {
    /// 满意 / 基本满意 / 不满意.
    pub rating: Rating,
    /// Was the problem solved? (the citizen's own answer, 解决率 counts it)
    pub solved: bool,
    /// What the citizen wants to add: 1 to 5000 characters.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub comment: Option<String>,
}

/// Withdraws the case (撤回), with a reason.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublicWithdrawRequest {
    /// Why: 1 to 1000 characters; not blank.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub reason: String,
}

/// A choice offered to citizens.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicOption {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
}

/// What a submission form offers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicOptions {
    /// Active categories.
    pub categories: Vec<PublicOption>,
    /// Active villages, farms and communities.
    pub villages: Vec<PublicOption>,
}

/// The receipt secret.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct SecretHeader {
    /// The secret shown when the case was submitted.
    #[serde(rename = "X-Receipt-Secret")]
    #[param(rename = "X-Receipt-Secret", pattern = r"^[A-Za-z0-9_-]{43}$", min_length = 43, max_length = 43)]
    pub secret: String,
}

fn secret_of(req: &HttpRequest) -> Option<&str> {
    req.headers().get(SECRET_HEADER).and_then(|v| v.to_str().ok()).map(str::trim)
}

/// Submit a case (网上反映)
///
/// A citizen submits an opinion, suggestion or complaint (channel `web`), anonymously or with a
/// phone number or email address for notices. The answer carries the receipt code and a secret
/// shown only this once (only its Argon2id hash is kept): together they open the case. The case
/// waits for intake to accept it; the acknowledgement then reaches the citizen by text message
/// or mail. `Idempotency-Key` is not honoured here (a replay could not show the secret again).
#[utoipa::path(
    tag = "public",
    request_body = PublicSubmitRequest,
    responses((status = 201, description = "Submitted", body = PublicSubmitted)),
    security(())
)]
#[post("/cases")]
pub async fn submit(state: Data<AppState>, req: HttpRequest, body: Bytes) -> Result<HttpResponse, ApiError> {
    let b: PublicSubmitRequest = json_body(&req, &body)?;
    let meta = citizen::citizen_meta(request_id(&req));
    let reg = RegisterCaseRequest {
        channel: Channel::Web,
        kind: b.kind,
        title: b.title,
        description: b.description,
        category_id: b.category_id,
        village_id: b.village_id,
        accused_unit_id: None,
        urgency: None,
        received_at: None,
        complainant: b.complainant,
        accept: false,
        notice: None,
        contact_card_serial: None,
        location: b.location,
    };
    let secret = citizen::new_secret();
    let hash = citizen::hash_secret(secret.clone()).await?;
    let registered = within_deadline(&req, crate::service::register_unkeyed(&state, &meta, &reg, Some(&hash))).await?;
    let case = citizen::view(&state, registered.id).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/public/cases/{}", case.receipt_code)))
        .json(PublicSubmitted { receipt_code: case.receipt_code.clone(), secret, case }))
}

/// Follow a case (查询)
///
/// The case by its receipt code, with the secret in `X-Receipt-Secret`: status in plain words,
/// the public timeline, the reply, the running deadline, questions asked. A wrong code and a
/// wrong (or missing) secret answer the same 404, in the same time.
#[utoipa::path(
    tag = "public",
    params(("receipt_code" = String, Path, description = "The receipt code, e.g. `HY-20261201-7K3Q9PXM` (case-insensitive).", max_length = 20, pattern = r"^[Hh][Yy]-[0-9]{8}-[0-9A-Za-z]{8}$"), SecretHeader),
    responses((status = 200, description = "The case", body = PublicCaseView)),
    security(())
)]
#[get("/cases/{receipt_code}")]
pub async fn lookup(state: Data<AppState>, req: HttpRequest, path: Path<String>) -> Result<HttpResponse, ApiError> {
    let id = citizen::open(&state, &path, secret_of(&req)).await?;
    Ok(HttpResponse::Ok().json(within_deadline(&req, citizen::view(&state, id)).await?))
}

async fn citizen_command(
    state: &AppState,
    req: &HttpRequest,
    receipt_code: &str,
    command: impl FnOnce() -> Result<Command, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let id: CaseId = citizen::open(state, receipt_code, secret_of(req)).await?;
    let command = command()?;
    let view = within_deadline(req, citizen::act(state, request_id(req), id, command)).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Add information (补充材料)
///
/// The citizen adds to an open case; the handling side sees it in the history.
#[utoipa::path(
    tag = "public",
    params(("receipt_code" = String, Path, description = "The receipt code, e.g. `HY-20261201-7K3Q9PXM` (case-insensitive).", max_length = 20, pattern = r"^[Hh][Yy]-[0-9]{8}-[0-9A-Za-z]{8}$"), SecretHeader),
    request_body = PublicTextRequest,
    responses((status = 200, description = "The case after it", body = PublicCaseView)),
    security(())
)]
#[post("/cases/{receipt_code}/information")]
pub async fn add_information(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<String>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    citizen_command(&state, &req, &path, || {
        let b: PublicTextRequest = json_body(&req, &body)?;
        Ok(Command::SupplementInformation { text: text("text", &b.text)? })
    })
    .await
}

/// Answer a question
///
/// Answers a question the handling side asked through the case, once (409 `already-answered`;
/// 422 `no-such-question`). Neither side learns more of the other than the case holds.
#[utoipa::path(
    tag = "public",
    params(("receipt_code" = String, Path, description = "The receipt code, e.g. `HY-20261201-7K3Q9PXM` (case-insensitive).", max_length = 20, pattern = r"^[Hh][Yy]-[0-9]{8}-[0-9A-Za-z]{8}$"), SecretHeader),
    request_body = PublicAnswerRequest,
    responses((status = 200, description = "The case after it", body = PublicCaseView)),
    security(())
)]
#[post("/cases/{receipt_code}/answers")]
pub async fn answer(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<String>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    citizen_command(&state, &req, &path, || {
        let b: PublicAnswerRequest = json_body(&req, &body)?;
        Ok(Command::AnswerQuestion { question: b.question, answer: text("text", &b.text)? })
    })
    .await
}

/// Rate the reply (评价)
///
/// Once per round, after the reply (409 `already-rated`, or `invalid-transition` before it).
/// `dissatisfied` sends the case back to the unit for rework in a new round; a second
/// dissatisfied rating puts it under supervision (督办).
#[utoipa::path(
    tag = "public",
    params(("receipt_code" = String, Path, description = "The receipt code, e.g. `HY-20261201-7K3Q9PXM` (case-insensitive).", max_length = 20, pattern = r"^[Hh][Yy]-[0-9]{8}-[0-9A-Za-z]{8}$"), SecretHeader),
    request_body = PublicRatingRequest,
    responses((status = 200, description = "The case after it", body = PublicCaseView)),
    security(())
)]
#[post("/cases/{receipt_code}/rating")]
pub async fn rate(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<String>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    citizen_command(&state, &req, &path, || {
        let b: PublicRatingRequest = json_body(&req, &body)?;
        Ok(Command::RecordSatisfaction {
            rating: b.rating.into(),
            comment: crate::service::opt_text("comment", b.comment.as_deref())?,
            method: domain::RatingMethod::Web,
            solved: Some(b.solved),
        })
    })
    .await
}

/// Withdraw the case (撤回)
///
/// With a reason; every clock stops and the case closes as withdrawn. A rejected or closed
/// case cannot be withdrawn (409).
#[utoipa::path(
    tag = "public",
    params(("receipt_code" = String, Path, description = "The receipt code, e.g. `HY-20261201-7K3Q9PXM` (case-insensitive).", max_length = 20, pattern = r"^[Hh][Yy]-[0-9]{8}-[0-9A-Za-z]{8}$"), SecretHeader),
    request_body = PublicWithdrawRequest,
    responses((status = 200, description = "The case after it", body = PublicCaseView)),
    security(())
)]
#[post("/cases/{receipt_code}/withdrawal")]
pub async fn withdraw(
    state: Data<AppState>,
    req: HttpRequest,
    path: Path<String>,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    citizen_command(&state, &req, &path, || {
        let b: PublicWithdrawRequest = json_body(&req, &body)?;
        Ok(Command::Withdraw { reason: reason("reason", &b.reason)? })
    })
    .await
}

/// What the form offers
///
/// The active categories and villages a submission may name.
#[utoipa::path(
    tag = "public",
    responses((status = 200, description = "The choices", body = PublicOptions)),
    security(())
)]
#[get("/options")]
pub async fn options(state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let categories = state
        .reference
        .list_categories()
        .await?
        .into_iter()
        .filter(|c| c.active)
        .map(|c| PublicOption { id: c.id.as_uuid(), name: c.name })
        .collect();
    let villages = state
        .reference
        .list_units(false)
        .await?
        .into_iter()
        .filter(|u| {
            u.active
                && matches!(u.kind, domain::UnitKind::Village | domain::UnitKind::Farm | domain::UnitKind::Community)
        })
        .map(|u| PublicOption { id: u.id.as_uuid(), name: u.name })
        .collect();
    Ok(HttpResponse::Ok().json(PublicOptions { categories, villages }))
}

/// Registers the routes (under `/api/v1/public`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(submit)
        .service(lookup)
        .service(add_information)
        .service(answer)
        .service(rate)
        .service(withdraw)
        .service(options);
}

//! `/api/v1/supervision`: supervision items (督办) — raised by the rules
//! (`crate::supervision`) or by a supervisor, answered by the unit, closed by a supervisor.

use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse, get, post};
use chrono::{DateTime, Utc};
use domain::records::supervision::{self, Level, Raise, Supervision, Trigger};
use domain::{Reason, RecordId, Text};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Action, Principal, Scope};
use crate::dto::Stage;
use crate::extract::json_body;
use crate::middleware::within_deadline;
use crate::problem::ApiError;
use crate::records::{self, Decided};
use crate::routes::cases::meta;
use crate::service::Fields;
use crate::startup::AppState;

/// How hard a unit is pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LevelName {
    /// 一般督办.
    General,
    /// 重点督办 (a yellow card).
    Key,
    /// 挂牌督办 (a red card).
    Listed,
}

impl From<Level> for LevelName {
    fn from(l: Level) -> Self {
        match l {
            Level::General => Self::General,
            Level::Key => Self::Key,
            Level::Listed => Self::Listed,
        }
    }
}

impl From<LevelName> for Level {
    fn from(l: LevelName) -> Self {
        match l {
            LevelName::General => Self::General,
            LevelName::Key => Self::Key,
            LevelName::Listed => Self::Listed,
        }
    }
}

/// Why an item was raised (`kind` says which; the other fields are the kind's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TriggerView {
    /// A running clock of the case passed its due time.
    Overdue {
        /// The clock (a stage, `acknowledgement` or `overall`).
        stage: Stage,
        /// Its due time.
        due_at: DateTime<Utc>,
    },
    /// The citizen rated the answer 不满意 a second (or later) time.
    RepeatDissatisfied {
        /// Dissatisfied ratings so far.
        count: u32,
    },
    /// The dispatcher refused the unit's return (退单).
    ReturnDispute {
        /// Refused returns so far.
        count: u32,
    },
    /// At least N cases were linked to this one as duplicates.
    Duplicates {
        /// Linked duplicates.
        count: u32,
    },
    /// The unit holds more than M overdue cases (yellow card; more than 2M: red).
    UnitOverdue {
        /// Its overdue cases when raised.
        count: u32,
        /// M.
        threshold: u32,
        /// The Monday of the week it was raised in (raised once a week per level).
        week: chrono::NaiveDate,
    },
    /// A supervisor raised it.
    Manual {
        /// Why.
        reason: String,
    },
}

impl From<&Trigger> for TriggerView {
    fn from(t: &Trigger) -> Self {
        match t {
            Trigger::Overdue { stage, due_at } => Self::Overdue { stage: (*stage).into(), due_at: *due_at },
            Trigger::RepeatDissatisfied { count } => Self::RepeatDissatisfied { count: *count },
            Trigger::ReturnDispute { count } => Self::ReturnDispute { count: *count },
            Trigger::Duplicates { count } => Self::Duplicates { count: *count },
            Trigger::UnitOverdue { count, threshold, week } => {
                Self::UnitOverdue { count: *count, threshold: *threshold, week: *week }
            }
            Trigger::Manual { reason } => Self::Manual { reason: reason.as_str().to_owned() },
        }
    }
}

/// The unit's response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResponseView {
    /// What it did.
    pub text: String,
    /// When it said so.
    pub at: DateTime<Utc>,
}

/// A supervision item.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SupervisionView {
    /// The item (its history: `GET /api/v1/records/{id}/history`).
    pub id: Uuid,
    /// How many events it has (the token `If-Match` takes).
    pub version: u32,
    /// Why it was raised.
    pub trigger: TriggerView,
    /// How hard.
    pub level: LevelName,
    /// The unit supervised (absent: the intake, for a clock the intake answers for).
    pub unit_id: Option<Uuid>,
    /// The case (absent for a unit's card).
    pub case_id: Option<Uuid>,
    /// The campaign the case was received in (absent: none, a unit's card, or an item raised
    /// before items carried it).
    pub campaign_id: Option<Uuid>,
    /// When it was raised.
    pub raised_at: DateTime<Utc>,
    /// The unit's response is due by then.
    pub response_due_at: DateTime<Utc>,
    /// The unit's responses, in order.
    pub responses: Vec<ResponseView>,
    /// `open` or `closed`.
    pub status: String,
    /// When a supervisor closed it.
    pub closed_at: Option<DateTime<Utc>>,
    /// The closing note.
    pub closing_note: Option<String>,
    /// For an overdue clock: whole calendar days from its due time to now, or to the item's
    /// closure (0 on the first day).
    pub days_overdue: Option<i64>,
    /// While open without a response: whole calendar days past the response's due time.
    pub response_days_overdue: Option<i64>,
}

impl SupervisionView {
    /// The view of an item at `now`.
    pub fn of(s: &Supervision, now: DateTime<Utc>) -> Self {
        // A closed item's days stop at its closure.
        let until = s.closed_at.map_or(now, |c| c.min(now));
        let days = |from: DateTime<Utc>| (until >= from).then(|| (until - from).num_days());
        Self {
            id: s.id.as_uuid(),
            version: s.version,
            trigger: (&s.raised.trigger).into(),
            level: s.raised.level.into(),
            unit_id: s.raised.unit.map(|u| u.as_uuid()),
            case_id: s.raised.case.map(|c| c.as_uuid()),
            campaign_id: s.raised.campaign.map(|c| c.as_uuid()),
            raised_at: s.raised_at,
            response_due_at: s.raised.response_due_at,
            responses: s
                .responses
                .iter()
                .map(|r| ResponseView { text: r.text.as_str().to_owned(), at: r.at })
                .collect(),
            status: if s.is_open() { "open" } else { "closed" }.into(),
            closed_at: s.closed_at,
            closing_note: s.closing_note.as_ref().map(|n| n.as_str().to_owned()),
            days_overdue: match &s.raised.trigger {
                Trigger::Overdue { due_at, .. } => days(*due_at),
                _ => None,
            },
            response_days_overdue: if s.is_open() && s.responses.is_empty() {
                days(s.raised.response_due_at)
            } else {
                None
            },
        }
    }
}

/// Which items a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Open items.
    #[default]
    Open,
    /// Every item.
    All,
}

/// The list's query.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SupervisionQuery {
    /// `open` (the default) or `all`.
    pub status: Option<ItemStatus>,
    /// Only items supervising this unit.
    pub unit_id: Option<Uuid>,
    /// Only items about this case.
    pub case_id: Option<Uuid>,
    /// Only items about cases received in this campaign.
    pub campaign_id: Option<Uuid>,
    /// At most this many a page (1 to 1000, default 200), newest first.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the page before (opaque: pass it back as issued; anything else
    /// answers 400).
    #[param(min_length = 1, max_length = 80)]
    pub cursor: Option<String>,
}

/// A page of supervision items.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SupervisionList {
    /// The items, newest first.
    pub items: Vec<SupervisionView>,
    /// The cursor of the next page (give it as `cursor`; the `Link` header names that page too),
    /// absent on the last.
    pub next_cursor: Option<String>,
}

/// A page's cursor: the last item's raise time (microseconds since the epoch) and its id.
fn encode_cursor(at: DateTime<Utc>, id: uuid::Uuid) -> String {
    format!("{}_{}", at.timestamp_micros(), id.simple())
}

fn decode_cursor(s: &str) -> Option<(DateTime<Utc>, uuid::Uuid)> {
    let (micros, id) = s.split_once('_')?;
    Some((DateTime::from_timestamp_micros(micros.parse().ok()?)?, uuid::Uuid::try_parse(id).ok()?))
}

/// Supervision items
///
/// Open items by default (`status=all` for every item), newest first, each with its trigger,
/// level, unit, the days its clock is overdue and the days its response is; paged by
/// `next_cursor` (and the `Link` header). Handlers see their unit's items.
#[utoipa::path(tag = "supervision", params(SupervisionQuery), responses(
    (status = 200, description = "The items", body = SupervisionList),
    (status = 400, description = "A parameter is malformed", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/supervision")]
pub async fn list_supervision(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let scope = principal.require(Action::ReadRecords)?;
    let q: SupervisionQuery = crate::extract::query(&req)?;
    let open_only = q.status.unwrap_or_default() == ItemStatus::Open;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest { code: "invalid-query", detail: "limit must be 1 to 1000".into() });
    }
    let unit_id = match scope {
        Scope::All => q.unit_id,
        Scope::OwnUnit => {
            let own = principal.unit.map(|u| u.as_uuid()).ok_or(ApiError::Forbidden)?;
            if q.unit_id.is_some_and(|u| u != own) {
                return Ok(HttpResponse::Ok().json(SupervisionList { items: Vec::new(), next_cursor: None }));
            }
            Some(own)
        }
    };
    let after = crate::routes::ledger::issued_cursor(q.cursor.as_deref(), decode_cursor)?;
    let filter = infra::supervision::ItemFilter {
        open_only,
        unit_id,
        case_id: q.case_id,
        campaign_id: q.campaign_id,
        limit,
        after,
    };
    let rows = within_deadline(&req, async { Ok(infra::supervision::items(&state.pool, &filter).await?) }).await?;
    let full = rows.len() as i64 == limit;
    let now = Utc::now();
    let items: Vec<SupervisionView> = rows
        .into_iter()
        .filter_map(|r| serde_json::from_value::<Supervision>(r.doc).ok())
        .map(|s| SupervisionView::of(&s, now))
        .collect();
    let next_cursor = if full { items.last().map(|i| encode_cursor(i.raised_at, i.id)) } else { None };
    let mut ok = HttpResponse::Ok();
    if let Some(next) = &next_cursor {
        ok.insert_header((actix_web::http::header::LINK, crate::routes::ledger::next_link(&req, next)));
    }
    Ok(ok.json(SupervisionList { items, next_cursor }))
}

/// A supervision item
///
/// One item with its trigger, level, unit, response and closure. A handler reads the items of
/// their unit; any other answers 404 like a missing item.
#[utoipa::path(tag = "supervision", params(("id" = Uuid, Path, description = "The item")), responses(
    (status = 200, description = "The item", body = SupervisionView),
    (status = 404, description = "No such item the caller may read", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/supervision/{id}")]
pub async fn get_supervision(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (s, _) = records::load::<Supervision>(&state, &principal, *id, None).await?;
    Ok(HttpResponse::Ok().json(SupervisionView::of(&s, Utc::now())))
}

/// Raises an item by hand.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"level": "key", "unit_id": "0b7f0f5e-3c1a-4c55-9f59-3b8f5f6f2a11", "reason": "群众反映强烈，列入重点督办"}))]
pub struct RaiseRequest {
    /// How hard.
    pub level: LevelName,
    /// The unit supervised (an active unit).
    pub unit_id: Uuid,
    /// The case, if the item is about one: it must exist and be handled by the unit (its lead
    /// unit or a co-unit), else 422 `unknown-reference`.
    pub case_id: Option<Uuid>,
    /// Why: 4 to 1000 characters, trimmed; not blank; no control characters but tab and line
    /// breaks; with at least 4 letters or CJK characters (digits, punctuation and spaces do not
    /// count).
    #[schema(
        min_length = 4,
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub reason: String,
}

/// Raise a supervision item
///
/// A supervisor puts a unit (and optionally one of its cases) under supervision by hand; the
/// response falls due after the configured working days. Supervisors only.
#[utoipa::path(tag = "supervision", request_body = RaiseRequest, responses(
    (status = 201, description = "The item", body = SupervisionView),
    (status = 422, description = "A field is invalid, or the unit or case is unknown", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/supervision")]
pub async fn raise_supervision(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::Supervise)?;
    let body: RaiseRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let mut f = Fields::default();
    if !domain::ids::states_a_reason(&body.reason) {
        f.push("reason", &domain::ids::reason_rule());
    }
    let reason = f.take("reason", Reason::parse(&body.reason));
    f.finish()?;
    let Some(reason) = reason else { return Err(ApiError::internal(std::io::Error::other("no reason"))) };
    let rules = state.supervision_rules;
    let s = within_deadline(&req, async {
        let unit = crate::service::check_unit(&state, "unit_id", body.unit_id).await?;
        let case = match body.case_id {
            Some(c) => {
                let row = state
                    .ledger
                    .row(domain::CaseId::from_uuid(c))
                    .await?
                    .ok_or_else(|| ApiError::UnknownReference("case_id: no such case".into()))?;
                // An item about a case supervises the unit that handles it (lead or co-unit),
                // never another: the unit a complaint accuses would read it (回避).
                let u = unit.as_uuid();
                if row.unit_id != Some(u) && !row.co_unit_ids.contains(&u) {
                    return Err(ApiError::UnknownReference(
                        "unit_id: the case is not handled by this unit (an item about a case supervises its lead unit or a co-unit)".into(),
                    ));
                }
                Some((domain::CaseId::from_uuid(c), row.campaign_id.map(RecordId::from_uuid)))
            }
            None => None,
        };
        let calendar = state.reference.working_calendar().await?;
        let r = Raise {
            id: RecordId::from_uuid(Uuid::new_v4()),
            trigger: Trigger::Manual { reason },
            level: body.level.into(),
            unit: Some(unit),
            case: case.map(|c| c.0),
            campaign: case.and_then(|c| c.1),
        };
        let events = supervision::raise(&r, &rules, crate::service::now(), &calendar)?;
        records::create::<Supervision>(&state, &meta, Action::Supervise, &body, Decided::events(events)).await
    })
    .await?;
    Ok(HttpResponse::Created().json(SupervisionView::of(&s, Utc::now())))
}

/// The unit's response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "已督促承办人当日办结并回复群众"}))]
pub struct RespondRequest {
    /// What the unit did: 1 to 5000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub text: String,
}

/// Respond to a supervision item
///
/// The supervised unit (its handlers) or a supervisor says what was done. 409
/// `supervision-closed` once the item is closed.
#[utoipa::path(tag = "supervision", params(("id" = Uuid, Path, description = "The item")), request_body = RespondRequest, responses(
    (status = 200, description = "The item", body = SupervisionView),
    (status = 404, description = "No such item the caller may read", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 409, description = "`supervision-closed`", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "A field is invalid", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/supervision/{id}/response")]
pub async fn respond_to_supervision(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::RespondSupervision)?;
    let body: RespondRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let mut f = Fields::default();
    let text = f.take("text", Text::parse(&body.text));
    f.finish()?;
    let Some(text) = text else { return Err(ApiError::internal(std::io::Error::other("no text"))) };
    let s = within_deadline(
        &req,
        records::write::<Supervision>(&state, &meta, *id, Action::RespondSupervision, &body, |s| {
            Ok(Decided::events(supervision::respond(s, text.clone())?))
        }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(SupervisionView::of(&s, Utc::now())))
}

/// Closes an item.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"note": "单位已整改，群众满意"}))]
pub struct CloseItemRequest {
    /// Why it closes; required when the unit never responded (else 409 `response-required`).
    /// 1 to 5000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub note: Option<String>,
}

/// Close a supervision item
///
/// A supervisor closes the item: after the unit's response, or with a note saying why without
/// one (409 `response-required`). 409 `supervision-closed` when it is closed already.
#[utoipa::path(tag = "supervision", params(("id" = Uuid, Path, description = "The item")), request_body = CloseItemRequest, responses(
    (status = 200, description = "The item", body = SupervisionView),
    (status = 404, description = "No such item", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 409, description = "`supervision-closed`, `response-required`", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "A field is invalid", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/supervision/{id}/closure")]
pub async fn close_supervision(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::Supervise)?;
    let body: CloseItemRequest = crate::extract::optional_json_body(&body)?;
    let meta = meta(&req, principal)?;
    let mut f = Fields::default();
    let note = body.note.as_ref().and_then(|n| f.take("note", Text::parse(n)));
    f.finish()?;
    let s = within_deadline(
        &req,
        records::write::<Supervision>(&state, &meta, *id, Action::Supervise, &body, |s| {
            Ok(Decided::events(supervision::close(s, note.clone())?))
        }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(SupervisionView::of(&s, Utc::now())))
}

/// Registers the routes (under `/api/v1`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(list_supervision)
        .service(raise_supervision)
        .service(get_supervision)
        .service(respond_to_supervision)
        .service(close_supervision);
}

//! `/api/v1/visits`: open and undercover visits (明察暗访), their findings with evidence, the
//! rectification demanded and its re-check, and a finding that becomes a case. An undercover visit
//! is read only by supervisors and auditors until a supervisor discloses it: to everyone else it
//! answers 404 on every route, is left out of lists, and its events are left out of the feed.

use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse, get, post};
use chrono::NaiveDate;
use domain::records::visit::{self, Place, PlaceType, Rectification, Visit, VisitEvent, VisitMode};
use domain::records::{CaseSource, SourceType};
use domain::{Name, Text};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::records::{RecordAsOfQuery, RecordListQuery, RecordPage, RecordView, bounded_day, happened_day};
use crate::auth::{Action, Principal};
use crate::dto::{CaseKind, Channel, RegisterCaseRequest, Urgency};
use crate::extract::json_body;
use crate::middleware::within_deadline;
use crate::problem::{ApiError, FieldError};
use crate::records::{self, Decided};
use crate::routes::cases::meta;
use crate::service::Fields;
use crate::startup::AppState;

/// Open (明察) or undercover (暗访).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum VisitModeName {
    /// Announced.
    Open,
    /// Unannounced: restricted to supervisors and auditors until disclosed.
    Undercover,
}

/// The kind of place visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlaceTypeName {
    /// 村.
    Village,
    /// 学校.
    School,
    /// 卫生院 / 诊所.
    Clinic,
    /// 企业.
    Firm,
    /// 农户.
    Household,
}

/// A place visited.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceInput {
    /// Its kind.
    #[serde(rename = "type")]
    pub place_type: PlaceTypeName,
    /// Its name: 1 to 100 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// The village it lies in (an active village, farm or community).
    pub village_id: Option<Uuid>,
}

/// Records a visit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "mode": "open", "visited_on": "2026-05-12", "organiser_unit_id": "00000000-0000-0000-0000-000000000001",
    "team": [{"name": "纪委 张"}, {"name": "纪委 刘"}],
    "places": [{"type": "school", "name": "中心小学", "village_id": "00000000-0000-0000-0000-000000000002"}]
}))]
pub struct VisitRequest {
    /// Open or undercover (an undercover visit: supervisors only).
    pub mode: VisitModeName,
    /// The day of the visit, 2000-01-01 to today (China Standard Time; a later day is 422
    /// `date-in-future`); inside its campaign's days, its organiser and villages taking part (422
    /// `outside-campaign`).
    #[schema(value_type = String, format = Date, pattern = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$", example = "2026-05-12")]
    pub visited_on: NaiveDate,
    /// The unit that organised it (an active unit).
    pub organiser_unit_id: Uuid,
    /// The team (1 to 20 names).
    #[schema(min_items = 1, max_items = 20)]
    pub team: Vec<TeamMember>,
    /// The places visited (1 to 50).
    #[schema(min_items = 1, max_items = 50)]
    pub places: Vec<PlaceInput>,
    /// The campaign it belongs to.
    pub campaign_id: Option<Uuid>,
}

/// A member of the visiting team.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamMember {
    /// Their name: 1 to 100 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
}

/// The rectification a finding demands.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RectificationInput {
    /// What must be done (整改要求): 1 to 5000 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub demand: String,
    /// By when, 2000-01-01 to 2099-12-31, not before the visit (422 `date-before-visit`).
    #[schema(value_type = String, format = Date, pattern = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$", example = "2026-06-30")]
    pub due_on: NaiveDate,
}

/// Records a finding.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "食堂未公示收费标准", "evidence": [{"note": "现场照片 3 张"}], "rectification": {"demand": "一周内公示", "due_on": "2026-05-19"}}))]
pub struct FindingRequest {
    /// What was found: 1 to 5000 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub text: String,
    /// Evidence notes (at most 20).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub evidence: Vec<EvidenceNote>,
    /// The rectification demanded, if any.
    pub rectification: Option<RectificationInput>,
}

/// An evidence note (a photo taken, a document seen, who said what).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceNote {
    /// The note: 1 to 5000 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub note: String,
}

/// Records a re-check of a finding's rectification.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"finding": 1, "on": "2026-05-20", "rectified": true, "note": "已张贴公示"}))]
pub struct RecheckRequest {
    /// The finding's number (1 to 1000): 422 `no-such-finding` when the visit has none, 422
    /// `nothing-to-recheck` when it demanded no rectification.
    #[schema(minimum = 1, maximum = 1000, format = Int32)]
    pub finding: u32,
    /// The day, 2000-01-01 to today (422 `date-in-future`), not before the visit (422
    /// `date-before-visit`).
    #[schema(value_type = String, format = Date, pattern = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$", example = "2026-05-20")]
    pub on: NaiveDate,
    /// Whether it was put right.
    pub rectified: bool,
    /// What was seen: 1 to 5000 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub note: Option<String>,
}

/// Turns a finding into a case (channel `visit`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"finding": 1, "kind": "complaint", "title": "食堂收费不公开"}))]
pub struct FindingCaseRequest {
    /// The finding's number (1 to 1000); a finding already a case is 409
    /// `finding-already-a-case`.
    #[schema(minimum = 1, maximum = 1000, format = Int32)]
    pub finding: u32,
    /// Complaint, suggestion or report.
    pub kind: CaseKind,
    /// A short title: 1 to 200 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub title: String,
    /// The category, if known.
    pub category_id: Option<Uuid>,
    /// The village it concerns.
    pub village_id: Option<Uuid>,
    /// The unit it accuses (检举控告).
    pub accused_unit_id: Option<Uuid>,
    /// Defaults to `normal`.
    pub urgency: Option<Urgency>,
}

async fn view(state: &AppState, principal: &Principal, v: &Visit) -> Result<RecordView, ApiError> {
    view_at(state, principal, v, None).await
}

async fn view_at(
    state: &AppState,
    principal: &Principal,
    v: &Visit,
    as_of: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<RecordView, ApiError> {
    RecordView::at(state, principal, v.id.as_uuid(), v.version, v, Vec::new(), as_of).await
}

/// Record a visit
///
/// Records an open or an undercover visit: its day, organising unit, team and places. An
/// undercover visit is recorded by a supervisor and stays restricted to supervisors and auditors
/// until disclosed. Clerks record open visits.
#[utoipa::path(tag = "visits", request_body = VisitRequest, responses(
    (status = 201, description = "The visit", body = RecordView),
    (status = 403, description = "An undercover visit recorded by a role other than a supervisor", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 409, description = "`campaign-finished`: the campaign's summary report is frozen; nothing more joins it", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "A field is invalid, or a unit or campaign unknown", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/visits")]
pub async fn record_visit(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::RecordActivity)?;
    let body: VisitRequest = json_body(&req, &body)?;
    let action = match body.mode {
        VisitModeName::Open => Action::RecordActivity,
        VisitModeName::Undercover => Action::RecordUndercover,
    };
    principal.require(action)?;
    let meta = meta(&req, principal)?;
    let v = within_deadline(&req, async {
        let mut f = Fields::default();
        let visited_on = happened_day("visited_on", body.visited_on)?;
        if body.team.is_empty() || body.team.len() > 20 {
            f.push("team", "give 1 to 20 names");
        }
        if body.places.is_empty() || body.places.len() > 50 {
            f.push("places", "give 1 to 50 places");
        }
        let team: Vec<Option<Name>> =
            body.team.iter().enumerate().map(|(i, t)| f.take(&format!("team[{i}]"), Name::parse(&t.name))).collect();
        let names: Vec<Option<Name>> = body
            .places
            .iter()
            .enumerate()
            .map(|(i, p)| f.take(&format!("places[{i}].name"), Name::parse(&p.name)))
            .collect();
        f.finish()?;
        let organiser = crate::service::check_unit(&state, "organiser_unit_id", body.organiser_unit_id).await?;
        // The organiser and every village visited take part in the campaign the visit names.
        let mut units = vec![organiser];
        for p in &body.places {
            if let Some(v) = p.village_id {
                units.push(crate::service::check_village(&state, v).await?);
            }
        }
        let campaign =
            super::meetings::check_campaign(&state, &meta.principal, body.campaign_id, visited_on, &units, "the visit")
                .await?;
        let mut places = Vec::with_capacity(body.places.len());
        for (p, name) in body.places.iter().zip(names) {
            let village = match p.village_id {
                Some(v) => Some(crate::service::check_village(&state, v).await?),
                None => None,
            };
            let place_type = match p.place_type {
                PlaceTypeName::Village => PlaceType::Village,
                PlaceTypeName::School => PlaceType::School,
                PlaceTypeName::Clinic => PlaceType::Clinic,
                PlaceTypeName::Firm => PlaceType::Firm,
                PlaceTypeName::Household => PlaceType::Household,
            };
            places.push(Place { place_type, name: name.ok_or(ApiError::Validation(Vec::new()))?, village });
        }
        let team = team.into_iter().collect::<Option<Vec<_>>>().ok_or(ApiError::Validation(Vec::new()))?;
        let mode = match body.mode {
            VisitModeName::Open => VisitMode::Open,
            VisitModeName::Undercover => VisitMode::Undercover,
        };
        let event = VisitEvent::Recorded(visit::Recorded { mode, visited_on, organiser, team, places, campaign });
        let v: Visit = records::create(&state, &meta, action, &body, Decided::events(vec![event])).await?;
        view(&state, &meta.principal, &v).await
    })
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::LOCATION, format!("/api/v1/visits/{}", v.id)))
        .json(v))
}

/// List visits
///
/// The visits the caller may read, newest first: undercover ones not yet disclosed only for
/// supervisors and auditors; a handler, those of their unit.
#[utoipa::path(tag = "visits", params(RecordListQuery), responses((status = 200, description = "A page", body = RecordPage)), security(("bearer" = [])))]
#[get("/visits")]
pub async fn list_visits(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadRecords)?;
    let q: RecordListQuery = crate::extract::query(&req)?;
    let page = within_deadline(&req, super::records::list::<Visit>(&state, &principal, &q, |_| Vec::new())).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get a visit
///
/// The visit, its findings with their re-checks and cases; with `as_of`, as it stood then. An
/// undercover visit not yet disclosed answers 404 to everyone but supervisors and auditors.
#[utoipa::path(tag = "visits", params(("id" = Uuid, Path, description = "The visit"), RecordAsOfQuery), responses(
    (status = 200, description = "The visit", body = RecordView),
    (status = 404, description = "No such visit the caller may read", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/visits/{id}")]
pub async fn get_visit(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadRecords)?;
    let as_of = super::records::as_of(&req)?;
    let (v, _) = records::load::<Visit>(&state, &principal, *id, as_of).await?;
    Ok(HttpResponse::Ok().json(view_at(&state, &principal, &v, as_of).await?))
}

/// Record a finding of a visit
///
/// Adds a finding (it gets the next number) with its evidence notes and, when needed, the
/// rectification demanded and its due day.
#[utoipa::path(tag = "visits", params(("id" = Uuid, Path, description = "The visit")), request_body = FindingRequest, responses(
    (status = 200, description = "The visit", body = RecordView),
    (status = 404, description = "No such visit the caller may read", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "A field is invalid; `date-before-visit`", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/visits/{id}/findings")]
pub async fn record_finding(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::RecordActivity)?;
    let body: FindingRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let mut f = Fields::default();
    let text = f.take("text", Text::parse(&body.text));
    if body.evidence.len() > 20 {
        f.push("evidence", "at most 20 notes");
    }
    let evidence: Vec<Option<Text>> = body
        .evidence
        .iter()
        .enumerate()
        .map(|(i, e)| f.take(&format!("evidence[{i}]"), Text::parse(&e.note)))
        .collect();
    let rectification = match &body.rectification {
        Some(r) => {
            let demand = f.take("rectification.demand", Text::parse(&r.demand));
            let due_on = bounded_day("rectification.due_on", r.due_on)?;
            demand.map(|demand| Rectification { demand, due_on })
        }
        None => None,
    };
    f.finish()?;
    let text = text.ok_or(ApiError::Validation(Vec::new()))?;
    let evidence = evidence.into_iter().collect::<Option<Vec<_>>>().ok_or(ApiError::Validation(Vec::new()))?;
    let v = within_deadline(
        &req,
        records::write::<Visit>(&state, &meta, *id, Action::RecordActivity, &body, |v| {
            Ok(Decided::events(visit::record_finding(v, text.clone(), evidence.clone(), rectification.clone())?))
        }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, &meta.principal, &v).await?))
}

/// Record a re-check of a rectification
///
/// Records a later re-check (复查) of a finding's rectification: the day, whether it was put
/// right, what was seen.
#[utoipa::path(tag = "visits", params(("id" = Uuid, Path, description = "The visit")), request_body = RecheckRequest, responses(
    (status = 200, description = "The visit", body = RecordView),
    (status = 404, description = "No such visit the caller may read", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "`no-such-finding`, `nothing-to-recheck`, `date-before-visit`, a field invalid", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/visits/{id}/rechecks")]
pub async fn recheck(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::RecordActivity)?;
    let body: RecheckRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let mut f = Fields::default();
    if !(1..=1000).contains(&body.finding) {
        f.push("finding", "must be 1 to 1000");
    }
    let note = body.note.as_ref().and_then(|n| f.take("note", Text::parse(n)));
    let on = happened_day("on", body.on)?;
    f.finish()?;
    let v = within_deadline(
        &req,
        records::write::<Visit>(&state, &meta, *id, Action::RecordActivity, &body, |v| {
            Ok(Decided::events(visit::recheck(v, body.finding, on, body.rectified, note.clone())?))
        }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, &meta.principal, &v).await?))
}

/// Turn a finding into a case
///
/// Registers the finding as a case (channel `visit`, its description the finding's text,
/// received on the visit's day, in its campaign) linked to the visit, in the same transaction
/// as the link. A finding becomes a case once.
#[utoipa::path(tag = "visits", params(("id" = Uuid, Path, description = "The visit")), request_body = FindingCaseRequest, responses(
    (status = 200, description = "The visit with its cases", body = RecordView),
    (status = 404, description = "No such visit the caller may read", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 409, description = "`finding-already-a-case`", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "`no-such-finding`, a field invalid, a unit unknown", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/visits/{id}/cases")]
pub async fn finding_to_case(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::RecordActivity)?;
    principal.require(Action::RegisterCase)?;
    let body: FindingCaseRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    if !(1..=1000).contains(&body.finding) {
        return Err(ApiError::Validation(vec![FieldError {
            field: "finding".into(),
            message: "must be 1 to 1000".into(),
        }]));
    }
    let mut case = RegisterCaseRequest {
        channel: Channel::Visit,
        kind: body.kind,
        title: body.title.clone(),
        description: "-".into(),
        category_id: body.category_id,
        village_id: body.village_id,
        accused_unit_id: body.accused_unit_id,
        urgency: body.urgency,
        received_at: None,
        complainant: None,
        accept: false,
        notice: None,
        contact_card_serial: None,
        location: None,
    };
    crate::service::check_registration_fields(&case)?;
    let v = within_deadline(&req, async {
        let (visit, _) = records::load::<Visit>(&state, &meta.principal, *id, None).await?;
        let finding = visit.finding(body.finding).ok_or(domain::records::RecordError::NoSuchFinding(body.finding))?;
        case.description = finding.details.text.as_str().to_owned();
        case.received_at = Some(super::meetings::received_on(visit.details.visited_on));
        let source = CaseSource { source_type: SourceType::Visit, record: visit.id, item: body.finding.to_string() };
        let new = crate::service::prepare_case(&state, &meta, &case, Some(source), visit.details.campaign).await?;
        let append = new.append();
        records::write::<Visit>(&state, &meta, *id, Action::RecordActivity, &body, |v| {
            Ok(Decided { events: visit::finding_became_case(v, body.finding, new.id)?, cases: vec![append.clone()] })
        })
        .await
    })
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, &meta.principal, &v).await?))
}

/// Disclose an undercover visit
///
/// The committee discloses an undercover visit: from now on it reads like an open one, for
/// every role that reads records (and its events reach the feed's later pages). Supervisors.
#[utoipa::path(tag = "visits", params(("id" = Uuid, Path, description = "The visit")), responses(
    (status = 200, description = "The visit", body = RecordView),
    (status = 404, description = "No such visit the caller may read", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 409, description = "`not-undercover`: open, or already disclosed", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/visits/{id}/disclose")]
pub async fn disclose(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::RecordUndercover)?;
    let meta = meta(&req, principal)?;
    let v = within_deadline(
        &req,
        records::write::<Visit>(&state, &meta, *id, Action::RecordUndercover, &(), |v| {
            Ok(Decided::events(visit::disclose(v)?))
        }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, &meta.principal, &v).await?))
}

/// Registers the visit routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(record_visit)
        .service(list_visits)
        .service(get_visit)
        .service(record_finding)
        .service(recheck)
        .service(finding_to_case)
        .service(disclose);
}

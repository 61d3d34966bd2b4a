//! `/api/v1/campaigns`: the campaign (纠风工作基层行), its phases (筹备 / 实施 / 总结) and its
//! documents. Cases received in a taking-part unit on a day of a phase are tagged with the
//! campaign and the phase; the ledger, stats and exports filter by them.

use actix_web::web::{Bytes, Data, Path};
use actix_web::{HttpRequest, HttpResponse, get, post};
use chrono::NaiveDate;
use domain::records::Record;
use domain::records::campaign::{self, Campaign, Document, PhaseSpan};
use domain::{Text, Title};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::records::{RecordAsOfQuery, RecordListQuery, RecordPage, RecordView, bounded_day};
use crate::auth::{Action, Principal};
use crate::extract::json_body;
use crate::middleware::within_deadline;
use crate::problem::ApiError;
use crate::records::{self, Decided};
use crate::routes::cases::meta;
use crate::service::Fields;
use crate::startup::AppState;

/// A campaign's phase: 筹备 (preparation), 实施 (implementation), 总结 (summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhaseName {
    /// 筹备阶段.
    Preparation,
    /// 实施阶段.
    Implementation,
    /// 总结阶段.
    Summary,
}

impl From<PhaseName> for domain::records::Phase {
    fn from(p: PhaseName) -> Self {
        match p {
            PhaseName::Preparation => Self::Preparation,
            PhaseName::Implementation => Self::Implementation,
            PhaseName::Summary => Self::Summary,
        }
    }
}

/// One phase and its days.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PhaseInput {
    /// Which phase.
    pub phase: PhaseName,
    /// Its first day (China Standard Time), 2000-01-01 to 2099-12-31.
    #[schema(value_type = String, format = Date, pattern = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$", example = "2026-04-10")]
    pub from: NaiveDate,
    /// Its last day (included), 2000-01-01 to 2099-12-31.
    #[schema(value_type = String, format = Date, pattern = r"^20[0-9]{2}-[0-9]{2}-[0-9]{2}$", example = "2026-04-10")]
    pub to: NaiveDate,
}

/// The kind of a campaign document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKindName {
    /// 实施方案.
    Plan,
    /// 动员部署.
    Mobilisation,
    /// 宣传材料.
    Publicity,
    /// 总结报告.
    Summary,
    /// Anything else.
    Other,
}

/// A campaign document.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "plan", "title": "纠风工作基层行实施方案", "content": "一、指导思想……"}))]
pub struct DocumentInput {
    /// Its kind.
    pub kind: DocumentKindName,
    /// Its title: 1 to 200 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub title: String,
    /// Its text, or where the signed paper is kept: 1 to 5000 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub content: String,
}

/// Launches a campaign.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "2026年纠风工作基层行", "leading_unit_id": "00000000-0000-0000-0000-000000000001",
    "unit_ids": ["00000000-0000-0000-0000-000000000002"],
    "phases": [{"phase": "preparation", "from": "2026-03-01", "to": "2026-03-15"},
               {"phase": "implementation", "from": "2026-03-16", "to": "2026-10-31"},
               {"phase": "summary", "from": "2026-11-01", "to": "2026-11-30"}],
    "documents": [{"kind": "plan", "title": "实施方案", "content": "一、指导思想……"}]
}))]
pub struct CampaignRequest {
    /// Its name: 1 to 200 characters, not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// The unit that leads it (an active unit).
    pub leading_unit_id: Uuid,
    /// The units taking part: active villages, farms or communities (1 to 500). A unit already in
    /// another campaign on some of these days is 422 `campaigns-overlap`.
    #[schema(min_items = 1, max_items = 500)]
    pub unit_ids: Vec<Uuid>,
    /// Its phases in order: preparation, implementation, summary (implementation required),
    /// none overlapping; else 422 `phases-out-of-order`.
    #[schema(min_items = 1, max_items = 3)]
    pub phases: Vec<PhaseInput>,
    /// Its documents (at most 50).
    #[serde(default)]
    #[schema(max_items = 50)]
    pub documents: Vec<DocumentInput>,
}

/// Moves a campaign's phases.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"phases": [{"phase": "implementation", "from": "2026-03-16", "to": "2026-11-15"}]}))]
pub struct PhasesRequest {
    /// The phases, as when launching.
    #[schema(min_items = 1, max_items = 3)]
    pub phases: Vec<PhaseInput>,
}

fn phases(f: &mut Fields, input: &[PhaseInput]) -> Result<Vec<PhaseSpan>, ApiError> {
    if input.is_empty() || input.len() > 3 {
        f.push("phases", "give 1 to 3 phases");
    }
    let mut out = Vec::new();
    for (i, p) in input.iter().enumerate() {
        let from = bounded_day(&format!("phases[{i}].from"), p.from)?;
        let to = bounded_day(&format!("phases[{i}].to"), p.to)?;
        out.push(PhaseSpan { phase: p.phase.into(), from, to });
    }
    Ok(out)
}

fn document(f: &mut Fields, at: &str, d: &DocumentInput) -> Option<Document> {
    let title = f.take(&format!("{at}.title"), Title::parse(&d.title));
    let content = f.take(&format!("{at}.content"), Text::parse(&d.content));
    let kind = match d.kind {
        DocumentKindName::Plan => campaign::DocumentKind::Plan,
        DocumentKindName::Mobilisation => campaign::DocumentKind::Mobilisation,
        DocumentKindName::Publicity => campaign::DocumentKind::Publicity,
        DocumentKindName::Summary => campaign::DocumentKind::Summary,
        DocumentKindName::Other => campaign::DocumentKind::Other,
    };
    Some(Document { kind, title: title?, content: content? })
}

/// Refuses (422 `campaigns-overlap`) a campaign that shares a unit and a day with another: a
/// case of that unit on that day would belong to both. (Two launches at the same moment are not
/// serialised against each other: a rare race an admin sees in the list.)
async fn check_no_overlap(
    state: &AppState,
    this: Option<domain::RecordId>,
    leading: domain::UnitId,
    units: &[domain::UnitId],
    phases: &[PhaseSpan],
) -> Result<(), ApiError> {
    let all = infra::records::list(
        &state.pool,
        &infra::records::RecordFilter {
            stream_type: Campaign::STREAM,
            include_restricted: true,
            limit: 10_000,
            ..Default::default()
        },
    )
    .await?;
    for row in all {
        let other: Campaign = serde_json::from_value(row.doc).map_err(ApiError::internal)?;
        if Some(other.id) != this && campaign::overlaps(&other, leading, units, phases) {
            return Err(domain::records::RecordError::CampaignsOverlap.into());
        }
    }
    Ok(())
}

/// The advisory lock that serialises the checks between campaigns with their writes.
const CAMPAIGN_LOCK: &str = "huiyin.campaigns";

/// Refuses (422 `outside-campaign`) phases that would leave a record of the campaign (a meeting,
/// a visit, a batch, a questionnaire) on a day outside them.
async fn check_records_inside(state: &AppState, c: &Campaign, phases: &[PhaseSpan]) -> Result<(), ApiError> {
    for stream_type in ["meeting", "visit", "card_batch", "survey"] {
        let rows = infra::records::list(
            &state.pool,
            &infra::records::RecordFilter {
                stream_type,
                campaign_id: Some(c.id.as_uuid()),
                include_restricted: true,
                limit: 10_000,
                ..Default::default()
            },
        )
        .await?;
        let inside = |d: chrono::NaiveDate| phases.iter().any(|p| p.from <= d && d <= p.to);
        if rows.iter().any(|r| r.happened_on.is_some_and(|d| !inside(d))) {
            return Err(domain::records::RecordError::OutsideCampaign("a record of the campaign").into());
        }
    }
    Ok(())
}

async fn view(state: &AppState, principal: &Principal, c: &Campaign) -> Result<RecordView, ApiError> {
    RecordView::of(state, principal, c.id.as_uuid(), c.version, c, Vec::new()).await
}

/// Launch a campaign
///
/// Records a campaign with its leading unit, the units taking part, its phases and documents.
/// From then on a case received in a taking-part unit on a day of a phase is tagged with the
/// campaign and the phase (`GET /api/v1/ledger?campaign_id=…&campaign_phase=…`). Supervisors
/// and admins.
#[utoipa::path(tag = "campaigns", request_body = CampaignRequest, responses(
    (status = 201, description = "The campaign", body = RecordView),
    (status = 422, description = "A field is invalid; `phases-out-of-order`; a unit unknown or inactive", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/campaigns")]
pub async fn launch_campaign(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::WriteCampaign)?;
    let body: CampaignRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    within_deadline(&req, async {
        let mut f = Fields::default();
        let name = f.take("name", Title::parse(&body.name));
        let spans = phases(&mut f, &body.phases)?;
        if body.unit_ids.is_empty() || body.unit_ids.len() > 500 {
            f.push("unit_ids", "give 1 to 500 units");
        }
        if body.documents.len() > 50 {
            f.push("documents", "at most 50 documents");
        }
        let docs: Vec<Option<Document>> =
            body.documents.iter().enumerate().map(|(i, d)| document(&mut f, &format!("documents[{i}]"), d)).collect();
        f.finish()?;
        let leading = crate::service::check_unit(&state, "leading_unit_id", body.leading_unit_id).await?;
        let mut units = Vec::new();
        for (i, u) in body.unit_ids.iter().enumerate() {
            units.push(crate::service::check_village(&state, *u).await.map_err(|e| match e {
                ApiError::UnknownReference(_) => {
                    ApiError::UnknownReference(format!("unit_ids[{i}]: no active village, farm or community"))
                }
                other => other,
            })?);
        }
        let (Some(name), Some(docs)) = (name, docs.into_iter().collect::<Option<Vec<_>>>()) else {
            return Err(ApiError::Validation(Vec::new()));
        };
        let events = campaign::launch(name, leading, units.clone(), spans.clone(), docs)?;
        // Checked and written under one lock: two launches at once cannot both pass.
        let c: Campaign = infra::records::exclusively(&state.pool, CAMPAIGN_LOCK, async {
            check_no_overlap(&state, None, leading, &units, &spans).await?;
            records::create(&state, &meta, Action::WriteCampaign, &body, Decided::events(events)).await
        })
        .await?;
        view(&state, &meta.principal, &c).await
    })
    .await
    .map(|v| {
        HttpResponse::Created()
            .insert_header((actix_web::http::header::LOCATION, format!("/api/v1/campaigns/{}", v.id)))
            .json(v)
    })
}

/// List campaigns
///
/// The campaigns the caller may read, newest first (a handler: those their unit takes part
/// in).
#[utoipa::path(tag = "campaigns", params(RecordListQuery), responses((status = 200, description = "A page", body = RecordPage)), security(("bearer" = [])))]
#[get("/campaigns")]
pub async fn list_campaigns(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadRecords)?;
    let q: RecordListQuery = crate::extract::query(&req)?;
    let page = within_deadline(&req, super::records::list::<Campaign>(&state, &principal, &q, |_| Vec::new())).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Get a campaign
///
/// The campaign as it stands, or with `as_of` as it stood then (replayed from the log). Its
/// cases are the ledger's: `GET /api/v1/ledger?campaign_id=…` (and `&campaign_phase=…`),
/// counted by `GET /api/v1/stats?campaign_id=…`.
#[utoipa::path(tag = "campaigns", params(("id" = Uuid, Path, description = "The campaign"), RecordAsOfQuery), responses(
    (status = 200, description = "The campaign", body = RecordView),
    (status = 404, description = "No such campaign the caller may read", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/campaigns/{id}")]
pub async fn get_campaign(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadRecords)?;
    let as_of = super::records::as_of(&req)?;
    let (c, _) = records::load::<Campaign>(&state, &principal, *id, as_of).await?;
    let mut v = view(&state, &principal, &c).await?;
    // The cases tagged with the campaign are the ledger's (`?campaign_id=`), not listed here.
    v.cases.clear();
    Ok(HttpResponse::Ok().json(v))
}

/// Add a campaign document
///
/// Adds a document (a mobilisation notice, publicity, a summary report) to the campaign.
#[utoipa::path(tag = "campaigns", params(("id" = Uuid, Path, description = "The campaign")), request_body = DocumentInput, responses(
    (status = 200, description = "The campaign", body = RecordView),
    (status = 404, description = "No such campaign", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "A field is invalid", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/campaigns/{id}/documents")]
pub async fn add_campaign_document(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::WriteCampaign)?;
    let body: DocumentInput = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let mut f = Fields::default();
    let doc = document(&mut f, "body", &body);
    f.finish()?;
    let doc = doc.ok_or(ApiError::Validation(Vec::new()))?;
    let c = within_deadline(
        &req,
        records::write::<Campaign>(&state, &meta, *id, Action::WriteCampaign, &body, |_| {
            Ok(Decided::events(vec![campaign::CampaignEvent::DocumentAdded(campaign::DocumentAdded {
                document: doc.clone(),
            })]))
        }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, &meta.principal, &c).await?))
}

/// Move a campaign's phases
///
/// Replaces the phases' days. Cases already tagged keep their tag (a fact of their
/// registration). Days that would leave one of the campaign's records outside every phase are
/// 422 `outside-campaign`; days another campaign of a unit holds, 422 `campaigns-overlap`; a
/// campaign whose summary phase has ended (China Standard Time) is 409 `campaign-finished`: its
/// summary report stands on its days.
#[utoipa::path(tag = "campaigns", params(("id" = Uuid, Path, description = "The campaign")), request_body = PhasesRequest, responses(
    (status = 200, description = "The campaign", body = RecordView),
    (status = 404, description = "No such campaign", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 409, description = "`campaign-finished`: its summary phase has ended", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 422, description = "`phases-out-of-order`, or a field is invalid", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[post("/campaigns/{id}/phases")]
pub async fn reschedule_campaign(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    req: HttpRequest,
    body: Bytes,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::WriteCampaign)?;
    let body: PhasesRequest = json_body(&req, &body)?;
    let meta = meta(&req, principal)?;
    let mut f = Fields::default();
    let spans = phases(&mut f, &body.phases)?;
    f.finish()?;
    campaign::check_phases(&spans)?;
    let c = within_deadline(
        &req,
        infra::records::exclusively(&state.pool, CAMPAIGN_LOCK, async {
            let (current, _) = records::load::<Campaign>(&state, &meta.principal, *id, None).await?;
            check_no_overlap(&state, Some(current.id), current.leading_unit, &current.units, &spans).await?;
            check_records_inside(&state, &current, &spans).await?;
            let today = domain::calendar::local_date(crate::service::now());
            // Decided on the campaign each attempt loads (a lost race decides again).
            records::write::<Campaign>(&state, &meta, *id, Action::WriteCampaign, &body, |c| {
                Ok(Decided::events(campaign::reschedule(c, today, spans.clone())?))
            })
            .await
        }),
    )
    .await?;
    Ok(HttpResponse::Ok().json(view(&state, &meta.principal, &c).await?))
}

/// Registers the campaign routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(launch_campaign)
        .service(list_campaigns)
        .service(get_campaign)
        .service(add_campaign_document)
        .service(reschedule_campaign);
}

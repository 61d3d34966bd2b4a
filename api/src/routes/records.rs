//! What every campaign record shares on the wire: its view, a page of them, its history and its
//! chain check (`/api/v1/records/{id}/history`, `/api/v1/records/{id}/verify`), the query of a
//! list, and the checks of days.

use actix_web::web::{Data, Path};
use actix_web::{HttpRequest, HttpResponse, get};
use chrono::NaiveDate;
use domain::records::Record;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::{Action, Principal};
use crate::dto::{ChainVerification, EventList};
use crate::problem::ApiError;
use crate::records::LinkedCase;
use crate::startup::AppState;

/// The kind of record a case came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceTypeName {
    /// An opinion of a symposium meeting.
    Meeting,
    /// A finding of a visit.
    Visit,
    /// A contact card.
    CardBatch,
    /// A questionnaire response.
    Survey,
}

/// A campaign record as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordView {
    /// The record's id.
    pub id: Uuid,
    /// Its type: `campaign`, `meeting`, `visit`, `card_batch`, `survey`.
    #[serde(rename = "type")]
    pub record_type: String,
    /// How many events it has (the token `If-Match` takes).
    pub version: u32,
    /// The record as its events leave it; its fields are those of the resource's request, in
    /// the names of the request, plus what happened since (documented per resource).
    #[schema(value_type = Object)]
    pub record: serde_json::Value,
    /// The cases that came from it (as of the record's version), each with where it stands now.
    /// A handler sees their unit's only; the ids of the others are `null` in `record` too.
    pub cases: Vec<LinkedCase>,
    /// Warnings about the record (e.g. `attendance_outside_20_30`).
    pub warnings: Vec<String>,
}

impl RecordView {
    /// The view of a record, with its linked cases.
    pub async fn of<R: Record>(
        state: &AppState,
        principal: &Principal,
        id: Uuid,
        version: u32,
        record: &R,
        warnings: Vec<String>,
    ) -> Result<Self, ApiError> {
        Self::at(state, principal, id, version, record, warnings, None).await
    }

    /// The view of a record as of a moment: the cases its state names then, each with its
    /// status then. Those the caller may not see are left out, their ids are `null` in the
    /// record, and so is what the record says of them (a finding's text is its case's).
    pub async fn at<R: Record>(
        state: &AppState,
        principal: &Principal,
        id: Uuid,
        version: u32,
        record: &R,
        warnings: Vec<String>,
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Self, ApiError> {
        let ids: Vec<Uuid> = record.case_ids().iter().map(|c| c.as_uuid()).collect();
        let (cases, hidden) = crate::records::linked_cases(state, principal, &ids, as_of).await?;
        let hidden_cases: Vec<domain::CaseId> = hidden.iter().map(|u| domain::CaseId::from_uuid(*u)).collect();
        let mut json = serde_json::to_value(record).map_err(ApiError::internal)?;
        crate::records::hide_items(&mut json, &record.items_of(&hidden_cases));
        crate::records::redact_ids(&mut json, &hidden);
        Ok(Self { id, record_type: R::STREAM.to_owned(), version, record: json, cases, warnings })
    }
}

/// A page of records, newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordPage {
    /// The records.
    pub items: Vec<RecordView>,
    /// The cursor of the next page (give it as `cursor`), absent on the last.
    pub next_cursor: Option<String>,
}

/// The query of a list of records.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordListQuery {
    /// Only the records of this campaign.
    pub campaign_id: Option<Uuid>,
    /// Only the records that concern this unit.
    pub unit_id: Option<Uuid>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1, max_length = 80)]
    pub cursor: Option<String>,
    /// At most this many (1 to 100, default 50).
    #[param(minimum = 1, maximum = 100, format = Int64)]
    pub limit: Option<i64>,
}

/// The query of one record.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecordAsOfQuery {
    /// The record as it stood at this moment, replayed from the log. Between
    /// 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the
    /// pattern checks the year as written; no leap second; a fraction finer than a microsecond is cut.
    #[param(pattern = r"^20[0-9]{2}-")]
    #[serde(default, deserialize_with = "crate::instant::optional")]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,
}

/// The moment a record's `GET` is asked as of (`?as_of=`), checked as every client time is.
///
/// # Errors
/// 400 on a malformed query; 422 for a time outside 2000–2099.
pub fn as_of(req: &HttpRequest) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    let q: RecordAsOfQuery = crate::extract::query(req)?;
    q.as_of.map(|t| crate::service::bounded_time("as_of", t)).transpose()
}

/// Lists the records of one type the caller may read.
///
/// # Errors
/// 400 on a malformed cursor or limit.
pub async fn list<R: Record>(
    state: &AppState,
    principal: &Principal,
    q: &RecordListQuery,
    warnings: impl Fn(&R) -> Vec<String>,
) -> Result<RecordPage, ApiError> {
    let scope = principal.require(Action::ReadRecords)?;
    let limit = match q.limit {
        None => 50,
        Some(n) if (1..=100).contains(&n) => n,
        Some(_) => return Err(ApiError::BadRequest { code: "invalid-query", detail: "limit must be 1 to 100".into() }),
    };
    let after = crate::routes::ledger::issued_cursor(q.cursor.as_deref(), decode_cursor)?;
    let filter = infra::records::RecordFilter {
        stream_type: R::STREAM,
        campaign_id: q.campaign_id,
        // A handler's own unit, and a filter naming another unit finds nothing.
        unit_id: match (scope, principal.unit) {
            (crate::auth::Scope::OwnUnit, Some(u)) if q.unit_id.is_none_or(|f| f == u.as_uuid()) => Some(u.as_uuid()),
            (crate::auth::Scope::OwnUnit, _) => Some(Uuid::nil()),
            (crate::auth::Scope::All, _) => q.unit_id,
        },
        include_restricted: principal.require(Action::ReadRestrictedRecords).is_ok(),
        after,
        limit,
    };
    let rows = infra::records::list(&state.pool, &filter).await?;
    let next =
        (rows.len() as i64 == limit).then(|| rows.last().map(|r| encode_cursor(r.happened_on, r.record_id))).flatten();
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        let record: R = serde_json::from_value(row.doc.clone()).map_err(ApiError::internal)?;
        if !crate::records::readable(principal, scope, &record.index()) {
            continue;
        }
        let w = warnings(&record);
        let version = u32::try_from(row.version).unwrap_or(0);
        items.push(RecordView::of(state, principal, row.record_id, version, &record, w).await?);
    }
    Ok(RecordPage { items, next_cursor: next })
}

/// A cursor: the day's midnight (UTC) in microseconds since the epoch, and the record's id,
/// as the ledger's cursors read.
fn encode_cursor(day: Option<NaiveDate>, id: Uuid) -> String {
    let micros = day.and_then(|d| d.and_hms_opt(0, 0, 0)).map_or(0, |t| t.and_utc().timestamp_micros());
    format!("{micros}_{}", id.simple())
}

fn decode_cursor(s: &str) -> Option<(Option<NaiveDate>, Uuid)> {
    let (micros, id) = s.split_once('_')?;
    let micros: i64 = micros.parse().ok()?;
    let day = if micros == 0 { None } else { Some(chrono::DateTime::from_timestamp_micros(micros)?.date_naive()) };
    Some((day, Uuid::try_parse(id).ok()?))
}

/// Checks a day a client sends: 2000-01-01 to 2099-12-31.
///
/// # Errors
/// 422 naming the field.
pub fn bounded_day(field: &str, d: NaiveDate) -> Result<NaiveDate, ApiError> {
    use chrono::Datelike;
    if (2000..=2099).contains(&d.year()) {
        Ok(d)
    } else {
        Err(ApiError::Validation(vec![crate::problem::FieldError {
            field: field.into(),
            message: "must lie between 2000-01-01 and 2099-12-31".into(),
        }]))
    }
}

/// Checks a day on which something happened (a meeting, a visit, a delivery, a hand-out, a
/// re-check, a survey): 2000-01-01 to today (China Standard Time).
///
/// # Errors
/// 422 naming the field; 422 `date-in-future`.
pub fn happened_day(field: &'static str, d: NaiveDate) -> Result<NaiveDate, ApiError> {
    let d = bounded_day(field, d)?;
    if d > domain::records::china_day(chrono::Utc::now()) {
        return Err(domain::records::RecordError::DateInFuture(field).into());
    }
    Ok(d)
}

/// A record's stream as the caller may read it: its events, the cases of it the caller may not
/// see, and the items (findings) whose text is one of those cases'.
async fn readable_stream(
    state: &AppState,
    principal: &Principal,
    id: Uuid,
) -> Result<(Vec<infra::StoredEvent>, std::collections::HashSet<Uuid>, Vec<u32>), ApiError> {
    use domain::records::{
        campaign::Campaign, card::CardBatch, meeting::Meeting, supervision::Supervision, survey::Survey, visit::Visit,
    };
    async fn of<R: Record>(
        state: &AppState,
        principal: &Principal,
        id: Uuid,
    ) -> Result<(Vec<infra::StoredEvent>, std::collections::HashSet<Uuid>, Vec<u32>), ApiError> {
        let (r, loaded) = crate::records::load::<R>(state, principal, id, None).await?;
        let ids: Vec<Uuid> = r.case_ids().iter().map(|c| c.as_uuid()).collect();
        let (_, hidden) = crate::records::linked_cases(state, principal, &ids, None).await?;
        let hidden_cases: Vec<domain::CaseId> = hidden.iter().map(|u| domain::CaseId::from_uuid(*u)).collect();
        Ok((loaded.events, hidden, r.items_of(&hidden_cases)))
    }
    let row = infra::records::get(&state.pool, id).await?.ok_or(ApiError::NotFound("record"))?;
    match row.stream_type.as_str() {
        "campaign" => of::<Campaign>(state, principal, id).await,
        "meeting" => of::<Meeting>(state, principal, id).await,
        "visit" => of::<Visit>(state, principal, id).await,
        "card_batch" => of::<CardBatch>(state, principal, id).await,
        "survey" => of::<Survey>(state, principal, id).await,
        "supervision" => of::<Supervision>(state, principal, id).await,
        _ => Err(ApiError::NotFound("record")),
    }
}

/// What a handler may read of a record's event: the cases of other units are `null`, and of a
/// questionnaire's responses only those answered in their unit, free text left out (a response
/// may name its writer; a complaint in it is a case of its own village).
fn for_handler(payload: &mut serde_json::Value, unit: Option<Uuid>, hidden: &std::collections::HashSet<Uuid>) {
    crate::records::redact_ids(payload, hidden);
    if let Some(responses) = payload.get_mut("responses").and_then(|r| r.as_array_mut()) {
        let unit = unit.map(|u| u.to_string());
        responses.retain(|r| r.get("village").and_then(|v| v.as_str()) == unit.as_deref());
        for r in responses.iter_mut() {
            if let Some(answers) = r.get_mut("answers").and_then(|a| a.as_object_mut()) {
                answers.retain(|_, a| a.get("text").is_none());
            }
        }
    }
}

/// A record's history
///
/// Every event of a campaign record (a campaign, meeting, visit, card batch or questionnaire),
/// in order, with its hash and the previous hash: the record replays from these, and an auditor
/// can recompute the chain (docs/integrity.md). A sealed personal value (a card's recipient)
/// shows as ciphertext only. Out of the caller's reach answers 404 like a missing record. A
/// handler reads the cases of their unit only (other case ids are `null`), and of a
/// questionnaire's responses only those of their unit, without free text.
#[utoipa::path(tag = "records", params(("id" = Uuid, Path, description = "The record")), responses(
    (status = 200, description = "The history", body = EventList),
    (status = 404, description = "No such record the caller may read", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/records/{id}/history")]
pub async fn record_history(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let scope = principal.require(Action::ReadRecords)?;
    let (events, hidden, items) = readable_stream(&state, &principal, *id).await?;
    let events = events
        .iter()
        .map(|e| {
            let mut v = crate::service::event_view(e);
            crate::records::hide_items(&mut v.payload, &items);
            if scope == crate::auth::Scope::OwnUnit {
                for_handler(&mut v.payload, principal.unit.map(|u| u.as_uuid()), &hidden);
            } else {
                crate::records::redact_ids(&mut v.payload, &hidden);
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().json(EventList { case_id: *id, events }))
}

/// Verify a record's chain
///
/// Recomputes the hash chain of a campaign record from its stored events (as for a case):
/// `ok` is false, with the first version that fails, when any event was altered.
#[utoipa::path(tag = "records", params(("id" = Uuid, Path, description = "The record")), responses(
    (status = 200, description = "The check", body = ChainVerification),
    (status = 404, description = "No such record the caller may read", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/records/{id}/verify")]
pub async fn verify_record(
    state: Data<AppState>,
    principal: Principal,
    id: Path<Uuid>,
    _req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(Action::ReadIntegrity)?;
    // Only the chain is read: a tampered event may no longer fold, and this must still answer.
    infra::records::get(&state.pool, *id).await?.ok_or(ApiError::NotFound("record"))?;
    let check = state.store.verify_case(domain::CaseId::from_uuid(*id)).await?;
    Ok(HttpResponse::Ok().json(crate::service::chain_view(*id, check)))
}

/// Registers the shared record routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(record_history).service(verify_record);
}

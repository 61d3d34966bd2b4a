//! `GET /api/v1/reports/summary`: a campaign's summary report (总结报告) as JSON, a printable
//! Chinese page (`Accept: text/html`) or PDF (`Accept: application/pdf`).

use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse, get};
use domain::RecordId;
use domain::records::campaign::Campaign;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Principal;
use crate::middleware::within_deadline;
use crate::problem::ApiError;
use crate::report::{self, SummaryReport};
use crate::startup::AppState;

/// The report's query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SummaryQuery {
    /// The campaign.
    pub campaign_id: Uuid,
    /// One village, farm or community taking part in the campaign (its cases, and the records
    /// and survey answers of it); absent: the whole campaign.
    pub village_id: Option<Uuid>,
}

/// The three forms of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Json,
    Html,
    Pdf,
}

/// The form an `Accept` header asks for: the one of PDF, HTML and JSON it accepts with the
/// highest quality above 0 (JSON when the header is absent or empty); `None` when it accepts none
/// of them (406).
fn form(accept: Option<&str>) -> Option<Form> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Some(Form::Json) };
    let mut best: Option<(f32, Form)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts.filter_map(|p| p.strip_prefix("q=").and_then(|v| v.parse::<f32>().ok())).next().unwrap_or(1.0);
        let f = match media.as_str() {
            "application/pdf" => Form::Pdf,
            "text/html" | "text/*" => Form::Html,
            "application/json" | "*/*" | "application/*" => Form::Json,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, f));
        }
    }
    best.map(|(_, f)| f)
}

/// The report of a campaign (and village): the frozen one once its summary phase is over
/// (frozen by the first request after it), else computed now.
///
/// # Errors
/// 404 for an unknown campaign, 400 for an unknown village, a database failure.
pub async fn summary(state: &AppState, q: &SummaryQuery) -> Result<SummaryReport, ApiError> {
    let loaded = infra::records::load::<Campaign>(&state.pool, RecordId::from_uuid(q.campaign_id), None).await?;
    let campaign = loaded.record.ok_or(ApiError::NotFound("campaign"))?;
    // One list of the campaign's villages for what a report may be asked about and what is frozen.
    let village = match q.village_id {
        None => None,
        Some(v) => Some(report::villages_of(state, &campaign).await?.into_iter().find(|(id, _)| *id == v).ok_or(
            ApiError::BadRequest {
                code: "invalid-query",
                detail: "village_id: not a village, farm or community taking part in the campaign".into(),
            },
        )?),
    };
    if let Some(f) = infra::report::frozen(&state.pool, q.campaign_id, q.village_id).await? {
        return serde_json::from_value(f.report).map_err(ApiError::internal);
    }
    let now = crate::service::now();
    if report::finished(&campaign, domain::calendar::local_date(now)) {
        // Frozen from the log itself (every report of the campaign at one snapshot), so that a
        // replay folds exactly the same events.
        report::freeze(state, &campaign, now).await?;
        let stored = infra::report::frozen(&state.pool, q.campaign_id, q.village_id)
            .await?
            .ok_or_else(|| ApiError::internal(std::io::Error::other("a report just frozen does not read back")))?;
        return serde_json::from_value(stored.report).map_err(ApiError::internal);
    }
    report::compute(state, &campaign, village, now).await
}

/// A frozen report folded again from the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SummaryReplay {
    /// The campaign.
    pub campaign_id: Uuid,
    /// The village (absent: the whole campaign).
    pub village_id: Option<Uuid>,
    /// The snapshot of the log the report was frozen at (see `SummaryReport.log_snapshot`).
    pub log_snapshot: String,
    /// The newest event's position it sees.
    pub log_position: i64,
    /// When it was computed: the replay decides what was overdue by this time too.
    pub computed_at: chrono::DateTime<chrono::Utc>,
    /// SHA-256 (lowercase hex) of the stored report, as canonical JSON (keys sorted, no spaces).
    pub stored_sha256: String,
    /// SHA-256 of the report folded again from the events the snapshot sees, the same way.
    pub replayed_sha256: String,
    /// Whether the two are the same bytes.
    pub identical: bool,
    /// The report's fields whose values differ (empty when identical).
    pub differences: Vec<String>,
}

/// Replays a frozen report: folds its campaign's events the stored snapshot sees again,
/// recomputes the report as of its `computed_at`, and compares the bytes.
///
/// # Errors
/// 404 (`not-frozen`) when the report of the campaign and village is not frozen; a database
/// failure.
pub async fn replay(state: &AppState, q: &SummaryQuery) -> Result<SummaryReplay, ApiError> {
    let stored = infra::report::frozen(&state.pool, q.campaign_id, q.village_id)
        .await?
        .ok_or(ApiError::NotFound("frozen report"))?;
    let computed_at = report::computed_at(&stored.report)?;
    let village_name = stored.report.get("village_name").and_then(|v| v.as_str()).map(str::to_owned);
    let village = q.village_id.zip(village_name);
    let again = report::from_log(state, q.campaign_id, &[village], computed_at, &stored.cut)
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal(std::io::Error::other("no report folded")))?;
    let again = serde_json::to_value(&again).map_err(ApiError::internal)?;
    let sha = report::fingerprint;
    let differences = match (&stored.report, &again) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => a
            .keys()
            .chain(b.keys())
            .filter(|k| a.get(*k) != b.get(*k))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        _ => ["(the whole report)".to_owned()].into(),
    };
    Ok(SummaryReplay {
        campaign_id: q.campaign_id,
        village_id: q.village_id,
        log_snapshot: stored.cut.snapshot.clone(),
        log_position: stored.cut.position,
        computed_at,
        stored_sha256: sha(&stored.report),
        replayed_sha256: sha(&again),
        identical: differences.is_empty(),
        differences: differences.into_iter().collect(),
    })
}

/// A campaign's summary report
///
/// Each village's (or the whole campaign's) summary: totals by channel, kind and category, cases
/// per week, the campaign's own activity (meetings and attendees, visits, contact cards,
/// questionnaires), the KPIs (as `GET /kpis` defines them) over the campaign's days,
/// satisfaction, unresolved and overdue cases, supervision, emerging problems (as `GET /trends`
/// finds them in the campaign's last week) and survey highlights. `Accept: text/html` answers a
/// printable Chinese page (A4) with its charts as inline SVG, needing nothing from the network;
/// `Accept: application/pdf` the same as PDF in an embedded CJK font. Once the campaign's summary
/// phase is over the first request freezes the report with the log position it was computed at,
/// and every later one answers it unchanged (`frozen: true`). Supervisors, clerks, auditors and
/// admins.
#[utoipa::path(tag = "ledger", params(SummaryQuery), responses(
    (status = 200, description = "The report (JSON, HTML or PDF by `Accept`)", body = SummaryReport, content(
        (SummaryReport = "application/json"),
        (String = "text/html"),
        (Vec<u8> = "application/pdf")
    )),
    (status = 400, description = "A parameter is malformed, or the village unknown", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 403, description = "A handler (the report reads every case of the campaign)", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 404, description = "No such campaign", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 406, description = "`Accept` names none of JSON, HTML and PDF", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 503, description = "PDF asked for without the report font installed", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/reports/summary")]
pub async fn summary_report(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    if crate::routes::analysis::scope_unit(&principal)?.is_some() {
        return Err(ApiError::Forbidden);
    }
    let q: SummaryQuery = crate::extract::query(&req)?;
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let form =
        form(accept).ok_or(ApiError::NotAcceptable { offered: "application/json, text/html, application/pdf" })?;
    let r = within_deadline(&req, summary(&state, &q)).await?;
    let mut ok = HttpResponse::Ok();
    ok.insert_header((header::VARY, "Accept"));
    Ok(match form {
        Form::Json => ok.json(r),
        // Nothing on the page is fetched or run: its charts are inline SVG, its style inline.
        Form::Html => ok
            .content_type("text/html; charset=utf-8")
            .insert_header((
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; frame-ancestors 'none'",
            ))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(report::html::render(&r)),
        Form::Pdf => {
            let bytes = report::pdf::render(&r).map_err(|e| {
                tracing::error!(error = %e, "no PDF of the summary report");
                ApiError::Unavailable
            })?;
            ok.content_type("application/pdf").body(bytes)
        }
    })
}

/// A frozen summary report, replayed from the log
///
/// Folds the campaign's events the snapshot the report was frozen at sees into fresh
/// projections, recomputes the report as of its `computed_at`, and compares it with the stored
/// one byte for byte (canonical JSON): `identical` is the proof that the printed report is what
/// the log says. The fold reads every event of the campaign's cases (seconds for a campaign of
/// tens of thousands of cases). Supervisors and auditors.
#[utoipa::path(tag = "ledger", params(SummaryQuery), responses(
    (status = 200, description = "The replay", body = SummaryReplay),
    (status = 400, description = "A parameter is malformed", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 403, description = "Not a supervisor or an auditor", content_type = "application/problem+json", body = crate::problem::Problem),
    (status = 404, description = "No frozen report of this campaign and village", content_type = "application/problem+json", body = crate::problem::Problem)
), security(("bearer" = [])))]
#[get("/reports/summary/replay")]
pub async fn replay_summary_report(
    state: Data<AppState>,
    principal: Principal,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    principal.require(crate::auth::Action::ReadIntegrity)?;
    let q: SummaryQuery = crate::extract::query(&req)?;
    let r = within_deadline(&req, replay(&state, &q)).await?;
    Ok(HttpResponse::Ok().json(r))
}

/// Registers the routes (under `/api/v1`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(summary_report).service(replay_summary_report);
}

#[cfg(test)]
mod tests {
    use super::{Form, form};

    #[test]
    fn accept_picks_the_form() {
        let table: [(Option<&str>, Option<Form>); 8] = [
            (None, Some(Form::Json)),
            (Some("application/json"), Some(Form::Json)),
            (Some("text/html"), Some(Form::Html)),
            (Some("application/pdf"), Some(Form::Pdf)),
            (Some("text/html;q=0.5, application/pdf"), Some(Form::Pdf)),
            (Some("application/pdf;q=0, text/html"), Some(Form::Html)),
            (Some("text/csv"), None),
            (Some("*/*"), Some(Form::Json)),
        ];
        for (accept, want) in table {
            assert_eq!(form(accept), want, "{accept:?}");
        }
    }
}

//! What the committee learns: `GET /kpis` (the rates, each with its numerator and denominator).

use std::collections::HashMap;

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse, get};
use chrono::{DateTime, Utc};
use domain::calendar::local_date;
use infra::analysis::{AnalysisFilter, GroupBy, KpiCounts, ReplyTime};
use serde::{Deserialize, Serialize};
use statrs::statistics::{Data as Sample, OrderStatistics};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Action, Principal, Scope};
use crate::dto::Channel;
use crate::middleware::within_deadline;
use crate::problem::ApiError;
use crate::startup::AppState;

/// What KPIs are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KpiGroupBy {
    /// One group: everything in scope (its key is absent).
    #[default]
    Total,
    /// The unit each fact scores (the unit dispatched to, that returned, that replied).
    Unit,
    /// The case's village.
    Village,
    /// The case's category.
    Category,
    /// The case's channel.
    Channel,
    /// The campaign the case was received in.
    Campaign,
}

impl From<KpiGroupBy> for GroupBy {
    fn from(g: KpiGroupBy) -> Self {
        match g {
            KpiGroupBy::Total => Self::Total,
            KpiGroupBy::Unit => Self::Unit,
            KpiGroupBy::Village => Self::Village,
            KpiGroupBy::Category => Self::Category,
            KpiGroupBy::Channel => Self::Channel,
            KpiGroupBy::Campaign => Self::Campaign,
        }
    }
}

/// The KPI query: a period and the cases it looks at.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KpiQuery {
    /// The period's start (included; default: 30 calendar days before `to`). Each fact counts in
    /// the period by its own time: a clock by its due time, a dispatch, return, reply or rating
    /// when it happened. Between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year as written.
    #[param(pattern = r"^20[0-9]{2}-")]
    pub from: Option<DateTime<Utc>>,
    /// The period's end (excluded; default: now). Between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year as written.
    #[param(pattern = r"^20[0-9]{2}-")]
    pub to: Option<DateTime<Utc>>,
    /// Groups (default `total`).
    pub group_by: Option<KpiGroupBy>,
    /// Only cases received in this campaign.
    pub campaign_id: Option<Uuid>,
    /// Only cases of this village.
    pub village_id: Option<Uuid>,
    /// Only cases of this category.
    pub category_id: Option<Uuid>,
    /// Only cases that came in by this channel.
    pub channel: Option<Channel>,
    /// Only facts scoring this unit.
    pub unit_id: Option<Uuid>,
}

/// A rate with what it counts: `value` = `numerator` ÷ `denominator`, absent when nothing was
/// counted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Rate {
    /// What met the rule.
    pub numerator: i64,
    /// What was counted.
    pub denominator: i64,
    /// The share, 0 to 1 (not rounded).
    pub value: Option<f64>,
}

impl Rate {
    fn of(numerator: i64, denominator: i64) -> Self {
        #[allow(clippy::cast_precision_loss)]
        let value = (denominator > 0).then(|| numerator as f64 / denominator as f64);
        Self { numerator, denominator, value }
    }
}

/// Working days from acceptance (受理) to the first reply (反馈), on the working calendar
/// (holidays and 调休 counted): days after the acceptance's date up to the reply's date, China
/// Standard Time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReplyDays {
    /// First replies counted.
    pub count: i64,
    /// Their mean, in working days.
    pub mean: Option<f64>,
    /// Their 90th percentile, in working days (Hyndman–Fan type 8, the median-unbiased
    /// estimator, as `statrs` computes it).
    pub p90: Option<f64>,
}

/// The KPIs of one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KpiGroup {
    /// The group's key: a unit, village, category or campaign id, or a channel; absent for the
    /// total and for cases without one.
    pub key: Option<String>,
    /// 及时签收率: dispatches signed for by their sign-for due time ÷ dispatches whose sign-for fell
    /// due in the period.
    pub timely_sign_for_rate: Rate,
    /// 响应率: acknowledgements (受理告知) sent by their due time ÷ cases whose acknowledgement fell
    /// due in the period (15 working days, 纪检监察机关处理检举控告工作规则).
    pub response_rate: Rate,
    /// 按期办结率: cases replied to by their (extended) deadline — 60 calendar days from
    /// acceptance, extendable once by 30 (信访工作条例 art. 32) — ÷ cases whose deadline fell in
    /// the period; an open case past its deadline is a miss.
    pub on_time_completion_rate: Rate,
    /// 回退率: approved returns (退单) ÷ dispatches (交办, 转办), each in the period.
    pub return_rate: Rate,
    /// 重办率: replies whose round was reopened ÷ replies in the period.
    pub rework_rate: Rate,
    /// 有效回访率: replies whose follow-up (回访) recorded a rating ÷ replies in the period.
    pub follow_up_rate: Rate,
    /// 满意率: last-round ratings 满意 or 基本满意 ÷ last-round ratings recorded in the period.
    pub satisfaction_rate: Rate,
    /// 解决率: last-round ratings where the citizen said the matter was solved ÷ last-round
    /// ratings in the period (never the unit's own outcome).
    pub resolution_rate: Rate,
    /// Working days from acceptance to the first reply, of first replies in the period.
    pub reply_working_days: ReplyDays,
}

/// The KPIs of a period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KpiView {
    /// The period's start (included).
    pub from: DateTime<Utc>,
    /// The period's end (excluded).
    pub to: DateTime<Utc>,
    /// When the clocks were judged: a clock still running is counted once its due time is
    /// before this.
    pub computed_at: DateTime<Utc>,
    /// What the groups are.
    pub group_by: KpiGroupBy,
    /// The groups with a fact in the period, most facts first.
    pub groups: Vec<KpiGroup>,
}

fn query_time(field: &str, t: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, ApiError> {
    t.map(|t| {
        crate::service::bounded_time(field, t).map_err(|_| ApiError::BadRequest {
            code: "invalid-query",
            detail: format!("{field} must lie between 2000 and 2099"),
        })
    })
    .transpose()
}

/// The period of a query: `[from, to)`, `from` defaulting to `default_days` calendar days before
/// `to`, `to` to now.
pub fn period(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    default_days: i64,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = query_time("to", to)?.unwrap_or(now);
    let from = query_time("from", from)?.unwrap_or(to - chrono::Duration::days(default_days));
    if from >= to {
        return Err(ApiError::BadRequest { code: "invalid-query", detail: "from must be before to".into() });
    }
    Ok((from, to))
}

/// The unit a caller's reading is limited to, if any.
pub fn scope_unit(principal: &Principal) -> Result<Option<Uuid>, ApiError> {
    match principal.require(Action::ReadLedger)? {
        Scope::All => Ok(None),
        Scope::OwnUnit => Ok(Some(principal.unit.map(|u| u.as_uuid()).ok_or(ApiError::Forbidden)?)),
    }
}

fn ident<T: Serialize>(v: T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The KPIs of `counts` with the reply times of the same groups.
pub fn kpi_groups(counts: Vec<KpiCounts>, times: Vec<ReplyTime>, calendar: &domain::WorkingCalendar) -> Vec<KpiGroup> {
    let mut days: HashMap<Option<String>, Vec<f64>> = HashMap::new();
    for t in times {
        let d = calendar.working_days_between(local_date(t.accepted_at), local_date(t.replied_at));
        days.entry(t.key).or_default().push(f64::from(d));
    }
    counts
        .into_iter()
        .map(|c| {
            let sample = days.remove(&c.key).unwrap_or_default();
            KpiGroup {
                timely_sign_for_rate: Rate::of(c.sign_for_met, c.sign_for_due),
                response_rate: Rate::of(c.acknowledgement_met, c.acknowledgement_due),
                on_time_completion_rate: Rate::of(c.answer_met, c.answer_due),
                return_rate: Rate::of(c.returns, c.dispatches),
                rework_rate: Rate::of(c.replies_reopened, c.replies),
                follow_up_rate: Rate::of(c.replies_followed_up, c.replies),
                satisfaction_rate: Rate::of(c.ratings_satisfied, c.ratings),
                resolution_rate: Rate::of(c.ratings_solved, c.ratings),
                reply_working_days: reply_days(sample),
                key: c.key,
            }
        })
        .collect()
}

fn reply_days(sample: Vec<f64>) -> ReplyDays {
    let count = i64::try_from(sample.len()).unwrap_or(i64::MAX);
    if sample.is_empty() {
        return ReplyDays { count, mean: None, p90: None };
    }
    #[allow(clippy::cast_precision_loss)]
    let mean = sample.iter().sum::<f64>() / sample.len() as f64;
    let p90 = Sample::new(sample).quantile(0.9);
    ReplyDays { count, mean: Some(mean), p90: Some(p90) }
}

/// The analysis filter of a KPI query.
pub fn analysis_filter(q: &KpiQuery, from: DateTime<Utc>, to: DateTime<Utc>, scope: Option<Uuid>) -> AnalysisFilter {
    AnalysisFilter {
        from,
        to,
        scope_unit: scope,
        campaign_id: q.campaign_id,
        village_id: q.village_id,
        category_id: q.category_id,
        channel: q.channel.map(ident),
        unit_id: q.unit_id,
    }
}

/// KPIs
///
/// The rates units are judged by (12345 hotline practice), for a period, grouped by unit,
/// village, category, channel or campaign, each with its numerator and denominator so a person
/// can check it. Each fact counts in the period by its own time (a clock by its due time,
/// anything else when it happened); a clock counts once it fell due (its step done, or its due
/// time passed — an open case past its deadline is a miss); a clock stopped before its due time
/// without its step (withdrawn, rejected, merged as a duplicate, transferred before sign-for)
/// counts nowhere. Ratings count the case's last round only. Handlers see the facts that score
/// their unit.
#[utoipa::path(tag = "ledger", params(KpiQuery), responses((status = 200, description = "The KPIs", body = KpiView), (status = 400, description = "A parameter is malformed, or `from` does not lie before `to`", content_type = "application/problem+json", body = crate::problem::Problem)), security(("bearer" = [])))]
#[get("/kpis")]
pub async fn kpis(state: Data<AppState>, principal: Principal, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let scope = scope_unit(&principal)?;
    let q: KpiQuery = crate::extract::query(&req)?;
    let now = Utc::now();
    let (from, to) = period(q.from, q.to, 30, now)?;
    let group = q.group_by.unwrap_or_default();
    let filter = analysis_filter(&q, from, to, scope);
    let groups = within_deadline(&req, async {
        let counts = state.analysis.kpis(&filter, group.into(), now).await?;
        let times = state.analysis.reply_times(&filter, group.into()).await?;
        let calendar = state.reference.working_calendar().await?;
        Ok(kpi_groups(counts, times, &calendar))
    })
    .await?;
    Ok(HttpResponse::Ok().json(KpiView { from, to, computed_at: now, group_by: group, groups }))
}

/// Registers the routes (under `/api/v1`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(kpis);
}

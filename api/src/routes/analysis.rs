//! What the committee learns: `GET /kpis` (the rates, each with its numerator and denominator).

use std::collections::HashMap;

use actix_web::web::Data;
use actix_web::{HttpRequest, HttpResponse, get};
use chrono::{DateTime, Utc};
use infra::analysis::{AnalysisFilter, GroupBy, KpiCounts, ReplyTime};
use serde::{Deserialize, Serialize};
use statrs::statistics::{Data as Sample, OrderStatistics};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{Action, Principal};
use crate::dto::Channel;
use crate::middleware::within_deadline;
use crate::problem::ApiError;
use crate::routes::ledger::{ident, query_time};
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
    /// when it happened. Between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year as written; no leap second; a fraction finer than a microsecond is cut.
    #[param(pattern = r"^20[0-9]{2}-")]
    #[serde(default, deserialize_with = "crate::instant::optional")]
    pub from: Option<DateTime<Utc>>,
    /// The period's end (excluded; default: now). Between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year as written; no leap second; a fraction finer than a microsecond is cut.
    #[param(pattern = r"^20[0-9]{2}-")]
    #[serde(default, deserialize_with = "crate::instant::optional")]
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
    /// 响应率: acknowledgements sent by their due time ÷ cases whose acknowledgement fell due in the
    /// period. The acknowledgement is the written answer on whether the case is taken up: the
    /// notice of acceptance (受理告知) or of non-acceptance (不予受理告知), either of which stops
    /// the clock (15 calendar days, 信访工作条例; 15 working days for an accusation,
    /// 纪检监察机关处理检举控告工作规则). The intake owes it: grouped by unit, it is under no unit.
    pub response_rate: Rate,
    /// 按期办结率: cases replied to by their (extended) deadline — 60 calendar days from
    /// acceptance, extendable once by 30 (信访工作条例 art. 32) — ÷ cases whose deadline fell in
    /// the period; an open case past its deadline is a miss.
    pub on_time_completion_rate: Rate,
    /// 回退率: dispatches (交办, 转办) in the period whose unit's return (退单) was approved ÷
    /// dispatches in the period.
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

/// The unit a caller's reading of the ledger is limited to, if any.
pub fn scope_unit(principal: &Principal) -> Result<Option<Uuid>, ApiError> {
    crate::routes::ledger::scope_unit(principal, Action::ReadLedger)
}

/// The KPIs of `counts` with the reply times of the same groups.
pub fn kpi_groups(counts: Vec<KpiCounts>, times: Vec<ReplyTime>, calendar: &domain::WorkingCalendar) -> Vec<KpiGroup> {
    let mut days: HashMap<Option<String>, Vec<f64>> = HashMap::new();
    for t in times {
        let d = f64::from(calendar.working_days_between(t.accepted_on, t.replied_on));
        let n = usize::try_from(t.count).unwrap_or(0);
        days.entry(t.key).or_default().extend(std::iter::repeat_n(d, n));
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
        let kpis = state.analysis.kpis(&filter, group.into(), now).await?;
        let calendar = state.reference.working_calendar().await?;
        Ok(kpi_groups(kpis.counts, kpis.reply_times, &calendar))
    })
    .await?;
    Ok(HttpResponse::Ok().json(KpiView { from, to, computed_at: now, group_by: group, groups }))
}

/// The length of a trend period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrendPeriod {
    /// A week, Monday to Sunday (China Standard Time).
    #[default]
    Week,
    /// A calendar month (China Standard Time).
    Month,
}

/// The trends query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrendQuery {
    /// The period's length (default `week`).
    pub period: Option<TrendPeriod>,
    /// The recent period is the last whole one that ends at or before this (default: now).
    /// Between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year as written; no leap second; a fraction finer than a microsecond is cut.
    #[param(pattern = r"^20[0-9]{2}-")]
    #[serde(default, deserialize_with = "crate::instant::optional")]
    pub to: Option<DateTime<Utc>>,
    /// How many periods before it are the baseline (2 to 52, default 8).
    #[param(minimum = 2, maximum = 52)]
    pub baseline: Option<i64>,
    /// The least count (1 to 1000, default 5): a cell or word with fewer cases in all (recent
    /// and baseline) is not tested, and one with fewer recent cases is not flagged.
    #[param(minimum = 1, maximum = 1000)]
    pub min_count: Option<i64>,
    /// The false discovery rate Benjamini–Hochberg controls, in thousandths (1 to 200, default 50:
    /// q = 0.05).
    #[param(minimum = 1, maximum = 200)]
    pub q_permille: Option<i64>,
    /// Only cases received in this campaign (and its questionnaires).
    pub campaign_id: Option<Uuid>,
}

/// A cell tested for a rise: a category in a village, or an accused unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CellTrend {
    /// The category (absent: none; always absent for an accused unit).
    pub category_id: Option<Uuid>,
    /// The village (absent: none).
    pub village_id: Option<Uuid>,
    /// The accused unit (for `accused_units`).
    pub accused_unit_id: Option<Uuid>,
    /// Cases in the recent period.
    pub recent: i64,
    /// Cases in each baseline period, oldest first.
    pub baseline: Vec<i64>,
    /// The baseline's mean per period.
    pub expected: f64,
    /// The one-sided p of the exact conditional test of two Poisson rates: with T the recent
    /// and baseline cases together, P(Y ≥ recent) for Y ~ Binomial(T, 1 ÷ (periods + 1)).
    pub p: f64,
    /// Its Benjamini–Hochberg q-value among every cell and accused unit tested.
    pub q: f64,
    /// Whether q ≤ the threshold.
    pub flagged: bool,
    /// The newest recent cases of the cell (at most 5), for a flagged cell.
    pub examples: Vec<Uuid>,
}

/// A search term tested for a rise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WordTrend {
    /// The term: two CJK characters of the titles, as the search index segments them.
    pub term: String,
    /// Recent cases with it.
    pub recent: i64,
    /// Recent cases.
    pub recent_cases: i64,
    /// Baseline cases with it.
    pub baseline: i64,
    /// Baseline cases.
    pub baseline_cases: i64,
    /// The log-likelihood ratio G² (Dunning) of the two shares.
    pub g2: f64,
    /// Its one-sided p (χ² with one degree of freedom, halved; 1 when the share fell).
    pub p: f64,
    /// Its Benjamini–Hochberg q-value among the terms tested.
    pub q: f64,
    /// Whether q ≤ the threshold.
    pub flagged: bool,
    /// The newest recent cases whose title holds it (at most 5), for a flagged word.
    pub examples: Vec<Uuid>,
}

/// One questionnaire's "not received" answers to a policy question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SurveyShare {
    /// The questionnaire.
    pub survey_id: Uuid,
    /// The day it was held.
    pub surveyed_on: chrono::NaiveDate,
    /// Answers saying the policy did not reach the respondent.
    pub not_received: u64,
    /// Answers.
    pub answered: u64,
}

/// A policy whose "not received" share was compared between its two latest questionnaires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SurveyTrend {
    /// The policy.
    pub policy: String,
    /// The question's key (in the latest questionnaire).
    pub question: String,
    /// The questionnaire before.
    pub before: SurveyShare,
    /// The latest.
    pub latest: SurveyShare,
    /// G² of the two shares.
    pub g2: f64,
    /// Its one-sided p (1 when the share fell).
    pub p: f64,
    /// Its Benjamini–Hochberg q-value among the policies compared.
    pub q: f64,
    /// Whether q ≤ the threshold.
    pub flagged: bool,
}

/// Emerging and trending problems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TrendView {
    /// The period's length.
    pub period: TrendPeriod,
    /// The recent period's first day (China Standard Time).
    pub recent_from: chrono::NaiveDate,
    /// The day after its last.
    pub recent_to: chrono::NaiveDate,
    /// The baseline's first day.
    pub baseline_from: chrono::NaiveDate,
    /// Baseline periods.
    pub baseline_periods: i64,
    /// The least count tested.
    pub min_count: i64,
    /// The false discovery rate.
    pub q: f64,
    /// Cells (category × village) tested, flagged first, by q.
    pub cells: Vec<CellTrend>,
    /// Accused units tested (repeated complaints about one unit), flagged first, by q.
    pub accused_units: Vec<CellTrend>,
    /// Search terms tested, flagged first, by q (at most 50).
    pub words: Vec<WordTrend>,
    /// Policies compared between questionnaires, flagged first, by q.
    pub surveys: Vec<SurveyTrend>,
}

/// The period containing `day` starts on (China Standard Time).
fn period_start(day: chrono::NaiveDate, period: TrendPeriod) -> chrono::NaiveDate {
    use chrono::Datelike;
    match period {
        TrendPeriod::Week => day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday())),
        TrendPeriod::Month => day.with_day(1).unwrap_or(day),
    }
}

fn shift(day: chrono::NaiveDate, period: TrendPeriod, n: i64) -> chrono::NaiveDate {
    match period {
        TrendPeriod::Week => day + chrono::Duration::weeks(n),
        TrendPeriod::Month => {
            let months = chrono::Months::new(u32::try_from(n.unsigned_abs()).unwrap_or(0));
            if n >= 0 { day.checked_add_months(months) } else { day.checked_sub_months(months) }.unwrap_or(day)
        }
    }
}

type Key = (Option<Uuid>, Option<Uuid>);

/// The series of every key with a count in the window: recent, then the baseline oldest first.
fn series(counts: &[infra::analysis::PeriodCount], starts: &[chrono::NaiveDate]) -> Vec<(Key, i64, Vec<i64>)> {
    let mut by: std::collections::BTreeMap<Key, Vec<i64>> = Default::default();
    for c in counts {
        let Some(i) = starts.iter().position(|s| *s == c.period) else { continue };
        by.entry(c.key).or_insert_with(|| vec![0; starts.len()])[i] += c.count;
    }
    by.into_iter()
        .map(|(k, mut v)| {
            let recent = v.pop().unwrap_or(0);
            (k, recent, v)
        })
        .collect()
}

fn by_flag_then_q(a: (bool, f64), b: (bool, f64)) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then(a.1.total_cmp(&b.1))
}

/// Emerging problems
///
/// Duplicates linked to a case are one matter and count once. What rises in the recent period (the last whole week or month before `to`) against its own
/// baseline (the `baseline` periods before it), with the evidence of each flag:
/// - **cells** (a category in a village) and **accused units** (repeated complaints about one
///   unit): the exact conditional test of two Poisson rates (given the recent and baseline cases
///   together, T, the recent count is Binomial(T, 1 ÷ (periods + 1)) if nothing changed), for
///   counts of at least `min_count` above the baseline mean; Benjamini–Hochberg over all of them
///   at the false discovery rate q; a flag carries the counts, the baseline mean, p, q and
///   example cases.
/// - **words**: two-character terms of the cases' titles as the search index segments Chinese
///   (titles, not descriptions, which name people), in at least `min_count` cases in all, stop
///   words excluded, by the log-likelihood ratio G² of their share
///   of recent cases against the baseline's, BH at q; flagged when in at least `min_count` recent
///   cases.
/// - **surveys**: for each policy question, the share answering "not received" (a "no", or an
///   option saying 未收到 / 未享受 / …) in the latest questionnaire against the one before, by
///   G², BH at q.
///
/// Those who read every case: clerks, supervisors, auditors and admins (a handler, who reads their
/// unit's cases only, is 403).
#[utoipa::path(tag = "ledger", params(TrendQuery), responses((status = 200, description = "What rises", body = TrendView), (status = 400, description = "A parameter is malformed", content_type = "application/problem+json", body = crate::problem::Problem), (status = 403, description = "A handler (trends read every case)", content_type = "application/problem+json", body = crate::problem::Problem)), security(("bearer" = [])))]
#[get("/trends")]
pub async fn trends(state: Data<AppState>, principal: Principal, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    if scope_unit(&principal)?.is_some() {
        return Err(ApiError::Forbidden);
    }
    let q: TrendQuery = crate::extract::query(&req)?;
    let bad = |detail: &str| ApiError::BadRequest { code: "invalid-query", detail: detail.into() };
    let period = q.period.unwrap_or_default();
    let to = query_time("to", q.to)?.unwrap_or_else(Utc::now);
    let n = q.baseline.unwrap_or(8);
    if !(2..=52).contains(&n) {
        return Err(bad("baseline must be 2 to 52"));
    }
    let min_count = q.min_count.unwrap_or(5);
    if !(1..=1000).contains(&min_count) {
        return Err(bad("min_count must be 1 to 1000"));
    }
    let q_permille = q.q_permille.unwrap_or(50);
    if !(1..=200).contains(&q_permille) {
        return Err(bad("q_permille must be 1 to 200"));
    }
    #[allow(clippy::cast_precision_loss)]
    let fdr = q_permille as f64 / 1000.0;
    let params = TrendParams { period, to, baseline: n, min_count, fdr, campaign: q.campaign_id, words: true };
    let view = within_deadline(&req, trend_view(&state, params)).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// What a trends computation asks.
#[derive(Debug, Clone, Copy)]
pub struct TrendParams {
    /// The period's length.
    pub period: TrendPeriod,
    /// The recent period ends at or before this.
    pub to: DateTime<Utc>,
    /// Baseline periods.
    pub baseline: i64,
    /// The least count tested.
    pub min_count: i64,
    /// The false discovery rate.
    pub fdr: f64,
    /// Only this campaign's cases and questionnaires.
    pub campaign: Option<Uuid>,
    /// Whether to test the titles' words (the summary report prints none, so it skips them).
    pub words: bool,
}

/// Computes the trends (see [`trends`]).
///
/// # Errors
/// A database failure.
pub async fn trend_view(state: &AppState, p: TrendParams) -> Result<TrendView, ApiError> {
    let (period, to, n, min_count, fdr) = (p.period, p.to, p.baseline, p.min_count, p.fdr);
    let recent_to = period_start(domain::calendar::local_date(to), period);
    let recent_from = shift(recent_to, period, -1);
    let baseline_from = shift(recent_from, period, -n);
    let starts: Vec<chrono::NaiveDate> = (0..=n).map(|i| shift(baseline_from, period, i)).collect();
    let (recent_t, to_t) =
        (domain::calendar::start_of_local_day(recent_from), domain::calendar::start_of_local_day(recent_to));
    let bucket = match period {
        TrendPeriod::Week => infra::analysis::Bucket::Week,
        TrendPeriod::Month => infra::analysis::Bucket::Month,
    };
    let thresholds = domain::trends::Thresholds { min_count: u64::try_from(min_count).unwrap_or(5), q: fdr };
    use infra::analysis::TrendKey;
    let a = &state.analysis;
    // The cells, the accused units, the words and the questionnaires are independent reads.
    let (cells, accused, words, surveys) = tokio::try_join!(
        async {
            Ok::<_, ApiError>(
                a.period_counts(baseline_from, recent_to, bucket, TrendKey::CategoryVillage, p.campaign).await?,
            )
        },
        async {
            Ok::<_, ApiError>(
                a.period_counts(baseline_from, recent_to, bucket, TrendKey::AccusedUnit, p.campaign).await?,
            )
        },
        async {
            if !p.words {
                return Ok(None);
            }
            let periods = (baseline_from, recent_from, recent_to);
            word_trends(a, periods, (recent_t, to_t), min_count, fdr, p.campaign).await.map(Some)
        },
        async { Ok::<_, ApiError>(a.surveys(p.campaign).await?) },
    )?;
    let (cells, accused) = (series(&cells, &starts), series(&accused, &starts));
    // One family: every cell and accused unit tested is adjusted together.
    let all: Vec<domain::trends::Series> = cells
        .iter()
        .chain(&accused)
        .map(|(_, r, b)| domain::trends::Series {
            recent: u64::try_from(*r).unwrap_or(0),
            baseline: b.iter().map(|x| u64::try_from(*x).unwrap_or(0)).collect(),
        })
        .collect();
    let verdicts = domain::trends::flag_rises(&all, thresholds);
    // The flags' examples: one query per kind of key, not one per flag.
    let flagged = |range: std::ops::Range<usize>| -> Vec<(Option<Uuid>, Option<Uuid>)> {
        verdicts[range.clone()]
            .iter()
            .zip(cells.iter().chain(&accused).skip(range.start))
            .filter(|(v, _)| v.as_ref().is_some_and(|v| v.flagged))
            .map(|(_, (key, _, _))| *key)
            .collect()
    };
    let (cell_flags, accused_flags) = (flagged(0..cells.len()), flagged(cells.len()..all.len()));
    let (cell_examples, accused_examples) = tokio::try_join!(
        a.examples(recent_t, to_t, TrendKey::CategoryVillage, &cell_flags, p.campaign, 5),
        a.examples(recent_t, to_t, TrendKey::AccusedUnit, &accused_flags, p.campaign, 5),
    )?;
    let mut out_cells = Vec::new();
    let mut out_accused = Vec::new();
    for (i, ((key, recent, baseline), v)) in cells.iter().chain(&accused).zip(verdicts).enumerate() {
        let Some(v) = v else { continue };
        let is_cell = i < cells.len();
        let examples = match (v.flagged, is_cell) {
            (false, _) => Vec::new(),
            (true, true) => cell_examples.get(key).cloned().unwrap_or_default(),
            (true, false) => accused_examples.get(key).cloned().unwrap_or_default(),
        };
        let t = CellTrend {
            category_id: if is_cell { key.0 } else { None },
            village_id: if is_cell { key.1 } else { None },
            accused_unit_id: if is_cell { None } else { key.0 },
            recent: *recent,
            baseline: baseline.clone(),
            expected: v.test.expected,
            p: v.test.p,
            q: v.q,
            flagged: v.flagged,
            examples,
        };
        if is_cell { out_cells.push(t) } else { out_accused.push(t) }
    }
    out_cells.sort_by(|x, y| by_flag_then_q((x.flagged, x.q), (y.flagged, y.q)));
    out_accused.sort_by(|x, y| by_flag_then_q((x.flagged, x.q), (y.flagged, y.q)));

    let surveys = survey_trends(&surveys, domain::calendar::local_date(p.to), fdr);
    Ok(TrendView {
        period,
        recent_from,
        recent_to,
        baseline_from,
        baseline_periods: n,
        min_count,
        q: fdr,
        cells: out_cells,
        accused_units: out_accused,
        words: words.unwrap_or_default(),
        surveys,
    })
}

/// The titles' words rising in the recent period (`periods`: baseline from, recent from, recent
/// to, China days) against the baseline, by G² with Benjamini–Hochberg at `fdr`, the 50 most
/// significant first, each flagged one with up to 5 example cases received in `recent`.
async fn word_trends(
    a: &infra::analysis::Analysis,
    periods: (chrono::NaiveDate, chrono::NaiveDate, chrono::NaiveDate),
    recent: (DateTime<Utc>, DateTime<Utc>),
    min_count: i64,
    fdr: f64,
    campaign: Option<Uuid>,
) -> Result<Vec<WordTrend>, ApiError> {
    let (baseline_from, recent_from, recent_to) = periods;
    let (recent_t, to_t) = recent;
    let (n1, n2, terms) = a.term_counts(baseline_from, recent_from, recent_to, min_count, campaign).await?;
    let terms: Vec<_> = terms.into_iter().filter(|t| !domain::trends::STOP_WORDS.contains(&t.term.as_str())).collect();
    let u = |x: i64| u64::try_from(x).unwrap_or(0);
    let tests = terms.iter().map(|t| Some(domain::trends::g2(u(t.recent), u(n1), u(t.baseline), u(n2)))).collect();
    let mut words: Vec<WordTrend> = terms
        .iter()
        .zip(domain::trends::adjust(tests, fdr))
        .filter_map(|(t, v)| {
            v.map(|v| WordTrend {
                term: t.term.clone(),
                recent: t.recent,
                recent_cases: n1,
                baseline: t.baseline,
                baseline_cases: n2,
                g2: v.test.score,
                p: v.test.p,
                q: v.q,
                // Tested when frequent in all; flagged only when frequent recently.
                flagged: v.flagged && t.recent >= min_count,
                examples: Vec::new(),
            })
        })
        .collect();
    words.sort_by(|x, y| by_flag_then_q((x.flagged, x.q), (y.flagged, y.q)).then(y.g2.total_cmp(&x.g2)));
    words.truncate(50);
    let rising: Vec<String> = words.iter().filter(|w| w.flagged).map(|w| w.term.clone()).collect();
    let mut word_examples = a.word_examples(recent_t, to_t, &rising, campaign, 5).await?;
    for w in words.iter_mut().filter(|w| w.flagged) {
        w.examples = word_examples.remove(&w.term).unwrap_or_default();
    }

    Ok(words)
}

/// The survey trends: for each policy question, the latest questionnaire held before `before`
/// (China Standard Time) against the one before it, within one campaign (and among those of no
/// campaign): questionnaires of different campaigns ask different people at different times.
fn survey_trends(docs: &[serde_json::Value], before: chrono::NaiveDate, fdr: f64) -> Vec<SurveyTrend> {
    type Key = (Option<Uuid>, String);
    let mut by_policy: std::collections::BTreeMap<Key, Vec<(String, SurveyShare)>> = Default::default();
    for doc in docs {
        let Ok(s) = serde_json::from_value::<domain::records::survey::Survey>(doc.clone()) else { continue };
        if s.surveyed_on >= before {
            continue;
        }
        for share in domain::trends::policy_shares(&s) {
            if share.answered == 0 {
                continue;
            }
            by_policy.entry((s.campaign.map(|c| c.as_uuid()), share.policy.clone())).or_default().push((
                share.question.clone(),
                SurveyShare {
                    survey_id: s.id.as_uuid(),
                    surveyed_on: s.surveyed_on,
                    not_received: share.not_received,
                    answered: share.answered,
                },
            ));
        }
    }
    let pairs: Vec<(String, String, SurveyShare, SurveyShare)> = by_policy
        .into_iter()
        .filter_map(|((_, policy), mut v)| {
            v.sort_by_key(|(_, s)| (s.surveyed_on, s.survey_id));
            let (question, latest) = v.pop()?;
            let (_, before) = v.pop()?;
            Some((policy, question, before, latest))
        })
        .collect();
    let tests = pairs
        .iter()
        .map(|(_, _, b, l)| Some(domain::trends::rise_between(b.not_received, b.answered, l.not_received, l.answered)))
        .collect();
    let mut out: Vec<SurveyTrend> = pairs
        .into_iter()
        .zip(domain::trends::adjust(tests, fdr))
        .filter_map(|((policy, question, before, latest), v)| {
            v.map(|v| SurveyTrend {
                policy,
                question,
                before,
                latest,
                g2: v.test.score,
                p: v.test.p,
                q: v.q,
                flagged: v.flagged,
            })
        })
        .collect();
    out.sort_by(|x, y| by_flag_then_q((x.flagged, x.q), (y.flagged, y.q)));
    out
}

/// Registers the routes (under `/api/v1`).
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(kpis).service(trends);
}

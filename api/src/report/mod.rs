//! The summary report (总结报告) of a campaign, for the whole town or one village: totals by
//! channel, kind and category, cases per week, the campaign's own activity (meetings and
//! attendees, visits, contact cards, questionnaires), the KPIs, satisfaction, overdue and
//! unresolved cases, supervision, emerging problems and survey highlights.
//!
//! A finished campaign's report (its summary phase over, China Standard Time) is frozen: computed
//! once from the campaign's events folded again as a snapshot of the log then saw them
//! ([`infra::replay`]), stored with the snapshot, and served unchanged after; the HTML and PDF are
//! rendered from that JSON alone, so they are the same bytes every time. [`replay`] folds the
//! same events again and must give the same bytes: an auditor's proof that the stored report is
//! what the log says.

pub mod html;
pub mod pdf;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use domain::records::Record;
use domain::records::campaign::Campaign;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::problem::ApiError;
use crate::routes::analysis::{KpiGroup, SurveyTrend, TrendParams, TrendPeriod, analysis_filter, kpi_groups};
use crate::startup::AppState;

/// A count under a key, with the key's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NamedCount {
    /// The key (an identifier or an id; absent for "none").
    pub key: Option<String>,
    /// Its name in Chinese (未分类 for none).
    pub name: String,
    /// How many.
    pub count: i64,
}

/// A week's cases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WeekCount {
    /// The week's Monday (China Standard Time).
    pub week: NaiveDate,
    /// Cases received that week.
    pub count: i64,
}

/// The campaign's own work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Activity {
    /// Symposium meetings (座谈会).
    pub meetings: i64,
    /// Their attendees.
    pub attendees: i64,
    /// Opinions raised at them that became cases.
    pub opinions: i64,
    /// Open visits (明察).
    pub visits_open: i64,
    /// Undercover visits (暗访), disclosed or not.
    pub visits_undercover: i64,
    /// Findings of the visits.
    pub findings: i64,
    /// Contact-card batches (纠风联系卡).
    pub card_batches: i64,
    /// Cards printed.
    pub cards_printed: i64,
    /// Cards handed out.
    pub cards_handed_out: i64,
    /// Cards that brought a case.
    pub cards_used: i64,
    /// Questionnaires (问卷调查).
    pub surveys: i64,
    /// Their responses.
    pub survey_responses: i64,
}

/// The citizens' ratings of each case's last rated round (a reopened case keeps its rating
/// until the new round is rated), as the KPIs count them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Satisfaction {
    /// 满意.
    pub satisfied: i64,
    /// 基本满意.
    pub basically_satisfied: i64,
    /// 不满意.
    pub dissatisfied: i64,
    /// Cases never rated.
    pub unrated: i64,
}

/// An open case past a deadline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OverdueCaseView {
    /// The case.
    pub case_id: Uuid,
    /// Its receipt code.
    pub receipt_code: String,
    /// Its category's name (未分类 for none). Not its title: a report is printed and handed
    /// round, and a title is typed freely and may name a person.
    pub category: String,
    /// The clock due first.
    pub stage: Option<String>,
    /// When it fell due.
    pub due_at: DateTime<Utc>,
}

/// Supervision of the campaign's cases.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SupervisionSummary {
    /// Items raised.
    pub raised: i64,
    /// Of them, still open.
    pub open: i64,
    /// By level (`general`, `key`, `listed`).
    pub by_level: Vec<NamedCount>,
    /// By trigger (`overdue`, `repeat_dissatisfied`, …).
    pub by_trigger: Vec<NamedCount>,
}

/// A flagged rise, in words a reader follows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmergingProblem {
    /// What rose: 「低保评定 · 东风村」, 「被反映单位：镇卫生院」 or 「词：低保」.
    pub what: String,
    /// Recent cases.
    pub recent: i64,
    /// The baseline's mean per week (for a word: of the cases whose title holds it).
    pub baseline: f64,
    /// The p-value.
    pub p: f64,
    /// The q-value.
    pub q: f64,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SummaryReport {
    /// The campaign.
    pub campaign_id: Uuid,
    /// Its name.
    pub campaign_name: String,
    /// The village the report is about (absent: the whole campaign).
    pub village_id: Option<Uuid>,
    /// Its name.
    pub village_name: Option<String>,
    /// The campaign's first day.
    pub period_from: NaiveDate,
    /// Its last day (the end of its summary phase).
    pub period_to: NaiveDate,
    /// When it was computed.
    pub computed_at: DateTime<Utc>,
    /// The moment of the log it was computed at: a PostgreSQL snapshot (`xmin:xmax:xip,…`) that
    /// sees exactly the events committed before it. A frozen report counts those events and no
    /// other (its replay folds them again); a live one at least those.
    pub log_snapshot: String,
    /// The newest event's position the snapshot sees.
    pub log_position: i64,
    /// Frozen: the summary phase is over and this is the stored report.
    pub frozen: bool,
    /// Cases.
    pub cases: i64,
    /// By channel.
    pub by_channel: Vec<NamedCount>,
    /// By kind.
    pub by_kind: Vec<NamedCount>,
    /// By category.
    pub by_category: Vec<NamedCount>,
    /// By status.
    pub by_status: Vec<NamedCount>,
    /// Cases received per week, every week from the first to the last with a case.
    pub weekly: Vec<WeekCount>,
    /// The campaign's own work.
    pub activity: Activity,
    /// The KPIs over the campaign's days, up to `computed_at` when that is earlier (a live
    /// report of a running campaign): their definitions are `GET /api/v1/kpis`'s.
    pub kpis: KpiGroup,
    /// The citizens' ratings: each case's last rated round, whenever it was rated up to `computed_at`.
    pub satisfaction: Satisfaction,
    /// Cases not yet closed.
    pub unresolved: i64,
    /// Open cases past a deadline.
    pub overdue_count: i64,
    /// The longest overdue (at most 20), each by the running clock that fell due first.
    pub overdue: Vec<OverdueCaseView>,
    /// Supervision of the campaign's cases.
    pub supervision: SupervisionSummary,
    /// Emerging problems: the cells (category × village) and accused units whose cases rose in
    /// the campaign's last week against the eight before (`GET /trends`); a village's report has
    /// its own cells only. Rising words are not printed (a title may name a person).
    pub emerging: Vec<EmergingProblem>,
    /// Policies whose "not received" share was compared between questionnaires (the whole
    /// campaign's report only).
    pub surveys: Vec<SurveyTrend>,
}

/// A report's fingerprint: SHA-256 (lowercase hex) of its canonical JSON (keys sorted, no
/// spaces), as stored. A frozen report prints it, and its replay
/// (`GET /reports/summary/replay`) compares it: a paper copy can be matched to the log.
pub fn fingerprint(report: &serde_json::Value) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(serde_json::to_vec(report).unwrap_or_default()))
}

/// [`fingerprint`] of a report.
pub fn fingerprint_of(report: &SummaryReport) -> String {
    fingerprint(&serde_json::to_value(report).unwrap_or_default())
}

/// A directional formatting character (Unicode's bidi embeddings, overrides, isolates and marks,
/// and the Arabic letter mark). Names typed with one can reorder what a printed report shows
/// around them (a right-to-left override turns a title round), so the page and the PDF leave
/// them out; the JSON keeps the names as stored.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The printed note under the KPI table: its periods differ from the satisfaction section's.
pub const KPI_WINDOW_NOTE: &str = "注：办理质效指标统计活动期内到期或发生的事项；群众满意度统计每件诉求截至报告生成时的最后一次评价\
                                   （含活动结束后的评价），两处的评价件数因此可能不同。";

/// The printed line above the overdue list when it shows fewer cases than are overdue.
pub fn overdue_caption(r: &SummaryReport) -> Option<String> {
    (r.overdue_count > r.overdue.len() as i64)
        .then(|| format!("共 {} 件超期，下列超期最久的 {} 件。", r.overdue_count, r.overdue.len()))
}

/// The printed line under the weekly counts of a report computed while its campaign ran: the
/// last week is counted only up to the report's day.
pub fn weekly_caption(r: &SummaryReport) -> Option<String> {
    let day = domain::calendar::local_date(r.computed_at);
    (day <= r.period_to && r.weekly.last().is_some_and(|w| day < w.week + chrono::Days::new(6)))
        .then(|| format!("最后一周统计至 {day}（报告生成之日），尚不完整。"))
}

/// The Chinese name of a channel.
pub fn channel_name(c: &str) -> &'static str {
    match c {
        "symposium" => "座谈会",
        "visit" => "明察暗访",
        "contact_card" => "纠风联系卡",
        "questionnaire" => "问卷调查",
        "phone" => "电话",
        "email" => "电子邮件",
        "letter" => "来信",
        "walk_in" => "来访",
        "web" => "网上",
        _ => "其他",
    }
}

/// The Chinese name of a kind.
pub fn kind_name(k: &str) -> &'static str {
    match k {
        "complaint" => "投诉",
        "suggestion" => "意见建议",
        "report" => "反映",
        _ => "其他",
    }
}

/// The Chinese name of a status.
pub fn status_name(s: &str) -> &'static str {
    match s {
        "received" => "已受理登记",
        "rejected" => "不予受理",
        "assigned" => "已交办",
        "handled" => "已办理",
        "fed_back" => "已反馈",
        "closed" => "已办结",
        _ => "其他",
    }
}

fn sorted(m: BTreeMap<Option<String>, i64>, name: impl Fn(Option<&str>) -> String) -> Vec<NamedCount> {
    let mut v: Vec<NamedCount> =
        m.into_iter().map(|(key, count)| NamedCount { name: name(key.as_deref()), key, count }).collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
    v
}

/// The campaign's last day: the end of its last phase.
fn last_day(c: &Campaign) -> NaiveDate {
    c.phases.iter().map(|p| p.to).max().unwrap_or_else(|| domain::calendar::local_date(c.launched_at))
}

/// Whether the campaign's summary phase is over on `today` (China Standard Time).
pub fn finished(c: &Campaign, today: NaiveDate) -> bool {
    today > last_day(c)
}

/// The report of a campaign (and village), as the ledger and the records stand now.
///
/// # Errors
/// A database failure.
pub async fn compute(
    state: &AppState,
    campaign: &Campaign,
    village: Option<(Uuid, String)>,
    now: DateTime<Utc>,
) -> Result<SummaryReport, ApiError> {
    let cut = infra::replay::cut_now(&state.pool).await?;
    compute_at(state, campaign, village, now, cut).await
}

/// The reports of a campaign — for each of `villages`, `None` being the whole campaign — from
/// one fold of the events `cut` sees, with `now` deciding what is overdue: how reports are frozen
/// (`cut` the log as it stands, `now` the moment) and how a frozen one is replayed (both as
/// stored). Each is marked `frozen`.
///
/// # Errors
/// 404 when the cut sees no event of the campaign; a database failure, or a history that
/// does not fold.
pub async fn from_log(
    state: &AppState,
    campaign: Uuid,
    villages: &[Option<(Uuid, String)>],
    now: DateTime<Utc>,
    cut: &infra::replay::LogCut,
) -> Result<Vec<SummaryReport>, ApiError> {
    let pool = infra::replay::campaign_at(&state.replay_db, campaign, cut).await?;
    let then = state.through(pool.clone());
    let reports = async {
        let row = infra::records::get(&pool, campaign).await?.ok_or(ApiError::NotFound("campaign"))?;
        let record: Campaign = serde_json::from_value(row.doc).map_err(ApiError::internal)?;
        let mut out = Vec::with_capacity(villages.len());
        for village in villages {
            let mut r = compute_at(&then, &record, village.clone(), now, cut.clone()).await?;
            r.frozen = true;
            out.push(r);
        }
        Ok(out)
    }
    .await;
    pool.close();
    reports
}

/// The villages, farms and communities taking part in a campaign (as [`Campaign::includes`]
/// counts them), with their names, by id.
///
/// # Errors
/// A database failure.
pub async fn villages_of(state: &AppState, campaign: &Campaign) -> Result<Vec<(Uuid, String)>, ApiError> {
    let mut out = Vec::new();
    let mut units: Vec<domain::UnitId> = std::iter::once(campaign.leading_unit).chain(campaign.units.clone()).collect();
    units.sort_by_key(|u| u.as_uuid());
    units.dedup();
    for u in &units {
        if let Some(unit) = state.reference.unit(*u).await?
            && matches!(unit.kind, domain::UnitKind::Village | domain::UnitKind::Farm | domain::UnitKind::Community)
        {
            out.push((u.as_uuid(), unit.name));
        }
    }
    out.sort();
    Ok(out)
}

/// When a stored report was computed (its `computed_at`): a replay decides what was overdue by
/// it too.
///
/// # Errors
/// 500 for a stored report without one.
pub fn computed_at(report: &serde_json::Value) -> Result<DateTime<Utc>, ApiError> {
    report
        .get("computed_at")
        .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())
        .ok_or_else(|| ApiError::internal(std::io::Error::other("a frozen report without its computed_at")))
}

/// Freezes every report of a finished campaign not frozen yet: the whole campaign's and each
/// taking-part village's. Those frozen before keep their cut, and the missing ones are folded
/// at that same cut and time; when none is, all are folded from the log as it stands at `now`. So
/// every report of a campaign stands on the same events. The first freeze wins, whichever
/// server or request makes it.
///
/// # Errors
/// A database failure, or a history that does not fold.
pub async fn freeze(state: &AppState, campaign: &Campaign, now: DateTime<Utc>) -> Result<(), ApiError> {
    let cid = campaign.id.as_uuid();
    let (cut, at) = match infra::report::frozen(&state.pool, cid, None).await? {
        Some(whole) => {
            let at = computed_at(&whole.report)?;
            (whole.cut, at)
        }
        None => (infra::replay::cut_now(&state.pool).await?, now),
    };
    let mut missing: Vec<Option<(Uuid, String)>> = Vec::new();
    for v in std::iter::once(None).chain(villages_of(state, campaign).await?.into_iter().map(Some)) {
        if infra::report::frozen(&state.pool, cid, v.as_ref().map(|v| v.0)).await?.is_none() {
            missing.push(v);
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let reports = from_log(state, cid, &missing, at, &cut).await?;
    let rows = reports
        .iter()
        .map(|r| Ok((r.village_id, serde_json::to_value(r).map_err(ApiError::internal)?)))
        .collect::<Result<Vec<_>, ApiError>>()?;
    infra::report::freeze(&state.pool, cid, &rows, &cut).await?;
    Ok(())
}

/// Freezes the reports of every campaign whose summary phase is over on `now`'s day (China
/// Standard Time) and whose reports are not all frozen; returns how many campaigns it froze.
///
/// # Errors
/// A database failure.
pub async fn freeze_finished(state: &AppState, now: DateTime<Utc>) -> Result<usize, ApiError> {
    let today = domain::calendar::local_date(now);
    let rows = infra::records::list(
        &state.pool,
        &infra::records::RecordFilter {
            stream_type: Campaign::STREAM,
            include_restricted: true,
            limit: 1000,
            ..Default::default()
        },
    )
    .await?;
    let mut frozen = 0;
    for row in rows {
        let Ok(c) = serde_json::from_value::<Campaign>(row.doc) else { continue };
        if !finished(&c, today) {
            continue;
        }
        let wanted = 1 + villages_of(state, &c).await?.len();
        if infra::report::frozen_count(&state.pool, c.id.as_uuid()).await? < wanted as i64 {
            freeze(state, &c, now).await?;
            frozen += 1;
        }
    }
    Ok(frozen)
}

/// What [`compute`] and [`from_log`] share: the report from the projections `state` reads.
async fn compute_at(
    state: &AppState,
    campaign: &Campaign,
    village: Option<(Uuid, String)>,
    now: DateTime<Utc>,
    cut: infra::replay::LogCut,
) -> Result<SummaryReport, ApiError> {
    let cid = campaign.id.as_uuid();
    let vid = village.as_ref().map(|v| v.0);
    let period_from = campaign.phases.iter().map(|p| p.from).min().unwrap_or_else(|| last_day(campaign));
    let period_to = last_day(campaign);
    let from = domain::calendar::start_of_local_day(period_from);
    let end = domain::calendar::start_of_local_day(period_to + chrono::Days::new(1));
    let to = end.min(now);
    let kpi_query = crate::routes::analysis::KpiQuery { campaign_id: Some(cid), village_id: vid, ..Default::default() };
    // The KPIs count what fell due in the campaign's days up to the report's time; the
    // satisfaction counts each case's last rating whenever it came (a rating after the
    // campaign's days still rates its case), up to the report's time. While the campaign runs
    // the two periods are one and are read once.
    let through_now = now.max(from) + chrono::Duration::microseconds(1);
    let kpi_to = if end > now { through_now } else { to.max(from + chrono::Duration::microseconds(1)) };
    let kpi_filter = analysis_filter(&kpi_query, from, kpi_to, None);
    let rated_filter = analysis_filter(&kpi_query, from, through_now, None);
    let trend_params = TrendParams {
        period: TrendPeriod::Week,
        to,
        baseline: 8,
        min_count: 5,
        fdr: 0.05,
        campaign: Some(cid),
        words: false,
    };
    // Independent reads, run together.
    let (categories, units, calendar, groups, kpis, ratings, overdue, supervision_counts, activity, trends) = tokio::try_join!(
        async { Ok::<_, ApiError>(state.reference.list_categories().await?) },
        async { Ok::<_, ApiError>(state.reference.list_units(true).await?) },
        async { Ok::<_, ApiError>(state.reference.working_calendar().await?) },
        async { Ok::<_, ApiError>(infra::report::case_groups(&state.pool, cid, vid, now).await?) },
        async { Ok::<_, ApiError>(state.analysis.kpis(&kpi_filter, infra::analysis::GroupBy::Total, now).await?) },
        async {
            if kpi_to == through_now {
                return Ok::<_, ApiError>(None);
            }
            Ok(Some(state.analysis.kpis(&rated_filter, infra::analysis::GroupBy::Total, now).await?.counts))
        },
        async { Ok::<_, ApiError>(infra::report::overdue(&state.pool, cid, vid, now, 20).await?) },
        async { Ok::<_, ApiError>(infra::report::supervision_counts(&state.pool, cid, vid).await?) },
        activity(state, cid, vid),
        crate::routes::analysis::trend_view(state, trend_params),
    )?;
    let categories: BTreeMap<Uuid, String> = categories.into_iter().map(|c| (c.id.as_uuid(), c.name)).collect();
    let units: BTreeMap<Uuid, String> = units.into_iter().map(|u| (u.id.as_uuid(), u.name)).collect();

    let (mut by_channel, mut by_kind, mut by_category, mut by_status, mut by_week) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let (mut cases, mut unresolved, mut overdue_count) = (0, 0, 0);
    for g in &groups {
        cases += g.count;
        overdue_count += g.overdue;
        *by_channel.entry(Some(g.channel.clone())).or_default() += g.count;
        *by_kind.entry(Some(g.kind.clone())).or_default() += g.count;
        *by_category.entry(g.category_id.map(|c| c.to_string())).or_default() += g.count;
        *by_status.entry(Some(g.status.clone())).or_default() += g.count;
        *by_week.entry(g.week).or_default() += g.count;
        if g.status != "closed" && g.status != "rejected" {
            unresolved += g.count;
        }
    }
    let category_name = |k: Option<&str>| {
        k.and_then(|k| k.parse::<Uuid>().ok())
            .and_then(|u| categories.get(&u).cloned())
            .unwrap_or_else(|| "未分类".to_owned())
    };

    let infra::analysis::Kpis { counts, reply_times } = kpis;
    let ratings = ratings.as_ref().unwrap_or(&counts).first().cloned().unwrap_or_default();
    let satisfaction = Satisfaction {
        satisfied: ratings.ratings_fully_satisfied,
        basically_satisfied: ratings.ratings_satisfied - ratings.ratings_fully_satisfied,
        dissatisfied: ratings.ratings_dissatisfied,
        unrated: (cases - ratings.ratings).max(0),
    };
    let kpis = kpi_groups(counts, reply_times, &calendar)
        .into_iter()
        .next()
        .unwrap_or_else(|| kpi_groups(vec![infra::analysis::KpiCounts::default()], Vec::new(), &calendar).remove(0));

    let overdue = overdue
        .into_iter()
        .map(|o| OverdueCaseView {
            case_id: o.case_id,
            receipt_code: o.receipt_code,
            category: category_name(o.category_id.map(|c| c.to_string()).as_deref()),
            stage: o.stage,
            due_at: o.due_at,
        })
        .collect();

    let mut supervision = SupervisionSummary::default();
    let (mut levels, mut triggers) = (BTreeMap::new(), BTreeMap::new());
    for c in supervision_counts {
        supervision.raised += c.raised;
        supervision.open += c.open;
        *levels.entry(c.level).or_default() += c.raised;
        *triggers.entry(c.trigger).or_default() += c.raised;
    }
    supervision.by_level = sorted(levels, |k| {
        match k {
            Some("general") => "一般督办",
            Some("key") => "重点督办",
            Some("listed") => "挂牌督办",
            _ => "其他",
        }
        .to_owned()
    });
    supervision.by_trigger = sorted(triggers, |k| {
        match k {
            Some("overdue") => "超期",
            Some("repeat_dissatisfied") => "再次不满意",
            Some("return_dispute") => "退单争议",
            Some("duplicates") => "重复反映",
            Some("unit_overdue") => "单位超期预警",
            Some("manual") => "人工督办",
            _ => "其他",
        }
        .to_owned()
    });

    let mut emerging = Vec::new();
    for c in trends.cells.iter().filter(|c| c.flagged) {
        if vid.is_some() && c.village_id != vid {
            continue;
        }
        let place = c.village_id.and_then(|v| units.get(&v).cloned()).unwrap_or_else(|| "未注明村".into());
        let what = format!("{} · {place}", category_name(c.category_id.map(|u| u.to_string()).as_deref()));
        emerging.push(EmergingProblem { what, recent: c.recent, baseline: c.expected, p: c.p, q: c.q });
    }
    // A village's report holds its own cells only: accused units and questionnaires are the
    // town's. Rising words are not printed: titles are typed freely and may name a person (the
    // supervisors read them at `GET /trends`).
    for c in trends.accused_units.iter().filter(|c| c.flagged && vid.is_none()) {
        let name = c.accused_unit_id.and_then(|u| units.get(&u).cloned()).unwrap_or_default();
        emerging.push(EmergingProblem {
            what: format!("被反映单位：{name}"),
            recent: c.recent,
            baseline: c.expected,
            p: c.p,
            q: c.q,
        });
    }
    Ok(SummaryReport {
        campaign_id: cid,
        campaign_name: campaign.name.as_str().to_owned(),
        village_id: vid,
        village_name: village.map(|v| v.1),
        period_from,
        period_to,
        computed_at: now,
        log_snapshot: cut.snapshot,
        log_position: cut.position,
        frozen: false,
        cases,
        by_channel: sorted(by_channel, |k| channel_name(k.unwrap_or_default()).to_owned()),
        by_kind: sorted(by_kind, |k| kind_name(k.unwrap_or_default()).to_owned()),
        by_category: sorted(by_category, category_name),
        by_status: sorted(by_status, |k| status_name(k.unwrap_or_default()).to_owned()),
        weekly: every_week(by_week.into_iter().collect()),
        activity,
        kpis,
        satisfaction,
        unresolved,
        overdue_count,
        overdue,
        supervision,
        emerging,
        surveys: if vid.is_none() { trends.surveys } else { Vec::new() },
    })
}

/// The weeks from the first to the last with a case, those without one at 0.
fn every_week(counts: Vec<(NaiveDate, i64)>) -> Vec<WeekCount> {
    let (Some(first), Some(last)) = (counts.first().map(|c| c.0), counts.last().map(|c| c.0)) else {
        return Vec::new();
    };
    let by: BTreeMap<NaiveDate, i64> = counts.into_iter().collect();
    std::iter::successors(Some(first), |w| Some(*w + chrono::Days::new(7)))
        .take_while(|w| *w <= last)
        .map(|week| WeekCount { week, count: by.get(&week).copied().unwrap_or(0) })
        .collect()
}

/// The campaign's records, counted (of the village's when one is given).
async fn activity(state: &AppState, campaign: Uuid, village: Option<Uuid>) -> Result<Activity, ApiError> {
    use domain::records::{card::CardBatch, meeting::Meeting, survey::Survey, visit::Visit};
    let list = |stream_type: &'static str| infra::records::RecordFilter {
        stream_type,
        campaign_id: Some(campaign),
        unit_id: village,
        include_restricted: true,
        limit: 100_000,
        ..Default::default()
    };
    let mut a = Activity::default();
    let n = |x: usize| i64::try_from(x).unwrap_or(i64::MAX);
    for row in infra::records::list(&state.pool, &list(Meeting::STREAM)).await? {
        let Ok(m) = serde_json::from_value::<Meeting>(row.doc) else { continue };
        a.meetings += 1;
        a.attendees += i64::from(m.total_attendees());
        a.opinions += n(m.case_ids().len());
    }
    for row in infra::records::list(&state.pool, &list(Visit::STREAM)).await? {
        let Ok(v) = serde_json::from_value::<Visit>(row.doc) else { continue };
        // An undercover visit the committee has not disclosed is not in a report anyone prints.
        if v.restricted() {
            continue;
        }
        if v.details.mode == domain::records::visit::VisitMode::Undercover {
            a.visits_undercover += 1;
        } else {
            a.visits_open += 1;
        }
        a.findings += n(v.findings.len());
    }
    for row in infra::records::list(&state.pool, &list(CardBatch::STREAM)).await? {
        let Ok(b) = serde_json::from_value::<CardBatch>(row.doc) else { continue };
        a.card_batches += 1;
        a.cards_printed += i64::from(b.details.serial_to - b.details.serial_from) + 1;
        a.cards_handed_out += i64::try_from(b.cards_out()).unwrap_or(i64::MAX);
        a.cards_used += n(b.used.len());
    }
    for row in infra::records::list(&state.pool, &list(Survey::STREAM)).await? {
        let Ok(s) = serde_json::from_value::<Survey>(row.doc) else { continue };
        a.surveys += 1;
        // A questionnaire answered in several villages counts, in a village's report, only that
        // village's answers.
        a.survey_responses += match village {
            None => i64::from(s.response_count()),
            Some(v) => s
                .tallies
                .iter()
                .filter_map(|t| t.responses.get(&domain::UnitId::from_uuid(v)))
                .map(|n| i64::from(*n))
                .sum(),
        };
    }
    Ok(a)
}

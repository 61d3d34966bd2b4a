//! What the committee learns from the ledger: the KPIs counted over the cases' facts
//! ([`domain::kpi`], one row each in `kpi_facts`, kept from the ledger rows by V24's triggers),
//! and the counts the trends are tested on.
//!
//! The KPI definitions are the domain's: each [`domain::kpi::Fact`] already says which unit it
//! scores and when it falls; SQL only counts them by [`domain::kpi::Fact::fell_due`] and
//! [`domain::kpi::Fact::met`], written once here as [`FELL_DUE`] and [`MET`].

use chrono::{DateTime, NaiveDate, Utc};
use tokio_postgres::IsolationLevel;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::db::Pool;
use crate::error::StoreError;

/// What KPIs and trends are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// One group: everything in scope.
    #[default]
    Total,
    /// The unit each fact scores.
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

impl GroupBy {
    /// The dimension of V25's KPI rollup that holds this grouping.
    fn dim(self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::Unit => "unit",
            Self::Village => "village",
            Self::Category => "category",
            Self::Channel => "channel",
            Self::Campaign => "campaign",
        }
    }

    /// The SQL of the key, as text (`NULL` for "none").
    fn key_sql(self) -> &'static str {
        match self {
            Self::Total => "NULL::text",
            Self::Unit => "f.unit::text",
            Self::Village => "f.village_id::text",
            Self::Category => "f.category_id::text",
            Self::Channel => "f.channel",
            Self::Campaign => "f.campaign_id::text",
        }
    }
}

/// Which cases and facts count.
#[derive(Debug, Clone, Default)]
pub struct AnalysisFilter {
    /// Facts falling at or after (see [`domain::kpi::FactKind`] for when each falls).
    pub from: DateTime<Utc>,
    /// Facts falling before.
    pub to: DateTime<Utc>,
    /// A handler's unit: only the facts that score it.
    pub scope_unit: Option<Uuid>,
    /// Only cases received in this campaign.
    pub campaign_id: Option<Uuid>,
    /// Only cases of this village.
    pub village_id: Option<Uuid>,
    /// Only cases of this category.
    pub category_id: Option<Uuid>,
    /// Only cases that came in by this channel.
    pub channel: Option<String>,
    /// Only facts scoring this unit.
    pub unit_id: Option<Uuid>,
}

/// A clock fell due by `now` (the parameter `$3`): its step was done, or its due time passed
/// with the clock running or stopped after it (V25's `kpi_fell_due()`, as
/// [`domain::kpi::Fact::fell_due`]).
const FELL_DUE: &str = "kpi_fell_due(f.done_at, f.at, f.stopped_at, $3)";
/// A clock's step was done by its due time (V25's `kpi_met()`, as [`domain::kpi::Fact::met`]).
const MET: &str = "kpi_met(f.done_at, f.at)";

/// The KPI rollup's rows (V25: per China day, kind, dimension and key, the facts' counts) with
/// the changes not yet compacted into it, expanded the same way: every row a query may sum.
pub(crate) const KPI_ROLLUP_SOURCE: &str = "SELECT * FROM kpi_rollup UNION ALL \
     SELECT x.* FROM kpi_fact_changes c, \
            kpi_rollup_rows(c.sign, 'infinity', c.kind, c.unit, c.at, c.done_at, c.stopped_at, c.rating, c.solved, \
                            c.followed_up, c.reopened, c.returned, c.accepted_at, c.village_id, c.category_id, \
                            c.channel, c.campaign_id) AS x";

/// The case rollup's rows (V25, V31: per China day received, campaign, kind and key, the cases
/// counted — the trends' kinds and the statistics') with the changes not yet compacted into it.
pub(crate) const CASE_ROLLUP_SOURCE: &str = "SELECT * FROM case_rollup UNION ALL \
     SELECT x.* FROM case_changes c, \
            case_rollup_rows(c.sign, c.received_at, c.campaign_id, c.category_id, c.village_id, c.accused_unit_id, \
                             c.title, c.duplicate, c.status, c.kind, c.channel, c.unit_id) AS x";

/// The counts behind the KPIs of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KpiCounts {
    /// The group's key (a unit, village, category or campaign id, a channel; `None` for "none"
    /// or the total).
    pub key: Option<String>,
    /// Facts of every kind in the period (the groups' order).
    pub facts: i64,
    /// Sign-for clocks that fell due.
    pub sign_for_due: i64,
    /// Of them, signed for in time.
    pub sign_for_met: i64,
    /// Acknowledgement clocks that fell due.
    pub acknowledgement_due: i64,
    /// Of them, acknowledged in time.
    pub acknowledgement_met: i64,
    /// Answer clocks that fell due (open overdue cases included).
    pub answer_due: i64,
    /// Of them, replied to in time.
    pub answer_met: i64,
    /// Dispatches.
    pub dispatches: i64,
    /// Of them, returned (退单 approved).
    pub returns: i64,
    /// Replies.
    pub replies: i64,
    /// Of them, reopened.
    pub replies_reopened: i64,
    /// Of them, followed up with a rating.
    pub replies_followed_up: i64,
    /// Last-round ratings.
    pub ratings: i64,
    /// Of them, 满意 or 基本满意.
    pub ratings_satisfied: i64,
    /// Of them, "solved" in the citizen's words.
    pub ratings_solved: i64,
    /// Of them, 满意 alone.
    pub ratings_fully_satisfied: i64,
    /// Of them, 不满意.
    pub ratings_dissatisfied: i64,
}

impl KpiCounts {
    /// Adds `o`'s counts (the same group's, from another part of the period).
    fn add(&mut self, o: &Self) {
        self.facts += o.facts;
        self.sign_for_due += o.sign_for_due;
        self.sign_for_met += o.sign_for_met;
        self.acknowledgement_due += o.acknowledgement_due;
        self.acknowledgement_met += o.acknowledgement_met;
        self.answer_due += o.answer_due;
        self.answer_met += o.answer_met;
        self.dispatches += o.dispatches;
        self.returns += o.returns;
        self.replies += o.replies;
        self.replies_reopened += o.replies_reopened;
        self.replies_followed_up += o.replies_followed_up;
        self.ratings += o.ratings;
        self.ratings_satisfied += o.ratings_satisfied;
        self.ratings_solved += o.ratings_solved;
        self.ratings_fully_satisfied += o.ratings_fully_satisfied;
        self.ratings_dissatisfied += o.ratings_dissatisfied;
    }

    /// A row of the KPI queries: the key, the facts, then the counts in field order.
    fn from_row(r: &tokio_postgres::Row) -> Self {
        Self {
            key: r.get(0),
            facts: r.get(1),
            sign_for_due: r.get(2),
            sign_for_met: r.get(3),
            acknowledgement_due: r.get(4),
            acknowledgement_met: r.get(5),
            answer_due: r.get(6),
            answer_met: r.get(7),
            dispatches: r.get(8),
            returns: r.get(9),
            replies: r.get(10),
            replies_reopened: r.get(11),
            replies_followed_up: r.get(12),
            ratings: r.get(13),
            ratings_satisfied: r.get(14),
            ratings_solved: r.get(15),
            ratings_fully_satisfied: r.get(16),
            ratings_dissatisfied: r.get(17),
        }
    }
}

/// First replies with the same acceptance day and reply day (China Standard Time): the working
/// days between them are counted with the calendar of the day they are asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTime {
    /// The group's key.
    pub key: Option<String>,
    /// The day the case was accepted (受理).
    pub accepted_on: NaiveDate,
    /// The day it was replied to (反馈).
    pub replied_on: NaiveDate,
    /// How many replies.
    pub count: i64,
}

/// The analysis queries.
#[derive(Clone)]
pub struct Analysis {
    pool: Pool,
}

/// The facts of the period (`kpi_facts`, one row per fact with its case's keys: V24), with the
/// filter's WHERE clause; `$1` from, `$2` to, `$3` now. A fact never falls before its case was
/// received (a receipt time is never in the future; clocks run from it; steps come after the
/// registration), so a fact of the period is one of a case received before its end
/// (`huiyin verify --projections` names any that is not).
fn facts_sql(select: &str, f: &AnalysisFilter, params: &mut Vec<Box<dyn ToSql + Sync + Send>>) -> String {
    let mut sql = format!("SELECT {select} FROM kpi_facts f WHERE f.at >= $1 AND f.at < $2");
    let mut push = |clause: &str, v: Box<dyn ToSql + Sync + Send>| {
        params.push(v);
        sql.push_str(&format!(" AND {}", clause.replace('?', &format!("${}", params.len()))));
    };
    if let Some(u) = f.scope_unit {
        push("f.unit = ?", Box::new(u));
    }
    if let Some(u) = f.unit_id {
        push("f.unit = ?", Box::new(u));
    }
    if let Some(c) = f.campaign_id {
        push("f.campaign_id = ?", Box::new(c));
    }
    if let Some(v) = f.village_id {
        push("f.village_id = ?", Box::new(v));
    }
    if let Some(c) = f.category_id {
        push("f.category_id = ?", Box::new(c));
    }
    if let Some(c) = &f.channel {
        push("f.channel = ?", Box::new(c.clone()));
    }
    sql
}

/// Which rows of V25's KPI rollup answer a query.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    /// The rollup's dimension: one (`village`) or a pair (`unit+village`).
    dim: String,
    /// The value its first key must have (`None`: any).
    key: Option<String>,
    /// The value its second key must have (`None`: any).
    key2: Option<String>,
    /// The column holding the group's key (`r.key`, `r.key2`, or none for the total).
    group: &'static str,
}

impl Plan {
    /// Whether its rows hold the replies' lags (a single dimension's do, a pair's do not).
    fn has_lags(&self) -> bool {
        !self.dim.contains('+')
    }
}

/// The order of the dimensions in the rollup's pairs (V25's `kpi_rollup_rows()`).
const DIMS: [&str; 5] = ["unit", "village", "category", "channel", "campaign"];

/// How V25's KPI rollup answers a query: each dimension alone and each pair of them, so a query
/// filtered on at most two dimensions and grouped by one of them, or filtered on one and grouped
/// by another, is answered from it; anything else from the facts.
fn rollup_plan(f: &AnalysisFilter, group: GroupBy) -> Option<Plan> {
    let unit = match (f.scope_unit, f.unit_id) {
        (Some(a), Some(b)) if a != b => return None,
        (a, b) => a.or(b),
    };
    let mut fixed: Vec<(&'static str, String)> = Vec::new();
    fixed.extend(unit.map(|u| ("unit", u.to_string())));
    fixed.extend(f.village_id.map(|v| ("village", v.to_string())));
    fixed.extend(f.category_id.map(|c| ("category", c.to_string())));
    fixed.extend(f.channel.clone().map(|c| ("channel", c)));
    fixed.extend(f.campaign_id.map(|c| ("campaign", c.to_string())));
    let g = (group != GroupBy::Total).then(|| group.dim());
    // The dimensions involved, each with its value when fixed, in the rollup's order.
    let mut dims: Vec<(&'static str, Option<String>)> = fixed.iter().map(|(d, v)| (*d, Some(v.clone()))).collect();
    if let Some(g) = g.filter(|g| !dims.iter().any(|(d, _)| d == g)) {
        dims.push((g, None));
    }
    dims.sort_by_key(|(d, _)| DIMS.iter().position(|x| x == d));
    let slot = |i: usize| if i == 0 { "r.key" } else { "r.key2" };
    let group_col = match g {
        None => "NULL::text",
        Some(g) => slot(dims.iter().position(|(d, _)| *d == g).unwrap_or(0)),
    };
    match dims.as_slice() {
        [] => Some(Plan { dim: "total".into(), key: None, key2: None, group: group_col }),
        [(d, v)] => Some(Plan { dim: (*d).into(), key: v.clone(), key2: None, group: group_col }),
        [(a, v), (b, w)] => Some(Plan { dim: format!("{a}+{b}"), key: v.clone(), key2: w.clone(), group: group_col }),
        _ => None,
    }
}

/// The whole China days of `[from, to)` that ended before `now`'s day began: the rollup's part
/// of a period (its `due` counts take every due time as passed). `None` when there is none.
fn rollup_days(from: DateTime<Utc>, to: DateTime<Utc>, now: DateTime<Utc>) -> Option<(NaiveDate, NaiveDate)> {
    use domain::calendar::{local_date, start_of_local_day};
    let bound = to.min(start_of_local_day(local_date(now)));
    let first = local_date(from);
    let first = if start_of_local_day(first) == from { first } else { first.succ_opt()? };
    let end = local_date(bound);
    (first < end).then_some((first, end))
}

/// The parts of a period a KPI query reads: the rollup's days (with its dimension and key) and
/// the stretches before and after them read from the facts.
struct Parts {
    rolled: Option<(Plan, (NaiveDate, NaiveDate))>,
    raw: Vec<(DateTime<Utc>, DateTime<Utc>)>,
}

fn parts(filter: &AnalysisFilter, group: GroupBy, now: DateTime<Utc>, lags: bool) -> Parts {
    let plan = rollup_plan(filter, group).filter(|p| !lags || p.has_lags());
    match (plan, rollup_days(filter.from, filter.to, now)) {
        (Some(plan), Some((d0, d1))) => {
            let (t0, t1) = (domain::calendar::start_of_local_day(d0), domain::calendar::start_of_local_day(d1));
            let raw = [(filter.from, t0), (t1, filter.to)].into_iter().filter(|(a, b)| a < b).collect();
            Parts { rolled: Some((plan, (d0, d1))), raw }
        }
        _ => Parts { rolled: None, raw: vec![(filter.from, filter.to)] },
    }
}

/// The rollup's rows of one dimension (`$1`), days `[$2, $3)` and keys (`$4`, `$5`, or any),
/// grouped by the plan's key column as `key`.
///
/// A key the plan fixes is tested as `r.key = $4`, one it leaves open as `$4::text IS NULL`, so
/// each shape is its own prepared statement: in one generic plan `($4 IS NULL OR r.key = $4)`
/// cannot be an index condition, and a pair's fixed key was then tested on every row of the
/// pair's days (at a million cases 33 k rows for 30 days of `village+category`, 2 785 kept).
/// V35's indexes lead with the pair and the fixed key.
fn rolled_sql(plan: &Plan, select: &str, tail: &str) -> String {
    let test = |col: &str, n: usize, fixed: bool| {
        if fixed { format!("r.{col} = ${n}") } else { format!("${n}::text IS NULL") }
    };
    format!(
        "SELECT {} AS key, {select} FROM ({KPI_ROLLUP_SOURCE}) AS r \
         WHERE r.dim = $1 AND r.day >= $2 AND r.day < $3 AND {} AND {} {tail}",
        plan.group,
        test("key", 4, plan.key.is_some()),
        test("key2", 5, plan.key2.is_some()),
    )
}

impl Analysis {
    /// The analysis on a pool.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// The KPI counts of every group with something counted in the period, most facts first,
    /// and the first replies' times of the same groups; `now` decides which clocks fell due. The
    /// whole days that ended are read from V25's rollup when it holds the grouping and filter,
    /// the rest from the facts, all in one snapshot.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn kpis(&self, filter: &AnalysisFilter, group: GroupBy, now: DateTime<Utc>) -> Result<Kpis, StoreError> {
        let mut client = self.pool.get().await?;
        let tx =
            client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?;
        // The tables before the snapshot (see `Ledger::stats`): a rebuild's switch-over that
        // commits meanwhile is seen whole.
        tx.batch_execute("LOCK TABLE kpi_facts, kpi_rollup, kpi_fact_changes IN ACCESS SHARE MODE").await?;
        let counts = counts(&tx, filter, group, now).await?;
        let reply_times = reply_times(&tx, filter, group, now).await?;
        tx.commit().await?;
        Ok(Kpis { counts, reply_times })
    }
}

/// What [`Analysis::kpis`] answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kpis {
    /// The counts of each group with something counted, most facts first.
    pub counts: Vec<KpiCounts>,
    /// The first replies in the period (each case's reply that carries its acceptance time),
    /// per group, acceptance day and reply day, for the working days from acceptance to reply.
    pub reply_times: Vec<ReplyTime>,
}

/// The KPI counts of [`Analysis::kpis`].
async fn counts(
    client: &deadpool_postgres::Transaction<'_>,
    filter: &AnalysisFilter,
    group: GroupBy,
    now: DateTime<Utc>,
) -> Result<Vec<KpiCounts>, StoreError> {
    let parts = parts(filter, group, now, false);
    let mut groups: Vec<KpiCounts> = Vec::new();
    if let Some((plan, (d0, d1))) = &parts.rolled {
        let sum = |col: &str, kind: &str| format!("coalesce(sum(r.{col}) FILTER (WHERE r.kind = '{kind}'), 0)::bigint");
        let select = [
            "coalesce(sum(r.n), 0)::bigint".to_string(),
            sum("due", "sign_for"),
            sum("met", "sign_for"),
            sum("due", "acknowledgement"),
            sum("met", "acknowledgement"),
            sum("due", "answer"),
            sum("met", "answer"),
            sum("n", "dispatch"),
            sum("returned", "dispatch"),
            sum("n", "reply"),
            sum("reopened", "reply"),
            sum("followed_up", "reply"),
            sum("n", "rating"),
            sum("satisfied", "rating"),
            sum("solved", "rating"),
            sum("fully_satisfied", "rating"),
            sum("dissatisfied", "rating"),
        ]
        .join(", ");
        let stmt = client.prepare_cached(&rolled_sql(plan, &select, "GROUP BY 1")).await?;
        let rows = client.query(&stmt, &[&plan.dim, d0, d1, &plan.key, &plan.key2]).await?;
        groups.extend(rows.iter().map(KpiCounts::from_row));
    }
    for (from, to) in &parts.raw {
        let part = AnalysisFilter { from: *from, to: *to, ..filter.clone() };
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(*from), Box::new(*to), Box::new(now)];
        let count = |kind: &str, extra: &str| format!("count(*) FILTER (WHERE f.kind = '{kind}'{extra})");
        let select = [
            format!("{} AS key", group.key_sql()),
            "count(*)".into(),
            count("sign_for", &format!(" AND {FELL_DUE}")),
            count("sign_for", &format!(" AND {MET}")),
            count("acknowledgement", &format!(" AND {FELL_DUE}")),
            count("acknowledgement", &format!(" AND {MET}")),
            count("answer", &format!(" AND {FELL_DUE}")),
            count("answer", &format!(" AND {MET}")),
            count("dispatch", ""),
            count("dispatch", " AND f.returned"),
            count("reply", ""),
            count("reply", " AND f.reopened"),
            count("reply", " AND f.followed_up"),
            count("rating", ""),
            count("rating", " AND f.rating IN ('satisfied', 'basically_satisfied')"),
            count("rating", " AND f.solved"),
            count("rating", " AND f.rating = 'satisfied'"),
            count("rating", " AND f.rating = 'dissatisfied'"),
        ]
        .join(", ");
        let mut sql = facts_sql(&select, &part, &mut params);
        sql.push_str(" GROUP BY 1");
        let stmt = client.prepare_cached(&sql).await?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        groups.extend(client.query(&stmt, &refs).await?.iter().map(KpiCounts::from_row));
    }
    let mut by_key: std::collections::HashMap<Option<String>, KpiCounts> = std::collections::HashMap::new();
    for g in groups {
        by_key.entry(g.key.clone()).or_insert_with(|| KpiCounts { key: g.key.clone(), ..KpiCounts::default() }).add(&g);
    }
    let mut out: Vec<KpiCounts> = by_key
        .into_values()
        // A group whose facts all still run (no clock fell due, nothing happened yet)
        // counts nothing: it is left out.
        .filter(|c| *c != KpiCounts { key: c.key.clone(), facts: c.facts, ..KpiCounts::default() })
        .collect();
    // Most facts first, then by key ("none" last).
    out.sort_by(|a, b| b.facts.cmp(&a.facts).then_with(|| (a.key.is_none(), &a.key).cmp(&(b.key.is_none(), &b.key))));
    Ok(out)
}

/// The reply times of [`Analysis::kpis`] (the rollup's lags when its plan holds them).
async fn reply_times(
    client: &deadpool_postgres::Transaction<'_>,
    filter: &AnalysisFilter,
    group: GroupBy,
    now: DateTime<Utc>,
) -> Result<Vec<ReplyTime>, StoreError> {
    let parts = parts(filter, group, now, true);
    let mut out = Vec::new();
    let row = |r: &tokio_postgres::Row| ReplyTime {
        key: r.get(0),
        accepted_on: r.get(1),
        replied_on: r.get(2),
        count: r.get(3),
    };
    if let Some((plan, (d0, d1))) = &parts.rolled {
        let sql = rolled_sql(
            plan,
            "r.day - r.lag, r.day, sum(r.n)::bigint",
            "AND r.kind = 'reply' AND r.lag IS NOT NULL GROUP BY 1, 2, 3 HAVING sum(r.n) > 0",
        );
        let stmt = client.prepare_cached(&sql).await?;
        out.extend(client.query(&stmt, &[&plan.dim, d0, d1, &plan.key, &plan.key2]).await?.iter().map(row));
    }
    for (from, to) in &parts.raw {
        let part = AnalysisFilter { from: *from, to: *to, ..filter.clone() };
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(*from), Box::new(*to), Box::new(now)];
        let select = format!("{}, china_day(f.accepted_at), china_day(f.at), count(*)", group.key_sql());
        let mut sql = facts_sql(&select, &part, &mut params);
        // `$3` is unused here but keeps the numbering of [`facts_sql`].
        sql.push_str(
            " AND f.kind = 'reply' AND f.accepted_at IS NOT NULL AND $3::timestamptz IS NOT NULL GROUP BY 1, 2, 3",
        );
        let stmt = client.prepare_cached(&sql).await?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        out.extend(client.query(&stmt, &refs).await?.iter().map(row));
    }
    Ok(out)
}

/// The length of a trend period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bucket {
    /// A week, Monday to Sunday, China Standard Time.
    #[default]
    Week,
    /// A calendar month, China Standard Time.
    Month,
}

impl Bucket {
    /// The SQL of the first day of the period holding the rollup row's day `r.day`.
    fn sql(self) -> &'static str {
        match self {
            Self::Week => "date_trunc('week', r.day)::date",
            Self::Month => "date_trunc('month', r.day)::date",
        }
    }
}

/// Cases received in one period under one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodCount {
    /// The period's first day.
    pub period: chrono::NaiveDate,
    /// The key: (category, village) or (accused unit, none).
    pub key: (Option<Uuid>, Option<Uuid>),
    /// How many.
    pub count: i64,
}

/// What the trends count over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrendKey {
    /// A category in a village.
    CategoryVillage,
    /// The unit complained about.
    AccusedUnit,
}

/// How often a search term occurs: in how many recent and how many baseline cases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermCount {
    /// The term (two CJK characters, as the search index holds them).
    pub term: String,
    /// Recent cases with it.
    pub recent: i64,
    /// Baseline cases with it.
    pub baseline: i64,
}

/// V25's trend rollup rows of one kind (`$3`) on the days `[$1, $2)`, of one campaign (`$4`) or
/// all.
fn cases_sql(select: &str, tail: &str) -> String {
    format!(
        "SELECT {select} FROM ({CASE_ROLLUP_SOURCE}) AS r \
         WHERE r.kind = $3 AND r.day >= $1 AND r.day < $2 AND ($4::uuid IS NULL OR r.campaign_id = $4){tail}"
    )
}

impl Analysis {
    /// Cases received on the China days `[from, to)` per period and key, optionally of one
    /// campaign, from V25's rollup; a case linked as a duplicate of another is the same matter
    /// and not counted again.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn period_counts(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        bucket: Bucket,
        key: TrendKey,
        campaign: Option<Uuid>,
    ) -> Result<Vec<PeriodCount>, StoreError> {
        let kind = match key {
            TrendKey::CategoryVillage => "cell",
            TrendKey::AccusedUnit => "accused",
        };
        let sql = cases_sql(
            &format!("{} AS period, r.a, r.b, sum(r.n)::bigint", bucket.sql()),
            " GROUP BY 1, 2, 3 HAVING sum(r.n) <> 0",
        );
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&sql).await?;
        Ok(client
            .query(&stmt, &[&from, &to, &kind, &campaign])
            .await?
            .iter()
            .map(|r| PeriodCount { period: r.get(0), key: (r.get(1), r.get(2)), count: r.get(3) })
            .collect())
    }

    /// The newest cases (at most `limit` each, newest first) received in `[from, to)` under each
    /// of `keys`: the flags' examples, one short backward walk of the received-time index per key
    /// (keys absent from the answer have none).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn examples(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        key: TrendKey,
        keys: &[(Option<Uuid>, Option<Uuid>)],
        campaign: Option<Uuid>,
        limit: i64,
    ) -> Result<std::collections::HashMap<(Option<Uuid>, Option<Uuid>), Vec<Uuid>>, StoreError> {
        let matches = match key {
            TrendKey::CategoryVillage => {
                "l.category_id IS NOT DISTINCT FROM k.a AND l.village_id IS NOT DISTINCT FROM k.b"
            }
            TrendKey::AccusedUnit => "l.accused_unit_id = k.a",
        };
        let sql = format!(
            "SELECT k.a, k.b, x.case_id FROM unnest($3::uuid[], $4::uuid[]) WITH ORDINALITY AS k(a, b, i) \
             CROSS JOIN LATERAL ( \
               SELECT l.case_id, l.received_at FROM ledger l \
                WHERE l.received_at >= $1 AND l.received_at < $2 AND l.duplicate_of IS NULL AND {matches} \
                  AND ($6::uuid IS NULL OR l.campaign_id = $6) \
                ORDER BY l.received_at DESC, l.case_id DESC LIMIT $5) AS x \
             ORDER BY k.i, x.received_at DESC, x.case_id DESC"
        );
        let (firsts, seconds): (Vec<Option<Uuid>>, Vec<Option<Uuid>>) = keys.iter().copied().unzip();
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&sql).await?;
        let mut out: std::collections::HashMap<(Option<Uuid>, Option<Uuid>), Vec<Uuid>> = Default::default();
        for r in client.query(&stmt, &[&from, &to, &firsts, &seconds, &limit, &campaign]).await? {
            out.entry((r.get(0), r.get(1))).or_default().push(r.get(2));
        }
        Ok(out)
    }

    /// The newest cases (at most `limit` each, newest first) received in `[from, to)` whose title
    /// holds each of `terms`: the rising words' examples, one backward walk of the received-time
    /// index per term.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn word_examples(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        terms: &[String],
        campaign: Option<Uuid>,
        limit: i64,
    ) -> Result<std::collections::HashMap<String, Vec<Uuid>>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT t.term, x.case_id FROM unnest($3::text[]) WITH ORDINALITY AS t(term, i) \
                 CROSS JOIN LATERAL ( \
                   SELECT l.case_id, l.received_at FROM ledger l \
                    WHERE l.received_at >= $1 AND l.received_at < $2 AND l.duplicate_of IS NULL \
                      AND strpos(l.title, t.term) > 0 AND ($4::uuid IS NULL OR l.campaign_id = $4) \
                    ORDER BY l.received_at DESC, l.case_id DESC LIMIT $5) AS x \
                 ORDER BY t.i, x.received_at DESC, x.case_id DESC",
            )
            .await?;
        let mut out: std::collections::HashMap<String, Vec<Uuid>> = Default::default();
        for r in client.query(&stmt, &[&from, &to, &terms, &campaign, &limit]).await? {
            out.entry(r.get(0)).or_default().push(r.get(1));
        }
        Ok(out)
    }

    /// The two-character CJK terms of the titles of the cases received on the China days
    /// `[baseline_from, to)` (V25's `title_terms()`: the character pairs the search index makes
    /// of unspaced text), each in at least `min_total` titles, with how many recent
    /// (`[recent_from, to)`) and baseline titles hold it, and the number of cases in each range,
    /// from V25's rollup. Titles, not descriptions: a description names people (a complainant's
    /// name rising is not a problem rising), a title names the matter. Duplicates of a matter
    /// count once.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn term_counts(
        &self,
        baseline_from: NaiveDate,
        recent_from: NaiveDate,
        to: NaiveDate,
        min_total: i64,
        campaign: Option<Uuid>,
    ) -> Result<(i64, i64, Vec<TermCount>), StoreError> {
        let client = self.pool.get().await?;
        let split = "coalesce(sum(r.n) FILTER (WHERE r.day >= $5), 0)::bigint, \
                     coalesce(sum(r.n) FILTER (WHERE r.day < $5), 0)::bigint";
        let totals = client.prepare_cached(&cases_sql(split, "")).await?;
        let row = client.query_one(&totals, &[&baseline_from, &to, &"cell", &campaign, &recent_from]).await?;
        let (n_recent, n_baseline): (i64, i64) = (row.get(0), row.get(1));
        let terms = client
            .prepare_cached(&cases_sql(
                &format!("r.term, {split}"),
                " GROUP BY r.term HAVING sum(r.n)::bigint >= $6 ORDER BY r.term",
            ))
            .await?;
        let terms = client
            .query(&terms, &[&baseline_from, &to, &"term", &campaign, &recent_from, &min_total])
            .await?
            .iter()
            .map(|r| TermCount { term: r.get(0), recent: r.get(1), baseline: r.get(2) })
            .collect();
        Ok((n_recent, n_baseline, terms))
    }

    /// Moves the changes logged since the last compaction into V25's rollups
    /// (`rollups_compact()`, 50,000 at a time until none is left); returns how many it moved.
    /// Queries are exact either way (they read the changes not yet moved); this keeps what they
    /// read small. When another compaction runs at the same moment, this one returns 0.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn compact_rollups(&self) -> Result<u64, StoreError> {
        crate::db::compact_until_done(&self.pool, "SELECT rollups_compact($1)").await
    }

    /// Every questionnaire's folded state (for the survey trends), oldest first by the day it was
    /// held, optionally of one campaign.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn surveys(&self, campaign: Option<Uuid>) -> Result<Vec<serde_json::Value>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT doc FROM records WHERE stream_type = 'survey' AND ($1::uuid IS NULL OR campaign_id = $1) \
                 ORDER BY happened_on, record_id",
            )
            .await?;
        Ok(client.query(&stmt, &[&campaign]).await?.iter().map(|r| r.get(0)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> AnalysisFilter {
        AnalysisFilter::default()
    }

    #[test]
    fn each_dimension_and_pair_is_answered_from_the_rollup_and_three_are_not() {
        let (u, v, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let plan = |f: &AnalysisFilter, g| rollup_plan(f, g).map(|p| (p.dim, p.key, p.key2, p.group));
        assert_eq!(plan(&filter(), GroupBy::Total), Some(("total".into(), None, None, "NULL::text")));
        assert_eq!(plan(&filter(), GroupBy::Village), Some(("village".into(), None, None, "r.key")));
        let by_village = AnalysisFilter { village_id: Some(v), ..filter() };
        assert_eq!(
            plan(&by_village, GroupBy::Total),
            Some(("village".into(), Some(v.to_string()), None, "NULL::text"))
        );
        assert_eq!(plan(&by_village, GroupBy::Village), Some(("village".into(), Some(v.to_string()), None, "r.key")));
        // Filtered on the village, grouped by unit: the pair, the village fixed in the second key.
        assert_eq!(plan(&by_village, GroupBy::Unit), Some(("unit+village".into(), None, Some(v.to_string()), "r.key")));
        // A handler's scope is a unit filter.
        let handler = AnalysisFilter { scope_unit: Some(u), ..filter() };
        assert_eq!(
            plan(&handler, GroupBy::Campaign),
            Some(("unit+campaign".into(), Some(u.to_string()), None, "r.key2"))
        );
        // A village's summary report: campaign and village fixed.
        let report = AnalysisFilter { campaign_id: Some(c), village_id: Some(v), ..filter() };
        assert_eq!(
            plan(&report, GroupBy::Total),
            Some(("village+campaign".into(), Some(v.to_string()), Some(c.to_string()), "NULL::text"))
        );
        // Three dimensions, or two fixed and a third grouped: the facts.
        assert_eq!(plan(&report, GroupBy::Unit), None);
        assert_eq!(plan(&AnalysisFilter { unit_id: Some(u), ..report.clone() }, GroupBy::Total), None);
        // A handler asking for another unit: nothing from the rollup (the facts give nothing).
        assert_eq!(plan(&AnalysisFilter { unit_id: Some(v), ..handler }, GroupBy::Total), None);
    }

    #[test]
    fn the_rollup_holds_the_whole_days_before_today() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).expect("a time").with_timezone(&Utc);
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("a date");
        let now = t("2026-12-01T14:00:00Z"); // 22:00 on 1 December, China time
        // 08:00 China time to 08:00: the first whole day is the next.
        assert_eq!(
            rollup_days(t("2026-11-01T00:00:00Z"), t("2026-11-30T00:00:00Z"), now),
            Some((d("2026-11-02"), d("2026-11-30")))
        );
        // China midnights: every day.
        assert_eq!(
            rollup_days(t("2026-10-31T16:00:00Z"), t("2026-11-29T16:00:00Z"), now),
            Some((d("2026-11-01"), d("2026-11-30")))
        );
        // Up to now: the days before today only.
        assert_eq!(rollup_days(t("2026-11-01T00:00:00Z"), now, now), Some((d("2026-11-02"), d("2026-12-01"))));
        // Within one day: none.
        assert_eq!(rollup_days(t("2026-11-01T00:00:00Z"), t("2026-11-01T12:00:00Z"), now), None);
    }
}

//! What the committee learns from the ledger: the KPIs counted over the cases' facts
//! ([`domain::kpi`], one row each in `kpi_facts`, kept from the ledger rows by V24's triggers),
//! and the counts the trends are tested on.
//!
//! The KPI definitions are the domain's: each [`domain::kpi::Fact`] already says which unit it
//! scores and when it falls; SQL only counts them by [`domain::kpi::Fact::fell_due`] and
//! [`domain::kpi::Fact::met`], written once here as [`FELL_DUE`] and [`MET`].

use chrono::{DateTime, Utc};
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
/// with the clock running or stopped after it ([`domain::kpi::Fact::fell_due`]).
pub const FELL_DUE: &str = "(f.done_at IS NOT NULL OR (f.at <= $3 AND (f.stopped_at IS NULL OR f.stopped_at >= f.at)))";
/// A clock's step was done by its due time ([`domain::kpi::Fact::met`]).
pub const MET: &str = "(f.done_at <= f.at)";

/// The counts behind the KPIs of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KpiCounts {
    /// The group's key (a unit, village, category or campaign id, a channel; `None` for "none"
    /// or the total).
    pub key: Option<String>,
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

/// A first reply: when its case was accepted and when it was replied to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyTime {
    /// The group's key.
    pub key: Option<String>,
    /// Accepted (受理).
    pub accepted_at: DateTime<Utc>,
    /// Replied (反馈).
    pub replied_at: DateTime<Utc>,
}

/// The analysis queries.
#[derive(Clone)]
pub struct Analysis {
    pool: Pool,
}

/// The facts of the period (`kpi_facts`, one row per fact with its case's keys: V24), with the
/// filter's WHERE clause; `$1` from, `$2` to, `$3` now.
fn facts_sql(select: &str, f: &AnalysisFilter, params: &mut Vec<Box<dyn ToSql + Sync + Send>>) -> String {
    let mut sql = format!("SELECT {select} FROM kpi_facts f WHERE f.at >= $1 AND f.at < $2 AND f.received_at < $2");
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

impl Analysis {
    /// The analysis on a pool.
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }

    /// The KPI counts of every group with something counted in the period, most facts first;
    /// `now` decides which clocks fell due.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn kpis(
        &self,
        filter: &AnalysisFilter,
        group: GroupBy,
        now: DateTime<Utc>,
    ) -> Result<Vec<KpiCounts>, StoreError> {
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> =
            vec![Box::new(filter.from), Box::new(filter.to), Box::new(now)];
        let count = |kind: &str, extra: &str| format!("count(*) FILTER (WHERE f.kind = '{kind}'{extra})");
        let select = [
            format!("{} AS key", group.key_sql()),
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
        let mut sql = facts_sql(&select, filter, &mut params);
        sql.push_str(" GROUP BY 1 ORDER BY count(*) DESC, 1");
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&sql).await?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let rows = client.query(&stmt, &refs).await?;
        Ok(rows
            .iter()
            .map(|r| KpiCounts {
                key: r.get(0),
                sign_for_due: r.get(1),
                sign_for_met: r.get(2),
                acknowledgement_due: r.get(3),
                acknowledgement_met: r.get(4),
                answer_due: r.get(5),
                answer_met: r.get(6),
                dispatches: r.get(7),
                returns: r.get(8),
                replies: r.get(9),
                replies_reopened: r.get(10),
                replies_followed_up: r.get(11),
                ratings: r.get(12),
                ratings_satisfied: r.get(13),
                ratings_solved: r.get(14),
                ratings_fully_satisfied: r.get(15),
                ratings_dissatisfied: r.get(16),
            })
            // A group whose facts all still run (no clock fell due, nothing happened yet)
            // counts nothing: it is left out.
            .filter(|c| *c != KpiCounts { key: c.key.clone(), ..KpiCounts::default() })
            .collect())
    }

    /// The first replies in the period (each case's reply that carries its acceptance time), for
    /// the working days from acceptance to reply.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn reply_times(&self, filter: &AnalysisFilter, group: GroupBy) -> Result<Vec<ReplyTime>, StoreError> {
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> =
            vec![Box::new(filter.from), Box::new(filter.to), Box::new(filter.to)];
        let select = format!("{}, f.accepted_at, f.at", group.key_sql());
        let mut sql = facts_sql(&select, filter, &mut params);
        // `$3` is unused here but keeps the numbering of [`facts_sql`].
        sql.push_str(" AND f.kind = 'reply' AND f.accepted_at IS NOT NULL AND $3::timestamptz IS NOT NULL");
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&sql).await?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let rows = client.query(&stmt, &refs).await?;
        Ok(rows.iter().map(|r| ReplyTime { key: r.get(0), accepted_at: r.get(1), replied_at: r.get(2) }).collect())
    }
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
    /// The SQL of the day a case's period starts (China Standard Time: UTC+8, no daylight time).
    fn sql(self) -> &'static str {
        match self {
            Self::Week => "date_trunc('week', (l.received_at AT TIME ZONE 'UTC') + interval '8 hours')::date",
            Self::Month => "date_trunc('month', (l.received_at AT TIME ZONE 'UTC') + interval '8 hours')::date",
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

impl Analysis {
    /// Cases received in `[from, to)` per period and key, optionally of one campaign; a case
    /// linked as a duplicate of another is the same matter and not counted again.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn period_counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
        key: TrendKey,
        campaign: Option<Uuid>,
    ) -> Result<Vec<PeriodCount>, StoreError> {
        let (keys, only) = match key {
            TrendKey::CategoryVillage => ("l.category_id, l.village_id", ""),
            TrendKey::AccusedUnit => ("l.accused_unit_id, NULL::uuid", " AND l.accused_unit_id IS NOT NULL"),
        };
        let sql = format!(
            "SELECT {} AS period, {keys}, count(*) FROM ledger l \
             WHERE l.received_at >= $1 AND l.received_at < $2 AND ($3::uuid IS NULL OR l.campaign_id = $3) \
               AND l.duplicate_of IS NULL{only} \
             GROUP BY 1, 2, 3",
            bucket.sql()
        );
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&sql).await?;
        Ok(client
            .query(&stmt, &[&from, &to, &campaign])
            .await?
            .iter()
            .map(|r| PeriodCount { period: r.get(0), key: (r.get(1), r.get(2)), count: r.get(3) })
            .collect())
    }

    /// The newest cases (at most `limit` each) received in `[from, to)` under each of `keys`: the
    /// flags' examples, in one scan of the period (keys absent from the answer have none).
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
        // `NULL` keys (no category, no village) are matched as the nil uuid, so the join hashes.
        let (a, b) = match key {
            TrendKey::CategoryVillage => ("l.category_id", "l.village_id"),
            TrendKey::AccusedUnit => ("l.accused_unit_id", "NULL::uuid"),
        };
        let sql = format!(
            "SELECT k.a, k.b, x.case_id FROM ( \
               SELECT coalesce({a}, '00000000-0000-0000-0000-000000000000') AS ka, \
                      coalesce({b}, '00000000-0000-0000-0000-000000000000') AS kb, l.case_id, \
                      row_number() OVER (PARTITION BY {a}, {b} ORDER BY l.received_at DESC, l.case_id) AS n \
                 FROM ledger l \
                WHERE l.received_at >= $1 AND l.received_at < $2 AND l.duplicate_of IS NULL \
                  AND ($6::uuid IS NULL OR l.campaign_id = $6)) AS x \
             JOIN unnest($3::uuid[], $4::uuid[]) AS k(a, b) \
               ON x.ka = coalesce(k.a, '00000000-0000-0000-0000-000000000000') \
              AND x.kb = coalesce(k.b, '00000000-0000-0000-0000-000000000000') \
             WHERE x.n <= $5 ORDER BY 1, 2, x.n"
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

    /// The newest cases (at most `limit` each) received in `[from, to)` whose title holds each of
    /// `terms`: the rising words' examples, in one scan of the period.
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
                "SELECT term, case_id FROM ( \
                   SELECT t.term, l.case_id, \
                          row_number() OVER (PARTITION BY t.term ORDER BY l.received_at DESC, l.case_id) AS n \
                     FROM ledger l JOIN unnest($3::text[]) AS t(term) ON strpos(l.title, t.term) > 0 \
                    WHERE l.received_at >= $1 AND l.received_at < $2 AND l.duplicate_of IS NULL \
                      AND ($4::uuid IS NULL OR l.campaign_id = $4)) AS x \
                 WHERE n <= $5 ORDER BY 1, n",
            )
            .await?;
        let mut out: std::collections::HashMap<String, Vec<Uuid>> = Default::default();
        for r in client.query(&stmt, &[&from, &to, &terms, &campaign, &limit]).await? {
            out.entry(r.get(0)).or_default().push(r.get(1));
        }
        Ok(out)
    }

    /// The two-character CJK terms of the titles of the cases received in `[baseline_from, to)`
    /// (segmented as the search index segments them, [`crate::search::index_terms`]), each in at
    /// least `min_total` titles, with how many recent (`[recent_from, to)`) and baseline titles
    /// hold it, and the number of cases in each range. Titles, not descriptions: a description
    /// names people (a complainant's name rising is not a problem rising), a title names the
    /// matter. Duplicates of a matter count once.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn term_counts(
        &self,
        baseline_from: DateTime<Utc>,
        recent_from: DateTime<Utc>,
        to: DateTime<Utc>,
        min_total: i64,
        campaign: Option<Uuid>,
    ) -> Result<(i64, i64, Vec<TermCount>), StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT title, received_at >= $2 FROM ledger \
                 WHERE received_at >= $1 AND received_at < $3 AND ($4::uuid IS NULL OR campaign_id = $4) \
                   AND duplicate_of IS NULL",
            )
            .await?;
        let rows = client.query(&stmt, &[&baseline_from, &recent_from, &to, &campaign]).await?;
        let (mut n_recent, mut n_baseline) = (0i64, 0i64);
        let mut counts: std::collections::HashMap<String, (i64, i64)> = std::collections::HashMap::new();
        let cjk = |c: char| ('\u{4e00}'..='\u{9fff}').contains(&c);
        for r in &rows {
            let title: String = r.get(0);
            let recent: bool = r.get(1);
            if recent {
                n_recent += 1
            } else {
                n_baseline += 1
            }
            for term in crate::search::index_terms(&title) {
                if term.chars().count() == 2 && term.chars().all(cjk) {
                    let e = counts.entry(term).or_default();
                    if recent { e.0 += 1 } else { e.1 += 1 }
                }
            }
        }
        let mut terms: Vec<TermCount> = counts
            .into_iter()
            .filter(|(_, (r, b))| r + b >= min_total)
            .map(|(term, (recent, baseline))| TermCount { term, recent, baseline })
            .collect();
        terms.sort_by(|a, b| a.term.cmp(&b.term));
        Ok((n_recent, n_baseline, terms))
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

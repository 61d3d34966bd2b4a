//! The ledger (台账): one row per case, the projection the committee works from.
//!
//! A row is [`LedgerRow::from_case`] of the case's folded state: the same fold the domain uses,
//! so SQL holds no copy of the lifecycle rules. Live rows are written by `append_events()` in the
//! same transaction as the events. [`rebuild`] recomputes every row from the log into a fresh
//! table and swaps it in while the service runs; [`verify_projections`] compares every row with a
//! replay of its case.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use domain::{Case, CaseId, Stage};
use futures_util::{StreamExt, pin_mut};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel, NoTls};
use uuid::Uuid;

use crate::db::{DbSettings, Pool};
use crate::error::StoreError;
use crate::store::{StoredEvent, fold};

/// One row of the ledger, as computed from a case's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRow {
    /// The case.
    pub case_id: Uuid,
    /// Its version.
    pub version: i32,
    /// Receipt code.
    pub receipt_code: String,
    /// Kind.
    pub kind: String,
    /// Channel.
    pub channel: String,
    /// Category.
    pub category_id: Option<Uuid>,
    /// Village.
    pub village_id: Option<Uuid>,
    /// Responsible unit.
    pub unit_id: Option<Uuid>,
    /// Accused unit.
    pub accused_unit_id: Option<Uuid>,
    /// Urgency.
    pub urgency: String,
    /// Status.
    pub status: String,
    /// Round.
    pub round: i32,
    /// Title.
    pub title: String,
    /// Anonymous complainant.
    pub anonymous: bool,
    /// Received.
    pub received_at: DateTime<Utc>,
    /// Last assigned.
    pub assigned_at: Option<DateTime<Utc>>,
    /// Handled (this round).
    pub handled_at: Option<DateTime<Utc>>,
    /// Fed back (this round).
    pub fed_back_at: Option<DateTime<Utc>>,
    /// Closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// The stage whose deadline runs.
    pub deadline_stage: Option<String>,
    /// When that deadline's clock started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it is due.
    pub due_at: Option<DateTime<Utc>>,
    /// When 60 % of its time is used ("due soon").
    pub due_soon_at: Option<DateTime<Utc>>,
    /// This round's rating.
    pub satisfaction: Option<String>,
    /// Under supervision.
    pub escalated: bool,
    /// Duplicate of.
    pub duplicate_of: Option<Uuid>,
    /// Co-units of joint handling.
    pub co_unit_ids: Vec<Uuid>,
    /// Accepted (受理).
    pub accepted_at: Option<DateTime<Utc>>,
    /// Signed for by the lead unit (签收).
    pub signed_at: Option<DateTime<Utc>>,
    /// Returns approved (退单).
    pub returns: i32,
    /// The citizen's answer to "was it solved?", this round.
    pub solved: Option<bool>,
    /// The non-acceptance code, while rejected.
    pub rejection_code: Option<String>,
    /// The acknowledgement clock, while it runs.
    pub ack_due_at: Option<DateTime<Utc>>,
    /// The overall clock, while it runs.
    pub overall_due_at: Option<DateTime<Utc>>,
    /// The running clock that falls due first.
    pub next_due_at: Option<DateTime<Utc>>,
    /// Its stage (`overall`, `acknowledgement`, or the stage's).
    pub next_due_stage: Option<String>,
    /// When its clock started.
    pub next_started_at: Option<DateTime<Utc>>,
    /// The first moment any running clock has used 60 % of its time (not only the clock due
    /// first: a long clock that started earlier can be due soon before it).
    pub next_due_soon_at: Option<DateTime<Utc>>,
    /// The stage's clock stands still: paused, or stopped by a return waiting for the dispatcher
    /// ([`domain::Case::stage_clock_stopped`]).
    pub paused: bool,
    /// A clock was counted into a year whose calendar is not loaded.
    pub calendar_incomplete: bool,
    /// The campaign it was received in.
    #[serde(default)]
    pub campaign_id: Option<Uuid>,
    /// The campaign's phase then.
    #[serde(default)]
    pub campaign_phase: Option<String>,
    /// The kind of record it came from (`meeting`, `visit`, `card_batch`, `survey`).
    #[serde(default)]
    pub source_type: Option<String>,
    /// The record it came from.
    #[serde(default)]
    pub source_id: Option<Uuid>,
    /// The item within that record (an opinion's number, a finding's, a card's serial, a
    /// response's id).
    #[serde(default)]
    pub source_item: Option<String>,
    /// How many dissatisfied ratings the case has had (supervision: a second one).
    #[serde(default)]
    pub dissatisfied_count: i32,
    /// How many of its returns the dispatcher refused (supervision: a dispute).
    #[serde(default)]
    pub returns_refused: i32,
    /// What the case contributes to the KPIs ([`domain::kpi`]).
    #[serde(default)]
    pub facts: Vec<domain::kpi::Fact>,
    /// The search lexemes of [`searchable_texts`] ([`crate::search::case_tsvector_text`]), as
    /// tsvector input: written whole at registration, by a rebuild and by a replay; empty on an
    /// append, which keeps the stored value and adds the terms of the texts its events add
    /// ([`domain::CaseEvent::texts`]) beside the row; never read back.
    #[serde(default)]
    pub search: String,
}

/// Everything of a case that a reader sees and may type to find it: the receipt code, title,
/// description, and every free text of its history (results and replies of every round,
/// reasons, comments, contributions, notes: [`Case::history_texts`]).
pub fn searchable_texts(case: &Case) -> impl Iterator<Item = &str> {
    [case.receipt_code.as_str(), case.title.as_str(), case.description.as_str()]
        .into_iter()
        .chain(case.history_texts.iter().map(String::as_str))
}

/// When 60 % of a clock's time is used ("due soon").
fn due_soon(d: &domain::Deadline) -> DateTime<Utc> {
    domain::truncate_to_micros(d.started_at + (d.due_at - d.started_at) * 6 / 10)
}

fn ident<T: Serialize>(v: T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl LedgerRow {
    /// The row of a case. `with_search` computes the search lexemes (needed when the row is first
    /// written and when the handling or the reply changes).
    pub fn from_case(case: &Case, with_search: bool) -> Self {
        let deadline = case.deadline;
        let running = case.running_clocks();
        let next = running.iter().min_by_key(|d| d.due_at).copied();
        Self {
            case_id: case.id.as_uuid(),
            version: i32::try_from(case.version).unwrap_or(i32::MAX),
            receipt_code: case.receipt_code.as_str().to_owned(),
            kind: ident(case.kind),
            channel: ident(case.channel),
            category_id: case.category.map(|c| c.as_uuid()),
            village_id: case.village.map(|u| u.as_uuid()),
            unit_id: case.unit.map(|u| u.as_uuid()),
            accused_unit_id: case.accused_unit.map(|u| u.as_uuid()),
            urgency: ident(case.urgency),
            status: case.status.as_str().to_owned(),
            round: i32::try_from(case.round).unwrap_or(i32::MAX),
            title: case.title.as_str().to_owned(),
            anonymous: case.complainant.anonymous,
            received_at: case.received_at,
            assigned_at: case.assigned_at,
            handled_at: case.handling.as_ref().map(|h| h.at),
            fed_back_at: case.feedback.as_ref().map(|f| f.at),
            closed_at: case.closed_at,
            deadline_stage: deadline.map(|d| d.stage.as_str().to_owned()),
            started_at: deadline.map(|d| d.started_at),
            due_at: deadline.map(|d| d.due_at),
            due_soon_at: deadline.as_ref().map(due_soon),
            satisfaction: case.satisfaction.as_ref().map(|s| ident(s.rating)),
            escalated: case.escalation.is_some(),
            duplicate_of: case.duplicate_of.map(|c| c.as_uuid()),
            co_unit_ids: case.co_units.iter().map(|c| c.unit.as_uuid()).collect(),
            accepted_at: case.accepted_at,
            signed_at: case.signed_at,
            returns: i32::try_from(case.returns).unwrap_or(i32::MAX),
            solved: case.satisfaction.as_ref().and_then(|s| s.solved),
            rejection_code: case.rejection_code.map(ident),
            ack_due_at: running.iter().find(|d| d.stage == Stage::Acknowledgement).map(|d| d.due_at),
            overall_due_at: running.iter().find(|d| d.stage == Stage::Overall).map(|d| d.due_at),
            next_due_at: next.map(|d| d.due_at),
            next_due_stage: next.map(|d| d.stage.as_str().to_owned()),
            next_started_at: next.map(|d| d.started_at),
            // The first moment any running clock is due soon (60 % used), so the overdue view's
            // filter finds a case for each of its clocks, not only the one due first.
            next_due_soon_at: running.iter().map(due_soon).min(),
            // The stage clock stands still (paused, or stopped by a return waiting for the
            // dispatcher): the overdue view books the unit no lateness for it.
            paused: case.stage_clock_stopped(),
            calendar_incomplete: [case.deadline, case.acknowledgement, case.overall]
                .iter()
                .flatten()
                .any(|d| d.calendar_incomplete),
            campaign_id: case.campaign.map(|c| c.campaign.as_uuid()),
            campaign_phase: case.campaign.map(|c| c.phase.as_str().to_owned()),
            source_type: case.source.as_ref().map(|s| s.source_type.as_str().to_owned()),
            source_id: case.source.as_ref().map(|s| s.record.as_uuid()),
            source_item: case.source.as_ref().map(|s| s.item.clone()),
            dissatisfied_count: i32::try_from(case.dissatisfied_count).unwrap_or(i32::MAX),
            returns_refused: i32::try_from(case.returns_refused).unwrap_or(i32::MAX),
            facts: case.facts.clone(),
            search: if with_search { crate::search::case_tsvector_text(searchable_texts(case)) } else { String::new() },
        }
    }

    /// The row as the JSON `append_events()` takes.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// A ledger read: every column but the search lexemes, as one JSON object per row, read into
/// [`LedgerRow`] by name (the column list lives in the table alone).
pub(crate) const ROW_JSON: &str = "to_jsonb(l) - 'search'";

impl LedgerRow {
    pub(crate) fn from_row(r: &tokio_postgres::Row) -> Result<Self, StoreError> {
        serde_json::from_value(r.get(0)).map_err(|_| StoreError::Vault("a ledger row does not read back"))
    }
}

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct LedgerFilter {
    /// Status identifier.
    pub status: Option<String>,
    /// A receipt code, as the citizen reads it out (upper-case).
    pub receipt_code: Option<String>,
    /// Kind identifier.
    pub kind: Option<String>,
    /// Channel identifier.
    pub channel: Option<String>,
    /// Urgency identifier.
    pub urgency: Option<String>,
    /// Category.
    pub category_id: Option<Uuid>,
    /// Village.
    pub village_id: Option<Uuid>,
    /// Responsible unit.
    pub unit_id: Option<Uuid>,
    /// Past the deadline now (`true`) or not (`false`).
    pub overdue: Option<bool>,
    /// Under supervision.
    pub escalated: Option<bool>,
    /// Received at or after.
    pub received_from: Option<DateTime<Utc>>,
    /// Received before.
    pub received_to: Option<DateTime<Utc>>,
    /// Full-text query, segmented by jieba.
    pub q: Option<String>,
    /// The caller's scope: only this unit's rows (handlers).
    pub scope_unit: Option<Uuid>,
    /// Received in this campaign.
    pub campaign_id: Option<Uuid>,
    /// In this phase of it (`preparation`, `implementation`, `summary`).
    pub campaign_phase: Option<String>,
    /// Came from this kind of record.
    pub source_type: Option<String>,
    /// Came from this record.
    pub source_id: Option<Uuid>,
}

/// A campaign filter of the counts: its campaign and, optionally, one phase of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignFilter {
    /// The campaign.
    pub campaign_id: Option<Uuid>,
    /// The phase (`preparation`, `implementation`, `summary`).
    pub campaign_phase: Option<String>,
}

/// The order of a ledger page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LedgerSort {
    /// Newest first.
    #[default]
    ReceivedDesc,
    /// Oldest first.
    ReceivedAsc,
    /// Soonest deadline first (cases with a running deadline only).
    DueAsc,
    /// Latest deadline first (cases with a running deadline only).
    DueDesc,
}

/// A keyset cursor: the sort key and id of the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerCursor {
    /// The sort key (received or due time).
    pub key: DateTime<Utc>,
    /// The case id (tie-breaker).
    pub id: Uuid,
}

impl LedgerCursor {
    /// Opaque text form: `<micros since epoch>_<uuid>`.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.key.timestamp_micros(), self.id.simple())
    }
    /// Parses [`LedgerCursor::encode`]'s form.
    pub fn decode(s: &str) -> Option<Self> {
        let (k, id) = s.split_once('_')?;
        let micros: i64 = k.parse().ok()?;
        // Only times PostgreSQL can hold (the cursors this service issues are all after 1970).
        if !(0..=7_258_118_400_000_000).contains(&micros) {
            return None;
        }
        Some(Self { key: DateTime::from_timestamp_micros(micros)?, id: Uuid::parse_str(id).ok()? })
    }
}

/// The rows a handler of the unit in parameter `$n` may see: those it leads or co-handles, and
/// never one that accuses it (回避; the lifecycle never routes one there, and this keeps it so
/// for rows written before that rule).
fn scope_sql(n: usize) -> String {
    scope_sql_placeholders().replace('?', &format!("${n}"))
}

/// The open cases that deactivated units (`$1`) still lead or co-handle: `(case, the inactive
/// lead unit if it leads, the inactive co-units)` ([`Ledger::cases_at_inactive_units`]).
pub const STRANDED_SQL: &str = "SELECT l.case_id, CASE WHEN l.unit_id = ANY($1) THEN l.unit_id END, \
            ARRAY(SELECT u FROM unnest(l.co_unit_ids) AS u WHERE u = ANY($1)) \
     FROM ledger l \
     WHERE l.status IN ('assigned', 'handled') AND (l.unit_id = ANY($1) OR l.co_unit_ids && $1)";

/// The statement [`Ledger::cases_for_calendar`] reads `years` with, `$1` the years (an
/// `int[]`): with no year, only the cases flagged as counted into a year the calendar lacked,
/// through their partial index; with years, also every open case whose clocks run through one.
pub fn calendar_sql(years: &[i32]) -> &'static str {
    if years.is_empty() {
        "SELECT case_id FROM ledger WHERE calendar_incomplete AND status <> 'closed' AND $1::int[] IS NOT NULL \
         ORDER BY case_id"
    } else {
        CALENDAR_YEARS_SQL
    }
}

/// [`calendar_sql`] with years.
const CALENDAR_YEARS_SQL: &str = "SELECT case_id FROM ledger WHERE status <> 'closed' AND (calendar_incomplete OR EXISTS ( \
       SELECT 1 FROM unnest($1::int[]) AS y(y) \
       WHERE (started_at < make_date(y + 1, 1, 1) AND due_at >= make_date(y, 1, 1) - 1) \
          OR (received_at < make_date(y + 1, 1, 1) AND ack_due_at >= make_date(y, 1, 1) - 1))) \
     ORDER BY case_id";

/// The overdue view's page: `$1` now, `$2` the handler's unit (NULL unscoped), `$3`/`$4` the
/// keyset cursor (`next_due_at`, `case_id`; the epoch and the nil id for the first page), `$5`
/// the page's length. Answers one column, the row as JSON.
///
/// The page is chosen from the ledger's rows and only its rows are turned into JSON. A plan
/// that sorts instead of walking the `next_due_at` index (the planner's pick for the first
/// executions of a pooled connection, before its cached generic plan) would otherwise build the
/// JSON of every row with a running clock before keeping a page of them: 25 ms instead of 2 at
/// 10 k cases (BENCHMARKS.md).
pub fn watch_page_sql(scoped: bool) -> String {
    let scope = if scoped { format!(" AND {}", scope_sql(2)) } else { " AND $2::uuid IS NULL".to_owned() };
    format!(
        "SELECT {ROW_JSON} FROM (SELECT * FROM ledger WHERE next_due_at IS NOT NULL AND next_due_soon_at <= $1{scope} \
           AND (next_due_at, case_id) > ($3, $4) ORDER BY next_due_at, case_id LIMIT $5) l \
         ORDER BY next_due_at, case_id"
    )
}

/// [`scope_sql`] with `?` for the parameter.
fn scope_sql_placeholders() -> String {
    "((unit_id = ? OR ? = ANY(co_unit_ids)) AND accused_unit_id IS DISTINCT FROM ?)".to_owned()
}

/// How many of the newest rows that pass a search's other filters the probe checks for the
/// search words before it reads every match from the search index (see [`Ledger::page`]).
/// 2 000: a word in 1 % of the cases fills a 20-row page in the probe (in expectation), while
/// checking 2 000 rows by primary key stays within a few milliseconds at 1 M cases.
const SEARCH_PROBE: i64 = 2000;

/// Builds the WHERE clause of a filter; `params` receives the values.
fn where_clause(f: &LedgerFilter, now: DateTime<Utc>, params: &mut Vec<Box<dyn ToSql + Sync + Send>>) -> String {
    let mut clauses: Vec<String> = Vec::new();
    let mut push = |sql: &str, v: Box<dyn ToSql + Sync + Send>, params: &mut Vec<Box<dyn ToSql + Sync + Send>>| {
        params.push(v);
        clauses.push(sql.replace('?', &format!("${}", params.len())));
    };
    if let Some(v) = &f.status {
        push("status = ?", Box::new(v.clone()), params);
    }
    if let Some(v) = &f.receipt_code {
        push("receipt_code = ?", Box::new(v.clone()), params);
    }
    if let Some(v) = &f.kind {
        push("kind = ?", Box::new(v.clone()), params);
    }
    if let Some(v) = &f.channel {
        push("channel = ?", Box::new(v.clone()), params);
    }
    if let Some(v) = &f.urgency {
        push("urgency = ?", Box::new(v.clone()), params);
    }
    if let Some(v) = f.category_id {
        push("category_id = ?", Box::new(v), params);
    }
    if let Some(v) = f.village_id {
        push("village_id = ?", Box::new(v), params);
    }
    if let Some(v) = f.unit_id {
        push("unit_id = ?", Box::new(v), params);
    }
    if let Some(v) = f.scope_unit {
        push(&scope_sql_placeholders(), Box::new(v), params);
    }
    if let Some(v) = f.escalated {
        push("escalated = ?", Box::new(v), params);
    }
    if let Some(v) = f.campaign_id {
        push("campaign_id = ?", Box::new(v), params);
    }
    if let Some(v) = &f.campaign_phase {
        push("campaign_phase = ?", Box::new(v.clone()), params);
    }
    if let Some(v) = &f.source_type {
        push("source_type = ?", Box::new(v.clone()), params);
    }
    if let Some(v) = f.source_id {
        push("source_id = ?", Box::new(v), params);
    }
    match f.overdue {
        Some(true) => push("next_due_at < ?", Box::new(now), params),
        Some(false) => push("(next_due_at IS NULL OR next_due_at >= ?)", Box::new(now), params),
        None => {}
    }
    if let Some(v) = f.received_from {
        push("received_at >= ?", Box::new(v), params);
    }
    if let Some(v) = f.received_to {
        push("received_at < ?", Box::new(v), params);
    }
    if let Some(q) = &f.q {
        // A query without a letter or a digit finds nothing (an empty tsquery matches no row).
        let tsq = crate::search::tsquery_text(q).unwrap_or_default();
        push("search @@ ?::text::tsquery", Box::new(tsq), params);
    }
    if clauses.is_empty() { "TRUE".into() } else { clauses.join(" AND ") }
}

/// Counts of one unit and stage in the overdue view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WatchCount {
    /// The unit (none while waiting to be assigned).
    pub unit_id: Option<Uuid>,
    /// The stage.
    pub stage: String,
    /// Past the deadline.
    pub overdue: i64,
    /// At least 80 % of the time used, not yet overdue.
    pub due_soon_80: i64,
    /// At least 60 % and under 80 % of the time used.
    pub due_soon_60: i64,
}

/// Counts of the ledger by one dimension.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// All cases in the range.
    pub total: i64,
    /// By status.
    pub by_status: Vec<(String, i64)>,
    /// By kind.
    pub by_kind: Vec<(String, i64)>,
    /// By channel.
    pub by_channel: Vec<(String, i64)>,
    /// By category (none = unclassified).
    pub by_category: Vec<(Option<Uuid>, i64)>,
    /// By village.
    pub by_village: Vec<(Option<Uuid>, i64)>,
    /// By responsible unit.
    pub by_unit: Vec<(Option<Uuid>, i64)>,
}

/// Reads the ledger.
#[derive(Clone)]
pub struct Ledger {
    pool: Pool,
    search_probe: i64,
}

impl Ledger {
    /// The ledger on a pool.
    pub fn new(pool: Pool) -> Self {
        Self { pool, search_probe: SEARCH_PROBE }
    }

    /// The same ledger with a search probe of `rows` rows instead of [`SEARCH_PROBE`] (tests use a
    /// small one to reach both steps of a search with a few cases).
    pub fn with_search_probe(self, rows: i64) -> Self {
        Self { search_probe: rows.max(0), ..self }
    }

    /// One page of the filtered ledger, after `after`, at most `limit` rows.
    ///
    /// A search (`filter.q`) takes up to two steps, because no single plan is fast for both common
    /// and rare words, and the planner cannot tell them apart (a prefix, or two common characters
    /// that rarely meet, look common to it):
    /// 1. the probe walks the newest [`SEARCH_PROBE`] (2 000) rows that pass the other filters, in the
    ///    page's order (an index-only scan), and checks each one's search words by primary key; a
    ///    word in one case of a hundred fills a page here and stops early;
    /// 2. when the probe found less than a page, the matches are read from the search index
    ///    (with the village index, when filtered by village) and sorted: exact, and fast when
    ///    few cases match.
    ///
    /// Errors: [`StoreError`] from the pool or the database.
    pub async fn page(
        &self,
        filter: &LedgerFilter,
        sort: LedgerSort,
        after: Option<LedgerCursor>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let (key, order, cmp) = match sort {
            LedgerSort::ReceivedDesc => ("received_at", "DESC", "<"),
            LedgerSort::ReceivedAsc => ("received_at", "ASC", ">"),
            LedgerSort::DueAsc => ("due_at", "ASC", ">"),
            LedgerSort::DueDesc => ("due_at", "DESC", "<"),
        };
        // The filter's WHERE clause (without the search words), the sort's and the cursor's.
        let unsearched = LedgerFilter { q: None, ..filter.clone() };
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut sql_where = where_clause(&unsearched, now, &mut params);
        if matches!(sort, LedgerSort::DueAsc | LedgerSort::DueDesc) {
            sql_where.push_str(" AND due_at IS NOT NULL");
        }
        if let Some(c) = after {
            params.push(Box::new(c.key));
            params.push(Box::new(c.id));
            sql_where.push_str(&format!(" AND ({key}, case_id) {cmp} (${}, ${})", params.len() - 1, params.len()));
        }
        params.push(Box::new(limit));
        let limit_param = params.len();
        let mut client = self.pool.get().await?;
        let Some(q) = &filter.q else {
            // The page is chosen first, from the sort key's index alone where the filter's
            // columns are in it (an index-only walk: the received-date index carries status,
            // kind, channel, category, village, unit, urgency, escalation and deadline), and only
            // its rows are then read by primary key and turned into JSON. A plain index scan
            // would fetch every walked row from the heap to test the filter.
            let sql = format!(
                "SELECT {ROW_JSON} FROM (SELECT l.* FROM \
                   (SELECT case_id, {key} AS k FROM ledger WHERE {sql_where} \
                    ORDER BY {key} {order}, case_id {order} LIMIT ${limit_param}) w \
                   CROSS JOIN LATERAL (SELECT * FROM ledger x WHERE x.case_id = w.case_id OFFSET 0) l \
                   ORDER BY w.k {order}, w.case_id {order}) l \
                 ORDER BY {key} {order}, case_id {order}"
            );
            let stmt = client.prepare_cached(&sql).await?;
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
            return client.query(&stmt, &refs).await?.iter().map(LedgerRow::from_row).collect();
        };
        // A query without a letter or a digit finds nothing (an empty tsquery matches no row).
        params.push(Box::new(crate::search::tsquery_text(q).unwrap_or_default()));
        let tsq_param = params.len();
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let tx = client.transaction().await?;
        // 1. The probe: for each walked row in order, its search words are checked by primary key
        // (a LATERAL subquery behind OFFSET 0, which the planner can neither flatten nor turn
        // into a join that materialises one side), and the walk stops after a page.
        let probe_rows = self.search_probe;
        let probe = format!(
            "SELECT {ROW_JSON} FROM (SELECT l.* FROM \
               (SELECT case_id, {key} AS k FROM ledger WHERE {sql_where} \
                ORDER BY {key} {order}, case_id {order} LIMIT {probe_rows}) w \
               CROSS JOIN LATERAL (SELECT * FROM ledger x \
                 WHERE x.case_id = w.case_id AND x.search @@ ${tsq_param}::text::tsquery OFFSET 0) l \
               ORDER BY w.k {order}, w.case_id {order} LIMIT ${limit_param}) l \
             ORDER BY {key} {order}, case_id {order}"
        );
        let rows = tx.query(probe.as_str(), &refs).await?;
        if rows.len() as i64 >= limit {
            tx.commit().await?;
            return rows.iter().map(LedgerRow::from_row).collect();
        }
        // 2. Every match, from the search index, sorted.
        tx.batch_execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = off").await?;
        let exact = format!(
            "SELECT {ROW_JSON} FROM (SELECT * FROM ledger WHERE {sql_where} AND search @@ ${tsq_param}::text::tsquery \
             ORDER BY {key} {order}, case_id {order} LIMIT ${limit_param}) l ORDER BY {key} {order}, case_id {order}"
        );
        let rows = tx.query(exact.as_str(), &refs).await?;
        tx.commit().await?;
        rows.iter().map(LedgerRow::from_row).collect()
    }

    /// One ledger row.
    pub async fn row(&self, case_id: CaseId) -> Result<Option<LedgerRow>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&format!("SELECT {ROW_JSON} FROM ledger l WHERE case_id = $1")).await?;
        client.query_opt(&stmt, &[&case_id.as_uuid()]).await?.as_ref().map(LedgerRow::from_row).transpose()
    }

    /// The units accused by the cases linked to `case` as duplicates.
    pub async fn accused_by_duplicates_of(&self, case: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT DISTINCT accused_unit_id FROM ledger WHERE duplicate_of = $1 AND accused_unit_id IS NOT NULL",
            )
            .await?;
        Ok(client.query(&stmt, &[&case]).await?.iter().map(|r| r.get(0)).collect())
    }

    /// The open cases whose working-day clocks a change to the calendar of `years` may move:
    /// those flagged as counted into a missing year, and those with a clock that runs through one
    /// of the years (all flagged ones when `years` is empty).
    ///
    /// With no year (what every instance asks at start) only the flagged cases are read, through
    /// their partial index: the statement for years reads every open case (seconds at 1 M cases).
    pub async fn cases_for_calendar(&self, years: &[i32]) -> Result<Vec<Uuid>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(calendar_sql(years)).await?;
        Ok(client.query(&stmt, &[&years]).await?.iter().map(|r| r.get(0)).collect())
    }

    /// The open cases a unit leads (`lead`) or co-handles: what deactivating it would strand.
    pub async fn open_cases_of_unit(&self, unit: Uuid) -> Result<Vec<(Uuid, bool, String)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT case_id, unit_id = $1, status FROM ledger \
                 WHERE (unit_id = $1 OR co_unit_ids @> ARRAY[$1]::uuid[]) AND status IN ('assigned', 'handled') \
                 ORDER BY received_at",
            )
            .await?;
        Ok(client
            .query(&stmt, &[&unit])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get::<_, Option<bool>>(1).unwrap_or(false), r.get(2)))
            .collect())
    }

    /// Open cases that a deactivated unit still leads or co-handles (an assignment that raced
    /// the deactivation): `(case, the inactive lead unit if it leads, the inactive co-units)`.
    ///
    /// Asked every 15 s by every instance: with no unit deactivated the ledger is not read at
    /// all; with some, only their open cases are, through `ledger_open_unit_idx` (V39) and the
    /// co-units' GIN index ([`STRANDED_SQL`]).
    pub async fn cases_at_inactive_units(&self) -> Result<Vec<(Uuid, Option<Uuid>, Vec<Uuid>)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached("SELECT coalesce(array_agg(id), '{}') FROM units WHERE NOT active").await?;
        let gone: Vec<Uuid> = client.query_one(&stmt, &[]).await?.get(0);
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        let stmt = client.prepare_cached(STRANDED_SQL).await?;
        Ok(client.query(&stmt, &[&gone]).await?.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }

    /// Which of `ids` a handler of `unit` may see now (see `scope_sql`).
    pub async fn cases_of_unit(&self, ids: &[Uuid], unit: Option<Uuid>) -> Result<Vec<Uuid>, StoreError> {
        let Some(unit) = unit else { return Ok(Vec::new()) };
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT case_id FROM ledger WHERE case_id = ANY($1) AND {}", scope_sql(2)))
            .await?;
        Ok(client.query(&stmt, &[&ids, &unit]).await?.iter().map(|r| r.get(0)).collect())
    }

    /// Moves the deadline crossings (V38) that passed more than an hour ago into the overdue
    /// view's totals (`deadline_crossings_compact()`, 50,000 at a time until none is left);
    /// returns how many it moved. The counts are exact either way (they read the crossings not
    /// yet moved); this keeps what they read small. When another compaction runs at the same
    /// moment, this one returns 0.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn compact_deadline_crossings(&self) -> Result<u64, StoreError> {
        crate::db::compact_until_done(&self.pool, "SELECT deadline_crossings_compact($1)").await
    }

    /// Cases past a deadline or with at least 60 % of its time used, soonest deadline first,
    /// optionally of one unit; and the counts per unit and stage of every running clock (a
    /// stage's, the acknowledgement's, the overall one): overdue, 80 % and 60 % of its time used.
    ///
    /// The counts come from V38's deadline crossings, so they cost what the units and stages
    /// cost, not the open cases; `now` must be no more than an hour behind the database's clock
    /// (crossings an hour old are compacted into totals).
    pub async fn watch(
        &self,
        scope_unit: Option<Uuid>,
        now: DateTime<Utc>,
        after: Option<LedgerCursor>,
        limit: i64,
    ) -> Result<(Vec<LedgerRow>, Vec<WatchCount>), StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&watch_page_sql(scope_unit.is_some())).await?;
        let (k, id) = after.map_or((DateTime::<Utc>::UNIX_EPOCH, Uuid::nil()), |c| (c.key, c.id));
        let rows = client.query(&stmt, &[&now, &scope_unit, &k, &id, &limit]).await?;
        // Every running clock counts, not only the one that falls due first: the stage's (unless
        // paused), the acknowledgement's and the overall clock, each under the case's unit and
        // its stage (the API books intake stages to the intake). V38's crossings, compacted and
        // not yet, that have passed by `now`, as everyone sees them or as the unit's handlers
        // do: a row per unit, stage and share, whose three counts become the view's by difference.
        let stmt = client
            .prepare_cached(
                "SELECT unit_id, stage, share, sum(n)::bigint FROM ( \
                   SELECT unit_id, stage, share, n FROM deadline_crossed WHERE seen_by IS NOT DISTINCT FROM $2 \
                   UNION ALL \
                   SELECT unit_id, stage, share, n FROM deadline_crossings \
                    WHERE at <= $1 AND (share < 100 OR at < $1) AND seen_by IS NOT DISTINCT FROM $2) AS c \
                 GROUP BY 1, 2, 3",
            )
            .await?;
        let mut crossed: std::collections::BTreeMap<(Option<Uuid>, String), [i64; 3]> = Default::default();
        for r in client.query(&stmt, &[&now, &scope_unit]).await? {
            let i = match r.get::<_, i16>(2) {
                60 => 0,
                80 => 1,
                _ => 2,
            };
            crossed.entry((r.get(0), r.get(1))).or_default()[i] += r.get::<_, i64>(3);
        }
        let merged = crossed.into_iter().map(|(key, [c60, c80, c100])| (key, [c100, c80 - c100, c60 - c80]));
        let mut counts: Vec<WatchCount> = merged
            .filter(|(_, n)| n.iter().any(|x| *x > 0))
            .map(|((unit_id, stage), [overdue, due_soon_80, due_soon_60])| WatchCount {
                unit_id,
                stage,
                overdue,
                due_soon_80,
                due_soon_60,
            })
            .collect();
        counts.sort_by_key(|c| std::cmp::Reverse((c.overdue, c.due_soon_80)));
        Ok((rows.iter().map(LedgerRow::from_row).collect::<Result<_, _>>()?, counts))
    }

    /// Counts by status, kind, channel, category, village and unit, for cases received in
    /// `[from, to)`.
    ///
    /// Unscoped (and not filtered by a campaign's phase), the whole China days of the period are
    /// read from the case rollup (V31: per day, campaign, kind and key, with the changes not yet
    /// compacted) and only its first and last partial day from the ledger, so a year costs what
    /// its 365 days of rollup rows cost, not its cases. A handler's scope (the co-units and the
    /// accused unit, from the heap) or a phase reads the ledger: one index-only scan grouped by
    /// all six columns at once (in parallel where the server can). Both parts are read in one
    /// snapshot.
    pub async fn stats(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        scope_unit: Option<Uuid>,
        campaign: &CampaignFilter,
    ) -> Result<Stats, StoreError> {
        let mut client = self.pool.get().await?;
        let tx =
            client.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead).start().await?;
        // The tables first, before anything takes the snapshot: a rebuild's switch-over that
        // commits while this waits is then seen whole (its new tables and their rows), not
        // through an older snapshot that shows an emptied change log. Then settings local to
        // this transaction: the pooled connection goes back with its defaults.
        tx.batch_execute(
            "LOCK TABLE ledger, case_rollup, case_changes IN ACCESS SHARE MODE; \
             SELECT set_config('work_mem', '64MB', true), set_config('parallel_setup_cost', '0', true), \
                    set_config('parallel_tuple_cost', '0', true), set_config('min_parallel_index_scan_size', '0', true)",
        )
        .await?;
        let mut acc = StatsAcc::default();
        let whole_days =
            (scope_unit.is_none() && campaign.campaign_phase.is_none()).then(|| whole_china_days(from, to)).flatten();
        match whole_days {
            Some((first, end)) => {
                let (start_at, end_at) =
                    (domain::calendar::start_of_local_day(first), domain::calendar::start_of_local_day(end));
                for (lo, hi) in [(from, start_at), (end_at, to)] {
                    if lo < hi {
                        stats_scan(&tx, lo, hi, None, campaign, &mut acc).await?;
                    }
                }
                let sql = format!(
                    "SELECT r.kind, r.term, r.a, sum(r.n)::bigint FROM ({}) AS r \
                     WHERE r.kind IN ('status', 'kind', 'channel', 'category', 'village', 'unit') \
                       AND r.day >= $1 AND r.day < $2 AND ($3::uuid IS NULL OR r.campaign_id = $3) \
                     GROUP BY 1, 2, 3 HAVING sum(r.n) <> 0",
                    crate::analysis::CASE_ROLLUP_SOURCE
                );
                let stmt = tx.prepare_cached(&sql).await?;
                for r in tx.query(&stmt, &[&first, &end, &campaign.campaign_id]).await? {
                    let (kind, term, key, n): (String, Option<String>, Option<Uuid>, i64) =
                        (r.get(0), r.get(1), r.get(2), r.get(3));
                    acc.add_rolled(&kind, term, key, n);
                }
            }
            None => stats_scan(&tx, from, to, scope_unit, campaign, &mut acc).await?,
        }
        tx.commit().await?;
        Ok(acc.finish())
    }
}

/// The whole China days inside `[from, to)`: the first, and the day after the last; `None` when
/// there is none.
fn whole_china_days(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<(chrono::NaiveDate, chrono::NaiveDate)> {
    let day = domain::records::china_day(from);
    let first = if domain::calendar::start_of_local_day(day) == from { day } else { day.succ_opt()? };
    let end = domain::records::china_day(to);
    (first < end).then_some((first, end))
}

/// The statistics' counts as they are added up.
#[derive(Default)]
struct StatsAcc {
    total: i64,
    by_status: HashMap<String, i64>,
    by_kind: HashMap<String, i64>,
    by_channel: HashMap<String, i64>,
    by_category: HashMap<Option<Uuid>, i64>,
    by_village: HashMap<Option<Uuid>, i64>,
    by_unit: HashMap<Option<Uuid>, i64>,
}

impl StatsAcc {
    /// A row of the case rollup: `kind` names the dimension, its key in `term` (status, kind,
    /// channel) or `key` (category, village, unit). Every case has a status: those rows make the
    /// total.
    fn add_rolled(&mut self, kind: &str, term: Option<String>, key: Option<Uuid>, n: i64) {
        let term = term.unwrap_or_default();
        match kind {
            "status" => {
                self.total += n;
                *self.by_status.entry(term).or_default() += n;
            }
            "kind" => *self.by_kind.entry(term).or_default() += n,
            "channel" => *self.by_channel.entry(term).or_default() += n,
            "category" => *self.by_category.entry(key).or_default() += n,
            "village" => *self.by_village.entry(key).or_default() += n,
            "unit" => *self.by_unit.entry(key).or_default() += n,
            _ => {}
        }
    }

    fn finish(self) -> Stats {
        fn sorted<K: Ord>(m: HashMap<K, i64>) -> Vec<(K, i64)> {
            let mut v: Vec<_> = m.into_iter().filter(|(_, n)| *n != 0).collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            v
        }
        Stats {
            total: self.total,
            by_status: sorted(self.by_status),
            by_kind: sorted(self.by_kind),
            by_channel: sorted(self.by_channel),
            by_category: sorted(self.by_category),
            by_village: sorted(self.by_village),
            by_unit: sorted(self.by_unit),
        }
    }
}

/// Adds the ledger's cases received in `[from, to)` (in `scope_unit`'s scope, of `campaign`) to
/// `acc`: one scan grouped by all six columns (index-only when unscoped).
async fn stats_scan(
    tx: &deadpool_postgres::Transaction<'_>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    scope_unit: Option<Uuid>,
    campaign: &CampaignFilter,
    acc: &mut StatsAcc,
) -> Result<(), StoreError> {
    // Unscoped, the scan reads only the received-date index's INCLUDE columns (index-only);
    // a handler's scope also needs the co-units and the accused unit, from the heap, and a
    // campaign filter its columns.
    let mut sql = String::from(
        "SELECT status, kind, channel, category_id, village_id, unit_id, count(*) FROM ledger \
         WHERE received_at >= $1 AND received_at < $2",
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &to];
    if let Some(unit) = &scope_unit {
        params.push(unit);
        sql.push_str(&format!(" AND {}", scope_sql(params.len())));
    }
    if let Some(c) = &campaign.campaign_id {
        params.push(c);
        sql.push_str(&format!(" AND campaign_id = ${}", params.len()));
    }
    if let Some(p) = &campaign.campaign_phase {
        params.push(p);
        sql.push_str(&format!(" AND campaign_phase = ${}", params.len()));
    }
    sql.push_str(" GROUP BY 1, 2, 3, 4, 5, 6");
    let stmt = tx.prepare_cached(&sql).await?;
    for r in tx.query(&stmt, &params).await? {
        let n: i64 = r.get(6);
        acc.total += n;
        *acc.by_status.entry(r.get(0)).or_default() += n;
        *acc.by_kind.entry(r.get(1)).or_default() += n;
        *acc.by_channel.entry(r.get(2)).or_default() += n;
        *acc.by_category.entry(r.get(3)).or_default() += n;
        *acc.by_village.entry(r.get(4)).or_default() += n;
        *acc.by_unit.entry(r.get(5)).or_default() += n;
    }
    Ok(())
}

/// What a fold of the whole log found.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct FoldStats {
    /// Cases folded.
    pub cases: u64,
    /// Events read.
    pub events: u64,
}

/// Streams every event of the log in insertion order inside `tx` (a repeatable-read snapshot) and
/// hands the final state of each case to `sink`, in batches. A case's state is dropped as soon as
/// it reaches its last version, so memory holds only cases whose events interleave.
async fn fold_final_states(
    client: &impl tokio_postgres::GenericClient,
    batch: usize,
    mut sink: impl AsyncFnMut(Vec<Case>) -> Result<(), StoreError>,
) -> Result<FoldStats, StoreError> {
    let last_versions: HashMap<Uuid, i32> = client
        .query("SELECT case_id, max(version) FROM events GROUP BY case_id", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let stream = client
        .query_raw(
            "SELECT position, case_id, version, event_type, schema_version, payload, metadata, occurred_at, recorded_at, \
                    tx_id::text::bigint, prev_hash, hash FROM events ORDER BY position",
            std::iter::empty::<i32>(),
        )
        .await?;
    pin_mut!(stream);
    let mut pending: HashMap<Uuid, Vec<StoredEvent>> = HashMap::new();
    let mut out = Vec::with_capacity(batch);
    let mut stats = FoldStats::default();
    while let Some(row) = stream.next().await {
        let e = StoredEvent::from_row(&row?)?;
        stats.events += 1;
        let case_id = e.case_id;
        let last = last_versions.get(&case_id).copied().unwrap_or(0);
        let done = i32::try_from(e.version).unwrap_or(i32::MAX) >= last;
        let entry = pending.entry(case_id).or_default();
        entry.push(e);
        if done {
            let mut events = pending.remove(&case_id).unwrap_or_default();
            events.sort_by_key(|e| e.version);
            if let Some(case) = fold(CaseId::from_uuid(case_id), &events)? {
                out.push(case);
                stats.cases += 1;
            }
            if out.len() >= batch {
                sink(std::mem::take(&mut out)).await?;
            }
        }
    }
    if !out.is_empty() {
        sink(out).await?;
    }
    Ok(stats)
}

/// `SELECT` of the KPI facts (V24's `kpi_facts_of()`) of the rows `l` of a ledger table, to which
/// a caller may add `WHERE …`.
pub(crate) fn kpi_facts_select(table: &str) -> String {
    format!(
        "SELECT k.* FROM {table} l CROSS JOIN LATERAL kpi_facts_of(l.case_id, l.village_id, l.category_id, \
         l.channel, l.campaign_id, l.received_at, l.facts) AS k"
    )
}

/// Writes rows into a ledger table by column name (`table` has the ledger's shape); with
/// `replace`, rows of the same cases are deleted first (the rebuild's catch-up).
/// Writes the rows of `cases` into `table` (the live `ledger` or the rebuild's copy), replacing
/// any row of the same case when `replace`.
pub(crate) async fn insert_rows(
    client: &impl tokio_postgres::GenericClient,
    table: &str,
    cases: &[Case],
    replace: bool,
) -> Result<(), StoreError> {
    let rows: Vec<serde_json::Value> = cases.iter().map(|c| LedgerRow::from_case(c, true).to_json()).collect();
    if replace {
        let ids: Vec<Uuid> = cases.iter().map(|c| c.id.as_uuid()).collect();
        client.execute(&format!("DELETE FROM {table} WHERE case_id = ANY($1)"), &[&ids]).await?;
    }
    let sql = format!("INSERT INTO {table} SELECT * FROM jsonb_populate_recordset(NULL::{table}, $1::jsonb)");
    client.execute(&sql, &[&serde_json::Value::Array(rows)]).await?;
    Ok(())
}

async fn connect(settings: &DbSettings) -> Result<Client, StoreError> {
    let (client, conn) = settings.pg_config()?.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::warn!(error = %e, "connection ended");
        }
    });
    Ok(client)
}

/// What a rebuild did.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    /// Cases and events folded.
    pub folded: FoldStats,
    /// Cases caught up after the bulk load (written while the rebuild ran).
    pub caught_up: u64,
    /// Seconds from start to switch-over.
    pub seconds: f64,
    /// Each phase and its seconds, in order (together `seconds`): the set-up, the fold and the
    /// ledger's fill, the ledger's keys and indexes, the KPI facts, the analysis rollups, the
    /// deadline crossings, the switch-over.
    pub phases: Vec<(&'static str, f64)>,
}

/// The phases of a rebuild as they end, each with its seconds.
struct Phases(Vec<(&'static str, f64)>, Instant);

impl Phases {
    fn done(&mut self, name: &'static str) {
        self.0.push((name, self.1.elapsed().as_secs_f64()));
        self.1 = Instant::now();
    }
}

impl RebuildReport {
    /// The phases as one line: `set-up 0.0 s; fold and fill the ledger 319.3 s; …`.
    pub fn phases_line(&self) -> String {
        let phases: Vec<String> = self.phases.iter().map(|(name, s)| format!("{name} {s:.1} s")).collect();
        phases.join("; ")
    }

    /// Events folded per second.
    pub fn events_per_second(&self) -> f64 {
        self.folded.events as f64 / self.seconds.max(1e-9)
    }
}

/// The keys and indexes of a live projection table (the ledger, the KPI facts, the rollups), as
/// the migrations made them, for the rebuild to make the same on `<table>_rebuild` once it is
/// filled (names prefixed `<table>_rebuild_` instead of `<table>_`), and to give them back their
/// live names at the switch-over.
struct TableIndexes {
    table: &'static str,
    /// `(name, definition)` of each primary-key or unique constraint, e.g.
    /// `("ledger_pkey", "PRIMARY KEY (case_id)")`.
    constraints: Vec<(String, String)>,
    /// `(name, CREATE INDEX statement)` of every other index.
    indexes: Vec<(String, String)>,
}

impl TableIndexes {
    async fn read(client: &tokio_postgres::Client, table: &'static str) -> Result<Self, StoreError> {
        let constraints = client
            .query(
                "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
                 WHERE conrelid = $1::text::regclass AND contype IN ('p', 'u') ORDER BY conname",
                &[&table],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let indexes = client
            .query(
                "SELECT c.relname::text, pg_get_indexdef(i.indexrelid) FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE i.indrelid = $1::text::regclass \
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) \
                 ORDER BY c.relname",
                &[&table],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        Ok(Self { table, constraints, indexes })
    }

    /// `<table>_x` → `<table>_rebuild_x`.
    fn rebuild_name(&self, name: &str) -> String {
        let rest = name.strip_prefix(self.table).and_then(|r| r.strip_prefix('_')).unwrap_or(name);
        format!("{}_rebuild_{rest}", self.table)
    }

    /// Creates the keys and indexes on `<table>_rebuild`.
    fn create_sql(&self) -> String {
        let t = self.table;
        let mut sql = String::new();
        for (name, def) in &self.constraints {
            sql.push_str(&format!("ALTER TABLE {t}_rebuild ADD CONSTRAINT {} {def}; ", self.rebuild_name(name)));
        }
        for (name, def) in &self.indexes {
            // pg_get_indexdef: `CREATE INDEX <name> ON <schema>.<table> USING ...`.
            let (head, tail) = def.split_once(" USING ").unwrap_or((def, ""));
            let on = head.rsplit_once(" ON ").map_or("", |(_, on)| on);
            let table =
                on.rsplit_once('.').map_or(format!("{t}_rebuild"), |(schema, _)| format!("{schema}.{t}_rebuild"));
            let unique = if head.starts_with("CREATE UNIQUE") { "UNIQUE " } else { "" };
            sql.push_str(&format!("CREATE {unique}INDEX {} ON {table} USING {tail}; ", self.rebuild_name(name)));
        }
        sql
    }

    /// Gives the new table (renamed to `<table>`) its keys' and indexes' live names.
    fn rename_sql(&self) -> String {
        let t = self.table;
        let mut sql = String::new();
        for (name, _) in &self.constraints {
            sql.push_str(&format!("ALTER TABLE {t} RENAME CONSTRAINT {} TO {name}; ", self.rebuild_name(name)));
        }
        for (name, _) in &self.indexes {
            sql.push_str(&format!("ALTER INDEX {} RENAME TO {name}; ", self.rebuild_name(name)));
        }
        sql
    }
}

/// V38's `deadline_crossings_of()` called on the ledger row `l`: the crossings of its running
/// clocks, as everyone and as each unit that sees it does.
const CROSSINGS_OF_L: &str = "deadline_crossings_of(l.unit_id, l.co_unit_ids, l.accused_unit_id, l.deadline_stage, \
     l.started_at, l.due_at, l.paused, l.received_at, l.ack_due_at, l.accepted_at, l.overall_due_at)";

/// Rebuilds the ledger when a migration marked it due (`projection_rebuilds_due`: a migration
/// that adds a column computed from the events, such as V21's KPI facts, cannot compute it in
/// SQL), then clears the mark. One instance does it (a session advisory lock); the others, and a
/// database with nothing due, return `None` at once. Any [`rebuild`] clears the mark.
///
/// # Errors
/// [`StoreError`] when the database or the rebuild fails; the mark stays, for the next start.
pub async fn rebuild_if_due(owner: &DbSettings) -> Result<Option<RebuildReport>, StoreError> {
    const LOCK: i64 = 0x4855_4959_4e52_4244; // "HUIYNRBD"
    let client = connect(owner).await?;
    let due = client.query_opt("SELECT reason FROM projection_rebuilds_due WHERE projection = 'ledger'", &[]).await?;
    if due.is_none() {
        return Ok(None);
    }
    let locked: bool = client.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK]).await?.get(0);
    if !locked {
        return Ok(None);
    }
    let still_due =
        client.query_opt("SELECT reason FROM projection_rebuilds_due WHERE projection = 'ledger'", &[]).await?;
    let report = match still_due {
        // The rebuild clears the mark in its switch-over's transaction.
        Some(_) => Some(rebuild(owner).await?),
        None => None,
    };
    client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK]).await?;
    Ok(report)
}

/// `work_mem` of the rollups' fill in a rebuild: its hash aggregate holds one entry per rollup
/// row (some 4 million at a million cases), and one that spills to disk runs several times
/// slower. Only the rebuild's own session uses it, up to twice this (PostgreSQL's
/// `hash_mem_multiplier`): a database server for a million cases needs that much memory free
/// while a rebuild runs.
const ROLLUP_FILL_WORK_MEM: &str = "1GB";

/// Rebuilds the ledger from the log into a fresh table and switches over while the service runs
/// (needs the schema owner's connection, which may create and rename tables).
///
/// 1. In a repeatable-read snapshot, fold every case and bulk-insert the rows into
///    `ledger_rebuild`; build its indexes.
/// 2. Lock the live ledger against writes (appends wait; reads go on), fold again the cases with
///    events the snapshot did not see (`pg_visible_in_snapshot`), drop the old table and rename
///    the new one in, in one transaction. Appends that waited then write to the new table.
pub async fn rebuild(owner: &DbSettings) -> Result<RebuildReport, StoreError> {
    let started = Instant::now();
    let writer = connect(owner).await?;
    let mut reader = connect(owner).await?;
    writer
        .batch_execute(
            "SET statement_timeout = 0; DROP TABLE IF EXISTS ledger_rebuild; \
             CREATE TABLE ledger_rebuild (LIKE ledger INCLUDING DEFAULTS INCLUDING CONSTRAINTS) WITH (fillfactor = 70);",
        )
        .await?;
    reader.batch_execute("SET statement_timeout = 0").await?;
    let mut phases = Phases(Vec::new(), started);
    phases.done("set-up");
    let tx = reader.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?;
    let snapshot: String = tx.query_one("SELECT pg_current_snapshot()::text", &[]).await?.get(0);
    // The fold (this task: decoding and folding events) and the fill (a task of its own with a
    // connection of its own: encoding the rows, PostgreSQL inserting them) overlap, a few batches
    // apart, so on a runtime with two workers (the CLI's) each uses one of the cores.
    let (to_fill, mut batches) = tokio::sync::mpsc::channel::<Vec<Case>>(4);
    let filler = connect(owner).await?;
    let fill = tokio::spawn(async move {
        filler.batch_execute("SET statement_timeout = 0").await?;
        while let Some(cases) = batches.recv().await {
            insert_rows(&filler, "ledger_rebuild", &cases, false).await?;
        }
        Ok::<_, StoreError>(())
    });
    let folded = fold_final_states(&tx, 2000, async |cases: Vec<Case>| {
        // A closed channel means the fill failed: the fold stops, and the fill's error is the
        // one reported, below.
        to_fill.send(cases).await.map_err(|_| StoreError::Vault("the ledger's fill stopped"))
    })
    .await;
    drop(to_fill);
    fill.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))?;
    let folded = folded?;
    tx.commit().await?;
    phases.done("fold and fill the ledger");
    // Each table is filled bare, then given the live table's keys and indexes (the migrations
    // define them) under names of its own, renamed back at the switch-over: a bulk index build
    // sorts once, where inserting into built indexes walks them row by row.
    let copies = TableIndexes::read(&writer, "ledger").await?;
    writer.batch_execute(&copies.create_sql()).await?;
    // Sets the visibility map, so index-only scans need no heap visits from the first query.
    writer.batch_execute("VACUUM (ANALYZE) ledger_rebuild").await?;
    phases.done("the ledger's keys and indexes");
    // The KPI facts of the new rows, beside them (V24), swapped with them.
    let facts = TableIndexes::read(&writer, "kpi_facts").await?;
    writer
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS kpi_facts_rebuild; \
             CREATE TABLE kpi_facts_rebuild (LIKE kpi_facts INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
             INSERT INTO kpi_facts_rebuild {}; {}",
            kpi_facts_select("ledger_rebuild"),
            facts.create_sql()
        ))
        .await?;
    writer.batch_execute("VACUUM (ANALYZE) kpi_facts_rebuild").await?;
    phases.done("the KPI facts");
    // The analysis rollups of the new rows (V25), beside them; at the switch-over the live
    // change logs (relative to the old rollups) are emptied and only the late cases' changes are
    // logged, relative to these. The fill aggregates some 16 rows per fact in memory.
    let kpi_rollup = TableIndexes::read(&writer, "kpi_rollup").await?;
    let case_rollup = TableIndexes::read(&writer, "case_rollup").await?;
    writer
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS kpi_rollup_rebuild, case_rollup_rebuild; \
             CREATE TABLE kpi_rollup_rebuild (LIKE kpi_rollup INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
             CREATE TABLE case_rollup_rebuild (LIKE case_rollup INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
             SET work_mem = '{ROLLUP_FILL_WORK_MEM}'; \
             SELECT rollups_fill('kpi_facts_rebuild', 'ledger_rebuild', 'kpi_rollup_rebuild', 'case_rollup_rebuild'); \
             RESET work_mem; {} {}",
            kpi_rollup.create_sql(),
            case_rollup.create_sql()
        ))
        .await?;
    writer.batch_execute("VACUUM (ANALYZE) kpi_rollup_rebuild").await?;
    writer.batch_execute("VACUUM (ANALYZE) case_rollup_rebuild").await?;
    phases.done("the analysis rollups");
    // The overdue view's deadline crossings (V38) of the new rows, beside them; the late cases'
    // crossings are logged at the switch-over, relative to these.
    let crossings = TableIndexes::read(&writer, "deadline_crossings").await?;
    let crossed = TableIndexes::read(&writer, "deadline_crossed").await?;
    writer
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS deadline_crossings_rebuild, deadline_crossed_rebuild; \
             CREATE TABLE deadline_crossings_rebuild (LIKE deadline_crossings INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
             CREATE TABLE deadline_crossed_rebuild (LIKE deadline_crossed INCLUDING DEFAULTS INCLUDING CONSTRAINTS); \
             SELECT deadline_crossings_fill('ledger_rebuild', 'deadline_crossings_rebuild', 'deadline_crossed_rebuild'); \
             {} {} ANALYZE deadline_crossings_rebuild; ANALYZE deadline_crossed_rebuild;",
            crossings.create_sql(),
            crossed.create_sql()
        ))
        .await?;
    phases.done("the deadline crossings");

    // Switch-over: one short transaction while appends and reads wait. ACCESS EXCLUSIVE from the
    // start, not EXCLUSIVE: an append that reads the ledger under a case's lock before writing
    // it (a duplicate link, a hand-over) would otherwise hold ACCESS SHARE while waiting for
    // ROW EXCLUSIVE, and the DROP below, waiting for that ACCESS SHARE, would close the cycle.
    writer.batch_execute("BEGIN; LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE;").await?;
    let result = async {
        writer.batch_execute("TRUNCATE kpi_fact_changes, case_changes").await?;
        let late: Vec<Uuid> = writer
            .query(
                "SELECT DISTINCT case_id FROM events \
                 WHERE tx_id >= pg_snapshot_xmin($1::text::pg_snapshot) \
                   AND NOT pg_visible_in_snapshot(tx_id, $1::text::pg_snapshot)",
                &[&snapshot],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for chunk in late.chunks(500) {
            let rows = writer
                .query(
                    "SELECT position, case_id, version, event_type, schema_version, payload, metadata, occurred_at, \
                            recorded_at, tx_id::text::bigint, prev_hash, hash \
                     FROM events WHERE case_id = ANY($1) ORDER BY case_id, version",
                    &[&chunk],
                )
                .await?;
            let mut by_case: HashMap<Uuid, Vec<StoredEvent>> = HashMap::new();
            for r in &rows {
                let e = StoredEvent::from_row(r)?;
                by_case.entry(e.case_id).or_default().push(e);
            }
            let mut cases = Vec::new();
            for (id, events) in by_case {
                if let Some(c) = fold(CaseId::from_uuid(id), &events)? {
                    cases.push(c);
                }
            }
            // What the case rollup counted of these cases goes, what it counts now comes (V25, V31).
            let counted = |sign: i32| {
                format!(
                    "INSERT INTO case_changes (sign, received_at, campaign_id, category_id, village_id, \
                            accused_unit_id, title, duplicate, status, kind, channel, unit_id) \
                     SELECT {sign}, received_at, campaign_id, category_id, village_id, accused_unit_id, title, \
                            duplicate_of IS NOT NULL, status, kind, channel, unit_id \
                       FROM ledger_rebuild WHERE case_id = ANY($1)"
                )
            };
            // And what the deadline crossings counted of them (V38).
            let crossing = |sign: i32| {
                format!(
                    "INSERT INTO deadline_crossings_rebuild (at, seen_by, unit_id, stage, share, n) \
                     SELECT c.*, {sign} FROM ledger_rebuild l, {CROSSINGS_OF_L} AS c WHERE l.case_id = ANY($1)"
                )
            };
            writer.execute(&counted(-1), &[&chunk]).await?;
            writer.execute(&crossing(-1), &[&chunk]).await?;
            insert_rows(&writer, "ledger_rebuild", &cases, true).await?;
            writer.execute(&counted(1), &[&chunk]).await?;
            writer.execute(&crossing(1), &[&chunk]).await?;
        }
        writer
            .execute(
                &format!(
                    "WITH gone AS (DELETE FROM kpi_facts_rebuild WHERE case_id = ANY($1) RETURNING *), \
                          added AS (INSERT INTO kpi_facts_rebuild {} WHERE l.case_id = ANY($1) RETURNING *) \
                     INSERT INTO kpi_fact_changes SELECT -1, * FROM gone UNION ALL SELECT 1, * FROM added",
                    kpi_facts_select("ledger_rebuild")
                ),
                &[&late],
            )
            .await?;
        writer
            .batch_execute(&format!(
                "DROP TABLE ledger; ALTER TABLE ledger_rebuild RENAME TO ledger; {} \
                 REVOKE ALL ON ledger FROM PUBLIC; GRANT SELECT ON ledger TO huiyin_app; \
                 DROP TABLE kpi_facts; ALTER TABLE kpi_facts_rebuild RENAME TO kpi_facts; {} \
                 REVOKE ALL ON kpi_facts FROM PUBLIC; GRANT SELECT ON kpi_facts TO huiyin_app; \
                 SELECT ledger_triggers_attach(); \
                 DROP TABLE kpi_rollup; ALTER TABLE kpi_rollup_rebuild RENAME TO kpi_rollup; {} \
                 DROP TABLE case_rollup; ALTER TABLE case_rollup_rebuild RENAME TO case_rollup; {} \
                 REVOKE ALL ON kpi_rollup, case_rollup FROM PUBLIC; GRANT SELECT ON kpi_rollup, case_rollup TO huiyin_app; \
                 DROP TABLE deadline_crossings; ALTER TABLE deadline_crossings_rebuild RENAME TO deadline_crossings; {} \
                 DROP TABLE deadline_crossed; ALTER TABLE deadline_crossed_rebuild RENAME TO deadline_crossed; {} \
                 REVOKE ALL ON deadline_crossings, deadline_crossed FROM PUBLIC; \
                 GRANT SELECT ON deadline_crossings, deadline_crossed TO huiyin_app; \
                 DELETE FROM projection_rebuilds_due WHERE projection = 'ledger';",
                copies.rename_sql(),
                facts.rename_sql(),
                kpi_rollup.rename_sql(),
                case_rollup.rename_sql(),
                crossings.rename_sql(),
                crossed.rename_sql()
            ))
            .await?;
        Ok::<u64, StoreError>(late.len() as u64)
    }
    .await;
    match result {
        Ok(caught_up) => {
            writer.batch_execute("COMMIT").await?;
            phases.done("the switch-over");
            Ok(RebuildReport { folded, caught_up, seconds: started.elapsed().as_secs_f64(), phases: phases.0 })
        }
        Err(e) => {
            let _ = writer
                .batch_execute(
                    "ROLLBACK; \
                     DROP TABLE IF EXISTS ledger_rebuild, kpi_facts_rebuild, kpi_rollup_rebuild, case_rollup_rebuild, \
                     deadline_crossings_rebuild, deadline_crossed_rebuild",
                )
                .await;
            Err(e)
        }
    }
}

/// A ledger row that differs from the replay of its case.
#[derive(Debug, Clone, Serialize)]
pub struct ProjectionMismatch {
    /// The case (nil for a row of the analysis rollups).
    pub case_id: Uuid,
    /// What differs.
    pub problem: String,
}

/// What the projection check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProjectionReport {
    /// Cases replayed.
    pub cases: u64,
    /// Events replayed.
    pub events: u64,
    /// Rows that differ, are missing, or have no case.
    pub mismatches: Vec<ProjectionMismatch>,
}

/// Compares every ledger row with a replay of its case, in one repeatable-read snapshot.
pub async fn verify_projections(settings: &DbSettings) -> Result<ProjectionReport, StoreError> {
    // Two connections on one exported snapshot: one streams the log, the other looks rows up
    // (a connection cannot run a query while it streams another's rows).
    let mut client = connect(settings).await?;
    let mut lookup_client = connect(settings).await?;
    client.batch_execute("SET statement_timeout = 0").await?;
    lookup_client.batch_execute("SET statement_timeout = 0").await?;
    let stream_tx =
        client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?;
    let snapshot: String = stream_tx.query_one("SELECT pg_export_snapshot()", &[]).await?.get(0);
    let tx = lookup_client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    tx.batch_execute(&crate::db::import_snapshot_sql(&snapshot)).await?;
    let mut mismatches = Vec::new();
    let select = format!("SELECT {ROW_JSON} FROM ledger l WHERE case_id = ANY($1)");
    let folded = fold_final_states(&stream_tx, 1000, async |cases: Vec<Case>| {
        let ids: Vec<Uuid> = cases.iter().map(|c| c.id.as_uuid()).collect();
        let mut actual: HashMap<Uuid, LedgerRow> = HashMap::new();
        for r in tx.query(&select, &[&ids]).await? {
            let row = LedgerRow::from_row(&r)?;
            actual.insert(row.case_id, row);
        }
        let mut texts = Vec::with_capacity(cases.len());
        for case in &cases {
            let mut expected = LedgerRow::from_case(case, true);
            texts.push(std::mem::take(&mut expected.search));
            match actual.get(&expected.case_id) {
                None => {
                    mismatches.push(ProjectionMismatch { case_id: expected.case_id, problem: "no ledger row".into() })
                }
                Some(row) if *row != expected => mismatches.push(ProjectionMismatch {
                    case_id: expected.case_id,
                    problem: format!("row differs from the replay: ledger {row:?}, replay {expected:?}"),
                }),
                Some(_) => {}
            }
        }
        let bad_search = tx
            .query(
                "SELECT u.id FROM unnest($1::uuid[], $2::text[]) AS u(id, t) JOIN ledger l ON l.case_id = u.id \
                 WHERE l.search <> u.t::tsvector",
                &[&ids, &texts],
            )
            .await?;
        for r in bad_search {
            mismatches
                .push(ProjectionMismatch { case_id: r.get(0), problem: "search words differ from the replay".into() });
        }
        Ok(())
    })
    .await?;
    let orphans = tx
        .query(
            "SELECT case_id FROM ledger l WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.case_id = l.case_id)",
            &[],
        )
        .await?;
    for r in orphans {
        mismatches.push(ProjectionMismatch { case_id: r.get(0), problem: "ledger row without events".into() });
    }
    // The KPI facts (V24) are the ledger rows' facts unpacked: a row more or missing is named.
    let facts = kpi_facts_select("ledger");
    let odd = tx
        .query(
            &format!(
                "SELECT DISTINCT case_id FROM (({facts} EXCEPT ALL SELECT * FROM kpi_facts) \
                 UNION ALL (SELECT * FROM kpi_facts EXCEPT ALL {facts})) AS d ORDER BY 1"
            ),
            &[],
        )
        .await?;
    for r in odd {
        mismatches
            .push(ProjectionMismatch { case_id: r.get(0), problem: "KPI facts differ from the ledger row's".into() });
    }
    // A fact falls at or after its case's receipt (the KPIs and the rollup count on it).
    for r in tx.query("SELECT DISTINCT case_id FROM kpi_facts WHERE at < received_at ORDER BY 1", &[]).await? {
        mismatches
            .push(ProjectionMismatch { case_id: r.get(0), problem: "a KPI fact falls before its receipt".into() });
    }
    // The analysis rollups (V25), with their changes not yet compacted, against the facts and
    // rows they count: a day and key counted differently is named (with the nil case id).
    let kpi_want = "SELECT x.day, x.kind, x.dim, x.key, x.key2, x.lag, sum(x.n) AS n, sum(x.due) AS due, sum(x.met) AS met, \
                    sum(x.returned) AS returned, sum(x.reopened) AS reopened, sum(x.followed_up) AS followed_up, \
                    sum(x.satisfied) AS satisfied, sum(x.solved) AS solved, \
                    sum(x.fully_satisfied) AS fully_satisfied, sum(x.dissatisfied) AS dissatisfied \
               FROM kpi_facts f, kpi_rollup_rows(1, 'infinity', f.kind, f.unit, f.at, f.done_at, f.stopped_at, \
                    f.rating, f.solved, f.followed_up, f.reopened, f.returned, f.accepted_at, f.village_id, \
                    f.category_id, f.channel, f.campaign_id) AS x GROUP BY 1, 2, 3, 4, 5, 6";
    let kpi_have = format!(
        "SELECT r.day, r.kind, r.dim, r.key, r.key2, r.lag, sum(r.n), sum(r.due), sum(r.met), sum(r.returned), \
                sum(r.reopened), sum(r.followed_up), sum(r.satisfied), sum(r.solved), sum(r.fully_satisfied), \
                sum(r.dissatisfied) \
           FROM ({}) AS r GROUP BY 1, 2, 3, 4, 5, 6 \
         HAVING (sum(r.n), sum(r.due), sum(r.met), sum(r.returned), sum(r.reopened), sum(r.followed_up), \
                 sum(r.satisfied), sum(r.solved), sum(r.fully_satisfied), sum(r.dissatisfied)) \
                <> (0, 0, 0, 0, 0, 0, 0, 0, 0, 0)",
        crate::analysis::KPI_ROLLUP_SOURCE
    );
    let case_want = "SELECT x.day, x.campaign_id, x.kind, x.a, x.b, x.term, sum(x.n) FROM ledger l, \
                     case_rollup_rows(1, l.received_at, l.campaign_id, l.category_id, l.village_id, \
                     l.accused_unit_id, l.title, l.duplicate_of IS NOT NULL, l.status, l.kind, l.channel, \
                     l.unit_id) AS x GROUP BY 1, 2, 3, 4, 5, 6";
    let case_have = format!(
        "SELECT r.day, r.campaign_id, r.kind, r.a, r.b, r.term, sum(r.n) FROM ({}) AS r \
         GROUP BY 1, 2, 3, 4, 5, 6 HAVING sum(r.n) <> 0",
        crate::analysis::CASE_ROLLUP_SOURCE
    );
    // The deadline crossings (V38) against the ledger's running clocks: per unit, stage and
    // share, the crossings passed by now (compacted or not) and each one still to come.
    let crossing_want = format!(
        "SELECT CASE WHEN c.at <= now() THEN NULL ELSE c.at END AS day, c.seen_by, c.unit_id, c.stage, c.share, \
                count(*) AS n \
           FROM ledger l, {CROSSINGS_OF_L} AS c GROUP BY 1, 2, 3, 4, 5"
    );
    let crossing_have = "SELECT r.day, r.seen_by, r.unit_id, r.stage, r.share, sum(r.n)::bigint FROM ( \
                           SELECT NULL::timestamptz AS day, seen_by, unit_id, stage, share, n FROM deadline_crossed \
                           UNION ALL SELECT CASE WHEN at <= now() THEN NULL ELSE at END, seen_by, unit_id, stage, \
                                            share, n \
                                       FROM deadline_crossings) AS r \
                         GROUP BY 1, 2, 3, 4, 5 HAVING sum(r.n) <> 0";
    for (name, want, have, what) in [
        ("KPI", kpi_want.to_string(), kpi_have, "concat_ws(' ', d.dim, d.key, d.key2, d.kind)"),
        ("trend", case_want.to_string(), case_have, "d.kind || ' ' || coalesce(d.term, coalesce(d.a::text, '-'))"),
        (
            "deadline crossing",
            crossing_want,
            crossing_have.to_string(),
            "concat_ws(' ', 'seen by', coalesce(d.seen_by::text, 'all'), 'unit', coalesce(d.unit_id::text, 'none'), \
                       d.stage, d.share::text || ' %')",
        ),
    ] {
        let odd = tx
            .query(
                &format!(
                    "SELECT DISTINCT coalesce(d.day::text, 'the passed'), {what} FROM (({want} EXCEPT ALL {have}) \
                     UNION ALL ({have} EXCEPT ALL {want})) AS d ORDER BY 1, 2 LIMIT 100"
                ),
                &[],
            )
            .await?;
        for r in odd {
            let (day, key): (String, String) = (r.get(0), r.get(1));
            mismatches.push(ProjectionMismatch {
                case_id: Uuid::nil(),
                problem: format!("the {name} rollup of {day} ({key}) differs from what it counts"),
            });
        }
    }
    // The campaign's records, in the same snapshot: every `records` row against a replay of its
    // stream, every record stream with a row, and no row without its stream.
    let mut stored: HashMap<Uuid, serde_json::Value> = tx
        .query(&format!("SELECT record_id, {} FROM records", crate::records::PROJECTION_JSON), &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let streams: Vec<Uuid> = tx
        .query("SELECT DISTINCT case_id FROM events WHERE event_type NOT LIKE 'case.%'", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for chunk in streams.chunks(500) {
        let mut by_stream: HashMap<Uuid, Vec<StoredEvent>> = HashMap::new();
        for r in &tx
            .query(
                &format!(
                    "SELECT {} FROM events WHERE case_id = ANY($1) ORDER BY case_id, version",
                    crate::store::COLUMNS
                ),
                &[&chunk],
            )
            .await?
        {
            let e = StoredEvent::from_row(r)?;
            by_stream.entry(e.case_id).or_default().push(e);
        }
        for (id, events) in by_stream {
            let problem = match (crate::records::replay_projection(id, &events), stored.remove(&id)) {
                (Err(e), _) => Some(format!("the record's history does not fold: {e}")),
                (Ok(Some(_)), None) => Some("no record row".to_owned()),
                (Ok(Some(replayed)), Some(row)) if replayed != row => {
                    Some("record row differs from the replay".to_owned())
                }
                _ => None,
            };
            if let Some(problem) = problem {
                mismatches.push(ProjectionMismatch { case_id: id, problem });
            }
        }
    }
    for id in stored.into_keys() {
        mismatches.push(ProjectionMismatch { case_id: id, problem: "record row without events".into() });
    }
    tx.commit().await?;
    stream_tx.commit().await?;
    Ok(ProjectionReport { cases: folded.cases, events: folded.events, mismatches })
}

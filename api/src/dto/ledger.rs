//! The bodies of the ledger (台账), the overdue view and the counts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{CaseKind, Channel, Stage, Status, Urgency};

/// The order of a ledger page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum LedgerSortParam {
    /// Newest first (default).
    #[default]
    ReceivedDesc,
    /// Oldest first.
    ReceivedAsc,
    /// Soonest deadline first; only cases with a running deadline.
    DueAsc,
    /// Latest deadline first; only cases with a running deadline.
    DueDesc,
}

/// Filters of the ledger (all optional, combined with AND).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    /// Status.
    pub status: Option<Status>,
    /// The receipt code a citizen reads out (case-insensitive), e.g. `HY-20261102-7K3Q9PXM`.
    #[param(
        pattern = "^[Hh][Yy]-[0-9]{8}-[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{8}$",
        min_length = 20,
        max_length = 20,
        example = "HY-20261102-7K3Q9PXM"
    )]
    pub receipt_code: Option<String>,
    /// Kind.
    pub kind: Option<CaseKind>,
    /// Channel.
    pub channel: Option<Channel>,
    /// Urgency.
    pub urgency: Option<Urgency>,
    /// Category.
    pub category_id: Option<Uuid>,
    /// Village / farm / community.
    pub village_id: Option<Uuid>,
    /// Responsible unit.
    pub unit_id: Option<Uuid>,
    /// Past its running deadline now (`true`) or not (`false`).
    pub overdue: Option<bool>,
    /// Under supervision (督办).
    pub escalated: Option<bool>,
    /// Received in this campaign (tagged at registration by day and unit, or by the record it
    /// came from).
    pub campaign_id: Option<Uuid>,
    /// In this phase of a campaign.
    pub campaign_phase: Option<crate::routes::campaigns::PhaseName>,
    /// Came from this kind of record.
    pub source_type: Option<crate::routes::records::SourceTypeName>,
    /// Came from this record (a meeting, a visit, a card batch, a questionnaire).
    pub source_id: Option<Uuid>,
    /// Received at or after (RFC 3339). Between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year as written; no leap second; a fraction finer than a microsecond is cut.
    #[param(pattern = r"^20[0-9]{2}-")]
    #[serde(default, deserialize_with = "crate::instant::optional")]
    pub received_from: Option<DateTime<Utc>>,
    /// Received before (RFC 3339); with `received_from`, must lie after it, else 400 "received_from must be before received_to". Between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year as written; no leap second; a fraction finer than a microsecond is cut.
    #[param(pattern = r"^20[0-9]{2}-")]
    #[serde(default, deserialize_with = "crate::instant::optional")]
    pub received_to: Option<DateTime<Utc>>,
    /// Search over title and description: every character or word typed must appear (Chinese by
    /// single characters and neighbouring pairs, Latin and digits by word prefix; full-width and
    /// half-width forms alike, Latin case-insensitively). At most 100 characters after trimming;
    /// blank searches nothing.
    #[param(max_length = 100)]
    pub q: Option<String>,
    /// Order.
    pub sort: Option<LedgerSortParam>,
    /// The `next_cursor` of the previous page (opaque: pass it back as issued; anything else answers
    /// 400).
    #[param(min_length = 1, max_length = 80)]
    pub cursor: Option<String>,
    /// Rows per page, 1 to 100 (default 20). Ignored by exports, which return every row.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// A running deadline as of now.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadlineNow {
    /// The stage.
    pub stage: Stage,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// `on_track`, `due_soon` (≥ 60 %) or `overdue`.
    #[schema(example = "due_soon")]
    pub state: String,
    /// Working days past the deadline.
    pub working_days_overdue: u32,
    /// Time used, in thousandths.
    pub permille_used: u32,
    /// Counted on weekdays alone into a year whose calendar is not loaded; recomputed (by an
    /// event) when it is.
    pub calendar_incomplete: bool,
}

/// One row of the ledger (台账).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LedgerEntry {
    /// The case.
    pub case_id: Uuid,
    /// Its version.
    pub version: i32,
    /// Receipt code.
    pub receipt_code: String,
    /// Title.
    pub title: String,
    /// Kind.
    pub kind: String,
    /// Channel.
    pub channel: String,
    /// Status.
    pub status: String,
    /// Urgency.
    pub urgency: String,
    /// Category.
    pub category_id: Option<Uuid>,
    /// Village.
    pub village_id: Option<Uuid>,
    /// Responsible unit.
    pub unit_id: Option<Uuid>,
    /// Rework round.
    pub round: i32,
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
    /// The running deadline, evaluated now.
    pub deadline: Option<DeadlineNow>,
    /// This round's rating.
    pub satisfaction: Option<String>,
    /// Under supervision.
    pub escalated: bool,
    /// Duplicate of.
    pub duplicate_of: Option<Uuid>,
    /// The complainant chose anonymity. (The ledger holds no personal data.)
    pub anonymous: bool,
    /// Co-units of joint handling.
    pub co_unit_ids: Vec<Uuid>,
    /// Accepted (受理).
    pub accepted_at: Option<DateTime<Utc>>,
    /// Signed for by the lead unit (签收).
    pub signed_at: Option<DateTime<Utc>>,
    /// The overall clock's due time, while it runs.
    pub overall_due_at: Option<DateTime<Utc>>,
    /// The running clock that falls due first (a stage's, the acknowledgement or the overall
    /// clock), evaluated now: what the overdue view counts.
    pub next_deadline: Option<DeadlineNow>,
    /// The stage's clock stands still: paused, or stopped by a return waiting for the dispatcher
    /// (its `deadline` is then absent).
    pub paused: bool,
}

/// A page of the ledger.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LedgerPage {
    /// The rows.
    pub items: Vec<LedgerEntry>,
    /// Pass as `cursor` for the next page; absent on the last page. Also in the `Link` header.
    pub next_cursor: Option<String>,
}

/// The overdue view's query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OverdueQuery {
    /// Only this unit's cases.
    pub unit_id: Option<Uuid>,
    /// The `next_cursor` of the previous page (opaque: pass it back as issued; anything else answers
    /// 400).
    #[param(min_length = 1, max_length = 80)]
    pub cursor: Option<String>,
    /// Rows per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// Counts of one unit at one stage.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OverdueCount {
    /// The unit that answers for these clocks; absent for the intake's (the acknowledgement,
    /// assignment and follow-up clocks, and the overall clock of a case no unit holds).
    pub unit_id: Option<Uuid>,
    /// The clock: a stage's (`assignment`, `sign_for`, `handling`, `feedback`, `follow_up`),
    /// `acknowledgement` or `overall`.
    pub stage: String,
    /// Past the deadline.
    pub overdue: i64,
    /// At least 80 % of the time used.
    pub due_soon_80: i64,
    /// At least 60 % and under 80 %.
    pub due_soon_60: i64,
}

/// Cases past their deadline or due soon, computed now against the working calendar.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OverdueView {
    /// The moment it was computed.
    pub now: DateTime<Utc>,
    /// Soonest deadline first (the most overdue first).
    pub items: Vec<LedgerEntry>,
    /// Pass as `cursor` for the next page; absent on the last page. Also in the `Link` header.
    pub next_cursor: Option<String>,
    /// Counts of running clocks (a case counts once for each of its clocks that is overdue or
    /// due soon) per answering unit and clock, over all such cases.
    pub by_unit: Vec<OverdueCount>,
}

/// The statistics query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Received at or after (default: a year before `to`); must lie before `to` (before now when
    /// `to` is absent), else 400 "from must be before to". Between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year as written; no leap second; a fraction finer than a microsecond is cut.
    #[param(pattern = r"^20[0-9]{2}-")]
    #[serde(default, deserialize_with = "crate::instant::optional")]
    pub from: Option<DateTime<Utc>>,
    /// Received before (default: now). Between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year as written; no leap second; a fraction finer than a microsecond is cut.
    #[param(pattern = r"^20[0-9]{2}-")]
    #[serde(default, deserialize_with = "crate::instant::optional")]
    pub to: Option<DateTime<Utc>>,
    /// Only cases received in this campaign.
    pub campaign_id: Option<Uuid>,
    /// Only cases received in this phase of a campaign.
    pub campaign_phase: Option<crate::routes::campaigns::PhaseName>,
}

/// A count under a key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyCount {
    /// The key (an identifier or an id; absent for "none").
    pub key: Option<String>,
    /// How many.
    pub count: i64,
}

/// Counts of cases received in a range.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsView {
    /// Range start.
    pub from: DateTime<Utc>,
    /// Range end.
    pub to: DateTime<Utc>,
    /// All cases.
    pub total: i64,
    /// By status.
    pub by_status: Vec<KeyCount>,
    /// By kind.
    pub by_kind: Vec<KeyCount>,
    /// By channel.
    pub by_channel: Vec<KeyCount>,
    /// By category.
    pub by_category: Vec<KeyCount>,
    /// By village.
    pub by_village: Vec<KeyCount>,
    /// By responsible unit.
    pub by_unit: Vec<KeyCount>,
}

//! The bodies of the reference data: units, routing rules, categories with their deadline
//! policies, the working calendar.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{CaseKind, Tier, UnitKind};

/// A unit of the organisation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnitView {
    /// Id.
    pub id: Uuid,
    /// Name.
    #[schema(example = "青山村")]
    pub name: String,
    /// Kind.
    pub kind: UnitKind,
    /// Parent.
    pub parent_id: Option<Uuid>,
    /// Active.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Changed.
    pub updated_at: DateTime<Utc>,
}

/// Creates a unit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "青山村", "kind": "village", "parent_id": "0193a0c4-0000-7000-8000-000000000001"}))]
pub struct CreateUnitRequest {
    /// Name: 1 to 100 characters, trimmed; not blank; no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// Kind.
    pub kind: UnitKind,
    /// Parent.
    pub parent_id: Option<Uuid>,
}

/// A proposed route (归口).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RouteView {
    /// The unit.
    pub unit_id: Uuid,
    /// Its tier.
    pub tier: Tier,
    /// `village_rule`, `category_rule` or `category_default`.
    #[schema(example = "village_rule")]
    pub source: String,
}

/// Creates or replaces the routing rule (归口) of a category, optionally for one village.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingRuleRequest {
    /// The category.
    pub category_id: Uuid,
    /// The village (farm, community) it applies to; without one, the category-wide rule.
    pub village_id: Option<Uuid>,
    /// The unit cases go to.
    pub unit_id: Uuid,
    /// Its tier; by default the unit's own (village, farm, community: `village`; else `town`).
    pub tier: Option<Tier>,
}

/// A routing rule.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoutingRuleView {
    /// Id.
    pub id: Uuid,
    /// The category.
    pub category_id: Uuid,
    /// The village, for a village's rule.
    pub village_id: Option<Uuid>,
    /// The unit.
    pub unit_id: Uuid,
    /// Its tier.
    pub tier: Tier,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Changed.
    pub updated_at: DateTime<Utc>,
}

/// Where a deactivated unit's open cases go.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeactivateUnitRequest {
    /// The unit its open cases are re-routed to.
    pub reroute_to: Option<Uuid>,
}

/// Renames a unit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameUnitRequest {
    /// The new name: 1 to 100 characters, trimmed; not blank; no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
}

/// A time limit.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LimitDto {
    /// `working_days`, `calendar_days` or `hours`.
    #[schema(example = "working_days")]
    pub unit: LimitUnit,
    /// How many: 1 to 60 working days, 1 to 720 hours, or 1 to 90 calendar days.
    #[schema(minimum = 1, maximum = 720, example = 15)]
    pub value: u16,
}

/// The unit of a time limit.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LimitUnit {
    /// Working days (工作日).
    WorkingDays,
    /// Hours of the clock.
    Hours,
    /// Calendar days ("15日", "60日").
    CalendarDays,
}

/// A category's time limits. Omitted fields take the statutory defaults.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct DeadlinePolicyDto {
    /// Routing, normal cases (default 3 working days).
    pub assign: Option<LimitDto>,
    /// Handling, normal cases (default 15 working days).
    pub handle: Option<LimitDto>,
    /// Reply, normal cases (default 3 working days).
    pub feedback: Option<LimitDto>,
    /// Routing, urgent cases (default 8 hours).
    pub urgent_assign: Option<LimitDto>,
    /// Handling, urgent cases (default 48 hours).
    pub urgent_handle: Option<LimitDto>,
    /// Reply, urgent cases (default 24 hours).
    pub urgent_feedback: Option<LimitDto>,
    /// Days one extension may add (at most 30).
    #[schema(minimum = 0, maximum = 30)]
    pub max_extension_days: Option<u16>,
    /// Extensions per round (at most 1).
    #[schema(minimum = 0, maximum = 1)]
    pub max_extensions: Option<u8>,
    /// The acceptance decision and its notice (default 15 calendar days, 信访工作条例 art. 23).
    pub acknowledge: Option<LimitDto>,
    /// The same for an identified accusation (default 15 working days, 检举控告工作规则 (2020)).
    pub accusation_acknowledge: Option<LimitDto>,
    /// Sign-for, normal cases (default 1 working day).
    pub sign_for: Option<LimitDto>,
    /// Sign-for, urgent cases (default 2 hours).
    pub urgent_sign_for: Option<LimitDto>,
    /// The return window from assignment (default 5 working days, 信访工作条例 art. 23).
    pub return_window: Option<LimitDto>,
    /// Follow-up after the reply, normal cases (default 5 working days).
    pub follow_up: Option<LimitDto>,
    /// Follow-up after the reply, urgent cases (default 48 hours).
    pub urgent_follow_up: Option<LimitDto>,
    /// The overall clock from acceptance (default 60 calendar days, 信访工作条例 art. 32).
    pub overall: Option<LimitDto>,
}

/// Creates or updates a category.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"code": "welfare.dibao", "name": "低保评定", "kind": "complaint",
    "deadline_policy": {"handle": {"unit": "working_days", "value": 10}}}))]
pub struct CategoryRequest {
    /// A short stable code: 1 to 32 lower-case letters, digits, `_ . -`, starting with a letter or digit.
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z0-9][a-z0-9_.-]{0,31}$")]
    pub code: String,
    /// Name: 1 to 100 characters, trimmed; not blank; no control characters.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub name: String,
    /// The kind of case it is for, if only one.
    pub kind: Option<CaseKind>,
    /// Where its cases usually go.
    pub default_unit_id: Option<Uuid>,
    /// Time limits.
    #[serde(default)]
    pub deadline_policy: DeadlinePolicyDto,
    /// Whether it can be chosen (default true).
    pub active: Option<bool>,
}

/// A category.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CategoryView {
    /// Id.
    pub id: Uuid,
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: Option<CaseKind>,
    /// Default unit.
    pub default_unit_id: Option<Uuid>,
    /// The full policy in force.
    pub deadline_policy: DeadlinePolicyDto,
    /// Active.
    pub active: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Changed.
    pub updated_at: DateTime<Utc>,
}

/// One exceptional day.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CalendarDayDto {
    /// The date, in the year of the path.
    #[schema(value_type = String, format = Date, pattern = r"^(20[0-9]{2}|2100)-[0-9]{2}-[0-9]{2}$", example = "2026-10-01")]
    pub date: chrono::NaiveDate,
    /// Its name: 1 to 50 characters, trimmed; not blank; no control characters.
    #[schema(
        min_length = 1,
        max_length = 50,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x1F\x7F-\x9F]*$",
        example = "国庆节"
    )]
    pub name: String,
}

/// A year of the working calendar: the exceptions to Monday–Friday.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarYear {
    /// Public holidays (days off).
    #[schema(max_items = 100)]
    pub holidays: Vec<CalendarDayDto>,
    /// Make-up working days (调休: weekend days worked).
    #[schema(max_items = 100)]
    pub makeup_workdays: Vec<CalendarDayDto>,
}

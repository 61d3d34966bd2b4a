//! Deadlines (限时办结): computed from a policy, the working calendar and the case's urgency.
//!
//! Every deadline records the rule it came from ([`DeadlineRule`]), so an auditor can see why
//! a case was due when it was. A policy change never rewrites the deadlines of existing cases:
//! deadlines are computed once, when the step starts, and stored in the event.
//!
//! Defaults ([`DeadlinePolicy::statutory_default`]) are grounded in the 信访工作条例 (2022):
//! acceptance must be decided within 15 days and handling finished within 60 days, extendable
//! once by up to 30 days. A town committee works well inside those limits: routing within
//! 3 working days, handling within 15 working days, the reply to the citizen within 3 working
//! days; urgent cases (急事急办) count in hours: 8 h to route, 48 h to handle, 24 h to reply.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::{WorkingCalendar, end_of_local_day, local_date};
use crate::error::DomainError;
use crate::ids::CategoryId;

/// The step a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Waiting to be routed to a unit (交办).
    Assignment,
    /// Being handled by the unit (办理).
    Handling,
    /// Waiting for the reply to the citizen (反馈).
    Feedback,
}

impl Stage {
    /// The stage's identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assignment => "assignment",
            Self::Handling => "handling",
            Self::Feedback => "feedback",
        }
    }
}

/// How urgent a case is (特事特办、急事急办).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// Counted in working days.
    #[default]
    Normal,
    /// Counted in hours, holidays included.
    Urgent,
}

/// A time limit: working days, or hours of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "unit", content = "value")]
pub enum Limit {
    /// Ends at 23:59:59 CST on the Nth working day after the start.
    WorkingDays(u16),
    /// Ends N hours after the start, whatever the calendar says.
    Hours(u16),
}

/// Where a policy came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "category_id")]
pub enum PolicySource {
    /// The statutory default of [`DeadlinePolicy::statutory_default`].
    Default,
    /// A category's own policy.
    Category(CategoryId),
}

/// The time limits for one category of cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadlinePolicy {
    /// Where these limits come from.
    pub source: PolicySource,
    /// Routing, normal cases.
    pub assign: Limit,
    /// Handling, normal cases.
    pub handle: Limit,
    /// Reply to the citizen, normal cases.
    pub feedback: Limit,
    /// Routing, urgent cases.
    pub urgent_assign: Limit,
    /// Handling, urgent cases.
    pub urgent_handle: Limit,
    /// Reply to the citizen, urgent cases.
    pub urgent_feedback: Limit,
    /// How many calendar days one extension may add (at most 30 by the regulation).
    pub max_extension_days: u16,
    /// How many extensions a round allows (once by the regulation).
    pub max_extensions: u8,
}

impl DeadlinePolicy {
    /// The defaults, grounded in the 信访工作条例 (see the module docs).
    pub const fn statutory_default() -> Self {
        Self {
            source: PolicySource::Default,
            assign: Limit::WorkingDays(3),
            handle: Limit::WorkingDays(15),
            feedback: Limit::WorkingDays(3),
            urgent_assign: Limit::Hours(8),
            urgent_handle: Limit::Hours(48),
            urgent_feedback: Limit::Hours(24),
            max_extension_days: 30,
            max_extensions: 1,
        }
    }

    /// The limit for a stage at an urgency.
    pub fn limit(&self, stage: Stage, urgency: Urgency) -> Limit {
        match (stage, urgency) {
            (Stage::Assignment, Urgency::Normal) => self.assign,
            (Stage::Handling, Urgency::Normal) => self.handle,
            (Stage::Feedback, Urgency::Normal) => self.feedback,
            (Stage::Assignment, Urgency::Urgent) => self.urgent_assign,
            (Stage::Handling, Urgency::Urgent) => self.urgent_handle,
            (Stage::Feedback, Urgency::Urgent) => self.urgent_feedback,
        }
    }

    /// Computes the deadline of a stage that starts at `start`.
    pub fn deadline(
        &self,
        stage: Stage,
        urgency: Urgency,
        start: DateTime<Utc>,
        calendar: &WorkingCalendar,
    ) -> Result<Deadline, DomainError> {
        let limit = self.limit(stage, urgency);
        let due_at = match limit {
            Limit::WorkingDays(n) => end_of_local_day(calendar.add_working_days(local_date(start), n)?),
            Limit::Hours(h) => start + Duration::hours(i64::from(h)),
        };
        Ok(Deadline {
            stage,
            due_at,
            started_at: start,
            rule: DeadlineRule::Policy { limit, urgency, source: self.source },
        })
    }
}

impl Default for DeadlinePolicy {
    fn default() -> Self {
        Self::statutory_default()
    }
}

/// Why a deadline is what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum DeadlineRule {
    /// Computed from a policy limit.
    Policy {
        /// The limit applied.
        limit: Limit,
        /// The urgency it was applied for.
        urgency: Urgency,
        /// The policy's origin.
        source: PolicySource,
    },
    /// Set by the person who assigned the case, shorter than the policy's.
    Explicit {
        /// The policy deadline it shortened.
        policy_due_at: DateTime<Utc>,
    },
    /// Extended (延期) with a reason and an approver.
    Extended {
        /// The deadline before the extension.
        previous_due_at: DateTime<Utc>,
    },
}

/// A deadline for one stage of one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// The step that must be done.
    pub stage: Stage,
    /// When it must be done by.
    pub due_at: DateTime<Utc>,
    /// When the clock started.
    pub started_at: DateTime<Utc>,
    /// The rule it came from.
    pub rule: DeadlineRule,
}

/// Where a deadline stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum DeadlineStatus {
    /// Less than 60 % of the time is used.
    OnTrack,
    /// At least 60 % of the time is used; `permille` says how much.
    DueSoon {
        /// Time used, in thousandths of the allowed time.
        permille: u32,
    },
    /// Past the deadline.
    Overdue {
        /// Working days from the deadline's day to today (0 on the same day).
        working_days: u32,
    },
}

impl Deadline {
    /// Where this deadline stands at `now`. A pure function of the deadline, `now` and the
    /// calendar, so it is never a stale flag.
    pub fn status_at(&self, now: DateTime<Utc>, calendar: &WorkingCalendar) -> DeadlineStatus {
        deadline_status(self.started_at, self.due_at, now, calendar)
    }
}

/// Where a deadline that started at `started_at` and falls due at `due_at` stands at `now`:
/// overdue past the due time (with the working days since), due soon from 60 % of the time used.
pub fn deadline_status(
    started_at: DateTime<Utc>,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
    calendar: &WorkingCalendar,
) -> DeadlineStatus {
    if now > due_at {
        return DeadlineStatus::Overdue {
            working_days: calendar.working_days_between(local_date(due_at), local_date(now)),
        };
    }
    let permille = permille_used(started_at, due_at, now);
    if permille >= 600 { DeadlineStatus::DueSoon { permille } } else { DeadlineStatus::OnTrack }
}

/// How much of the time between `started_at` and `due_at` is used at `now`, in thousandths
/// (0 to 1000).
pub fn permille_used(started_at: DateTime<Utc>, due_at: DateTime<Utc>, now: DateTime<Utc>) -> u32 {
    let total = (due_at - started_at).num_seconds().max(1);
    let used = (now - started_at).num_seconds().clamp(0, total);
    u32::try_from(used * 1000 / total).unwrap_or(1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().expect("valid time")
    }

    #[test]
    fn normal_handling_counts_fifteen_working_days() {
        let cal = WorkingCalendar::default();
        // Monday 2026-11-02 10:00 CST; 15 working days later is Monday 2026-11-23.
        let dl = DeadlinePolicy::default()
            .deadline(Stage::Handling, Urgency::Normal, at(2026, 11, 2, 2), &cal)
            .expect("deadline");
        assert_eq!(dl.due_at.to_rfc3339(), "2026-11-23T15:59:59+00:00");
    }

    #[test]
    fn urgent_cases_count_hours_through_holidays() {
        let cal = WorkingCalendar::new([NaiveDate::from_ymd_opt(2026, 10, 1).expect("date")], []);
        let dl = DeadlinePolicy::default()
            .deadline(Stage::Handling, Urgency::Urgent, at(2026, 9, 30, 0), &cal)
            .expect("deadline");
        assert_eq!(dl.due_at, at(2026, 10, 2, 0));
    }

    #[test]
    fn a_holiday_moves_a_deadline() {
        let plain = WorkingCalendar::default();
        let with_holiday = WorkingCalendar::new([NaiveDate::from_ymd_opt(2026, 11, 4).expect("date")], []);
        let p = DeadlinePolicy::default();
        let a = p.deadline(Stage::Assignment, Urgency::Normal, at(2026, 11, 2, 2), &plain).expect("deadline");
        let b = p.deadline(Stage::Assignment, Urgency::Normal, at(2026, 11, 2, 2), &with_holiday).expect("deadline");
        assert_eq!(b.due_at - a.due_at, Duration::days(1));
    }

    #[test]
    fn status_moves_from_on_track_to_due_soon_to_overdue() {
        let cal = WorkingCalendar::default();
        let dl = DeadlinePolicy::default()
            .deadline(Stage::Handling, Urgency::Urgent, at(2026, 11, 2, 0), &cal)
            .expect("deadline");
        assert_eq!(dl.status_at(at(2026, 11, 2, 12), &cal), DeadlineStatus::OnTrack);
        assert_eq!(dl.status_at(at(2026, 11, 3, 12), &cal), DeadlineStatus::DueSoon { permille: 750 });
        assert_eq!(dl.status_at(at(2026, 11, 6, 12), &cal), DeadlineStatus::Overdue { working_days: 2 });
    }
}

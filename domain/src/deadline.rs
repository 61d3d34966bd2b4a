//! Deadlines (限时办结): computed from a policy, the working calendar and the case's urgency.
//!
//! Every deadline records the rule it came from ([`DeadlineRule`]), so an auditor can see why
//! a case was due when it was. A policy change never rewrites the deadlines of existing cases:
//! deadlines are computed once, when the step starts, and stored in the event.
//!
//! Every limit states its unit ([`Limit`]): calendar days, working days or hours. The defaults
//! ([`DeadlinePolicy::statutory_default`]) and where each comes from:
//!
//! | clock | normal | urgent | source |
//! |---|---|---|---|
//! | acknowledgement (受理告知) | 15 calendar days | 15 calendar days | 信访工作条例 (2022) art. 23 "15日" |
//! | acknowledgement of an identified accusation (检举控告) | 15 working days | 15 working days | 纪检监察机关处理检举控告工作规则 (2020) |
//! | assignment (交办) | 3 working days | 8 hours | town practice, inside the 15 days above |
//! | sign-for (签收) | 1 working day | 2 hours | 12345 hotline practice |
//! | return window (退单) | 5 working days | 5 working days | 信访工作条例 art. 23 "5个工作日" objection |
//! | handling (办理) | 15 working days | 48 hours | 12345 practice (5–15 working days) |
//! | reply (答复) | 3 working days | 24 hours | town practice |
//! | follow-up (回访) | 5 working days | 48 hours | 12345 practice: 回访 before closing |
//! | overall, from acceptance | 60 calendar days | 60 calendar days | 信访工作条例 art. 32 "60日" |
//! | one extension of the overall clock | ≤ 30 calendar days | | 信访工作条例 art. 32 "30日" |

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
    /// Waiting for the unit to sign for it (签收).
    SignFor,
    /// Being handled by the unit (办理).
    Handling,
    /// Waiting for the reply to the citizen (反馈).
    Feedback,
    /// Waiting for the follow-up call and the citizen's rating (回访).
    FollowUp,
    /// The acceptance decision and its notice to the citizen (受理告知); runs beside the stages.
    Acknowledgement,
    /// The whole matter from acceptance to the reply (60 calendar days); never reset by a
    /// transfer, a return or a reopen; runs beside the stages.
    Overall,
}

impl Stage {
    /// The stage's identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assignment => "assignment",
            Self::SignFor => "sign_for",
            Self::Handling => "handling",
            Self::Feedback => "feedback",
            Self::FollowUp => "follow_up",
            Self::Acknowledgement => "acknowledgement",
            Self::Overall => "overall",
        }
    }

    /// Whether the intake answers for this stage's clock (the committee's office that receives,
    /// accepts and tells the citizen, dispatches, and calls back: 受理告知, 交办, 回访) rather
    /// than the unit that holds the case (签收, 办理, 反馈; the overall clock is the holding
    /// unit's while one holds the case). The overdue view books each running clock to whoever
    /// answers for it: a late acknowledgement is the intake's lateness, never the unit's.
    pub fn answered_by_intake(self) -> bool {
        matches!(self, Self::Acknowledgement | Self::Assignment | Self::FollowUp)
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

/// A time limit, in the unit the rule states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "unit", content = "value")]
pub enum Limit {
    /// Ends at 23:59:59 CST on the Nth working day after the start.
    WorkingDays(u16),
    /// Ends N hours after the start, whatever the calendar says.
    Hours(u16),
    /// Ends at 23:59:59 CST on the Nth calendar day after the start ("15日", "60日").
    CalendarDays(u16),
}

impl Limit {
    /// When a clock with this limit that starts at `start` runs out, and whether the working
    /// calendar was loaded for every year the count crossed (always true for hours and
    /// calendar days, which do not read it).
    pub fn due_from(
        self,
        start: DateTime<Utc>,
        calendar: &WorkingCalendar,
    ) -> Result<(DateTime<Utc>, bool), DomainError> {
        Ok(match self {
            Limit::WorkingDays(n) => {
                let from = local_date(start);
                let to = calendar.add_working_days(from, n)?;
                (end_of_local_day(to), calendar.covers(from, to))
            }
            Limit::Hours(h) => (start + Duration::hours(i64::from(h)), true),
            Limit::CalendarDays(n) => {
                let to = local_date(start) + chrono::Days::new(u64::from(n));
                (end_of_local_day(to), true)
            }
        })
    }
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
    /// The acceptance decision and its notice (15 calendar days).
    #[serde(default = "defaults::acknowledge")]
    pub acknowledge: Limit,
    /// The same for an accusation (检举控告) from an identified complainant (15 working days).
    #[serde(default = "defaults::accusation_acknowledge")]
    pub accusation_acknowledge: Limit,
    /// Sign-for by the unit, normal cases (1 working day).
    #[serde(default = "defaults::sign_for")]
    pub sign_for: Limit,
    /// Sign-for by the unit, urgent cases (2 hours).
    #[serde(default = "defaults::urgent_sign_for")]
    pub urgent_sign_for: Limit,
    /// How long after assignment a unit may ask to return a case (5 working days).
    #[serde(default = "defaults::return_window")]
    pub return_window: Limit,
    /// Follow-up after the reply, normal cases (5 working days).
    #[serde(default = "defaults::follow_up")]
    pub follow_up: Limit,
    /// Follow-up after the reply, urgent cases (48 hours).
    #[serde(default = "defaults::urgent_follow_up")]
    pub urgent_follow_up: Limit,
    /// The whole matter from acceptance to the reply (60 calendar days).
    #[serde(default = "defaults::overall")]
    pub overall: Limit,
}

/// The defaults of the limits added after the first policies were stored, so that a stored
/// policy without them reads as the statutory default.
mod defaults {
    use super::Limit;
    pub const fn acknowledge() -> Limit {
        Limit::CalendarDays(15)
    }
    pub const fn accusation_acknowledge() -> Limit {
        Limit::WorkingDays(15)
    }
    pub const fn sign_for() -> Limit {
        Limit::WorkingDays(1)
    }
    pub const fn urgent_sign_for() -> Limit {
        Limit::Hours(2)
    }
    pub const fn return_window() -> Limit {
        Limit::WorkingDays(5)
    }
    pub const fn follow_up() -> Limit {
        Limit::WorkingDays(5)
    }
    pub const fn urgent_follow_up() -> Limit {
        Limit::Hours(48)
    }
    pub const fn overall() -> Limit {
        Limit::CalendarDays(60)
    }
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
            acknowledge: defaults::acknowledge(),
            accusation_acknowledge: defaults::accusation_acknowledge(),
            sign_for: defaults::sign_for(),
            urgent_sign_for: defaults::urgent_sign_for(),
            return_window: defaults::return_window(),
            follow_up: defaults::follow_up(),
            urgent_follow_up: defaults::urgent_follow_up(),
            overall: defaults::overall(),
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
            (Stage::SignFor, Urgency::Normal) => self.sign_for,
            (Stage::SignFor, Urgency::Urgent) => self.urgent_sign_for,
            (Stage::FollowUp, Urgency::Normal) => self.follow_up,
            (Stage::FollowUp, Urgency::Urgent) => self.urgent_follow_up,
            (Stage::Acknowledgement, _) => self.acknowledge,
            (Stage::Overall, _) => self.overall,
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
        self.deadline_with(stage, self.limit(stage, urgency), urgency, start, calendar)
    }

    /// Computes the deadline of a stage with an explicit limit (e.g. the accusation limit of the
    /// acknowledgement clock).
    pub fn deadline_with(
        &self,
        stage: Stage,
        limit: Limit,
        urgency: Urgency,
        start: DateTime<Utc>,
        calendar: &WorkingCalendar,
    ) -> Result<Deadline, DomainError> {
        let (due_at, complete) = limit.due_from(start, calendar)?;
        Ok(Deadline {
            stage,
            due_at,
            started_at: start,
            rule: DeadlineRule::Policy { limit, urgency, source: self.source },
            calendar_incomplete: !complete,
            paused_micros: 0,
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
    /// Counted in working days into a year whose calendar was not loaded: computed on weekdays
    /// alone, to be recomputed (by an explicit event) when that year is loaded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub calendar_incomplete: bool,
    /// Microseconds the clock stood paused (信访工作条例 art. 32 counts the time waiting for the
    /// citizen out of the limit), already added to `due_at`: a recount of the rule from
    /// `started_at` (a calendar loaded late) adds it again, so the credit is never lost.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub paused_micros: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Deadline {
    /// The time this clock stood paused.
    pub fn paused(&self) -> chrono::Duration {
        chrono::Duration::microseconds(self.paused_micros)
    }

    /// This clock moved by a pause of `shift`: due later by that much, with the credit kept.
    pub fn after_pause(self, shift: chrono::Duration) -> Self {
        Self {
            due_at: self.due_at + shift,
            paused_micros: self.paused_micros.saturating_add(shift.num_microseconds().unwrap_or(i64::MAX)),
            ..self
        }
    }
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

//! # Huiyin's domain: the life of a case (诉求), as commands, events and state
//!
//! This crate is pure: it does no I/O and cannot fail for I/O reasons. Time, the working
//! calendar and the deadline policy come in as values ([`lifecycle::Context`]).
//!
//! ## The state machine
//!
//! ```text
//!   register (+ accept at the counter)
//!      │
//!      ▼            reject (不予受理, with a code)               close
//! ┌──────────┐ ──────────────────────► ┌──────────┐ ─────────────────────► ┌────────┐
//! │ received │                         │ rejected │                        │ closed │
//! └──────────┘ ◄────── reopen ──────── └──────────┘                        └────────┘
//!   │  ▲   accept (受理: overall clock starts; assign implies it)            ▲   │
//!   │  │                                                                    │   │ reopen
//!   │  │ return approved without a unit / transfer to intake                │   ▼
//!   │  │                                                                    │ (new round)
//! assign (交办: lead + co-units, never the accused unit or one under it)    │
//!   ▼  │                                                                    │
//! ┌──────────┐ sign (签收) → handling clock; return (退单, in its window) → dispatcher
//! │ assigned │ approves (to another unit / intake) or refuses; extension request →
//! └──────────┘ supervisor approves / refuses; co-units sign and contribute (联办)
//!   │ handle (implies sign)
//!   ▼
//! ┌──────────┐  feedback (答复)  ┌──────────┐  rating (回访) satisfied → close
//! │ handled  │ ────────────────► │ fed_back │  no rating: attempts + lapsed window → close,
//! └──────────┘                   └──────────┘  or a supervisor's justification
//!                                   │ dissatisfied → new round with the same unit
//!                                   │ (to dispatch when the unit is deactivated);
//!                                   ▼ the second dissatisfied rating also escalates (督办)
//!                                 assigned
//! ```
//!
//! Clocks ([`lifecycle::Case::running_clocks`]): the stage's (assignment, sign-for, handling,
//! reply, follow-up), the acknowledgement owed to an identified citizen, and the overall clock
//! from acceptance, which no transfer, return or reopen resets. Pausing (waiting for the
//! citizen; not at sign-for, and not once a clock is past due) stops them all; a return waiting
//! for the dispatcher stops the unit's stage clock (unless it was already past due), and a
//! refusal credits the wait; a linked
//! duplicate's stop for good (it still gets its own reply before it closes). An extended case
//! closes only after the citizen's extension notice.
//!
//! Rules ([`error::DomainError`] names each):
//! - an accusation never goes to the accused unit or a unit under it ([`error::DomainError::Recusal`]);
//! - nothing is handled before it is assigned ([`error::DomainError::HandledBeforeAssigned`]);
//! - nothing is closed before the citizen was fed back (件件有回音), unless it was rejected
//!   ([`error::DomainError::ClosedBeforeFeedback`]); a fed-back case closes after the follow-up
//!   ([`error::DomainError::FollowUpPending`]);
//! - a dissatisfied rating reopens the case for rework in a new round; a supervisor may instead
//!   close it with a written justification ([`error::DomainError::JustificationRequired`]);
//! - a closed case changes only by an explicit reopen ([`error::DomainError::CaseClosed`]); the
//!   one exception is the access record of a reveal of personal data, which must never be
//!   refused, because every look at an identity has to be in the history;
//! - a deadline can be extended once per round by at most 30 days, with a reason, and the
//!   approver is recorded; the overall clock moves with it once in the case's life;
//! - duplicates form no chains or cycles: the caller checks the other case under both locks.
//!
//! Deadlines: [`deadline`]. Working calendar: [`calendar`]. Overdue is
//! [`lifecycle::Case::is_overdue`] / [`lifecycle::Case::deadline_status`]: pure functions of
//! state, `now` and the calendar.

pub mod calendar;
pub mod deadline;
pub mod error;
pub mod events;
pub mod ids;
pub mod kpi;
pub mod lifecycle;
pub mod notice;
pub mod personal;
pub mod records;
pub mod trends;

pub use calendar::WorkingCalendar;
pub use deadline::{
    Deadline, DeadlinePolicy, DeadlineRule, DeadlineStatus, Limit, PolicySource, Stage, Urgency, deadline_status,
    permille_used,
};
pub use error::{DomainError, HistoryError, ValidationError};
pub use events::{
    CaseEvent, CaseKind, Channel, Complainant, ContactChannel, FeedbackMethod, Location, NonAcceptanceCode, NoticeKind,
    NoticeType, Outcome, Rating, RatingMethod, RevealPurpose, SealedPersonalData, Tier,
};
pub use ids::{
    ActorId, Address, CaseId, CategoryId, Coordinates, Description, MIN_REASON_LETTERS, Name, Reason, ReceiptCode,
    RecordId, SubjectId, Text, Title, UnitId, UnitKind, is_blank, is_invisible, states_a_reason,
};
pub use lifecycle::{
    Actor, Case, Command, Context, FlatUnits, LinkTarget, Registration, Role, Status, UnitDirectory, decide, evolve,
    replay,
};

/// Truncates a time to whole microseconds, the precision PostgreSQL keeps, so that what the
/// domain decides and what the store returns compare equal.
pub fn truncate_to_micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::{DurationRound, TimeDelta};
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

//! # Huiyin's domain: the life of a case (诉求), as commands, events and state
//!
//! This crate is pure: it does no I/O and cannot fail for I/O reasons. Time, the working
//! calendar and the deadline policy come in as values ([`lifecycle::Context`]).
//!
//! ## The state machine
//!
//! ```text
//!            register
//!               │
//!               ▼           reject                      close
//!          ┌─────────┐ ───────────────► ┌──────────┐ ───────────► ┌────────┐
//!          │received │                  │ rejected │              │ closed │
//!          └─────────┘ ◄─── reopen ──── └──────────┘              └────────┘
//!            │    ▲                                                  ▲  │
//!     assign │    │ transfer (back to intake)                  close │  │ reopen
//!            ▼    │                                                  │  ▼
//!          ┌─────────┐  handle   ┌─────────┐  feedback  ┌──────────┐ │ (new round,
//!          │assigned │ ────────► │ handled │ ─────────► │ fed_back │─┘  same unit)
//!          └─────────┘           └─────────┘            └──────────┘
//!           ▲  │  ▲  transfer to another unit,              │
//!           │  └──┘  extend (once per round)                │ satisfaction = dissatisfied,
//!           │                                               │ or reopen
//!           └───────────────── new round (重办) ◄────────────┘
//! ```
//!
//! Rules ([`error::DomainError`] names each):
//! - nothing is handled before it is assigned ([`error::DomainError::HandledBeforeAssigned`]);
//! - nothing is closed before the citizen was fed back (件件有回音), unless it was rejected or
//!   linked as a duplicate ([`error::DomainError::ClosedBeforeFeedback`]);
//! - a dissatisfied rating reopens the case for rework in a new round with the same unit; a
//!   supervisor may instead close it with a written justification
//!   ([`error::DomainError::JustificationRequired`]);
//! - a closed case changes only by an explicit reopen ([`error::DomainError::CaseClosed`]); the
//!   one exception is the access record of a reveal of personal data, which must never be
//!   refused, because every look at an identity has to be in the history;
//! - a deadline can be extended once per round by at most 30 days, with a reason, and the
//!   approver is recorded;
//! - escalation (督办), notes, classification and duplicate links are allowed in any open status.
//!
//! Deadlines: [`deadline`]. Working calendar: [`calendar`]. Overdue is
//! [`lifecycle::Case::is_overdue`] / [`lifecycle::Case::deadline_status`]: pure functions of
//! state, `now` and the calendar.

pub mod calendar;
pub mod deadline;
pub mod error;
pub mod events;
pub mod ids;
pub mod lifecycle;

pub use calendar::WorkingCalendar;
pub use deadline::{
    Deadline, DeadlinePolicy, DeadlineRule, DeadlineStatus, Limit, PolicySource, Stage, Urgency, deadline_status,
    permille_used,
};
pub use error::{DomainError, HistoryError, ValidationError};
pub use events::{CaseEvent, CaseKind, Channel, Complainant, FeedbackMethod, Outcome, Rating, SealedPersonalData};
pub use ids::{
    ActorId, CaseId, CategoryId, Description, Reason, ReceiptCode, SubjectId, Text, Title, UnitId, UnitKind,
};
pub use lifecycle::{Actor, Case, Command, Context, Registration, Role, Status, decide, evolve, replay};

/// Truncates a time to whole microseconds, the precision PostgreSQL keeps, so that what the
/// domain decides and what the store returns compare equal.
pub fn truncate_to_micros(t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
    use chrono::{DurationRound, TimeDelta};
    t.duration_trunc(TimeDelta::microseconds(1)).unwrap_or(t)
}

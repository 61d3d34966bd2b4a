//! The case aggregate: commands → events → state.
//!
//! [`decide`] checks a command against the current state and returns the events it causes, or a
//! typed [`DomainError`]; [`evolve`] folds one event into the state. Replaying a case is
//! `events.fold(None, evolve)`; the projections use the same fold, so the rules live here once.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::WorkingCalendar;
use crate::deadline::{Deadline, DeadlinePolicy, DeadlineRule, DeadlineStatus, Stage, Urgency};
use crate::error::{DomainError, HistoryError};
use crate::events::{CaseEvent, *};
use crate::ids::{ActorId, CaseId, CategoryId, Description, Reason, ReceiptCode, SubjectId, Text, Title, UnitId};

/// The status of a case as the ledger shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// 受理: registered, waiting to be routed.
    Received,
    /// 不予受理: not accepted, with a reason.
    Rejected,
    /// 交办: routed to a unit, being handled (also after a reopen, in a new round).
    Assigned,
    /// 办理: the unit recorded what it found and did.
    Handled,
    /// 反馈: the citizen was told the outcome.
    FedBack,
    /// 办结: finished and archived.
    Closed,
}

impl Status {
    /// The status's identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Rejected => "rejected",
            Self::Assigned => "assigned",
            Self::Handled => "handled",
            Self::FedBack => "fed_back",
            Self::Closed => "closed",
        }
    }

    /// The stage whose deadline runs in this status, if any.
    pub fn stage(self) -> Option<Stage> {
        match self {
            Self::Received => Some(Stage::Assignment),
            Self::Assigned => Some(Stage::Handling),
            Self::Handled => Some(Stage::Feedback),
            Self::Rejected | Self::FedBack | Self::Closed => None,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The roles the lifecycle cares about. Which role may send which command is the API's
/// authorisation table; the domain only needs to know who may override a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Registers, classifies, routes, rejects.
    Clerk,
    /// Works the cases routed to their unit.
    Handler,
    /// Supervises: extends, escalates, reopens, closes (纪委 / 监察).
    Supervisor,
    /// Reads everything, writes nothing.
    Auditor,
    /// Maintains reference data.
    Admin,
    /// A citizen following their own case.
    Citizen,
}

impl Role {
    /// The role's identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Clerk => "clerk",
            Self::Handler => "handler",
            Self::Supervisor => "supervisor",
            Self::Auditor => "auditor",
            Self::Admin => "admin",
            Self::Citizen => "citizen",
        }
    }
}

/// Who sends a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The caller's id.
    pub id: ActorId,
    /// The caller's role.
    pub role: Role,
}

/// Facts from outside that a decision needs, looked up by the caller and passed in as values.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The current time (truncated to microseconds by the caller, as the store keeps them).
    pub now: DateTime<Utc>,
    /// Who sends the command.
    pub actor: &'a Actor,
    /// The working calendar.
    pub calendar: &'a WorkingCalendar,
    /// The deadline policy of the case's category (of the command's category on register).
    pub policy: &'a DeadlinePolicy,
}

/// A registration: everything intake records about a new case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The new case's id, chosen by the caller.
    pub id: CaseId,
    /// How the case came in.
    pub channel: Channel,
    /// Complaint, suggestion or report.
    pub kind: CaseKind,
    /// A short title.
    pub title: Title,
    /// What the citizen said.
    pub description: Description,
    /// The category, when intake can already tell.
    pub category: Option<CategoryId>,
    /// The village / farm / community the case concerns.
    pub village: Option<UnitId>,
    /// A unit the complaint is about (检举控告): its handlers never see who complained.
    pub accused_unit: Option<UnitId>,
    /// Normal or urgent.
    pub urgency: Urgency,
    /// When the case was received; may be in the past (paper intake), never in the future.
    pub received_at: DateTime<Utc>,
    /// Who complained, sealed.
    pub complainant: Complainant,
}

/// What a command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// 受理: register a new case.
    Register(Box<Registration>),
    /// Set or change the category. Existing deadlines stay as they are.
    Classify {
        /// The new category.
        category: CategoryId,
    },
    /// 不予受理: refuse the case, with a reason for the citizen.
    Reject {
        /// Why.
        reason: Reason,
    },
    /// 交办: route the case to a unit.
    Assign {
        /// The unit responsible.
        unit: UnitId,
        /// A deadline shorter than the policy's, if wanted.
        due_at: Option<DateTime<Utc>>,
        /// Instructions for the unit.
        note: Option<Text>,
    },
    /// 转办 / 退单: the unit says the case is not theirs.
    Transfer {
        /// Why.
        reason: Reason,
        /// Another unit to route it to; without one it goes back to intake.
        to_unit: Option<UnitId>,
    },
    /// 延期: extend the handling deadline.
    ExtendDeadline {
        /// The new deadline.
        due_at: DateTime<Utc>,
        /// Why.
        reason: Reason,
    },
    /// 办理: record what the unit found and did.
    Handle {
        /// How it came out.
        outcome: Outcome,
        /// What was found and done.
        result: Text,
    },
    /// 反馈: record that the citizen was told the outcome.
    FeedBack {
        /// How.
        method: FeedbackMethod,
        /// What was said.
        content: Text,
    },
    /// 回访: record the citizen's satisfaction. A dissatisfied rating reopens the case.
    RecordSatisfaction {
        /// The rating.
        rating: Rating,
        /// What the citizen said.
        comment: Option<Text>,
    },
    /// 重办: send the case back for rework.
    Reopen {
        /// Why.
        reason: Reason,
    },
    /// 督办: put the case under supervision.
    Escalate {
        /// Why.
        reason: Reason,
    },
    /// 合并: fold this case into another one.
    LinkDuplicate {
        /// The case this one duplicates.
        of: CaseId,
    },
    /// Undo a duplicate link.
    UnlinkDuplicate {
        /// Why.
        reason: Reason,
    },
    /// Add a note to the history.
    AddNote {
        /// The note.
        text: Text,
    },
    /// 办结: close and archive.
    Close {
        /// A closing note; required as the justification when the citizen was dissatisfied.
        note: Option<Text>,
    },
    /// Record that someone saw the complainant's identity in clear, and why.
    RevealComplainant {
        /// The stated purpose.
        purpose: Reason,
    },
    /// Record that the complainant's personal data was erased (its key shredded).
    ErasePersonalData,
}

impl Command {
    /// The command's name, as used in errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Register(_) => "register",
            Self::Classify { .. } => "classify",
            Self::Reject { .. } => "reject",
            Self::Assign { .. } => "assign",
            Self::Transfer { .. } => "transfer",
            Self::ExtendDeadline { .. } => "extend",
            Self::Handle { .. } => "handle",
            Self::FeedBack { .. } => "feedback",
            Self::RecordSatisfaction { .. } => "satisfaction",
            Self::Reopen { .. } => "reopen",
            Self::Escalate { .. } => "escalate",
            Self::LinkDuplicate { .. } => "link-duplicate",
            Self::UnlinkDuplicate { .. } => "unlink-duplicate",
            Self::AddNote { .. } => "note",
            Self::Close { .. } => "close",
            Self::RevealComplainant { .. } => "reveal",
            Self::ErasePersonalData => "erase",
        }
    }
}

/// The current round's handling record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandlingRecord {
    /// How it came out.
    pub outcome: Outcome,
    /// What was found and done.
    pub result: Text,
    /// When.
    pub at: DateTime<Utc>,
}

/// The current round's reply to the citizen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    /// How.
    pub method: FeedbackMethod,
    /// What was said.
    pub content: Text,
    /// When.
    pub at: DateTime<Utc>,
}

/// The current round's satisfaction rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SatisfactionRecord {
    /// The rating.
    pub rating: Rating,
    /// The citizen's words.
    pub comment: Option<Text>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A case's state: the fold of its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// The case's id.
    pub id: CaseId,
    /// How many events the case has.
    pub version: u32,
    /// The citizen's receipt code.
    pub receipt_code: ReceiptCode,
    /// How it came in.
    pub channel: Channel,
    /// Complaint, suggestion or report.
    pub kind: CaseKind,
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// Category.
    pub category: Option<CategoryId>,
    /// The village it concerns.
    pub village: Option<UnitId>,
    /// The unit the complaint is about.
    pub accused_unit: Option<UnitId>,
    /// Urgency.
    pub urgency: Urgency,
    /// Who complained, sealed.
    pub complainant: Complainant,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// Where it stands.
    pub status: Status,
    /// The handling round: 1, then +1 at every reopen for rework.
    pub round: u32,
    /// The unit currently responsible (the last one, once handled / closed).
    pub unit: Option<UnitId>,
    /// The deadline of the stage the case is in, if a deadline runs.
    pub deadline: Option<Deadline>,
    /// Extensions granted in this round.
    pub extensions_this_round: u8,
    /// When it was last assigned.
    pub assigned_at: Option<DateTime<Utc>>,
    /// This round's handling.
    pub handling: Option<HandlingRecord>,
    /// This round's reply.
    pub feedback: Option<FeedbackRecord>,
    /// This round's rating.
    pub satisfaction: Option<SatisfactionRecord>,
    /// The round whose reply the citizen rated dissatisfied, if the case was reopened for it.
    pub dissatisfied_round: Option<u32>,
    /// Whether the citizen was ever told an outcome.
    pub ever_fed_back: bool,
    /// Why the case was rejected, while it is.
    pub rejection: Option<Reason>,
    /// Whether and why it is under supervision.
    pub escalation: Option<Reason>,
    /// The case this one duplicates.
    pub duplicate_of: Option<CaseId>,
    /// How many notes the history holds.
    pub notes: u32,
    /// When it was closed, while it is.
    pub closed_at: Option<DateTime<Utc>>,
    /// Whether personal data was erased (the key shredded).
    pub personal_data_erased: bool,
}

impl Case {
    /// Where the current deadline stands at `now`; `None` when no deadline runs.
    pub fn deadline_status(&self, now: DateTime<Utc>, calendar: &WorkingCalendar) -> Option<DeadlineStatus> {
        self.deadline.as_ref().map(|d| d.status_at(now, calendar))
    }

    /// Whether the case is past its current deadline at `now`. A pure function of state and
    /// time: never a stored flag.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.deadline.is_some_and(|d| now > d.due_at)
    }

    /// Checks the invariants every reachable state satisfies. Used by the property tests and by
    /// `huiyin verify --projections`.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let stage = self.deadline.map(|d| d.stage);
        if stage != self.status.stage() {
            return Err("the running deadline does not match the status");
        }
        match self.status {
            Status::Received if self.unit.is_some() => return Err("a received case has no unit"),
            Status::Assigned if self.unit.is_none() => return Err("an assigned case has a unit"),
            Status::Handled if self.handling.is_none() || self.unit.is_none() => {
                return Err("a handled case has a handling record and a unit");
            }
            Status::FedBack if self.feedback.is_none() || self.handling.is_none() => {
                return Err("a fed-back case has a reply and a handling record");
            }
            Status::Rejected if self.rejection.is_none() => {
                return Err("a rejected case has a reason");
            }
            Status::Closed if !(self.ever_fed_back || self.rejection.is_some() || self.duplicate_of.is_some()) => {
                return Err("a closed case was fed back, rejected or linked as a duplicate");
            }
            _ => {}
        }
        if self.round == 0 {
            return Err("rounds start at 1");
        }
        if self.feedback.is_some() && !self.ever_fed_back {
            return Err("a reply implies ever_fed_back");
        }
        if self.duplicate_of == Some(self.id) {
            return Err("a case is not its own duplicate");
        }
        Ok(())
    }
}

fn transition(command: &Command, case: &Case) -> DomainError {
    DomainError::InvalidTransition { command: command.name(), status: case.status }
}

/// Decides what a command causes. Pure: all facts come in through `state` and `ctx`.
pub fn decide(state: Option<&Case>, command: &Command, ctx: &Context<'_>) -> Result<Vec<CaseEvent>, DomainError> {
    let Some(case) = state else {
        return match command {
            Command::Register(r) => register(r, ctx),
            _ => Err(DomainError::NotRegistered),
        };
    };
    // Data protection never waits for a reopen: reveals are recorded and erasures done on
    // closed cases too.
    if case.status == Status::Closed
        && !matches!(command, Command::Reopen { .. } | Command::RevealComplainant { .. } | Command::ErasePersonalData)
    {
        return match command {
            Command::Register(_) => Err(DomainError::AlreadyRegistered),
            _ => Err(DomainError::CaseClosed),
        };
    }
    let policy = ctx.policy;
    let deadline = |stage: Stage, start: DateTime<Utc>| policy.deadline(stage, case.urgency, start, ctx.calendar);
    let events = match command {
        Command::Register(_) => return Err(DomainError::AlreadyRegistered),
        Command::Classify { category } => vec![CaseEvent::Classified(Classified { category: *category })],
        Command::Reject { reason } => {
            if case.status != Status::Received {
                return Err(transition(command, case));
            }
            vec![CaseEvent::Rejected(Rejected { reason: reason.clone() })]
        }
        Command::Assign { unit, due_at, note } => {
            if case.status != Status::Received {
                return Err(transition(command, case));
            }
            let policy_deadline = deadline(Stage::Handling, ctx.now)?;
            let deadline = explicit_deadline(policy_deadline, *due_at, ctx.now)?;
            vec![CaseEvent::Assigned(Assigned { unit: *unit, deadline, note: note.clone() })]
        }
        Command::Transfer { reason, to_unit } => {
            if case.status != Status::Assigned {
                return Err(transition(command, case));
            }
            let to = match to_unit {
                Some(u) if Some(*u) == case.unit => return Err(DomainError::SameUnit),
                Some(u) => Some(TransferTarget { unit: *u, deadline: deadline(Stage::Handling, ctx.now)? }),
                None => None,
            };
            let back_to_intake = if to.is_none() { Some(deadline(Stage::Assignment, ctx.now)?) } else { None };
            vec![CaseEvent::Transferred(Transferred {
                from_unit: case.unit,
                reason: reason.clone(),
                to,
                intake_deadline: back_to_intake,
            })]
        }
        Command::ExtendDeadline { due_at, reason } => {
            let Some(current) = case.deadline.filter(|_| case.status == Status::Assigned) else {
                return Err(transition(command, case));
            };
            if case.extensions_this_round >= policy.max_extensions {
                return Err(DomainError::ExtensionLimitReached);
            }
            if *due_at <= current.due_at {
                return Err(DomainError::DeadlineNotLater);
            }
            if *due_at - current.due_at > Duration::days(i64::from(policy.max_extension_days)) {
                return Err(DomainError::ExtensionTooLong { max_days: policy.max_extension_days });
            }
            let deadline = Deadline {
                stage: Stage::Handling,
                due_at: *due_at,
                started_at: current.started_at,
                rule: DeadlineRule::Extended { previous_due_at: current.due_at },
            };
            vec![CaseEvent::DeadlineExtended(DeadlineExtended {
                deadline,
                reason: reason.clone(),
                approved_by: ctx.actor.id.clone(),
            })]
        }
        Command::Handle { outcome, result } => {
            match case.status {
                Status::Assigned => {}
                Status::Received | Status::Rejected => {
                    return Err(DomainError::HandledBeforeAssigned);
                }
                _ => return Err(transition(command, case)),
            }
            let feedback_deadline = deadline(Stage::Feedback, ctx.now)?;
            vec![CaseEvent::Handled(Handled { outcome: *outcome, result: result.clone(), feedback_deadline })]
        }
        Command::FeedBack { method, content } => {
            if case.status != Status::Handled {
                return Err(transition(command, case));
            }
            vec![CaseEvent::FedBack(FedBack { method: *method, content: content.clone() })]
        }
        Command::RecordSatisfaction { rating, comment } => {
            if case.status != Status::FedBack {
                return Err(transition(command, case));
            }
            if case.satisfaction.is_some() {
                return Err(DomainError::AlreadyRated);
            }
            let mut events = vec![CaseEvent::SatisfactionRecorded(SatisfactionRecorded {
                rating: *rating,
                comment: comment.clone(),
            })];
            if *rating == Rating::Dissatisfied {
                // A dissatisfied follow-up goes back to the same unit for rework, in a new round.
                events.push(CaseEvent::Reopened(Reopened {
                    reason: ReopenReason::Dissatisfied,
                    note: None,
                    round: case.round + 1,
                    unit: case.unit,
                    deadline: deadline(if case.unit.is_some() { Stage::Handling } else { Stage::Assignment }, ctx.now)?,
                }));
            }
            events
        }
        Command::Reopen { reason } => {
            let (unit, stage) = match case.status {
                Status::Handled | Status::FedBack => (case.unit, Stage::Handling),
                Status::Rejected => (None, Stage::Assignment),
                Status::Closed if case.ever_fed_back && case.unit.is_some() => (case.unit, Stage::Handling),
                Status::Closed => (None, Stage::Assignment),
                Status::Received | Status::Assigned => {
                    return Err(DomainError::NothingToReopen { status: case.status });
                }
            };
            vec![CaseEvent::Reopened(Reopened {
                reason: ReopenReason::Decision,
                note: Some(reason.clone()),
                round: if stage == Stage::Handling { case.round + 1 } else { case.round },
                unit,
                deadline: deadline(stage, ctx.now)?,
            })]
        }
        Command::Escalate { reason } => {
            if case.escalation.is_some() {
                return Err(DomainError::AlreadyEscalated);
            }
            if case.status == Status::Rejected {
                return Err(transition(command, case));
            }
            vec![CaseEvent::Escalated(Escalated { reason: reason.clone() })]
        }
        Command::LinkDuplicate { of } => {
            if *of == case.id {
                return Err(DomainError::SelfDuplicate);
            }
            if case.duplicate_of.is_some() {
                return Err(DomainError::AlreadyDuplicate);
            }
            vec![CaseEvent::LinkedAsDuplicate(LinkedAsDuplicate { of: *of })]
        }
        Command::UnlinkDuplicate { reason } => {
            let Some(of) = case.duplicate_of else {
                return Err(DomainError::NotDuplicate);
            };
            vec![CaseEvent::UnlinkedAsDuplicate(UnlinkedAsDuplicate { of, reason: reason.clone() })]
        }
        Command::AddNote { text } => vec![CaseEvent::NoteAdded(NoteAdded { text: text.clone() })],
        Command::Close { note } => {
            let justified = match case.status {
                Status::FedBack => false,
                Status::Rejected => false,
                _ if case.duplicate_of.is_some() => false,
                // Closing over a dissatisfied citizen during rework: the citizen was answered
                // before, a supervisor decides that the answer stands, in writing.
                Status::Assigned if case.dissatisfied_round == Some(case.round - 1) => {
                    if ctx.actor.role != Role::Supervisor || note.is_none() {
                        return Err(DomainError::JustificationRequired);
                    }
                    true
                }
                _ => return Err(DomainError::ClosedBeforeFeedback),
            };
            vec![CaseEvent::Closed(Closed { note: note.clone(), over_dissatisfaction: justified })]
        }
        Command::RevealComplainant { purpose } => {
            if case.complainant.sealed.is_none() || case.personal_data_erased {
                return Err(DomainError::NoPersonalData);
            }
            vec![CaseEvent::ComplainantRevealed(ComplainantRevealed {
                purpose: purpose.clone(),
                by: ctx.actor.id.clone(),
            })]
        }
        Command::ErasePersonalData => {
            let Some(sealed) = case.complainant.sealed.as_ref().filter(|_| !case.personal_data_erased) else {
                return Err(DomainError::NoPersonalData);
            };
            vec![CaseEvent::PersonalDataErased(PersonalDataErased { subject: sealed.subject })]
        }
    };
    Ok(events)
}

fn register(r: &Registration, ctx: &Context<'_>) -> Result<Vec<CaseEvent>, DomainError> {
    if r.received_at > ctx.now {
        return Err(DomainError::ReceivedInFuture);
    }
    // Paper intake is entered later: the routing clock starts when the case was received.
    let assign_deadline = ctx.policy.deadline(Stage::Assignment, r.urgency, r.received_at, ctx.calendar)?;
    Ok(vec![CaseEvent::Received(Received {
        receipt_code: ReceiptCode::for_case(r.id, r.received_at),
        channel: r.channel,
        kind: r.kind,
        title: r.title.clone(),
        description: r.description.clone(),
        category: r.category,
        village: r.village,
        accused_unit: r.accused_unit,
        urgency: r.urgency,
        received_at: r.received_at,
        complainant: r.complainant.clone(),
        assign_deadline,
    })])
}

fn explicit_deadline(
    policy: Deadline,
    due_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Deadline, DomainError> {
    match due_at {
        None => Ok(policy),
        Some(t) if t <= now => Err(DomainError::DeadlineInPast),
        Some(t) if t > policy.due_at => Err(DomainError::DeadlineBeyondPolicy),
        Some(t) => Ok(Deadline { due_at: t, rule: DeadlineRule::Explicit { policy_due_at: policy.due_at }, ..policy }),
    }
}

/// Folds one event into the state. `at` is the time the event was recorded. Only a history
/// that does not start with `case.received`, or repeats it, fails: every other event applies
/// unconditionally, because [`decide`] checked it before it was recorded.
pub fn evolve(state: Option<Case>, id: CaseId, event: &CaseEvent, at: DateTime<Utc>) -> Result<Case, HistoryError> {
    let mut case = match (state, event) {
        (None, CaseEvent::Received(e)) => {
            return Ok(Case {
                id,
                version: 1,
                receipt_code: e.receipt_code.clone(),
                channel: e.channel,
                kind: e.kind,
                title: e.title.clone(),
                description: e.description.clone(),
                category: e.category,
                village: e.village,
                accused_unit: e.accused_unit,
                urgency: e.urgency,
                complainant: e.complainant.clone(),
                received_at: e.received_at,
                status: Status::Received,
                round: 1,
                unit: None,
                deadline: Some(e.assign_deadline),
                extensions_this_round: 0,
                assigned_at: None,
                handling: None,
                feedback: None,
                satisfaction: None,
                dissatisfied_round: None,
                ever_fed_back: false,
                rejection: None,
                escalation: None,
                duplicate_of: None,
                notes: 0,
                closed_at: None,
                personal_data_erased: false,
            });
        }
        (None, _) => return Err(HistoryError::MissingReceived),
        (Some(_), CaseEvent::Received(_)) => return Err(HistoryError::DuplicateReceived),
        (Some(c), _) => c,
    };
    case.version += 1;
    match event {
        CaseEvent::Received(_) => {}
        CaseEvent::Classified(e) => case.category = Some(e.category),
        CaseEvent::Rejected(e) => {
            case.status = Status::Rejected;
            case.rejection = Some(e.reason.clone());
            case.deadline = None;
        }
        CaseEvent::Assigned(e) => {
            case.status = Status::Assigned;
            case.unit = Some(e.unit);
            case.deadline = Some(e.deadline);
            case.assigned_at = Some(at);
        }
        CaseEvent::Transferred(e) => match &e.to {
            Some(to) => {
                case.unit = Some(to.unit);
                case.deadline = Some(to.deadline);
                case.assigned_at = Some(at);
                case.extensions_this_round = 0;
            }
            None => {
                case.status = Status::Received;
                case.unit = None;
                case.deadline = e.intake_deadline;
                case.extensions_this_round = 0;
            }
        },
        CaseEvent::DeadlineExtended(e) => {
            case.deadline = Some(e.deadline);
            case.extensions_this_round += 1;
        }
        CaseEvent::Handled(e) => {
            case.status = Status::Handled;
            case.handling = Some(HandlingRecord { outcome: e.outcome, result: e.result.clone(), at });
            case.deadline = Some(e.feedback_deadline);
        }
        CaseEvent::FedBack(e) => {
            case.status = Status::FedBack;
            case.feedback = Some(FeedbackRecord { method: e.method, content: e.content.clone(), at });
            case.ever_fed_back = true;
            case.deadline = None;
        }
        CaseEvent::SatisfactionRecorded(e) => {
            case.satisfaction = Some(SatisfactionRecord { rating: e.rating, comment: e.comment.clone(), at });
            if e.rating == Rating::Dissatisfied {
                case.dissatisfied_round = Some(case.round);
            }
        }
        CaseEvent::Reopened(e) => {
            case.round = e.round;
            case.unit = e.unit;
            case.status = if e.unit.is_some() { Status::Assigned } else { Status::Received };
            if e.unit.is_some() {
                case.assigned_at = Some(at);
            }
            case.deadline = Some(e.deadline);
            case.extensions_this_round = 0;
            case.handling = None;
            case.feedback = None;
            case.satisfaction = None;
            case.rejection = None;
            case.closed_at = None;
        }
        CaseEvent::Escalated(e) => case.escalation = Some(e.reason.clone()),
        CaseEvent::LinkedAsDuplicate(e) => case.duplicate_of = Some(e.of),
        CaseEvent::UnlinkedAsDuplicate(_) => case.duplicate_of = None,
        CaseEvent::NoteAdded(_) => case.notes += 1,
        CaseEvent::Closed(_) => {
            case.status = Status::Closed;
            case.deadline = None;
            case.closed_at = Some(at);
        }
        CaseEvent::ComplainantRevealed(_) => {}
        CaseEvent::PersonalDataErased(_) => case.personal_data_erased = true,
    }
    Ok(case)
}

/// Replays a case from its events: `(event, recorded at)` in version order.
pub fn replay<'a>(
    id: CaseId,
    events: impl IntoIterator<Item = (&'a CaseEvent, DateTime<Utc>)>,
) -> Result<Option<Case>, HistoryError> {
    let mut state: Option<Case> = None;
    for (event, at) in events {
        state = Some(evolve(state, id, event, at)?);
    }
    Ok(state)
}

/// The sealed identity of a subject, as the events carry it.
pub fn complainant_subject(case: &Case) -> Option<SubjectId> {
    case.complainant.sealed.as_ref().map(|s| s.subject)
}

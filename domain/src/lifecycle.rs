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
    /// The caller's unit (handlers): the unit that signs, returns, contributes.
    pub unit: Option<UnitId>,
}

/// What the lifecycle needs to know of the organisation: which unit lies under which (for
/// recusal) and which units still work (rework never goes to a deactivated unit).
pub trait UnitDirectory: std::fmt::Debug + Sync {
    /// Whether `unit` is `ancestor` itself or lies under it.
    fn is_within(&self, unit: UnitId, ancestor: UnitId) -> bool;
    /// Whether `unit` exists and is active.
    fn is_active(&self, unit: UnitId) -> bool;
}

/// A directory with no hierarchy in which every unit is active (for callers that know no
/// more, and for tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct FlatUnits;

impl UnitDirectory for FlatUnits {
    fn is_within(&self, unit: UnitId, ancestor: UnitId) -> bool {
        unit == ancestor
    }
    fn is_active(&self, _: UnitId) -> bool {
        true
    }
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
    /// The organisation's units.
    pub units: &'a dyn UnitDirectory,
    /// The units accused by the cases linked to this one as duplicates (回避 reaches through a
    /// merge: the master is never handed to a unit its duplicates accuse). Read by the caller.
    pub linked_accused: &'a [UnitId],
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
    /// A unit the complaint is about (检举控告): the case never goes to it (回避).
    pub accused_unit: Option<UnitId>,
    /// Normal or urgent.
    pub urgency: Urgency,
    /// When the case was received; may be in the past (paper intake), never in the future.
    pub received_at: DateTime<Utc>,
    /// Who complained, sealed.
    pub complainant: Complainant,
    /// The campaign and phase it is received in, as the service found them.
    pub campaign: Option<crate::records::CampaignTag>,
    /// The record it comes from.
    pub source: Option<crate::records::CaseSource>,
    /// Where the matter is.
    pub location: Option<Location>,
}

/// What a command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// 登记: register a new case.
    Register(Box<Registration>),
    /// 受理: accept the case; the overall clock starts.
    Accept,
    /// 告知: record what the citizen was told, how and when.
    NotifyCitizen {
        /// What about.
        kind: NoticeKind,
        /// How.
        method: FeedbackMethod,
        /// What was said.
        content: Text,
        /// Whether the receipt code was given.
        receipt_code_given: bool,
        /// When the citizen was told, when that was before it is recorded (a call made, a letter
        /// posted earlier); between the case's receipt and now. Absent: now.
        notified_at: Option<DateTime<Utc>>,
    },
    /// Set or change the category. Existing deadlines stay as they are.
    Classify {
        /// The new category.
        category: CategoryId,
    },
    /// 不予受理: refuse the case, with a documented code and a reason for the citizen.
    Reject {
        /// The documented code.
        code: NonAcceptanceCode,
        /// Why, in words.
        reason: Reason,
        /// The body the citizen is referred to (required for some codes).
        referred_to: Option<Text>,
    },
    /// 交办: route the case to a unit (and co-units); the unit's sign-for clock starts.
    Assign {
        /// The lead unit.
        unit: UnitId,
        /// Co-units of joint handling (联办).
        co_units: Vec<UnitId>,
        /// A handling deadline shorter than the policy's, if wanted; applies from sign-for.
        due_at: Option<DateTime<Utc>>,
        /// Instructions for the unit.
        note: Option<Text>,
        /// The tier routed to, when known.
        tier: Option<Tier>,
    },
    /// 签收: the caller's unit (lead or co-unit) signs for the case.
    SignFor,
    /// 退单: the lead unit asks to give the case back, within the return window.
    RequestReturn {
        /// Why the case is not theirs.
        reason: Reason,
    },
    /// The dispatcher approves the return: to another unit, or back to intake.
    ApproveReturn {
        /// The next unit.
        to_unit: Option<UnitId>,
    },
    /// The dispatcher refuses the return: the unit must handle the case.
    RefuseReturn {
        /// Why.
        reason: Reason,
    },
    /// 转办: the dispatcher re-routes the case.
    Transfer {
        /// Why.
        reason: Reason,
        /// Another unit to route it to; without one it goes back to intake.
        to_unit: Option<UnitId>,
    },
    /// 联办: a co-unit records its contribution.
    Contribute {
        /// What it found and did.
        text: Text,
    },
    /// The handling unit asks for an extension.
    RequestExtension {
        /// The handling deadline asked for.
        due_at: DateTime<Utc>,
        /// Why.
        reason: Reason,
    },
    /// A supervisor approves the waiting extension request.
    ApproveExtension,
    /// A supervisor refuses the waiting extension request.
    RefuseExtension {
        /// Why.
        reason: Reason,
    },
    /// 延期: a supervisor extends the handling deadline directly.
    ExtendDeadline {
        /// The new deadline.
        due_at: DateTime<Utc>,
        /// Why.
        reason: Reason,
    },
    /// Pause the clocks while waiting for the citizen. Refused while a running clock is past due
    /// (`pause-overdue`).
    PauseClock {
        /// Why.
        reason: Reason,
    },
    /// Resume the clocks.
    ResumeClock,
    /// 办理: record what the unit found and did.
    Handle {
        /// How it came out.
        outcome: Outcome,
        /// What was found and done.
        result: Text,
    },
    /// 答复: record that the citizen was told the outcome.
    FeedBack {
        /// How.
        method: FeedbackMethod,
        /// What was said.
        content: Text,
    },
    /// 回访: a follow-up attempt that did not reach the citizen.
    RecordFollowUpAttempt {
        /// How it was tried.
        method: RatingMethod,
        /// What happened.
        note: Option<Text>,
    },
    /// 回访: record the citizen's satisfaction. A dissatisfied rating reopens the case.
    RecordSatisfaction {
        /// The rating.
        rating: Rating,
        /// What the citizen said.
        comment: Option<Text>,
        /// How it was collected.
        method: RatingMethod,
        /// The citizen's answer to "was it solved?".
        solved: Option<bool>,
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
    /// 合并: fold this case into another one. The caller reads the other case under both
    /// cases' locks; `target` is what it found there.
    LinkDuplicate {
        /// The case this one duplicates.
        of: CaseId,
        /// The other case's facts.
        target: LinkTarget,
    },
    /// A co-unit leaves joint handling (its unit was deactivated); another may take its place.
    ReplaceCoUnit {
        /// The co-unit that leaves.
        from: UnitId,
        /// The unit that takes its place.
        to: Option<UnitId>,
        /// Why.
        reason: Reason,
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
        /// A closing note; required as the justification when the citizen was dissatisfied
        /// or never rated.
        note: Option<Text>,
    },
    /// Record that someone saw the complainant's identity in clear, and why.
    RevealComplainant {
        /// Why, as a code from the documented list.
        purpose_code: RevealPurpose,
        /// Why, in words.
        purpose: Reason,
    },
    /// Record that the complainant's personal data was erased (its key shredded).
    ErasePersonalData,
    /// 撤回: the citizen withdraws the case, with a reason. Every clock stops and it closes.
    Withdraw {
        /// Why.
        reason: Reason,
    },
    /// 补充材料: the citizen adds information to an open case.
    SupplementInformation {
        /// What they add.
        text: Text,
    },
    /// The handling side asks the citizen a question through the case.
    AskCitizen {
        /// The question.
        question: Text,
    },
    /// The citizen answers a question asked through the case, once.
    AnswerQuestion {
        /// The question's number.
        question: u32,
        /// The answer.
        answer: Text,
    },
    /// The delivery worker records how an outbox notice ended: delivered, or failed for good.
    /// Allowed in every state, closed included (a reply leaves after the case closes).
    RecordNoticeDelivery {
        /// The outbox item.
        outbox_id: uuid::Uuid,
        /// What about.
        notice: NoticeType,
        /// How.
        channel: ContactChannel,
        /// Attempts made.
        attempts: u32,
        /// `None`: delivered; otherwise why it failed.
        failure: Option<Reason>,
    },
    /// Recompute the running clocks counted in working days by a policy (those counted into a
    /// year whose calendar was missing, or over days a corrected calendar changed) with the
    /// calendar in the context. Causes no event when nothing changes.
    RecomputeDeadlines,
}

impl Command {
    /// The command's name, as used in errors.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Register(_) => "register",
            Self::Accept => "accept",
            Self::NotifyCitizen { .. } => "notify",
            Self::Classify { .. } => "classify",
            Self::Reject { .. } => "reject",
            Self::Assign { .. } => "assign",
            Self::SignFor => "sign",
            Self::RequestReturn { .. } => "return",
            Self::ApproveReturn { .. } => "return-approve",
            Self::RefuseReturn { .. } => "return-refuse",
            Self::Transfer { .. } => "transfer",
            Self::Contribute { .. } => "contribute",
            Self::RequestExtension { .. } => "extension-request",
            Self::ApproveExtension => "extension-approve",
            Self::RefuseExtension { .. } => "extension-refuse",
            Self::ExtendDeadline { .. } => "extend",
            Self::PauseClock { .. } => "pause",
            Self::ResumeClock => "resume",
            Self::Handle { .. } => "handle",
            Self::FeedBack { .. } => "feedback",
            Self::RecordFollowUpAttempt { .. } => "follow-up-attempt",
            Self::RecordSatisfaction { .. } => "satisfaction",
            Self::Reopen { .. } => "reopen",
            Self::Escalate { .. } => "escalate",
            Self::LinkDuplicate { .. } => "link-duplicate",
            Self::ReplaceCoUnit { .. } => "replace-co-unit",
            Self::UnlinkDuplicate { .. } => "unlink-duplicate",
            Self::AddNote { .. } => "note",
            Self::Close { .. } => "close",
            Self::RevealComplainant { .. } => "reveal",
            Self::ErasePersonalData => "erase",
            Self::Withdraw { .. } => "withdraw",
            Self::SupplementInformation { .. } => "supplement",
            Self::AskCitizen { .. } => "ask",
            Self::AnswerQuestion { .. } => "answer",
            Self::RecordNoticeDelivery { .. } => "notice-delivery",
            Self::RecomputeDeadlines => "recompute-deadlines",
        }
    }
}

/// What a duplicate link must know of the other case, read under both cases' locks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkTarget {
    /// It is itself linked as a duplicate.
    pub is_duplicate: bool,
    /// Other cases are linked to the case being linked (it is a master).
    pub has_duplicates: bool,
    /// Its lead unit and co-units.
    pub units: Vec<UnitId>,
    /// The unit it accuses.
    pub accused_unit: Option<UnitId>,
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
    /// How it was collected (none in older events).
    pub method: Option<RatingMethod>,
    /// Who collected it (none in older events).
    pub collected_by: Option<ActorId>,
    /// The citizen's answer to "was it solved?".
    pub solved: Option<bool>,
}

/// A co-unit of joint handling (联办) and what it has done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoUnit {
    /// The unit.
    pub unit: UnitId,
    /// When it signed for the case.
    pub signed_at: Option<DateTime<Utc>>,
    /// When it recorded its contribution (the last one).
    pub contributed_at: Option<DateTime<Utc>>,
}

/// A request waiting for a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingExtension {
    /// The handling deadline asked for.
    pub due_at: DateTime<Utc>,
    /// Why.
    pub reason: Reason,
}

/// Paused clocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// Since when.
    pub since: DateTime<Utc>,
    /// Why.
    pub reason: Reason,
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
    /// The unit the complaint is about (never routed there: 回避).
    pub accused_unit: Option<UnitId>,
    /// Urgency.
    pub urgency: Urgency,
    /// Who complained, sealed.
    pub complainant: Complainant,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// When it was accepted (受理), if it was.
    pub accepted_at: Option<DateTime<Utc>>,
    /// When the citizen was sent the acknowledgement notice, if they were.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Where it stands.
    pub status: Status,
    /// The handling round: 1, then +1 at every reopen for rework.
    pub round: u32,
    /// The unit currently responsible (the lead unit; the last one, once handled / closed).
    pub unit: Option<UnitId>,
    /// The tier it was routed to.
    pub tier: Option<Tier>,
    /// Co-units of joint handling.
    pub co_units: Vec<CoUnit>,
    /// The deadline of the stage the case is in, if a deadline runs.
    pub deadline: Option<Deadline>,
    /// The acknowledgement clock (受理告知), while the notice is owed.
    pub acknowledgement: Option<Deadline>,
    /// The overall clock from acceptance: never reset by a transfer, a return or a reopen.
    pub overall: Option<Deadline>,
    /// The stage's clock while the case is linked as a duplicate (restored on unlink).
    pub suspended_deadline: Option<Deadline>,
    /// Extensions granted in this round.
    pub extensions_this_round: u8,
    /// An extension request waiting for a supervisor.
    pub extension_request: Option<PendingExtension>,
    /// When it was last assigned.
    pub assigned_at: Option<DateTime<Utc>>,
    /// The round at the unit is rework (返工: reopened to the unit that handled it): no return
    /// (退单) is open to it, as the unit took the case when it was first handed to it.
    pub rework: bool,
    /// When the lead unit signed for it.
    pub signed_at: Option<DateTime<Utc>>,
    /// A handling deadline set by the dispatcher, applied at sign-for.
    pub handling_due_at: Option<DateTime<Utc>>,
    /// A return (退单) waiting for the dispatcher, with its reason.
    pub return_request: Option<Reason>,
    /// The dispatcher refused this unit's return: it may not ask again in this assignment.
    pub return_refused: bool,
    /// The body a not-accepted citizen was referred to.
    pub referred_to: Option<Text>,
    /// How many returns were approved.
    pub returns: u32,
    /// Paused clocks.
    pub paused: Option<Pause>,
    /// This round's handling.
    pub handling: Option<HandlingRecord>,
    /// This round's reply.
    pub feedback: Option<FeedbackRecord>,
    /// Failed follow-up attempts since the last reply.
    pub follow_up_attempts: u32,
    /// This round's rating.
    pub satisfaction: Option<SatisfactionRecord>,
    /// The round whose reply the citizen rated dissatisfied, if the case was reopened for it.
    pub dissatisfied_round: Option<u32>,
    /// How many dissatisfied ratings the case has had.
    pub dissatisfied_count: u32,
    /// Whether the citizen was ever told an outcome.
    pub ever_fed_back: bool,
    /// Why the case was rejected, while it is.
    pub rejection: Option<Reason>,
    /// The non-acceptance code, while rejected.
    pub rejection_code: Option<NonAcceptanceCode>,
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
    /// Since when: a deadline was extended and the citizen has not yet been told (延期告知: 信访工作条例
    /// art. 32 asks that they be told why): the case does not close until the notice is recorded.
    #[serde(default)]
    pub extension_notice_owed: Option<DateTime<Utc>>,
    /// When the pending return stopped the lead unit's stage clock: it stands still while the
    /// dispatcher decides (the wait is not the unit's), and a refusal credits the wait. `None`
    /// when no return waits, or when it was asked for with the clock already past due: a limit
    /// already missed stays missed.
    #[serde(default)]
    pub return_stopped_clock_at: Option<DateTime<Utc>>,
    /// The free texts its history shows to whoever reads the case, in version order: each
    /// event's [`CaseEvent::texts`] (results and replies of every round, reasons, comments,
    /// contributions, notes). The ledger's search finds a case by these as by its title.
    #[serde(default)]
    pub history_texts: Vec<String>,
    /// The campaign and phase it was received in.
    #[serde(default)]
    pub campaign: Option<crate::records::CampaignTag>,
    /// The record it came from.
    #[serde(default)]
    pub source: Option<crate::records::CaseSource>,
    /// Where the matter is.
    #[serde(default)]
    pub location: Option<Location>,
    /// Why the citizen withdrew it (撤回), once they did: the case is closed.
    #[serde(default)]
    pub withdrawal: Option<Reason>,
    /// The questions asked through the case, in order (question `n` is at `n - 1`).
    #[serde(default)]
    pub questions: Vec<Question>,
    /// How many returns (退单) the dispatcher refused: each is a dispute over who owns the case.
    #[serde(default)]
    pub returns_refused: u32,
    /// What the case contributes to the KPIs, folded beside it ([`crate::kpi::observe`]).
    #[serde(default)]
    pub facts: Vec<crate::kpi::Fact>,
}

/// A question asked through the case and whether the citizen answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// When it was asked.
    pub asked_at: DateTime<Utc>,
    /// When the citizen answered, once they did.
    pub answered_at: Option<DateTime<Utc>>,
}

impl Case {
    /// The stage whose clock runs in the current state, if any: none for a linked duplicate
    /// (its clocks stop), sign-for until the lead unit signs, follow-up until the rating.
    pub fn expected_stage(&self) -> Option<Stage> {
        if self.duplicate_of.is_some() {
            return None;
        }
        match self.status {
            Status::Received => Some(Stage::Assignment),
            Status::Assigned if self.signed_at.is_none() => Some(Stage::SignFor),
            Status::Assigned => Some(Stage::Handling),
            Status::Handled => Some(Stage::Feedback),
            // A fed-back case in older histories has no follow-up clock.
            Status::FedBack if self.satisfaction.is_none() && self.deadline.is_some() => Some(Stage::FollowUp),
            _ => None,
        }
    }

    /// Whether the overall clock runs: accepted, not yet answered, not a duplicate.
    pub fn overall_running(&self) -> bool {
        self.overall.is_some()
            && self.duplicate_of.is_none()
            && matches!(self.status, Status::Received | Status::Assigned | Status::Handled)
    }

    /// Whether the acknowledgement clock runs.
    pub fn acknowledgement_running(&self) -> bool {
        self.acknowledgement.is_some() && self.status != Status::Closed && self.duplicate_of.is_none()
    }

    /// Every clock that runs now: the stage's, the acknowledgement and the overall clock.
    /// Paused clocks do not run.
    pub fn running_clocks(&self) -> Vec<Deadline> {
        if self.paused.is_some() {
            return Vec::new();
        }
        let mut out = Vec::new();
        out.extend(self.stage_clock());
        if self.acknowledgement_running() {
            out.extend(self.acknowledgement);
        }
        if self.overall_running() {
            out.extend(self.overall);
        }
        out
    }

    /// The stage's clock while it runs: not while a return waits for the dispatcher (the wait is
    /// the dispatcher's, not the unit's; a refusal credits it) unless the clock was past due
    /// when the return was asked for, nor while paused.
    pub fn stage_clock(&self) -> Option<Deadline> {
        self.deadline.filter(|_| !self.stage_clock_stopped())
    }

    /// Whether the stage's clock stands still: paused, or stopped by a pending return.
    pub fn stage_clock_stopped(&self) -> bool {
        self.paused.is_some() || self.return_stopped_clock_at.is_some()
    }

    /// Where the current stage's deadline stands at `now`; `None` when no deadline runs.
    pub fn deadline_status(&self, now: DateTime<Utc>, calendar: &WorkingCalendar) -> Option<DeadlineStatus> {
        self.deadline.as_ref().map(|d| d.status_at(now, calendar))
    }

    /// Whether any running clock is past its due time at `now`. A pure function of state and
    /// time: never a stored flag. Paused clocks and a linked duplicate's are never overdue.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.running_clocks().iter().any(|d| now > d.due_at)
    }

    /// Whether the lead-unit-only commands may be sent by this actor.
    fn check_lead(&self, actor: &Actor) -> Result<(), DomainError> {
        if actor.role == Role::Handler && (actor.unit.is_none() || actor.unit != self.unit) {
            return Err(DomainError::NotYourUnit { needed: "lead unit" });
        }
        Ok(())
    }

    /// Checks the invariants every reachable state satisfies. Used by the property tests and by
    /// `huiyin verify --projections`.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let stage = self.deadline.map(|d| d.stage);
        if stage != self.expected_stage() {
            return Err("the running deadline does not match the status");
        }
        match self.status {
            Status::Received if self.unit.is_some() => return Err("a received case has no unit"),
            Status::Assigned if self.unit.is_none() => return Err("an assigned case has a unit"),
            Status::Handled if self.handling.is_none() || self.unit.is_none() => {
                return Err("a handled case has a handling record and a unit");
            }
            Status::FedBack if self.feedback.is_none() => return Err("a fed-back case has a reply"),
            Status::FedBack if self.handling.is_none() && self.duplicate_of.is_none() => {
                return Err("a fed-back case that is not a duplicate has a handling record");
            }
            Status::Rejected if self.rejection.is_none() => {
                return Err("a rejected case has a reason");
            }
            Status::Closed if !(self.ever_fed_back || self.rejection.is_some() || self.withdrawal.is_some()) => {
                return Err("a closed case was fed back, rejected or withdrawn");
            }
            _ => {}
        }
        if self.round == 0 {
            return Err("rounds start at 1");
        }
        if self.return_stopped_clock_at.is_some() && self.return_request.is_none() {
            return Err("only a pending return stops the unit's clock");
        }
        if self.feedback.is_some() && !self.ever_fed_back {
            return Err("a reply implies ever_fed_back");
        }
        if self.duplicate_of == Some(self.id) {
            return Err("a case is not its own duplicate");
        }
        if let (Some(a), Some(u)) = (self.accused_unit, self.unit)
            && a == u
        {
            return Err("a case is never routed to the unit it accuses");
        }
        if self.co_units.iter().any(|c| Some(c.unit) == self.unit || Some(c.unit) == self.accused_unit) {
            return Err("a co-unit is neither the lead nor the accused unit");
        }
        if self.return_request.is_some() && self.status != Status::Assigned {
            return Err("a return waits only while assigned");
        }
        if self.overall.is_some() && self.accepted_at.is_none() {
            return Err("the overall clock starts at acceptance");
        }
        Ok(())
    }
}

fn transition(command: &Command, case: &Case) -> DomainError {
    DomainError::InvalidTransition { command: command.name(), status: case.status }
}

/// Refuses a unit that is the accused unit or lies under it (回避, 纪检监察机关处理检举控告
/// 工作规则 (2020) art. 47), the case's own accusation or one of a duplicate linked to it.
fn check_recusal(case: &Case, unit: UnitId, ctx: &Context<'_>) -> Result<(), DomainError> {
    let accused = case.accused_unit.iter().chain(ctx.linked_accused);
    if accused.into_iter().any(|a| ctx.units.is_within(unit, *a)) {
        return Err(DomainError::Recusal);
    }
    Ok(())
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
    // A withdrawn case is the citizen's decision: no one reopens it.
    if case.withdrawal.is_some() && matches!(command, Command::Reopen { .. }) {
        return Err(DomainError::CaseWithdrawn);
    }
    if case.status == Status::Closed
        && !matches!(
            command,
            Command::Reopen { .. }
                | Command::RevealComplainant { .. }
                | Command::ErasePersonalData
                | Command::RecordNoticeDelivery { .. }
        )
    {
        return match command {
            Command::Register(_) => Err(DomainError::AlreadyRegistered),
            _ => Err(DomainError::CaseClosed),
        };
    }
    // A linked duplicate is not worked on its own: it gets its own reply and closes.
    if case.duplicate_of.is_some()
        && matches!(
            command,
            Command::Accept
                | Command::Reject { .. }
                | Command::Assign { .. }
                | Command::SignFor
                | Command::RequestReturn { .. }
                | Command::ApproveReturn { .. }
                | Command::RefuseReturn { .. }
                | Command::Transfer { .. }
                | Command::Contribute { .. }
                | Command::RequestExtension { .. }
                | Command::ApproveExtension
                | Command::ExtendDeadline { .. }
                | Command::PauseClock { .. }
                | Command::Handle { .. }
                | Command::RecordFollowUpAttempt { .. }
                | Command::RecordSatisfaction { .. }
                | Command::Reopen { .. }
        )
    {
        return Err(DomainError::IsDuplicate);
    }
    // Paused clocks must be resumed before the case moves to another stage (or a return stops
    // them a second time, and its refusal would credit the same wait twice).
    if case.paused.is_some()
        && matches!(
            command,
            Command::RequestReturn { .. }
                | Command::Assign { .. }
                | Command::Transfer { .. }
                | Command::ApproveReturn { .. }
                | Command::Handle { .. }
                | Command::FeedBack { .. }
                | Command::Reject { .. }
                | Command::ExtendDeadline { .. }
                | Command::ApproveExtension
                | Command::LinkDuplicate { .. }
                | Command::Close { .. }
        )
    {
        return Err(DomainError::ClockPaused);
    }
    let policy = ctx.policy;
    let deadline = |stage: Stage, start: DateTime<Utc>| policy.deadline(stage, case.urgency, start, ctx.calendar);
    let events = match command {
        Command::Register(_) => return Err(DomainError::AlreadyRegistered),
        Command::Accept => {
            if case.status != Status::Received {
                return Err(transition(command, case));
            }
            if case.accepted_at.is_some() {
                return Err(DomainError::AlreadyAccepted);
            }
            vec![accepted(case, ctx)?]
        }
        Command::NotifyCitizen { kind, method, content, receipt_code_given, notified_at } => {
            if notified_at.is_some_and(|t| t > ctx.now || t < case.received_at) {
                return Err(DomainError::NoticeTimeOutOfRange);
            }
            // The notice tells the decision taken; it cannot stand in for one (an acknowledgement
            // stops the acknowledgement clock).
            let fits = match kind {
                NoticeKind::Acknowledgement => case.accepted_at.is_some(),
                NoticeKind::NonAcceptance => case.status == Status::Rejected,
                _ => true,
            };
            if !fits {
                return Err(DomainError::NoticeDoesNotFitDecision);
            }
            vec![CaseEvent::CitizenNotified(CitizenNotified {
                kind: *kind,
                method: *method,
                content: content.clone(),
                receipt_code_given: *receipt_code_given,
                notified_at: *notified_at,
            })]
        }
        Command::Classify { category } => vec![CaseEvent::Classified(Classified { category: *category })],
        Command::Reject { code, reason, referred_to } => {
            if case.status != Status::Received {
                return Err(transition(command, case));
            }
            if code.needs_referral() && referred_to.is_none() {
                return Err(DomainError::ReferralRequired);
            }
            vec![CaseEvent::Rejected(Rejected {
                reason: reason.clone(),
                code: Some(*code),
                referred_to: referred_to.clone(),
            })]
        }
        Command::Assign { unit, co_units, due_at, note, tier } => {
            if case.status != Status::Received {
                return Err(transition(command, case));
            }
            let mut seen = std::collections::HashSet::new();
            if co_units.iter().any(|c| c == unit || !seen.insert(*c)) {
                return Err(DomainError::InvalidCoUnits);
            }
            for u in std::iter::once(unit).chain(co_units) {
                check_recusal(case, *u, ctx)?;
            }
            // The explicit handling deadline may shorten the policy's, never lengthen it.
            if let Some(t) = due_at {
                explicit_deadline(deadline(Stage::Handling, ctx.now)?, Some(*t), ctx.now)?;
            }
            let mut events = Vec::new();
            // 交办 is itself an acceptance decision: an unaccepted case is accepted first.
            if case.accepted_at.is_none() {
                events.push(accepted(case, ctx)?);
            }
            events.push(CaseEvent::Assigned(Assigned {
                unit: *unit,
                deadline: deadline(Stage::SignFor, ctx.now)?,
                note: note.clone(),
                co_units: co_units.clone(),
                tier: *tier,
                handling_due_at: *due_at,
            }));
            events
        }
        Command::SignFor => {
            if case.status != Status::Assigned {
                return Err(transition(command, case));
            }
            // The case waits for the dispatcher's decision on the unit's return.
            if case.return_request.is_some() {
                return Err(DomainError::ReturnPending);
            }
            let Some(unit) = ctx.actor.unit else {
                return Err(DomainError::NotYourUnit { needed: "lead unit or a co-unit" });
            };
            if Some(unit) == case.unit {
                if case.signed_at.is_some() {
                    return Err(DomainError::AlreadySigned);
                }
                vec![CaseEvent::SignedFor(SignedFor { unit, handling: Some(handling_deadline(case, ctx)?) })]
            } else {
                match case.co_units.iter().find(|c| c.unit == unit) {
                    None => return Err(DomainError::NotYourUnit { needed: "lead unit or a co-unit" }),
                    Some(c) if c.signed_at.is_some() => return Err(DomainError::AlreadySigned),
                    Some(_) => vec![CaseEvent::SignedFor(SignedFor { unit, handling: None })],
                }
            }
        }
        Command::RequestReturn { reason } => {
            if case.status != Status::Assigned {
                return Err(transition(command, case));
            }
            case.check_lead(ctx.actor)?;
            if case.return_request.is_some() {
                return Err(DomainError::ReturnPending);
            }
            if case.return_refused {
                return Err(DomainError::ReturnRefused);
            }
            if case.rework {
                return Err(DomainError::ReworkNotReturnable);
            }
            let assigned_at = case.assigned_at.unwrap_or(ctx.now);
            let (window_end, _) = policy.return_window.due_from(assigned_at, ctx.calendar)?;
            if ctx.now > window_end {
                return Err(DomainError::ReturnWindowClosed);
            }
            let unit = case.unit.ok_or(DomainError::NotYourUnit { needed: "lead unit" })?;
            vec![CaseEvent::ReturnRequested(ReturnRequested { unit, reason: reason.clone() })]
        }
        Command::ApproveReturn { to_unit } => {
            let Some(reason) = case.return_request.clone() else {
                return Err(DomainError::NoReturnPending);
            };
            vec![transferred(case, ctx, reason, *to_unit, true)?]
        }
        Command::RefuseReturn { reason } => {
            if case.return_request.is_none() {
                return Err(DomainError::NoReturnPending);
            }
            // The unit's clock stood still while the dispatcher decided: the wait is credited.
            let deadline = case
                .return_stopped_clock_at
                .and_then(|since| case.deadline.map(|d| d.after_pause((ctx.now - since).max(Duration::zero()))));
            vec![CaseEvent::ReturnRefused(ReturnRefused { reason: reason.clone(), deadline })]
        }
        Command::Transfer { reason, to_unit } => {
            // A handled case not yet answered may be re-routed too (its unit was deactivated, or
            // handled what was not its own): the new unit handles it afresh.
            if !matches!(case.status, Status::Assigned | Status::Handled) {
                return Err(transition(command, case));
            }
            vec![transferred(case, ctx, reason.clone(), *to_unit, false)?]
        }
        Command::Contribute { text } => {
            if !matches!(case.status, Status::Assigned | Status::Handled) {
                return Err(transition(command, case));
            }
            let unit = ctx
                .actor
                .unit
                .filter(|u| case.co_units.iter().any(|c| c.unit == *u))
                .ok_or(DomainError::NotYourUnit { needed: "co-unit" })?;
            let mut events = Vec::new();
            if case.co_units.iter().any(|c| c.unit == unit && c.signed_at.is_none()) {
                events.push(CaseEvent::SignedFor(SignedFor { unit, handling: None }));
            }
            events.push(CaseEvent::CoUnitContributed(CoUnitContributed { unit, text: text.clone() }));
            events
        }
        Command::RequestExtension { due_at, reason } => {
            case.check_lead(ctx.actor)?;
            check_extension(case, policy, *due_at, ctx.now)?;
            if case.extension_request.is_some() {
                return Err(DomainError::ExtensionPending);
            }
            vec![CaseEvent::ExtensionRequested(ExtensionRequested { due_at: *due_at, reason: reason.clone() })]
        }
        Command::ApproveExtension => {
            let Some(request) = case.extension_request.clone() else {
                return Err(DomainError::NoExtensionPending);
            };
            vec![extended(case, ctx, request.due_at, request.reason)?]
        }
        Command::RefuseExtension { reason } => {
            if case.extension_request.is_none() {
                return Err(DomainError::NoExtensionPending);
            }
            vec![CaseEvent::ExtensionRefused(ExtensionRefused { reason: reason.clone() })]
        }
        Command::ExtendDeadline { due_at, reason } => vec![extended(case, ctx, *due_at, reason.clone())?],
        Command::PauseClock { reason } => {
            if !matches!(case.status, Status::Received | Status::Assigned | Status::Handled) {
                return Err(transition(command, case));
            }
            if case.paused.is_some() {
                return Err(DomainError::ClockPaused);
            }
            // The clocks stop while waiting for the citizen: signing for a case waits for no one
            // but the unit, and a pending return has stopped the unit's clock already.
            if case.return_request.is_some() {
                return Err(DomainError::ReturnPending);
            }
            if case.expected_stage() == Some(Stage::SignFor) {
                return Err(transition(command, case));
            }
            // A pause stops time that has not yet run out; it cannot excuse a limit already
            // missed (nor take the case out of the overdue view).
            if case.is_overdue(ctx.now) {
                return Err(DomainError::PauseOverdue);
            }
            vec![CaseEvent::ClockPaused(ClockPaused { reason: reason.clone() })]
        }
        Command::ResumeClock => {
            let Some(pause) = &case.paused else {
                return Err(DomainError::ClockNotPaused);
            };
            let shift = (ctx.now - pause.since).max(Duration::zero());
            let moved = |d: Option<Deadline>| d.map(|d| d.after_pause(shift));
            vec![CaseEvent::ClockResumed(ClockResumed {
                paused_seconds: shift.num_seconds(),
                deadline: moved(case.deadline),
                overall: if case.overall_running() { moved(case.overall) } else { None },
                acknowledgement: if case.acknowledgement_running() { moved(case.acknowledgement) } else { None },
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
            case.check_lead(ctx.actor)?;
            // The case waits for the dispatcher's decision on the unit's return.
            if case.return_request.is_some() {
                return Err(DomainError::ReturnPending);
            }
            let mut events = Vec::new();
            // Handling implies signing for it: the sign-for is recorded, with its real time.
            if case.signed_at.is_none()
                && let Some(unit) = case.unit
            {
                events.push(CaseEvent::SignedFor(SignedFor { unit, handling: Some(handling_deadline(case, ctx)?) }));
            }
            let feedback_deadline = deadline(Stage::Feedback, ctx.now)?;
            events.push(CaseEvent::Handled(Handled { outcome: *outcome, result: result.clone(), feedback_deadline }));
            events
        }
        Command::FeedBack { method, content } => {
            let own_reply_of_duplicate = case.duplicate_of.is_some()
                && matches!(case.status, Status::Received | Status::Assigned | Status::Handled);
            if case.status != Status::Handled && !own_reply_of_duplicate {
                return Err(transition(command, case));
            }
            if case.duplicate_of.is_none() {
                case.check_lead(ctx.actor)?;
            }
            let follow_up_deadline =
                if case.duplicate_of.is_some() { None } else { Some(deadline(Stage::FollowUp, ctx.now)?) };
            vec![CaseEvent::FedBack(FedBack { method: *method, content: content.clone(), follow_up_deadline })]
        }
        Command::RecordFollowUpAttempt { method, note } => {
            if case.status != Status::FedBack {
                return Err(transition(command, case));
            }
            if case.satisfaction.is_some() {
                return Err(DomainError::AlreadyRated);
            }
            vec![CaseEvent::FollowUpAttempted(FollowUpAttempted { method: *method, note: note.clone() })]
        }
        Command::RecordSatisfaction { rating, comment, method, solved } => {
            if case.status != Status::FedBack {
                return Err(transition(command, case));
            }
            if case.satisfaction.is_some() {
                return Err(DomainError::AlreadyRated);
            }
            let mut events = vec![CaseEvent::SatisfactionRecorded(SatisfactionRecorded {
                rating: *rating,
                comment: comment.clone(),
                method: Some(*method),
                collected_by: Some(ctx.actor.id.clone()),
                solved: *solved,
            })];
            if *rating == Rating::Dissatisfied {
                // A dissatisfied follow-up goes back to the same unit for rework, in a new round;
                // to dispatch when that unit no longer works.
                events.push(CaseEvent::Reopened(rework(case, ctx, ReopenReason::Dissatisfied, None)?));
                // A second dissatisfied rating puts the case under supervision (督办).
                if case.dissatisfied_count + 1 >= 2 && case.escalation.is_none() {
                    events.push(CaseEvent::Escalated(Escalated { reason: second_dissatisfaction_reason() }));
                }
            }
            events
        }
        Command::Reopen { reason } => {
            if matches!(case.status, Status::Received | Status::Assigned) {
                return Err(DomainError::NothingToReopen { status: case.status });
            }
            vec![CaseEvent::Reopened(rework(case, ctx, ReopenReason::Decision, Some(reason.clone()))?)]
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
        Command::LinkDuplicate { of, target } => {
            if *of == case.id {
                return Err(DomainError::SelfDuplicate);
            }
            if case.duplicate_of.is_some() {
                return Err(DomainError::AlreadyDuplicate);
            }
            if target.is_duplicate {
                return Err(DomainError::TargetIsDuplicate);
            }
            if target.has_duplicates {
                return Err(DomainError::HasDuplicates);
            }
            // 回避 across a merge: an accusation is never answered by the accused unit's work, and
            // the accused unit's case never points at the accusation.
            let ours: Vec<UnitId> = case.unit.into_iter().chain(case.co_units.iter().map(|c| c.unit)).collect();
            let crosses = |accused: Option<UnitId>, units: &[UnitId]| {
                accused.is_some_and(|a| units.iter().any(|u| ctx.units.is_within(*u, a)))
            };
            if crosses(case.accused_unit, &target.units) || crosses(target.accused_unit, &ours) {
                return Err(DomainError::Recusal);
            }
            if !matches!(case.status, Status::Received | Status::Assigned | Status::Handled) {
                return Err(transition(command, case));
            }
            vec![CaseEvent::LinkedAsDuplicate(LinkedAsDuplicate { of: *of })]
        }
        Command::UnlinkDuplicate { reason } => {
            let Some(of) = case.duplicate_of else {
                return Err(DomainError::NotDuplicate);
            };
            // Once answered as a duplicate, the case stays one: its reply repeated the master's.
            if case.status == Status::FedBack {
                return Err(transition(command, case));
            }
            vec![CaseEvent::UnlinkedAsDuplicate(UnlinkedAsDuplicate { of, reason: reason.clone() })]
        }
        Command::ReplaceCoUnit { from, to, reason } => {
            if !case.co_units.iter().any(|c| c.unit == *from) {
                return Err(DomainError::NotYourUnit { needed: "co-unit" });
            }
            if let Some(t) = to {
                if Some(*t) == case.unit || case.co_units.iter().any(|c| c.unit == *t) {
                    return Err(DomainError::InvalidCoUnits);
                }
                check_recusal(case, *t, ctx)?;
            }
            vec![CaseEvent::CoUnitReplaced(CoUnitReplaced { from: *from, to: *to, reason: reason.clone() })]
        }
        Command::AddNote { text } => vec![CaseEvent::NoteAdded(NoteAdded { text: text.clone() })],
        Command::Close { note } => vec![CaseEvent::Closed(close(case, ctx, note)?)],
        Command::RevealComplainant { purpose_code, purpose } => {
            if case.complainant.sealed.is_none() || case.personal_data_erased {
                return Err(DomainError::NoPersonalData);
            }
            vec![CaseEvent::ComplainantRevealed(ComplainantRevealed {
                purpose: purpose.clone(),
                purpose_code: Some(*purpose_code),
                by: ctx.actor.id.clone(),
            })]
        }
        Command::ErasePersonalData => {
            let Some(sealed) = case.complainant.sealed.as_ref().filter(|_| !case.personal_data_erased) else {
                return Err(DomainError::NoPersonalData);
            };
            vec![CaseEvent::PersonalDataErased(PersonalDataErased { subject: sealed.subject })]
        }
        Command::Withdraw { reason } => {
            // Status is not closed here (checked above): any open case may be withdrawn, a
            // rejected one is already answered.
            // A rejected case is already answered; one the citizen rated has had its answer
            // accepted or sent back (a dissatisfied rating reopens it, and then it may be).
            if case.status == Status::Rejected || case.satisfaction.is_some() {
                return Err(transition(command, case));
            }
            vec![CaseEvent::Withdrawn(Withdrawn { reason: reason.clone() })]
        }
        Command::SupplementInformation { text } => {
            if case.status == Status::Rejected {
                return Err(transition(command, case));
            }
            vec![CaseEvent::InformationSupplemented(InformationSupplemented { text: text.clone() })]
        }
        Command::AskCitizen { question } => {
            if case.status == Status::Rejected {
                return Err(transition(command, case));
            }
            // A handler asks about a case at their unit (lead or co-unit).
            if ctx.actor.role == Role::Handler
                && !ctx.actor.unit.is_some_and(|u| Some(u) == case.unit || case.co_units.iter().any(|c| c.unit == u))
            {
                return Err(DomainError::NotYourUnit { needed: "lead unit or a co-unit" });
            }
            let number = u32::try_from(case.questions.len()).unwrap_or(u32::MAX).saturating_add(1);
            if number > MAX_QUESTIONS {
                return Err(DomainError::TooManyQuestions { max: MAX_QUESTIONS });
            }
            vec![CaseEvent::CitizenAsked(CitizenAsked { question: number, text: question.clone() })]
        }
        Command::AnswerQuestion { question, answer } => {
            let index = usize::try_from(question.saturating_sub(1)).unwrap_or(usize::MAX);
            match case.questions.get(index) {
                Some(q) if *question >= 1 && q.answered_at.is_none() => {}
                Some(_) if *question >= 1 => return Err(DomainError::AlreadyAnswered),
                _ => return Err(DomainError::NoSuchQuestion),
            }
            vec![CaseEvent::CitizenAnswered(CitizenAnswered { question: *question, text: answer.clone() })]
        }
        Command::RecordNoticeDelivery { outbox_id, notice, channel, attempts, failure } => vec![match failure {
            None => CaseEvent::NoticeDelivered(NoticeDelivered {
                outbox_id: *outbox_id,
                notice: *notice,
                channel: *channel,
                attempts: *attempts,
            }),
            Some(reason) => CaseEvent::NoticeFailed(NoticeFailed {
                outbox_id: *outbox_id,
                notice: *notice,
                channel: *channel,
                attempts: *attempts,
                reason: reason.clone(),
            }),
        }],
        Command::RecomputeDeadlines => {
            let clocks = [case.deadline, case.acknowledgement, case.overall];
            let mut changed = Vec::new();
            // Every clock counted in working days by a policy: flagged ones (a year was missing)
            // and any other the calendar loaded or corrected may move.
            for d in clocks.into_iter().flatten() {
                if let DeadlineRule::Policy { limit: limit @ crate::deadline::Limit::WorkingDays(_), urgency, .. } =
                    d.rule
                {
                    let fresh = policy.deadline_with(d.stage, limit, urgency, d.started_at, ctx.calendar)?;
                    // The rule (and its policy source) stays as recorded: only the count moves;
                    // the time the clock stood paused is still credited.
                    let fresh = Deadline { rule: d.rule, ..fresh.after_pause(d.paused()) };
                    if fresh != d {
                        changed.push(fresh);
                    }
                }
            }
            if changed.is_empty() {
                return Ok(Vec::new());
            }
            vec![CaseEvent::DeadlinesRecomputed(DeadlinesRecomputed { deadlines: changed })]
        }
    };
    Ok(events)
}

/// The most questions one case may carry (a bound on what a handler can send the citizen).
pub const MAX_QUESTIONS: u32 = 50;

fn second_dissatisfaction_reason() -> Reason {
    // A fixed, valid text: parsing it cannot fail.
    Reason::parse("second dissatisfied rating (二次不满意)").unwrap_or_else(|_| unreachable!("a fixed valid reason"))
}

fn accepted(case: &Case, ctx: &Context<'_>) -> Result<CaseEvent, DomainError> {
    let overall = ctx.policy.deadline(Stage::Overall, case.urgency, ctx.now, ctx.calendar)?;
    Ok(CaseEvent::Accepted(Accepted { overall }))
}

/// The lead unit's handling clock, from now: the policy's, or the dispatcher's shorter one.
fn handling_deadline(case: &Case, ctx: &Context<'_>) -> Result<Deadline, DomainError> {
    let policy = ctx.policy.deadline(Stage::Handling, case.urgency, ctx.now, ctx.calendar)?;
    Ok(match case.handling_due_at {
        Some(t) if t > ctx.now && t < policy.due_at => Deadline {
            due_at: t,
            rule: DeadlineRule::Explicit { policy_due_at: policy.due_at },
            calendar_incomplete: false,
            ..policy
        },
        _ => policy,
    })
}

fn transferred(
    case: &Case,
    ctx: &Context<'_>,
    reason: Reason,
    to_unit: Option<UnitId>,
    approved_return: bool,
) -> Result<CaseEvent, DomainError> {
    let to = match to_unit {
        Some(u) if Some(u) == case.unit => return Err(DomainError::SameUnit),
        Some(u) => {
            check_recusal(case, u, ctx)?;
            Some(TransferTarget {
                unit: u,
                deadline: ctx.policy.deadline(Stage::SignFor, case.urgency, ctx.now, ctx.calendar)?,
            })
        }
        None => None,
    };
    let intake_deadline = if to.is_none() {
        Some(ctx.policy.deadline(Stage::Assignment, case.urgency, ctx.now, ctx.calendar)?)
    } else {
        None
    };
    Ok(CaseEvent::Transferred(Transferred { from_unit: case.unit, reason, to, intake_deadline, approved_return }))
}

fn check_extension(
    case: &Case,
    policy: &DeadlinePolicy,
    due_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Deadline, DomainError> {
    let Some(current) = case.deadline.filter(|d| case.status == Status::Assigned && d.stage == Stage::Handling) else {
        return Err(DomainError::InvalidTransition { command: "extend", status: case.status });
    };
    // Granted within the limit, or not at all: an extension after the handling limit (or the
    // overall 60 days) passed would turn a miss into a case handled on time.
    if now > current.due_at || case.overall.is_some_and(|o| now > o.due_at) {
        return Err(DomainError::LimitPassed);
    }
    if case.extensions_this_round >= policy.max_extensions {
        return Err(DomainError::ExtensionLimitReached);
    }
    if due_at <= current.due_at {
        return Err(DomainError::DeadlineNotLater);
    }
    if due_at - current.due_at > Duration::days(i64::from(policy.max_extension_days)) {
        return Err(DomainError::ExtensionTooLong { max_days: policy.max_extension_days });
    }
    Ok(current)
}

/// 延期: the handling deadline moves to `due_at`; the overall clock moves by the same time,
/// at most the policy's days, once in the case's life (信访工作条例 (2022) art. 32).
fn extended(case: &Case, ctx: &Context<'_>, due_at: DateTime<Utc>, reason: Reason) -> Result<CaseEvent, DomainError> {
    let current = check_extension(case, ctx.policy, due_at, ctx.now)?;
    let deadline = Deadline {
        stage: Stage::Handling,
        due_at,
        started_at: current.started_at,
        rule: DeadlineRule::Extended { previous_due_at: current.due_at },
        calendar_incomplete: false,
        paused_micros: current.paused_micros,
    };
    let overall = case.overall.filter(|o| !matches!(o.rule, DeadlineRule::Extended { .. })).map(|o| {
        let by = (due_at - current.due_at).min(Duration::days(i64::from(ctx.policy.max_extension_days)));
        Deadline { due_at: o.due_at + by, rule: DeadlineRule::Extended { previous_due_at: o.due_at }, ..o }
    });
    Ok(CaseEvent::DeadlineExtended(DeadlineExtended { deadline, reason, approved_by: ctx.actor.id.clone(), overall }))
}

/// 重办: rework in a new round by the same unit, or back to dispatch when there was none or it
/// was deactivated (rework never goes to a unit that no longer works).
fn rework(case: &Case, ctx: &Context<'_>, reason: ReopenReason, note: Option<Reason>) -> Result<Reopened, DomainError> {
    let unit = match case.status {
        Status::Rejected => None,
        Status::Closed if !case.ever_fed_back => None,
        _ => case.unit.filter(|u| ctx.units.is_active(*u)),
    };
    let stage = if unit.is_some() { Stage::Handling } else { Stage::Assignment };
    let new_round = case.status != Status::Rejected && (case.ever_fed_back || case.handling.is_some());
    let dropped_co_units = if unit.is_some() {
        case.co_units.iter().map(|c| c.unit).filter(|u| !ctx.units.is_active(*u)).collect()
    } else {
        Vec::new()
    };
    Ok(Reopened {
        reason,
        note,
        round: if new_round { case.round + 1 } else { case.round },
        unit,
        deadline: ctx.policy.deadline(stage, case.urgency, ctx.now, ctx.calendar)?,
        dropped_co_units,
    })
}

/// 办结 after the follow-up (回访): a rating; or the lapsed follow-up window with failed
/// attempts recorded; or a supervisor's written justification. A rejected case closes at once;
/// a linked duplicate after its own reply.
fn close(case: &Case, ctx: &Context<'_>, note: &Option<Text>) -> Result<Closed, DomainError> {
    // A justification states why (a one-character note once passed for one).
    let supervisor_justifies =
        ctx.actor.role == Role::Supervisor && note.as_ref().is_some_and(|n| crate::ids::states_a_reason(n.as_str()));
    let plain =
        Closed { note: note.clone(), over_dissatisfaction: false, follow_up_lapsed: false, without_rating: false };
    // The citizen is told why their case took longer (延期告知) before it ends.
    if case.extension_notice_owed.is_some() {
        return Err(DomainError::NoticeOwed);
    }
    match case.status {
        // 不予受理 is itself an answer the citizen is owed (信访工作条例 art. 23).
        Status::Rejected if case.acknowledgement.is_some() => Err(DomainError::NoticeOwed),
        Status::Rejected => Ok(plain),
        Status::FedBack if case.duplicate_of.is_some() || case.satisfaction.is_some() => Ok(plain),
        // Older histories have no follow-up clock: their fed-back cases close as before.
        Status::FedBack if case.deadline.is_none() => Ok(plain),
        Status::FedBack => {
            let lapsed = case.deadline.is_some_and(|d| ctx.now > d.due_at) && case.follow_up_attempts > 0;
            if lapsed {
                Ok(Closed { follow_up_lapsed: true, ..plain })
            } else if supervisor_justifies {
                Ok(Closed { without_rating: true, ..plain })
            } else {
                Err(DomainError::FollowUpPending)
            }
        }
        // Closing over a dissatisfied citizen during rework: the citizen was answered before, a
        // supervisor decides that the answer stands, in writing.
        Status::Assigned if case.dissatisfied_round == Some(case.round - 1) => {
            if supervisor_justifies {
                Ok(Closed { over_dissatisfaction: true, ..plain })
            } else {
                Err(DomainError::JustificationRequired)
            }
        }
        _ => Err(DomainError::ClosedBeforeFeedback),
    }
}

fn register(r: &Registration, ctx: &Context<'_>) -> Result<Vec<CaseEvent>, DomainError> {
    if r.received_at > ctx.now {
        return Err(DomainError::ReceivedInFuture);
    }
    if r.kind == CaseKind::Suggestion && r.accused_unit.is_some() {
        return Err(DomainError::SuggestionAccusesNoOne);
    }
    // Paper intake is entered later: the routing clock starts when the case was received.
    let assign_deadline = ctx.policy.deadline(Stage::Assignment, r.urgency, r.received_at, ctx.calendar)?;
    // The acknowledgement is owed to an identified citizen: 15 calendar days (信访工作条例
    // art. 23), or 15 working days for an accusation (检举控告工作规则 (2020)).
    let acknowledgement = if r.complainant.anonymous {
        None
    } else {
        let limit = if r.accused_unit.is_some() { ctx.policy.accusation_acknowledge } else { ctx.policy.acknowledge };
        Some(ctx.policy.deadline_with(Stage::Acknowledgement, limit, r.urgency, r.received_at, ctx.calendar)?)
    };
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
        acknowledgement,
        campaign: r.campaign,
        source: r.source.clone(),
        location: r.location.clone(),
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
        Some(t) => Ok(Deadline {
            due_at: t,
            rule: DeadlineRule::Explicit { policy_due_at: policy.due_at },
            calendar_incomplete: false,
            ..policy
        }),
    }
}

/// Folds one event into the state. `at` is the time the event was recorded. Only a history
/// that does not start with `case.received`, or repeats it, fails: every other event applies
/// unconditionally, because [`decide`] checked it before it was recorded.
pub fn evolve(state: Option<Case>, id: CaseId, event: &CaseEvent, at: DateTime<Utc>) -> Result<Case, HistoryError> {
    let mut case = match (state, event) {
        (None, CaseEvent::Received(e)) => {
            let mut case = Case {
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
                accepted_at: None,
                acknowledged_at: None,
                status: Status::Received,
                round: 1,
                unit: None,
                tier: None,
                co_units: Vec::new(),
                deadline: Some(e.assign_deadline),
                acknowledgement: e.acknowledgement,
                overall: None,
                suspended_deadline: None,
                extensions_this_round: 0,
                extension_request: None,
                assigned_at: None,
                rework: false,
                signed_at: None,
                handling_due_at: None,
                return_request: None,
                return_refused: false,
                referred_to: None,
                returns: 0,
                paused: None,
                handling: None,
                feedback: None,
                follow_up_attempts: 0,
                satisfaction: None,
                dissatisfied_round: None,
                dissatisfied_count: 0,
                ever_fed_back: false,
                rejection: None,
                rejection_code: None,
                escalation: None,
                duplicate_of: None,
                notes: 0,
                closed_at: None,
                personal_data_erased: false,
                extension_notice_owed: None,
                return_stopped_clock_at: None,
                history_texts: Vec::new(),
                campaign: e.campaign,
                source: e.source.clone(),
                location: e.location.clone(),
                withdrawal: None,
                questions: Vec::new(),
                returns_refused: 0,
                facts: Vec::new(),
            };
            case.facts = crate::kpi::received(&case);
            return Ok(case);
        }
        (None, _) => return Err(HistoryError::MissingReceived),
        (Some(_), CaseEvent::Received(_)) => return Err(HistoryError::DuplicateReceived),
        (Some(c), _) => c,
    };
    case.version += 1;
    case.history_texts.extend(event.texts().into_iter().map(str::to_owned));
    let before = crate::kpi::Before { unit: case.unit, round: case.round };
    match event {
        CaseEvent::Received(_) => {}
        CaseEvent::Accepted(e) => {
            case.accepted_at = Some(at);
            case.overall = Some(e.overall);
        }
        CaseEvent::CitizenNotified(e) => {
            // A notice of the extension told after it (a backdated one cannot have).
            if e.kind == NoticeKind::Extension
                && case.extension_notice_owed.is_some_and(|since| e.notified_at.unwrap_or(at) >= since)
            {
                case.extension_notice_owed = None;
            }
            // The first notice of the decision is when the citizen was told; later ones repeat it.
            if matches!(e.kind, NoticeKind::Acknowledgement | NoticeKind::NonAcceptance)
                && case.acknowledged_at.is_none()
            {
                case.acknowledged_at = Some(e.notified_at.unwrap_or(at));
                case.acknowledgement = None;
            }
        }
        CaseEvent::Classified(e) => case.category = Some(e.category),
        CaseEvent::Rejected(e) => {
            case.status = Status::Rejected;
            case.rejection = Some(e.reason.clone());
            case.rejection_code = e.code;
            case.referred_to = e.referred_to.clone();
            case.deadline = None;
        }
        CaseEvent::Assigned(e) => {
            case.status = Status::Assigned;
            case.unit = Some(e.unit);
            case.tier = e.tier;
            case.co_units =
                e.co_units.iter().map(|u| CoUnit { unit: *u, signed_at: None, contributed_at: None }).collect();
            case.deadline = Some(e.deadline);
            case.assigned_at = Some(at);
            case.rework = false;
            case.handling_due_at = e.handling_due_at;
            case.return_refused = false;
            // Before sign-for existed, assignment started the handling clock: signed then.
            case.signed_at = (e.deadline.stage == Stage::Handling).then_some(at);
            case.return_request = None;
            case.return_stopped_clock_at = None;
        }
        CaseEvent::SignedFor(e) => {
            if Some(e.unit) == case.unit {
                case.signed_at = Some(at);
                if let Some(d) = e.handling {
                    case.deadline = Some(d);
                }
            } else if let Some(c) = case.co_units.iter_mut().find(|c| c.unit == e.unit) {
                c.signed_at = Some(at);
            }
        }
        CaseEvent::ReturnRequested(e) => {
            case.return_request = Some(e.reason.clone());
            // A limit already missed stays missed: only a running clock stops.
            case.return_stopped_clock_at = case.deadline.is_some_and(|d| at <= d.due_at).then_some(at);
        }
        CaseEvent::ReturnRefused(e) => {
            case.returns_refused += 1;
            case.return_request = None;
            case.return_stopped_clock_at = None;
            case.return_refused = true;
            // The stage clock with the wait credited (events written before the credit carry none).
            if let Some(d) = e.deadline {
                case.deadline = Some(d);
            }
        }
        CaseEvent::CoUnitReplaced(e) => {
            case.co_units.retain(|c| c.unit != e.from);
            if let Some(to) = e.to {
                case.co_units.push(CoUnit { unit: to, signed_at: None, contributed_at: None });
            }
        }
        CaseEvent::CoUnitContributed(e) => {
            if let Some(c) = case.co_units.iter_mut().find(|c| c.unit == e.unit) {
                c.contributed_at = Some(at);
            }
        }
        CaseEvent::Transferred(e) => {
            case.return_request = None;
            case.return_stopped_clock_at = None;
            case.return_refused = false;
            case.extension_request = None;
            case.extensions_this_round = 0;
            case.signed_at = None;
            case.handling_due_at = None;
            if e.approved_return {
                case.returns += 1;
            }
            case.handling = None;
            match &e.to {
                Some(to) => {
                    case.status = Status::Assigned;
                    case.unit = Some(to.unit);
                    case.co_units.retain(|c| c.unit != to.unit);
                    case.deadline = Some(to.deadline);
                    case.assigned_at = Some(at);
                    case.rework = false;
                    // Transfers written before sign-for existed carried the handling clock.
                    if to.deadline.stage == Stage::Handling {
                        case.signed_at = Some(at);
                    }
                }
                None => {
                    case.status = Status::Received;
                    case.unit = None;
                    case.co_units.clear();
                    case.deadline = e.intake_deadline;
                }
            }
        }
        CaseEvent::ExtensionRequested(e) => {
            case.extension_request = Some(PendingExtension { due_at: e.due_at, reason: e.reason.clone() });
        }
        CaseEvent::ExtensionRefused(_) => case.extension_request = None,
        CaseEvent::DeadlineExtended(e) => {
            case.deadline = Some(e.deadline);
            case.extensions_this_round += 1;
            case.extension_notice_owed = Some(at);
            case.extension_request = None;
            if e.overall.is_some() {
                case.overall = e.overall;
            }
        }
        CaseEvent::ClockPaused(e) => case.paused = Some(Pause { since: at, reason: e.reason.clone() }),
        CaseEvent::ClockResumed(e) => {
            case.paused = None;
            // Events written before deadlines carried the credit moved `due_at` alone: the credit
            // is that move, added to what the clock had.
            let credited = |before: Option<Deadline>, after: Deadline| match before {
                Some(b) if after.paused_micros == 0 && b.stage == after.stage && b.started_at == after.started_at => {
                    b.after_pause(after.due_at - b.due_at)
                }
                _ => after,
            };
            if let Some(d) = e.deadline {
                case.deadline = Some(credited(case.deadline, d));
            }
            if let Some(d) = e.overall {
                case.overall = Some(credited(case.overall, d));
            }
            if let Some(d) = e.acknowledgement {
                case.acknowledgement = Some(credited(case.acknowledgement, d));
            }
        }
        CaseEvent::Handled(e) => {
            case.status = Status::Handled;
            case.handling = Some(HandlingRecord { outcome: e.outcome, result: e.result.clone(), at });
            case.deadline = Some(e.feedback_deadline);
            case.return_request = None;
            case.return_stopped_clock_at = None;
            case.extension_request = None;
        }
        CaseEvent::FedBack(e) => {
            case.status = Status::FedBack;
            case.feedback = Some(FeedbackRecord { method: e.method, content: e.content.clone(), at });
            case.ever_fed_back = true;
            case.deadline = e.follow_up_deadline;
            case.suspended_deadline = None;
            case.follow_up_attempts = 0;
            case.return_request = None;
            case.return_stopped_clock_at = None;
            case.extension_request = None;
        }
        CaseEvent::FollowUpAttempted(_) => case.follow_up_attempts += 1,
        CaseEvent::SatisfactionRecorded(e) => {
            case.satisfaction = Some(SatisfactionRecord {
                rating: e.rating,
                comment: e.comment.clone(),
                at,
                method: e.method,
                collected_by: e.collected_by.clone(),
                solved: e.solved,
            });
            case.deadline = None;
            if e.rating == Rating::Dissatisfied {
                case.dissatisfied_round = Some(case.round);
                case.dissatisfied_count += 1;
            }
        }
        CaseEvent::Reopened(e) => {
            case.co_units.retain(|c| !e.dropped_co_units.contains(&c.unit));
            case.round = e.round;
            case.unit = e.unit;
            case.status = if e.unit.is_some() { Status::Assigned } else { Status::Received };
            case.rework = e.unit.is_some();
            if e.unit.is_some() {
                case.assigned_at = Some(at);
                case.signed_at = Some(at);
            } else {
                case.signed_at = None;
                case.co_units.clear();
            }
            case.deadline = Some(e.deadline);
            case.extensions_this_round = 0;
            case.extension_request = None;
            case.return_request = None;
            case.return_stopped_clock_at = None;
            case.handling = None;
            case.feedback = None;
            case.satisfaction = None;
            case.follow_up_attempts = 0;
            case.rejection = None;
            case.rejection_code = None;
            case.referred_to = None;
            case.closed_at = None;
        }
        CaseEvent::Escalated(e) => case.escalation = Some(e.reason.clone()),
        CaseEvent::LinkedAsDuplicate(e) => {
            case.duplicate_of = Some(e.of);
            // A duplicate's own clocks stop: it is never overdue; it is not worked on its own,
            // so nothing waits for a decision either.
            case.suspended_deadline = case.deadline.take();
            case.return_request = None;
            case.return_stopped_clock_at = None;
            case.extension_request = None;
        }
        CaseEvent::UnlinkedAsDuplicate(_) => {
            case.duplicate_of = None;
            case.deadline = case.suspended_deadline.take();
        }
        CaseEvent::NoteAdded(_) => case.notes += 1,
        CaseEvent::Closed(_) => {
            case.status = Status::Closed;
            case.deadline = None;
            case.acknowledgement = None;
            case.return_request = None;
            case.return_stopped_clock_at = None;
            case.extension_request = None;
            case.closed_at = Some(at);
        }
        CaseEvent::Withdrawn(e) => {
            case.status = Status::Closed;
            case.withdrawal = Some(e.reason.clone());
            case.deadline = None;
            case.acknowledgement = None;
            case.paused = None;
            case.return_request = None;
            case.return_stopped_clock_at = None;
            case.extension_request = None;
            case.extension_notice_owed = None;
            case.closed_at = Some(at);
        }
        CaseEvent::InformationSupplemented(_) => {}
        CaseEvent::CitizenAsked(_) => case.questions.push(Question { asked_at: at, answered_at: None }),
        CaseEvent::CitizenAnswered(e) => {
            let index = usize::try_from(e.question.saturating_sub(1)).unwrap_or(usize::MAX);
            if let Some(q) = case.questions.get_mut(index) {
                q.answered_at = Some(at);
            }
        }
        CaseEvent::NoticeDelivered(e) => match e.notice {
            // A delivered acknowledgement is the notice of acceptance (受理告知), sent.
            NoticeType::Acknowledgement if case.acknowledged_at.is_none() => {
                case.acknowledged_at = Some(at);
                case.acknowledgement = None;
            }
            NoticeType::Extension if case.extension_notice_owed.is_some() => case.extension_notice_owed = None,
            _ => {}
        },
        CaseEvent::NoticeFailed(_) => {}
        CaseEvent::ComplainantRevealed(_) => {}
        CaseEvent::PersonalDataErased(_) => case.personal_data_erased = true,
        CaseEvent::DeadlinesRecomputed(e) => {
            for d in &e.deadlines {
                match d.stage {
                    Stage::Acknowledgement => case.acknowledgement = Some(*d),
                    Stage::Overall => case.overall = Some(*d),
                    stage if case.deadline.is_some_and(|c| c.stage == stage) => case.deadline = Some(*d),
                    _ => {}
                }
            }
        }
    }
    crate::kpi::observe(before, event, at, &mut case);
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

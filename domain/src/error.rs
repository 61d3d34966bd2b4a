//! Typed errors of the domain. Each has a stable machine code ([`DomainError::code`]) that the
//! API turns into a problem `type`, so clients never parse messages.

use crate::lifecycle::Status;

/// A value from outside failed its check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct ValidationError {
    /// The field that failed.
    pub field: &'static str,
    /// What is wrong with it, in words.
    pub message: &'static str,
}

impl ValidationError {
    /// Builds a validation error.
    pub const fn new(field: &'static str, message: &'static str) -> Self {
        Self { field, message }
    }
}

/// Why a command was refused. Nothing was recorded when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// A field of the command is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The case was already registered.
    #[error("the case is already registered")]
    AlreadyRegistered,
    /// The command needs a registered case.
    #[error("the case is not registered")]
    NotRegistered,
    /// The time of receipt lies in the future.
    #[error("received_at must not be in the future")]
    ReceivedInFuture,
    /// The command is not allowed in the case's current status.
    #[error("{command} is not allowed while the case is {status}")]
    InvalidTransition {
        /// The command's name.
        command: &'static str,
        /// The status the case is in.
        status: Status,
    },
    /// Handling needs an assignment first.
    #[error("a case cannot be handled before it is assigned")]
    HandledBeforeAssigned,
    /// 件件有回音: closing needs the citizen to have been told the outcome.
    #[error("a case cannot be closed before the citizen was fed back (件件有回音), unless it was not accepted")]
    ClosedBeforeFeedback,
    /// A closed case changes only by an explicit reopen.
    #[error("the case is closed; only a reopen can change it")]
    CaseClosed,
    /// Closing over a citizen's dissatisfaction needs a supervisor and a written justification.
    #[error("closing a case whose citizen was dissatisfied needs a supervisor's written justification")]
    JustificationRequired,
    /// The case was already given its extensions for this round.
    #[error("the deadline was already extended the allowed number of times in this round")]
    ExtensionLimitReached,
    /// The requested extension is longer than the policy allows.
    #[error("an extension may add at most {max_days} days")]
    ExtensionTooLong {
        /// The policy's limit.
        max_days: u16,
    },
    /// A new deadline must come after the current one.
    #[error("the new deadline must be later than the current one")]
    DeadlineNotLater,
    /// The time limit has passed: an extension is asked for and granted before it (信访工作条例
    /// (2022) art. 32: 延长办理期限 within the limit), and a limit missed stays missed.
    #[error("the time limit has already passed: an extension is granted before it, and a missed limit stays missed")]
    LimitPassed,
    /// A deadline must lie in the future.
    #[error("the deadline must be in the future")]
    DeadlineInPast,
    /// An explicit deadline on assignment may be shorter than the policy, never longer.
    #[error("the deadline is later than the category's policy allows; extend it instead")]
    DeadlineBeyondPolicy,
    /// The case is already under supervision.
    #[error("the case is already escalated")]
    AlreadyEscalated,
    /// Satisfaction was already recorded for this round.
    #[error("satisfaction was already recorded for this round")]
    AlreadyRated,
    /// A case cannot be its own duplicate.
    #[error("a case cannot be a duplicate of itself")]
    SelfDuplicate,
    /// The case is already linked as a duplicate.
    #[error("the case is already linked as a duplicate")]
    AlreadyDuplicate,
    /// The case is not linked as a duplicate.
    #[error("the case is not linked as a duplicate")]
    NotDuplicate,
    /// A transfer must go to another unit.
    #[error("the case is already assigned to that unit")]
    SameUnit,
    /// The command needs a case that went further.
    #[error("there is nothing to reopen while the case is {status}")]
    NothingToReopen {
        /// The status the case is in.
        status: Status,
    },
    /// The case holds no personal data (anonymous, or already erased).
    #[error("the case holds no personal data (anonymous or erased)")]
    NoPersonalData,
    /// The working calendar has no working day within ten years of the date.
    #[error("the working calendar has no working day in reach")]
    CalendarExhausted,
    /// 回避: accusation material never goes to the accused unit or a unit under it
    /// (纪检监察机关处理检举控告工作规则 (2020) art. 47).
    #[error("the case accuses that unit (or a unit above it); it can never be routed there")]
    Recusal,
    /// The caller's unit is not the one the command needs (the lead unit, or a co-unit).
    #[error("this needs a handler of the case's {needed}")]
    NotYourUnit {
        /// `lead unit`, `co-unit`, or `lead unit or a co-unit`.
        needed: &'static str,
    },
    /// The unit signed for the case already.
    #[error("the unit has already signed for the case")]
    AlreadySigned,
    /// The return window (退单时限) has passed.
    #[error("the return window has passed; the unit must handle the case")]
    ReturnWindowClosed,
    /// A return is already waiting for the dispatcher.
    #[error("a return is already waiting for the dispatcher")]
    ReturnPending,
    /// No return is waiting.
    #[error("no return is waiting for a decision")]
    NoReturnPending,
    /// An extension is already waiting for a supervisor.
    #[error("an extension request is already waiting for a supervisor")]
    ExtensionPending,
    /// No extension is waiting.
    #[error("no extension request is waiting for a decision")]
    NoExtensionPending,
    /// The clocks are paused; resume them first.
    #[error("the clocks are paused; resume them first")]
    ClockPaused,
    /// The clocks are not paused.
    #[error("the clocks are not paused")]
    ClockNotPaused,
    /// A running clock is already past due: a pause cannot excuse a limit already missed.
    #[error("a clock is already past due: a pause cannot excuse a missed limit")]
    PauseOverdue,
    /// 回访 first: a rating, or the lapsed follow-up window with attempts recorded, or a
    /// supervisor's written justification.
    #[error(
        "the follow-up is pending: record the rating, or failed attempts until the follow-up window lapses, or close with a supervisor's justification"
    )]
    FollowUpPending,
    /// The non-acceptance code needs the body the citizen is referred to.
    #[error("this non-acceptance code needs the body the citizen is referred to")]
    ReferralRequired,
    /// Co-units must differ from the lead unit and from each other.
    #[error("co-units must differ from the lead unit and from each other")]
    InvalidCoUnits,
    /// The round is rework at the unit that handled the case: it cannot be given back.
    #[error("this round is rework of the unit's own handling (返工): it cannot be returned")]
    ReworkNotReturnable,
    /// A suggestion names an accused unit: only a complaint or a report (检举控告) accuses one,
    /// and only an accusation takes the accusation rules (its acknowledgement limit, 回避).
    #[error("a suggestion accuses no one: only a complaint or a report names an accused unit")]
    SuggestionAccusesNoOne,
    /// A notice's time lies before the case was received or in the future.
    #[error("notified_at must lie between the case's receipt and now")]
    NoticeTimeOutOfRange,
    /// The case is linked as a duplicate: it is not worked on its own.
    #[error("the case is linked as a duplicate: only its own reply, notes and closing apply")]
    IsDuplicate,
    /// The target of a duplicate link is itself a duplicate (no chains).
    #[error("that case is itself linked as a duplicate; link to the case it duplicates")]
    TargetIsDuplicate,
    /// Other cases are linked to this one as duplicates (no chains).
    #[error("other cases are linked to this one as duplicates; it cannot become a duplicate itself")]
    HasDuplicates,
    /// The case was accepted already.
    #[error("the case was already accepted")]
    AlreadyAccepted,
    /// The dispatcher refused this unit's return: it handles the case.
    #[error("the dispatcher refused the return; the unit handles the case")]
    ReturnRefused,
    /// The citizen is owed the (non-)acceptance notice, or the notice of an extension, before
    /// the case closes.
    #[error("the citizen has not been told the decision or the extension yet: record the notice first")]
    NoticeOwed,
    /// The notice does not tell the decision taken: an acknowledgement (受理告知) follows the
    /// acceptance, a non-acceptance notice (不予受理告知) follows the rejection (信访工作条例
    /// art. 32: the citizen is told whether the matter is accepted).
    #[error(
        "the notice does not fit the decision: an acknowledgement follows acceptance, a non-acceptance notice a rejection"
    )]
    NoticeDoesNotFitDecision,
    /// The citizen withdrew the case: it is not reopened.
    #[error("the citizen withdrew the case; it cannot be reopened")]
    CaseWithdrawn,
    /// No question with that number was asked through the case.
    #[error("no such question was asked through the case")]
    NoSuchQuestion,
    /// The question was answered already.
    #[error("the question was answered already")]
    AlreadyAnswered,
    /// The case carries the most questions allowed.
    #[error("a case carries at most {max} questions")]
    TooManyQuestions {
        /// The limit.
        max: u32,
    },
}

impl DomainError {
    /// A stable, machine-readable code for the error, used as the last segment of the problem
    /// `type` URI. Never change an existing code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "validation",
            Self::AlreadyRegistered => "already-registered",
            Self::NotRegistered => "not-registered",
            Self::ReceivedInFuture => "received-in-future",
            Self::InvalidTransition { .. } => "invalid-transition",
            Self::HandledBeforeAssigned => "handled-before-assigned",
            Self::ClosedBeforeFeedback => "closed-before-feedback",
            Self::CaseClosed => "case-closed",
            Self::JustificationRequired => "justification-required",
            Self::ExtensionLimitReached => "extension-limit-reached",
            Self::ExtensionTooLong { .. } => "extension-too-long",
            Self::DeadlineNotLater => "deadline-not-later",
            Self::LimitPassed => "limit-passed",
            Self::DeadlineInPast => "deadline-in-past",
            Self::DeadlineBeyondPolicy => "deadline-beyond-policy",
            Self::AlreadyEscalated => "already-escalated",
            Self::AlreadyRated => "already-rated",
            Self::SelfDuplicate => "self-duplicate",
            Self::AlreadyDuplicate => "already-duplicate",
            Self::NotDuplicate => "not-duplicate",
            Self::SameUnit => "same-unit",
            Self::NothingToReopen { .. } => "nothing-to-reopen",
            Self::NoPersonalData => "no-personal-data",
            Self::CalendarExhausted => "calendar-exhausted",
            Self::Recusal => "recusal",
            Self::NotYourUnit { .. } => "not-your-unit",
            Self::AlreadySigned => "already-signed",
            Self::ReturnWindowClosed => "return-window-closed",
            Self::ReturnPending => "return-pending",
            Self::NoReturnPending => "no-return-pending",
            Self::ExtensionPending => "extension-pending",
            Self::NoExtensionPending => "no-extension-pending",
            Self::ClockPaused => "clock-paused",
            Self::ClockNotPaused => "clock-not-paused",
            Self::PauseOverdue => "pause-overdue",
            Self::FollowUpPending => "follow-up-pending",
            Self::ReferralRequired => "referral-required",
            Self::InvalidCoUnits => "invalid-co-units",
            Self::SuggestionAccusesNoOne => "suggestion-accuses-no-one",
            Self::ReworkNotReturnable => "rework-not-returnable",
            Self::NoticeTimeOutOfRange => "notice-time-out-of-range",
            Self::IsDuplicate => "is-duplicate",
            Self::TargetIsDuplicate => "target-is-duplicate",
            Self::HasDuplicates => "has-duplicates",
            Self::AlreadyAccepted => "already-accepted",
            Self::ReturnRefused => "return-refused",
            Self::NoticeOwed => "notice-owed",
            Self::NoticeDoesNotFitDecision => "notice-does-not-fit-decision",
            Self::CaseWithdrawn => "case-withdrawn",
            Self::NoSuchQuestion => "no-such-question",
            Self::AlreadyAnswered => "already-answered",
            Self::TooManyQuestions { .. } => "too-many-questions",
        }
    }
}

/// A stored history that the lifecycle cannot fold: it points at a corrupted or foreign log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The first event of a case is not `case.received`.
    #[error("the history does not start with case.received")]
    MissingReceived,
    /// A second `case.received` appeared.
    #[error("case.received appears twice")]
    DuplicateReceived,
    /// A record's history does not start with its creation, or repeats it.
    #[error("the history of a {0} does not start with its creation, or repeats it")]
    NotCreated(&'static str),
    /// An event type this version does not know.
    #[error("unknown event type {0} (schema version {1})")]
    UnknownEvent(String, u16),
    /// A payload that does not match its type.
    #[error("the payload of {event_type} v{schema_version} does not match its schema: {message}")]
    BadPayload {
        /// The event's type.
        event_type: String,
        /// The event's schema version.
        schema_version: u16,
        /// What serde said.
        message: String,
    },
}

//! The events of a case's life. Each has a stable type name ([`CaseEvent::event_type`]) and a
//! schema version ([`CaseEvent::schema_version`]); old versions are upcast on read
//! ([`CaseEvent::from_stored`]), never rewritten in the log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::deadline::{Deadline, Urgency};
use crate::error::HistoryError;
use crate::ids::{ActorId, CaseId, CategoryId, Description, Reason, ReceiptCode, SubjectId, Text, Title, UnitId};

/// How a case came in (see the brief's channel table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// 座谈会.
    Symposium,
    /// 明察暗访 / 走访.
    Visit,
    /// 纠风联系卡.
    ContactCard,
    /// 问卷调查表.
    Questionnaire,
    /// 电话.
    Phone,
    /// 邮箱.
    Email,
    /// 来信.
    Letter,
    /// 来访.
    WalkIn,
    /// 网上.
    Web,
}

/// What kind of case it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// 投诉.
    Complaint,
    /// 意见建议.
    Suggestion,
    /// 反映.
    Report,
}

/// How handling came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// 已解决.
    Resolved,
    /// 部分解决.
    PartiallyResolved,
    /// 已解释说明.
    Explained,
    /// 诉求不予支持.
    NotSupported,
}

/// How the citizen was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackMethod {
    /// By phone.
    Phone,
    /// By text message.
    Sms,
    /// By letter.
    Letter,
    /// Face to face.
    InPerson,
    /// Online.
    Online,
}

/// The citizen's satisfaction (满意度).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rating {
    /// 满意.
    Satisfied,
    /// 基本满意.
    BasicallySatisfied,
    /// 不满意.
    Dissatisfied,
}

/// Why a case was reopened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReopenReason {
    /// The citizen rated the reply dissatisfied.
    Dissatisfied,
    /// A supervisor decided (重办), with a written reason.
    Decision,
}

/// Personal data sealed by the store's vault: ciphertext under the subject's own key, which is
/// kept outside the log. Shredding the key erases the data without touching the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedPersonalData {
    /// Whose key seals it.
    pub subject: SubjectId,
    /// Nonce and ciphertext, base64; opaque to the domain.
    pub ciphertext: String,
}

/// Who raised the case.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Complainant {
    /// Whether the citizen chose to stay anonymous (then nothing is sealed).
    pub anonymous: bool,
    /// Name, phone, email and ID number, sealed.
    pub sealed: Option<SealedPersonalData>,
    /// How notices can reach the citizen (a phone for text messages, an email address): which
    /// contacts the sealed data holds, not the contacts themselves (absent in older events).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reachable_by: Vec<ContactChannel>,
}

/// How a notice reaches a citizen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactChannel {
    /// A text message through the SMS gateway.
    Sms,
    /// An email.
    Email,
}

impl ContactChannel {
    /// The channel's identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Email => "email",
        }
    }
}

/// Where the matter is: an address and, optionally, coordinates (WGS 84 degrees, at most six
/// decimals, stored as text so the payload stays float-free and hashes canonically). Open311
/// clients send and read these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// The address as given (1–200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<crate::ids::Address>,
    /// Latitude and longitude.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<crate::ids::Coordinates>,
}

/// `case.received` v1: the case is registered (受理).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Received {
    /// The citizen's receipt code.
    pub receipt_code: ReceiptCode,
    /// Channel.
    pub channel: Channel,
    /// Kind.
    pub kind: CaseKind,
    /// Title.
    pub title: Title,
    /// Description.
    pub description: Description,
    /// Category.
    pub category: Option<CategoryId>,
    /// Village.
    pub village: Option<UnitId>,
    /// The accused unit, for 检举控告.
    pub accused_unit: Option<UnitId>,
    /// Urgency.
    pub urgency: Urgency,
    /// When received.
    pub received_at: DateTime<Utc>,
    /// Who complained, sealed.
    pub complainant: Complainant,
    /// The routing deadline.
    pub assign_deadline: Deadline,
    /// The acknowledgement clock, owed to an identified citizen (absent in older events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledgement: Option<Deadline>,
    /// The campaign and phase it was received in (absent outside a campaign, and in events
    /// written before campaigns were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<crate::records::CampaignTag>,
    /// The record it came from: a meeting's opinion, a visit's finding, a contact card, a
    /// questionnaire response (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::records::CaseSource>,
    /// Where the matter is (absent when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// `case.classified` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Classified {
    /// The new category.
    pub category: CategoryId,
}

/// Why a case is not accepted (不予受理): a documented code, so that reports can count them.
/// The list follows 信访工作条例 (2022) arts. 21–23 and 纪检监察机关处理检举控告工作规则 (2020).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonAcceptanceCode {
    /// Not this body's remit (不属于本机关职责范围); the body responsible is named.
    OutOfRemit,
    /// To be settled by litigation, arbitration or administrative review (应当通过诉讼、仲裁、
    /// 行政复议等法定途径解决); the body is named.
    LegalChannel,
    /// Already being handled (正在办理中), under another case.
    AlreadyInProcess,
    /// Already concluded with no new facts (已办结且无新的事实和理由).
    AlreadyConcluded,
    /// No concrete facts or request to act on (无具体事实、诉求).
    InsufficientFacts,
    /// Another reason, given in words.
    Other,
}

impl NonAcceptanceCode {
    /// Whether the citizen must be told which body to turn to.
    pub fn needs_referral(self) -> bool {
        matches!(self, Self::OutOfRemit | Self::LegalChannel)
    }
}

/// `case.rejected` v1 (不予受理).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejected {
    /// Why, as told to the citizen.
    pub reason: Reason,
    /// The documented code (absent in events written before codes existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<NonAcceptanceCode>,
    /// The body the citizen is referred to, where the code asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referred_to: Option<Text>,
}

/// The tier of the unit a case is routed to (归口: 镇级 / 村级).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// A town department.
    Town,
    /// A village, farm or community.
    Village,
}

/// `case.assigned` v2 (交办). v1 carried only `unit` and `due_at`; it is upcast with a
/// `legacy` rule. Since sign-for exists, `deadline` is the sign-for clock (older events carry
/// the handling clock here, and their case counts as signed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assigned {
    /// The unit responsible (the lead unit in joint handling).
    pub unit: UnitId,
    /// The running clock and its rule: sign-for (or handling, in events before sign-for).
    pub deadline: Deadline,
    /// Instructions.
    pub note: Option<Text>,
    /// Co-units of joint handling (联办).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub co_units: Vec<UnitId>,
    /// The tier routed to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<Tier>,
    /// A handling deadline shorter than the policy's, set by the dispatcher; it applies from
    /// sign-for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handling_due_at: Option<DateTime<Utc>>,
}

/// Where a transfer sends the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferTarget {
    /// The new unit.
    pub unit: UnitId,
    /// Its handling deadline.
    pub deadline: Deadline,
}

/// `case.transferred` v1 (转办 / 退单): a dispatcher re-routes the case, or approves a unit's
/// return (`approved_return`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transferred {
    /// The unit that gave it up.
    pub from_unit: Option<UnitId>,
    /// Why.
    pub reason: Reason,
    /// The new unit, or none when it goes back to intake.
    pub to: Option<TransferTarget>,
    /// The new routing deadline when it goes back to intake.
    pub intake_deadline: Option<Deadline>,
    /// Whether this approves the unit's request to return the case (退单).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approved_return: bool,
}

/// `case.deadline_extended` v1 (延期).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineExtended {
    /// The new deadline.
    pub deadline: Deadline,
    /// Why.
    pub reason: Reason,
    /// Who approved.
    pub approved_by: ActorId,
    /// The overall clock, extended by the same time (at most the policy's days, once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overall: Option<Deadline>,
}

/// `case.accepted` v1 (受理): the case is accepted; the overall clock starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Accepted {
    /// The overall clock (60 calendar days by default).
    pub overall: Deadline,
}

/// What a notice to the citizen was about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// Accepted, with the receipt code (受理告知书).
    Acknowledgement,
    /// Not accepted, with the reason and where to turn (不予受理告知书).
    NonAcceptance,
    /// The deadline was extended, and why (延期告知).
    Extension,
    /// Anything else the citizen was told.
    Other,
}

/// `case.citizen_notified` v1 (告知): the citizen was told something, recorded as said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CitizenNotified {
    /// What about.
    pub kind: NoticeKind,
    /// How.
    pub method: FeedbackMethod,
    /// What was said.
    pub content: Text,
    /// Whether the receipt code was given.
    pub receipt_code_given: bool,
    /// When the citizen was told, when recorded later than it happened (absent: when recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notified_at: Option<DateTime<Utc>>,
}

/// `case.signed_for` v1 (签收): a unit signed for the case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedFor {
    /// The unit that signed.
    pub unit: UnitId,
    /// The handling clock that starts now (the lead unit only).
    pub handling: Option<Deadline>,
}

/// `case.return_requested` v1 (退单申请): the unit says the case is not theirs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnRequested {
    /// The unit asking.
    pub unit: UnitId,
    /// Why.
    pub reason: Reason,
}

/// `case.return_refused` v1: the dispatcher refuses the return; the unit must handle it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReturnRefused {
    /// Why.
    pub reason: Reason,
    /// The lead unit's stage clock, moved by the time the return waited for the dispatcher
    /// (absent in events written before the wait was credited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Deadline>,
}

/// `case.co_unit_contributed` v1 (联办): a co-unit recorded its contribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoUnitContributed {
    /// The co-unit.
    pub unit: UnitId,
    /// What it found and did.
    pub text: Text,
}

/// `case.extension_requested` v1: the handling unit asks for more time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionRequested {
    /// The handling deadline asked for.
    pub due_at: DateTime<Utc>,
    /// Why.
    pub reason: Reason,
}

/// `case.extension_refused` v1: a supervisor refused the extension asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtensionRefused {
    /// Why.
    pub reason: Reason,
}

/// `case.clock_paused` v1: the clocks stop while waiting for the citizen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockPaused {
    /// Why (e.g. waiting for supplementary material).
    pub reason: Reason,
}

/// `case.clock_resumed` v1: the clocks run again, each moved by the time paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockResumed {
    /// How long the clocks stood, in seconds.
    pub paused_seconds: i64,
    /// The stage's clock, moved.
    pub deadline: Option<Deadline>,
    /// The overall clock, moved.
    pub overall: Option<Deadline>,
    /// The acknowledgement clock, moved.
    pub acknowledgement: Option<Deadline>,
}

/// `case.follow_up_attempted` v1: a follow-up call that did not reach the citizen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpAttempted {
    /// How it was tried.
    pub method: RatingMethod,
    /// What happened.
    pub note: Option<Text>,
}

/// `case.co_unit_replaced` v1: a co-unit leaves joint handling (its unit was deactivated), and
/// another may take its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoUnitReplaced {
    /// The co-unit that leaves.
    pub from: UnitId,
    /// The unit that takes its place, if any.
    pub to: Option<UnitId>,
    /// Why.
    pub reason: Reason,
}

/// `case.deadlines_recomputed` v1: a calendar loaded or corrected changed running clocks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlinesRecomputed {
    /// The clocks as recomputed (only those that changed).
    pub deadlines: Vec<Deadline>,
}

/// `case.handled` v1 (办理).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handled {
    /// How it came out.
    pub outcome: Outcome,
    /// What was found and done.
    pub result: Text,
    /// The deadline for the reply to the citizen.
    pub feedback_deadline: Deadline,
}

/// `case.fed_back` v1 (反馈).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FedBack {
    /// How.
    pub method: FeedbackMethod,
    /// What was said.
    pub content: Text,
    /// The follow-up clock that starts (none for a linked duplicate, and in older events).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_up_deadline: Option<Deadline>,
}

/// How a rating was collected: units have been caught coaching answers, so it is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatingMethod {
    /// A follow-up call.
    Phone,
    /// Face to face.
    InPerson,
    /// A text message the citizen answered.
    Sms,
    /// The citizen, on the web with their receipt code.
    Web,
}

/// `case.satisfaction_recorded` v1 (回访).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SatisfactionRecorded {
    /// The rating.
    pub rating: Rating,
    /// The citizen's words.
    pub comment: Option<Text>,
    /// How it was collected (absent in events written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<RatingMethod>,
    /// Who collected it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collected_by: Option<ActorId>,
    /// The citizen's own answer to "was it solved?" (解决), separate from the unit's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solved: Option<bool>,
}

/// `case.reopened` v1 (重办).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reopened {
    /// Why.
    pub reason: ReopenReason,
    /// The supervisor's written reason.
    pub note: Option<Reason>,
    /// The round that starts.
    pub round: u32,
    /// The unit that reworks it, or none when it goes back to intake.
    pub unit: Option<UnitId>,
    /// The deadline of the stage it goes back to.
    pub deadline: Deadline,
    /// Co-units that leave the case because their unit was deactivated (rework never goes to a
    /// unit that no longer works).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_co_units: Vec<UnitId>,
}

/// `case.escalated` v1 (督办).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalated {
    /// Why.
    pub reason: Reason,
}

/// `case.linked_as_duplicate` v1 (合并).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkedAsDuplicate {
    /// The case it duplicates.
    pub of: CaseId,
}

/// `case.unlinked_as_duplicate` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnlinkedAsDuplicate {
    /// The case it was linked to.
    pub of: CaseId,
    /// Why.
    pub reason: Reason,
}

/// `case.note_added` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteAdded {
    /// The note.
    pub text: Text,
}

/// `case.closed` v1 (办结).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Closed {
    /// The closing note or justification.
    pub note: Option<Text>,
    /// Whether a supervisor closed it over the citizen's dissatisfaction.
    pub over_dissatisfaction: bool,
    /// Closed without a rating because the follow-up window lapsed after recorded attempts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub follow_up_lapsed: bool,
    /// Closed without a rating by a supervisor's written justification.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub without_rating: bool,
}

/// Why a complainant's identity is shown in clear: the reasons the confidentiality rule of
/// accusations leaves (纪检监察机关处理检举控告工作规则 (2020): the identity is kept secret and
/// shown only as the work needs it, with approval). A free text alone ("abcd", ".") stated no
/// reason; the code is the reason, the text its detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevealPurpose {
    /// To check who the complainant is (核实身份), e.g. before accepting a named accusation.
    VerifyIdentity,
    /// To reach the citizen: a notice, a request for supplementary material (联系反映人).
    ContactCitizen,
    /// The follow-up call and the rating (回访).
    FollowUp,
    /// The investigation of the matter needs the complainant heard (调查核实).
    Investigation,
    /// The case goes to another authority, which receives the complainant's particulars (移送).
    Referral,
    /// A court, procuratorate or supervisory commission demands it under the law (依法调取).
    LegalRequest,
}

/// `case.complainant_revealed` v1: someone saw the identity in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplainantRevealed {
    /// The stated purpose, in words.
    pub purpose: Reason,
    /// The purpose's code (absent in events recorded before codes existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose_code: Option<RevealPurpose>,
    /// Who saw it.
    pub by: ActorId,
}

/// `case.personal_data_erased` v1: the subject's key was shredded (redaction marker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalDataErased {
    /// Whose data.
    pub subject: SubjectId,
}

/// `case.withdrawn` v1 (撤回): the citizen withdrew the case, with a reason; it closes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdrawn {
    /// Why, in the citizen's words.
    pub reason: Reason,
}

/// `case.information_supplemented` v1 (补充材料): the citizen added information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InformationSupplemented {
    /// What the citizen added.
    pub text: Text,
}

/// `case.citizen_asked` v1: the handling side asked the citizen a question through the case
/// (the citizen reads it with the receipt code; neither side learns who the other is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CitizenAsked {
    /// The question's number in the case, from 1.
    pub question: u32,
    /// The question.
    pub text: Text,
}

/// `case.citizen_answered` v1: the citizen answered a question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CitizenAnswered {
    /// The question answered.
    pub question: u32,
    /// The answer.
    pub text: Text,
}

/// What a notice sent through the outbox is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeType {
    /// 受理告知: accepted, with the receipt code.
    Acknowledgement,
    /// 答复: the reply to the citizen.
    Reply,
    /// 回访: the request to rate the reply (sent when a follow-up call did not reach them).
    FollowUpRequest,
    /// A question from the handling side.
    Question,
    /// 延期告知: the deadline was extended.
    Extension,
    /// 不予受理告知: the case is not accepted, with the reason and where to turn.
    NonAcceptance,
}

impl NoticeType {
    /// Every notice type.
    pub const ALL: [Self; 6] = [
        Self::Acknowledgement,
        Self::Reply,
        Self::FollowUpRequest,
        Self::Question,
        Self::Extension,
        Self::NonAcceptance,
    ];

    /// The type's identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledgement => "acknowledgement",
            Self::Reply => "reply",
            Self::FollowUpRequest => "follow_up_request",
            Self::Question => "question",
            Self::Extension => "extension",
            Self::NonAcceptance => "non_acceptance",
        }
    }

    /// Parses an identifier.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// `case.notice_delivered` v1: a notice of the outbox reached the sender's next hop (the SMTP
/// server accepted the mail, the SMS gateway the message) — 及时反馈 proven, not claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeDelivered {
    /// The outbox item.
    pub outbox_id: uuid::Uuid,
    /// What about.
    pub notice: NoticeType,
    /// How.
    pub channel: ContactChannel,
    /// How many attempts it took.
    pub attempts: u32,
}

/// `case.notice_failed` v1: a notice of the outbox could not be delivered; it is not retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeFailed {
    /// The outbox item.
    pub outbox_id: uuid::Uuid,
    /// What about.
    pub notice: NoticeType,
    /// How.
    pub channel: ContactChannel,
    /// How many attempts were made.
    pub attempts: u32,
    /// Why, as the sender reported it (never a personal value).
    pub reason: Reason,
}

/// Every event of a case's life.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
// The registration is the one large event and each case has one: boxing it would buy nothing
// but a `Box::new` at every match and construction.
#[allow(clippy::large_enum_variant)]
pub enum CaseEvent {
    Received(Received),
    Classified(Classified),
    Rejected(Rejected),
    Assigned(Assigned),
    Transferred(Transferred),
    DeadlineExtended(DeadlineExtended),
    Handled(Handled),
    FedBack(FedBack),
    SatisfactionRecorded(SatisfactionRecorded),
    Reopened(Reopened),
    Escalated(Escalated),
    LinkedAsDuplicate(LinkedAsDuplicate),
    UnlinkedAsDuplicate(UnlinkedAsDuplicate),
    NoteAdded(NoteAdded),
    Closed(Closed),
    ComplainantRevealed(ComplainantRevealed),
    PersonalDataErased(PersonalDataErased),
    Accepted(Accepted),
    CitizenNotified(CitizenNotified),
    SignedFor(SignedFor),
    ReturnRequested(ReturnRequested),
    ReturnRefused(ReturnRefused),
    CoUnitContributed(CoUnitContributed),
    ExtensionRequested(ExtensionRequested),
    ExtensionRefused(ExtensionRefused),
    ClockPaused(ClockPaused),
    ClockResumed(ClockResumed),
    FollowUpAttempted(FollowUpAttempted),
    DeadlinesRecomputed(DeadlinesRecomputed),
    CoUnitReplaced(CoUnitReplaced),
    Withdrawn(Withdrawn),
    InformationSupplemented(InformationSupplemented),
    CitizenAsked(CitizenAsked),
    CitizenAnswered(CitizenAnswered),
    NoticeDelivered(NoticeDelivered),
    NoticeFailed(NoticeFailed),
}

impl CaseEvent {
    /// The free texts this event shows to whoever reads the case's history, in the order the
    /// event states them: what search must find (issue 9, "search finds what a person sees").
    /// The registration's title and description are the case's own fields, so `Received`
    /// gives none; a reveal's purpose is for auditors, so `ComplainantRevealed` gives none.
    pub fn texts(&self) -> Vec<&str> {
        match self {
            Self::Rejected(e) => {
                std::iter::once(e.reason.as_str()).chain(e.referred_to.as_ref().map(Text::as_str)).collect()
            }
            Self::Transferred(e) => vec![e.reason.as_str()],
            Self::DeadlineExtended(e) => vec![e.reason.as_str()],
            Self::CitizenNotified(e) => vec![e.content.as_str()],
            Self::ReturnRequested(e) => vec![e.reason.as_str()],
            Self::ReturnRefused(e) => vec![e.reason.as_str()],
            Self::CoUnitContributed(e) => vec![e.text.as_str()],
            Self::ExtensionRequested(e) => vec![e.reason.as_str()],
            Self::ExtensionRefused(e) => vec![e.reason.as_str()],
            Self::ClockPaused(e) => vec![e.reason.as_str()],
            Self::FollowUpAttempted(e) => e.note.iter().map(Text::as_str).collect(),
            Self::Handled(e) => vec![e.result.as_str()],
            Self::FedBack(e) => vec![e.content.as_str()],
            Self::SatisfactionRecorded(e) => e.comment.iter().map(Text::as_str).collect(),
            Self::Reopened(e) => e.note.iter().map(Reason::as_str).collect(),
            Self::Escalated(e) => vec![e.reason.as_str()],
            Self::NoteAdded(e) => vec![e.text.as_str()],
            Self::Closed(e) => e.note.iter().map(Text::as_str).collect(),
            Self::Assigned(e) => e.note.iter().map(Text::as_str).collect(),
            Self::UnlinkedAsDuplicate(e) => vec![e.reason.as_str()],
            Self::CoUnitReplaced(e) => vec![e.reason.as_str()],
            Self::Withdrawn(e) => vec![e.reason.as_str()],
            Self::InformationSupplemented(e) => vec![e.text.as_str()],
            Self::CitizenAsked(e) => vec![e.text.as_str()],
            Self::CitizenAnswered(e) => vec![e.text.as_str()],
            Self::NoticeDelivered(_) | Self::NoticeFailed(_) => Vec::new(),
            Self::Received(_)
            | Self::Classified(_)
            | Self::LinkedAsDuplicate(_)
            | Self::ComplainantRevealed(_)
            | Self::PersonalDataErased(_)
            | Self::Accepted(_)
            | Self::SignedFor(_)
            | Self::ClockResumed(_)
            | Self::DeadlinesRecomputed(_) => Vec::new(),
        }
    }
}

macro_rules! event_table {
    ($( $variant:ident => $name:literal, $version:literal; )*) => {
        impl CaseEvent {
            /// The stable type name stored with the event. Never change one.
            pub fn event_type(&self) -> &'static str {
                match self { $( Self::$variant(_) => $name, )* }
            }
            /// The schema version this code writes.
            pub fn schema_version(&self) -> u16 {
                match self { $( Self::$variant(_) => $version, )* }
            }
            /// The payload as JSON (no floats anywhere, so it hashes canonically).
            pub fn payload(&self) -> Value {
                let v = match self { $( Self::$variant(e) => serde_json::to_value(e), )* };
                // Serialising these plain structs cannot fail: no maps with non-string keys.
                v.unwrap_or(Value::Null)
            }
            /// Reads a stored event, upcasting older schema versions.
            pub fn from_stored(event_type: &str, schema_version: u16, payload: Value) -> Result<Self, HistoryError> {
                let payload = upcast(event_type, schema_version, payload)?;
                let bad = |e: serde_json::Error| HistoryError::BadPayload {
                    event_type: event_type.to_owned(),
                    schema_version,
                    message: e.to_string(),
                };
                match event_type {
                    $( $name => serde_json::from_value(payload).map(Self::$variant).map_err(bad), )*
                    other => Err(HistoryError::UnknownEvent(other.to_owned(), schema_version)),
                }
            }
            /// Every event type this code knows, with its current schema version.
            pub const TYPES: &'static [(&'static str, u16)] = &[ $( ($name, $version), )* ];
        }
    };
}

event_table! {
    Received => "case.received", 1;
    Classified => "case.classified", 1;
    Rejected => "case.rejected", 1;
    Assigned => "case.assigned", 2;
    Transferred => "case.transferred", 1;
    DeadlineExtended => "case.deadline_extended", 1;
    Handled => "case.handled", 1;
    FedBack => "case.fed_back", 1;
    SatisfactionRecorded => "case.satisfaction_recorded", 1;
    Reopened => "case.reopened", 1;
    Escalated => "case.escalated", 1;
    LinkedAsDuplicate => "case.linked_as_duplicate", 1;
    UnlinkedAsDuplicate => "case.unlinked_as_duplicate", 1;
    NoteAdded => "case.note_added", 1;
    Closed => "case.closed", 1;
    ComplainantRevealed => "case.complainant_revealed", 1;
    PersonalDataErased => "case.personal_data_erased", 1;
    Accepted => "case.accepted", 1;
    CitizenNotified => "case.citizen_notified", 1;
    SignedFor => "case.signed_for", 1;
    ReturnRequested => "case.return_requested", 1;
    ReturnRefused => "case.return_refused", 1;
    CoUnitContributed => "case.co_unit_contributed", 1;
    ExtensionRequested => "case.extension_requested", 1;
    ExtensionRefused => "case.extension_refused", 1;
    ClockPaused => "case.clock_paused", 1;
    ClockResumed => "case.clock_resumed", 1;
    FollowUpAttempted => "case.follow_up_attempted", 1;
    DeadlinesRecomputed => "case.deadlines_recomputed", 1;
    CoUnitReplaced => "case.co_unit_replaced", 1;
    Withdrawn => "case.withdrawn", 1;
    InformationSupplemented => "case.information_supplemented", 1;
    CitizenAsked => "case.citizen_asked", 1;
    CitizenAnswered => "case.citizen_answered", 1;
    NoticeDelivered => "case.notice_delivered", 1;
    NoticeFailed => "case.notice_failed", 1;
}

/// Brings a stored payload up to the current schema of its type.
fn upcast(event_type: &str, schema_version: u16, payload: Value) -> Result<Value, HistoryError> {
    let current = CaseEvent::TYPES.iter().find(|(t, _)| *t == event_type).map(|(_, v)| *v);
    match (event_type, schema_version) {
        (_, v) if Some(v) == current => Ok(payload),
        // case.assigned v1 = {unit, due_at, note?}: the deadline had no recorded rule. Upcast it
        // with the rule `explicit` (its policy deadline unknown, taken as the due time itself)
        // and the due time as the start, which keeps "overdue" exact and "due soon" pessimistic.
        ("case.assigned", 1) => {
            let mut obj = match payload {
                Value::Object(m) => m,
                _ => return Err(bad_shape(event_type, schema_version)),
            };
            let due = obj.remove("due_at").ok_or_else(|| bad_shape(event_type, schema_version))?;
            obj.insert(
                "deadline".into(),
                serde_json::json!({
                    "stage": "handling",
                    "due_at": due,
                    "started_at": due,
                    "rule": { "kind": "explicit", "policy_due_at": due },
                }),
            );
            obj.entry("note").or_insert(Value::Null);
            Ok(Value::Object(obj))
        }
        _ => Err(HistoryError::UnknownEvent(event_type.to_owned(), schema_version)),
    }
}

fn bad_shape(event_type: &str, schema_version: u16) -> HistoryError {
    HistoryError::BadPayload { event_type: event_type.to_owned(), schema_version, message: "unexpected shape".into() }
}

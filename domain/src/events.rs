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
    /// Name, phone and ID number, sealed.
    pub sealed: Option<SealedPersonalData>,
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
}

/// `case.classified` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Classified {
    /// The new category.
    pub category: CategoryId,
}

/// `case.rejected` v1 (不予受理).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejected {
    /// Why, as told to the citizen.
    pub reason: Reason,
}

/// `case.assigned` v2 (交办). v1 carried only `unit` and `due_at`; it is upcast with a
/// `legacy` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assigned {
    /// The unit responsible.
    pub unit: UnitId,
    /// The handling deadline and its rule.
    pub deadline: Deadline,
    /// Instructions.
    pub note: Option<Text>,
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

/// `case.transferred` v1 (转办 / 退单).
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
}

/// `case.satisfaction_recorded` v1 (回访).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SatisfactionRecorded {
    /// The rating.
    pub rating: Rating,
    /// The citizen's words.
    pub comment: Option<Text>,
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
}

/// `case.complainant_revealed` v1: someone saw the identity in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComplainantRevealed {
    /// The stated purpose.
    pub purpose: Reason,
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

/// Every event of a case's life.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
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

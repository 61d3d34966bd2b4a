//! The bodies of `/api/v1/cases`: registration, the lifecycle commands, the case, its history,
//! and the complainant's reveal.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::reference::RouteView;
use super::{
    CaseKind, Channel, FeedbackMethod, NonAcceptanceCode, NoticeKind, Outcome, Rating, RatingMethod, RevealPurpose,
    Stage, Status, Tier, Urgency,
};

/// The record a case came from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseSourceView {
    /// The kind of record.
    #[serde(rename = "type")]
    pub source_type: crate::routes::records::SourceTypeName,
    /// The record (`/api/v1/meetings/{id}`, `/api/v1/visits/{id}`,
    /// `/api/v1/contact-cards/batches/{id}`, `/api/v1/surveys/{id}`).
    pub record_id: Uuid,
    /// The item in it: an opinion's number in the minutes, a finding's number, the card's
    /// serial, the response's id.
    pub item: String,
}

/// Who raised the case. Stored encrypted; shown masked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplainantInput {
    /// Full name: at most 50 characters, trimmed, no control characters; blank counts as absent.
    #[schema(max_length = 50, pattern = r"^[^\x00-\x1F\x7F-\x9F]*$", example = "张三")]
    pub name: Option<String>,
    /// Phone number (mainland mobile or landline): 7 to 15 digits, optionally after `+86`, spaces and `-`
    /// allowed between them; blank counts as absent.
    #[schema(max_length = 20, pattern = r"^[ -]*(\+[ -]*8[ -]*6)?([ -]*[0-9]){7,15}[ -]*$", example = "13812345678")]
    pub phone: Option<String>,
    /// Resident identity card number (GB 11643-1999): 17 digits and a check character (a digit
    /// or `X`); characters 7–14 must be a real birth date `YYYYMMDD` (1800 or later) and the
    /// check character must match the first 17 digits (ISO 7064 MOD 11-2), which the pattern
    /// cannot say: a mistyped number is answered 422. Blank counts as absent.
    #[schema(min_length = 18, max_length = 18, pattern = r"^[0-9]{17}[0-9Xx]$", example = "11010519491231002X")]
    pub id_number: Option<String>,
    /// Email address for notices (`name@example.cn`: a dot-atom local part, a domain of at
    /// least two labels of letters, digits and inner hyphens, each at most 63; at most 254
    /// characters); blank counts as absent. Sealed with the rest.
    #[schema(
        max_length = 254,
        pattern = r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$",
        example = "zhangsan@example.cn"
    )]
    pub email: Option<String>,
    /// The citizen chose not to give their identity.
    #[serde(default)]
    pub anonymous: bool,
}

/// Where the matter is: an address, coordinates (WGS 84), or both.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"address": "东风村村委会门口", "lat": 30.123456, "long": 120.654321}))]
pub struct LocationInput {
    /// The address: 1 to 200 characters; not blank.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub address: Option<String>,
    /// Latitude, −90 to 90 (kept to six decimals); with `long`.
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub lat: Option<f64>,
    /// Longitude, −180 to 180 (kept to six decimals); with `lat`.
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub long: Option<f64>,
}

/// Registers a case (受理).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "channel": "symposium", "kind": "complaint", "title": "低保评定不公开",
    "description": "村民代表在座谈会上反映：本村低保评定没有张榜公示。",
    "urgency": "normal", "complainant": {"name": "张三", "phone": "13812345678", "anonymous": false}
}))]
pub struct RegisterCaseRequest {
    /// How it came in.
    pub channel: Channel,
    /// Complaint, suggestion or report.
    pub kind: CaseKind,
    /// A short title: 1 to 200 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub title: String,
    /// What the citizen said: 1 to 5000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub description: String,
    /// The category, if known.
    pub category_id: Option<Uuid>,
    /// The village / farm / community it concerns: an active unit of that tier, else 422
    /// `unknown-reference`.
    pub village_id: Option<Uuid>,
    /// The unit a complaint or a report accuses (检举控告): its handlers never see the case, and
    /// it is never routed to it or to a unit under it (回避). A suggestion accuses no one: 422
    /// `suggestion-accuses-no-one`.
    pub accused_unit_id: Option<Uuid>,
    /// Defaults to `normal`.
    pub urgency: Option<Urgency>,
    /// When it was received; may be in the past (paper intake), never in the future. Defaults
    /// to now. Between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year as written; no leap second; a fraction finer than a microsecond is cut.
    #[schema(pattern = r"^20[0-9]{2}-")]
    #[serde(default, deserialize_with = "crate::instant::optional")]
    pub received_at: Option<DateTime<Utc>>,
    /// Who raised it.
    pub complainant: Option<ComplainantInput>,
    /// Accept the case at once (受理 at the counter): the overall clock starts now.
    #[serde(default)]
    pub accept: bool,
    /// The notice given at the counter (e.g. the acknowledgement with the receipt code).
    pub notice: Option<NoticeRequest>,
    /// The serial of the contact card (纠风联系卡) the citizen called or wrote with: the case is
    /// linked to the card, once. A serial in no batch is 422 `unknown-serial`; a card already
    /// used is 422 `serial-used`.
    #[schema(minimum = 0, maximum = 4_294_967_295_i64, format = Int64)]
    pub contact_card_serial: Option<u32>,
    /// Where the matter is (optional).
    pub location: Option<LocationInput>,
}

/// Records what the citizen was told (告知), how and when.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "acknowledgement", "method": "sms", "content": "您反映的问题已受理，受理编号 HY-20261102-7K3Q9PXM。", "receipt_code_given": true}))]
pub struct NoticeRequest {
    /// What about.
    pub kind: NoticeKind,
    /// How.
    pub method: FeedbackMethod,
    /// What was said: 1 to 5000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub content: String,
    /// Whether the receipt code was given.
    #[serde(default)]
    pub receipt_code_given: bool,
    /// When the citizen was told, if earlier than this request (a call made before it was
    /// recorded); between the case's receipt and now, else 422 `notice-time-out-of-range`. An
    /// acknowledgement counts as given then. Defaults to now. Between 2000-01-01T00:00:00Z
    /// (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year
    /// as written; no leap second; a fraction finer than a microsecond is cut.
    #[schema(pattern = r"^20[0-9]{2}-")]
    #[serde(default, deserialize_with = "crate::instant::optional")]
    pub notified_at: Option<DateTime<Utc>>,
}

/// Does not accept the case (不予受理), with a documented code.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason_code": "out_of_remit", "reason": "该事项属于劳动争议", "referred_to": "镇劳动保障所"}))]
pub struct RejectRequest {
    /// The documented code.
    pub reason_code: NonAcceptanceCode,
    /// Why, as told to the citizen: 1 to 1000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub reason: String,
    /// The body the citizen is referred to (required for `out_of_remit` and `legal_channel`): 1 to
    /// 5000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub referred_to: Option<String>,
}

/// Approves a unit's return (退单): to another unit, or back to intake without one.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReturnApproveRequest {
    /// The next unit (never the accused unit or one under it).
    pub unit_id: Option<Uuid>,
}

/// A failed follow-up attempt (回访未接通).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"method": "phone", "note": "两次拨打无人接听"}))]
pub struct FollowUpAttemptRequest {
    /// How it was tried.
    pub method: RatingMethod,
    /// What happened: 1 to 5000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub note: Option<String>,
}

/// A command with no body of its own (an empty object, or no body at all).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

/// Sets the category.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassifyRequest {
    /// The category.
    pub category_id: Uuid,
}

/// Routes the case to a unit (交办).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"unit_id": "0193a0c4-0000-7000-8000-000000000001", "note": "请于五个工作日内核实"}))]
pub struct AssignRequest {
    /// The unit responsible (the lead unit); never the accused unit or one under it (回避).
    /// Without one, the routing rule (归口) of the case's category and village applies.
    pub unit_id: Option<Uuid>,
    /// Co-units of joint handling (联办): distinct, none of them the lead unit.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub co_unit_ids: Vec<Uuid>,
    /// The tier routed to.
    pub tier: Option<Tier>,
    /// A deadline shorter than the category's policy (optional). Between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year as written; no leap second; a fraction finer than a microsecond is cut.
    #[schema(pattern = r"^20[0-9]{2}-")]
    #[serde(default, deserialize_with = "crate::instant::optional")]
    pub due_at: Option<DateTime<Utc>>,
    /// Instructions for the unit: 1 to 5000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub note: Option<String>,
}

/// The dispatcher re-routes the case (转办): to another unit, or back to intake.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "该事项属于卫生院职责"}))]
pub struct TransferRequest {
    /// Why: 1 to 1000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub reason: String,
    /// Another unit; without one the case goes back to intake.
    pub to_unit_id: Option<Uuid>,
}

/// Extends the handling deadline (延期), once per round, by at most 30 days.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// The new deadline. Between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year as written; no leap second; a fraction finer than a microsecond is cut.
    #[schema(pattern = r"^20[0-9]{2}-")]
    #[serde(deserialize_with = "crate::instant::required")]
    pub due_at: DateTime<Utc>,
    /// Why: 1 to 1000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$",
        example = "需要现场核查，申请延期十天"
    )]
    pub reason: String,
}

/// Records what the unit found and did (办理).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"outcome": "resolved", "result": "已重新评议并张榜公示低保名单。"}))]
pub struct HandleRequest {
    /// How it came out.
    pub outcome: Outcome,
    /// What was found and done: 1 to 5000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub result: String,
}

/// Records that the citizen was told the outcome (反馈).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"method": "phone", "content": "已电话告知处理结果。"}))]
pub struct FeedbackRequest {
    /// How.
    pub method: FeedbackMethod,
    /// What was said: 1 to 5000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub content: String,
}

/// Records the citizen's satisfaction (回访). `dissatisfied` reopens the case for rework.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"rating": "satisfied", "method": "phone", "solved": true, "comment": "问题已解决"}))]
pub struct SatisfactionRequest {
    /// The rating.
    pub rating: Rating,
    /// How it was collected (the collector is the caller).
    pub method: RatingMethod,
    /// The citizen's own answer to "was it solved?" (解决), separate from the unit's outcome and
    /// from the rating: required, as the resolution rate counts it.
    pub solved: bool,
    /// What the citizen said: 1 to 5000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub comment: Option<String>,
}

/// A command that needs only a reason (reopen, escalate, reject, unlink-duplicate).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "群众反映强烈，列入督办"}))]
pub struct ReasonRequest {
    /// Why: 1 to 1000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub reason: String,
}

/// Closes the case (办结).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// A closing note; required as a supervisor's justification when closing over a
    /// dissatisfied citizen or without a rating, and then it must state why (at least 4 letters
    /// or CJK characters), else 409 as without one. 1 to 5000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub note: Option<String>,
}

/// Links the case as a duplicate of another (合并).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkDuplicateRequest {
    /// The case this one duplicates.
    pub of: Uuid,
}

/// Adds a note.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"text": "已电话联系反映人，约定周三上门核实。"}))]
pub struct NoteRequest {
    /// The note: 1 to 5000 characters, trimmed; not blank; no control characters but tab and line breaks.
    #[schema(
        min_length = 1,
        max_length = 5000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub text: String,
}

/// A deadline and the rule it came from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadlineView {
    /// The step that must be done.
    pub stage: Stage,
    /// When it is due.
    pub due_at: DateTime<Utc>,
    /// When the clock started.
    pub started_at: DateTime<Utc>,
    /// The rule: `policy` (with the limit, urgency and policy source), `explicit` or `extended`.
    #[schema(value_type = Object)]
    pub rule: serde_json::Value,
    /// `on_track`, `due_soon` (60 % of the time used) or `overdue`, computed now.
    #[schema(example = "on_track")]
    pub state: String,
    /// Working days past the deadline (0 unless overdue).
    pub working_days_overdue: u32,
    /// Time used, in thousandths.
    pub permille_used: u32,
    /// Counted on weekdays alone into a year whose calendar is not loaded; recomputed (by an
    /// event) when it is.
    pub calendar_incomplete: bool,
}

/// A co-unit of joint handling and what it has done.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CoUnitView {
    /// The unit.
    pub unit_id: Uuid,
    /// When it signed for the case.
    pub signed_at: Option<DateTime<Utc>>,
    /// When it recorded its contribution.
    pub contributed_at: Option<DateTime<Utc>>,
}

/// An extension request waiting for a supervisor.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExtensionRequestView {
    /// The handling deadline asked for.
    pub due_at: DateTime<Utc>,
    /// Why.
    pub reason: String,
}

/// Paused clocks.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PauseView {
    /// Since when.
    pub since: DateTime<Utc>,
    /// Why.
    pub reason: String,
}

/// The complainant, as the caller may see them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ComplainantView {
    /// The citizen chose anonymity.
    pub anonymous: bool,
    /// Masked name (`张*`).
    #[schema(example = "张*")]
    pub name: Option<String>,
    /// Masked phone (`138****5678`).
    #[schema(example = "138****5678")]
    pub phone: Option<String>,
    /// Hidden entirely from this caller (a handler of the accused unit).
    pub hidden: bool,
    /// Erased (the key was shredded).
    pub erased: bool,
}

/// The current round's handling.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HandlingView {
    /// Outcome.
    pub outcome: Outcome,
    /// What was done.
    pub result: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The current round's reply.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FeedbackView {
    /// How.
    pub method: FeedbackMethod,
    /// What was said.
    pub content: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The current round's rating.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SatisfactionView {
    /// Rating.
    pub rating: Rating,
    /// Comment.
    pub comment: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// How it was collected (absent for ratings recorded before this was kept).
    pub method: Option<RatingMethod>,
    /// Who collected it.
    pub collected_by: Option<String>,
    /// The citizen's answer to "was it solved?".
    pub solved: Option<bool>,
}

/// A case as it stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseView {
    /// Id.
    pub id: Uuid,
    /// The citizen's receipt code.
    #[schema(example = "HY-20261102-7K3Q9PXM")]
    pub receipt_code: String,
    /// The version (also the `ETag`).
    pub version: u32,
    /// Status.
    pub status: Status,
    /// Kind.
    pub kind: CaseKind,
    /// Channel.
    pub channel: Channel,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Category.
    pub category_id: Option<Uuid>,
    /// Village.
    pub village_id: Option<Uuid>,
    /// The accused unit (检举控告).
    pub accused_unit_id: Option<Uuid>,
    /// Urgency.
    pub urgency: Urgency,
    /// When received.
    pub received_at: DateTime<Utc>,
    /// The handling round (1, +1 per rework).
    pub round: u32,
    /// The responsible unit (the lead unit in joint handling).
    pub unit_id: Option<Uuid>,
    /// The tier routed to.
    pub tier: Option<Tier>,
    /// While the case waits to be routed: where the routing rules (归口) would send it.
    pub proposed_route: Option<RouteView>,
    /// Co-units of joint handling, with who has and has not signed and contributed.
    pub co_units: Vec<CoUnitView>,
    /// The running stage's deadline (none while paused counts as `paused`).
    pub deadline: Option<DeadlineView>,
    /// The overall clock from acceptance (60 calendar days by default), which no transfer,
    /// return or reopen resets; present once accepted.
    pub overall_deadline: Option<DeadlineView>,
    /// The acknowledgement owed to an identified citizen, while it is owed.
    pub acknowledgement_deadline: Option<DeadlineView>,
    /// When accepted (受理).
    pub accepted_at: Option<DateTime<Utc>>,
    /// When the acknowledgement notice was recorded.
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When the lead unit signed for it (签收).
    pub signed_at: Option<DateTime<Utc>>,
    /// A return (退单) waiting for the dispatcher: the unit's reason.
    pub return_request: Option<String>,
    /// Returns approved so far.
    pub returns: u32,
    /// An extension request waiting for a supervisor.
    pub extension_request: Option<ExtensionRequestView>,
    /// Paused clocks.
    pub paused: Option<PauseView>,
    /// Failed follow-up attempts since the last reply.
    pub follow_up_attempts: u32,
    /// Dissatisfied ratings so far (the second puts the case under supervision).
    pub dissatisfied_count: u32,
    /// Extensions granted this round.
    pub extensions_this_round: u8,
    /// When last assigned.
    pub assigned_at: Option<DateTime<Utc>>,
    /// This round's handling.
    pub handling: Option<HandlingView>,
    /// This round's reply.
    pub feedback: Option<FeedbackView>,
    /// This round's rating.
    pub satisfaction: Option<SatisfactionView>,
    /// Whether the citizen was ever told an outcome.
    pub ever_fed_back: bool,
    /// Why it was rejected.
    pub rejection_reason: Option<String>,
    /// The non-acceptance code.
    pub rejection_code: Option<NonAcceptanceCode>,
    /// The body a not-accepted citizen was referred to.
    pub referred_to: Option<String>,
    /// Under supervision (督办).
    pub escalated: bool,
    /// Why.
    pub escalation_reason: Option<String>,
    /// The case it duplicates.
    pub duplicate_of: Option<Uuid>,
    /// The campaign it was received in (by its day and village, or by its source record).
    pub campaign_id: Option<Uuid>,
    /// The campaign's phase then.
    pub campaign_phase: Option<crate::routes::campaigns::PhaseName>,
    /// The record it came from.
    pub source: Option<CaseSourceView>,
    /// Notes in the history.
    pub notes: u32,
    /// When closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// Why the citizen withdrew it (撤回), when they did (the case is then closed).
    pub withdrawal_reason: Option<String>,
    /// Where the matter is, when given.
    pub location: Option<LocationView>,
    /// Questions asked through the case, and how many the citizen answered.
    pub questions_asked: u32,
    /// Of those, answered.
    pub questions_answered: u32,
    /// The complainant, masked.
    pub complainant: ComplainantView,
}

/// Where a matter is.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LocationView {
    /// The address.
    pub address: Option<String>,
    /// Latitude (WGS 84).
    pub lat: Option<f64>,
    /// Longitude (WGS 84).
    pub long: Option<f64>,
}

/// Who caused an event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ActorView {
    /// Their id.
    pub id: String,
    /// Their role.
    pub role: String,
}

/// One event of a case's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    /// Global position.
    pub position: i64,
    /// Version within the case.
    pub version: u32,
    /// Stable type name, e.g. `case.assigned`.
    #[schema(example = "case.assigned")]
    pub event_type: String,
    /// Schema version it was written with.
    pub schema_version: u16,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
    /// Who did it.
    pub actor: ActorView,
    /// The request that carried it.
    pub request_id: Option<String>,
    /// The payload as stored (personal data only as ciphertext).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// The metadata as stored and hashed (actor, request id, idempotency key, correlation id).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// SHA-256 of the event, hex.
    pub hash: String,
    /// The previous event's hash, hex.
    pub prev_hash: String,
}

/// A case's history.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventList {
    /// The case.
    pub case_id: Uuid,
    /// Events in version order.
    pub events: Vec<EventView>,
}

/// Replay a case up to a moment or a version.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CaseAsOfQuery {
    /// The state as it was at this moment (RFC 3339): events recorded up to it. Between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded) as an instant; the pattern checks the year as written; no leap second; a fraction finer than a microsecond is cut.
    #[param(pattern = r"^20[0-9]{2}-")]
    #[serde(default, deserialize_with = "crate::instant::optional")]
    pub as_of: Option<DateTime<Utc>>,
    /// The state as it was at this version (1 to 4294967295).
    #[param(minimum = 1, maximum = 4294967295_u64, format = Int64)]
    pub version: Option<u32>,
}

/// Paging of a case's history.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Only events after this version (0 to 4294967295).
    #[param(minimum = 0, maximum = 4294967295_u64, format = Int64)]
    pub after_version: Option<u32>,
    /// At most this many events (1 to 500, default 100).
    #[param(minimum = 1, maximum = 500, format = Int32)]
    pub limit: Option<u32>,
}

/// Why someone looks at a complainant's identity.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"purpose_code": "follow_up", "purpose": "回访前核实反映人联系方式"}))]
pub struct RevealRequest {
    /// Why, as a code from the documented list: the reason itself.
    pub purpose_code: RevealPurpose,
    /// The purpose in words (its detail), recorded in the case's history: at most 1000 characters, trimmed; not blank; no control characters but tab and line breaks, with
    /// at least 4 letters or CJK characters (digits, punctuation and spaces do not count).
    #[schema(
        min_length = 4,
        max_length = 1000,
        pattern = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u2800\u3164\uFE00-\uFE0F\uFEFF\uFFA0\uFFF0-\uFFF8][^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$"
    )]
    pub purpose: String,
}

/// A complainant's identity in clear.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RevealedComplainant {
    /// Name.
    pub name: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// ID number.
    pub id_number: Option<String>,
    /// The version of the access event recorded for this look.
    pub access_version: u32,
}

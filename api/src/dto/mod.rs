//! The JSON bodies of the API, documented with utoipa. Requests are plain data with
//! `deny_unknown_fields`; they become validated domain values in [`crate::service`], which
//! collects every invalid field into one 422 answer.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Mirrors a domain enum for the API (the domain has no utoipa), with conversions both ways.
macro_rules! mirror_enum {
    ($(#[$doc:meta])* $name:ident => $domain:path { $($(#[$vdoc:meta])* $variant:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        #[allow(missing_docs)] // The variants are documented on the domain's enum.
        pub enum $name { $($(#[$vdoc])* $variant),* }

        impl From<$name> for $domain {
            fn from(v: $name) -> Self { match v { $($name::$variant => Self::$variant),* } }
        }
        impl From<$domain> for $name {
            fn from(v: $domain) -> Self { match v { $(<$domain>::$variant => Self::$variant),* } }
        }
    };
}

mirror_enum!(
    /// How the case came in: 座谈会, 走访, 联系卡, 问卷, 电话, 邮箱, 来信, 来访, 网上.
    Channel => domain::Channel { Symposium, Visit, ContactCard, Questionnaire, Phone, Email, Letter, WalkIn, Web }
);
mirror_enum!(
    /// 投诉 / 意见建议 / 反映.
    CaseKind => domain::CaseKind { Complaint, Suggestion, Report }
);
mirror_enum!(
    /// Normal cases count working days; urgent ones (急事急办) count hours.
    Urgency => domain::Urgency { Normal, Urgent }
);
mirror_enum!(
    /// How handling came out.
    Outcome => domain::Outcome { Resolved, PartiallyResolved, Explained, NotSupported }
);
mirror_enum!(
    /// How the citizen was told.
    FeedbackMethod => domain::FeedbackMethod { Phone, Sms, Letter, InPerson, Online }
);
mirror_enum!(
    /// 满意 / 基本满意 / 不满意.
    Rating => domain::Rating { Satisfied, BasicallySatisfied, Dissatisfied }
);
mirror_enum!(
    /// Where a case stands. A case reopened for rework is `assigned` again, in a new round.
    Status => domain::Status { Received, Rejected, Assigned, Handled, FedBack, Closed }
);
mirror_enum!(
    /// The clock a deadline is for: a stage's (assignment, sign-for, handling, reply,
    /// follow-up), the acknowledgement owed to the citizen, or the overall clock from acceptance.
    Stage => domain::Stage { Assignment, SignFor, Handling, Feedback, FollowUp, Acknowledgement, Overall }
);
mirror_enum!(
    /// Why a case is not accepted (不予受理): `out_of_remit` and `legal_channel` name the body
    /// the citizen is referred to (信访工作条例 (2022) arts. 21–23).
    NonAcceptanceCode => domain::NonAcceptanceCode {
        OutOfRemit, LegalChannel, AlreadyInProcess, AlreadyConcluded, InsufficientFacts, Other
    }
);
mirror_enum!(
    /// What a notice to the citizen was about: the acknowledgement (受理告知), an extension
    /// (延期告知), or anything else.
    NoticeKind => domain::NoticeKind { Acknowledgement, NonAcceptance, Extension, Other }
);
mirror_enum!(
    /// How a rating or a follow-up attempt was made (回访).
    RatingMethod => domain::RatingMethod { Phone, InPerson, Sms, Web }
);
mirror_enum!(
    /// Why a complainant's identity is shown (the reasons 纪检监察机关处理检举控告工作规则 (2020)
    /// leaves): `verify_identity` 核实身份, `contact_citizen` 联系反映人, `follow_up` 回访,
    /// `investigation` 调查核实, `referral` 移送, `legal_request` 依法调取.
    RevealPurpose => domain::RevealPurpose { VerifyIdentity, ContactCitizen, FollowUp, Investigation, Referral, LegalRequest }
);
mirror_enum!(
    /// The tier routed to (归口): a town department or a village / farm / community.
    Tier => domain::Tier { Town, Village }
);
mirror_enum!(
    /// The kind of a unit: 镇, 村, 场, 居, 部门.
    UnitKind => domain::UnitKind { Town, Village, Farm, Community, Department }
);
mirror_enum!(
    /// A caller's role.
    Role => domain::Role { Clerk, Handler, Supervisor, Auditor, Admin, Citizen }
);

mod cases;
mod integrity;
mod ledger;
mod reference;

pub use cases::*;
pub use integrity::*;
pub use ledger::*;
pub use reference::*;
mirror_enum!(
    /// What a notice to the citizen is about: 受理告知, 答复, 回访, a question, 延期告知, 不予受理告知.
    NoticeType => domain::NoticeType { Acknowledgement, Reply, FollowUpRequest, Question, Extension, NonAcceptance }
);
mirror_enum!(
    /// How a notice reaches the citizen: a text message or an email.
    ContactChannel => domain::ContactChannel { Sms, Email }
);

//! The campaign's own records (纠风工作基层行): the campaign with its phases, symposium meetings
//! (座谈会), open and undercover visits (明察暗访), contact-card batches (纠风联系卡) and
//! questionnaires (问卷调查表).
//!
//! Each record is a stream of events in the same log as the cases, decided and folded here as
//! cases are: a command is checked against the record's folded state by a pure function that
//! returns the events, and [`Record::apply`] folds them. A stream's type is the prefix of its
//! event types (`meeting.recorded` belongs to a `meeting`), so the hash chain, which covers the
//! event type, covers the stream type too.
//!
//! Cases tie back to them: a case records the campaign and phase it was received in
//! ([`CampaignTag`]) and the record it came from ([`CaseSource`]); each record lists its cases.

pub mod campaign;
pub mod card;
pub mod meeting;
pub mod supervision;
pub mod survey;
pub mod visit;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::HistoryError;
use crate::ids::{RecordId, UnitId};

/// A campaign's phase (the source document's 筹备 / 实施 / 总结).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// 筹备阶段: leading group, mobilisation meeting, publicity.
    Preparation,
    /// 实施阶段: meetings, visits, cards and questionnaires.
    Implementation,
    /// 总结阶段: each village's report.
    Summary,
}

impl Phase {
    /// The identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preparation => "preparation",
            Self::Implementation => "implementation",
            Self::Summary => "summary",
        }
    }
}

/// The campaign and phase a case was received in, decided once at registration by the day it
/// was received (China Standard Time) and its village (or the record it came from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignTag {
    /// The campaign.
    pub campaign: RecordId,
    /// Its phase on that day.
    pub phase: Phase,
}

/// The kind of record a case came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceType {
    /// An opinion raised at a symposium meeting (座谈会); `item` is its number in the minutes.
    Meeting,
    /// A finding of a visit (明察暗访); `item` is the finding's number.
    Visit,
    /// A contact card (纠风联系卡); `item` is the card's serial.
    CardBatch,
    /// A questionnaire response (问卷调查表); `item` is the response's id.
    Survey,
}

impl SourceType {
    /// The identifier (also the stream type of the record).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Meeting => "meeting",
            Self::Visit => "visit",
            Self::CardBatch => "card_batch",
            Self::Survey => "survey",
        }
    }
}

/// The record a case came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseSource {
    /// Which kind of record.
    #[serde(rename = "type")]
    pub source_type: SourceType,
    /// The record.
    pub record: RecordId,
    /// The item within it: an opinion's number in the minutes, a finding's number, a card's
    /// serial, a response's id.
    pub item: String,
}

/// What queries of a record filter on, beside its folded state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordIndex {
    /// The campaign it belongs to.
    pub campaign: Option<RecordId>,
    /// The units it concerns (a handler of one of them reads it).
    pub units: Vec<UnitId>,
    /// Only supervisors and auditors read it (an undercover visit not yet disclosed).
    pub restricted: bool,
    /// The day it happened or starts.
    pub happened_on: Option<NaiveDate>,
    /// A contact-card batch's serial range, both ends included.
    pub serials: Option<(u32, u32)>,
}

/// A record's events: a stable type name and schema version each, upcast when read.
pub trait RecordEvent: Sized {
    /// The stable type name stored with the event. Never change one.
    fn event_type(&self) -> &'static str;
    /// The schema version this code writes.
    fn schema_version(&self) -> u16;
    /// The payload as JSON (no floats, so it hashes canonically).
    fn payload(&self) -> Value;
    /// Reads a stored event.
    ///
    /// # Errors
    /// [`HistoryError::UnknownEvent`] or [`HistoryError::BadPayload`].
    fn from_stored(event_type: &str, schema_version: u16, payload: Value) -> Result<Self, HistoryError>;
}

/// A kind of record: its stream type, its events and how they fold.
pub trait Record: Sized + Clone + Serialize + serde::de::DeserializeOwned {
    /// The stream type: the prefix of every event type of this record.
    const STREAM: &'static str;
    /// Its events.
    type Event: RecordEvent;
    /// Folds one event into the state. `at` is when it was recorded.
    ///
    /// # Errors
    /// [`HistoryError::NotCreated`] when the history does not start with the record's creation
    /// or repeats it.
    fn apply(state: Option<Self>, id: RecordId, event: &Self::Event, at: DateTime<Utc>) -> Result<Self, HistoryError>;
    /// What queries filter on.
    fn index(&self) -> RecordIndex;
    /// The cases that came from it, as its state records them (none for a campaign, whose cases
    /// are tagged, not brought).
    fn case_ids(&self) -> Vec<crate::ids::CaseId> {
        Vec::new()
    }
    /// The items (by number) whose text is one of `cases`' own (a visit's findings that became
    /// them): a reader who may not see such a case may not read the item either.
    fn items_of(&self, _cases: &[crate::ids::CaseId]) -> Vec<u32> {
        Vec::new()
    }
}

/// Folds a record's stored events (type, schema version, payload, recorded at), in version
/// order; `None` for an empty history.
///
/// # Errors
/// A [`HistoryError`] when an event does not read or the history does not start with the
/// record's creation.
pub fn replay<'a, R: Record>(
    id: RecordId,
    events: impl IntoIterator<Item = (&'a str, u16, &'a Value, DateTime<Utc>)>,
) -> Result<Option<R>, HistoryError> {
    let mut state: Option<R> = None;
    for (t, v, payload, at) in events {
        let e = R::Event::from_stored(t, v, payload.clone())?;
        state = Some(R::apply(state, id, &e, at)?);
    }
    Ok(state)
}

/// The stream type of an event type: its prefix before the first dot (`case` for a case).
pub fn stream_type_of(event_type: &str) -> &str {
    event_type.split('.').next().unwrap_or(event_type)
}

/// A rule of a record refused a command. Each has a stable code; the API answers 422 for the
/// input errors and 409 for the state errors ([`RecordError::is_conflict`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The phases are not in the order preparation → implementation → summary, overlap, repeat
    /// one, end before they start, or leave out the implementation phase.
    #[error(
        "the phases must run preparation, implementation, summary in that order, each ending on or after it starts, without overlapping; implementation is required"
    )]
    PhasesOutOfOrder,
    /// An opinion's number in the minutes is already taken in this meeting.
    #[error("opinion number {0} is already taken in this meeting's minutes")]
    OpinionNumberTaken(u32),
    /// A finding number that the visit does not have.
    #[error("the visit has no finding {0}")]
    NoSuchFinding(u32),
    /// A re-check of a finding that demanded no rectification.
    #[error("finding {0} demanded no rectification, so there is nothing to re-check")]
    NothingToRecheck(u32),
    /// The finding is already a case.
    #[error("finding {0} is already a case")]
    FindingAlreadyACase(u32),
    /// A finding of an undercover visit not yet disclosed cannot become a case: the case would
    /// show the visit to every reader of cases.
    #[error("disclose the undercover visit before a finding of it becomes a case")]
    StillUndercover,
    /// A day after today where only a day that happened may stand.
    #[error("{0} cannot lie in the future")]
    DateInFuture(&'static str),
    /// A day outside the record's campaign (its phases), or a unit that does not take part in it.
    #[error("{0} lies outside the campaign: its day must fall in one of the campaign's phases and its unit take part")]
    OutsideCampaign(&'static str),
    /// A campaign whose days overlap another campaign's for a unit both name.
    #[error("a unit already takes part in another campaign on some of these days")]
    CampaignsOverlap,
    /// A card that was never handed out cannot bring a case.
    #[error("card {0} was not handed out")]
    NotHandedOut(u32),
    /// The minutes have no number left (at most 10000 opinions).
    #[error("the minutes hold at most 10000 opinions")]
    OpinionNumbersExhausted,
    /// No hand-out holds the serial with a recipient whose data is still there.
    #[error("no hand-out of card {0} names a recipient whose personal data is still held")]
    NoRecipient(u32),
    /// Cards handed out before their batch was delivered.
    #[error("cards cannot be handed out before their batch was delivered")]
    BeforeDelivery,
    /// The visit is open or already disclosed.
    #[error("only an undercover visit not yet disclosed can be disclosed")]
    NotUndercover,
    /// A date before the record's own (a re-check before the visit, a rectification due
    /// before it).
    #[error("{0} cannot lie before the visit")]
    DateBeforeVisit(&'static str),
    /// A serial range that ends before it starts, or is larger than a batch may be.
    #[error("the serial range must run from serial_from to serial_to (at most 100000 cards)")]
    BadSerialRange,
    /// The batch's serial range overlaps another batch's.
    #[error("the serial range overlaps another batch's")]
    SerialsOverlap,
    /// A serial outside the batch's range.
    #[error("serial {0} is not in this batch")]
    UnknownSerial(u32),
    /// The card already brought a case.
    #[error("the card with serial {0} has already been used for a case")]
    SerialUsed(u32),
    /// The card was already handed out.
    #[error("the card with serial {0} was already handed out")]
    AlreadyHandedOut(u32),
    /// A questionnaire template that is not well formed (no questions, a repeated key, a choice
    /// question without two options, options on a question that takes none).
    #[error("{0}")]
    BadTemplate(&'static str),
    /// The supervision item is closed.
    #[error("the supervision item is closed")]
    SupervisionClosed,
    /// The campaign's summary phase is over: its days are history (its summary report stands
    /// on them), and no longer move.
    #[error("the campaign is over (its summary phase has ended): its phases no longer move")]
    CampaignFinished,
    /// Closing an item the unit never responded to needs a note saying why.
    #[error("the unit has not responded: say why the item closes without a response")]
    ResponseRequired,
    /// An answer that does not fit its question.
    #[error("the answer to {question} {problem}")]
    BadAnswer {
        /// The question's key.
        question: String,
        /// What is wrong.
        problem: &'static str,
    },
}

impl RecordError {
    /// The stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::PhasesOutOfOrder => "phases-out-of-order",
            Self::OpinionNumberTaken(_) => "opinion-number-taken",
            Self::NoSuchFinding(_) => "no-such-finding",
            Self::NothingToRecheck(_) => "nothing-to-recheck",
            Self::FindingAlreadyACase(_) => "finding-already-a-case",
            Self::NotUndercover => "not-undercover",
            Self::StillUndercover => "still-undercover",
            Self::DateInFuture(_) => "date-in-future",
            Self::OutsideCampaign(_) => "outside-campaign",
            Self::CampaignsOverlap => "campaigns-overlap",
            Self::BeforeDelivery => "before-delivery",
            Self::NoRecipient(_) => "no-recipient",
            Self::NotHandedOut(_) => "not-handed-out",
            Self::OpinionNumbersExhausted => "opinion-numbers-exhausted",
            Self::DateBeforeVisit(_) => "date-before-visit",
            Self::BadSerialRange => "bad-serial-range",
            Self::SerialsOverlap => "serials-overlap",
            Self::UnknownSerial(_) => "unknown-serial",
            Self::SerialUsed(_) => "serial-used",
            Self::AlreadyHandedOut(_) => "already-handed-out",
            Self::BadTemplate(_) => "bad-template",
            Self::BadAnswer { .. } => "bad-answer",
            Self::SupervisionClosed => "supervision-closed",
            Self::ResponseRequired => "response-required",
            Self::CampaignFinished => "campaign-finished",
        }
    }

    /// Whether the record's state refused it (409) rather than the input (422).
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Self::FindingAlreadyACase(_)
                | Self::NotUndercover
                | Self::StillUndercover
                | Self::NoRecipient(_)
                | Self::SupervisionClosed
                | Self::ResponseRequired
                | Self::CampaignFinished
        )
    }
}

/// Defines a record's event enum and its [`RecordEvent`] implementation from one table of
/// variant, payload type, stable type name and schema version.
macro_rules! record_events {
    ($(#[$doc:meta])* $enum:ident { $( $variant:ident($ty:ty) => $name:literal, $version:literal; )* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum $enum {
            $( $variant($ty), )*
        }

        impl $enum {
            /// Every event type of this record, with its current schema version.
            pub const TYPES: &'static [(&'static str, u16)] = &[ $( ($name, $version), )* ];
        }

        impl $crate::records::RecordEvent for $enum {
            fn event_type(&self) -> &'static str {
                match self { $( Self::$variant(_) => $name, )* }
            }
            fn schema_version(&self) -> u16 {
                match self { $( Self::$variant(_) => $version, )* }
            }
            fn payload(&self) -> serde_json::Value {
                let v = match self { $( Self::$variant(e) => serde_json::to_value(e), )* };
                v.unwrap_or(serde_json::Value::Null)
            }
            fn from_stored(
                event_type: &str,
                schema_version: u16,
                payload: serde_json::Value,
            ) -> Result<Self, $crate::error::HistoryError> {
                let bad = |e: serde_json::Error| $crate::error::HistoryError::BadPayload {
                    event_type: event_type.to_owned(),
                    schema_version,
                    message: e.to_string(),
                };
                match (event_type, schema_version) {
                    $( ($name, $version) => serde_json::from_value(payload).map(Self::$variant).map_err(bad), )*
                    (other, v) => Err($crate::error::HistoryError::UnknownEvent(other.to_owned(), v)),
                }
            }
        }
    };
}
pub(crate) use record_events;

/// The day of a moment in China Standard Time.
pub fn china_day(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&crate::calendar::china_offset()).date_naive()
}

//! Supervision (督办): an item puts a unit under supervision for a case (or for its overdue
//! cases as a whole) with a level (一般 / 重点 / 挂牌督办), a due date for the unit's response,
//! the response, and the item's closure by a supervisor — each step an event of a
//! `supervision` stream.
//!
//! Items are raised by rules ([`Rules`], pure functions of what the ledger shows) or by a
//! supervisor. A rule's item has a deterministic id ([`Raise::id`], a UUID v5 of its trigger),
//! so a trigger seen again — by the next run of the task, or by another server at the same
//! time — names the same stream, whose creation the log accepts once.
//!
//! Sources: 12345 hotline practice (a unit with repeatedly late cases gets a yellow, then a red
//! card; a dissatisfied citizen's case is handled again and, dissatisfied twice, supervised), the
//! glossary's 督办 ("an overdue or serious case is put under supervision"). The thresholds are
//! settings, not rules of the trade.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Record, RecordError, RecordIndex, china_day, record_events};
use crate::calendar::{WorkingCalendar, end_of_local_day};
use crate::deadline::Stage;
use crate::error::HistoryError;
use crate::ids::{CaseId, Reason, RecordId, Text, UnitId};

/// The namespace of rule-raised items' ids (UUID v5 of the trigger's key).
pub const NAMESPACE: Uuid = Uuid::from_u128(0x6875_6979_696e_4000_8000_0000_6475_6261);

/// How hard a unit is pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// 一般督办.
    General,
    /// 重点督办 (a yellow card).
    Key,
    /// 挂牌督办 (a red card: named publicly, the strongest).
    Listed,
}

/// Why an item was raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum Trigger {
    /// A running clock of the case passed its due time (any stage, the acknowledgement, or the
    /// overall 60-day clock).
    Overdue {
        /// The clock's stage (`sign_for`, `handling`, …, `acknowledgement`, `overall`).
        stage: Stage,
        /// Its due time.
        due_at: DateTime<Utc>,
    },
    /// The citizen rated the answer 不满意 a second (or later) time.
    RepeatDissatisfied {
        /// How many dissatisfied ratings the case has had.
        count: u32,
    },
    /// The dispatcher refused the unit's return (退单): who owns the case is disputed.
    ReturnDispute {
        /// How many returns of the case were refused.
        count: u32,
    },
    /// At least N cases were linked to this one as duplicates of one matter.
    Duplicates {
        /// How many are linked.
        count: u32,
    },
    /// The unit holds more than M overdue clocks (a yellow card; more than 2M: red). Raised at
    /// most once a week per level while it lasts.
    UnitOverdue {
        /// Its overdue clocks when raised.
        count: u32,
        /// The threshold M it passed.
        threshold: u32,
        /// The Monday of the week (China Standard Time).
        week: NaiveDate,
    },
    /// A supervisor raised it.
    Manual {
        /// Why.
        reason: Reason,
    },
}

impl Trigger {
    /// The identifier of the trigger's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Overdue { .. } => "overdue",
            Self::RepeatDissatisfied { .. } => "repeat_dissatisfied",
            Self::ReturnDispute { .. } => "return_dispute",
            Self::Duplicates { .. } => "duplicates",
            Self::UnitOverdue { .. } => "unit_overdue",
            Self::Manual { .. } => "manual",
        }
    }
}

/// The thresholds of the rules (settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// N: a matter with this many linked duplicates is supervised (default 3).
    pub duplicates: u32,
    /// M: a unit with more overdue clocks than this gets a yellow card (重点), more than 2M a red
    /// one (挂牌) (default 5).
    pub unit_overdue: u32,
    /// The unit's response is due this many working days after the item is raised (default 5).
    pub response_working_days: u16,
}

impl Default for Rules {
    fn default() -> Self {
        Self { duplicates: 3, unit_overdue: 5, response_working_days: 5 }
    }
}

/// An item a rule asks for: its deterministic id, trigger, level, unit and case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raise {
    /// The item's id: UUID v5 of the trigger's key, the same on every run and every server.
    pub id: RecordId,
    /// Why.
    pub trigger: Trigger,
    /// How hard.
    pub level: Level,
    /// The unit supervised (none: the intake, for a clock the intake answers for).
    pub unit: Option<UnitId>,
    /// The case (none for a unit's card).
    pub case: Option<CaseId>,
    /// The campaign the case was received in (none for a unit's card or a case outside one): a
    /// campaign's summary report counts its items by it.
    pub campaign: Option<RecordId>,
}

impl Raise {
    fn keyed(key: &str, trigger: Trigger, level: Level, unit: Option<UnitId>, case: Option<CaseId>) -> Self {
        let id = RecordId::from_uuid(Uuid::new_v5(&NAMESPACE, key.as_bytes()));
        Self { id, trigger, level, unit, case, campaign: None }
    }

    /// The same item, about a case received in `campaign`. The campaign is not part of the
    /// trigger's key: the id stays that of the trigger.
    #[must_use]
    pub fn in_campaign(self, campaign: Option<RecordId>) -> Self {
        Self { campaign, ..self }
    }
}

/// A clock past its due time: supervised once per clock and due time (an extended clock that
/// falls due again is a new trigger). The overall 60-day clock is 重点, the others 一般.
pub fn overdue(case: CaseId, unit: Option<UnitId>, stage: Stage, due_at: DateTime<Utc>) -> Raise {
    let key = format!("overdue/{case}/{}/{}", stage.as_str(), due_at.timestamp_micros());
    let level = if stage == Stage::Overall { Level::Key } else { Level::General };
    Raise::keyed(&key, Trigger::Overdue { stage, due_at }, level, unit, Some(case))
}

/// A second dissatisfied rating: 重点, once per case (a third rating does not raise a second
/// item for the same matter; one raised when the task first sees three records `count` 3).
pub fn repeat_dissatisfied(case: CaseId, unit: Option<UnitId>, count: u32) -> Option<Raise> {
    (count >= 2).then(|| {
        let key = format!("repeat-dissatisfied/{case}");
        Raise::keyed(&key, Trigger::RepeatDissatisfied { count }, Level::Key, unit, Some(case))
    })
}

/// A refused return: 一般, once per refusal.
pub fn return_dispute(case: CaseId, unit: Option<UnitId>, count: u32) -> Option<Raise> {
    (count >= 1).then(|| {
        let key = format!("return-dispute/{case}/{count}");
        Raise::keyed(&key, Trigger::ReturnDispute { count }, Level::General, unit, Some(case))
    })
}

/// N or more duplicates linked to one case: 重点, once per matter.
pub fn duplicates(case: CaseId, unit: Option<UnitId>, count: u32, rules: &Rules) -> Option<Raise> {
    (count >= rules.duplicates.max(1)).then(|| {
        let key = format!("duplicates/{case}");
        Raise::keyed(&key, Trigger::Duplicates { count }, Level::Key, unit, Some(case))
    })
}

/// A unit's card: more than M overdue clocks → 重点 (yellow), more than 2M → 挂牌 (red); once a
/// week per level. `now` places the week (Monday, China Standard Time).
pub fn unit_overdue(unit: UnitId, count: u32, rules: &Rules, now: DateTime<Utc>) -> Option<Raise> {
    let m = rules.unit_overdue;
    let level = if count > m.saturating_mul(2) {
        Level::Listed
    } else if count > m {
        Level::Key
    } else {
        return None;
    };
    let day = china_day(now);
    let week = day - chrono::Days::new(u64::from(chrono::Datelike::weekday(&day).num_days_from_monday()));
    let key = format!("unit-overdue/{unit}/{level:?}/{week}");
    Some(Raise::keyed(&key, Trigger::UnitOverdue { count, threshold: m, week }, level, Some(unit), None))
}

/// `supervision.raised` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raised {
    /// Why.
    pub trigger: Trigger,
    /// How hard.
    pub level: Level,
    /// The unit supervised.
    pub unit: Option<UnitId>,
    /// The case.
    pub case: Option<CaseId>,
    /// The campaign the case was received in (absent: none, a unit's card, or an item raised
    /// before items carried it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<RecordId>,
    /// The unit's response is due by then (end of a working day, China Standard Time).
    pub response_due_at: DateTime<Utc>,
}

/// `supervision.responded` v1: the unit says what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Responded {
    /// What it did.
    pub text: Text,
}

/// `supervision.closed` v1: a supervisor closes the item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Closed {
    /// Why (required when the unit never responded).
    pub note: Option<Text>,
}

record_events! {
    /// Every event of a supervision item.
    SupervisionEvent {
        Raised(Raised) => "supervision.raised", 1;
        Responded(Responded) => "supervision.responded", 1;
        Closed(Closed) => "supervision.closed", 1;
    }
}

/// A response, with when it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// What the unit said.
    pub text: Text,
    /// When.
    pub at: DateTime<Utc>,
}

/// An item as its events leave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supervision {
    /// Its id.
    pub id: RecordId,
    /// How many events it has.
    pub version: u32,
    /// What was raised.
    #[serde(flatten)]
    pub raised: Raised,
    /// When.
    pub raised_at: DateTime<Utc>,
    /// The unit's responses, in order.
    pub responses: Vec<Response>,
    /// When a supervisor closed it.
    pub closed_at: Option<DateTime<Utc>>,
    /// The closing note.
    pub closing_note: Option<Text>,
}

impl Supervision {
    /// Whether it is still open.
    pub fn is_open(&self) -> bool {
        self.closed_at.is_none()
    }
}

/// Raises an item: its response falls due `rules.response_working_days` working days after
/// `now`, at the end of that day (China Standard Time).
///
/// # Errors
/// [`RecordError::DateInFuture`] never; a calendar that cannot count that far gives
/// [`RecordError::BadTemplate`] ("the working calendar cannot place the response's due date").
pub fn raise(
    raise: &Raise,
    rules: &Rules,
    now: DateTime<Utc>,
    calendar: &WorkingCalendar,
) -> Result<Vec<SupervisionEvent>, RecordError> {
    let day = calendar
        .add_working_days(china_day(now), rules.response_working_days)
        .map_err(|_| RecordError::BadTemplate("the working calendar cannot place the response's due date"))?;
    Ok(vec![SupervisionEvent::Raised(Raised {
        trigger: raise.trigger.clone(),
        level: raise.level,
        unit: raise.unit,
        case: raise.case,
        campaign: raise.campaign,
        response_due_at: end_of_local_day(day),
    })])
}

/// The unit responds.
///
/// # Errors
/// [`RecordError::SupervisionClosed`].
pub fn respond(item: &Supervision, text: Text) -> Result<Vec<SupervisionEvent>, RecordError> {
    if !item.is_open() {
        return Err(RecordError::SupervisionClosed);
    }
    Ok(vec![SupervisionEvent::Responded(Responded { text })])
}

/// A supervisor closes the item: after the unit's response, or with a note saying why without
/// one.
///
/// # Errors
/// [`RecordError::SupervisionClosed`], [`RecordError::ResponseRequired`].
pub fn close(item: &Supervision, note: Option<Text>) -> Result<Vec<SupervisionEvent>, RecordError> {
    if !item.is_open() {
        return Err(RecordError::SupervisionClosed);
    }
    if item.responses.is_empty() && note.is_none() {
        return Err(RecordError::ResponseRequired);
    }
    Ok(vec![SupervisionEvent::Closed(Closed { note })])
}

impl Record for Supervision {
    const STREAM: &'static str = "supervision";
    type Event = SupervisionEvent;

    fn apply(
        state: Option<Self>,
        id: RecordId,
        event: &SupervisionEvent,
        at: DateTime<Utc>,
    ) -> Result<Self, HistoryError> {
        match (state, event) {
            (None, SupervisionEvent::Raised(e)) => Ok(Self {
                id,
                version: 1,
                raised: e.clone(),
                raised_at: at,
                responses: Vec::new(),
                closed_at: None,
                closing_note: None,
            }),
            (Some(mut s), SupervisionEvent::Responded(e)) => {
                s.version += 1;
                s.responses.push(Response { text: e.text.clone(), at });
                Ok(s)
            }
            (Some(mut s), SupervisionEvent::Closed(e)) => {
                s.version += 1;
                s.closed_at = Some(at);
                s.closing_note = e.note.clone();
                Ok(s)
            }
            _ => Err(HistoryError::NotCreated(Self::STREAM)),
        }
    }

    fn index(&self) -> RecordIndex {
        RecordIndex {
            campaign: self.raised.campaign,
            units: self.raised.unit.into_iter().collect(),
            restricted: false,
            happened_on: Some(china_day(self.raised_at)),
            serials: None,
        }
    }

    fn case_ids(&self) -> Vec<CaseId> {
        self.raised.case.into_iter().collect()
    }
}

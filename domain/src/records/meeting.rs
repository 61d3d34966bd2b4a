//! A symposium meeting (座谈会): 20–30 representatives chosen by type hear the campaign and raise
//! opinions, which become cases linked to the meeting with their number in the minutes.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Record, RecordError, RecordIndex, record_events};
use crate::error::HistoryError;
use crate::ids::{CaseId, Name, RecordId, Text, Title, UnitId};

/// The fewest and the most representatives the campaign's plan asks a symposium to gather
/// (the source document: "20–30 representatives chosen by type"). Outside it the meeting is
/// recorded with a warning, not refused: the meeting took place.
pub const RECOMMENDED_ATTENDANCE: std::ops::RangeInclusive<u32> = 20..=30;

/// The highest number an opinion may have in the minutes.
pub const MAX_OPINION_NUMBER: u32 = 10_000;

/// The types of representatives a symposium gathers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttendeeType {
    /// 人大代表.
    NpcDeputy,
    /// 政协委员.
    CppccMember,
    /// 行风监督员: a conduct supervisor.
    ConductSupervisor,
    /// 村民代表: a villagers' representative.
    VillagerRepresentative,
    /// 其他.
    Other,
}

/// How many representatives of one type came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attendance {
    /// The type.
    #[serde(rename = "type")]
    pub attendee_type: AttendeeType,
    /// How many.
    pub count: u32,
}

/// `meeting.recorded` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    /// The topic.
    pub topic: Title,
    /// The day it was held.
    pub held_on: NaiveDate,
    /// Where.
    pub venue: Name,
    /// The unit that hosted it.
    pub host_unit: UnitId,
    /// The campaign it belongs to.
    pub campaign: Option<RecordId>,
    /// Who chaired it.
    pub chair: Name,
    /// Who kept the minutes.
    pub recorder: Name,
    /// Who came, by type (one entry per type).
    pub attendance: Vec<Attendance>,
    /// The minutes (纪要).
    pub minutes: Option<Text>,
}

/// One opinion registered as a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpinionLink {
    /// Its number in the minutes.
    pub number: u32,
    /// The case it became.
    pub case: CaseId,
}

/// `meeting.opinions_registered` v1: opinions raised at the meeting became cases, all in the
/// same transaction as this event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpinionsRegistered {
    /// The opinions, in the order given.
    pub opinions: Vec<OpinionLink>,
}

record_events! {
    /// Every event of a meeting.
    MeetingEvent {
        Recorded(Recorded) => "meeting.recorded", 1;
        OpinionsRegistered(OpinionsRegistered) => "meeting.opinions_registered", 1;
    }
}

/// A meeting as its events leave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meeting {
    /// Its id.
    pub id: RecordId,
    /// How many events it has.
    pub version: u32,
    /// What was recorded of it.
    #[serde(flatten)]
    pub details: Recorded,
    /// The opinions that became cases.
    pub opinions: Vec<OpinionLink>,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

impl Meeting {
    /// Everyone who came.
    pub fn total_attendees(&self) -> u32 {
        self.details.attendance.iter().map(|a| a.count).sum()
    }

    /// Whether the attendance lies outside [`RECOMMENDED_ATTENDANCE`].
    pub fn attendance_outside_recommended(&self) -> bool {
        !RECOMMENDED_ATTENDANCE.contains(&self.total_attendees())
    }

    /// The number the next opinion gets when none is given: one past the highest so far.
    pub fn next_opinion_number(&self) -> u32 {
        self.opinions.iter().map(|o| o.number).max().unwrap_or(0) + 1
    }
}

/// Links opinions to the cases they became. `numbers` are the numbers in the minutes, `None`
/// where the caller gave none (then the next free number is used, in order).
///
/// # Errors
/// [`RecordError::OpinionNumberTaken`] when a number is already taken in this meeting, or
/// given twice.
pub fn register_opinions(
    meeting: &Meeting,
    opinions: &[(Option<u32>, CaseId)],
) -> Result<Vec<MeetingEvent>, RecordError> {
    let mut taken: std::collections::BTreeSet<u32> = meeting.opinions.iter().map(|o| o.number).collect();
    for n in opinions.iter().filter_map(|(n, _)| *n) {
        if !taken.insert(n) {
            return Err(RecordError::OpinionNumberTaken(n));
        }
    }
    let mut next = taken.iter().next_back().copied().unwrap_or(0);
    let mut links = Vec::with_capacity(opinions.len());
    for (n, case) in opinions {
        let number = match n {
            Some(n) => *n,
            None => {
                next += 1;
                next
            }
        };
        if number > MAX_OPINION_NUMBER {
            return Err(RecordError::OpinionNumbersExhausted);
        }
        links.push(OpinionLink { number, case: *case });
    }
    Ok(vec![MeetingEvent::OpinionsRegistered(OpinionsRegistered { opinions: links })])
}

impl Record for Meeting {
    const STREAM: &'static str = "meeting";
    type Event = MeetingEvent;

    fn apply(state: Option<Self>, id: RecordId, event: &MeetingEvent, at: DateTime<Utc>) -> Result<Self, HistoryError> {
        match (state, event) {
            (None, MeetingEvent::Recorded(e)) => {
                Ok(Self { id, version: 1, details: e.clone(), opinions: Vec::new(), recorded_at: at })
            }
            (Some(mut m), MeetingEvent::OpinionsRegistered(e)) => {
                m.version += 1;
                m.opinions.extend(e.opinions.iter().cloned());
                Ok(m)
            }
            _ => Err(HistoryError::NotCreated(Self::STREAM)),
        }
    }

    fn case_ids(&self) -> Vec<CaseId> {
        self.opinions.iter().map(|o| o.case).collect()
    }

    fn index(&self) -> RecordIndex {
        RecordIndex {
            campaign: self.details.campaign,
            units: vec![self.details.host_unit],
            restricted: false,
            happened_on: Some(self.details.held_on),
            serials: None,
        }
    }
}

//! A campaign (纠风工作基层行): its leading unit, the units taking part, its phases with their
//! days, and its documents (the plan, the mobilisation notice, publicity).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Phase, Record, RecordError, RecordIndex, record_events};
use crate::error::HistoryError;
use crate::ids::{RecordId, Text, Title, UnitId};

/// One phase and its days (China Standard Time), both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpan {
    /// Which phase.
    pub phase: Phase,
    /// Its first day.
    pub from: NaiveDate,
    /// Its last day.
    pub to: NaiveDate,
}

/// The kind of a campaign document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// 实施方案: the plan.
    Plan,
    /// 动员部署: the mobilisation notice or speech.
    Mobilisation,
    /// 宣传材料: publicity.
    Publicity,
    /// 总结报告: a summary report.
    Summary,
    /// Anything else.
    Other,
}

/// A campaign document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Its kind.
    pub kind: DocumentKind,
    /// Its title.
    pub title: Title,
    /// Its text (or where the signed paper is kept).
    pub content: Text,
}

/// `campaign.launched` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Launched {
    /// The campaign's name.
    pub name: Title,
    /// The unit that leads it (the town's discipline committee).
    pub leading_unit: UnitId,
    /// The units taking part (villages, farms, communities).
    pub units: Vec<UnitId>,
    /// Its phases, in order.
    pub phases: Vec<PhaseSpan>,
    /// Its documents.
    pub documents: Vec<Document>,
}

/// `campaign.document_added` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentAdded {
    /// The document.
    pub document: Document,
}

/// `campaign.phases_rescheduled` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhasesRescheduled {
    /// The new phases, in order.
    pub phases: Vec<PhaseSpan>,
}

record_events! {
    /// Every event of a campaign.
    CampaignEvent {
        Launched(Launched) => "campaign.launched", 1;
        DocumentAdded(DocumentAdded) => "campaign.document_added", 1;
        PhasesRescheduled(PhasesRescheduled) => "campaign.phases_rescheduled", 1;
    }
}

/// A campaign as its events leave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    /// Its id.
    pub id: RecordId,
    /// How many events it has.
    pub version: u32,
    /// Its name.
    pub name: Title,
    /// The leading unit.
    pub leading_unit: UnitId,
    /// The units taking part.
    pub units: Vec<UnitId>,
    /// Its phases, in order.
    pub phases: Vec<PhaseSpan>,
    /// Its documents, in the order they were added.
    pub documents: Vec<Document>,
    /// When it was launched (recorded).
    pub launched_at: DateTime<Utc>,
}

impl Campaign {
    /// The phase a day falls in, if any.
    pub fn phase_on(&self, day: NaiveDate) -> Option<Phase> {
        self.phases.iter().find(|p| p.from <= day && day <= p.to).map(|p| p.phase)
    }

    /// Whether a unit takes part (the leading unit does).
    pub fn includes(&self, unit: UnitId) -> bool {
        self.leading_unit == unit || self.units.contains(&unit)
    }

    /// The campaign's first and last day.
    pub fn span(&self) -> Option<(NaiveDate, NaiveDate)> {
        Some((self.phases.first()?.from, self.phases.last()?.to))
    }
}

/// Whether a campaign with `units` and `phases` would share a unit and a day with `other`
/// (then a case of that unit on that day would belong to two campaigns).
pub fn overlaps(other: &Campaign, leading_unit: UnitId, units: &[UnitId], phases: &[PhaseSpan]) -> bool {
    let (Some(first), Some(last)) = (phases.first(), phases.last()) else { return false };
    let Some((from, to)) = other.span() else { return false };
    let shares_a_unit = units.iter().chain(std::iter::once(&leading_unit)).any(|u| other.units.contains(u));
    shares_a_unit && first.from <= to && from <= last.to
}

/// Checks a list of phases: preparation, implementation, summary in that order (preparation
/// and summary may be left out, implementation may not), each ending on or after it starts,
/// none overlapping the next.
///
/// # Errors
/// [`RecordError::PhasesOutOfOrder`].
pub fn check_phases(phases: &[PhaseSpan]) -> Result<(), RecordError> {
    let ordered = phases.windows(2).all(|w| w[0].phase < w[1].phase && w[0].to < w[1].from);
    let each = phases.iter().all(|p| p.from <= p.to);
    let has_implementation = phases.iter().any(|p| p.phase == Phase::Implementation);
    if ordered && each && has_implementation { Ok(()) } else { Err(RecordError::PhasesOutOfOrder) }
}

/// Launches a campaign.
///
/// # Errors
/// [`RecordError::PhasesOutOfOrder`].
pub fn launch(
    name: Title,
    leading_unit: UnitId,
    mut units: Vec<UnitId>,
    phases: Vec<PhaseSpan>,
    documents: Vec<Document>,
) -> Result<Vec<CampaignEvent>, RecordError> {
    check_phases(&phases)?;
    units.sort();
    units.dedup();
    Ok(vec![CampaignEvent::Launched(Launched { name, leading_unit, units, phases, documents })])
}

/// Moves the phases of `current` on `today` (China Standard Time).
///
/// # Errors
/// [`RecordError::CampaignFinished`] once its summary phase has ended (`today` after its last
/// day: its summary report is frozen on those days); [`RecordError::PhasesOutOfOrder`].
pub fn reschedule(
    current: &Campaign,
    today: NaiveDate,
    phases: Vec<PhaseSpan>,
) -> Result<Vec<CampaignEvent>, RecordError> {
    if current.span().is_some_and(|(_, last)| today > last) {
        return Err(RecordError::CampaignFinished);
    }
    check_phases(&phases)?;
    Ok(vec![CampaignEvent::PhasesRescheduled(PhasesRescheduled { phases })])
}

impl Record for Campaign {
    const STREAM: &'static str = "campaign";
    type Event = CampaignEvent;

    fn apply(
        state: Option<Self>,
        id: RecordId,
        event: &CampaignEvent,
        at: DateTime<Utc>,
    ) -> Result<Self, HistoryError> {
        let mut c = match (state, event) {
            (None, CampaignEvent::Launched(e)) => {
                return Ok(Self {
                    id,
                    version: 1,
                    name: e.name.clone(),
                    leading_unit: e.leading_unit,
                    units: e.units.clone(),
                    phases: e.phases.clone(),
                    documents: e.documents.clone(),
                    launched_at: at,
                });
            }
            (Some(c), e) if !matches!(e, CampaignEvent::Launched(_)) => c,
            _ => return Err(HistoryError::NotCreated(Self::STREAM)),
        };
        c.version += 1;
        match event {
            CampaignEvent::Launched(_) => {}
            CampaignEvent::DocumentAdded(e) => c.documents.push(e.document.clone()),
            CampaignEvent::PhasesRescheduled(e) => c.phases.clone_from(&e.phases),
        }
        Ok(c)
    }

    fn index(&self) -> RecordIndex {
        let mut units = vec![self.leading_unit];
        units.extend(self.units.iter().copied());
        RecordIndex {
            campaign: Some(self.id),
            units,
            restricted: false,
            happened_on: self.span().map(|(from, _)| from),
            serials: None,
        }
    }
}

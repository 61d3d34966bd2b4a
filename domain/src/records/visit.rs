//! A visit (明察暗访): open or undercover, to villages, schools, clinics, firms and homes. Its
//! findings carry evidence notes and, when needed, the rectification demanded with its due day
//! and a later re-check; a finding can become a case. An undercover visit stays restricted to
//! supervisors and auditors until the committee discloses it.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{Record, RecordError, RecordIndex, record_events};
use crate::error::HistoryError;
use crate::ids::{CaseId, Name, RecordId, Text, UnitId};

/// Open (明察) or undercover (暗访).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitMode {
    /// 明察: announced.
    Open,
    /// 暗访: unannounced; restricted until disclosed.
    Undercover,
}

/// The kind of place visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlaceType {
    /// 村 (or farm, community).
    Village,
    /// 学校.
    School,
    /// 卫生院 / 诊所.
    Clinic,
    /// 企业.
    Firm,
    /// 农户: a household.
    Household,
}

/// A place visited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Place {
    /// Its kind.
    #[serde(rename = "type")]
    pub place_type: PlaceType,
    /// Its name.
    pub name: Name,
    /// The village it lies in.
    pub village: Option<UnitId>,
}

/// What a finding demands be put right, and by when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rectification {
    /// What must be done (整改要求).
    pub demand: Text,
    /// By when (China Standard Time).
    pub due_on: NaiveDate,
}

/// `visit.recorded` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    /// Open or undercover.
    pub mode: VisitMode,
    /// The day of the visit.
    pub visited_on: NaiveDate,
    /// The unit that organised it.
    pub organiser: UnitId,
    /// The team.
    pub team: Vec<Name>,
    /// The places visited.
    pub places: Vec<Place>,
    /// The campaign it belongs to.
    pub campaign: Option<RecordId>,
}

/// `visit.finding_recorded` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingRecorded {
    /// Its number within the visit, from 1.
    pub number: u32,
    /// What was found.
    pub text: Text,
    /// Evidence notes (photos taken, documents seen, who said what).
    pub evidence: Vec<Text>,
    /// The rectification demanded, if any.
    pub rectification: Option<Rectification>,
}

/// `visit.rechecked` v1: a later re-check of a rectification (复查).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rechecked {
    /// The finding.
    pub finding: u32,
    /// The day of the re-check.
    pub on: NaiveDate,
    /// Whether it was put right.
    pub rectified: bool,
    /// What was seen.
    pub note: Option<Text>,
}

/// `visit.finding_became_case` v1: written in the same transaction as the case's registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingBecameCase {
    /// The finding.
    pub finding: u32,
    /// The case.
    pub case: CaseId,
}

/// `visit.disclosed` v1: the committee disclosed an undercover visit; from now on it reads like
/// an open one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disclosed {}

record_events! {
    /// Every event of a visit.
    VisitEvent {
        Recorded(Recorded) => "visit.recorded", 1;
        FindingRecorded(FindingRecorded) => "visit.finding_recorded", 1;
        Rechecked(Rechecked) => "visit.rechecked", 1;
        FindingBecameCase(FindingBecameCase) => "visit.finding_became_case", 1;
        Disclosed(Disclosed) => "visit.disclosed", 1;
    }
}

/// A finding as its events leave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What was recorded.
    #[serde(flatten)]
    pub details: FindingRecorded,
    /// Its re-checks, in order.
    pub rechecks: Vec<Rechecked>,
    /// The case it became.
    pub case: Option<CaseId>,
}

/// A visit as its events leave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    /// Its id.
    pub id: RecordId,
    /// How many events it has.
    pub version: u32,
    /// What was recorded of it.
    #[serde(flatten)]
    pub details: Recorded,
    /// Its findings, by number.
    pub findings: Vec<Finding>,
    /// When an undercover visit was disclosed.
    pub disclosed_at: Option<DateTime<Utc>>,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

impl Visit {
    /// Whether only supervisors and auditors may read it: undercover and not yet disclosed.
    pub fn restricted(&self) -> bool {
        self.details.mode == VisitMode::Undercover && self.disclosed_at.is_none()
    }

    /// The findings that became one of `cases` (a reader who may not see such a case may not
    /// read its finding either: its text is the case's description).
    pub fn findings_of(&self, cases: &[CaseId]) -> Vec<u32> {
        self.findings.iter().filter(|f| f.case.is_some_and(|c| cases.contains(&c))).map(|f| f.details.number).collect()
    }

    /// A finding by number.
    pub fn finding(&self, number: u32) -> Option<&Finding> {
        self.findings.iter().find(|f| f.details.number == number)
    }
}

/// Records a finding; it gets the next number.
///
/// # Errors
/// [`RecordError::DateBeforeVisit`] when the rectification is due before the visit.
pub fn record_finding(
    visit: &Visit,
    text: Text,
    evidence: Vec<Text>,
    rectification: Option<Rectification>,
) -> Result<Vec<VisitEvent>, RecordError> {
    if rectification.as_ref().is_some_and(|r| r.due_on < visit.details.visited_on) {
        return Err(RecordError::DateBeforeVisit("the rectification's due day"));
    }
    let number = u32::try_from(visit.findings.len()).unwrap_or(u32::MAX).saturating_add(1);
    Ok(vec![VisitEvent::FindingRecorded(FindingRecorded { number, text, evidence, rectification })])
}

/// Records a re-check of a finding's rectification.
///
/// # Errors
/// [`RecordError::NoSuchFinding`], [`RecordError::NothingToRecheck`],
/// [`RecordError::DateBeforeVisit`].
pub fn recheck(
    visit: &Visit,
    finding: u32,
    on: NaiveDate,
    rectified: bool,
    note: Option<Text>,
) -> Result<Vec<VisitEvent>, RecordError> {
    let f = visit.finding(finding).ok_or(RecordError::NoSuchFinding(finding))?;
    if f.details.rectification.is_none() {
        return Err(RecordError::NothingToRecheck(finding));
    }
    if on < visit.details.visited_on {
        return Err(RecordError::DateBeforeVisit("the re-check"));
    }
    Ok(vec![VisitEvent::Rechecked(Rechecked { finding, on, rectified, note })])
}

/// Links a finding to the case it became.
///
/// # Errors
/// [`RecordError::NoSuchFinding`], [`RecordError::FindingAlreadyACase`],
/// [`RecordError::StillUndercover`] for an undercover visit not yet disclosed.
pub fn finding_became_case(visit: &Visit, finding: u32, case: CaseId) -> Result<Vec<VisitEvent>, RecordError> {
    let f = visit.finding(finding).ok_or(RecordError::NoSuchFinding(finding))?;
    if f.case.is_some() {
        return Err(RecordError::FindingAlreadyACase(finding));
    }
    if visit.restricted() {
        return Err(RecordError::StillUndercover);
    }
    Ok(vec![VisitEvent::FindingBecameCase(FindingBecameCase { finding, case })])
}

/// Discloses an undercover visit.
///
/// # Errors
/// [`RecordError::NotUndercover`] for an open visit or one already disclosed.
pub fn disclose(visit: &Visit) -> Result<Vec<VisitEvent>, RecordError> {
    if !visit.restricted() {
        return Err(RecordError::NotUndercover);
    }
    Ok(vec![VisitEvent::Disclosed(Disclosed {})])
}

impl Record for Visit {
    const STREAM: &'static str = "visit";
    type Event = VisitEvent;

    fn apply(state: Option<Self>, id: RecordId, event: &VisitEvent, at: DateTime<Utc>) -> Result<Self, HistoryError> {
        let mut v = match (state, event) {
            (None, VisitEvent::Recorded(e)) => {
                return Ok(Self {
                    id,
                    version: 1,
                    details: e.clone(),
                    findings: Vec::new(),
                    disclosed_at: None,
                    recorded_at: at,
                });
            }
            (Some(v), e) if !matches!(e, VisitEvent::Recorded(_)) => v,
            _ => return Err(HistoryError::NotCreated(Self::STREAM)),
        };
        v.version += 1;
        match event {
            VisitEvent::Recorded(_) => {}
            VisitEvent::FindingRecorded(e) => {
                v.findings.push(Finding { details: e.clone(), rechecks: Vec::new(), case: None });
            }
            VisitEvent::Rechecked(e) => {
                if let Some(f) = v.findings.iter_mut().find(|f| f.details.number == e.finding) {
                    f.rechecks.push(e.clone());
                }
            }
            VisitEvent::FindingBecameCase(e) => {
                if let Some(f) = v.findings.iter_mut().find(|f| f.details.number == e.finding) {
                    f.case = Some(e.case);
                }
            }
            VisitEvent::Disclosed(_) => v.disclosed_at = Some(at),
        }
        Ok(v)
    }

    fn case_ids(&self) -> Vec<CaseId> {
        self.findings.iter().filter_map(|f| f.case).collect()
    }

    fn items_of(&self, cases: &[CaseId]) -> Vec<u32> {
        self.findings_of(cases)
    }

    fn index(&self) -> RecordIndex {
        let mut units = vec![self.details.organiser];
        units.extend(self.details.places.iter().filter_map(|p| p.village));
        units.sort();
        units.dedup();
        RecordIndex {
            campaign: self.details.campaign,
            units,
            restricted: self.restricted(),
            happened_on: Some(self.details.visited_on),
            serials: None,
        }
    }
}

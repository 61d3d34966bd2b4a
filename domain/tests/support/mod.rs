//! Given/when/then support for the aggregate tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::events::*;
use domain::*;
use uuid::Uuid;

pub fn now() -> DateTime<Utc> {
    // Monday 2026-11-02 10:00 China Standard Time.
    Utc.with_ymd_and_hms(2026, 11, 2, 2, 0, 0).unwrap()
}

pub fn case_id() -> CaseId {
    CaseId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_1234_5678_9abc))
}

pub fn unit(n: u128) -> UnitId {
    UnitId::from_uuid(Uuid::from_u128(n))
}

pub fn reason(s: &str) -> Reason {
    Reason::parse(s).unwrap()
}

pub fn text(s: &str) -> Text {
    Text::parse(s).unwrap()
}

pub fn actor(role: Role) -> Actor {
    Actor { id: ActorId::parse(format!("{}-1", role.as_str())).unwrap(), role, unit: None }
}

/// A small organisation: unit 10 (a town department) has unit 11 under it, and 11 has 12; the
/// units in `inactive` are deactivated.
#[derive(Debug, Clone, Default)]
pub struct Units {
    pub inactive: Vec<UnitId>,
}

impl Units {
    fn parent(u: UnitId) -> Option<UnitId> {
        match u {
            u if u == unit(11) => Some(unit(10)),
            u if u == unit(12) => Some(unit(11)),
            _ => None,
        }
    }
}

impl UnitDirectory for Units {
    fn is_within(&self, u: UnitId, ancestor: UnitId) -> bool {
        let mut cur = Some(u);
        while let Some(c) = cur {
            if c == ancestor {
                return true;
            }
            cur = Self::parent(c);
        }
        false
    }
    fn is_active(&self, u: UnitId) -> bool {
        !self.inactive.contains(&u)
    }
}

pub fn registration() -> Registration {
    Registration {
        id: case_id(),
        channel: Channel::Symposium,
        kind: CaseKind::Complaint,
        title: Title::parse("低保评定不公开").unwrap(),
        description: Description::parse("村民代表在座谈会上反映，本村低保评定过程没有张榜公示。").unwrap(),
        category: None,
        village: Some(unit(100)),
        accused_unit: None,
        urgency: Urgency::Normal,
        received_at: now() - Duration::hours(1),
        complainant: Complainant {
            anonymous: false,
            sealed: Some(SealedPersonalData {
                subject: SubjectId::from_uuid(Uuid::from_u128(7)),
                ciphertext: "AAAA".into(),
            }),
            reachable_by: Vec::new(),
        },
        campaign: None,
        source: None,
        location: None,
    }
}

/// A scenario: the history so far, the time and who acts.
pub struct Scenario {
    pub history: Vec<(CaseEvent, DateTime<Utc>)>,
    pub now: DateTime<Utc>,
    pub role: Role,
    pub calendar: WorkingCalendar,
    pub policy: DeadlinePolicy,
    pub unit: Option<UnitId>,
    pub units: Units,
    pub linked_accused: Vec<UnitId>,
}

pub fn given_new() -> Scenario {
    Scenario {
        history: vec![],
        now: now(),
        role: Role::Supervisor,
        calendar: WorkingCalendar::default(),
        policy: DeadlinePolicy::default(),
        unit: None,
        units: Units::default(),
        linked_accused: Vec::new(),
    }
}

impl Scenario {
    /// Plays commands that must succeed to build the history.
    pub fn after(mut self, commands: &[Command]) -> Self {
        for c in commands {
            let events = self.decide(c).unwrap_or_else(|e| panic!("{} failed in setup: {e}", c.name()));
            for e in events {
                self.history.push((e, self.now));
            }
        }
        self
    }

    /// A copy, to try several commands from one history.
    pub fn clone_at(&self) -> Self {
        Scenario {
            history: self.history.clone(),
            now: self.now,
            role: self.role,
            calendar: self.calendar.clone(),
            policy: self.policy,
            unit: self.unit,
            units: self.units.clone(),
            linked_accused: self.linked_accused.clone(),
        }
    }

    pub fn at(mut self, t: DateTime<Utc>) -> Self {
        self.now = t;
        self
    }

    pub fn acting_as(mut self, role: Role) -> Self {
        self.role = role;
        self.unit = None;
        self
    }

    /// A handler of unit `u` acts.
    pub fn handler_of(mut self, u: u128) -> Self {
        self.role = Role::Handler;
        self.unit = Some(unit(u));
        self
    }

    /// Duplicates linked to the case accuse these units.
    pub fn with_linked_accused(mut self, units: &[u128]) -> Self {
        self.linked_accused = units.iter().map(|u| unit(*u)).collect();
        self
    }

    pub fn with_units(mut self, units: Units) -> Self {
        self.units = units;
        self
    }

    pub fn with_calendar(mut self, calendar: WorkingCalendar) -> Self {
        self.calendar = calendar;
        self
    }

    pub fn state(&self) -> Option<Case> {
        replay(case_id(), self.history.iter().map(|(e, t)| (e, *t))).unwrap()
    }

    pub fn decide(&self, c: &Command) -> Result<Vec<CaseEvent>, DomainError> {
        let actor = Actor { unit: self.unit, ..actor(self.role) };
        let ctx = Context {
            now: self.now,
            actor: &actor,
            calendar: &self.calendar,
            policy: &self.policy,
            units: &self.units,
            linked_accused: &self.linked_accused,
        };
        decide(self.state().as_ref(), c, &ctx)
    }

    /// When: the command; then: its events are folded and the resulting state is returned.
    pub fn when(&self, c: Command) -> Result<(Vec<CaseEvent>, Case), DomainError> {
        let events = self.decide(&c)?;
        let mut state = self.state();
        for e in &events {
            state = Some(evolve(state, case_id(), e, self.now).unwrap());
        }
        let s = state.unwrap();
        s.check_invariants().unwrap();
        Ok((events, s))
    }
}

pub fn register() -> Command {
    Command::Register(Box::new(registration()))
}
pub fn assign(u: u128) -> Command {
    Command::Assign { unit: unit(u), co_units: vec![], due_at: None, note: None, tier: None }
}
pub fn assign_jointly(u: u128, co: &[u128]) -> Command {
    Command::Assign {
        unit: unit(u),
        co_units: co.iter().map(|c| unit(*c)).collect(),
        due_at: None,
        note: None,
        tier: None,
    }
}
pub fn reject(r: &str) -> Command {
    Command::Reject { code: NonAcceptanceCode::Other, reason: reason(r), referred_to: None }
}
pub fn link(of: u128) -> Command {
    Command::LinkDuplicate { of: CaseId::from_uuid(Uuid::from_u128(of)), target: LinkTarget::default() }
}
/// The notice of a rejection (不予受理告知).
pub fn notify() -> Command {
    Command::NotifyCitizen {
        kind: NoticeKind::NonAcceptance,
        method: FeedbackMethod::Letter,
        content: text("书面告知处理决定"),
        receipt_code_given: true,
        notified_at: None,
    }
}
pub fn handle() -> Command {
    Command::Handle { outcome: Outcome::Resolved, result: text("已张榜公示低保名单，重新评议。") }
}
pub fn feedback() -> Command {
    Command::FeedBack { method: FeedbackMethod::Phone, content: text("电话告知处理结果。") }
}
pub fn rate(r: Rating) -> Command {
    Command::RecordSatisfaction { rating: r, comment: None, method: RatingMethod::Phone, solved: Some(true) }
}
pub fn close(note: Option<&str>) -> Command {
    Command::Close { note: note.map(text) }
}

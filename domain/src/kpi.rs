//! What a case contributes to the KPIs (考核指标): one [`Fact`] per measured step, folded from its
//! events beside the case itself ([`observe`], called by [`crate::evolve`]), so a ledger row
//! carries its facts and a KPI is a count over them.
//!
//! The rates and what each counts (12345 hotline practice, see `../shared/BRIEF.md`, "More rules
//! of the trade"; the limits are the case's own clocks, with every pause credit and extension):
//!
//! | KPI | numerator | denominator | in the period by |
//! |---|---|---|---|
//! | 及时签收率 `timely_sign_for_rate` | dispatches signed for by their sign-for due time | dispatches whose sign-for fell due | the sign-for due time |
//! | 响应率 `response_rate` | acknowledgements (受理告知) sent by their due time | cases whose acknowledgement fell due | its due time |
//! | 按期办结率 `on_time_completion_rate` | cases replied to by the (extended) 60-day deadline | cases whose deadline fell due; **an open case past it is a miss** | the deadline |
//! | 回退率 `return_rate` | dispatches later returned (退单 approved) | dispatches | the dispatch's time |
//! | 重办率 `rework_rate` | replies whose round was reopened | replies | the reply's time |
//! | 有效回访率 `follow_up_rate` | replies whose follow-up (回访) recorded a rating | replies | the reply's time |
//! | 满意率 `satisfaction_rate` | last-round ratings 满意 or 基本满意 | last-round ratings | the rating's time |
//! | 解决率 `resolution_rate` | last-round ratings where the citizen said "solved" | last-round ratings | the rating's time |
//!
//! and the working days from acceptance to the first reply (mean and 90th percentile), by the
//! reply's time.
//!
//! A clock "fell due" once its due time has passed, or once its step was done (a step done early
//! counts in the period of its due time). A clock that stopped before it fell due without its
//! step (the case withdrawn, rejected, linked as a duplicate, transferred before sign-for) is
//! counted nowhere; one that stopped after its due time is a miss (a limit missed stays missed).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::deadline::{Deadline, Stage};
use crate::events::{CaseEvent, Rating};
use crate::ids::UnitId;
use crate::lifecycle::Case;

/// What a fact measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FactKind {
    /// A sign-for clock (签收) of one dispatch: `at` is its due time, `done_at` when the unit
    /// signed for it.
    SignFor,
    /// The acknowledgement clock (受理告知): `at` is its due time, `done_at` when the citizen was
    /// told.
    Acknowledgement,
    /// The answer clock (60 days from acceptance, 信访工作条例 art. 32, extended at most once by
    /// 30): `at` is its due time, `done_at` the first reply.
    Answer,
    /// A dispatch (交办 or 转办) to a lead unit: `at` is when; `returned` once the unit's return
    /// (退单) of it was approved.
    Dispatch,
    /// An approved return (退单): `at` is when; `unit` the unit that returned it.
    Return,
    /// A reply (反馈) of one round: `at` is when; `followed_up` whether its rating was recorded,
    /// `reopened` whether the round was reopened; `accepted_at` the case's acceptance.
    Reply,
    /// The case's last-round rating (满意度): `at` is when; one per case, replaced by a later
    /// round's.
    Rating,
}

/// One measured step of a case. Absent fields are omitted from the stored JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fact {
    /// What it measures.
    pub kind: FactKind,
    /// The unit it scores: the unit dispatched to, that returned, that replied; for the answer
    /// clock the lead unit when the clock ended (or now); none for the acknowledgement, which the
    /// intake owes (as the overdue view and the supervision rules book it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<UnitId>,
    /// The time that places it in a period (see [`FactKind`]).
    pub at: DateTime<Utc>,
    /// A clock's start (identifies it while it runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When a clock's step was done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_at: Option<DateTime<Utc>>,
    /// When a clock stopped without its step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<DateTime<Utc>>,
    /// The round of a reply or rating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
    /// A rating's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<Rating>,
    /// A rating's "was it solved?", as the citizen answered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solved: Option<bool>,
    /// A reply whose follow-up recorded a rating.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub followed_up: bool,
    /// A reply whose round was reopened.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reopened: bool,
    /// A dispatch the unit returned (its return approved).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub returned: bool,
    /// A reply's case was accepted then (the start of "working days to reply").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at: Option<DateTime<Utc>>,
}

impl Fact {
    fn new(kind: FactKind, unit: Option<UnitId>, at: DateTime<Utc>) -> Self {
        Self {
            kind,
            unit,
            at,
            started_at: None,
            done_at: None,
            stopped_at: None,
            round: None,
            rating: None,
            solved: None,
            followed_up: false,
            reopened: false,
            returned: false,
            accepted_at: None,
        }
    }

    fn clock(kind: FactKind, unit: Option<UnitId>, d: &Deadline) -> Self {
        Self { started_at: Some(d.started_at), ..Self::new(kind, unit, d.due_at) }
    }

    /// Whether a clock still runs: neither done nor stopped.
    pub fn is_open(&self) -> bool {
        self.done_at.is_none() && self.stopped_at.is_none()
    }

    /// Whether a clock fell due by `now` (counts in a denominator): done, or past due with the
    /// clock running or stopped after its due time.
    pub fn fell_due(&self, now: DateTime<Utc>) -> bool {
        self.done_at.is_some() || (self.at <= now && self.stopped_at.is_none_or(|s| s >= self.at))
    }

    /// Whether a clock's step was done by its due time.
    pub fn met(&self) -> bool {
        self.done_at.is_some_and(|d| d <= self.at)
    }
}

fn last_open(facts: &mut [Fact], kind: FactKind) -> Option<&mut Fact> {
    facts.iter_mut().rev().find(|f| f.kind == kind && f.is_open())
}

/// What [`observe`] needs of the state before the event.
#[derive(Debug, Clone, Copy)]
pub struct Before {
    /// The lead unit.
    pub unit: Option<UnitId>,
    /// The round.
    pub round: u32,
}

/// Folds one event into the case's facts. `before` is what the state held before the event,
/// `case` the state after it (its `facts` are updated); `at` is when the event was recorded.
pub fn observe(before: Before, event: &CaseEvent, at: DateTime<Utc>, case: &mut Case) {
    let mut facts = std::mem::take(&mut case.facts);
    match event {
        CaseEvent::Assigned(e) => {
            facts.push(Fact::new(FactKind::Dispatch, Some(e.unit), at));
            if e.deadline.stage == Stage::SignFor {
                facts.push(Fact::clock(FactKind::SignFor, Some(e.unit), &e.deadline));
            }
        }
        CaseEvent::Transferred(e) => {
            if e.approved_return {
                if let Some(d) = facts
                    .iter_mut()
                    .rev()
                    .find(|f| f.kind == FactKind::Dispatch && f.unit == before.unit && !f.returned)
                {
                    d.returned = true;
                }
                facts.push(Fact::new(FactKind::Return, before.unit, at));
            }
            if let Some(to) = &e.to {
                facts.push(Fact::new(FactKind::Dispatch, Some(to.unit), at));
                if to.deadline.stage == Stage::SignFor {
                    facts.push(Fact::clock(FactKind::SignFor, Some(to.unit), &to.deadline));
                }
            }
        }
        CaseEvent::SignedFor(e) if before.unit == Some(e.unit) => {
            if let Some(f) = last_open(&mut facts, FactKind::SignFor).filter(|f| f.unit == Some(e.unit)) {
                f.done_at = Some(at);
            }
        }
        CaseEvent::FedBack(_) => {
            if let Some(f) = last_open(&mut facts, FactKind::Answer) {
                f.done_at = Some(at);
                f.unit = case.unit;
            }
            // Only the first reply carries the acceptance: "working days to reply" counts it.
            let first = !facts.iter().any(|f| f.kind == FactKind::Reply);
            facts.push(Fact {
                round: Some(case.round),
                accepted_at: case.accepted_at.filter(|_| first),
                ..Fact::new(FactKind::Reply, case.unit, at)
            });
        }
        CaseEvent::SatisfactionRecorded(e) => {
            let reply = facts.iter_mut().rev().find(|f| f.kind == FactKind::Reply && f.round == Some(case.round));
            let unit = reply.as_ref().and_then(|r| r.unit).or(case.unit);
            if let Some(r) = reply {
                r.followed_up = true;
            }
            facts.retain(|f| f.kind != FactKind::Rating);
            facts.push(Fact {
                round: Some(case.round),
                rating: Some(e.rating),
                solved: e.solved,
                ..Fact::new(FactKind::Rating, unit, at)
            });
        }
        CaseEvent::Reopened(_) => {
            if let Some(r) = facts.iter_mut().rev().find(|f| f.kind == FactKind::Reply && f.round == Some(before.round))
            {
                r.reopened = true;
            }
        }
        _ => {}
    }
    if let CaseEvent::Accepted(e) = event {
        facts.push(Fact::clock(FactKind::Answer, case.unit, &e.overall));
    }
    sync_clocks(&mut facts, case, at);
    case.facts = facts;
}

/// The facts a case starts with at registration: its acknowledgement clock, when one runs.
pub fn received(case: &Case) -> Vec<Fact> {
    case.acknowledgement.iter().map(|d| Fact::clock(FactKind::Acknowledgement, None, d)).collect()
}

/// Keeps each running clock's fact in step with the case's clock (a pause credit, an extension
/// or a recount moves its due time), and ends the facts whose clock ended.
fn sync_clocks(facts: &mut [Fact], case: &Case, at: DateTime<Utc>) {
    let stage = case.deadline.filter(|d| d.stage == Stage::SignFor);
    let ack = if case.acknowledgement_running() { case.acknowledgement } else { None };
    let overall = if case.overall_running() { case.overall } else { None };
    for f in facts.iter_mut() {
        let running = match f.kind {
            FactKind::SignFor => stage.filter(|d| Some(d.started_at) == f.started_at && f.unit == case.unit),
            FactKind::Acknowledgement => {
                if f.is_open() && case.acknowledged_at.is_some() {
                    f.done_at = case.acknowledged_at;
                    continue;
                }
                ack
            }
            FactKind::Answer => overall,
            _ => continue,
        };
        if f.done_at.is_some() {
            continue;
        }
        match running {
            Some(d) => {
                f.at = d.due_at;
                f.stopped_at = None;
                if f.kind == FactKind::Answer {
                    f.unit = case.unit;
                }
            }
            None if f.stopped_at.is_none() => f.stopped_at = Some(at),
            None => {}
        }
    }
}

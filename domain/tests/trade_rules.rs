//! Given/when/then tests for the rules of the trade: recusal, acknowledgement, sign-for and
//! return, joint handling, honest clocks, follow-up, duplicates and units that stop. Expected
//! times are counted by hand from the rule (a calendar on paper), never taken from the code.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use domain::events::*;
use domain::*;
use support::*;

fn days(n: i64) -> Duration {
    Duration::days(n)
}

fn signed(s: support::Scenario, u: u128) -> support::Scenario {
    s.handler_of(u).after(&[Command::SignFor]).acting_as(Role::Supervisor)
}

fn accusing(accused: u128) -> Command {
    let mut r = registration();
    r.accused_unit = Some(unit(accused));
    Command::Register(Box::new(r))
}

// ── 回避 (纪检监察机关处理检举控告工作规则 (2020) art. 47) ─────────────────────────────────

#[test]
fn an_accusation_is_never_assigned_to_the_accused_unit_nor_a_unit_under_it() {
    // Unit 10 is accused; 11 lies under 10, and 12 under 11 (see support::Units).
    let s = given_new().after(&[accusing(10)]);
    for u in [10, 11, 12] {
        assert_eq!(s.when(assign(u)).unwrap_err(), DomainError::Recusal, "unit {u}");
        assert_eq!(s.when(assign_jointly(1, &[u])).unwrap_err(), DomainError::Recusal, "co-unit {u}");
    }
    assert!(s.when(assign(1)).is_ok());
}

#[test]
fn an_accusation_is_never_transferred_or_returned_to_the_accused_unit() {
    let s = given_new().after(&[accusing(11), assign(1)]);
    let transfer = Command::Transfer { reason: reason("改派"), to_unit: Some(unit(12)) };
    assert_eq!(s.when(transfer).unwrap_err(), DomainError::Recusal);
    let s = s.handler_of(1).after(&[Command::RequestReturn { reason: reason("非本单位职责") }]).acting_as(Role::Clerk);
    assert_eq!(s.when(Command::ApproveReturn { to_unit: Some(unit(11)) }).unwrap_err(), DomainError::Recusal);
    // The unit above the accused one is not barred.
    assert!(s.when(Command::ApproveReturn { to_unit: Some(unit(10)) }).is_ok());
}

// ── 受理 / 告知 ───────────────────────────────────────────────────────────────────────────

#[test]
fn an_identified_citizen_is_owed_an_acknowledgement_in_fifteen_calendar_days() {
    // Received Monday 2026-11-02 09:00 CST; 15 calendar days: Tuesday 2026-11-17 (信访工作条例 art. 23).
    let (_, case) = given_new().when(register()).unwrap();
    let ack = case.acknowledgement.unwrap();
    assert_eq!(ack.due_at.to_rfc3339(), "2026-11-17T15:59:59+00:00");
    assert!(matches!(ack.rule, DeadlineRule::Policy { limit: Limit::CalendarDays(15), .. }));
    let notice = Command::NotifyCitizen {
        kind: NoticeKind::Acknowledgement,
        method: FeedbackMethod::Sms,
        content: text("您反映的问题已受理，受理编号已告知。"),
        receipt_code_given: true,
        notified_at: None,
    };
    let (_, case) = given_new().after(&[register(), Command::Accept]).when(notice).unwrap();
    assert_eq!(case.acknowledgement, None);
    assert!(case.acknowledged_at.is_some());
}

/// A notice made before it was recorded (a call, then the entry) counts from when the citizen
/// was told; a time before receipt or in the future is refused.
#[test]
fn a_notice_counts_from_when_the_citizen_was_told() {
    let accepted = given_new().after(&[register(), Command::Accept]);
    let notice = |notified_at| Command::NotifyCitizen {
        kind: NoticeKind::Acknowledgement,
        method: FeedbackMethod::Phone,
        content: text("电话告知已受理"),
        receipt_code_given: true,
        notified_at,
    };
    let told = now() - Duration::minutes(30);
    let (events, case) = accepted.when(notice(Some(told))).unwrap();
    assert!(matches!(&events[0], CaseEvent::CitizenNotified(n) if n.notified_at == Some(told)));
    assert_eq!(case.acknowledged_at, Some(told));
    // registration() was received an hour before now().
    for bad in [now() + Duration::seconds(1), now() - Duration::hours(2)] {
        assert_eq!(accepted.when(notice(Some(bad))).unwrap_err(), DomainError::NoticeTimeOutOfRange, "{bad}");
    }
}

/// Only an accusation (a complaint or a report, 检举控告) names an accused unit; a suggestion
/// that named one would take the accusation rules (its acknowledgement limit, 回避) for nothing.
#[test]
fn a_suggestion_accuses_no_one() {
    let mut r = registration();
    r.kind = CaseKind::Suggestion;
    r.accused_unit = Some(unit(2));
    assert_eq!(
        given_new().when(Command::Register(Box::new(r.clone()))).unwrap_err(),
        DomainError::SuggestionAccusesNoOne
    );
    for kind in [CaseKind::Complaint, CaseKind::Report] {
        r.kind = kind;
        assert!(given_new().when(Command::Register(Box::new(r.clone()))).is_ok(), "{kind:?}");
    }
}

#[test]
fn a_notice_tells_the_decision_taken_and_cannot_stand_in_for_it() {
    let notice = |kind| Command::NotifyCitizen {
        kind,
        method: FeedbackMethod::Sms,
        content: text("告知"),
        receipt_code_given: true,
        notified_at: None,
    };
    // Not yet decided: neither an acknowledgement nor a non-acceptance notice stops the clock.
    let undecided = given_new().after(&[register()]);
    for kind in [NoticeKind::Acknowledgement, NoticeKind::NonAcceptance] {
        assert_eq!(undecided.when(notice(kind)).unwrap_err(), DomainError::NoticeDoesNotFitDecision);
    }
    assert!(undecided.state().unwrap().acknowledgement.is_some(), "the acknowledgement clock still runs");
    // Accepted: the acknowledgement fits, the non-acceptance notice does not; rejected: the reverse.
    let accepted = given_new().after(&[register(), Command::Accept]);
    assert_eq!(accepted.when(notice(NoticeKind::NonAcceptance)).unwrap_err(), DomainError::NoticeDoesNotFitDecision);
    let rejected = given_new().after(&[register(), reject("不属于受理范围")]);
    assert_eq!(rejected.when(notice(NoticeKind::Acknowledgement)).unwrap_err(), DomainError::NoticeDoesNotFitDecision);
    rejected.when(notice(NoticeKind::NonAcceptance)).unwrap();
    // A second acknowledgement repeats the first: the time the citizen was told stays the first.
    let told = accepted.after(&[notice(NoticeKind::Acknowledgement)]);
    let first = told.state().unwrap().acknowledged_at;
    let (_, again) = told.at(now() + days(1)).when(notice(NoticeKind::Acknowledgement)).unwrap();
    assert_eq!(again.acknowledged_at, first);
}

#[test]
fn an_identified_accusation_is_acknowledged_in_fifteen_working_days_and_an_anonymous_case_owes_none() {
    // 15 working days after Monday 2026-11-02 (no holidays): Monday 2026-11-23.
    let (_, case) = given_new().when(accusing(10)).unwrap();
    assert_eq!(case.acknowledgement.unwrap().due_at.to_rfc3339(), "2026-11-23T15:59:59+00:00");
    let mut r = registration();
    r.complainant = Complainant { anonymous: true, sealed: None, reachable_by: Vec::new() };
    let (_, case) = given_new().when(Command::Register(Box::new(r))).unwrap();
    assert_eq!(case.acknowledgement, None);
}

#[test]
fn non_acceptance_needs_a_referral_for_the_codes_that_name_another_body() {
    let s = given_new().after(&[register()]);
    let no_referral =
        Command::Reject {
            code: NonAcceptanceCode::LegalChannel, reason: reason("应通过诉讼解决"), referred_to: None
        };
    assert_eq!(s.when(no_referral).unwrap_err(), DomainError::ReferralRequired);
    let (_, case) = s.when(reject("无具体事实")).unwrap();
    assert_eq!(case.rejection_code, Some(NonAcceptanceCode::Other));
}

#[test]
fn accepting_starts_the_overall_clock_of_sixty_calendar_days_once() {
    let s = given_new().after(&[register()]);
    let (_, case) = s.when(Command::Accept).unwrap();
    // 2026-11-02 + 60 calendar days = 2027-01-01 (28 days of November left, 31 of December, 1).
    assert_eq!(case.overall.unwrap().due_at.to_rfc3339(), "2027-01-01T15:59:59+00:00");
    assert_eq!(s.after(&[Command::Accept]).when(Command::Accept).unwrap_err(), DomainError::AlreadyAccepted);
}

// ── 签收 / 退单 ───────────────────────────────────────────────────────────────────────────

#[test]
fn only_the_lead_or_a_co_unit_signs_and_only_once() {
    let s = given_new().after(&[register(), assign_jointly(1, &[2])]);
    assert_eq!(
        s.clone_at().handler_of(3).when(Command::SignFor).unwrap_err(),
        DomainError::NotYourUnit { needed: "lead unit or a co-unit" }
    );
    let (events, case) = s.clone_at().handler_of(2).when(Command::SignFor).unwrap();
    assert!(matches!(&events[0], CaseEvent::SignedFor(SignedFor { handling: None, .. })));
    assert!(case.co_units[0].signed_at.is_some());
    assert_eq!(case.deadline.unwrap().stage, Stage::SignFor, "a co-unit's signature starts no handling clock");
    let s = s.handler_of(1).after(&[Command::SignFor]);
    assert_eq!(s.when(Command::SignFor).unwrap_err(), DomainError::AlreadySigned);
}

/// Rework (返工: a dissatisfied rating reopens the case to the unit that handled it) is not a
/// new hand-over: the unit cannot give it back (退单), though the reopen starts a new round
/// "now". It once could, within five working days of the reopen.
#[test]
fn rework_cannot_be_returned_by_the_unit_that_handled_it() {
    let s = given_new().after(&[register(), assign(1), handle(), feedback(), rate(Rating::Dissatisfied)]);
    let case = s.state().unwrap();
    assert_eq!((case.status, case.unit), (Status::Assigned, Some(unit(1))), "reopened to the same unit");
    assert_eq!(
        s.handler_of(1).when(Command::RequestReturn { reason: reason("返工退单") }).unwrap_err(),
        DomainError::ReworkNotReturnable
    );
}

/// A supervisor's justified close (no rating yet, the follow-up window open) needs a written
/// justification that states why: a one-character note once passed for one.
#[test]
fn a_justified_close_states_why() {
    let s = given_new().after(&[register(), assign(1), handle(), feedback()]).acting_as(Role::Supervisor);
    for note in ["x", "1234", "。。。。"] {
        assert_eq!(s.when(close(Some(note))).unwrap_err(), DomainError::FollowUpPending, "{note:?}");
    }
    let (events, _) = s.when(close(Some("群众已搬离本村，多次联系未果"))).unwrap();
    assert!(matches!(&events[0], CaseEvent::Closed(Closed { without_rating: true, .. })), "{events:?}");
}

/// A fresh reviewer's finding: while a return waited for the dispatcher, the unit could neither
/// sign nor handle, yet its sign-for clock ran on and the overdue view charged the wait to it.
/// Now the unit's clock stands still until the dispatcher decides, and a refusal credits the
/// wait, to the microsecond (as a pause does).
#[test]
fn a_return_waiting_for_the_dispatcher_stops_the_units_clock_and_a_refusal_credits_the_wait() {
    let s = given_new().after(&[register(), assign(1)]);
    let before = s.state().unwrap().deadline.unwrap();
    assert_eq!(before.stage, Stage::SignFor);
    assert!(s.state().unwrap().is_overdue(now() + days(10)), "without a return, ten days on it is late");
    let waiting = s.handler_of(1).after(&[Command::RequestReturn { reason: reason("属于卫生院职责") }]);
    let case = waiting.state().unwrap();
    assert_eq!(case.stage_clock(), None);
    assert!(!case.is_overdue(now() + days(10)), "the wait is the dispatcher's");
    let dispatcher = waiting.at(now() + days(10)).acting_as(Role::Clerk);
    let (events, refused) = dispatcher.when(Command::RefuseReturn { reason: reason("属于本单位职责") }).unwrap();
    let [CaseEvent::ReturnRefused(e)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(e.deadline.unwrap().due_at, before.due_at + days(10));
    assert_eq!(refused.stage_clock().unwrap().due_at, before.due_at + days(10));
    assert!(!refused.is_overdue(now() + days(10)), "the unit has the day it had left");
}

/// A second review's findings, of the same kind: a return asked for once the sign-for was
/// already late hid the missed limit, and a return asked for while paused stopped the clock a
/// second time (the refusal and the resume then credited one wait twice).
#[test]
fn a_return_never_hides_a_missed_limit_nor_stops_a_paused_clock_again() {
    let s = given_new().after(&[register(), assign(1)]);
    // Three calendar days on, the 1-working-day sign-for has passed whatever the calendar.
    let late = s
        .clone_at()
        .at(now() + days(3))
        .handler_of(1)
        .after(&[Command::RequestReturn { reason: reason("属于卫生院职责") }]);
    let case = late.state().unwrap();
    assert_eq!(case.return_stopped_clock_at, None);
    assert!(case.is_overdue(now() + days(3)), "a limit already missed stays missed");
    let signed_case = signed(given_new().after(&[register(), assign(1)]), 1);
    let paused = signed_case.after(&[Command::PauseClock { reason: reason("等待群众补充材料") }]).handler_of(1);
    assert_eq!(
        paused.when(Command::RequestReturn { reason: reason("属于卫生院职责") }).unwrap_err(),
        DomainError::ClockPaused
    );
}

/// Pausing waits for the citizen; signing for a case waits for no one but the unit.
#[test]
fn the_sign_for_clock_cannot_be_paused() {
    let s = given_new().after(&[register(), assign(1)]);
    assert!(matches!(
        s.when(Command::PauseClock { reason: reason("等待群众补充材料") }).unwrap_err(),
        DomainError::InvalidTransition { command: "pause", .. }
    ));
    let signed = signed(given_new().after(&[register(), assign(1)]), 1);
    assert!(signed.when(Command::PauseClock { reason: reason("等待群众补充材料") }).is_ok());
}

#[test]
fn a_return_is_asked_within_five_working_days_and_waits_for_the_dispatcher() {
    let s = given_new().after(&[register(), assign(1)]);
    // Assigned Monday 2026-11-02; the window ends Monday 2026-11-09 23:59:59 CST.
    let late = s.clone_at().at(Utc.with_ymd_and_hms(2026, 11, 9, 16, 0, 0).unwrap()).handler_of(1);
    assert_eq!(late.when(Command::RequestReturn { reason: reason("x") }).unwrap_err(), DomainError::ReturnWindowClosed);
    let in_time = s.clone_at().at(Utc.with_ymd_and_hms(2026, 11, 9, 15, 0, 0).unwrap()).handler_of(1);
    let (_, case) = in_time.when(Command::RequestReturn { reason: reason("属于卫生院职责") }).unwrap();
    assert_eq!(case.status, Status::Assigned, "the case waits; the unit still holds it");
    assert_eq!(case.unit, Some(unit(1)));
    let other = s.clone_at().handler_of(2);
    assert_eq!(
        other.when(Command::RequestReturn { reason: reason("x") }).unwrap_err(),
        DomainError::NotYourUnit { needed: "lead unit" }
    );

    let waiting = s.handler_of(1).after(&[Command::RequestReturn { reason: reason("属于卫生院职责") }]);
    assert_eq!(
        waiting.when(Command::RequestReturn { reason: reason("again") }).unwrap_err(),
        DomainError::ReturnPending
    );
    let dispatcher = waiting.acting_as(Role::Clerk);
    let (_, refused) = dispatcher.when(Command::RefuseReturn { reason: reason("属于本单位职责") }).unwrap();
    assert_eq!((refused.unit, refused.return_request.clone()), (Some(unit(1)), None));
    let (events, approved) = dispatcher.when(Command::ApproveReturn { to_unit: Some(unit(2)) }).unwrap();
    let [CaseEvent::Transferred(t)] = events.as_slice() else { panic!("{events:?}") };
    assert!(t.approved_return);
    assert_eq!((approved.unit, approved.returns, approved.signed_at), (Some(unit(2)), 1, None));
    assert_eq!(approved.deadline.unwrap().stage, Stage::SignFor);
    let (_, to_intake) = dispatcher.when(Command::ApproveReturn { to_unit: None }).unwrap();
    assert_eq!((to_intake.status, to_intake.unit), (Status::Received, None));
    assert_eq!(
        dispatcher
            .after(&[Command::RefuseReturn { reason: reason("x") }])
            .when(Command::ApproveReturn { to_unit: None })
            .unwrap_err(),
        DomainError::NoReturnPending
    );
}

// ── 联办 ─────────────────────────────────────────────────────────────────────────────────

#[test]
fn co_units_contribute_and_the_lead_handles() {
    let s = given_new().after(&[register()]);
    assert_eq!(s.when(assign_jointly(1, &[1])).unwrap_err(), DomainError::InvalidCoUnits);
    assert_eq!(s.when(assign_jointly(1, &[2, 2])).unwrap_err(), DomainError::InvalidCoUnits);
    let s = s.after(&[assign_jointly(1, &[2, 3])]);
    let (events, case) = s.clone_at().handler_of(2).when(Command::Contribute { text: text("已核实低保名单") }).unwrap();
    assert_eq!(events.len(), 2, "contributing implies signing: {events:?}");
    assert!(case.co_units[0].contributed_at.is_some());
    assert!(case.co_units[1].contributed_at.is_none());
    assert_eq!(
        s.clone_at().handler_of(2).when(handle()).unwrap_err(),
        DomainError::NotYourUnit { needed: "lead unit" },
        "a co-unit does not handle"
    );
    assert_eq!(
        s.clone_at().handler_of(1).when(Command::Contribute { text: text("x") }).unwrap_err(),
        DomainError::NotYourUnit { needed: "co-unit" }
    );
    assert!(s.handler_of(1).when(handle()).is_ok());
}

// ── Honest clocks ────────────────────────────────────────────────────────────────────────

#[test]
fn the_overall_clock_survives_a_transfer_a_return_and_a_reopen() {
    let s = given_new().after(&[register(), assign(1)]);
    let overall = s.state().unwrap().overall.unwrap();
    let s = s
        .at(now() + days(5))
        .after(&[Command::Transfer { reason: reason("改派"), to_unit: Some(unit(2)) }])
        .handler_of(2)
        .after(&[Command::SignFor, handle(), feedback()])
        .acting_as(Role::Supervisor)
        .after(&[rate(Rating::Dissatisfied)]);
    let case = s.state().unwrap();
    assert_eq!(case.round, 2);
    assert_eq!(case.overall, Some(overall), "no reset");
    // Past 2027-01-01 the reworked case is overdue on the overall clock, whatever its stage says.
    let late = Utc.with_ymd_and_hms(2027, 1, 2, 0, 0, 0).unwrap();
    assert!(case.is_overdue(late));
    assert!(case.running_clocks().iter().any(|d| d.stage == Stage::Overall));
}

/// A fresh reviewer's finding: an extended case closed with no extension notice ever recorded,
/// though the citizen must be told why their case takes longer.
#[test]
fn an_extended_case_closes_only_once_the_citizen_was_told_of_the_extension() {
    let s = signed(given_new().after(&[register(), assign(1)]), 1);
    let due = s.state().unwrap().deadline.unwrap().due_at;
    let s = s.after(&[
        Command::ExtendDeadline { due_at: due + days(10), reason: reason("需现场勘查") },
        handle(),
        feedback(),
        rate(Rating::Satisfied),
    ]);
    assert!(s.state().unwrap().extension_notice_owed.is_some());
    assert_eq!(s.when(close(None)).unwrap_err(), DomainError::NoticeOwed);
    // A notice dated before the extension cannot have told of it (a second review's finding).
    let backdated = s.clone_at().after(&[Command::NotifyCitizen {
        kind: NoticeKind::Extension,
        method: FeedbackMethod::Phone,
        content: text("因需现场勘查，办理期限延长十日。"),
        receipt_code_given: false,
        notified_at: Some(now() - chrono::Duration::minutes(30)),
    }]);
    assert_eq!(backdated.when(close(None)).unwrap_err(), DomainError::NoticeOwed);
    let told = s.after(&[Command::NotifyCitizen {
        kind: NoticeKind::Extension,
        method: FeedbackMethod::Phone,
        content: text("因需现场勘查，办理期限延长十日。"),
        receipt_code_given: false,
        notified_at: None,
    }]);
    assert!(told.when(close(None)).is_ok());
}

#[test]
fn an_extension_is_requested_by_the_unit_and_decided_by_a_supervisor_and_moves_the_overall_clock_once() {
    let s = signed(given_new().after(&[register(), assign(1)]), 1);
    let case = s.state().unwrap();
    let handling_due = case.deadline.unwrap().due_at;
    let overall_due = case.overall.unwrap().due_at;
    let ask = Command::RequestExtension { due_at: handling_due + days(10), reason: reason("需现场勘查") };
    let s = s.handler_of(1).after(&[ask]);
    assert_eq!(
        s.when(Command::RequestExtension { due_at: handling_due + days(5), reason: reason("x") }).unwrap_err(),
        DomainError::ExtensionPending
    );
    let sup = s.acting_as(Role::Supervisor);
    let (_, refused) = sup.when(Command::RefuseExtension { reason: reason("理由不足") }).unwrap();
    assert_eq!(refused.deadline.unwrap().due_at, handling_due);
    let (events, case) = sup.when(Command::ApproveExtension).unwrap();
    let [CaseEvent::DeadlineExtended(e)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(e.approved_by.as_str(), "supervisor-1");
    assert_eq!(case.deadline.unwrap().due_at, handling_due + days(10));
    assert_eq!(case.overall.unwrap().due_at, overall_due + days(10));
}

/// A fresh reviewer's finding: a clerk could pause a case whose clock had run out, and the
/// pause took it out of the overdue view. The handling limit is 15 working days and the
/// acknowledgement's 15 calendar days (policy defaults), so thirty calendar days on, both are
/// past due whatever the calendar.
#[test]
fn a_clock_already_past_due_cannot_be_paused_away() {
    let s = signed(given_new().after(&[register(), assign(1)]), 1);
    assert!(s.state().unwrap().is_overdue(now() + days(30)));
    assert_eq!(
        s.clone_at().at(now() + days(30)).when(Command::PauseClock { reason: reason("等待群众补充材料") }).unwrap_err(),
        DomainError::PauseOverdue
    );
    assert!(s.at(now()).when(Command::PauseClock { reason: reason("等待群众补充材料") }).is_ok(), "in time, it may");
}

#[test]
fn paused_clocks_do_not_count_and_resume_moved_by_the_pause() {
    let s = signed(given_new().after(&[register(), assign(1)]), 1);
    let before = s.state().unwrap();
    let s = s.after(&[Command::PauseClock { reason: reason("等待群众补充材料") }]);
    let paused = s.state().unwrap();
    assert!(!paused.is_overdue(now() + days(365)), "a paused case is never overdue");
    assert_eq!(s.when(handle()).unwrap_err(), DomainError::ClockPaused);
    let (_, resumed) = s.at(now() + days(3)).when(Command::ResumeClock).unwrap();
    assert_eq!(resumed.deadline.unwrap().due_at, before.deadline.unwrap().due_at + days(3));
    assert_eq!(resumed.overall.unwrap().due_at, before.overall.unwrap().due_at + days(3));
    assert_eq!(resumed.paused, None);
}

#[test]
fn a_deadline_into_an_unloaded_year_is_flagged_and_recomputed_by_an_event_when_the_year_is_loaded() {
    let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
    let only_2026 = WorkingCalendar::new([d(2026, 10, 1)], []);
    // Sunday 2026-12-20 10:00 CST. 15 working days on weekdays alone: Dec 21–25 (5), Dec 28–31 (9),
    // Fri Jan 1 (10), Jan 4–8 (15) → Friday 2027-01-08.
    let sunday = Utc.with_ymd_and_hms(2026, 12, 20, 2, 0, 0).unwrap();
    let s = given_new().with_calendar(only_2026).at(sunday).after(&[register(), assign(1)]);
    let s = signed(s, 1);
    let dl = s.state().unwrap().deadline.unwrap();
    assert!(dl.calendar_incomplete);
    assert_eq!(dl.due_at.to_rfc3339(), "2027-01-08T15:59:59+00:00");
    // Nothing changes while the calendar is the same: no event.
    assert_eq!(s.decide(&Command::RecomputeDeadlines).unwrap(), vec![]);
    // 2027 loaded, with 1 January a holiday: Jan 4–8 (14), Mon Jan 11 (15).
    let with_2027 = WorkingCalendar::new([d(2026, 10, 1), d(2027, 1, 1)], []);
    let (events, case) = s.with_calendar(with_2027).when(Command::RecomputeDeadlines).unwrap();
    assert!(matches!(events.as_slice(), [CaseEvent::DeadlinesRecomputed(_)]));
    let dl = case.deadline.unwrap();
    assert_eq!(dl.due_at.to_rfc3339(), "2027-01-11T15:59:59+00:00");
    assert!(!dl.calendar_incomplete);
}

/// A clock that stood paused keeps that time when the year it runs into is loaded late: the
/// recount from `started_at` once forgot the pause, so loading (or correcting) a calendar
/// handed back days the citizen had been given, and even a clock the new calendar did not touch
/// was "recomputed" without them.
#[test]
fn a_recount_on_a_late_calendar_keeps_the_time_a_clock_stood_paused() {
    let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
    let only_2026 = WorkingCalendar::new([d(2026, 10, 1)], []);
    // As above: signed on Sunday 2026-12-20, 15 working days on weekdays alone → 2027-01-08.
    let sunday = Utc.with_ymd_and_hms(2026, 12, 20, 2, 0, 0).unwrap();
    // Received an hour before (a case received in November would have its acknowledgement
    // past due by now, and an overdue case cannot be paused).
    let mut received = registration();
    received.received_at = sunday - Duration::hours(1);
    let s = given_new().with_calendar(only_2026.clone()).at(sunday);
    let s = signed(s.after(&[Command::Register(Box::new(received)), assign(1)]), 1);
    let s = s.after(&[Command::PauseClock { reason: reason("等待群众补充材料") }]);
    // Paused for exactly 3 days and 2 hours.
    let resumed_at = sunday + days(3) + Duration::hours(2);
    let s = s.at(resumed_at).after(&[Command::ResumeClock]);
    let dl = s.state().unwrap().deadline.unwrap();
    assert_eq!(dl.due_at.to_rfc3339(), "2027-01-11T17:59:59+00:00", "2027-01-08T15:59:59Z + 3 d 2 h");
    // The same calendar again: nothing to recount, no event (it once dropped the pause here).
    assert_eq!(s.decide(&Command::RecomputeDeadlines).unwrap(), vec![]);
    // 2027 loaded with 1 January a holiday: the count ends Mon 2027-01-11 15:59:59Z, and the
    // 3 d 2 h of the pause still follow → 2027-01-14T17:59:59Z.
    let with_2027 = WorkingCalendar::new([d(2026, 10, 1), d(2027, 1, 1)], []);
    let (events, case) = s.with_calendar(with_2027).when(Command::RecomputeDeadlines).unwrap();
    assert!(matches!(events.as_slice(), [CaseEvent::DeadlinesRecomputed(_)]), "{events:?}");
    let dl = case.deadline.unwrap();
    assert_eq!(dl.due_at.to_rfc3339(), "2027-01-14T17:59:59+00:00");
    assert_eq!(dl.paused(), days(3) + Duration::hours(2));
}

/// A `clock_resumed` written before deadlines carried their pause credit moved `due_at` alone;
/// replaying it credits the move, so such a case recounts as correctly as a new one.
#[test]
fn a_resume_event_written_before_the_credit_was_recorded_still_credits_the_pause() {
    let s = signed(given_new().after(&[register(), assign(1)]), 1);
    let s = s.after(&[Command::PauseClock { reason: reason("等待群众补充材料") }]);
    let paused = s.state().unwrap();
    let before = paused.deadline.unwrap();
    let shift = days(2);
    let old = CaseEvent::ClockResumed(ClockResumed {
        paused_seconds: shift.num_seconds(),
        deadline: Some(Deadline { due_at: before.due_at + shift, ..before }),
        overall: None,
        acknowledgement: None,
    });
    let json = old.payload();
    assert!(!json.to_string().contains("paused_micros"), "the old shape: {json}");
    let read = CaseEvent::from_stored(old.event_type(), old.schema_version(), json).unwrap();
    let case = evolve(Some(paused), case_id(), &read, now() + shift).unwrap();
    let dl = case.deadline.unwrap();
    assert_eq!(dl.due_at, before.due_at + shift);
    assert_eq!(dl.paused(), shift);
}

// ── 回访 and closure ─────────────────────────────────────────────────────────────────────

#[test]
fn a_fed_back_case_closes_after_a_rating_or_after_the_lapsed_follow_up_with_attempts() {
    let s = given_new().after(&[register(), assign(1), handle(), feedback()]);
    assert_eq!(s.clone_at().acting_as(Role::Clerk).when(close(None)).unwrap_err(), DomainError::FollowUpPending);
    // The follow-up window: 5 working days from Monday 2026-11-02 → Monday 2026-11-09 23:59:59 CST.
    let after_window = Utc.with_ymd_and_hms(2026, 11, 9, 16, 0, 1).unwrap();
    assert_eq!(
        s.clone_at().acting_as(Role::Clerk).at(after_window).when(close(None)).unwrap_err(),
        DomainError::FollowUpPending,
        "a lapse without any recorded attempt is not a follow-up"
    );
    let tried = s
        .clone_at()
        .after(&[Command::RecordFollowUpAttempt { method: RatingMethod::Phone, note: Some(text("无人接听")) }]);
    assert_eq!(tried.clone_at().acting_as(Role::Clerk).when(close(None)).unwrap_err(), DomainError::FollowUpPending);
    let (events, _) = tried.clone_at().acting_as(Role::Clerk).at(after_window).when(close(None)).unwrap();
    assert!(matches!(&events[0], CaseEvent::Closed(Closed { follow_up_lapsed: true, .. })));
    // A supervisor may close without a rating, in writing.
    let (events, _) = s.clone_at().when(close(Some("群众拒绝评价，经核实已解决"))).unwrap();
    assert!(matches!(&events[0], CaseEvent::Closed(Closed { without_rating: true, .. })));
}

#[test]
fn the_rating_records_who_collected_it_how_and_whether_the_citizen_says_it_was_solved() {
    let s = given_new().after(&[register(), assign(1), handle(), feedback()]).acting_as(Role::Clerk);
    let cmd = Command::RecordSatisfaction {
        rating: Rating::BasicallySatisfied,
        comment: None,
        method: RatingMethod::InPerson,
        solved: Some(false),
    };
    let (_, case) = s.when(cmd).unwrap();
    let r = case.satisfaction.unwrap();
    assert_eq!((r.method, r.solved), (Some(RatingMethod::InPerson), Some(false)));
    assert_eq!(r.collected_by.unwrap().as_str(), "clerk-1");
}

#[test]
fn a_second_dissatisfied_rating_escalates_in_the_same_append() {
    let s = given_new().after(&[register(), assign(1), handle(), feedback(), rate(Rating::Dissatisfied)]);
    assert_eq!(s.state().unwrap().escalation, None, "one dissatisfied rating reworks, no more");
    let (events, case) = s.after(&[handle(), feedback()]).when(rate(Rating::Dissatisfied)).unwrap();
    let types: Vec<_> = events.iter().map(CaseEvent::event_type).collect();
    assert_eq!(types, ["case.satisfaction_recorded", "case.reopened", "case.escalated"]);
    assert!(case.escalation.is_some());
}

// ── Units that stop ──────────────────────────────────────────────────────────────────────

#[test]
fn rework_never_goes_to_a_deactivated_unit() {
    // Input 2 of the issue: assign, handle, feed back, deactivate the unit, rate dissatisfied.
    let s =
        given_new().after(&[register(), assign(1), handle(), feedback()]).with_units(Units { inactive: vec![unit(1)] });
    let (events, case) = s.when(rate(Rating::Dissatisfied)).unwrap();
    let Some(CaseEvent::Reopened(r)) = events.get(1) else { panic!("{events:?}") };
    assert_eq!(r.unit, None);
    assert_eq!((case.status, case.unit), (Status::Received, None));
    assert_eq!(case.deadline.unwrap().stage, Stage::Assignment);
    let (_, case) =
        s.after(&[rate(Rating::Satisfied), close(None)]).when(Command::Reopen { reason: reason("答复不实") }).unwrap();
    assert_eq!(case.unit, None);
}

#[test]
fn rework_leaves_deactivated_co_units_behind() {
    let s = given_new()
        .after(&[register(), assign_jointly(1, &[2, 3]), handle(), feedback()])
        .with_units(Units { inactive: vec![unit(3)] });
    let (_, case) = s.when(rate(Rating::Dissatisfied)).unwrap();
    assert_eq!(case.unit, Some(unit(1)));
    assert_eq!(case.co_units.iter().map(|c| c.unit).collect::<Vec<_>>(), vec![unit(2)]);
}

// ── 合并 ─────────────────────────────────────────────────────────────────────────────────

#[test]
fn a_linked_duplicate_is_never_overdue_and_closes_only_after_its_own_reply() {
    // Input 4 of the issue: a duplicate kept counting as overdue at the assignment stage.
    let mut r = registration();
    r.received_at = now() - days(30);
    let s = given_new().after(&[Command::Register(Box::new(r))]);
    assert!(s.state().unwrap().is_overdue(now()));
    let s = s.after(&[link(90)]);
    let case = s.state().unwrap();
    assert!(!case.is_overdue(now() + days(3650)));
    assert!(case.running_clocks().is_empty());
    assert_eq!(s.when(assign(1)).unwrap_err(), DomainError::IsDuplicate);
    assert_eq!(s.when(close(None)).unwrap_err(), DomainError::ClosedBeforeFeedback);
    let (_, case) = s.after(&[feedback()]).when(close(None)).unwrap();
    assert_eq!(case.status, Status::Closed);
}

#[test]
fn duplicate_links_form_no_chains() {
    let s = given_new().after(&[register()]);
    let of = CaseId::from_uuid(uuid::Uuid::from_u128(90));
    let onto_a_duplicate =
        Command::LinkDuplicate { of, target: LinkTarget { is_duplicate: true, ..Default::default() } };
    assert_eq!(s.when(onto_a_duplicate).unwrap_err(), DomainError::TargetIsDuplicate);
    let a_master = Command::LinkDuplicate { of, target: LinkTarget { has_duplicates: true, ..Default::default() } };
    assert_eq!(s.when(a_master).unwrap_err(), DomainError::HasDuplicates);
}

#[test]
fn a_merge_never_crosses_a_recusal() {
    let of = CaseId::from_uuid(uuid::Uuid::from_u128(90));
    // An accusation against unit 10 is never folded into a case unit 11 (under 10) handles.
    let s = given_new().after(&[accusing(10)]);
    let handled_by_11 = LinkTarget { units: vec![unit(11)], ..Default::default() };
    assert_eq!(s.when(Command::LinkDuplicate { of, target: handled_by_11 }).unwrap_err(), DomainError::Recusal);
    // Nor is unit 12's case folded into an accusation against its parent 11.
    let s = given_new().after(&[register(), assign(12)]);
    let accusation = LinkTarget { accused_unit: Some(unit(11)), ..Default::default() };
    assert_eq!(s.when(Command::LinkDuplicate { of, target: accusation }).unwrap_err(), DomainError::Recusal);
    let elsewhere = LinkTarget { units: vec![unit(1)], accused_unit: Some(unit(3)), ..Default::default() };
    assert!(s.when(Command::LinkDuplicate { of, target: elsewhere }).is_ok());
}

#[test]
fn a_master_is_never_handed_to_a_unit_its_duplicates_accuse() {
    // A case with a linked duplicate that accuses unit 11: never to 11, nor to 12 under it.
    let s = given_new().after(&[register()]).with_linked_accused(&[11]);
    assert_eq!(s.when(assign(12)).unwrap_err(), DomainError::Recusal);
    assert_eq!(s.when(assign_jointly(1, &[11])).unwrap_err(), DomainError::Recusal);
    let s = s.after(&[assign(1)]);
    let transfer = Command::Transfer { reason: reason("改派"), to_unit: Some(unit(11)) };
    assert_eq!(s.when(transfer).unwrap_err(), DomainError::Recusal);
    assert!(s.when(Command::Transfer { reason: reason("改派"), to_unit: Some(unit(10)) }).is_ok());
}

#[test]
fn a_refused_return_cannot_be_asked_again_in_the_same_assignment() {
    let s = given_new()
        .after(&[register(), assign(1)])
        .handler_of(1)
        .after(&[Command::RequestReturn { reason: reason("非本单位职责") }])
        .acting_as(Role::Clerk)
        .after(&[Command::RefuseReturn { reason: reason("属本单位职责") }])
        .handler_of(1);
    assert_eq!(s.when(Command::RequestReturn { reason: reason("再次申请") }).unwrap_err(), DomainError::ReturnRefused);
    // A new assignment (after a re-route back and forth) starts afresh.
    let s = s
        .acting_as(Role::Clerk)
        .after(&[Command::Transfer { reason: reason("改派"), to_unit: Some(unit(2)) }])
        .after(&[Command::Transfer { reason: reason("改回"), to_unit: Some(unit(1)) }])
        .handler_of(1);
    assert!(s.when(Command::RequestReturn { reason: reason("x") }).is_ok());
}

#[test]
fn a_co_unit_is_replaced_by_an_event() {
    let s = given_new().after(&[register(), assign_jointly(1, &[2])]);
    let replace = |to| Command::ReplaceCoUnit { from: unit(2), to, reason: reason("单位撤销") };
    let (_, case) = s.when(replace(Some(unit(3)))).unwrap();
    assert_eq!(case.co_units.iter().map(|c| c.unit).collect::<Vec<_>>(), vec![unit(3)]);
    assert_eq!(s.when(replace(Some(unit(1)))).unwrap_err(), DomainError::InvalidCoUnits);
}

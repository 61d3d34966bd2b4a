//! Given/when/then tests for every command of the case aggregate.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use chrono::Duration;
use domain::deadline::DeadlineRule;
use domain::events::*;
use domain::*;
use support::*;

#[test]
fn registering_records_the_case_with_a_receipt_code_and_a_routing_deadline() {
    let (events, case) = given_new().when(register()).unwrap();
    let [CaseEvent::Received(r)] = events.as_slice() else { panic!("one received event: {events:?}") };
    assert!(r.receipt_code.as_str().starts_with("HY-20261102-"));
    assert_eq!(r.assign_deadline.stage, Stage::Assignment);
    // Received Monday 09:00 CST, three working days: Thursday 23:59:59 CST.
    assert_eq!(r.assign_deadline.due_at.to_rfc3339(), "2026-11-05T15:59:59+00:00");
    assert_eq!(case.status, Status::Received);
    assert_eq!(case.round, 1);
}

#[test]
fn registering_with_a_future_receipt_time_is_rejected() {
    let mut r = registration();
    r.received_at = now() + Duration::minutes(5);
    assert_eq!(given_new().when(Command::Register(Box::new(r))).unwrap_err(), DomainError::ReceivedInFuture);
}

#[test]
fn registering_twice_is_rejected() {
    assert_eq!(given_new().after(&[register()]).when(register()).unwrap_err(), DomainError::AlreadyRegistered);
}

#[test]
fn commands_on_an_unregistered_case_are_rejected() {
    assert_eq!(given_new().when(assign(1)).unwrap_err(), DomainError::NotRegistered);
}

#[test]
fn paper_intake_starts_the_clock_at_the_time_of_receipt() {
    let mut r = registration();
    r.received_at = now() - Duration::days(60);
    let s = given_new().after(&[Command::Register(Box::new(r))]);
    let case = s.state().unwrap();
    assert!(case.is_overdue(now()));
    assert!(matches!(case.deadline_status(now(), &s.calendar), Some(DeadlineStatus::Overdue { .. })));
}

#[test]
fn classifying_sets_the_category_and_keeps_the_deadline() {
    let s = given_new().after(&[register()]);
    let before = s.state().unwrap().deadline;
    let cat = CategoryId::from_uuid(uuid::Uuid::from_u128(5));
    let (_, case) = s.when(Command::Classify { category: cat }).unwrap();
    assert_eq!(case.category, Some(cat));
    assert_eq!(case.deadline, before);
}

#[test]
fn rejecting_a_received_case_records_the_reason() {
    let (events, case) = given_new()
        .after(&[register()])
        .when(Command::Reject {
            code: NonAcceptanceCode::OutOfRemit,
            reason: reason("不属于纪委受理范围"),
            referred_to: Some(text("镇司法所")),
        })
        .unwrap();
    assert_eq!(
        events,
        vec![CaseEvent::Rejected(Rejected {
            reason: reason("不属于纪委受理范围"),
            code: Some(NonAcceptanceCode::OutOfRemit),
            referred_to: Some(text("镇司法所")),
        })]
    );
    assert_eq!(case.status, Status::Rejected);
    assert_eq!(case.deadline, None);
}

#[test]
fn rejecting_an_assigned_case_is_an_invalid_transition() {
    let err = given_new().after(&[register(), assign(1)]).when(reject("x")).unwrap_err();
    assert_eq!(err, DomainError::InvalidTransition { command: "reject", status: Status::Assigned });
}

#[test]
fn assigning_routes_to_the_unit_with_a_one_working_day_sign_for_clock_then_fifteen_to_handle() {
    let s = given_new().after(&[register()]);
    let (events, case) = s.when(assign(1)).unwrap();
    // 交办 implies acceptance: the overall clock starts, 60 calendar days (信访工作条例 art. 32).
    let [CaseEvent::Accepted(acc), CaseEvent::Assigned(a)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(acc.overall.due_at.to_rfc3339(), "2027-01-01T15:59:59+00:00");
    assert_eq!(a.unit, unit(1));
    assert_eq!(a.deadline.stage, Stage::SignFor);
    // Monday 2026-11-02 + 1 working day: Tuesday 2026-11-03, 23:59:59 CST.
    assert_eq!(a.deadline.due_at.to_rfc3339(), "2026-11-03T15:59:59+00:00");
    assert_eq!(case.status, Status::Assigned);
    assert_eq!(case.unit, Some(unit(1)));
    let (events, case) = s.after(&[assign(1)]).handler_of(1).when(Command::SignFor).unwrap();
    let [CaseEvent::SignedFor(sf)] = events.as_slice() else { panic!("{events:?}") };
    let h = sf.handling.unwrap();
    assert_eq!(h.due_at.to_rfc3339(), "2026-11-23T15:59:59+00:00");
    assert!(matches!(h.rule, DeadlineRule::Policy { limit: Limit::WorkingDays(15), .. }));
    assert_eq!(case.deadline.unwrap().stage, Stage::Handling);
}

#[test]
fn assigning_with_a_shorter_explicit_deadline_records_the_policy_it_shortened() {
    let due = now() + Duration::days(3);
    let (_, case) = given_new()
        .after(&[register()])
        .after(&[Command::Assign {
            unit: unit(1),
            co_units: vec![],
            due_at: Some(due),
            note: Some(text("请尽快核实")),
            tier: None,
        }])
        .handler_of(1)
        .when(Command::SignFor)
        .unwrap();
    let d = case.deadline.unwrap();
    assert_eq!(d.due_at, due);
    assert!(matches!(d.rule, DeadlineRule::Explicit { .. }));
}

#[test]
fn assigning_with_a_deadline_beyond_the_policy_or_in_the_past_is_rejected() {
    let s = given_new().after(&[register()]);
    let late = Command::Assign {
        unit: unit(1),
        co_units: vec![],
        due_at: Some(now() + Duration::days(90)),
        note: None,
        tier: None,
    };
    assert_eq!(s.when(late).unwrap_err(), DomainError::DeadlineBeyondPolicy);
    let past = Command::Assign {
        unit: unit(1),
        co_units: vec![],
        due_at: Some(now() - Duration::hours(1)),
        note: None,
        tier: None,
    };
    assert_eq!(s.when(past).unwrap_err(), DomainError::DeadlineInPast);
}

#[test]
fn urgent_cases_are_due_in_hours() {
    let mut r = registration();
    r.urgency = Urgency::Urgent;
    let s = given_new().after(&[Command::Register(Box::new(r))]);
    let (_, case) = s.when(assign(1)).unwrap();
    assert_eq!(case.deadline.unwrap().due_at, now() + Duration::hours(2));
    let (_, case) = s.after(&[assign(1)]).handler_of(1).when(Command::SignFor).unwrap();
    assert_eq!(case.deadline.unwrap().due_at, now() + Duration::hours(48));
}

#[test]
fn transferring_to_another_unit_restarts_the_handling_clock_there() {
    let s = given_new().after(&[register(), assign(1)]);
    let (_, case) = s.when(Command::Transfer { reason: reason("属于卫生院职责"), to_unit: Some(unit(2)) }).unwrap();
    assert_eq!(case.unit, Some(unit(2)));
    assert_eq!(case.status, Status::Assigned);
}

#[test]
fn returning_a_case_sends_it_back_to_intake() {
    let (_, case) = given_new()
        .after(&[register(), assign(1)])
        .when(Command::Transfer { reason: reason("非本单位职责"), to_unit: None })
        .unwrap();
    assert_eq!(case.status, Status::Received);
    assert_eq!(case.unit, None);
    assert_eq!(case.deadline.unwrap().stage, Stage::Assignment);
}

#[test]
fn transferring_to_the_same_unit_is_rejected() {
    let err = given_new()
        .after(&[register(), assign(1)])
        .when(Command::Transfer { reason: reason("x"), to_unit: Some(unit(1)) })
        .unwrap_err();
    assert_eq!(err, DomainError::SameUnit);
}

#[test]
fn extending_once_records_the_approver_and_a_second_extension_is_refused() {
    let s = given_new()
        .after(&[register(), assign(1)])
        .handler_of(1)
        .after(&[Command::SignFor])
        .acting_as(Role::Supervisor);
    let due = s.state().unwrap().deadline.unwrap().due_at + Duration::days(10);
    let (events, case) = s.when(Command::ExtendDeadline { due_at: due, reason: reason("需要现场核查") }).unwrap();
    let [CaseEvent::DeadlineExtended(e)] = events.as_slice() else { panic!() };
    assert_eq!(e.approved_by.as_str(), "supervisor-1");
    assert_eq!(case.deadline.unwrap().due_at, due);
    let s = s.after(&[Command::ExtendDeadline { due_at: due, reason: reason("需要现场核查") }]);
    let err = s.when(Command::ExtendDeadline { due_at: due + Duration::days(1), reason: reason("再延") }).unwrap_err();
    assert_eq!(err, DomainError::ExtensionLimitReached);
}

#[test]
fn extending_by_more_than_thirty_days_or_backwards_is_refused() {
    let s = given_new()
        .after(&[register(), assign(1)])
        .handler_of(1)
        .after(&[Command::SignFor])
        .acting_as(Role::Supervisor);
    let due = s.state().unwrap().deadline.unwrap().due_at;
    assert_eq!(
        s.when(Command::ExtendDeadline { due_at: due + Duration::days(31), reason: reason("x") }).unwrap_err(),
        DomainError::ExtensionTooLong { max_days: 30 }
    );
    assert_eq!(
        s.when(Command::ExtendDeadline { due_at: due, reason: reason("x") }).unwrap_err(),
        DomainError::DeadlineNotLater
    );
}

/// 信访工作条例 (2022) art. 32: the limit is extended within it. An extension asked for or
/// granted after the handling limit passed would turn a miss into a case handled on time.
#[test]
fn an_extension_after_the_limit_passed_is_refused_and_one_before_it_granted() {
    let s = given_new()
        .after(&[register(), assign(1)])
        .handler_of(1)
        .after(&[Command::SignFor])
        .acting_as(Role::Supervisor);
    let due = s.state().unwrap().deadline.unwrap().due_at;
    let extend = || Command::ExtendDeadline { due_at: due + Duration::days(10), reason: reason("需要现场核查") };
    let late = s.clone_at().at(due + Duration::seconds(1));
    assert_eq!(late.when(extend()).unwrap_err(), DomainError::LimitPassed);
    let asked = late.clone_at().handler_of(1);
    assert_eq!(
        asked
            .when(Command::RequestExtension { due_at: due + Duration::days(10), reason: reason("需要现场核查") })
            .unwrap_err(),
        DomainError::LimitPassed
    );
    let in_time = s.clone_at().at(due - Duration::hours(1));
    assert!(in_time.when(extend()).is_ok());
}

#[test]
fn handling_before_assignment_is_rejected() {
    assert_eq!(given_new().after(&[register()]).when(handle()).unwrap_err(), DomainError::HandledBeforeAssigned);
}

#[test]
fn handling_records_the_outcome_and_starts_the_reply_clock() {
    let (_, case) = given_new().after(&[register(), assign(1)]).when(handle()).unwrap();
    assert_eq!(case.status, Status::Handled);
    assert_eq!(case.handling.unwrap().outcome, Outcome::Resolved);
    assert_eq!(case.deadline.unwrap().stage, Stage::Feedback);
}

#[test]
fn feeding_back_before_handling_is_rejected() {
    let err = given_new().after(&[register(), assign(1)]).when(feedback()).unwrap_err();
    assert_eq!(err, DomainError::InvalidTransition { command: "feedback", status: Status::Assigned });
}

#[test]
fn feeding_back_starts_the_follow_up_clock_and_the_rating_stops_it() {
    let s = given_new().after(&[register(), assign(1), handle()]);
    let (_, case) = s.when(feedback()).unwrap();
    assert_eq!(case.status, Status::FedBack);
    assert!(case.ever_fed_back);
    // Monday 2026-11-02 + 5 working days: Monday 2026-11-09, 23:59:59 CST.
    let d = case.deadline.unwrap();
    assert_eq!((d.stage, d.due_at.to_rfc3339().as_str()), (Stage::FollowUp, "2026-11-09T15:59:59+00:00"));
    let (_, case) = s.after(&[feedback()]).when(rate(Rating::Satisfied)).unwrap();
    assert_eq!(case.deadline, None);
}

#[test]
fn a_satisfied_rating_is_recorded_once() {
    let s = given_new().after(&[register(), assign(1), handle(), feedback()]);
    let (_, case) = s.when(rate(Rating::Satisfied)).unwrap();
    assert_eq!(case.satisfaction.unwrap().rating, Rating::Satisfied);
    let err = s.after(&[rate(Rating::BasicallySatisfied)]).when(rate(Rating::Satisfied)).unwrap_err();
    assert_eq!(err, DomainError::AlreadyRated);
}

#[test]
fn a_dissatisfied_rating_reopens_the_case_for_rework_in_a_new_round() {
    let (events, case) =
        given_new().after(&[register(), assign(1), handle(), feedback()]).when(rate(Rating::Dissatisfied)).unwrap();
    assert_eq!(events.len(), 2);
    assert!(matches!(&events[1], CaseEvent::Reopened(r) if r.reason == ReopenReason::Dissatisfied && r.round == 2));
    assert_eq!(case.status, Status::Assigned);
    assert_eq!(case.round, 2);
    assert_eq!(case.unit, Some(unit(1)));
    assert_eq!(case.handling, None);
}

#[test]
fn closing_over_dissatisfaction_needs_a_supervisor_and_a_justification() {
    let s = given_new().after(&[register(), assign(1), handle(), feedback(), rate(Rating::Dissatisfied)]);
    assert_eq!(s.when(close(None)).unwrap_err(), DomainError::JustificationRequired);
    let clerk = given_new()
        .after(&[register(), assign(1), handle(), feedback(), rate(Rating::Dissatisfied)])
        .acting_as(Role::Clerk);
    assert_eq!(clerk.when(close(Some("诉求已依法答复"))).unwrap_err(), DomainError::JustificationRequired);
    let (events, case) = s.when(close(Some("诉求超出政策范围，已依法依规答复"))).unwrap();
    assert!(matches!(&events[0], CaseEvent::Closed(c) if c.over_dissatisfaction));
    assert_eq!(case.status, Status::Closed);
}

#[test]
fn closing_before_feedback_is_rejected() {
    for history in [vec![register()], vec![register(), assign(1)], vec![register(), assign(1), handle()]] {
        assert_eq!(given_new().after(&history).when(close(None)).unwrap_err(), DomainError::ClosedBeforeFeedback);
    }
}

#[test]
fn a_rejected_case_closes_without_feedback_and_a_duplicate_after_its_own_reply() {
    // The non-acceptance is itself an answer the citizen is owed before the case closes.
    let s = given_new().after(&[register(), reject("重复反映")]);
    assert_eq!(s.when(close(None)).unwrap_err(), DomainError::NoticeOwed);
    let (_, case) = s.after(&[notify()]).when(close(None)).unwrap();
    assert_eq!(case.status, Status::Closed);
    let s = given_new().after(&[register(), link(90)]);
    assert_eq!(s.when(close(None)).unwrap_err(), DomainError::ClosedBeforeFeedback);
    let (_, case) = s.after(&[feedback()]).when(close(None)).unwrap();
    assert_eq!(case.status, Status::Closed);
}

#[test]
fn a_closed_case_changes_only_by_an_explicit_reopen() {
    let s = given_new().after(&[register(), assign(1), handle(), feedback(), rate(Rating::Satisfied), close(None)]);
    for c in [Command::AddNote { text: text("补充") }, Command::Escalate { reason: reason("x") }, handle(), close(None)]
    {
        assert_eq!(s.when(c).unwrap_err(), DomainError::CaseClosed);
    }
    let (_, case) = s.when(Command::Reopen { reason: reason("发现答复不实") }).unwrap();
    assert_eq!(case.status, Status::Assigned);
    assert_eq!(case.round, 2);
}

#[test]
fn reopening_a_rejected_case_returns_it_to_intake() {
    let (_, case) =
        given_new().after(&[register(), reject("x")]).when(Command::Reopen { reason: reason("受理有误") }).unwrap();
    assert_eq!(case.status, Status::Received);
    assert_eq!(case.rejection, None);
}

#[test]
fn reopening_an_open_case_is_refused() {
    let err = given_new().after(&[register(), assign(1)]).when(Command::Reopen { reason: reason("x") }).unwrap_err();
    assert_eq!(err, DomainError::NothingToReopen { status: Status::Assigned });
}

#[test]
fn escalating_twice_is_refused() {
    let s = given_new().after(&[register(), assign(1)]);
    let (_, case) = s.when(Command::Escalate { reason: reason("群众反映强烈") }).unwrap();
    assert!(case.escalation.is_some());
    let err = s
        .after(&[Command::Escalate { reason: reason("x") }])
        .when(Command::Escalate { reason: reason("y") })
        .unwrap_err();
    assert_eq!(err, DomainError::AlreadyEscalated);
}

#[test]
fn duplicate_links_are_checked() {
    let s = given_new().after(&[register()]);
    let own = Command::LinkDuplicate { of: case_id(), target: LinkTarget::default() };
    assert_eq!(s.when(own).unwrap_err(), DomainError::SelfDuplicate);
    assert_eq!(s.when(Command::UnlinkDuplicate { reason: reason("x") }).unwrap_err(), DomainError::NotDuplicate);
    let linked = s.after(&[link(90)]);
    assert_eq!(linked.when(link(90)).unwrap_err(), DomainError::AlreadyDuplicate);
    let (_, case) = linked.when(Command::UnlinkDuplicate { reason: reason("并非同一事项") }).unwrap();
    assert_eq!(case.duplicate_of, None);
}

#[test]
fn notes_are_counted() {
    let (_, case) = given_new().after(&[register()]).when(Command::AddNote { text: text("已电话联系") }).unwrap();
    assert_eq!(case.notes, 1);
}

#[test]
fn a_reveal_is_recorded_even_on_a_closed_case() {
    let s = given_new().after(&[register(), reject("x"), notify(), close(None)]);
    let (events, _) = s
        .when(Command::RevealComplainant {
            purpose_code: RevealPurpose::VerifyIdentity, purpose: reason("核实身份")
        })
        .unwrap();
    assert!(matches!(&events[0], CaseEvent::ComplainantRevealed(_)));
}

#[test]
fn a_whole_life_replays_to_the_live_state() {
    let s = given_new().after(&[
        register(),
        assign(1),
        handle(),
        feedback(),
        rate(Rating::Dissatisfied),
        handle(),
        feedback(),
        rate(Rating::Satisfied),
        close(Some("办结")),
    ]);
    let case = s.state().unwrap();
    assert_eq!(case.status, Status::Closed);
    assert_eq!(case.round, 2);
    // received, accepted, assigned, signed_for, handled, fed_back, satisfaction, reopened,
    // handled, fed_back, satisfaction, closed: 12 by hand.
    assert_eq!(case.version, 12);
}

#[test]
fn an_assigned_v1_event_is_upcast_on_read() {
    let payload = serde_json::json!({ "unit": unit(1), "due_at": "2026-11-20T15:59:59Z" });
    let e = CaseEvent::from_stored("case.assigned", 1, payload).unwrap();
    let CaseEvent::Assigned(a) = e else { panic!() };
    assert_eq!(a.deadline.due_at.to_rfc3339(), "2026-11-20T15:59:59+00:00");
    assert!(matches!(a.deadline.rule, DeadlineRule::Explicit { .. }));
}

#[test]
fn an_unknown_event_type_is_a_history_error() {
    assert!(matches!(
        CaseEvent::from_stored("case.exploded", 1, serde_json::json!({})),
        Err(HistoryError::UnknownEvent(..))
    ));
}

#[test]
fn every_event_round_trips_through_its_payload() {
    let s = given_new()
        .after(&[register(), assign(1)])
        .handler_of(1)
        .after(&[Command::SignFor])
        .acting_as(Role::Supervisor);
    let s = s.after(&[
        Command::ExtendDeadline { due_at: now() + Duration::days(30), reason: reason("x") },
        handle(),
        feedback(),
        rate(Rating::Dissatisfied),
        Command::Transfer { reason: reason("y"), to_unit: Some(unit(3)) },
        Command::Escalate { reason: reason("z") },
        Command::AddNote { text: text("n") },
    ]);
    for (e, _) in &s.history {
        assert_eq!(&CaseEvent::from_stored(e.event_type(), e.schema_version(), e.payload()).unwrap(), e);
    }
}

#[test]
fn erasing_personal_data_leaves_a_marker_once_even_on_a_closed_case() {
    let s = given_new().after(&[register(), reject("x"), notify(), close(None)]);
    let (events, case) = s.when(Command::ErasePersonalData).unwrap();
    assert!(matches!(&events[0], CaseEvent::PersonalDataErased(_)));
    assert!(case.personal_data_erased);
    let s = s.after(&[Command::ErasePersonalData]);
    assert_eq!(s.when(Command::ErasePersonalData).unwrap_err(), DomainError::NoPersonalData);
    assert_eq!(
        s.when(Command::RevealComplainant { purpose_code: RevealPurpose::VerifyIdentity, purpose: reason("核实") })
            .unwrap_err(),
        DomainError::NoPersonalData
    );
}

/// A text is refused for control characters wherever they stand (a trailing U+0085 was once
/// trimmed away and the rest kept, though the contract refuses the value), and is blank when it
/// holds nothing but white space and invisible format characters (a lone byte-order mark or
/// zero-width space once counted as "not blank").
#[test]
fn a_text_with_a_trailing_control_or_only_invisible_characters_is_refused() {
    for bad in ["a\u{85}", "\u{85}a", "a\u{7}b", "\u{FEFF}", "\u{200B}", " \u{200D}\u{2060} ", "\t\n"] {
        assert!(Text::parse(bad).is_err(), "{bad:?}");
    }
    for good in ["备注", "a\tb", "第一行\n第二行", "\u{FEFF}备注"] {
        assert!(Text::parse(good).is_ok(), "{good:?}");
    }
}

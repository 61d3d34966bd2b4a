//! Given/when/then tests of the citizen's commands and the notices the lifecycle owes (issue 12).
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use domain::events::*;
use domain::notice::{Owed, owed};
use domain::*;
use support::*;

fn withdraw() -> Command {
    Command::Withdraw { reason: reason("已通过其他渠道解决") }
}

#[test]
fn a_withdrawn_case_is_closed_with_every_clock_stopped_and_never_reopened() {
    let s = given_new().after(&[register(), Command::Accept, assign(1)]);
    let (events, case) = s.when(withdraw()).unwrap();
    assert!(matches!(events.as_slice(), [CaseEvent::Withdrawn(w)] if w.reason.as_str() == "已通过其他渠道解决"));
    assert_eq!(case.status, Status::Closed);
    assert!(case.running_clocks().is_empty(), "no clock runs: {:?}", case.running_clocks());
    assert!(!case.is_overdue(now() + chrono::Duration::days(400)));
    assert_eq!(case.check_invariants(), Ok(()));
    let s = s.after(&[withdraw()]);
    assert_eq!(
        s.clone_at().acting_as(Role::Supervisor).decide(&Command::Reopen { reason: reason("复查一下") }),
        Err(DomainError::CaseWithdrawn)
    );
    assert_eq!(s.decide(&withdraw()), Err(DomainError::CaseClosed));
}

#[test]
fn a_rejected_case_cannot_be_withdrawn() {
    let s = given_new().after(&[register(), reject("不属于受理范围的事项")]);
    assert!(matches!(s.decide(&withdraw()), Err(DomainError::InvalidTransition { command: "withdraw", .. })));
}

#[test]
fn questions_are_numbered_and_each_is_answered_once() {
    let s = given_new().after(&[register(), Command::Accept, assign(1)]).handler_of(1);
    let ask = |q: &str| Command::AskCitizen { question: text(q) };
    let (events, _) = s.when(ask("哪根路灯？")).unwrap();
    assert!(matches!(events.as_slice(), [CaseEvent::CitizenAsked(CitizenAsked { question: 1, .. })]));
    let s = s.after(&[ask("哪根路灯？"), ask("何时开始不亮？")]).acting_as(Role::Citizen);
    let answer = |n: u32| Command::AnswerQuestion { question: n, answer: text("A-17") };
    assert_eq!(s.decide(&answer(0)), Err(DomainError::NoSuchQuestion));
    assert_eq!(s.decide(&answer(3)), Err(DomainError::NoSuchQuestion));
    let s = s.after(&[answer(2)]);
    assert_eq!(s.decide(&answer(2)), Err(DomainError::AlreadyAnswered));
    let case = s.state().unwrap();
    assert!(case.questions[0].answered_at.is_none() && case.questions[1].answered_at.is_some());
    // A handler of another unit may not ask.
    let other = given_new().after(&[register(), Command::Accept, assign(1)]).handler_of(2);
    assert!(matches!(other.decide(&ask("?")), Err(DomainError::NotYourUnit { .. })));
}

#[test]
fn notices_are_owed_by_acceptance_reply_follow_up_question_and_extension_once_per_contact() {
    let mut r = registration();
    r.complainant.reachable_by = vec![ContactChannel::Sms, ContactChannel::Email];
    let s = given_new().after(&[Command::Register(Box::new(r))]);
    let (events, case) = s.when(Command::Accept).unwrap();
    assert_eq!(
        owed(&events, &case),
        [
            Owed { event: 0, notice: NoticeType::Acknowledgement, channel: ContactChannel::Sms },
            Owed { event: 0, notice: NoticeType::Acknowledgement, channel: ContactChannel::Email },
        ]
    );
    // Assigning (which accepts first when needed) owes the acknowledgement of its acceptance.
    let mut r = registration();
    r.complainant.reachable_by = vec![ContactChannel::Sms];
    let s = given_new().after(&[Command::Register(Box::new(r))]);
    let (events, case) = s.when(assign(1)).unwrap();
    assert_eq!(
        owed(&events, &case),
        [Owed { event: 0, notice: NoticeType::Acknowledgement, channel: ContactChannel::Sms }]
    );
    // Notes, handling and ratings owe nothing.
    let s = s.after(&[assign(1)]).handler_of(1);
    let (events, case) = s.when(handle()).unwrap();
    assert!(owed(&events, &case).is_empty());
    let s = s.after(&[handle()]);
    let (events, case) = s.when(feedback()).unwrap();
    assert_eq!(owed(&events, &case), [Owed { event: 0, notice: NoticeType::Reply, channel: ContactChannel::Sms }]);
    // Anonymous citizens are owed nothing (no contact), nor erased ones.
    let mut r = registration();
    r.complainant = Complainant { anonymous: true, sealed: None, reachable_by: vec![] };
    let s = given_new().after(&[Command::Register(Box::new(r))]);
    let (events, case) = s.when(Command::Accept).unwrap();
    assert!(owed(&events, &case).is_empty());
}

#[test]
fn a_delivered_acknowledgement_is_the_notice_of_acceptance_and_a_failed_one_is_not() {
    let s = given_new().after(&[register(), Command::Accept]);
    assert!(s.state().unwrap().acknowledgement.is_some(), "the acknowledgement is owed");
    let record = |failure: Option<Reason>| Command::RecordNoticeDelivery {
        outbox_id: uuid::Uuid::from_u128(9),
        notice: NoticeType::Acknowledgement,
        channel: ContactChannel::Sms,
        attempts: 2,
        failure,
    };
    let (_, failed) = s.when(record(Some(reason("gateway answered 503")))).unwrap();
    assert!(failed.acknowledgement.is_some() && failed.acknowledged_at.is_none());
    let (events, case) = s.when(record(None)).unwrap();
    assert!(matches!(events.as_slice(), [CaseEvent::NoticeDelivered(NoticeDelivered { attempts: 2, .. })]));
    assert!(case.acknowledgement.is_none(), "its clock stops");
    assert_eq!(case.acknowledged_at, Some(now()));
    // Deliveries are recorded on closed cases too (a reply leaves after the case closed).
    let closed = given_new().after(&[register(), withdraw()]);
    assert!(closed.decide(&record(None)).is_ok());
}

#[test]
fn the_citizen_adds_information_to_an_open_case_only() {
    let s = given_new().after(&[register()]).acting_as(Role::Citizen);
    let add = Command::SupplementInformation { text: text("晚上七点以后完全不亮") };
    let (events, case) = s.when(add.clone()).unwrap();
    assert!(matches!(events.as_slice(), [CaseEvent::InformationSupplemented(_)]));
    assert_eq!(case.history_texts, ["晚上七点以后完全不亮"], "searchable like every text of the history");
    assert_eq!(s.after(&[withdraw()]).decide(&add), Err(DomainError::CaseClosed));
}

#[test]
fn a_rated_answer_is_not_withdrawn_and_a_rejection_owes_its_notice() {
    let s = given_new().after(&[register(), Command::Accept, assign(1)]).handler_of(1).after(&[handle(), feedback()]);
    let rated = s.clone_at().acting_as(Role::Citizen).after(&[rate(Rating::Satisfied)]);
    assert!(matches!(rated.decide(&withdraw()), Err(DomainError::InvalidTransition { command: "withdraw", .. })));
    // Before the rating the citizen may still withdraw.
    assert!(s.decide(&withdraw()).is_ok());
    let mut r = registration();
    r.complainant.reachable_by = vec![ContactChannel::Email];
    let s = given_new().after(&[Command::Register(Box::new(r))]);
    let (events, case) = s.when(reject("不属于受理范围的事项")).unwrap();
    assert_eq!(
        owed(&events, &case),
        [Owed { event: 0, notice: NoticeType::NonAcceptance, channel: ContactChannel::Email }]
    );
}

//! The campaign's records, given / when / then: a record's state is given as events, a decision is
//! taken against it, and the events or the refusal are compared with what the rule (issue 11 and
//! the source document) says.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::{NaiveDate, TimeZone, Utc};
use domain::records::campaign::{self, Campaign, PhaseSpan};
use domain::records::card::{self, CardBatch, CardBatchEvent};
use domain::records::meeting::{self, Attendance, AttendeeType, Meeting, MeetingEvent};
use domain::records::survey::{self, Answer, Question, QuestionKind, Response, Survey, SurveyEvent};
use domain::records::visit::{self, Place, PlaceType, Rectification, Visit, VisitEvent, VisitMode};
use domain::records::{Phase, Record, RecordError};
use domain::{CaseId, Name, RecordId, Text, Title, UnitId};
use uuid::Uuid;

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn unit(n: u128) -> UnitId {
    UnitId::from_uuid(Uuid::from_u128(n))
}

fn case(n: u128) -> CaseId {
    CaseId::from_uuid(Uuid::from_u128(n))
}

/// The state a history of events folds to.
fn given<R: Record>(events: Vec<R::Event>) -> R {
    let id = RecordId::from_uuid(Uuid::from_u128(1));
    let at = Utc.with_ymd_and_hms(2026, 4, 1, 2, 0, 0).unwrap();
    let mut state = None;
    for e in &events {
        state = Some(R::apply(state, id, e, at).unwrap());
    }
    state.unwrap()
}

fn phases(spec: &[(Phase, &str, &str)]) -> Vec<PhaseSpan> {
    spec.iter().map(|(p, f, t)| PhaseSpan { phase: *p, from: day(f), to: day(t) }).collect()
}

#[test]
fn phases_run_in_order_without_overlap_and_implementation_is_required() {
    use Phase::*;
    let ok = phases(&[
        (Preparation, "2026-03-01", "2026-03-15"),
        (Implementation, "2026-03-16", "2026-10-31"),
        (Summary, "2026-11-01", "2026-11-30"),
    ]);
    assert_eq!(campaign::check_phases(&ok), Ok(()));
    assert_eq!(campaign::check_phases(&phases(&[(Implementation, "2026-03-16", "2026-03-16")])), Ok(()), "one day");
    for bad in [
        phases(&[(Summary, "2026-01-01", "2026-01-31"), (Implementation, "2026-02-01", "2026-02-28")]),
        phases(&[(Preparation, "2026-03-01", "2026-03-16"), (Implementation, "2026-03-16", "2026-10-31")]),
        phases(&[(Implementation, "2026-03-16", "2026-03-15")]),
        phases(&[(Preparation, "2026-03-01", "2026-03-15"), (Summary, "2026-11-01", "2026-11-30")]),
        phases(&[(Implementation, "2026-03-01", "2026-03-15"), (Implementation, "2026-04-01", "2026-04-15")]),
        Vec::new(),
    ] {
        assert_eq!(campaign::check_phases(&bad), Err(RecordError::PhasesOutOfOrder), "{bad:?}");
    }
}

#[test]
fn a_day_falls_in_one_phase_and_campaigns_that_share_a_unit_and_a_day_overlap() {
    use Phase::*;
    let spans = phases(&[(Preparation, "2026-03-01", "2026-03-15"), (Implementation, "2026-03-16", "2026-10-31")]);
    let c: Campaign = given(
        campaign::launch(Title::parse("纠风").unwrap(), unit(1), vec![unit(2), unit(3)], spans, Vec::new()).unwrap(),
    );
    assert_eq!(c.phase_on(day("2026-03-15")), Some(Preparation));
    assert_eq!(c.phase_on(day("2026-03-16")), Some(Implementation));
    assert_eq!(c.phase_on(day("2026-11-01")), None);
    assert!(c.includes(unit(1)) && c.includes(unit(3)) && !c.includes(unit(4)));
    let later = phases(&[(Implementation, "2026-11-01", "2026-11-30")]);
    let same_days = phases(&[(Implementation, "2026-10-31", "2026-11-30")]);
    assert!(!campaign::overlaps(&c, unit(1), &[unit(2)], &later), "the day after the last");
    assert!(campaign::overlaps(&c, unit(1), &[unit(2)], &same_days), "the last day shared");
    assert!(!campaign::overlaps(&c, unit(9), &[unit(4)], &same_days), "no unit shared");
}

fn a_meeting(attendees: u32) -> Meeting {
    given(vec![MeetingEvent::Recorded(meeting::Recorded {
        topic: Title::parse("座谈会").unwrap(),
        held_on: day("2026-04-10"),
        venue: Name::parse("会议室").unwrap(),
        host_unit: unit(2),
        campaign: None,
        chair: Name::parse("李").unwrap(),
        recorder: Name::parse("王").unwrap(),
        attendance: vec![
            Attendance { attendee_type: AttendeeType::NpcDeputy, count: 2 },
            Attendance { attendee_type: AttendeeType::VillagerRepresentative, count: attendees - 2 },
        ],
        minutes: None,
    })])
}

#[test]
fn twenty_to_thirty_representatives_is_the_plan_outside_it_a_warning() {
    for (n, outside) in [(19, true), (20, false), (30, false), (31, true)] {
        assert_eq!(a_meeting(n).attendance_outside_recommended(), outside, "{n}");
    }
}

#[test]
fn opinions_keep_the_numbers_given_and_the_others_follow_the_highest() {
    let m = a_meeting(24);
    let events = meeting::register_opinions(&m, &[(None, case(10)), (Some(5), case(11)), (None, case(12))]).unwrap();
    let m2: Meeting = {
        let mut all = vec![MeetingEvent::Recorded(m.details.clone())];
        all.extend(events);
        given(all)
    };
    let numbers: Vec<u32> = m2.opinions.iter().map(|o| o.number).collect();
    assert_eq!(numbers, vec![6, 5, 7]);
    assert_eq!(
        meeting::register_opinions(&m2, &[(Some(5), case(13))]),
        Err(RecordError::OpinionNumberTaken(5)),
        "a number the minutes already hold"
    );
    assert_eq!(
        meeting::register_opinions(&m, &[(Some(3), case(13)), (Some(3), case(14))]),
        Err(RecordError::OpinionNumberTaken(3)),
        "the same number twice in one request"
    );
    assert_eq!(
        meeting::register_opinions(&m, &[(Some(10_000), case(13)), (None, case(14))]),
        Err(RecordError::OpinionNumbersExhausted),
        "no number past 10000"
    );
}

fn a_visit(mode: VisitMode) -> Visit {
    given(vec![VisitEvent::Recorded(visit::Recorded {
        mode,
        visited_on: day("2026-05-12"),
        organiser: unit(1),
        team: vec![Name::parse("张").unwrap()],
        places: vec![Place {
            place_type: PlaceType::School,
            name: Name::parse("小学").unwrap(),
            village: Some(unit(2)),
        }],
        campaign: None,
    })])
}

fn with(v: &Visit, more: Vec<VisitEvent>) -> Visit {
    let id = v.id;
    let at = v.recorded_at;
    more.iter().fold(v.clone(), |s, e| Visit::apply(Some(s), id, e, at).unwrap())
}

#[test]
fn an_undercover_visit_is_restricted_until_disclosed_and_its_findings_wait_for_it() {
    let v = a_visit(VisitMode::Undercover);
    assert!(v.restricted());
    assert!(v.index().restricted);
    let v = with(&v, visit::record_finding(&v, Text::parse("发现").unwrap(), Vec::new(), None).unwrap());
    assert_eq!(visit::finding_became_case(&v, 1, case(1)), Err(RecordError::StillUndercover));
    let v = with(&v, visit::disclose(&v).unwrap());
    assert!(!v.restricted());
    assert_eq!(visit::disclose(&v), Err(RecordError::NotUndercover), "disclosed once");
    let v = with(&v, visit::finding_became_case(&v, 1, case(1)).unwrap());
    assert_eq!(visit::finding_became_case(&v, 1, case(2)), Err(RecordError::FindingAlreadyACase(1)));
    assert_eq!(v.case_ids(), vec![case(1)]);
    assert_eq!(visit::disclose(&a_visit(VisitMode::Open)), Err(RecordError::NotUndercover));
}

#[test]
fn a_recheck_needs_a_rectification_and_no_date_precedes_the_visit() {
    let v = a_visit(VisitMode::Open);
    let demand = |due: &str| Some(Rectification { demand: Text::parse("整改").unwrap(), due_on: day(due) });
    assert_eq!(
        visit::record_finding(&v, Text::parse("x").unwrap(), Vec::new(), demand("2026-05-11")),
        Err(RecordError::DateBeforeVisit("the rectification's due day"))
    );
    let v = with(&v, visit::record_finding(&v, Text::parse("无整改").unwrap(), Vec::new(), None).unwrap());
    let v =
        with(&v, visit::record_finding(&v, Text::parse("有整改").unwrap(), Vec::new(), demand("2026-05-19")).unwrap());
    assert_eq!(visit::recheck(&v, 1, day("2026-05-20"), true, None), Err(RecordError::NothingToRecheck(1)));
    assert_eq!(visit::recheck(&v, 3, day("2026-05-20"), true, None), Err(RecordError::NoSuchFinding(3)));
    assert_eq!(visit::recheck(&v, 2, day("2026-05-11"), true, None), Err(RecordError::DateBeforeVisit("the re-check")));
    let v = with(&v, visit::recheck(&v, 2, day("2026-05-20"), true, None).unwrap());
    assert_eq!(v.finding(2).unwrap().rechecks.len(), 1);
}

fn a_batch() -> CardBatch {
    given(vec![CardBatchEvent::Printed(card::Printed {
        serial_from: 1001,
        serial_to: 1500,
        phone: Name::parse("0571").unwrap(),
        email: Name::parse("a@b.cn").unwrap(),
        village: unit(2),
        delivered_on: day("2026-04-01"),
        campaign: None,
    })])
}

fn batch_with(b: &CardBatch, more: Vec<CardBatchEvent>) -> CardBatch {
    let (id, at) = (b.id, b.recorded_at);
    more.iter().fold(b.clone(), |s, e| CardBatch::apply(Some(s), id, e, at).unwrap())
}

#[test]
fn a_card_is_used_once_and_only_a_card_of_the_batch() {
    assert_eq!(card::check_range(1, 100_000), Ok(()));
    assert_eq!(card::check_range(1, 100_001), Err(RecordError::BadSerialRange), "at most 100 000 cards");
    assert_eq!(card::check_range(10, 9), Err(RecordError::BadSerialRange));
    let b = a_batch();
    let on = day("2026-04-10");
    assert_eq!(card::use_card(&b, 1000, case(1), on), Err(RecordError::UnknownSerial(1000)));
    assert_eq!(card::use_card(&b, 1501, case(1), on), Err(RecordError::UnknownSerial(1501)));
    assert_eq!(card::use_card(&b, 1500, case(1), on), Err(RecordError::NotHandedOut(1500)));
    let b = batch_with(&b, card::hand_out(&b, 1491, 1500, day("2026-04-02"), None).unwrap());
    assert_eq!(card::use_card(&b, 1500, case(1), day("2026-03-31")), Err(RecordError::BeforeDelivery));
    let b = batch_with(&b, card::use_card(&b, 1500, case(1), on).unwrap());
    assert_eq!(card::use_card(&b, 1500, case(2), on), Err(RecordError::SerialUsed(1500)));
    assert_eq!(b.case_ids(), vec![case(1)]);
}

#[test]
fn cards_are_handed_out_once_and_not_before_delivery() {
    let b = a_batch();
    assert_eq!(card::hand_out(&b, 1001, 1010, day("2026-03-31"), None), Err(RecordError::BeforeDelivery));
    assert_eq!(card::hand_out(&b, 1490, 1510, day("2026-04-02"), None), Err(RecordError::UnknownSerial(1510)));
    let b = batch_with(&b, card::hand_out(&b, 1001, 1010, day("2026-04-02"), None).unwrap());
    assert_eq!(card::hand_out(&b, 1010, 1020, day("2026-04-03"), None), Err(RecordError::AlreadyHandedOut(1010)));
    let b = batch_with(&b, card::hand_out(&b, 1011, 1020, day("2026-04-03"), None).unwrap());
    assert_eq!(b.cards_out(), 20);
    assert_eq!(card::erase_recipient(&b, 1005).map(|_| ()), Err(RecordError::NoRecipient(1005)), "named no one");
}

fn question(key: &str, kind: QuestionKind, options: &[&str]) -> Question {
    Question {
        key: key.into(),
        text: Title::parse("问题").unwrap(),
        kind,
        options: options.iter().map(|o| Name::parse(o).unwrap()).collect(),
        policy: None,
    }
}

#[test]
fn a_template_is_well_formed_and_an_answer_fits_its_question() {
    use QuestionKind::*;
    let t = vec![
        question("subsidy", SingleChoice, &["已到位", "未到位"]),
        question("channels", MultipleChoice, &["广播", "公示栏"]),
        question("rating", Rating, &[]),
        question("heard", YesNo, &[]),
        question("other", FreeText, &[]),
    ];
    assert_eq!(survey::check_template(&t), Ok(()));
    for (bad, why) in [
        (vec![question("q", SingleChoice, &["一"])], "one option"),
        (vec![question("q", YesNo, &["是", "否"])], "options on a yes/no"),
        (vec![question("q", Rating, &[]), question("q", YesNo, &[])], "a repeated key"),
        (vec![question("Q", Rating, &[])], "an upper-case key"),
        (vec![question("q", SingleChoice, &["一", "一"])], "a repeated option"),
        (Vec::new(), "no question"),
    ] {
        assert!(matches!(survey::check_template(&bad), Err(RecordError::BadTemplate(_))), "{why}");
    }
    let fits = |k: &str, a: Answer| survey::check_answers(&t, &BTreeMap::from([(k.to_owned(), a)])).is_ok();
    let name = |s: &str| Name::parse(s).unwrap();
    assert!(fits("subsidy", Answer::Choice(name("未到位"))));
    assert!(!fits("subsidy", Answer::Choice(name("不知道"))));
    assert!(fits("channels", Answer::Choices(vec![name("广播"), name("公示栏")])));
    assert!(!fits("channels", Answer::Choices(vec![name("广播"), name("广播")])), "twice the same");
    assert!(!fits("channels", Answer::Choices(Vec::new())), "none");
    assert!(fits("rating", Answer::Rating(1)) && fits("rating", Answer::Rating(5)));
    assert!(!fits("rating", Answer::Rating(0)) && !fits("rating", Answer::Rating(6)));
    assert!(!fits("heard", Answer::Rating(1)), "another kind");
    assert!(!fits("nope", Answer::YesNo(true)), "no such question");
}

#[test]
fn the_tally_counts_each_answer_once_per_village_and_each_choice_of_several() {
    use QuestionKind::*;
    let created = survey::Created {
        title: Title::parse("问卷").unwrap(),
        respondent_type: Name::parse("村民").unwrap(),
        surveyed_on: day("2026-05-20"),
        place: Name::parse("村委会").unwrap(),
        surveyor: Name::parse("王").unwrap(),
        campaign: None,
        unit: unit(1),
        questions: vec![question("channels", MultipleChoice, &["广播", "公示栏"]), question("heard", YesNo, &[])],
    };
    let created = survey::create(created).unwrap();
    let s: Survey = given(created.clone());
    let name = |x: &str| Name::parse(x).unwrap();
    let response = |village: u128, answers: Vec<(&str, Answer)>| Response {
        id: Uuid::new_v4(),
        village: unit(village),
        template_version: 1,
        answers: answers.into_iter().map(|(k, a)| (k.to_owned(), a)).collect(),
        case: None,
    };
    let events = survey::record_responses(
        &s,
        vec![
            response(
                2,
                vec![("channels", Answer::Choices(vec![name("广播"), name("公示栏")])), ("heard", Answer::YesNo(true))],
            ),
            response(2, vec![("heard", Answer::YesNo(false))]),
            response(3, vec![("channels", Answer::Choices(vec![name("广播")]))]),
        ],
    )
    .unwrap();
    let mut all: Vec<SurveyEvent> = created;
    all.extend(events);
    let s: Survey = given(all);
    let t = s.tally(1).unwrap();
    // By hand: village 2 answered twice, village 3 once; "channels" was answered once in each,
    // 广播 chosen in both, 公示栏 in village 2 only; "heard" twice in village 2 (yes, no).
    assert_eq!(t.responses, BTreeMap::from([(unit(2), 2), (unit(3), 1)]));
    let ch = &t.questions["channels"];
    assert_eq!(ch[&unit(2)].answered, 1);
    assert_eq!(ch[&unit(2)].counts, BTreeMap::from([("广播".to_owned(), 1), ("公示栏".to_owned(), 1)]));
    assert_eq!(ch[&unit(3)].counts, BTreeMap::from([("广播".to_owned(), 1)]));
    let heard = &t.questions["heard"];
    assert_eq!(heard[&unit(2)].answered, 2);
    assert_eq!(heard[&unit(2)].counts, BTreeMap::from([("yes".to_owned(), 1), ("no".to_owned(), 1)]));
    assert!(!heard.contains_key(&unit(3)));
    assert_eq!(s.response_count(), 3);
}

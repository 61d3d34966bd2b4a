//! The supervision rules (督办) as pure functions: thresholds from a literal table, ids that
//! name a trigger, not a run.
#![allow(missing_docs, clippy::unwrap_used)]

use chrono::{DateTime, Utc};
use domain::records::supervision::{self, Level, Rules, Trigger};
use domain::{CaseId, Stage, UnitId};
use uuid::Uuid;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[test]
fn a_units_card_follows_m_and_2m() {
    let rules = Rules { unit_overdue: 5, ..Rules::default() };
    let unit = UnitId::from_uuid(Uuid::new_v4());
    let now = t("2026-12-02T10:00:00+08:00"); // a Wednesday
    // (overdue cases, the card): more than M = 5 is yellow (重点), more than 2M = 10 red (挂牌).
    let table: [(u32, Option<Level>); 7] = [
        (0, None),
        (5, None),
        (6, Some(Level::Key)),
        (10, Some(Level::Key)),
        (11, Some(Level::Listed)),
        (40, Some(Level::Listed)),
        (1, None),
    ];
    for (n, want) in table {
        assert_eq!(supervision::unit_overdue(unit, n, &rules, now).map(|r| r.level), want, "{n} overdue cases");
    }
    // Raised once a week per level: the same week names the same item, the next week another.
    let wed = supervision::unit_overdue(unit, 6, &rules, now).unwrap();
    let sun = supervision::unit_overdue(unit, 9, &rules, t("2026-12-06T23:00:00+08:00")).unwrap();
    let mon = supervision::unit_overdue(unit, 6, &rules, t("2026-12-07T09:00:00+08:00")).unwrap();
    assert_eq!(wed.id, sun.id);
    assert_ne!(wed.id, mon.id);
    assert!(matches!(wed.trigger, Trigger::UnitOverdue { week, .. } if week.to_string() == "2026-11-30"));
}

#[test]
fn an_items_id_names_its_trigger() {
    let case = CaseId::from_uuid(Uuid::new_v4());
    let due = t("2026-03-03T23:59:59+08:00");
    let a = supervision::overdue(case, None, Stage::SignFor, due);
    assert_eq!(a.id, supervision::overdue(case, None, Stage::SignFor, due).id);
    assert_ne!(a.id, supervision::overdue(case, None, Stage::Overall, due).id);
    // An extended clock that falls due again is a new trigger.
    assert_ne!(a.id, supervision::overdue(case, None, Stage::SignFor, t("2026-04-03T23:59:59+08:00")).id);
    assert_eq!(supervision::overdue(case, None, Stage::Overall, due).level, Level::Key);
    assert_eq!(a.level, Level::General);
    // A second dissatisfied rating, not a first (once per case); each refused return; N duplicates.
    assert!(supervision::repeat_dissatisfied(case, None, 1).is_none());
    assert!(supervision::repeat_dissatisfied(case, None, 2).is_some());
    // One item per case: a third dissatisfied rating is the same matter.
    assert_eq!(
        supervision::repeat_dissatisfied(case, None, 2).unwrap().id,
        supervision::repeat_dissatisfied(case, None, 3).unwrap().id
    );
    assert!(supervision::return_dispute(case, None, 0).is_none());
    assert!(supervision::return_dispute(case, None, 1).is_some());
    let rules = Rules { duplicates: 3, ..Rules::default() };
    assert!(supervision::duplicates(case, None, 2, &rules).is_none());
    assert_eq!(
        supervision::duplicates(case, None, 3, &rules).unwrap().id,
        supervision::duplicates(case, None, 7, &rules).unwrap().id
    );
}

//! Property tests: over any command sequence the state never becomes illegal, and replaying the
//! produced events reproduces the live state exactly.
#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use chrono::Duration;
use domain::*;
use proptest::prelude::*;
use support::*;

fn command() -> impl Strategy<Value = Command> {
    let r = || "[a-z一-龥]{1,8}".prop_map(|s| reason(&s));
    prop_oneof![
        Just(register()),
        (1u128..4).prop_map(assign),
        (1u128..4, 1i64..30).prop_map(|(u, d)| Command::Assign {
            unit: unit(u),
            due_at: Some(now() + Duration::days(d)),
            note: None
        }),
        (r(), proptest::option::of(1u128..4))
            .prop_map(|(reason, u)| Command::Transfer { reason, to_unit: u.map(unit) }),
        (1i64..40, r()).prop_map(|(d, reason)| Command::ExtendDeadline { due_at: now() + Duration::days(d), reason }),
        Just(handle()),
        Just(feedback()),
        prop_oneof![Just(Rating::Satisfied), Just(Rating::BasicallySatisfied), Just(Rating::Dissatisfied)]
            .prop_map(rate),
        r().prop_map(|reason| Command::Reopen { reason }),
        r().prop_map(|reason| Command::Escalate { reason }),
        r().prop_map(|reason| Command::Reject { reason }),
        proptest::option::of("[a-z]{1,5}").prop_map(|n| close(n.as_deref())),
        (90u128..92).prop_map(|n| Command::LinkDuplicate { of: CaseId::from_uuid(uuid::Uuid::from_u128(n)) }),
        r().prop_map(|reason| Command::UnlinkDuplicate { reason }),
        Just(Command::AddNote { text: text("备注") }),
        r().prop_map(|purpose| Command::RevealComplainant { purpose }),
        Just(Command::ErasePersonalData),
    ]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Clerk), Just(Role::Handler), Just(Role::Supervisor)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_command_sequence_reaches_an_illegal_state_and_replay_equals_live_state(
        steps in proptest::collection::vec((command(), role(), 0i64..72), 1..40)
    ) {
        let calendar = WorkingCalendar::default();
        let policy = DeadlinePolicy::default();
        let mut live: Option<Case> = None;
        let mut log = Vec::new();
        let mut t = now();
        for (cmd, role, hours) in steps {
            t += Duration::hours(hours);
            let actor = actor(role);
            let ctx = Context { now: t, actor: &actor, calendar: &calendar, policy: &policy };
            let before = live.clone();
            match decide(live.as_ref(), &cmd, &ctx) {
                Ok(events) => {
                    prop_assert!(!events.is_empty());
                    // A closed case changes only by an explicit reopen (or records a reveal).
                    if before.as_ref().is_some_and(|p| p.status == Status::Closed) {
                        let allowed = matches!(cmd, Command::Reopen { .. } | Command::RevealComplainant { .. } | Command::ErasePersonalData);
                        prop_assert!(allowed, "a closed case changed by {}", cmd.name());
                    }
                    for e in events {
                        // Every event survives its stored form.
                        let stored = CaseEvent::from_stored(e.event_type(), e.schema_version(), e.payload()).unwrap();
                        prop_assert_eq!(&stored, &e);
                        live = Some(evolve(live, case_id(), &e, t).unwrap());
                        log.push((e, t));
                    }
                    let case = live.as_ref().unwrap();
                    prop_assert_eq!(case.check_invariants(), Ok(()));
                    prop_assert_eq!(case.version as usize, log.len());
                }
                Err(_) => prop_assert_eq!(&live, &before),
            }
        }
        let replayed = replay(case_id(), log.iter().map(|(e, t)| (e, *t))).unwrap();
        prop_assert_eq!(replayed, live);
    }
}

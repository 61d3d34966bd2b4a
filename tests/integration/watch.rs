//! The integrity watch: what the service role writes wrongly through `append_events()` (a
//! garbage hash, a ledger row pointing at another unit) is found by the continuous
//! verification, and reported with the case.

use domain::{CaseId, Role};
use infra::watch::{WatchStatus, run_once};
use reqwest::StatusCode;
use serde_json::json;
use tests::app::spawn_app;
use tests::fixtures::{decide_as, new_events, note, now};
use uuid::Uuid;

#[tokio::test]
async fn a_garbage_hash_or_a_foreign_ledger_row_written_by_the_app_role_raises_the_alarm() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let store = infra::EventStore::new(app.db.app_pool());
    let pool = app.db.app_pool();
    let honest = app.register(app.case_body()).await;
    let bad_hash = app.register(app.case_body()).await;
    let bad_row = app.register(app.case_body()).await;
    let r = app.post(&format!("/api/v1/cases/{bad_row}/assign"), &sup, json!({"unit_id": app.dept_a})).await;
    assert_eq!(r.status, StatusCode::OK);

    // A clean log: the watch finds nothing (it reads the feed, which shows an event once every
    // older transaction in the cluster has ended; it is run until it has seen all three).
    let mut status = WatchStatus::default();
    for _ in 0..200 {
        assert_eq!(run_once(&pool, &mut status, 1000).await.unwrap().0, vec![]);
        if status.cases_checked >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(status.cases_checked >= 3, "{status:?}");

    // The app role appends an event with a garbage hash, straight through append_events().
    let client = app.db.app_client().await;
    let loaded = store.load(CaseId::from_uuid(bad_hash)).await.unwrap();
    let case = loaded.case.clone().unwrap();
    let at = now();
    let events = new_events(decide_as(Some(&case), &note("伪造"), Role::Supervisor, at), at, Role::Supervisor);
    let e = &events[0];
    let row = client
        .query_one(
            "SELECT outcome FROM append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, NULL, NULL)",
            &[
                &bad_hash,
                &(case.version as i32),
                &vec![e.event.event_type()],
                &vec![e.event.schema_version() as i16],
                &vec![e.event.payload()],
                &vec![serde_json::to_value(&e.metadata).unwrap()],
                &vec![e.occurred_at],
                &loaded.head_hash().as_slice(),
                &vec![vec![0xAB_u8; 32]],
            ],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "appended", "the database accepts it: the watch is what catches it");

    // And a note whose ledger row claims another unit.
    let loaded = store.load(CaseId::from_uuid(bad_row)).await.unwrap();
    let case = loaded.case.clone().unwrap();
    let events = new_events(decide_as(Some(&case), &note("改了台账"), Role::Supervisor, at), at, Role::Supervisor);
    let mut forged = domain::evolve(Some(case.clone()), case.id, &events[0].event, at).unwrap();
    forged.unit = Some(domain::UnitId::from_uuid(app.dept_b));
    store.append(case.id, case.version, loaded.head_hash(), &events, None, &forged).await.unwrap();

    let mut found = Vec::new();
    for _ in 0..200 {
        found.extend(run_once(&pool, &mut status, 1000).await.unwrap().0);
        if found.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut cases: Vec<Uuid> = found.iter().map(|f| f.case_id).collect();
    cases.sort();
    let mut want = vec![bad_hash, bad_row];
    want.sort();
    assert_eq!(cases, want, "{found:?}");
    assert!(!cases.contains(&honest));
    let hash = found.iter().find(|f| f.case_id == bad_hash).unwrap();
    assert!(hash.problem.contains("version 2"), "{}", hash.problem);
    let row = found.iter().find(|f| f.case_id == bad_row).unwrap();
    assert!(row.problem.contains("ledger row"), "{}", row.problem);
    assert_eq!(status.failures_total, 2);
}

/// `seed-demo --cases N` bulk-loads events with COPY. Its ledger rows once came from a rebuild
/// after the load, so for minutes the watch saw events with no row and raised thousands of false
/// alarms (9 375 in one run), burying the one real forgery made after. Now a bulk-loaded town
/// raises none, and the forgery that follows is what the watch reports.
#[tokio::test]
async fn a_bulk_loaded_town_raises_no_alarm_and_the_forgery_after_it_is_the_one_reported() {
    let db = tests::TestDb::new().await;
    let pool = db.app_pool();
    let reference = infra::reference::ReferenceData::new(pool.clone());
    api::seed::seed_demo(&reference).await.unwrap();
    let vault = infra::vault::Vault::new([42; 32], "test-kek");
    let mut loader = infra::bulk::BulkLoader::connect(&db.owner_settings(), vault.kek_id()).await.unwrap();
    let report = api::seed::generate_cases(&reference, &mut loader, &vault, 300, 7).await.unwrap();
    loader.close().await.unwrap();
    assert_eq!(report.cases, 300);

    let mut status = WatchStatus { cursor: "0".into(), ..WatchStatus::default() };
    loop {
        let (found, caught_up) = run_once(&pool, &mut status, 500).await.unwrap();
        assert_eq!(found, vec![], "a bulk-loaded case raised an alarm");
        if caught_up {
            break;
        }
    }
    assert!(status.cases_checked >= 300, "every loaded case was checked (once per page it appears in)");
    assert_eq!(status.events_checked, report.events);

    // Afterwards the app role appends a note whose ledger row names another unit.
    let forged: Uuid = db
        .owner_client()
        .await
        .query_one("SELECT case_id FROM ledger WHERE status <> 'closed' ORDER BY case_id LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    let store = infra::EventStore::new(pool.clone());
    let loaded = store.load(CaseId::from_uuid(forged)).await.unwrap();
    let case = loaded.case.clone().unwrap();
    let at = now();
    let events = new_events(decide_as(Some(&case), &note("回访前核对"), Role::Supervisor, at), at, Role::Supervisor);
    let mut next = domain::evolve(Some(case.clone()), case.id, &events[0].event, at).unwrap();
    let other = reference.list_units(false).await.unwrap().into_iter().find(|u| Some(u.id) != case.unit).unwrap();
    next.unit = Some(other.id);
    store.append(case.id, case.version, loaded.head_hash(), &events, None, &next).await.unwrap();
    let mut found = Vec::new();
    for _ in 0..200 {
        found.extend(run_once(&pool, &mut status, 500).await.unwrap().0);
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(found.iter().map(|f| f.case_id).collect::<Vec<_>>(), vec![forged], "{status:?}");
    assert_eq!(status.failures_total, 1);
    assert_eq!(status.failures.front().map(|f| f.case_id), Some(forged));
}

/// Events forged while no service ran were never checked: the watch started at the feed's head,
/// and the next checkpoint, signed over the whole log, vouched for them (a fresh reviewer's
/// finding). Now the watch starts where the latest checkpoint ends, and a checkpoint covers
/// only what the watch has checked and is refused while it has found failures.
#[tokio::test]
async fn a_forgery_made_while_no_service_ran_is_found_and_no_checkpoint_vouches_for_it() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let made = app.checkpoint_covering(1).await;
    let covered = made["event_count"].as_i64().unwrap();

    // The app role appends an event with a garbage hash, straight through append_events().
    let store = infra::EventStore::new(app.db.app_pool());
    let loaded = store.load(CaseId::from_uuid(id)).await.unwrap();
    let case = loaded.case.clone().unwrap();
    let at = now();
    let events = new_events(decide_as(Some(&case), &note("离线伪造"), Role::Supervisor, at), at, Role::Supervisor);
    let e = &events[0];
    app.db
        .app_client()
        .await
        .query_one(
            "SELECT outcome FROM append_events($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, NULL, NULL)",
            &[
                &id,
                &(case.version as i32),
                &vec![e.event.event_type()],
                &vec![e.event.schema_version() as i16],
                &vec![e.event.payload()],
                &vec![serde_json::to_value(&e.metadata).unwrap()],
                &vec![e.occurred_at],
                &loaded.head_hash().as_slice(),
                &vec![vec![0xCD_u8; 32]],
            ],
        )
        .await
        .unwrap();

    // A service started now (as after a restart) finds it, from the latest checkpoint on.
    let mut s = tests::app::settings(&app.db, &app.secret);
    s.checkpoints.interval_s = 0;
    let restarted = api::startup::Application::build(s).await.expect("the app builds");
    let address = format!("http://127.0.0.1:{}", restarted.port());
    tokio::spawn(restarted.run_until_stopped());
    let mut found = serde_json::Value::Null;
    for _ in 0..100 {
        let r = app.client.get(format!("{address}/api/v1/integrity/watch")).bearer_auth(&sup).send().await.unwrap();
        found = r.json().await.unwrap();
        if found["failures_total"].as_u64() > Some(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(found["failures_total"], 1, "{found}");
    assert_eq!(found["failures"][0]["case_id"], json!(id), "{found}");
    // And no checkpoint is signed over it, by either service.
    for base in [address.as_str(), app.address.as_str()] {
        let r = app
            .client
            .post(format!("{base}/api/v1/integrity/checkpoints"))
            .bearer_auth(&sup)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CONFLICT, "{base}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["code"], "integrity-alarm", "{body}");
    }
    let latest = app.get("/api/v1/integrity/checkpoints/latest", &sup).await;
    assert_eq!(latest.body["event_count"].as_i64(), Some(covered), "the latest checkpoint is still the honest one");
}

//! The lifecycle a discipline committee must run, through HTTP on a real database: recusal on
//! every read route, sign-for and return, joint handling, honest clocks, follow-up, duplicates
//! and units that stop, and the five inputs the field found failing. Expected values come from
//! the rules (counted by hand), never from the code under test.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tests::app::{TestApp, spawn_app};
use uuid::Uuid;

fn path(id: Uuid, action: &str) -> String {
    format!("/api/v1/cases/{id}/{action}")
}

async fn ok(app: &TestApp, token: &str, id: Uuid, action: &str, body: Value) -> Value {
    let r = app.post(&path(id, action), token, body).await;
    assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.text);
    r.body
}

// ── Input 5 and 回避 on every read route ─────────────────────────────────────────────────

#[tokio::test]
async fn an_accusation_never_reaches_the_accused_unit_by_any_route() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let admin = app.token("admin", None);
    // A clinic under the accused department: also barred.
    let clinic = app.create_unit(&admin, "卫生院分院", "department", Some(app.dept_a)).await;
    let mut body = app.case_body();
    body["accused_unit_id"] = json!(app.dept_a);
    body["title"] = json!("卫生院收红包");
    body["description"] = json!("群众举报卫生院医生收受红包，要求查处。");
    let id = app.register(body).await;

    // Input 5: assigned to the accused unit: refused, and nothing is written.
    let before = app.event_count().await;
    for unit in [app.dept_a, clinic] {
        app.post(&path(id, "assign"), &sup, json!({"unit_id": unit})).await.assert_problem(409, "recusal");
        app.post(&path(id, "assign"), &sup, json!({"unit_id": app.dept_b, "co_unit_ids": [unit]}))
            .await
            .assert_problem(409, "recusal");
    }
    assert_eq!(app.event_count().await, before);
    ok(&app, &sup, id, "assign", json!({"unit_id": app.dept_b})).await;
    app.post(&path(id, "transfer"), &sup, json!({"reason": "改派", "to_unit_id": app.dept_a}))
        .await
        .assert_problem(409, "recusal");
    let b = app.token("handler", Some(app.dept_b));
    ok(&app, &b, id, "return", json!({"reason": "非本单位职责"})).await;
    app.post(&path(id, "return/approve"), &sup, json!({"unit_id": clinic})).await.assert_problem(409, "recusal");

    // The accused unit's handlers see nothing of it, by any route.
    for accused in [app.token("handler", Some(app.dept_a)), app.token("handler", Some(clinic))] {
        app.get(&format!("/api/v1/cases/{id}"), &accused).await.assert_problem(404, "not-found");
        app.get(&path(id, "events"), &accused).await.assert_problem(404, "not-found");
        let reads = [
            "/api/v1/ledger".to_owned(),
            "/api/v1/ledger?q=%E7%BA%A2%E5%8C%85".to_owned(),
            "/api/v1/overdue".to_owned(),
            "/api/v1/events".to_owned(),
            "/api/v1/stats?from=2000-01-01T00:00:00Z&to=2099-01-01T00:00:00Z".to_owned(),
        ];
        for read in &reads {
            let r = app.get(read, &accused).await;
            assert_eq!(r.status, StatusCode::OK, "{read}: {}", r.text);
            assert!(!r.text.contains(&id.to_string()), "{read} shows the case: {}", r.text);
            assert!(!r.text.contains("红包"), "{read} shows its words");
        }
        let stats = app.get(&reads[4], &accused).await;
        assert_eq!(stats.body["total"], 0, "{}", stats.text);
        let csv = app.send(Method::GET, "/api/v1/ledger", Some(&accused), None, &[("Accept", "text/csv")]).await;
        assert_eq!(csv.status, StatusCode::OK);
        assert!(!csv.text.contains("红包"), "the export shows the case");
    }
    // The search does find it for whoever may read it.
    let found = app.get("/api/v1/ledger?q=%E7%BA%A2%E5%8C%85", &sup).await;
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1, "{}", found.text);
}

// ── 签收 / 退单 ───────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn a_unit_signs_then_may_ask_to_return_and_the_dispatcher_decides() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let a = app.token("handler", Some(app.dept_a));
    let id = app.register(app.case_body()).await;
    let v = ok(&app, &clerk, id, "assign", json!({"unit_id": app.dept_a})).await;
    assert_eq!(v["deadline"]["stage"], "sign_for");
    assert_eq!(v["deadline"]["rule"]["limit"], json!({"unit": "working_days", "value": 1}));
    assert!(v["accepted_at"].is_string(), "assigning accepts");
    assert_eq!(v["overall_deadline"]["rule"]["limit"], json!({"unit": "calendar_days", "value": 60}));
    let v = ok(&app, &a, id, "sign", json!({})).await;
    assert_eq!(v["deadline"]["stage"], "handling");
    assert!(v["signed_at"].is_string());
    // A body is optional.
    let r = app.send(Method::POST, &path(id, "sign"), Some(&a), None, &[]).await;
    r.assert_problem(409, "already-signed");

    // Units no longer transfer cases themselves.
    app.post(&path(id, "transfer"), &a, json!({"reason": "不归我管"})).await.assert_problem(403, "forbidden");
    let v = ok(&app, &a, id, "return", json!({"reason": "属于教育办职责"})).await;
    assert_eq!((v["status"].as_str(), v["return_request"].as_str()), (Some("assigned"), Some("属于教育办职责")));
    app.post(&path(id, "return/approve"), &a, json!({})).await.assert_problem(403, "forbidden");
    let refused = ok(&app, &clerk, id, "return/refuse", json!({"reason": "经研判属于卫生院职责"})).await;
    assert_eq!((refused["unit_id"].clone(), refused["return_request"].clone()), (json!(app.dept_a), Value::Null));
    // Refused means the unit handles it: no second request in this assignment.
    app.post(&path(id, "return"), &a, json!({"reason": "再次申请退回"})).await.assert_problem(409, "return-refused");
    // The dispatcher may still re-route it; that is a new assignment, with its own window.
    ok(&app, &clerk, id, "transfer", json!({"reason": "改派", "to_unit_id": app.dept_b})).await;
    ok(&app, &clerk, id, "transfer", json!({"reason": "改回", "to_unit_id": app.dept_a})).await;
    ok(&app, &a, id, "return", json!({"reason": "再次申请退回"})).await;
    let approved = ok(&app, &clerk, id, "return/approve", json!({"unit_id": app.dept_b})).await;
    assert_eq!(approved["unit_id"], json!(app.dept_b));
    assert_eq!(approved["returns"], 1);
    assert_eq!(approved["deadline"]["stage"], "sign_for");
    // The overall clock did not move.
    assert_eq!(approved["overall_deadline"]["due_at"], v["overall_deadline"]["due_at"]);
    // The old unit no longer sees it.
    app.get(&format!("/api/v1/cases/{id}"), &a).await.assert_problem(404, "not-found");
}

// ── 联办 ─────────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn co_units_see_sign_and_contribute_and_the_case_shows_who_has_not() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let id = app.register(app.case_body()).await;
    let v =
        ok(&app, &clerk, id, "assign", json!({"unit_id": app.dept_a, "co_unit_ids": [app.dept_b, app.village]})).await;
    assert_eq!(v["co_units"].as_array().unwrap().len(), 2);
    let b = app.token("handler", Some(app.dept_b));
    assert_eq!(app.get(&format!("/api/v1/cases/{id}"), &b).await.status, StatusCode::OK, "a co-unit sees the case");
    let ledger = app.get("/api/v1/ledger", &b).await;
    assert!(ledger.text.contains(&id.to_string()), "and finds it in its ledger");
    let v = ok(&app, &b, id, "contributions", json!({"text": "教育办已核实相关学生资助情况"})).await;
    let co: Vec<(Value, bool, bool)> = v["co_units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["unit_id"].clone(), c["signed_at"].is_string(), c["contributed_at"].is_string()))
        .collect();
    assert_eq!(co, vec![(json!(app.dept_b), true, true), (json!(app.village), false, false)]);
    app.post(&path(id, "handle"), &b, json!({"outcome": "resolved", "result": "x"}))
        .await
        .assert_problem(409, "not-your-unit");
    let a = app.token("handler", Some(app.dept_a));
    ok(&app, &a, id, "handle", json!({"outcome": "resolved", "result": "牵头单位已办结"})).await;
}

// ── Honest clocks ────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn the_overall_clock_is_not_reset_by_a_transfer_or_a_reopen() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let v = ok(&app, &sup, id, "assign", json!({"unit_id": app.dept_a})).await;
    let overall = v["overall_deadline"]["due_at"].clone();
    let accepted: chrono::DateTime<chrono::Utc> = v["accepted_at"].as_str().unwrap().parse().unwrap();
    // 60 calendar days from the day of acceptance (信访工作条例 art. 32), at 23:59:59 CST.
    let cst = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let due: chrono::DateTime<chrono::Utc> = overall.as_str().unwrap().parse().unwrap();
    assert_eq!(due.with_timezone(&cst).date_naive(), accepted.with_timezone(&cst).date_naive() + chrono::Days::new(60));
    assert_eq!(due.with_timezone(&cst).time(), chrono::NaiveTime::from_hms_opt(23, 59, 59).unwrap());
    ok(&app, &sup, id, "transfer", json!({"reason": "改派", "to_unit_id": app.dept_b})).await;
    ok(&app, &app.token("handler", Some(app.dept_b)), id, "handle", json!({"outcome": "resolved", "result": "已处理"}))
        .await;
    ok(&app, &app.token("handler", Some(app.dept_b)), id, "feedback", json!({"method": "phone", "content": "已告知"}))
        .await;
    let v =
        ok(&app, &sup, id, "satisfaction", json!({"rating": "dissatisfied", "method": "phone", "solved": false})).await;
    assert_eq!(v["round"], 2);
    assert_eq!(v["overall_deadline"]["due_at"], overall, "no reset by a transfer or a reopen");
    assert_eq!(v["overall_deadline"]["state"], "on_track");
}

#[tokio::test]
async fn paused_clocks_are_never_overdue_and_resume_moved() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    // Past due, a case cannot be paused out of the overdue view (a fresh reviewer's finding).
    let mut body = app.case_body();
    body["received_at"] = json!((chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339());
    let late = app.register(body).await;
    app.post(&path(late, "pause"), &clerk, json!({"reason": "等待群众补充材料"}))
        .await
        .assert_problem(409, "pause-overdue");
    let overdue = app.get("/api/v1/ledger?overdue=true", &clerk).await;
    assert!(overdue.text.contains(&late.to_string()), "still overdue");
    // In time, it can; paused, it is neither overdue nor due soon.
    let id = app.register(app.case_body()).await;
    let v = ok(&app, &clerk, id, "pause", json!({"reason": "等待群众补充材料"})).await;
    assert_eq!(v["deadline"]["state"], "paused");
    assert_eq!(v["paused"]["reason"], "等待群众补充材料");
    let overdue = app.get("/api/v1/ledger?overdue=true", &clerk).await;
    assert!(!overdue.text.contains(&id.to_string()), "a paused case is not overdue");
    let watch = app.get("/api/v1/overdue", &clerk).await;
    assert!(!watch.text.contains(&id.to_string()));
    app.post(&path(id, "assign"), &clerk, json!({"unit_id": app.dept_a})).await.assert_problem(409, "clock-paused");
    let before: chrono::DateTime<chrono::Utc> = v["deadline"]["due_at"].as_str().unwrap().parse().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let v = ok(&app, &clerk, id, "resume", json!({})).await;
    let after: chrono::DateTime<chrono::Utc> = v["deadline"]["due_at"].as_str().unwrap().parse().unwrap();
    assert!(after - before >= chrono::Duration::seconds(1), "moved by the pause: {before} → {after}");
    assert!(v["paused"].is_null());
}

#[tokio::test]
async fn a_calendar_loaded_late_recomputes_the_open_deadlines_it_changes_by_an_event() {
    let app = spawn_app().await;
    let admin = app.token("admin", None);
    let sup = app.token("supervisor", None);
    // No year is loaded in a fresh database. Paper intake received Tuesday 2025-12-30 10:00 CST:
    // three working days to assign, on weekdays alone Wed 12-31, Thu 01-01, Fri 01-02, so due
    // 2026-01-02 and flagged. With 2025 and 2026 loaded (2026: 1–3 January off, Sunday 4 January
    // worked, per the State Council notice): Wed 12-31, Sun 01-04, Mon 01-05, so 2026-01-05.
    let mut body = app.case_body();
    body["received_at"] = json!("2025-12-30T02:00:00Z");
    let r = app.post("/api/v1/cases", &app.token("clerk", None), body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id: Uuid = r.body["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(r.body["deadline"]["due_at"], "2026-01-02T15:59:59Z");
    assert_eq!(r.body["deadline"]["calendar_incomplete"], true);
    let flagged = app.get("/api/v1/overdue", &sup).await;
    let row = flagged.body["items"].as_array().unwrap().iter().find(|i| i["case_id"] == json!(id)).cloned().unwrap();
    assert_eq!(row["deadline"]["calendar_incomplete"], true, "the overdue view flags it");

    let cal_2025 = json!({"holidays": [{"date": "2025-01-01", "name": "元旦"}], "makeup_workdays": []});
    let put = app.send(Method::PUT, "/api/v1/calendar/2025", Some(&admin), Some(&cal_2025), &[]).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let v = app.get(&format!("/api/v1/cases/{id}"), &sup).await.body;
    assert_eq!(v["deadline"]["calendar_incomplete"], true, "2026 is still missing");
    assert_eq!(v["deadline"]["due_at"], "2026-01-02T15:59:59Z");
    let cal = json!({
        "holidays": [{"date": "2026-01-01", "name": "元旦"}, {"date": "2026-01-02", "name": "元旦"},
                     {"date": "2026-01-03", "name": "元旦"}],
        "makeup_workdays": [{"date": "2026-01-04", "name": "元旦调休"}]
    });
    let put = app.send(Method::PUT, "/api/v1/calendar/2026", Some(&admin), Some(&cal), &[]).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    // The recount runs in the background, right after the answer.
    let v = deadline_becomes(&app, &sup, id, "2026-01-05T15:59:59Z").await;
    assert_eq!(v["deadline"]["calendar_incomplete"], false);
    let history = app.get(&path(id, "events"), &sup).await.body;
    let last = history["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["event_type"], "case.deadlines_recomputed", "never silently");

    // A correction of a loaded year moves the deadlines it touches too: Monday 2026-01-05 made a
    // holiday moves the due day to Tuesday 2026-01-06.
    let corrected = json!({
        "holidays": [{"date": "2026-01-01", "name": "元旦"}, {"date": "2026-01-02", "name": "元旦"},
                     {"date": "2026-01-03", "name": "元旦"}, {"date": "2026-01-05", "name": "更正"}],
        "makeup_workdays": [{"date": "2026-01-04", "name": "元旦调休"}]
    });
    let put = app.send(Method::PUT, "/api/v1/calendar/2026", Some(&admin), Some(&corrected), &[]).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    deadline_becomes(&app, &sup, id, "2026-01-06T15:59:59Z").await;
    let history = app.get(&path(id, "events"), &sup).await.body;
    let recomputed =
        history["events"].as_array().unwrap().iter().filter(|e| e["event_type"] == "case.deadlines_recomputed").count();
    assert_eq!(recomputed, 2, "one event per change");
}

/// The case view once its stage deadline is `due_at` (the calendar recount runs in the
/// background); panics after 10 s.
async fn deadline_becomes(app: &TestApp, token: &str, id: Uuid, due_at: &str) -> Value {
    let mut v = Value::Null;
    for _ in 0..100 {
        v = app.get(&format!("/api/v1/cases/{id}"), token).await.body;
        if v["deadline"]["due_at"] == due_at {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the deadline never became {due_at}: {v}");
}

// ── 回访 and closure ─────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn a_fed_back_case_waits_for_the_follow_up_and_the_rating_records_who_and_how() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let clerk = app.token("clerk", None);
    let id = app.register(app.case_body()).await;
    ok(&app, &sup, id, "assign", json!({"unit_id": app.dept_a})).await;
    ok(&app, &sup, id, "handle", json!({"outcome": "resolved", "result": "已处理"})).await;
    let v = ok(&app, &sup, id, "feedback", json!({"method": "phone", "content": "已告知"})).await;
    assert_eq!(v["deadline"]["stage"], "follow_up");
    assert_eq!(v["deadline"]["rule"]["limit"], json!({"unit": "working_days", "value": 5}));
    app.post(&path(id, "close"), &clerk, json!({})).await.assert_problem(403, "forbidden");
    app.post(&path(id, "close"), &sup, json!({})).await.assert_problem(409, "follow-up-pending");
    let v = ok(&app, &clerk, id, "follow-up-attempts", json!({"method": "phone", "note": "无人接听"})).await;
    assert_eq!(v["follow_up_attempts"], 1);
    app.post(&path(id, "close"), &sup, json!({})).await.assert_problem(409, "follow-up-pending");
    let v = ok(
        &app,
        &clerk,
        id,
        "satisfaction",
        json!({"rating": "basically_satisfied", "method": "in_person", "solved": false}),
    )
    .await;
    assert_eq!(v["satisfaction"]["method"], "in_person");
    assert_eq!(v["satisfaction"]["solved"], false);
    assert_eq!(v["satisfaction"]["collected_by"], "clerk-");
    ok(&app, &sup, id, "close", json!({})).await;
    // The citizen's answer to "was it solved?" is part of every rating: without it, 422.
    let id = app.register(app.case_body()).await;
    for (action, body) in [
        ("assign", json!({"unit_id": app.dept_a})),
        ("handle", json!({"outcome": "resolved", "result": "已处理"})),
        ("feedback", json!({"method": "phone", "content": "电话告知处理结果"})),
    ] {
        let token = if action == "assign" { sup.clone() } else { app.token("handler", Some(app.dept_a)) };
        ok(&app, &token, id, action, body).await;
    }
    let r = app.post(&path(id, "satisfaction"), &clerk, json!({"rating": "satisfied", "method": "phone"})).await;
    r.assert_problem(422, "validation");
    assert!(r.text.contains("solved"), "{}", r.text);
}

#[tokio::test]
async fn a_second_dissatisfied_rating_puts_the_case_under_supervision() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    ok(&app, &sup, id, "assign", json!({"unit_id": app.dept_a})).await;
    for round in 1..=2 {
        ok(&app, &sup, id, "handle", json!({"outcome": "explained", "result": "已解释"})).await;
        ok(&app, &sup, id, "feedback", json!({"method": "phone", "content": "已告知"})).await;
        let v =
            ok(&app, &sup, id, "satisfaction", json!({"rating": "dissatisfied", "method": "phone", "solved": false}))
                .await;
        assert_eq!(v["escalated"], round == 2, "round {round}");
    }
}

// ── Input 2: rework never goes to a deactivated unit ────────────────────────────────────────

#[tokio::test]
async fn rework_after_the_unit_was_deactivated_goes_back_to_dispatch() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let admin = app.token("admin", None);
    let unit = app.create_unit(&admin, "临时工作组", "department", Some(app.town)).await;
    let id = app.register(app.case_body()).await;
    ok(&app, &sup, id, "assign", json!({"unit_id": unit})).await;
    ok(&app, &sup, id, "handle", json!({"outcome": "resolved", "result": "已处理"})).await;
    ok(&app, &sup, id, "feedback", json!({"method": "phone", "content": "已告知"})).await;
    let r = app.post(&format!("/api/v1/units/{unit}/deactivate"), &admin, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v =
        ok(&app, &sup, id, "satisfaction", json!({"rating": "dissatisfied", "method": "phone", "solved": false})).await;
    assert_eq!((v["status"].as_str(), v["unit_id"].clone()), (Some("received"), Value::Null));
    assert_eq!(v["deadline"]["stage"], "assignment");
}

#[tokio::test]
async fn a_unit_with_open_cases_is_deactivated_only_with_a_unit_to_reroute_them_to() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let admin = app.token("admin", None);
    let unit = app.create_unit(&admin, "撤并村", "village", Some(app.town)).await;
    let id = app.register(app.case_body()).await;
    ok(&app, &sup, id, "assign", json!({"unit_id": unit})).await;
    // A co-unit role counts too.
    let joint = app.register(app.case_body()).await;
    ok(&app, &sup, joint, "assign", json!({"unit_id": app.dept_a, "co_unit_ids": [unit]})).await;
    // And an accusation against the target unit: re-routing there would breach recusal.
    let mut body = app.case_body();
    body["accused_unit_id"] = json!(app.village);
    let accusation = app.register(body).await;
    ok(&app, &sup, accusation, "assign", json!({"unit_id": unit})).await;
    let r = app.post(&format!("/api/v1/units/{unit}/deactivate"), &admin, json!({})).await;
    r.assert_problem(409, "unit-holds-cases");
    let mut listed: Vec<String> =
        r.body["cases"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    listed.sort();
    let mut want = vec![id.to_string(), joint.to_string(), accusation.to_string()];
    want.sort();
    assert_eq!(listed, want);
    // A recusal anywhere refuses the whole re-route before anything is written.
    let before = app.event_count().await;
    let r = app.post(&format!("/api/v1/units/{unit}/deactivate"), &admin, json!({"reroute_to": app.village})).await;
    r.assert_problem(409, "recusal");
    assert_eq!(app.event_count().await, before, "nothing moved");
    assert_eq!(app.get(&format!("/api/v1/units/{unit}"), &admin).await.body["active"], true);
    ok(&app, &sup, accusation, "transfer", json!({"reason": "改派", "to_unit_id": app.dept_a})).await;
    let r = app.post(&format!("/api/v1/units/{unit}/deactivate"), &admin, json!({"reroute_to": app.village})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let v = app.get(&format!("/api/v1/cases/{id}"), &sup).await.body;
    assert_eq!(v["unit_id"], json!(app.village));
    let v = app.get(&format!("/api/v1/cases/{joint}"), &sup).await.body;
    assert_eq!(v["co_units"][0]["unit_id"], json!(app.village), "the co-unit role moves too");
    // Tokens naming the deactivated unit, or no unit at all, are refused.
    let r = app.get("/api/v1/ledger", &app.token("handler", Some(Uuid::new_v4()))).await;
    r.assert_problem(401, "unauthorized");
    let r = app.get("/api/v1/ledger", &app.token("handler", Some(unit))).await;
    r.assert_problem(401, "unauthorized");
    // Nothing is routed there any more.
    let other = app.register(app.case_body()).await;
    app.post(&path(other, "assign"), &sup, json!({"unit_id": unit})).await.assert_problem(422, "unknown-reference");
}

// ── Inputs 1 and 4: duplicates ────────────────────────────────────────────────────────────

#[tokio::test]
async fn two_clerks_linking_x_to_y_and_y_to_x_at_once_never_both_succeed() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let mut codes: std::collections::BTreeMap<String, usize> = Default::default();
    for _ in 0..20 {
        let x = app.register(app.case_body()).await;
        let y = app.register(app.case_body()).await;
        let (px, py) = (path(x, "link-duplicate"), path(y, "link-duplicate"));
        let (a, b) = tokio::join!(app.post(&px, &clerk, json!({"of": y})), app.post(&py, &clerk, json!({"of": x})),);
        let won = [&a, &b].iter().filter(|r| r.status == StatusCode::OK).count();
        assert_eq!(won, 1, "exactly one link: {} / {}", a.text, b.text);
        let lost = if a.status == StatusCode::OK { &b } else { &a };
        assert_eq!(lost.status, StatusCode::CONFLICT, "{}", lost.text);
        assert!(matches!(lost.body["code"].as_str(), Some("target-is-duplicate" | "has-duplicates")), "{}", lost.text);
        *codes.entry(lost.body["code"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
    }
    println!("race: 20 pairs of links X→Y and Y→X sent at once: 20 × one applied and one 409 ({codes:?}), 0 × both");
}

#[tokio::test]
async fn a_linked_duplicate_is_never_overdue_and_answers_its_own_citizen() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let sup = app.token("supervisor", None);
    let master = app.register(app.case_body()).await;
    let mut old = app.case_body();
    old["received_at"] = json!((chrono::Utc::now() - chrono::Duration::days(20)).to_rfc3339());
    let dup = app.register(old).await;
    assert!(app.get("/api/v1/ledger?overdue=true", &clerk).await.text.contains(&dup.to_string()));
    ok(&app, &clerk, dup, "link-duplicate", json!({"of": master})).await;
    assert!(!app.get("/api/v1/ledger?overdue=true", &clerk).await.text.contains(&dup.to_string()));
    assert!(!app.get("/api/v1/overdue", &clerk).await.text.contains(&dup.to_string()));
    app.post(&path(dup, "close"), &sup, json!({})).await.assert_problem(409, "closed-before-feedback");
    ok(&app, &sup, dup, "feedback", json!({"method": "sms", "content": "您反映的问题与同村群众反映的合并办理"})).await;
    let v = ok(&app, &sup, dup, "close", json!({})).await;
    assert_eq!(v["status"], "closed");
}

// ── Input 3: search finds what a person sees ─────────────────────────────────────────────

#[tokio::test]
async fn search_finds_single_characters_partial_words_and_both_widths() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let mut body = app.case_body();
    body["title"] = json!("自来水停水三天");
    body["description"] = json!("自来水停水三天，村民用水困难。ＷｉＦｉ信号弱，编号ABC-12345。");
    let id = app.register(body).await;
    let other = app.register(app.case_body()).await;
    // Chinese and letters no receipt code holds (Crockford base 32 has no I, L, O or U): only the
    // case. Other Latin letters and digits may also occur in the other case's receipt code, which
    // is searchable too: the case is among the hits.
    for (q, only) in [
        ("水", true),
        ("来水", true),
        ("停水三", true),
        ("村民用", true),
        ("wifi", true),
        ("ＷＩＦＩ", true),
        ("Wi", true),
        ("fi", true),
        ("abc", false),
        ("bc", false),
        ("１２３", false),
        ("12345", false),
        ("345", false),
        ("4", false),
    ] {
        let url = format!("/api/v1/ledger?q={}", urlencode(q));
        let r = app.get(&url, &clerk).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.text);
        let ids: Vec<&str> =
            r.body["items"].as_array().unwrap().iter().map(|i| i["case_id"].as_str().unwrap()).collect();
        assert!(ids.contains(&id.to_string().as_str()), "q={q} finds the case: {ids:?}");
        assert!(!(ids.contains(&other.to_string().as_str()) && only), "q={q} finds only the case");
    }
    let none = app.get(&format!("/api/v1/ledger?q={}", urlencode("电费")), &clerk).await;
    assert_eq!(none.body["items"].as_array().unwrap().len(), 0);
}

/// The case ids of the ledger's first page for a query string.
async fn ledger_ids(app: &TestApp, token: &str, query: String) -> Vec<String> {
    let r = app.get(&format!("/api/v1/ledger?{query}"), token).await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
    r.body["items"].as_array().unwrap().iter().map(|i| i["case_id"].as_str().unwrap().to_owned()).collect()
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

// ── 归口, 受理 at the counter, 延期 through the unit ───────────────────────────────────────

#[tokio::test]
async fn routing_rules_propose_the_unit_and_an_assignment_without_one_applies_it_with_its_tier() {
    let app = spawn_app().await;
    let admin = app.token("admin", None);
    let clerk = app.token("clerk", None);
    let cat = app.post("/api/v1/categories", &admin, json!({"code": "subsidy.farming", "name": "惠农补贴"})).await;
    let cat: Uuid = cat.body["id"].as_str().unwrap().parse().unwrap();
    let wide = app
        .send(
            Method::PUT,
            "/api/v1/routing-rules",
            Some(&admin),
            Some(&json!({"category_id": cat, "unit_id": app.dept_a})),
            &[],
        )
        .await;
    assert_eq!((wide.status, wide.body["tier"].as_str()), (StatusCode::OK, Some("town")), "{}", wide.text);
    let village = app
        .send(
            Method::PUT,
            "/api/v1/routing-rules",
            Some(&admin),
            Some(&json!({"category_id": cat, "village_id": app.village, "unit_id": app.village})),
            &[],
        )
        .await;
    assert_eq!((village.status, village.body["tier"].as_str()), (StatusCode::OK, Some("village")), "{}", village.text);
    app.send(
        Method::PUT,
        "/api/v1/routing-rules",
        Some(&clerk),
        Some(&json!({"category_id": cat, "unit_id": app.dept_a})),
        &[],
    )
    .await
    .assert_problem(403, "forbidden");

    // From the village: the village's rule; from elsewhere: the category-wide rule.
    let mut body = app.case_body();
    body["category_id"] = json!(cat);
    let r = app.post("/api/v1/cases", &clerk, body.clone()).await;
    assert_eq!(r.body["proposed_route"], json!({"unit_id": app.village, "tier": "village", "source": "village_rule"}));
    let id: Uuid = r.body["id"].as_str().unwrap().parse().unwrap();
    body["village_id"] = Value::Null;
    let r = app.post("/api/v1/cases", &clerk, body).await;
    assert_eq!(r.body["proposed_route"]["unit_id"], json!(app.dept_a));
    assert_eq!(r.body["proposed_route"]["source"], "category_rule");

    let v = ok(&app, &clerk, id, "assign", json!({})).await;
    assert_eq!((v["unit_id"].clone(), v["tier"].as_str()), (json!(app.village), Some("village")));
    assert!(v["proposed_route"].is_null());
    let history = app.get(&path(id, "events"), &clerk).await.body;
    let assigned = history["events"].as_array().unwrap().iter().find(|e| e["event_type"] == "case.assigned").cloned();
    assert_eq!(assigned.unwrap()["payload"]["tier"], "village");

    // Without a category there is no rule: the unit must be named.
    let bare = app.register(app.case_body()).await;
    let r = app.post(&path(bare, "assign"), &clerk, json!({})).await;
    r.assert_problem(422, "validation");
    assert_eq!(r.body["errors"][0]["field"], "unit_id");
}

#[tokio::test]
async fn a_clerk_registers_accepts_and_acknowledges_at_the_counter_in_one_request() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let mut body = app.case_body();
    body["accept"] = json!(true);
    body["notice"] = json!({"kind": "acknowledgement", "method": "in_person", "content": "当场受理并告知受理编号", "receipt_code_given": true});
    let r = app.post("/api/v1/cases", &clerk, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["version"], 3, "received, accepted, citizen_notified in one append");
    assert!(r.body["accepted_at"].is_string() && r.body["acknowledged_at"].is_string());
    assert!(r.body["acknowledgement_deadline"].is_null(), "nothing more is owed");
    assert_eq!(r.body["overall_deadline"]["rule"]["limit"], json!({"unit": "calendar_days", "value": 60}));
    // Without the notice, an identified citizen is owed one within 15 calendar days.
    let r = app.post("/api/v1/cases", &clerk, app.case_body()).await;
    assert_eq!(r.body["acknowledgement_deadline"]["rule"]["limit"], json!({"unit": "calendar_days", "value": 15}));
    // An accusation from an identified complainant: 15 working days.
    let mut accusation = app.case_body();
    accusation["accused_unit_id"] = json!(app.dept_a);
    let r = app.post("/api/v1/cases", &clerk, accusation).await;
    assert_eq!(r.body["acknowledgement_deadline"]["rule"]["limit"], json!({"unit": "working_days", "value": 15}));
    // Not accepted: a documented code, and the body the citizen is referred to where it applies.
    let id: Uuid = r.body["id"].as_str().unwrap().parse().unwrap();
    let no =
        app.post(&path(id, "reject"), &clerk, json!({"reason_code": "legal_channel", "reason": "属劳动争议"})).await;
    no.assert_problem(422, "referral-required");
    let v = ok(
        &app,
        &clerk,
        id,
        "reject",
        json!({"reason_code": "legal_channel", "reason": "属劳动争议", "referred_to": "镇劳动争议调解委员会"}),
    )
    .await;
    assert_eq!(v["rejection_code"], "legal_channel");
}

#[tokio::test]
async fn the_unit_asks_for_an_extension_a_supervisor_decides_and_the_citizen_is_told() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let a = app.token("handler", Some(app.dept_a));
    let id = app.register(app.case_body()).await;
    ok(&app, &sup, id, "assign", json!({"unit_id": app.dept_a})).await;
    let v = ok(&app, &a, id, "sign", json!({})).await;
    let due: chrono::DateTime<chrono::Utc> = v["deadline"]["due_at"].as_str().unwrap().parse().unwrap();
    let overall: chrono::DateTime<chrono::Utc> = v["overall_deadline"]["due_at"].as_str().unwrap().parse().unwrap();
    let ask = json!({"due_at": (due + chrono::Duration::days(10)).to_rfc3339(), "reason": "需现场勘查"});
    app.post(
        &path(id, "extension"),
        &a,
        json!({"due_at": (due + chrono::Duration::days(31)).to_rfc3339(), "reason": "x"}),
    )
    .await
    .assert_problem(422, "extension-too-long");
    let v = ok(&app, &a, id, "extension", ask).await;
    assert_eq!(v["extension_request"]["reason"], "需现场勘查");
    app.post(&path(id, "extension/approve"), &a, json!({})).await.assert_problem(403, "forbidden");
    let v = ok(&app, &sup, id, "extension/approve", json!({})).await;
    let new_due: chrono::DateTime<chrono::Utc> = v["deadline"]["due_at"].as_str().unwrap().parse().unwrap();
    let new_overall: chrono::DateTime<chrono::Utc> = v["overall_deadline"]["due_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(new_due - due, chrono::Duration::days(10));
    assert_eq!(new_overall - overall, chrono::Duration::days(10), "the overall clock moves with it");
    let v = ok(
        &app,
        &a,
        id,
        "notices",
        json!({"kind": "extension", "method": "phone", "content": "因需现场勘查，办理期限延长十日"}),
    )
    .await;
    let history = app.get(&path(id, "events"), &sup).await.body;
    let last = history["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["event_type"].as_str(), last["payload"]["kind"].as_str()),
        (Some("case.citizen_notified"), Some("extension"))
    );
    assert_eq!(v["extensions_this_round"], 1);
    app.post(
        &path(id, "extension"),
        &a,
        json!({"due_at": (new_due + chrono::Duration::days(5)).to_rfc3339(), "reason": "再延"}),
    )
    .await
    .assert_problem(409, "extension-limit-reached");
}

#[tokio::test]
async fn a_merge_never_crosses_a_recusal() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    // P's own case, handled by P.
    let ps_case = app.register(app.case_body()).await;
    ok(&app, &sup, ps_case, "assign", json!({"unit_id": app.dept_a})).await;
    // An accusation against P.
    let mut body = app.case_body();
    body["accused_unit_id"] = json!(app.dept_a);
    let accusation = app.register(body).await;
    app.post(&path(accusation, "link-duplicate"), &sup, json!({"of": ps_case})).await.assert_problem(409, "recusal");
    app.post(&path(ps_case, "link-duplicate"), &sup, json!({"of": accusation})).await.assert_problem(409, "recusal");
    // A deactivated parent takes no new units.
    let admin = app.token("admin", None);
    let old = app.create_unit(&admin, "旧站", "department", Some(app.town)).await;
    assert_eq!(app.post(&format!("/api/v1/units/{old}/deactivate"), &admin, json!({})).await.status, StatusCode::OK);
    app.post("/api/v1/units", &admin, json!({"name": "新分站", "kind": "department", "parent_id": old}))
        .await
        .assert_problem(422, "unknown-reference");
}

#[tokio::test]
async fn an_assignment_that_raced_a_deactivation_is_returned_to_dispatch() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let admin = app.token("admin", None);
    let unit = app.create_unit(&admin, "撤销中", "department", Some(app.town)).await;
    let cases = [app.register(app.case_body()).await, app.register(app.case_body()).await];
    let (p0, p1, pd) = (path(cases[0], "assign"), path(cases[1], "assign"), format!("/api/v1/units/{unit}/deactivate"));
    let (_, _, mut d) = tokio::join!(
        app.post(&p0, &sup, json!({"unit_id": unit})),
        app.post(&p1, &sup, json!({"unit_id": unit})),
        app.post(&pd, &admin, json!({})),
    );
    // Refused because an assignment got in first: those cases are listed; re-routed, the unit goes.
    if d.status != StatusCode::OK {
        d.assert_problem(409, "unit-holds-cases");
        d = app.post(&pd, &admin, json!({"reroute_to": app.dept_a})).await;
    }
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    // Whatever the interleaving, no open case is left with the deactivated unit.
    for c in cases {
        let v = app.get(&format!("/api/v1/cases/{c}"), &sup).await.body;
        assert_ne!(v["unit_id"], json!(unit), "{v}");
    }
}

#[tokio::test]
async fn an_assignment_names_at_most_ten_co_units() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let admin = app.token("admin", None);
    let mut units = Vec::new();
    for i in 0..11 {
        units.push(app.create_unit(&admin, &format!("联办单位{i}"), "department", Some(app.town)).await);
    }
    let id = app.register(app.case_body()).await;
    let r = app.post(&path(id, "assign"), &clerk, json!({"unit_id": app.dept_a, "co_unit_ids": units})).await;
    r.assert_problem(422, "validation");
    assert_eq!(r.body["errors"][0]["field"], "co_unit_ids");
    let v = ok(&app, &clerk, id, "assign", json!({"unit_id": app.dept_a, "co_unit_ids": units[..10]})).await;
    assert_eq!(v["co_units"].as_array().unwrap().len(), 10);
}

/// Writes a case's history as if it had happened `days_ago`: each command decided at that time
/// (by a supervisor of no unit, or a handler of `unit` for the unit's steps) and appended through
/// the store with its ledger row, exactly as the service would have.
/// The domain's plain assignment to `unit`, for histories written in the past.
fn assign_to(unit: Uuid) -> domain::Command {
    domain::Command::Assign {
        unit: domain::UnitId::from_uuid(unit),
        co_units: vec![],
        due_at: None,
        note: None,
        tier: None,
    }
}

async fn history_in_the_past(app: &TestApp, days_ago: i64, unit: Uuid, steps: &[domain::Command]) -> Uuid {
    use domain::*;
    let store = infra::EventStore::new(app.db.app_pool());
    let at = domain::truncate_to_micros(chrono::Utc::now() - chrono::Duration::days(days_ago));
    let id = CaseId::from_uuid(Uuid::new_v4());
    let reg = tests::fixtures::registration(id, at);
    let mut state: Option<Case> = None;
    let mut head = infra::hash::GENESIS;
    let calendar = WorkingCalendar::default();
    let policy = DeadlinePolicy::default();
    for cmd in std::iter::once(Command::Register(Box::new(reg))).chain(steps.iter().cloned()) {
        let actor = Actor {
            id: ActorId::parse("past-actor").unwrap(),
            role: Role::Supervisor,
            unit: matches!(cmd, Command::SignFor).then(|| UnitId::from_uuid(unit)),
        };
        let actor = if matches!(cmd, Command::SignFor) { Actor { role: Role::Handler, ..actor } } else { actor };
        let ctx = Context {
            now: at,
            actor: &actor,
            calendar: &calendar,
            policy: &policy,
            units: &FlatUnits,
            linked_accused: &[],
        };
        let events = decide(state.as_ref(), &cmd, &ctx).unwrap();
        let new = tests::fixtures::new_events(events, at, Role::Supervisor);
        let version = state.as_ref().map_or(0, |c| c.version);
        let mut next = state.clone();
        for e in &new {
            next = Some(evolve(next, id, &e.event, at).unwrap());
        }
        store.append(id, version, head, &new, None, next.as_ref().unwrap()).await.unwrap();
        head = store.load(id).await.unwrap().head_hash();
        state = next;
    }
    id.as_uuid()
}

#[tokio::test]
async fn the_return_window_closes_five_working_days_after_assignment() {
    let app = spawn_app().await;
    let a = app.token("handler", Some(app.dept_a));
    let assign = assign_to(app.dept_a);
    // Assigned ten calendar days ago: at least six working days have passed (no calendar loaded).
    let old = history_in_the_past(&app, 10, app.dept_a, &[assign.clone(), domain::Command::SignFor]).await;
    app.post(&path(old, "return"), &a, json!({"reason": "非本单位职责"}))
        .await
        .assert_problem(409, "return-window-closed");
    // Assigned a day ago: inside the window.
    let fresh = history_in_the_past(&app, 1, app.dept_a, &[assign, domain::Command::SignFor]).await;
    let v = ok(&app, &a, fresh, "return", json!({"reason": "非本单位职责"})).await;
    assert_eq!(v["return_request"], "非本单位职责");
}

/// A fresh reviewer's finding: a return waiting ten days for the dispatcher showed the unit's
/// sign-for as 5 working days late, and `/overdue` booked it to the unit, though the unit could
/// neither sign nor handle meanwhile. Now the unit's clock stands still while the return waits,
/// and a refusal gives the unit back the time it had left.
#[tokio::test]
async fn a_return_waiting_for_the_dispatcher_charges_the_unit_nothing() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let assign = assign_to(app.dept_a);
    let ask = domain::Command::RequestReturn { reason: domain::Reason::parse("非本单位职责").unwrap() };
    // Assigned and returned ten calendar days ago; the sign-for limit is 1 working day.
    let id = history_in_the_past(&app, 10, app.dept_a, &[assign, ask]).await;
    let v = app.get(&format!("/api/v1/cases/{id}"), &clerk).await.body;
    assert_eq!(
        (
            v["deadline"]["stage"].as_str(),
            v["deadline"]["state"].as_str(),
            v["deadline"]["working_days_overdue"].as_u64()
        ),
        (Some("sign_for"), Some("stopped"), Some(0)),
        "{v}"
    );
    let overdue = app.get("/api/v1/overdue", &clerk).await.body;
    let booked: Vec<&Value> =
        overdue["by_unit"].as_array().unwrap().iter().filter(|c| c["unit_id"] == json!(app.dept_a)).collect();
    assert!(booked.is_empty(), "nothing is booked to the unit: {booked:?}");
    let late = app.get("/api/v1/ledger?overdue=true", &clerk).await.body;
    assert_eq!(late["items"].as_array().unwrap().len(), 0, "nothing is overdue: {late}");

    let v = ok(&app, &clerk, id, "return/refuse", json!({"reason": "属于本单位职责"})).await;
    assert_eq!(v["deadline"]["stage"], "sign_for", "{v}");
    assert_ne!(v["deadline"]["state"], "overdue", "{v}");
    let due: chrono::DateTime<chrono::Utc> = v["deadline"]["due_at"].as_str().unwrap().parse().unwrap();
    assert!(due > chrono::Utc::now(), "the ten days waited are credited: due {due}");
}

#[tokio::test]
async fn a_case_closes_without_a_rating_once_the_follow_up_window_lapsed_with_attempts() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let sup = app.token("supervisor", None);
    let text = |s: &str| domain::Text::parse(s).unwrap();
    let steps = [
        assign_to(app.dept_a),
        domain::Command::Handle { outcome: domain::Outcome::Resolved, result: text("已修复路灯") },
        domain::Command::FeedBack { method: domain::FeedbackMethod::Phone, content: text("电话告知") },
    ];
    // Fed back ten calendar days ago: the five-working-day follow-up window has lapsed.
    let lapsed = history_in_the_past(&app, 10, app.dept_a, &steps).await;
    let v = app.get(&format!("/api/v1/cases/{lapsed}"), &sup).await.body;
    assert_eq!(
        (v["deadline"]["stage"].as_str(), v["deadline"]["state"].as_str()),
        (Some("follow_up"), Some("overdue"))
    );
    // Lapsed, but no attempt on record: not a follow-up.
    app.post(&path(lapsed, "close"), &sup, json!({})).await.assert_problem(409, "follow-up-pending");
    ok(&app, &clerk, lapsed, "follow-up-attempts", json!({"method": "phone", "note": "三次拨打无人接听"})).await;
    let v = ok(&app, &sup, lapsed, "close", json!({})).await;
    assert_eq!(v["status"], "closed");
    let history = app.get(&path(lapsed, "events"), &sup).await.body;
    let closed = history["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(closed["payload"]["follow_up_lapsed"], true);
    // Fed back a day ago: the window is open; attempts alone do not close it.
    let open = history_in_the_past(&app, 1, app.dept_a, &steps).await;
    ok(&app, &clerk, open, "follow-up-attempts", json!({"method": "phone"})).await;
    app.post(&path(open, "close"), &sup, json!({})).await.assert_problem(409, "follow-up-pending");
}

#[tokio::test]
async fn search_finds_the_receipt_code_the_handling_result_and_the_reply() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let r = app.post("/api/v1/cases", &app.token("clerk", None), app.case_body()).await;
    let id: Uuid = r.body["id"].as_str().unwrap().parse().unwrap();
    let code = r.body["receipt_code"].as_str().unwrap().to_owned();
    ok(&app, &sup, id, "assign", json!({"unit_id": app.dept_a})).await;
    ok(&app, &sup, id, "handle", json!({"outcome": "resolved", "result": "水管已修复"})).await;
    ok(&app, &sup, id, "feedback", json!({"method": "phone", "content": "已电话告知维修完毕"})).await;
    let find = |q: String| ledger_ids(&app, &sup, q);
    let suffix = code.rsplit('-').next().unwrap().to_owned();
    for q in [urlencode(&code), urlencode(&suffix), urlencode("水管"), urlencode("维修完毕")] {
        assert_eq!(find(format!("q={q}")).await, vec![id.to_string()], "q={q}");
    }
    assert_eq!(find(format!("receipt_code={}", code.to_lowercase())).await, vec![id.to_string()]);
    app.get("/api/v1/ledger?receipt_code=HY-1", &sup).await.assert_problem(400, "invalid-query");
}

/// A fresh reviewer's finding: search saw only this round's result and reply, so a word a
/// reader saw in a contribution, a rating's comment, an earlier round, a note or a rejection
/// found nothing, nor did a part of a long Latin run past its 64th character. The old code
/// found none of the seven queries below.
#[tokio::test]
async fn search_finds_every_text_the_history_shows_in_every_round() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let b = app.token("handler", Some(app.dept_b));
    let id = app.register(app.case_body()).await;
    ok(&app, &sup, id, "assign", json!({"unit_id": app.dept_a, "co_unit_ids": [app.dept_b]})).await;
    ok(&app, &b, id, "contributions", json!({"text": "教育办核实助学金发放"})).await;
    ok(&app, &sup, id, "handle", json!({"outcome": "resolved", "result": "水管已修复"})).await;
    ok(&app, &sup, id, "feedback", json!({"method": "phone", "content": "已电话告知维修完毕"})).await;
    let v = ok(
        &app,
        &sup,
        id,
        "satisfaction",
        json!({"rating": "dissatisfied", "method": "phone", "solved": false, "comment": "修好又坏了"}),
    )
    .await;
    assert_eq!(v["round"], 2, "reopened: this round has no result or reply yet");
    let serial = format!("设备编号{}TAIL7788", "A".repeat(70));
    ok(&app, &sup, id, "notes", json!({"text": serial})).await;
    let rejected = app.register(app.case_body()).await;
    ok(&app, &sup, rejected, "reject", json!({"reason_code": "insufficient_facts", "reason": "不属于本镇管辖范围"}))
        .await;

    let find = |q: &'static str| ledger_ids(&app, &sup, format!("q={}", urlencode(q)));
    for q in ["助学金", "水管", "维修完毕", "又坏", "设备编号", "tail7788", "AAAAtail"] {
        assert_eq!(find(q).await, vec![id.to_string()], "q={q}");
    }
    assert_eq!(find("管辖").await, vec![rejected.to_string()], "q=管辖");
}

#[tokio::test]
async fn a_master_is_never_handed_to_a_unit_its_duplicates_accuse() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let master = app.register(app.case_body()).await;
    ok(&app, &sup, master, "assign", json!({"unit_id": app.dept_b})).await;
    let mut body = app.case_body();
    body["accused_unit_id"] = json!(app.dept_a);
    let accusation = app.register(body).await;
    ok(&app, &sup, accusation, "link-duplicate", json!({"of": master})).await;
    app.post(&path(master, "transfer"), &sup, json!({"reason": "改派", "to_unit_id": app.dept_a}))
        .await
        .assert_problem(409, "recusal");
    let other = app.register(app.case_body()).await;
    let mut body = app.case_body();
    body["accused_unit_id"] = json!(app.dept_a);
    let second = app.register(body).await;
    ok(&app, &sup, second, "link-duplicate", json!({"of": other})).await;
    app.post(&path(other, "assign"), &sup, json!({"unit_id": app.dept_b, "co_unit_ids": [app.dept_a]}))
        .await
        .assert_problem(409, "recusal");
}

#[tokio::test]
async fn a_pending_return_holds_the_case_until_the_dispatcher_decides() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let a = app.token("handler", Some(app.dept_a));
    let id = app.register(app.case_body()).await;
    ok(&app, &clerk, id, "assign", json!({"unit_id": app.dept_a})).await;
    ok(&app, &a, id, "return", json!({"reason": "非本单位职责"})).await;
    app.post(&path(id, "sign"), &a, json!({})).await.assert_problem(409, "return-pending");
    app.post(&path(id, "handle"), &a, json!({"outcome": "resolved", "result": "x"}))
        .await
        .assert_problem(409, "return-pending");
    // A non-acceptance notice settles the intake notice like an acknowledgement does.
    let rejected = app.register(app.case_body()).await;
    ok(&app, &clerk, rejected, "reject", json!({"reason_code": "insufficient_facts", "reason": "无具体事实"})).await;
    ok(
        &app,
        &clerk,
        rejected,
        "notices",
        json!({"kind": "non_acceptance", "method": "letter", "content": "告知不予受理及理由"}),
    )
    .await;
    ok(&app, &app.token("supervisor", None), rejected, "close", json!({})).await;
}

/// Inputs of a review: an acknowledgement recorded on a case nobody accepted stopped its
/// acknowledgement clock; an accepted case could be told it was not accepted. The notice must
/// fit the decision, at the counter and afterwards, and a refused one writes nothing.
#[tokio::test]
async fn a_notice_that_does_not_fit_the_decision_is_refused_and_the_clock_runs_on() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let ack = json!({"kind": "acknowledgement", "method": "sms", "content": "x"});
    let id = app.register(app.case_body()).await;
    let before = app.event_count().await;
    app.post(&format!("/api/v1/cases/{id}/notices"), &clerk, ack.clone())
        .await
        .assert_problem(409, "notice-does-not-fit-decision");
    assert_eq!(app.event_count().await, before, "nothing written");
    let view = app.get(&format!("/api/v1/cases/{id}"), &clerk).await;
    assert!(view.body["acknowledgement_deadline"].is_object(), "the clock runs on: {}", view.text);
    let mut body = app.case_body();
    body["notice"] = ack;
    app.post("/api/v1/cases", &clerk, body).await.assert_problem(409, "notice-does-not-fit-decision");
    let mut body = app.case_body();
    body["accept"] = json!(true);
    body["notice"] = json!({"kind": "non_acceptance", "method": "sms", "content": "x"});
    app.post("/api/v1/cases", &clerk, body).await.assert_problem(409, "notice-does-not-fit-decision");
    assert_eq!(app.event_count().await, before, "nothing written");
}

// ── Reference facts a case names must be what they claim ──────────────────────────────

/// A case's village is a village-tier unit, an accused unit only a complaint's or a report's,
/// a make-up working day a weekend day, and a year's calendar is either loaded or 404. Each of
/// these was once taken as sent: a department as the village, an accusation in a suggestion, a
/// Wednesday as 调休, an empty 200 for a year never loaded.
#[tokio::test]
async fn what_a_case_or_a_calendar_names_must_be_what_it_claims() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let admin = app.token("admin", None);
    let before = app.event_count().await;

    let mut body = app.case_body();
    body["village_id"] = json!(app.dept_a);
    let r = app.post("/api/v1/cases", &clerk, body).await;
    r.assert_problem(422, "unknown-reference");
    assert!(r.text.contains("village_id"), "{}", r.text);
    let mut body = app.case_body();
    body["village_id"] = json!(app.town);
    app.post("/api/v1/cases", &clerk, body).await.assert_problem(422, "unknown-reference");

    let mut body = app.case_body();
    body["kind"] = json!("suggestion");
    body["accused_unit_id"] = json!(app.dept_b);
    app.post("/api/v1/cases", &clerk, body).await.assert_problem(422, "suggestion-accuses-no-one");
    assert_eq!(app.event_count().await, before, "nothing refused was written");
    let mut body = app.case_body();
    body["kind"] = json!("report");
    body["accused_unit_id"] = json!(app.dept_b);
    assert_eq!(app.post("/api/v1/cases", &clerk, body).await.status, StatusCode::CREATED);

    // 2030-01-02 is a Wednesday; 2030-01-05 a Saturday.
    let wednesday = json!({"holidays": [], "makeup_workdays": [{"date": "2030-01-02", "name": "调休"}]});
    let r = app.send(Method::PUT, "/api/v1/calendar/2030", Some(&admin), Some(&wednesday), &[]).await;
    r.assert_problem(422, "validation");
    assert!(r.text.contains("Saturday or a Sunday"), "{}", r.text);
    app.get("/api/v1/calendar/2030", &clerk).await.assert_problem(404, "not-found");
    let saturday = json!({"holidays": [], "makeup_workdays": [{"date": "2030-01-05", "name": "调休"}]});
    let r = app.send(Method::PUT, "/api/v1/calendar/2030", Some(&admin), Some(&saturday), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let got = app.get("/api/v1/calendar/2030", &clerk).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body["makeup_workdays"][0]["date"], "2030-01-05");
    // A loaded year with no exceptional day is still loaded.
    let empty = json!({"holidays": [], "makeup_workdays": []});
    app.send(Method::PUT, "/api/v1/calendar/2031", Some(&admin), Some(&empty), &[]).await;
    assert_eq!(app.get("/api/v1/calendar/2031", &clerk).await.status, StatusCode::OK);
}

/// A notice phoned before it was recorded counts from the call: the acknowledgement is given
/// then, not when the clerk typed it in.
#[tokio::test]
async fn a_notice_records_when_the_citizen_was_told() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let mut body = app.case_body();
    body["received_at"] = json!((chrono::Utc::now() - chrono::Duration::days(3)).to_rfc3339());
    let id = app.register(body).await;
    ok(&app, &clerk, id, "accept", json!({})).await;
    let told = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let notice = |at: String| json!({"kind": "acknowledgement", "method": "phone", "content": "电话告知已受理", "notified_at": at});
    let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    app.post(&path(id, "notices"), &clerk, notice(future)).await.assert_problem(422, "notice-time-out-of-range");
    let before_receipt = (chrono::Utc::now() - chrono::Duration::days(4)).to_rfc3339();
    app.post(&path(id, "notices"), &clerk, notice(before_receipt))
        .await
        .assert_problem(422, "notice-time-out-of-range");
    ok(&app, &clerk, id, "notices", notice(told.clone())).await;
    let events = app.get(&format!("/api/v1/cases/{id}/events"), &clerk).await;
    let notified = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "case.citizen_notified")
        .cloned()
        .expect("the notice is in the history");
    assert_eq!(notified["payload"]["notified_at"], json!(told), "{notified}");
}

/// 回避 through a merge, raced: an accusation against P linked into case M at the same moment M
/// is assigned to P. Each alone is refused in the other's presence; at the same moment both were
/// once accepted (4 times in 20), handing M — and the accusation merged into it — to P. Now the
/// assignment reads the accusations linked to M under M's lock, which the link also takes:
/// whichever comes second sees the first.
#[tokio::test]
async fn an_accusation_linked_while_its_target_is_assigned_to_the_accused_never_both_pass() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let sup = app.token("supervisor", None);
    let mut both = 0;
    let mut outcomes: std::collections::BTreeMap<String, usize> = Default::default();
    for _ in 0..20 {
        let m = app.register(app.case_body()).await;
        let mut accusation = app.case_body();
        accusation["kind"] = json!("report");
        accusation["accused_unit_id"] = json!(app.dept_a);
        let d = app.register(accusation).await;
        let (pa, pl) = (path(m, "assign"), path(d, "link-duplicate"));
        let (assign, link) =
            tokio::join!(app.post(&pa, &sup, json!({"unit_id": app.dept_a})), app.post(&pl, &clerk, json!({"of": m})),);
        if assign.status == StatusCode::OK && link.status == StatusCode::OK {
            both += 1;
        }
        let lost = if assign.status == StatusCode::OK { &link } else { &assign };
        assert_eq!(lost.status, StatusCode::CONFLICT, "{} / {}", assign.text, link.text);
        assert_eq!(lost.body["code"], "recusal", "{}", lost.text);
        let who = if assign.status == StatusCode::OK { "assignment first" } else { "link first" };
        *outcomes.entry(who.to_owned()).or_default() += 1;
    }
    assert_eq!(both, 0, "{outcomes:?}");
    println!("race: 20 × an accusation against P linked into M while M is assigned to P: {outcomes:?}, 0 × both");
}

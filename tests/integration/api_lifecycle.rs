//! The case API end to end: real server, real database.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::app::spawn_app;

#[tokio::test]
async fn a_whole_life_in_chinese_is_recorded_step_by_step() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let handler = app.token("handler", Some(app.village));
    let supervisor = app.token("supervisor", None);

    let r = app.post("/api/v1/cases", &clerk, app.case_body()).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.header("location"), Some(format!("/api/v1/cases/{id}").as_str()));
    assert_eq!(r.header("etag"), Some("\"1\""));
    assert_eq!(r.body["status"], "received");
    assert!(r.body["receipt_code"].as_str().unwrap().starts_with("HY-"));
    assert_eq!(r.body["deadline"]["stage"], "assignment");
    let case = |a: &str| format!("/api/v1/cases/{id}/{a}");

    let steps: Vec<(&str, &str, Value, &str)> = vec![
        (&clerk, "assign", json!({"unit_id": app.village, "note": "请村委会五个工作日内核实"}), "assigned"),
        (&handler, "sign", json!({}), "assigned"),
        (
            &handler,
            "handle",
            json!({"outcome": "resolved", "result": "经核实，已重新评议并张榜公示低保名单七天。"}),
            "handled",
        ),
        (&handler, "feedback", json!({"method": "phone", "content": "已电话告知反映人评议结果。"}), "fed_back"),
        (
            &clerk,
            "satisfaction",
            json!({"rating": "dissatisfied", "method": "phone", "comment": "公示时间太短", "solved": false}),
            "assigned",
        ),
        (
            &handler,
            "handle",
            json!({"outcome": "resolved", "result": "延长公示至十五天，并召开村民代表会议说明。"}),
            "handled",
        ),
        (&handler, "feedback", json!({"method": "in_person", "content": "上门向反映人说明整改情况。"}), "fed_back"),
        (
            &clerk,
            "satisfaction",
            json!({"rating": "satisfied", "method": "phone", "comment": "满意", "solved": true}),
            "fed_back",
        ),
        (&supervisor, "close", json!({"note": "群众满意，办结归档"}), "closed"),
    ];
    let mut version = 1;
    for (token, action, body, status) in steps {
        let r = app.post(&case(action), token, body).await;
        assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.text);
        assert_eq!(r.body["status"], status, "{action}");
        let v = r.body["version"].as_u64().unwrap();
        assert!(v > version, "{action} moves the version");
        assert_eq!(r.header("etag"), Some(format!("\"{v}\"").as_str()));
        version = v;
    }

    let r = app.get(&format!("/api/v1/cases/{id}"), &supervisor).await;
    assert_eq!(r.body["round"], 2);
    assert_eq!(r.body["status"], "closed");
    assert_eq!(r.body["satisfaction"]["rating"], "satisfied");

    let history = app.get(&case("events"), &app.token("auditor", None)).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text);
    let events = history.body["events"].as_array().unwrap();
    let steps: Vec<(String, String)> = events
        .iter()
        .map(|e| (e["event_type"].as_str().unwrap().to_owned(), e["actor"]["role"].as_str().unwrap().to_owned()))
        .collect();
    // Counted by hand from the steps: assigning an unaccepted case accepts it first; the rework
    // round needs no second signature.
    let expected = [
        ("case.received", "clerk"),
        ("case.accepted", "clerk"),
        ("case.assigned", "clerk"),
        ("case.signed_for", "handler"),
        ("case.handled", "handler"),
        ("case.fed_back", "handler"),
        ("case.satisfaction_recorded", "clerk"),
        ("case.reopened", "clerk"),
        ("case.handled", "handler"),
        ("case.fed_back", "handler"),
        ("case.satisfaction_recorded", "clerk"),
        ("case.closed", "supervisor"),
    ];
    assert_eq!(steps, expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>());
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["version"], i + 1);
        assert!(e["actor"]["id"].as_str().unwrap().starts_with(e["actor"]["role"].as_str().unwrap()));
        assert!(e["request_id"].is_string());
        assert_eq!(e["hash"].as_str().unwrap().len(), 64);
    }
}

#[tokio::test]
async fn illegal_transitions_answer_409_with_a_type_naming_the_rule() {
    let app = spawn_app().await;
    let supervisor = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let path = |a: &str| format!("/api/v1/cases/{id}/{a}");
    let before = app.event_count().await;

    app.post(&path("handle"), &supervisor, json!({"outcome": "resolved", "result": "x"}))
        .await
        .assert_problem(409, "handled-before-assigned");
    app.post(&path("close"), &supervisor, json!({})).await.assert_problem(409, "closed-before-feedback");
    app.post(&path("feedback"), &supervisor, json!({"method": "sms", "content": "x"}))
        .await
        .assert_problem(409, "invalid-transition");
    app.post(&path("reopen"), &supervisor, json!({"reason": "x"})).await.assert_problem(409, "nothing-to-reopen");
    assert_eq!(app.event_count().await, before, "a refused command writes nothing");

    // A closed case changes only by an explicit reopen.
    app.post(&path("reject"), &supervisor, json!({"reason_code": "insufficient_facts", "reason": "不属于受理范围"}))
        .await;
    // Not accepted is an answer too: the citizen is told before the case closes.
    app.post(&path("close"), &supervisor, json!({})).await.assert_problem(409, "notice-owed");
    let notice = json!({"kind": "non_acceptance", "method": "letter", "content": "书面告知不予受理及理由"});
    assert_eq!(app.post(&path("notices"), &supervisor, notice).await.status, StatusCode::OK);
    assert_eq!(app.post(&path("close"), &supervisor, json!({})).await.status, StatusCode::OK);
    app.post(&path("notes"), &supervisor, json!({"text": "补充说明"})).await.assert_problem(409, "case-closed");
    let r = app.post(&path("reopen"), &supervisor, json!({"reason": "受理有误，重新受理"})).await;
    assert_eq!(r.body["status"], "received", "{}", r.text);
}

#[tokio::test]
async fn closing_over_dissatisfaction_needs_a_supervisors_justification() {
    let app = spawn_app().await;
    let supervisor = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let path = |a: &str| format!("/api/v1/cases/{id}/{a}");
    app.post(&path("assign"), &supervisor, json!({"unit_id": app.dept_a})).await;
    app.post(&path("handle"), &supervisor, json!({"outcome": "not_supported", "result": "诉求不符合政策规定"})).await;
    app.post(&path("feedback"), &supervisor, json!({"method": "letter", "content": "书面答复"})).await;
    let r = app
        .post(&path("satisfaction"), &supervisor, json!({"rating": "dissatisfied", "method": "phone", "solved": false}))
        .await;
    assert_eq!((r.body["status"].as_str(), r.body["round"].as_u64()), (Some("assigned"), Some(2)));
    app.post(&path("close"), &supervisor, json!({})).await.assert_problem(409, "justification-required");
    let r = app.post(&path("close"), &supervisor, json!({"note": "诉求不符合政策，已依法答复，经研究予以办结"})).await;
    assert_eq!(r.body["status"], "closed", "{}", r.text);
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_creates_one_case() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let body = app.case_body();
    let headers = [("Idempotency-Key", "intake-2026-0001")];
    let first = app.send(reqwest::Method::POST, "/api/v1/cases", Some(&clerk), Some(&body), &headers).await;
    let again = app.send(reqwest::Method::POST, "/api/v1/cases", Some(&clerk), Some(&body), &headers).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(again.status, StatusCode::CREATED);
    for field in ["id", "version", "receipt_code", "status"] {
        assert_eq!(first.body[field], again.body[field], "{field}");
    }
    assert_eq!(app.event_count().await, 1);

    let mut other = body.clone();
    other["title"] = json!("另一件事");
    app.send(reqwest::Method::POST, "/api/v1/cases", Some(&clerk), Some(&other), &headers)
        .await
        .assert_problem(422, "idempotency-key-reused");

    // Commands too: a retried "handle" answers the first result although handling twice is illegal.
    let id = first.body["id"].as_str().unwrap();
    let sup = app.token("supervisor", None);
    app.post(&format!("/api/v1/cases/{id}/assign"), &sup, json!({"unit_id": app.dept_a})).await;
    let h = [("Idempotency-Key", "handle-1")];
    let body = json!({"outcome": "explained", "result": "已解释政策"});
    let a = app.send(reqwest::Method::POST, &format!("/api/v1/cases/{id}/handle"), Some(&sup), Some(&body), &h).await;
    let b = app.send(reqwest::Method::POST, &format!("/api/v1/cases/{id}/handle"), Some(&sup), Some(&body), &h).await;
    assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK), "{}", b.text);
    assert_eq!(a.body["version"], b.body["version"]);
    // received; accepted + assigned; signed_for + handled: 5, and nothing from the retry.
    assert_eq!(app.event_count().await, 5);
}

/// Issue 14: a registration stores its complainant's subject key in its own transaction (V30).
/// Eight concurrent registrations with one idempotency key make one case and one key; before,
/// each stored a key with a commit of its own first (8 keys, 7 of them unused), and the
/// response (masked from the data in hand, the vault not opened again) is unchanged.
#[tokio::test]
async fn concurrent_retries_of_a_registration_store_one_subject_key() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let body = app.case_body();
    let headers = [("Idempotency-Key", "intake-2026-0002")];
    let sends = (0..8).map(|_| app.send(reqwest::Method::POST, "/api/v1/cases", Some(&clerk), Some(&body), &headers));
    let answers = futures_util::future::join_all(sends).await;
    for a in &answers {
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        assert_eq!(a.body["id"], answers[0].body["id"]);
        assert_eq!(a.body["complainant"]["name"], "张*");
        assert_eq!(a.body["complainant"]["phone"], "138****5678");
    }
    assert_eq!(app.event_count().await, 1);
    let keys: i64 = app.db.app_client().await.query_one("SELECT count(*) FROM subject_keys", &[]).await.unwrap().get(0);
    assert_eq!(keys, 1);
    // The key stored is the one the case's data is sealed under: a supervisor reads it masked.
    let id = answers[0].body["id"].as_str().unwrap();
    let read = app.get(&format!("/api/v1/cases/{id}"), &app.token("supervisor", None)).await;
    assert_eq!(
        (&read.body["complainant"]["name"], &read.body["complainant"]["erased"]),
        (&json!("张*"), &json!(false))
    );
}

#[tokio::test]
async fn a_stale_if_match_gets_412_and_writes_nothing() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let path = format!("/api/v1/cases/{id}/notes");
    let ok = app
        .send(reqwest::Method::POST, &path, Some(&sup), Some(&json!({"text": "第一条"})), &[("If-Match", "\"1\"")])
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text);
    let before = app.event_count().await;
    let stale = app
        .send(reqwest::Method::POST, &path, Some(&sup), Some(&json!({"text": "第二条"})), &[("If-Match", "\"1\"")])
        .await;
    stale.assert_problem(412, "precondition-failed");
    assert_eq!(stale.body["current_version"], 2);
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn concurrent_commands_without_if_match_are_all_applied() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let path = format!("/api/v1/cases/{id}/notes");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = app.client.clone();
        let url = format!("{}{path}", app.address);
        let sup = sup.clone();
        tasks.push(tokio::spawn(async move {
            client.post(url).bearer_auth(sup).json(&json!({"text": format!("备注{i}")})).send().await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let r = app.get(&format!("/api/v1/cases/{id}"), &sup).await;
    assert_eq!(r.body["version"], 9);
    assert_eq!(r.body["notes"], 8);
}

#[tokio::test]
async fn personal_data_is_masked_encrypted_at_rest_and_hidden_from_the_accused_unit() {
    let app = spawn_app().await;
    let mut body = app.case_body();
    body["accused_unit_id"] = json!(app.dept_a);
    let id = app.register(body).await;
    let sup = app.token("supervisor", None);
    let r = app.get(&format!("/api/v1/cases/{id}"), &sup).await;
    assert_eq!(r.body["complainant"]["name"], "张*");
    assert_eq!(r.body["complainant"]["phone"], "138****5678");
    assert!(!r.text.contains("13812345678") && !r.text.contains("张三"));

    // 回避: the accusation is never routed to the accused unit, whose handlers see nothing of it.
    app.post(&format!("/api/v1/cases/{id}/assign"), &sup, json!({"unit_id": app.dept_a}))
        .await
        .assert_problem(409, "recusal");
    let accused = app.get(&format!("/api/v1/cases/{id}"), &app.token("handler", Some(app.dept_a))).await;
    assert_eq!(accused.status, StatusCode::NOT_FOUND);
    assert!(!accused.text.contains("低保"), "not even the title");

    let raw: String = app
        .db
        .app_client()
        .await
        .query_one("SELECT string_agg(payload::text, '') FROM events", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!raw.contains("13812345678") && !raw.contains("张三"), "the log holds no clear personal data");
}

#[tokio::test]
async fn a_category_policy_sets_deadlines_and_changing_it_never_rewrites_existing_cases() {
    let app = spawn_app().await;
    let admin = app.token("admin", None);
    let sup = app.token("supervisor", None);
    let cat = app
        .post(
            "/api/v1/categories",
            &admin,
            json!({"code": "welfare.dibao", "name": "低保评定", "kind": "complaint",
            "default_unit_id": app.dept_a, "deadline_policy": {"handle": {"unit": "hours", "value": 72}}}),
        )
        .await;
    assert_eq!(cat.status, StatusCode::CREATED, "{}", cat.text);
    let cat_id = cat.body["id"].as_str().unwrap().to_owned();
    let mut body = app.case_body();
    body["category_id"] = json!(cat_id);
    let id = app.register(body).await;
    app.post(&format!("/api/v1/cases/{id}/assign"), &sup, json!({"unit_id": app.dept_a})).await;
    let r = app.post(&format!("/api/v1/cases/{id}/sign"), &app.token("handler", Some(app.dept_a)), json!({})).await;
    assert_eq!(r.body["deadline"]["rule"]["limit"], json!({"unit": "hours", "value": 72}), "{}", r.text);
    let due = r.body["deadline"]["due_at"].clone();

    let upd = app
        .send(reqwest::Method::PUT, &format!("/api/v1/categories/{cat_id}"), Some(&admin),
            Some(&json!({"code": "welfare.dibao", "name": "低保评定", "deadline_policy": {"handle": {"unit": "hours", "value": 24}}})), &[])
        .await;
    assert_eq!(upd.status, StatusCode::OK, "{}", upd.text);
    let after = app.get(&format!("/api/v1/cases/{id}"), &sup).await;
    assert_eq!(after.body["deadline"]["due_at"], due, "an existing deadline is never rewritten");
}

#[tokio::test]
async fn a_holiday_in_the_working_calendar_moves_a_new_deadline() {
    let app = spawn_app().await;
    let admin = app.token("admin", None);
    let clerk = app.token("clerk", None);
    // Paper intake received Monday 2026-03-02 10:00 CST: three working days to assign, so
    // Thursday 2026-03-05 23:59:59 CST; with Tuesday 2026-03-03 a holiday, Friday 2026-03-06.
    let mut body = app.case_body();
    body["received_at"] = json!("2026-03-02T02:00:00Z");
    let first = app.post("/api/v1/cases", &clerk, body.clone()).await;
    assert_eq!(first.body["deadline"]["due_at"], "2026-03-05T15:59:59Z", "{}", first.text);
    let holidays = json!([{"date": "2026-03-03", "name": "测试假日"}]);
    let put = app
        .send(
            reqwest::Method::PUT,
            "/api/v1/calendar/2026",
            Some(&admin),
            Some(&json!({"holidays": holidays, "makeup_workdays": []})),
            &[],
        )
        .await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let got = app.get("/api/v1/calendar/2026", &clerk).await;
    assert_eq!(got.body["holidays"], holidays);
    let second = app.post("/api/v1/cases", &clerk, body).await;
    assert_eq!(second.body["deadline"]["due_at"], "2026-03-06T15:59:59Z", "{}", second.text);
}

#[tokio::test]
async fn a_case_received_sixty_days_ago_is_overdue_for_assignment() {
    let app = spawn_app().await;
    let mut body = app.case_body();
    body["received_at"] = json!((chrono::Utc::now() - chrono::Duration::days(60)).to_rfc3339());
    let clerk = app.token("clerk", None);
    let r = app.post("/api/v1/cases", &clerk, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["deadline"]["stage"], "assignment");
    assert_eq!(r.body["deadline"]["state"], "overdue");
    assert!(r.body["deadline"]["working_days_overdue"].as_u64().unwrap() > 30);
}

#[tokio::test]
async fn an_extension_is_recorded_once_with_its_approver() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    app.post(&format!("/api/v1/cases/{id}/assign"), &sup, json!({"unit_id": app.dept_a})).await;
    let r = app.post(&format!("/api/v1/cases/{id}/sign"), &app.token("handler", Some(app.dept_a)), json!({})).await;
    let due: chrono::DateTime<chrono::Utc> = r.body["deadline"]["due_at"].as_str().unwrap().parse().unwrap();
    let new_due = (due + chrono::Duration::days(10)).to_rfc3339();
    let r = app
        .post(&format!("/api/v1/cases/{id}/extend"), &sup, json!({"due_at": new_due, "reason": "需要现场核查"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["deadline"]["rule"]["kind"], "extended");
    assert_eq!(r.body["extensions_this_round"], 1);
    let again = (due + chrono::Duration::days(20)).to_rfc3339();
    app.post(&format!("/api/v1/cases/{id}/extend"), &sup, json!({"due_at": again, "reason": "再次延期"}))
        .await
        .assert_problem(409, "extension-limit-reached");
    let h = app.get(&format!("/api/v1/cases/{id}/events"), &sup).await;
    let ext = h.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "case.deadline_extended")
        .unwrap()
        .clone();
    assert_eq!(ext["payload"]["approved_by"], ext["actor"]["id"]);
}

#[tokio::test]
async fn a_case_cannot_be_linked_to_a_duplicate_so_no_two_cases_close_each_other_unanswered() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let a = app.register(app.case_body()).await;
    let b = app.register(app.case_body()).await;
    let r = app.post(&format!("/api/v1/cases/{a}/link-duplicate"), &sup, json!({"of": b})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.post(&format!("/api/v1/cases/{b}/link-duplicate"), &sup, json!({"of": a}))
        .await
        .assert_problem(409, "target-is-duplicate");
    app.post(&format!("/api/v1/cases/{b}/close"), &sup, json!({})).await.assert_problem(409, "closed-before-feedback");
}

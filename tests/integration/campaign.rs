//! The campaign's records (issue 11): campaigns with phases, symposium meetings whose opinions
//! become cases atomically, contact-card batches, and the chain, replay and scoping they share
//! with cases.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::app::{TestApp, spawn_app};
use uuid::Uuid;

/// A campaign over the test's village whose implementation phase holds today.
async fn campaign(app: &TestApp) -> Uuid {
    let today = chrono::Utc::now().date_naive();
    let d = |days: i64| (today + chrono::Duration::days(days)).to_string();
    let r = app
        .post(
            "/api/v1/campaigns",
            &app.token("supervisor", None),
            json!({
                "name": "2026年纠风工作基层行",
                "leading_unit_id": app.town,
                "unit_ids": [app.village],
                "phases": [
                    {"phase": "preparation", "from": d(-30), "to": d(-10)},
                    {"phase": "implementation", "from": d(-9), "to": d(30)},
                    {"phase": "summary", "from": d(31), "to": d(60)}
                ],
                "documents": [{"kind": "plan", "title": "实施方案", "content": "一、指导思想"}]
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["id"].as_str().unwrap().parse().unwrap()
}

async fn meeting(app: &TestApp, campaign: Uuid, attendees: u32) -> Value {
    let r = app
        .post(
            "/api/v1/meetings",
            &app.token("clerk", None),
            json!({
                "topic": "惠民政策落实情况座谈会",
                "held_on": chrono::Utc::now().date_naive().to_string(),
                "venue": "村委会会议室",
                "host_unit_id": app.village,
                "campaign_id": campaign,
                "chair": "李书记",
                "recorder": "王干事",
                "attendance": [{"type": "npc_deputy", "count": 2}, {"type": "villager_representative", "count": attendees - 2}],
                "minutes": "会议听取了群众意见。"
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body
}

fn opinion(n: usize) -> Value {
    json!({"kind": "complaint", "title": format!("意见{n}"), "description": format!("座谈会上反映的第{n}个问题。"), "village_id": Value::Null})
}

async fn ledger_of(app: &TestApp, query: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/ledger?{query}"), &app.token("supervisor", None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_meeting_with_eight_opinions_creates_eight_linked_cases_in_one_request() {
    let app = spawn_app().await;
    let c = campaign(&app).await;
    let m = meeting(&app, c, 25).await;
    assert_eq!(m["warnings"], json!([]));
    let id = m["id"].as_str().unwrap();
    let mut opinions: Vec<Value> = (1..=8).map(opinion).collect();
    opinions[2]["number"] = json!(7);
    opinions[5]["village_id"] = json!(app.village);
    let r = app
        .post(&format!("/api/v1/meetings/{id}/opinions"), &app.token("clerk", None), json!({"opinions": opinions}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let links = r.body["record"]["opinions"].as_array().unwrap();
    // Numbers: the given 7 is kept; the others take the next free ones after the highest taken.
    let numbers: Vec<u64> = links.iter().map(|l| l["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, vec![8, 9, 7, 10, 11, 12, 13, 14]);
    let cases = r.body["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 8);
    assert!(cases.iter().all(|c| c["status"] == "received"));
    // Each case names its source and its campaign; the ledger filters by both.
    let first = links[0]["case"].as_str().unwrap();
    let case = app.get(&format!("/api/v1/cases/{first}"), &app.token("clerk", None)).await;
    assert_eq!(case.body["channel"], "symposium");
    assert_eq!(case.body["source"], json!({"type": "meeting", "record_id": id, "item": "8"}));
    assert_eq!(case.body["campaign_id"], json!(c));
    assert_eq!(case.body["campaign_phase"], "implementation");
    assert_eq!(ledger_of(&app, &format!("source_id={id}")).await.len(), 8);
    assert_eq!(ledger_of(&app, "source_type=meeting").await.len(), 8);
    assert_eq!(ledger_of(&app, &format!("campaign_id={c}&campaign_phase=implementation")).await.len(), 8);
    assert_eq!(ledger_of(&app, &format!("campaign_id={c}&campaign_phase=summary")).await.len(), 0);
    // Stats filter by the campaign too.
    let s = app.get(&format!("/api/v1/stats?campaign_id={c}"), &app.token("supervisor", None)).await;
    assert_eq!(s.body["total"], 8, "{}", s.text);
}

#[tokio::test]
async fn one_invalid_opinion_rejects_all_eight_and_writes_nothing() {
    let app = spawn_app().await;
    let c = campaign(&app).await;
    let m = meeting(&app, c, 12).await;
    assert_eq!(m["warnings"], json!(["attendance_outside_20_30"]));
    let id = m["id"].as_str().unwrap();
    let before = app.event_count().await;
    for (bad_field, bad) in [
        ("opinions[4].title", json!({"kind": "complaint", "title": "  ", "description": "内容"})),
        (
            "opinions[4].complainant.phone",
            json!({"kind": "complaint", "title": "标题", "description": "内容", "complainant": {"phone": "12"}}),
        ),
    ] {
        let mut opinions: Vec<Value> = (1..=8).map(opinion).collect();
        opinions[4] = bad;
        let r = app
            .post(&format!("/api/v1/meetings/{id}/opinions"), &app.token("clerk", None), json!({"opinions": opinions}))
            .await;
        r.assert_problem(422, "validation");
        assert!(r.body["errors"].as_array().unwrap().iter().any(|e| e["field"] == bad_field), "{}", r.text);
    }
    // A number taken twice in one request: refused as a whole, too.
    let mut opinions: Vec<Value> = (1..=8).map(opinion).collect();
    opinions[1]["number"] = json!(3);
    opinions[6]["number"] = json!(3);
    let r = app
        .post(&format!("/api/v1/meetings/{id}/opinions"), &app.token("clerk", None), json!({"opinions": opinions}))
        .await;
    r.assert_problem(422, "opinion-number-taken");
    assert_eq!(app.event_count().await, before, "nothing was written");
    assert_eq!(ledger_of(&app, &format!("source_id={id}")).await.len(), 0);
    let after = app.get(&format!("/api/v1/meetings/{id}"), &app.token("clerk", None)).await;
    assert_eq!(after.body["version"], 1);
    assert_eq!(after.body["record"]["opinions"], json!([]));
}

async fn batch(app: &TestApp, from: u64, to: u64) -> reqwest::Response {
    app.client
        .post(format!("{}/api/v1/contact-cards/batches", app.address))
        .bearer_auth(app.token("clerk", None))
        .json(&json!({
            "serial_from": from, "serial_to": to, "phone": "0571-12345678", "email": "jiufeng@example.gov.cn",
            "village_id": app.village, "delivered_on": "2026-04-01"
        }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn card_serials_used_twice_unknown_or_overlapping_are_clear_422s() {
    let app = spawn_app().await;
    let r = batch(&app, 1001, 1500).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let b: Value = r.json().await.unwrap();
    let batch_id = b["id"].as_str().unwrap().to_owned();
    // Overlapping another batch, by one card at either end or inside: 422.
    for (from, to) in [(1500, 1600), (900, 1001), (1100, 1200), (1, 5000)] {
        let r = batch(&app, from, to).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{from}-{to}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "serials-overlap");
    }
    assert_eq!(batch(&app, 1501, 1600).await.status(), StatusCode::CREATED, "adjacent is not overlapping");

    let mut body = app.case_body();
    body["channel"] = json!("contact_card");
    body["contact_card_serial"] = json!(1234);
    let first = app.post("/api/v1/cases", &app.token("clerk", None), body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    assert_eq!(first.body["source"], json!({"type": "card_batch", "record_id": batch_id, "item": "1234"}));
    let before = app.event_count().await;
    let again = app.post("/api/v1/cases", &app.token("clerk", None), body.clone()).await;
    again.assert_problem(422, "serial-used");
    body["contact_card_serial"] = json!(99);
    let unknown = app.post("/api/v1/cases", &app.token("clerk", None), body).await;
    unknown.assert_problem(422, "unknown-serial");
    assert_eq!(app.event_count().await, before, "a refused card registers no case");

    let view = app.get(&format!("/api/v1/contact-cards/batches/{batch_id}"), &app.token("clerk", None)).await;
    assert_eq!(view.body["record"]["cards_used"], 1);
    assert_eq!(view.body["cases"][0]["item"], "1234");
    // Cards handed out: counted, a second hand-out of the same card refused, the recipient masked.
    let h = app
        .post(
            &format!("/api/v1/contact-cards/batches/{batch_id}/handouts"),
            &app.token("clerk", None),
            json!({"serial_from": 1001, "serial_to": 1010, "on": "2026-04-02", "recipient": {"name": "赵六", "phone": "13900001111"}}),
        )
        .await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.text);
    assert_eq!(h.body["record"]["cards_out"], 10);
    assert!(!h.text.contains("赵六") && !h.text.contains("13900001111"));
    assert_eq!(h.body["record"]["handed_out"][0]["recipient_recorded"], true);
    let twice = app
        .post(
            &format!("/api/v1/contact-cards/batches/{batch_id}/handouts"),
            &app.token("clerk", None),
            json!({"serial_from": 1010, "serial_to": 1012, "on": "2026-04-03"}),
        )
        .await;
    twice.assert_problem(422, "already-handed-out");
}

#[tokio::test]
async fn records_replay_as_of_a_past_moment_and_tampering_is_found() {
    let app = spawn_app().await;
    let c = campaign(&app).await;
    let m = meeting(&app, c, 22).await;
    let id = m["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let between = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let r = app
        .post(&format!("/api/v1/meetings/{id}/opinions"), &app.token("clerk", None), json!({"opinions": [opinion(1)]}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let then = app
        .get(
            &format!("/api/v1/meetings/{id}?as_of={}", between.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            &app.token("auditor", None),
        )
        .await;
    assert_eq!(then.status, StatusCode::OK, "{}", then.text);
    assert_eq!(then.body["version"], 1);
    assert_eq!(then.body["record"]["opinions"], json!([]));
    let history = app.get(&format!("/api/v1/records/{id}/history"), &app.token("auditor", None)).await;
    let types: Vec<&str> =
        history.body["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["meeting.recorded", "meeting.opinions_registered"]);
    for rec in [&id, &c.to_string()] {
        let v = app.get(&format!("/api/v1/records/{rec}/verify"), &app.token("auditor", None)).await;
        assert_eq!(v.body["status"], "ok", "{}", v.text);
    }
    // A changed byte in the meeting's first event: the chain check names it.
    let su = app.db.super_client().await;
    su.batch_execute(&format!(
        "ALTER TABLE events DISABLE TRIGGER USER; \
         UPDATE events SET payload = jsonb_set(payload, '{{venue}}', '\"别处\"') WHERE case_id = '{id}' AND version = 1; \
         ALTER TABLE events ENABLE TRIGGER USER;"
    ))
    .await
    .unwrap();
    let v = app.get(&format!("/api/v1/records/{id}/verify"), &app.token("auditor", None)).await;
    assert_eq!(v.body["status"], "tampered", "{}", v.text);
    assert_eq!(v.body["first_bad_version"], 1);
}

#[tokio::test]
async fn handlers_read_only_their_units_records_and_clerks_cannot_launch_campaigns() {
    let app = spawn_app().await;
    let c = campaign(&app).await;
    let m = meeting(&app, c, 20).await;
    let id = m["id"].as_str().unwrap();
    let own = app.token("handler", Some(app.village));
    let other = app.token("handler", Some(app.dept_a));
    assert_eq!(app.get(&format!("/api/v1/meetings/{id}"), &own).await.status, StatusCode::OK);
    app.get(&format!("/api/v1/meetings/{id}"), &other).await.assert_problem(404, "not-found");
    let listed = app.get("/api/v1/meetings", &other).await;
    assert_eq!(listed.body["items"], json!([]));
    assert_eq!(app.get("/api/v1/meetings", &own).await.body["items"].as_array().unwrap().len(), 1);
    app.post("/api/v1/meetings", &own, json!({})).await.assert_problem(403, "forbidden");
    app.post("/api/v1/campaigns", &app.token("clerk", None), json!({})).await.assert_problem(403, "forbidden");
    let bad = app
        .post(
            "/api/v1/campaigns",
            &app.token("admin", None),
            json!({"name": "x", "leading_unit_id": app.town, "unit_ids": [], "phases": [
                {"phase": "summary", "from": "2026-01-01", "to": "2026-01-31"},
                {"phase": "implementation", "from": "2026-02-01", "to": "2026-02-28"}]}),
        )
        .await;
    bad.assert_problem(422, "phases-out-of-order");
}

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
    // A card that was never handed out brings no case; nor one received before its batch came.
    app.post("/api/v1/cases", &app.token("clerk", None), body.clone()).await.assert_problem(422, "not-handed-out");
    let handed = app
        .post(
            &format!("/api/v1/contact-cards/batches/{batch_id}/handouts"),
            &app.token("clerk", None),
            json!({"serial_from": 1201, "serial_to": 1300, "on": "2026-04-02"}),
        )
        .await;
    assert_eq!(handed.status, StatusCode::OK, "{}", handed.text);
    let mut early = body.clone();
    early["received_at"] = json!("2026-03-31T02:00:00Z");
    app.post("/api/v1/cases", &app.token("clerk", None), early).await.assert_problem(422, "before-delivery");
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
    assert_eq!(view.body["record"]["cases_by_status"], json!({"received": 1}));
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
    assert_eq!(h.body["record"]["cards_out"], 110);
    assert!(!h.text.contains("赵六") && !h.text.contains("13900001111"));
    assert_eq!(h.body["record"]["handed_out"][1]["recipient"], json!({"name": "赵*", "phone": "139****1111"}));
    // The recipient's data is erasable as a complainant's: admins only; then it shows erased,
    // and a second erasure has nothing to erase.
    let erase = format!("/api/v1/contact-cards/batches/{batch_id}/recipients/erase");
    app.post(&erase, &app.token("clerk", None), json!({"serial": 1005})).await.assert_problem(403, "forbidden");
    let erased = app.post(&erase, &app.token("admin", None), json!({"serial": 1005})).await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.text);
    let view = app.get(&format!("/api/v1/contact-cards/batches/{batch_id}"), &app.token("clerk", None)).await;
    assert_eq!(view.body["record"]["handed_out"][1]["recipient"], json!({"erased": true}));
    app.post(&erase, &app.token("admin", None), json!({"serial": 1005})).await.assert_problem(409, "no-recipient");
    app.post(&erase, &app.token("admin", None), json!({"serial": 9999})).await.assert_problem(422, "unknown-serial");
    let history = app.get(&format!("/api/v1/records/{batch_id}/history"), &app.token("auditor", None)).await;
    assert!(history.text.contains("card_batch.recipient_erased"), "{}", history.text);
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
    assert_eq!(then.body["cases"], json!([]), "as of then the meeting had brought no case");
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
            json!({"name": "x", "leading_unit_id": app.town, "unit_ids": [app.village], "phases": [
                {"phase": "summary", "from": "2026-01-01", "to": "2026-01-31"},
                {"phase": "implementation", "from": "2026-02-01", "to": "2026-02-28"}]}),
        )
        .await;
    bad.assert_problem(422, "phases-out-of-order");
}

async fn visit(app: &TestApp, mode: &str, token: &str) -> reqwest::Response {
    app.client
        .post(format!("{}/api/v1/visits", app.address))
        .bearer_auth(token)
        .json(&json!({
            "mode": mode, "visited_on": chrono::Utc::now().date_naive().to_string(), "organiser_unit_id": app.town,
            "team": [{"name": "纪委 张"}], "places": [{"type": "school", "name": "中心小学", "village_id": app.village}]
        }))
        .send()
        .await
        .unwrap()
}

/// Issue 11: "Undercover visits are invisible to clerks and handlers on every route" until the
/// committee discloses them.
#[tokio::test]
async fn undercover_visits_are_invisible_to_clerks_and_handlers_on_every_route_until_disclosed() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let clerk = app.token("clerk", None);
    let handler = app.token("handler", Some(app.village));
    assert_eq!(
        visit(&app, "undercover", &clerk).await.status(),
        StatusCode::FORBIDDEN,
        "clerks record open visits only"
    );
    let r = visit(&app, "undercover", &sup).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let v: Value = r.json().await.unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    let finding = app.post(&format!("/api/v1/visits/{id}/findings"), &sup, json!({"text": "食堂未公示收费标准", "evidence": [{"note": "照片"}],
        "rectification": {"demand": "一周内公示", "due_on": (chrono::Utc::now().date_naive() + chrono::Duration::days(7)).to_string()}})).await;
    assert_eq!(finding.status, StatusCode::OK, "{}", finding.text);
    let open = visit(&app, "open", &clerk).await;
    assert_eq!(open.status(), StatusCode::CREATED);
    let open: Value = open.json().await.unwrap();

    let auditor = app.token("auditor", None);
    for (who, token, sees) in [
        ("clerk", &clerk, false),
        ("handler", &handler, false),
        ("supervisor", &sup, true),
        ("auditor", &auditor, true),
    ] {
        let get = app.get(&format!("/api/v1/visits/{id}"), token).await;
        assert_eq!(get.status == StatusCode::OK, sees, "{who} GET: {}", get.text);
        let history = app.get(&format!("/api/v1/records/{id}/history"), token).await;
        assert_eq!(history.status == StatusCode::OK, sees, "{who} history: {}", history.text);
        let listed = app.get("/api/v1/visits", token).await;
        let ids: Vec<&str> =
            listed.body["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids.contains(&id.as_str()), sees, "{who} list");
        // The open visit is listed for everyone who reads visits (the handler: it visited their
        // village).
        assert!(ids.contains(&open["id"].as_str().unwrap()), "{who} sees the open visit");
        let as_of = app.get(&format!("/api/v1/visits/{id}?as_of=2099-01-01T00:00:00Z"), token).await;
        assert_eq!(as_of.status == StatusCode::OK, sees, "{who} as_of");
        let by_campaign = app.get(&format!("/api/v1/visits?unit_id={}", app.village), token).await;
        assert_eq!(by_campaign.text.contains(&id), sees, "{who} filtered list");
        let feed = app.get("/api/v1/events?limit=1000", token).await;
        if feed.status == StatusCode::OK {
            assert_eq!(feed.text.contains(&id), sees, "{who} feed");
        }
    }
    // Writes to it answer 404 for those who cannot read it.
    for (path, body) in [
        ("findings", json!({"text": "另一发现"})),
        ("rechecks", json!({"finding": 1, "on": chrono::Utc::now().date_naive().to_string(), "rectified": true})),
        ("cases", json!({"finding": 1, "kind": "complaint", "title": "标题"})),
    ] {
        for token in [&clerk, &handler] {
            app.post(&format!("/api/v1/visits/{id}/{path}"), token, body.clone()).await.assert_problem(
                if std::ptr::eq(token, &handler) { 403 } else { 404 },
                if std::ptr::eq(token, &handler) { "forbidden" } else { "not-found" },
            );
        }
    }
    app.post(&format!("/api/v1/visits/{id}/disclose"), &clerk, json!({})).await.assert_problem(403, "forbidden");
    // Not even a supervisor turns a finding into a case before disclosure: the case would show
    // the visit to every reader of cases.
    app.post(&format!("/api/v1/visits/{id}/cases"), &sup, json!({"finding": 1, "kind": "complaint", "title": "标题"}))
        .await
        .assert_problem(409, "still-undercover");

    // Disclosed: every reader sees it; a second disclosure is a conflict.
    let d = app.post(&format!("/api/v1/visits/{id}/disclose"), &sup, json!({})).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text);
    assert!(d.body["record"]["disclosed_at"].is_string());
    app.post(&format!("/api/v1/visits/{id}/disclose"), &sup, json!({})).await.assert_problem(409, "not-undercover");
    assert_eq!(app.get(&format!("/api/v1/visits/{id}"), &clerk).await.status, StatusCode::OK);
    assert_eq!(
        app.get(&format!("/api/v1/visits/{id}"), &handler).await.status,
        StatusCode::OK,
        "the village was visited"
    );
    // A finding becomes a case once; its re-check is recorded.
    let c = app
        .post(
            &format!("/api/v1/visits/{id}/cases"),
            &clerk,
            json!({"finding": 1, "kind": "complaint", "title": "食堂收费不公开"}),
        )
        .await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.text);
    assert_eq!(c.body["cases"].as_array().unwrap().len(), 1);
    let case_id = c.body["cases"][0]["case_id"].as_str().unwrap();
    let case = app.get(&format!("/api/v1/cases/{case_id}"), &clerk).await;
    assert_eq!(case.body["channel"], "visit");
    assert_eq!(case.body["description"], "食堂未公示收费标准");
    app.post(
        &format!("/api/v1/visits/{id}/cases"),
        &clerk,
        json!({"finding": 1, "kind": "complaint", "title": "再次"}),
    )
    .await
    .assert_problem(409, "finding-already-a-case");
    let re = app.post(&format!("/api/v1/visits/{id}/rechecks"), &clerk, json!({"finding": 1, "on": chrono::Utc::now().date_naive().to_string(), "rectified": true, "note": "已公示"})).await;
    assert_eq!(re.status, StatusCode::OK, "{}", re.text);
    assert_eq!(re.body["record"]["findings"][0]["rechecks"][0]["rectified"], true);
}

type Counted = std::collections::BTreeMap<(String, String, String), u64>;
type Answered = std::collections::BTreeMap<(String, String), u64>;

/// Counts one answer of question `q` in village `v` (and in "all"): answered once, each option
/// chosen once.
fn tally(count: &mut Counted, answered: &mut Answered, q: &str, v: Uuid, options: &[String]) {
    for place in [v.to_string(), "all".to_owned()] {
        *answered.entry((q.to_owned(), place.clone())).or_default() += 1;
        for o in options {
            *count.entry((q.to_owned(), place.clone(), o.clone())).or_default() += 1;
        }
    }
}

/// A deterministic generator (a linear congruential one), so a failure can be replayed.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// Issue 11: "Survey results over 1,000 generated responses equal a direct count, overall and
/// per village; the CSV matches the JSON."
#[tokio::test]
async fn survey_results_over_a_thousand_responses_equal_a_direct_count_and_the_csv_matches() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let admin = app.token("admin", None);
    let second = app.create_unit(&admin, "西岭村", "village", Some(app.town)).await;
    let villages = [app.village, second];
    let options = ["已到位", "部分到位", "未到位"];
    let s = app
        .post(
            "/api/v1/surveys",
            &clerk,
            json!({
                "title": "惠农政策落实情况问卷", "respondent_type": "村民", "surveyed_on": "2026-05-20", "place": "东岭村",
                "surveyor": "纪委 王", "unit_id": app.town,
                "questions": [
                    {"key": "subsidy", "text": "耕地地力保护补贴是否已到位？", "kind": "single_choice",
                     "options": options.iter().map(|o| json!({"label": o})).collect::<Vec<_>>(), "policy": "耕地地力保护补贴"},
                    {"key": "channels", "text": "您通过哪些渠道了解政策？", "kind": "multiple_choice",
                     "options": [{"label": "广播"}, {"label": "公示栏"}, {"label": "微信群"}]},
                    {"key": "rating", "text": "对村务公开的评价", "kind": "rating"},
                    {"key": "heard", "text": "是否听说过纠风联系卡？", "kind": "yes_no"},
                    {"key": "other", "text": "其他意见", "kind": "free_text"}
                ]
            }),
        )
        .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.text);
    let id = s.body["id"].as_str().unwrap().to_owned();

    // The direct count, kept while generating: (question, village or "all", option) → count,
    // and (question, village or "all") → answered.
    let mut count = Counted::default();
    let mut answered = Answered::default();
    let mut rng = Lcg(11);
    let mut complaints = 0;
    for batch in 0..10 {
        let mut responses = Vec::new();
        for _ in 0..100 {
            let v = villages[rng.next(2) as usize];
            let mut answers = serde_json::Map::new();
            if rng.next(10) > 0 {
                let o = options[rng.next(3) as usize];
                answers.insert("subsidy".into(), json!(o));
                tally(&mut count, &mut answered, "subsidy", v, &[o.to_owned()]);
            }
            let chosen: Vec<&str> = ["广播", "公示栏", "微信群"].into_iter().filter(|_| rng.next(2) == 1).collect();
            if !chosen.is_empty() {
                answers.insert("channels".into(), json!(chosen));
                let chosen: Vec<String> = chosen.iter().map(|c| (*c).to_owned()).collect();
                tally(&mut count, &mut answered, "channels", v, &chosen);
            }
            let r = rng.next(5) + 1;
            answers.insert("rating".into(), json!(r));
            tally(&mut count, &mut answered, "rating", v, &[r.to_string()]);
            let heard = rng.next(2) == 1;
            answers.insert("heard".into(), json!(heard));
            tally(&mut count, &mut answered, "heard", v, &[if heard { "yes" } else { "no" }.to_owned()]);
            let mut response = json!({"village_id": v});
            if rng.next(50) == 0 {
                answers.insert("other".into(), json!("补贴至今未发放，村干部说还没到"));
                tally(&mut count, &mut answered, "other", v, &[]);
                response["complaint"] = json!({"question": "other", "kind": "complaint", "title": "补贴未发放"});
                complaints += 1;
            }
            response["answers"] = Value::Object(answers);
            responses.push(response);
        }
        let r = app.post(&format!("/api/v1/surveys/{id}/responses"), &clerk, json!({"responses": responses})).await;
        assert_eq!(r.status, StatusCode::OK, "batch {batch}: {}", r.text);
    }
    assert!(complaints > 0, "the seed makes some complaints");

    let results = app.get(&format!("/api/v1/surveys/{id}/results"), &clerk).await;
    assert_eq!(results.status, StatusCode::OK, "{}", results.text);
    assert_eq!(results.body["responses"], 1000);
    let get = |k: &(String, String, String)| count.get(k).copied().unwrap_or(0);
    let mut checked = 0;
    for q in results.body["questions"].as_array().unwrap() {
        let key = q["key"].as_str().unwrap().to_owned();
        let all = answered.get(&(key.clone(), "all".into())).copied().unwrap_or(0);
        assert_eq!(q["answered"], all, "{key} answered");
        for o in q["options"].as_array().unwrap() {
            let opt = o["option"].as_str().unwrap().to_owned();
            let want = get(&(key.clone(), "all".into(), opt.clone()));
            assert_eq!(o["count"], want, "{key} {opt} overall");
            let pct = if all == 0 { 0.0 } else { (want as f64 * 1000.0 / all as f64).round() / 10.0 };
            assert_eq!(o["percent"].as_f64().unwrap(), pct, "{key} {opt} percent");
            checked += 1;
        }
        for v in q["by_village"].as_array().unwrap() {
            let village = v["village_id"].as_str().unwrap().to_owned();
            assert_eq!(
                v["answered"],
                answered.get(&(key.clone(), village.clone())).copied().unwrap_or(0),
                "{key} {village}"
            );
            for o in v["options"].as_array().unwrap() {
                let opt = o["option"].as_str().unwrap().to_owned();
                assert_eq!(o["count"], get(&(key.clone(), village.clone(), opt.clone())), "{key} {village} {opt}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * 3 + 3 * 3 + 5 * 3 + 2 * 3, "every option overall and in both villages");

    // The CSV says the same, row for row.
    let csv = app
        .send(
            reqwest::Method::GET,
            &format!("/api/v1/surveys/{id}/results"),
            Some(&clerk),
            None,
            &[("accept", "text/csv")],
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(csv.text.starts_with('\u{feff}'), "a BOM for Excel");
    assert!(csv.text.contains("东岭村") && csv.text.contains("西岭村"), "villages by name");
    let mut rows = 0;
    for line in csv.text.lines().skip(1) {
        let cells: Vec<String> = line.split("\",\"").map(|c| c.trim_matches('"').to_owned()).collect();
        let (key, place, opt, n, base) = (&cells[0], &cells[2], &cells[4], &cells[5], &cells[6]);
        assert_eq!(
            base.parse::<u64>().unwrap(),
            answered.get(&(key.clone(), place.clone())).copied().unwrap_or(0),
            "{line}"
        );
        if !opt.is_empty() {
            assert_eq!(n.parse::<u64>().unwrap(), get(&(key.clone(), place.clone(), opt.clone())), "{line}");
        }
        rows += 1;
    }
    assert_eq!(rows, 3 * 3 + 3 * 3 + 5 * 3 + 2 * 3 + 3, "every option row, and one row per place for the free text");
    let xlsx = app
        .client
        .get(format!("{}/api/v1/surveys/{id}/results", app.address))
        .bearer_auth(&clerk)
        .header("accept", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        .send()
        .await
        .unwrap();
    assert_eq!(xlsx.status(), StatusCode::OK);
    assert!(xlsx.bytes().await.unwrap().starts_with(b"PK"), "a zip (XLSX) file");

    // The complaints became linked cases in the questionnaire channel.
    let view = app.get(&format!("/api/v1/surveys/{id}"), &clerk).await;
    assert_eq!(view.body["cases"].as_array().unwrap().len(), complaints);
    assert_eq!(ledger_of(&app, "channel=questionnaire&limit=100").await.len(), complaints);
    // A handler of one village reads only its responses, without free text (a complaint there is
    // a case of its village, and a response may name its writer).
    let history = app.get(&format!("/api/v1/records/{id}/history"), &app.token("handler", Some(second))).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text);
    assert!(!history.text.contains(&app.village.to_string()), "no response of another village");
    assert!(!history.text.contains("补贴至今未发放"), "no free text");
    assert!(history.text.contains(&second.to_string()));
    // An answer that does not fit its question: 422 naming it, nothing recorded.
    let before = app.event_count().await;
    let bad = app
        .post(
            &format!("/api/v1/surveys/{id}/responses"),
            &clerk,
            json!({"responses": [
        {"village_id": app.village, "answers": {"rating": 3}},
        {"village_id": app.village, "answers": {"subsidy": "不知道"}}]}),
        )
        .await;
    bad.assert_problem(422, "validation");
    assert_eq!(bad.body["errors"][0]["field"], "responses[1].answers.subsidy", "{}", bad.text);
    assert_eq!(app.event_count().await, before);
}

/// `huiyin seed-demo` loads a campaign in progress: every record and case it writes folds to its
/// projection row (the integrity watch finds nothing), the cases carry the campaign, and a second
/// run loads nothing twice.
#[tokio::test]
async fn the_demo_campaign_loads_once_and_every_record_and_case_verifies() {
    let db = tests::TestDb::new().await;
    let pool = db.app_pool();
    let reference = infra::reference::ReferenceData::new(pool.clone());
    api::seed::seed_demo(&reference).await.unwrap();
    let summary = api::seed::campaign::seed_campaign(&pool, &reference).await.unwrap();
    assert!(summary.contains("6 opinions"), "{summary}");
    let again = api::seed::campaign::seed_campaign(&pool, &reference).await.unwrap();
    assert_eq!(again, "the demo campaign is already loaded");

    let client = db.app_client().await;
    let count = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    // By type: 1 campaign, 3 meetings, 2 visits, 1 card batch, 1 questionnaire.
    assert_eq!(count("SELECT count(*) FROM records").await, 8);
    assert_eq!(count("SELECT count(*) FROM records WHERE restricted").await, 1, "the undercover visit");
    // 6 opinions + 1 finding + 1 card + 2 questionnaire complaints, every one tagged.
    assert_eq!(count("SELECT count(*) FROM ledger").await, 10);
    assert_eq!(
        count("SELECT count(*) FROM ledger WHERE campaign_phase = 'implementation' AND source_id IS NOT NULL").await,
        10
    );

    let mut status = infra::watch::WatchStatus { cursor: "0".into(), ..Default::default() };
    loop {
        let (found, caught_up) = infra::watch::run_once(&pool, &mut status, 500).await.unwrap();
        assert_eq!(found, vec![], "a seeded record or case raised an alarm");
        if caught_up {
            break;
        }
    }
    assert_eq!(status.cases_checked, 18, "8 records and 10 cases");
    let report = infra::ledger::verify_projections(&db.owner_settings()).await.unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    let verified = infra::EventStore::new(pool.clone()).verify_all().await.unwrap();
    assert!(verified.failures.is_empty());
    assert_eq!(verified.cases, 18);

    // A projection row changed behind the log (the undercover visit shown as disclosed): the
    // watch, reading the log again, names that record and nothing else.
    let forged: Uuid = db
        .owner_client()
        .await
        .query_one("UPDATE records SET restricted = false WHERE restricted RETURNING record_id", &[])
        .await
        .unwrap()
        .get(0);
    let mut status = infra::watch::WatchStatus { cursor: "0".into(), ..Default::default() };
    let mut found = Vec::new();
    loop {
        let (f, caught_up) = infra::watch::run_once(&pool, &mut status, 500).await.unwrap();
        found.extend(f);
        if caught_up {
            break;
        }
    }
    assert_eq!(found.iter().map(|f| f.case_id).collect::<Vec<_>>(), vec![forged], "{found:?}");
    assert!(found[0].problem.contains("record's row differs"), "{found:?}");
    // `huiyin verify --projections` names it too, and nothing else.
    let report = infra::ledger::verify_projections(&db.owner_settings()).await.unwrap();
    assert_eq!(
        report.mismatches.iter().map(|m| m.case_id).collect::<Vec<_>>(),
        vec![forged],
        "{:?}",
        report.mismatches
    );
    // `huiyin rebuild` writes every record's row again from the log: the forgery is gone.
    assert_eq!(infra::records::rebuild(&db.owner_settings()).await.unwrap(), 8);
    let report = infra::ledger::verify_projections(&db.owner_settings()).await.unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    assert_eq!(
        count("SELECT count(*) FROM records WHERE restricted").await,
        1,
        "the undercover visit is restricted again"
    );
}

/// Issue 11: "Each new stream replays as of a past moment and verifies; tampering with one of
/// its events is found by `verify`" — for every record type: a record, then a change to it; as
/// of a moment between the two it shows version 1; its chain verifies; after one byte of its
/// first event changes, both the record's check and `verify_all` name it.
#[tokio::test]
async fn every_record_type_replays_as_of_a_past_moment_and_a_changed_event_is_found() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let today = chrono::Utc::now().date_naive();
    let day = |d: i64| (today + chrono::Duration::days(d)).to_string();
    let c = campaign(&app).await;
    let cases: [(&str, Value, &str, Value); 5] = [
        ("campaigns", Value::Null, "documents", json!({"kind": "publicity", "title": "宣传", "content": "张贴海报"})),
        (
            "meetings",
            json!({"topic": "座谈", "held_on": day(0), "venue": "会议室", "host_unit_id": app.village, "chair": "李",
                   "recorder": "王", "attendance": [{"type": "other", "count": 22}]}),
            "opinions",
            json!({"opinions": [opinion(1)]}),
        ),
        (
            "visits",
            json!({"mode": "undercover", "visited_on": day(0), "organiser_unit_id": app.town, "team": [{"name": "张"}],
                   "places": [{"type": "firm", "name": "砖厂", "village_id": app.village}]}),
            "findings",
            json!({"text": "发现问题"}),
        ),
        (
            "contact-cards/batches",
            json!({"serial_from": 1, "serial_to": 100, "phone": "0571", "email": "a@b.cn", "village_id": app.village,
                   "delivered_on": day(0)}),
            "handouts",
            json!({"serial_from": 1, "serial_to": 10, "on": day(0)}),
        ),
        (
            "surveys",
            json!({"title": "问卷", "respondent_type": "村民", "surveyed_on": day(0), "place": "村委会", "surveyor": "王",
                   "unit_id": app.village, "questions": [{"key": "q1", "text": "补贴是否到位", "kind": "yes_no"}]}),
            "responses",
            json!({"responses": [{"village_id": app.village, "answers": {"q1": false}}]}),
        ),
    ];
    let mut ids = Vec::new();
    for (path, create, action, change) in cases {
        let id = if create.is_null() {
            c.to_string()
        } else {
            let r = app.post(&format!("/api/v1/{path}"), &sup, create).await;
            assert_eq!(r.status, StatusCode::CREATED, "{path}: {}", r.text);
            r.body["id"].as_str().unwrap().to_owned()
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let between = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let r = app.post(&format!("/api/v1/{path}/{id}/{action}"), &sup, change).await;
        assert_eq!(r.status, StatusCode::OK, "{path} {action}: {}", r.text);
        assert_eq!(r.body["version"], 2, "{path}");
        let then = app.get(&format!("/api/v1/{path}/{id}?as_of={between}"), &sup).await;
        assert_eq!(then.status, StatusCode::OK, "{path}: {}", then.text);
        assert_eq!(then.body["version"], 1, "{path} as of the moment before the change");
        let v = app.get(&format!("/api/v1/records/{id}/verify"), &sup).await;
        assert_eq!(v.body["status"], "ok", "{path}: {}", v.text);
        assert_eq!(v.body["events"], 2, "{path}");
        ids.push((path, id));
    }
    let store = infra::EventStore::new(app.db.app_pool());
    assert!(store.verify_all().await.unwrap().failures.is_empty());
    let su = app.db.super_client().await;
    for (path, id) in &ids {
        su.batch_execute(&format!(
            "ALTER TABLE events DISABLE TRIGGER USER; \
             UPDATE events SET occurred_at = occurred_at + interval '1 microsecond' WHERE case_id = '{id}' AND version = 1; \
             ALTER TABLE events ENABLE TRIGGER USER;"
        ))
        .await
        .unwrap();
        let v = app.get(&format!("/api/v1/records/{id}/verify"), &sup).await;
        assert_eq!(v.body["status"], "tampered", "{path}: {}", v.text);
        assert_eq!(v.body["first_bad_version"], 1, "{path}");
    }
    let report = store.verify_all().await.unwrap();
    let mut failed: Vec<String> = report.failures.iter().map(|f| f.case_id.to_string()).collect();
    let mut want: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    failed.sort();
    want.sort();
    assert_eq!(failed, want, "verify names the five changed records and nothing else");
}

/// What the first review found: campaigns that would both claim a case, records outside the
/// campaign they name, days that have not happened, a handler shown an accusation's case id
/// through a meeting, and concurrent opinions refused for numbers nobody gave.
#[tokio::test]
async fn campaigns_do_not_overlap_records_stay_inside_them_and_opinions_number_themselves() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let clerk = app.token("clerk", None);
    let c = campaign(&app).await;
    let today = chrono::Utc::now().date_naive();
    let d = |days: i64| (today + chrono::Duration::days(days)).to_string();
    // A second campaign over the same village on some of the same days: refused; on other days: taken.
    let second = |from: i64, to: i64| {
        json!({"name": "第二轮", "leading_unit_id": app.town, "unit_ids": [app.village],
               "phases": [{"phase": "implementation", "from": d(from), "to": d(to)}]})
    };
    app.post("/api/v1/campaigns", &sup, second(50, 80)).await.assert_problem(422, "campaigns-overlap");
    assert_eq!(app.post("/api/v1/campaigns", &sup, second(61, 90)).await.status, StatusCode::CREATED);
    // A meeting that names the campaign on a day outside its phases, or hosted by a unit that
    // does not take part: refused. One that happened in the future: refused.
    let meeting_on = |day: String, host: Uuid| {
        json!({"topic": "座谈", "held_on": day, "venue": "会议室", "host_unit_id": host, "campaign_id": c,
               "chair": "李", "recorder": "王", "attendance": [{"type": "other", "count": 20}]})
    };
    app.post("/api/v1/meetings", &clerk, meeting_on(d(-40), app.village)).await.assert_problem(422, "outside-campaign");
    app.post("/api/v1/meetings", &clerk, meeting_on(d(0), app.dept_a)).await.assert_problem(422, "outside-campaign");
    // (Two days ahead: "today" is China Standard Time's, up to a day ahead of UTC's.)
    app.post("/api/v1/meetings", &clerk, meeting_on(d(2), app.village)).await.assert_problem(422, "date-in-future");
    let m = app.post("/api/v1/meetings", &clerk, meeting_on(d(0), app.village)).await;
    assert_eq!(m.status, StatusCode::CREATED, "{}", m.text);
    let id = m.body["id"].as_str().unwrap().to_owned();

    // An accusation against the village, raised at its own meeting: the village's handler reads
    // the meeting, but neither the case nor its id.
    let accusation = json!({"opinions": [{"kind": "report", "title": "村干部违规", "description": "反映村干部违规发放补贴。",
                                           "accused_unit_id": app.village}]});
    let r = app.post(&format!("/api/v1/meetings/{id}/opinions"), &clerk, accusation).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let case_id = r.body["cases"][0]["case_id"].as_str().unwrap().to_owned();
    let handler = app.token("handler", Some(app.village));
    let seen = app.get(&format!("/api/v1/meetings/{id}"), &handler).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.body["cases"], json!([]));
    assert!(!seen.text.contains(&case_id), "{}", seen.text);
    assert_eq!(seen.body["record"]["opinions"][0]["case"], Value::Null);
    let history = app.get(&format!("/api/v1/records/{id}/history"), &handler).await;
    assert!(!history.text.contains(&case_id), "{}", history.text);

    // Ten requests at once, each two opinions without numbers: all taken, twenty distinct numbers.
    let mut tasks = Vec::new();
    for n in 0..10 {
        let url = format!("{}/api/v1/meetings/{id}/opinions", app.address);
        let client = app.client.clone();
        let token = clerk.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"opinions": [opinion(2 * n), opinion(2 * n + 1)]}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let after = app.get(&format!("/api/v1/meetings/{id}"), &clerk).await;
    let mut numbers: Vec<u64> =
        after.body["record"]["opinions"].as_array().unwrap().iter().map(|o| o["number"].as_u64().unwrap()).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=21).collect::<Vec<u64>>());
}

/// What the second review found: a finding's text read by the accused unit through its visit,
/// campaign launches that raced past the overlap rule, records and responses outside their
/// campaign, a phase move that left records outside, a card's case left out of its village's
/// campaign, as-of views with today's statuses, handlers shown other villages' results and their
/// own filter ignored, opinion numbers past 10000.
#[tokio::test]
async fn the_second_review_of_the_campaign_records() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let clerk = app.token("clerk", None);
    let admin = app.token("admin", None);
    let handler = app.token("handler", Some(app.village));
    let other_village = app.create_unit(&admin, "西岭村", "village", Some(app.town)).await;
    let c = campaign(&app).await;
    let today = chrono::Utc::now().date_naive();
    let d = |days: i64| (today + chrono::Duration::days(days)).to_string();

    // An accusation against the village from a finding of an open visit: its handler reads the
    // visit, but not the finding's text, evidence or rectification, in the view or the history.
    let v = visit(&app, "open", &clerk).await;
    let v: Value = v.json().await.unwrap();
    let vid = v["id"].as_str().unwrap();
    let f = app
        .post(
            &format!("/api/v1/visits/{vid}/findings"),
            &clerk,
            json!({"text": "会计虚报补贴", "evidence": [{"note": "账本复印件"}]}),
        )
        .await;
    assert_eq!(f.status, StatusCode::OK, "{}", f.text);
    let r = app
        .post(
            &format!("/api/v1/visits/{vid}/cases"),
            &clerk,
            json!({"finding": 1, "kind": "report", "title": "虚报", "accused_unit_id": app.village}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for path in [format!("/api/v1/visits/{vid}"), format!("/api/v1/records/{vid}/history")] {
        let seen = app.get(&path, &handler).await;
        assert_eq!(seen.status, StatusCode::OK, "{path}");
        assert!(!seen.text.contains("会计虚报补贴") && !seen.text.contains("账本复印件"), "{path}: {}", seen.text);
    }
    assert!(
        app.get(&format!("/api/v1/visits/{vid}"), &clerk).await.text.contains("会计虚报补贴"),
        "the clerk reads it"
    );

    // Four launches over one unit at the same moment: one campaign.
    let mut tasks = Vec::new();
    for m in 1..=4 {
        let (client, url, token) = (app.client.clone(), format!("{}/api/v1/campaigns", app.address), sup.clone());
        let body = json!({"name": format!("并发{m}"), "leading_unit_id": app.town, "unit_ids": [other_village],
                          "phases": [{"phase": "implementation", "from": format!("2031-0{m}-01"), "to": "2031-08-30"}]});
        tasks.push(tokio::spawn(async move {
            client.post(url).bearer_auth(token).json(&body).send().await.unwrap().status()
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::CREATED => created += 1,
            s => assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY),
        }
    }
    assert_eq!(created, 1);

    // A visit to a village outside the campaign it names; a response from such a village; a
    // phase move that would leave a meeting of the campaign outside its days: refused.
    let outside_visit = json!({"mode": "open", "visited_on": d(0), "organiser_unit_id": app.town, "campaign_id": c,
        "team": [{"name": "张"}], "places": [{"type": "village", "name": "西岭村", "village_id": other_village}]});
    app.post("/api/v1/visits", &clerk, outside_visit).await.assert_problem(422, "outside-campaign");
    let s = app
        .post("/api/v1/surveys", &clerk, json!({"title": "问卷", "respondent_type": "村民", "surveyed_on": d(0), "place": "村委会",
            "surveyor": "王", "unit_id": app.village, "campaign_id": c, "questions": [{"key": "q1", "text": "补贴到位吗", "kind": "yes_no"}]}))
        .await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.text);
    let sid = s.body["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/surveys/{sid}/responses"),
        &clerk,
        json!({"responses": [{"village_id": other_village, "answers": {"q1": true}}]}),
    )
    .await
    .assert_problem(422, "outside-campaign");
    app.post(
        &format!("/api/v1/campaigns/{c}/phases"),
        &sup,
        json!({"phases": [{"phase": "implementation", "from": d(5), "to": d(30)}]}),
    )
    .await
    .assert_problem(422, "outside-campaign");

    // A card of a batch outside any campaign, called from the campaign's village: the case is
    // the campaign's, by its village and day.
    let b = app
        .post(
            "/api/v1/contact-cards/batches",
            &clerk,
            json!({"serial_from": 1, "serial_to": 100, "phone": "0571", "email": "a@b.cn",
            "village_id": app.village, "delivered_on": d(-1)}),
        )
        .await;
    let bid = b.body["id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/contact-cards/batches/{bid}/handouts"),
        &clerk,
        json!({"serial_from": 1, "serial_to": 10, "on": d(0)}),
    )
    .await;
    let mut body = app.case_body();
    body["contact_card_serial"] = json!(5);
    let card_case = app.post("/api/v1/cases", &clerk, body).await;
    assert_eq!(card_case.status, StatusCode::CREATED, "{}", card_case.text);
    assert_eq!(card_case.body["campaign_id"], json!(c));

    // As of a moment before its case was assigned, the batch shows the case as it stood then.
    let case_id = card_case.body["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let before = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let a = app.post(&format!("/api/v1/cases/{case_id}/assign"), &sup, json!({"unit_id": app.dept_a})).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let then = app.get(&format!("/api/v1/contact-cards/batches/{bid}?as_of={before}"), &sup).await;
    assert_eq!(then.body["cases"][0]["status"], "received", "{}", then.text);
    let now = app.get(&format!("/api/v1/contact-cards/batches/{bid}"), &sup).await;
    assert_eq!(now.body["cases"][0]["status"], "assigned");

    // A handler's results count their village only; a filter naming another unit finds nothing.
    let s2 = app
        .post("/api/v1/surveys", &clerk, json!({"title": "问卷二", "respondent_type": "村民", "surveyed_on": d(0), "place": "镇",
            "surveyor": "王", "unit_id": app.town, "questions": [{"key": "q1", "text": "补贴到位吗", "kind": "yes_no"}]}))
        .await;
    let s2 = s2.body["id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/surveys/{s2}/responses"),
            &clerk,
            json!({"responses": [
            {"village_id": app.village, "answers": {"q1": true}},
            {"village_id": other_village, "answers": {"q1": false}},
            {"village_id": other_village, "answers": {"q1": false}}]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mine = app.get(&format!("/api/v1/surveys/{s2}/results"), &handler).await;
    assert_eq!(mine.body["responses"], 1, "{}", mine.text);
    assert!(!mine.text.contains(&other_village.to_string()));
    let all = app.get(&format!("/api/v1/surveys/{s2}/results"), &clerk).await;
    assert_eq!(all.body["responses"], 3);
    let filtered = app.get(&format!("/api/v1/surveys?unit_id={other_village}"), &handler).await;
    assert_eq!(filtered.body["items"], json!([]));

    // No opinion number past 10000.
    let m = meeting(&app, c, 20).await;
    let mid = m["id"].as_str().unwrap();
    let mut top = opinion(1);
    top["number"] = json!(10_000);
    assert_eq!(
        app.post(&format!("/api/v1/meetings/{mid}/opinions"), &clerk, json!({"opinions": [top]})).await.status,
        StatusCode::OK
    );
    app.post(&format!("/api/v1/meetings/{mid}/opinions"), &clerk, json!({"opinions": [opinion(2)]}))
        .await
        .assert_problem(422, "opinion-numbers-exhausted");
}

/// A record's `If-Match: *` holds through a concurrent write, as a case's does: ten documents
/// added at once to one campaign with it are all applied (the campaign goes from version 1 to
/// 11). The losers of the race used to answer 412.
#[tokio::test]
async fn record_commands_at_if_match_star_are_all_applied_under_contention() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let c = campaign(&app).await;
    let url = format!("{}/api/v1/campaigns/{c}/documents", app.address);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let (client, url, sup) = (app.client.clone(), url.clone(), sup.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(sup)
                .header("If-Match", "*")
                .json(&json!({"kind": "publicity", "title": format!("宣传{i}"), "content": "张贴海报"}))
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap_or_default())
        }));
    }
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let r = app.get(&format!("/api/v1/campaigns/{c}"), &sup).await;
    assert_eq!(r.body["version"].as_u64(), Some(11), "{}", r.text);
}

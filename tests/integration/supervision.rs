//! Issue 13: supervision (督办) raised by rules — once per trigger across runs and servers — and
//! answered and closed by hand.

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use domain::events::*;
use domain::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::app::{TestApp, spawn_app};
use tests::story::Story;
use uuid::Uuid;

fn text(s: &str) -> Text {
    Text::parse(s).unwrap()
}

fn reason(s: &str) -> Reason {
    Reason::parse(s).unwrap()
}

fn assign(unit: Uuid) -> Command {
    Command::Assign { unit: UnitId::from_uuid(unit), co_units: vec![], due_at: None, note: None, tier: None }
}

/// A case accepted and dispatched to `unit` on 2 March 2026 and never signed for: its sign-for
/// (due 3 March) and overall clock (due 1 May) are overdue, and, for an identified citizen never
/// told, its acknowledgement (due 17 March) too.
async fn stuck(app: &TestApp, unit: Uuid, identified: bool) -> Story {
    stuck_in(app, unit, identified, None).await
}

/// The same, received in `campaign` (a tag: the rules read it from the ledger row).
async fn stuck_in(app: &TestApp, unit: Uuid, identified: bool, campaign: Option<Uuid>) -> Story {
    let mut s = Story::register_with(app, tests::story::t("2026-03-02T09:00:00+08:00"), |reg| {
        reg.complainant.anonymous = !identified;
        reg.campaign = campaign
            .map(|c| records::CampaignTag { campaign: RecordId::from_uuid(c), phase: records::Phase::Implementation });
    })
    .await;
    s.run(Command::Accept, "2026-03-02T10:00:00+08:00").await;
    s.run(assign(unit), "2026-03-02T12:00:00+08:00").await;
    s
}

/// A recent case (two hours ago, no clock near due), accepted, dispatched and signed for.
async fn recent(app: &TestApp, unit: Uuid) -> (Story, chrono::DateTime<Utc>) {
    let mut at = Utc::now() - Duration::hours(2);
    let mut s = Story::register_at(app, at, false).await;
    for cmd in [Command::Accept, assign(unit), Command::SignFor] {
        at += Duration::seconds(10);
        s.run_at(cmd, at).await;
    }
    (s, at)
}

async fn items(app: &TestApp, base: &str, query: &str) -> Vec<Value> {
    let r = app
        .client
        .get(format!("{base}/api/v1/supervision?{query}"))
        .bearer_auth(app.token("supervisor", None))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["items"].as_array().unwrap().clone()
}

/// The hand count: three stuck cases at unit 1 (one identified) → 3 + 2 + 2 overdue clocks, and
/// unit 1 holds 3 overdue cases > M = 2: one yellow card (重点); a recent case rated 不满意 twice
/// → one repeat-dissatisfaction item; a recent case whose return was refused → one return
/// dispute; a recent case with 3 duplicates linked (N = 3) → one duplicates item. Eleven items,
/// each raised once although two servers run the rules every second, two runs each after all are in.
#[tokio::test]
async fn rules_raise_each_trigger_once_across_runs_and_servers() {
    let app = spawn_app().await;
    let (u1, u2) = (app.dept_a, app.dept_b);
    let x1 = stuck(&app, u1, true).await;
    let x2 = stuck(&app, u1, false).await;
    let campaign = Uuid::new_v4();
    let x3 = stuck_in(&app, u1, false, Some(campaign)).await;

    let (mut y, mut at) = recent(&app, u2).await;
    for _ in 0..2 {
        for cmd in [
            Command::Handle { outcome: Outcome::Resolved, result: text("已处理") },
            Command::FeedBack { method: FeedbackMethod::Phone, content: text("已电话答复") },
            Command::RecordSatisfaction {
                rating: Rating::Dissatisfied,
                comment: None,
                method: RatingMethod::Phone,
                solved: Some(false),
            },
        ] {
            at += Duration::seconds(10);
            y.run_at(cmd, at).await;
        }
    }

    let (mut z, mut at) = recent(&app, u2).await;
    at += Duration::seconds(10);
    z.run_at(Command::RequestReturn { reason: reason("非本单位职责范围") }, at).await;
    at += Duration::seconds(10);
    z.run_at(Command::RefuseReturn { reason: reason("属于本单位职责，请办理") }, at).await;

    let (w, mut at) = recent(&app, u2).await;
    for _ in 0..3 {
        let mut d = Story::register_at(&app, at, false).await;
        at += Duration::seconds(10);
        d.run_at(Command::LinkDuplicate { of: w.id, target: LinkTarget::default() }, at).await;
    }

    let fast = |s: &mut api::settings::ServeArgs| {
        s.supervision.rules_interval_s = 1;
        s.supervision.unit_overdue = 2;
        s.supervision.duplicates = 3;
    };
    let one = app.spawn_another(fast).await;
    let two = app.spawn_another(fast).await;
    // Wait until the rules have found the eleven (a loaded machine may take a few runs), then
    // let both servers run them twice more: nothing may be raised again.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while items(&app, &one, "status=all").await.len() < 11 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;

    let all = items(&app, &one, "status=all").await;
    let mut by_trigger: BTreeMap<(String, Option<String>, Option<String>), usize> = BTreeMap::new();
    for i in &all {
        let key = (
            i["trigger"]["kind"].as_str().unwrap().to_owned(),
            i["case_id"].as_str().map(str::to_owned),
            i["trigger"]["stage"].as_str().map(str::to_owned),
        );
        *by_trigger.entry(key).or_default() += 1;
    }
    assert!(by_trigger.values().all(|n| *n == 1), "a trigger raised twice: {by_trigger:?}");
    let count = |kind: &str| all.iter().filter(|i| i["trigger"]["kind"] == kind).count();
    assert_eq!(count("overdue"), 7, "{all:#?}");
    assert_eq!(count("unit_overdue"), 1, "{all:#?}");
    assert_eq!(count("repeat_dissatisfied"), 1, "{all:#?}");
    assert_eq!(count("return_dispute"), 1, "{all:#?}");
    assert_eq!(count("duplicates"), 1, "{all:#?}");
    assert_eq!(all.len(), 11);
    // The other server sees the same items.
    assert_eq!(items(&app, &two, "status=all").await.len(), 11);
    // Pages of 4 (4 + 4 + 3), each naming the next: every item once, newest first.
    let (mut paged, mut query) = (Vec::new(), "status=all&limit=4".to_owned());
    loop {
        let r = app
            .client
            .get(format!("{one}/api/v1/supervision?{query}"))
            .bearer_auth(app.token("supervisor", None))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let page: Value = r.json().await.unwrap();
        paged.extend(page["items"].as_array().unwrap().iter().map(|i| i["id"].clone()));
        match page["next_cursor"].as_str() {
            Some(c) => query = format!("status=all&limit=4&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, all.iter().map(|i| i["id"].clone()).collect::<Vec<_>>(), "pages of 4 hold the same 11 in order");
    app.get("/api/v1/supervision?cursor=nonsense", &app.token("supervisor", None))
        .await
        .assert_problem(400, "invalid-query");
    // Each item's row is the replay of its events (the watch would otherwise report each one).
    let check = infra::ledger::verify_projections(&app.db.app_settings()).await.unwrap();
    assert!(check.mismatches.is_empty(), "the projections equal the replays: {:?}", check.mismatches);

    let of = |case: CaseId, stage: &str| {
        all.iter()
            .find(|i| i["case_id"] == case.as_uuid().to_string() && i["trigger"]["stage"] == stage)
            .unwrap_or_else(|| panic!("no {stage} item for {case}"))
            .clone()
    };
    // The acknowledgement is the intake's; the overall clock is pressed harder (重点).
    let ack = of(x1.id, "acknowledgement");
    assert!(ack["unit_id"].is_null());
    assert_eq!(of(x1.id, "overall")["level"], "key");
    let sign = of(x2.id, "sign_for");
    assert_eq!(sign["unit_id"], u1.to_string());
    assert_eq!(sign["level"], "general");
    assert_eq!(sign["trigger"]["due_at"].as_str().map(|s| s.starts_with("2026-03-03")), Some(true));
    assert!(sign["days_overdue"].as_i64().unwrap() > 200);
    // x3 was received in a campaign: its two items carry it (a report counts them by it); the
    // unit's card and the other cases' items carry none.
    let in_campaign = items(&app, &one, &format!("status=all&campaign_id={campaign}")).await;
    let mut stages: Vec<(&Value, &Value, &Value)> =
        in_campaign.iter().map(|i| (&i["case_id"], &i["trigger"]["stage"], &i["campaign_id"])).collect();
    stages.sort_by_key(|s| s.1.as_str());
    let (x3_id, c) = (json!(x3.id), json!(campaign));
    assert_eq!(stages, [(&x3_id, &json!("overall"), &c), (&x3_id, &json!("sign_for"), &c)]);
    assert_eq!(all.iter().filter(|i| !i["campaign_id"].is_null()).count(), 2);
    let card = all.iter().find(|i| i["trigger"]["kind"] == "unit_overdue").unwrap();
    assert_eq!(card["unit_id"], u1.to_string());
    assert_eq!(card["level"], "key");
    assert_eq!(card["trigger"]["count"], 3);
    let dissatisfied = all.iter().find(|i| i["trigger"]["kind"] == "repeat_dissatisfied").unwrap();
    assert_eq!(dissatisfied["case_id"], y.id.as_uuid().to_string());
    assert_eq!(dissatisfied["trigger"]["count"], 2);
    let dispute = all.iter().find(|i| i["trigger"]["kind"] == "return_dispute").unwrap();
    assert_eq!(dispute["case_id"], z.id.as_uuid().to_string());
    assert_eq!(dispute["unit_id"], u2.to_string());
    let dupes = all.iter().find(|i| i["trigger"]["kind"] == "duplicates").unwrap();
    assert_eq!(dupes["case_id"], w.id.as_uuid().to_string());
    assert_eq!(dupes["trigger"]["count"], 3);
    // Every item is a stream of the log: one `supervision.raised` each, no more.
    let raised: i64 = app
        .db
        .app_client()
        .await
        .query_one("SELECT count(*) FROM events WHERE event_type = 'supervision.raised'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(raised, 11);
}

#[tokio::test]
async fn a_unit_answers_and_a_supervisor_closes() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let (h1, h2) = (app.token("handler", Some(app.dept_a)), app.token("handler", Some(app.dept_b)));
    let case = app.register(app.case_body()).await;
    let r = app.post(&format!("/api/v1/cases/{case}/assign"), &sup, json!({"unit_id": app.dept_a})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // 回避: an item about a case supervises the unit handling it, never another (a unit the
    // complaint accuses would read the item).
    let mut accusing = app.case_body();
    accusing["accused_unit_id"] = json!(app.dept_b);
    let accusing = app.register(accusing).await;
    let r = app.post(&format!("/api/v1/cases/{accusing}/assign"), &sup, json!({"unit_id": app.dept_a})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.post(
        "/api/v1/supervision",
        &sup,
        json!({"level": "listed", "unit_id": app.dept_b, "case_id": accusing, "reason": "检举一案挂牌督办"}),
    )
    .await
    .assert_problem(422, "unknown-reference");
    app.post("/api/v1/supervision", &sup, json!({"level": "key", "unit_id": app.dept_a, "reason": "ab"}))
        .await
        .assert_problem(422, "validation");
    let r = app
        .post(
            "/api/v1/supervision",
            &sup,
            json!({"level": "listed", "unit_id": app.dept_a, "case_id": case, "reason": "群众反映强烈，挂牌督办"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["trigger"], json!({"kind": "manual", "reason": "群众反映强烈，挂牌督办"}));
    assert_eq!(r.body["status"], "open");
    assert!(r.body["response_due_at"].as_str().unwrap() > r.body["raised_at"].as_str().unwrap());

    // Another unit neither sees nor answers it; handlers cannot raise or close.
    assert_eq!(app.get(&format!("/api/v1/supervision/{id}"), &h2).await.status, StatusCode::NOT_FOUND);
    assert!(app.get("/api/v1/supervision", &h2).await.body["items"].as_array().unwrap().is_empty());
    app.post(&format!("/api/v1/supervision/{id}/response"), &h2, json!({"text": "不是我们的"}))
        .await
        .assert_problem(404, "not-found");
    app.post(&format!("/api/v1/supervision/{id}/closure"), &h1, json!({"note": "自己关掉"}))
        .await
        .assert_problem(403, "forbidden");

    // Closing without a response needs a note.
    app.post(&format!("/api/v1/supervision/{id}/closure"), &sup, json!({}))
        .await
        .assert_problem(409, "response-required");
    let r =
        app.post(&format!("/api/v1/supervision/{id}/response"), &h1, json!({"text": "已督促办理，三日内答复"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["responses"][0]["text"], "已督促办理，三日内答复");
    assert!(r.body["response_days_overdue"].is_null());
    let r = app.post(&format!("/api/v1/supervision/{id}/closure"), &sup, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "closed");
    app.post(&format!("/api/v1/supervision/{id}/response"), &h1, json!({"text": "补充说明情况"}))
        .await
        .assert_problem(409, "supervision-closed");
    assert!(app.get("/api/v1/supervision", &sup).await.body["items"].as_array().unwrap().is_empty());
    assert_eq!(app.get("/api/v1/supervision?status=all", &sup).await.body["items"].as_array().unwrap().len(), 1);
    // The item's history is a chain like any record's.
    let h = app.get(&format!("/api/v1/records/{id}/history"), &sup).await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.text);
    let types: Vec<&str> =
        h.body["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["supervision.raised", "supervision.responded", "supervision.closed"]);

    // Bad input: a 4xx problem naming the field, nothing written.
    let before = app.event_count().await;
    app.post("/api/v1/supervision", &sup, json!({"level": "listed", "unit_id": app.dept_a, "reason": "  "}))
        .await
        .assert_problem(422, "validation");
    app.post(
        "/api/v1/supervision",
        &sup,
        json!({"level": "listed", "unit_id": Uuid::new_v4(), "reason": "群众反映强烈"}),
    )
    .await
    .assert_problem(422, "unknown-reference");
    app.post("/api/v1/supervision", &sup, json!({"level": "orange", "unit_id": app.dept_a, "reason": "群众反映强烈"}))
        .await
        .assert_problem(422, "validation");
    app.get("/api/v1/supervision?status=closedish", &sup).await.assert_problem(400, "invalid-query");
    assert_eq!(app.event_count().await, before);
}

//! Issue 13: the summary report (总结报告) — its JSON's figures, the printable page rendered in
//! headless Chromium with its charts and the same figures, the PDF's text, and the freeze at
//! the end of the summary phase.

use std::process::Command as Process;

use domain::events::*;
use domain::records::{CampaignTag, Phase};
use domain::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tests::app::{TestApp, spawn_app};
use tests::story::Story;
use uuid::Uuid;

fn text(s: &str) -> Text {
    Text::parse(s).unwrap()
}

/// A campaign over March–May 2026 (finished: its summary phase ended on 31 May).
async fn campaign(app: &TestApp) -> Uuid {
    let r = app
        .post(
            "/api/v1/campaigns",
            &app.token("supervisor", None),
            json!({
                "name": "2026年春季纠风工作基层行",
                "leading_unit_id": app.town,
                "unit_ids": [app.village],
                "phases": [
                    {"phase": "preparation", "from": "2026-03-01", "to": "2026-03-08"},
                    {"phase": "implementation", "from": "2026-03-09", "to": "2026-04-30"},
                    {"phase": "summary", "from": "2026-05-01", "to": "2026-05-31"}
                ]
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["id"].as_str().unwrap().parse().unwrap()
}

async fn get(app: &TestApp, path: &str, accept: &str) -> (StatusCode, String, Vec<u8>) {
    let r = app
        .client
        .get(format!("{}{path}", app.address))
        .bearer_auth(app.token("supervisor", None))
        .header("accept", accept)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

/// The value of a `data-figure` attribute's element in the page.
fn figure(html: &str, name: &str) -> String {
    let key = format!("data-figure=\"{name}\">");
    let at = html.find(&key).unwrap_or_else(|| panic!("no figure {name} in the page")) + key.len();
    html[at..].split('<').next().unwrap().to_owned()
}

/// Three cases of the campaign in the village, hand-counted: A (web, complaint) replied and
/// rated 满意; B (phone, complaint) replied and rated 不满意 (reopened, round 2 open); C (web,
/// suggestion) never dispatched. One meeting with 24 attendees.
#[tokio::test]
async fn the_summary_report_prints_and_freezes() {
    let app = spawn_app().await;
    let cid = campaign(&app).await;
    let tag = CampaignTag { campaign: RecordId::from_uuid(cid), phase: Phase::Implementation };
    let village = UnitId::from_uuid(app.village);
    let reg = |channel: Channel, kind: CaseKind| {
        move |r: &mut Registration| {
            r.channel = channel;
            r.kind = kind;
            r.village = Some(village);
            r.campaign = Some(tag);
        }
    };
    let t0 = tests::story::t("2026-03-16T09:00:00+08:00");
    let h = chrono::Duration::hours;
    let mut a = Story::register_with(&app, t0, reg(Channel::Web, CaseKind::Complaint)).await;
    let mut b = Story::register_with(&app, t0 + h(1), reg(Channel::Phone, CaseKind::Complaint)).await;
    Story::register_with(&app, t0 + chrono::Duration::days(8), reg(Channel::Web, CaseKind::Suggestion)).await;
    for (s, rating) in [(&mut a, Rating::Satisfied), (&mut b, Rating::Dissatisfied)] {
        let mut at = t0 + h(2);
        for cmd in [
            Command::Accept,
            Command::Assign {
                unit: UnitId::from_uuid(app.dept_a),
                co_units: vec![],
                due_at: None,
                note: None,
                tier: None,
            },
            Command::SignFor,
            Command::Handle { outcome: Outcome::Resolved, result: text("已修复") },
            Command::FeedBack { method: FeedbackMethod::Phone, content: text("已答复群众") },
            Command::RecordSatisfaction { rating, comment: None, method: RatingMethod::Phone, solved: Some(true) },
        ] {
            at += h(3);
            s.run_at(cmd, at).await;
        }
    }
    let m = app
        .post(
            "/api/v1/meetings",
            &app.token("clerk", None),
            json!({"topic": "惠民政策落实情况座谈会", "held_on": "2026-03-20", "venue": "村委会会议室",
                   "host_unit_id": app.village, "campaign_id": cid, "chair": "李书记", "recorder": "王干事",
                   "attendance": [{"type": "npc_deputy", "count": 4}, {"type": "villager_representative", "count": 20}]}),
        )
        .await;
    assert_eq!(m.status, StatusCode::CREATED, "{}", m.text);
    // An undercover visit not yet disclosed: in no printed report.
    let v = app
        .post(
            "/api/v1/visits",
            &app.token("supervisor", None),
            json!({"mode": "undercover", "visited_on": "2026-03-25", "organiser_unit_id": app.town,
                   "campaign_id": cid, "team": [{"name": "纪委 张"}],
                   "places": [{"type": "school", "name": "中心小学", "village_id": app.village}]}),
        )
        .await;
    assert_eq!(v.status, StatusCode::CREATED, "{}", v.text);

    // Two items under supervision: case A listed (挂牌督办) and closed, case B key (重点督办), open.
    let sup = app.token("supervisor", None);
    for (case, level) in [(a.id, "listed"), (b.id, "key")] {
        let r = app
            .post(
                "/api/v1/supervision",
                &sup,
                json!({"level": level, "unit_id": app.dept_a, "case_id": case, "reason": "群众反映强烈，督办落实"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        if level == "listed" {
            let id = r.body["id"].as_str().unwrap().to_owned();
            let closed = app
                .post(&format!("/api/v1/supervision/{id}/closure"), &sup, json!({"note": "已现场核实，问题已解决"}))
                .await;
            assert_eq!(closed.status, StatusCode::OK, "{}", closed.text);
        }
    }
    // A third item about the unit alone belongs to no campaign: the report does not count it.
    let r = app
        .post(
            "/api/v1/supervision",
            &sup,
            json!({"level": "general", "unit_id": app.dept_a, "reason": "本月超期件较多，督促整改"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(r.body["campaign_id"].is_null());
    // The two about the campaign's cases carry it, and the list filters on it.
    let listed = app.get(&format!("/api/v1/supervision?status=all&campaign_id={cid}"), &sup).await;
    let listed: Vec<(&Value, &Value)> =
        listed.body["items"].as_array().unwrap().iter().map(|i| (&i["case_id"], &i["campaign_id"])).collect();
    let (a_id, b_id, cid_v) = (json!(a.id), json!(b.id), json!(cid));
    assert_eq!(listed, [(&b_id, &cid_v), (&a_id, &cid_v)], "newest first");
    let path = format!("/api/v1/reports/summary?campaign_id={cid}&village_id={}", app.village);
    let (status, ct, body) = get(&app, &path, "application/json").await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(ct.starts_with("application/json"));
    let r: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(r["cases"], 3);
    assert_eq!(r["frozen"], true, "the summary phase ended on 31 May");
    assert!(r["log_position"].as_i64().unwrap() > 0);
    let count = |list: &str, key: &str| {
        r[list].as_array().unwrap().iter().find(|c| c["key"] == key).map(|c| c["count"].clone()).unwrap_or(json!(0))
    };
    assert_eq!((count("by_channel", "web"), count("by_channel", "phone")), (json!(2), json!(1)));
    assert_eq!((count("by_kind", "complaint"), count("by_kind", "suggestion")), (json!(2), json!(1)));
    assert_eq!(r["activity"]["meetings"], 1);
    assert_eq!(r["activity"]["attendees"], 24);
    assert_eq!(r["activity"]["visits_undercover"], 0, "an undisclosed undercover visit is not printed");
    assert_eq!(r["satisfaction"]["satisfied"], 1);
    // Each case's last rated round: B's round 2 is not rated yet, its 不满意 stands.
    assert_eq!(r["satisfaction"]["dissatisfied"], 1);
    assert_eq!(r["satisfaction"]["unrated"], 1);
    // Replies: A and B (round 1), B's reopened; both followed up. Ratings of the last round: A
    // 满意 and B 不满意 (B's round 2 has none yet).
    assert_eq!(r["kpis"]["rework_rate"], json!({"numerator": 1, "denominator": 2, "value": 0.5}));
    assert_eq!((&r["supervision"]["raised"], &r["supervision"]["open"]), (&json!(2), &json!(1)));
    assert_eq!(
        r["supervision"]["by_level"],
        json!([{"key": "key", "name": "重点督办", "count": 1}, {"key": "listed", "name": "挂牌督办", "count": 1}])
    );
    assert_eq!(r["supervision"]["by_trigger"], json!([{"key": "manual", "name": "人工督办", "count": 2}]));
    assert_eq!(r["kpis"]["follow_up_rate"]["numerator"], 2);
    assert_eq!(r["kpis"]["satisfaction_rate"], json!({"numerator": 1, "denominator": 2, "value": 0.5}));
    let weekly: Vec<(String, i64)> = r["weekly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["week"].as_str().unwrap().to_owned(), w["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(weekly, [("2026-03-16".to_owned(), 2), ("2026-03-23".to_owned(), 1)]);

    // Frozen: a case of the campaign written to the log after (in the village, in its weeks)
    // answers nothing new, byte for byte.
    Story::register_with(&app, t0, reg(Channel::Web, CaseKind::Complaint)).await;
    // And nothing joins the campaign through the API any more: a meeting naming it is refused,
    // and a case of its village on one of its days is registered outside it.
    let m = app
        .post(
            "/api/v1/meetings",
            &app.token("clerk", None),
            json!({"topic": "补开座谈会", "held_on": "2026-04-02", "venue": "村委会会议室",
                   "host_unit_id": app.village, "campaign_id": cid, "chair": "李书记", "recorder": "王干事",
                   "attendance": [{"type": "villager_representative", "count": 9}]}),
        )
        .await;
    m.assert_problem(409, "campaign-finished");
    let supervisor = app.token("supervisor", None);
    let stats = format!("/api/v1/stats?campaign_id={cid}&from=2026-01-01T00:00:00Z");
    assert_eq!(app.get(&stats, &supervisor).await.body["total"], 4, "three cases and the one written after");
    let mut late = app.case_body();
    late["received_at"] = json!("2026-04-01T09:00:00+08:00");
    let registered = app.post("/api/v1/cases", &app.token("clerk", None), late).await;
    assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.text);
    assert_eq!(app.get(&stats, &supervisor).await.body["total"], 4, "the late case is not the campaign's");
    let (_, _, again) = get(&app, &path, "application/json").await;
    assert_eq!(again, body, "a frozen report is served unchanged");

    // Replayed from the log at its snapshot, it is the same bytes: the events after it (the
    // fourth case) are not folded in.
    let replay_path = format!("/api/v1/reports/summary/replay?campaign_id={cid}&village_id={}", app.village);
    let auditor = app.token("auditor", None);
    let replay = app.get(&replay_path, &auditor).await;
    assert_eq!(replay.status, StatusCode::OK, "{}", replay.text);
    assert_eq!(replay.body["identical"], true, "{}", replay.text);
    assert_eq!(replay.body["differences"], json!([]));
    assert_eq!(replay.body["stored_sha256"], replay.body["replayed_sha256"]);
    assert_eq!(replay.body["log_position"], r["log_position"]);
    assert_eq!(replay.body["log_snapshot"], r["log_snapshot"]);
    // The whole campaign's report was frozen with the village's, at the same snapshot: the case and
    // the meeting recorded since are in neither.
    let (_, _, whole) = get(&app, &format!("/api/v1/reports/summary?campaign_id={cid}"), "application/json").await;
    let whole: Value = serde_json::from_slice(&whole).unwrap();
    assert_eq!((whole["frozen"].clone(), whole["cases"].clone()), (json!(true), json!(3)));
    assert_eq!((&whole["log_snapshot"], &whole["log_position"]), (&r["log_snapshot"], &r["log_position"]));
    assert_eq!(whole["activity"]["meetings"], 1);

    // The page: Chinese, A4, three charts, and the JSON's figures.
    let (status, ct, html) = get(&app, &path, "text/html").await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.starts_with("text/html"));
    let html = String::from_utf8(html).unwrap();
    assert!(html.contains("size: A4") && html.contains("总结报告"));
    for chart in ["chart-category", "chart-weekly", "chart-satisfaction"] {
        assert!(html.contains(&format!("<svg id=\"{chart}\"")), "no {chart}");
    }
    assert!(!html.contains("http://") || html.matches("http://").all(|_| html.contains("http://www.w3.org/2000/svg")));
    assert_eq!(figure(&html, "cases"), r["cases"].to_string());
    assert_eq!(figure(&html, "activity.attendees"), r["activity"]["attendees"].to_string());
    assert_eq!(figure(&html, "kpis.rework_rate.numerator"), "1");
    assert_eq!(figure(&html, "kpis.rework_rate.denominator"), "2");
    assert_eq!(figure(&html, "kpis.rework_rate.value"), "50.0%");
    // The printed fingerprint is the one the replay checks.
    assert_eq!(figure(&html, "fingerprint"), replay.body["stored_sha256"].as_str().unwrap());
    // A finished campaign's days no longer move: its report stands on them.
    let moved = app
        .post(
            &format!("/api/v1/campaigns/{cid}/phases"),
            &app.token("supervisor", None),
            json!({"phases": [
                {"phase": "preparation", "from": "2026-03-01", "to": "2026-03-08"},
                {"phase": "implementation", "from": "2026-03-09", "to": "2026-04-30"},
                {"phase": "summary", "from": "2026-05-01", "to": "2027-05-31"}
            ]}),
        )
        .await;
    moved.assert_problem(409, "campaign-finished");

    // Headless Chromium (Debian's chromium-headless-shell) renders it to a screenshot.
    let dir = std::env::temp_dir().join(format!("huiyin-report-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("report.html");
    std::fs::write(&page, &html).unwrap();
    let shot = dir.join("report.png");
    let browser = ["chromium-headless-shell", "chromium"]
        .into_iter()
        .find(|b| Process::new(b).arg("--version").output().is_ok_and(|o| o.status.success()))
        .expect("headless Chromium is installed (apt-get install chromium-headless-shell; .ci/run does)");
    let out = Process::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1240,1754"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&shot).expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "a page with text and charts, not a blank one: {} bytes", png.len());
    // Kept for a person to look at (target/ is not committed).
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/summary-report.png"), &png);

    // The PDF: the same figures as text.
    let (status, ct, pdf) = get(&app, &path, "application/pdf").await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&pdf));
    assert_eq!(ct, "application/pdf");
    assert!(pdf.starts_with(b"%PDF-"));
    let file = dir.join("report.pdf");
    std::fs::write(&file, &pdf).unwrap();
    let out = Process::new("pdftotext").arg(&file).arg("-").output().expect("pdftotext (poppler-utils) runs");
    let words = String::from_utf8(out.stdout).unwrap();
    assert!(words.contains("受理 3 件"), "{words}");
    assert!(words.contains("重办率：1 / 2 = 50.0%"), "{words}");
    assert!(words.contains("参会代表（人）：24"), "{words}");
    let _ = std::fs::remove_dir_all(&dir);

    // A stored report altered behind the service's back no longer replays to itself.
    app.db
        .super_client()
        .await
        .execute(
            "UPDATE summary_reports SET report = jsonb_set(report, '{cases}', '4') WHERE campaign_id = $1",
            &[&cid],
        )
        .await
        .unwrap();
    let replay = app.get(&replay_path, &auditor).await;
    assert_eq!(replay.body["identical"], false, "{}", replay.text);
    assert_eq!(replay.body["differences"], json!(["cases"]));
    assert_ne!(replay.body["stored_sha256"], replay.body["replayed_sha256"]);
    app.get(&replay_path, &app.token("clerk", None)).await.assert_problem(403, "forbidden");
    let live = format!("/api/v1/reports/summary/replay?campaign_id={}", Uuid::new_v4());
    app.get(&live, &auditor).await.assert_problem(404, "not-found");

    // An unknown campaign is a 404, a handler may not read it.
    let (status, _, _) = get(&app, &format!("/api/v1/reports/summary?campaign_id={}", Uuid::new_v4()), "*/*").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.get(&path, &app.token("handler", Some(app.dept_a))).await.assert_problem(403, "forbidden");
}

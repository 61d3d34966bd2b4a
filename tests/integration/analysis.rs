//! Issue 13: the KPIs, on a hand-built set of cases with hand-computed values.

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

fn notify(kind: NoticeKind) -> Command {
    Command::NotifyCitizen {
        kind,
        method: FeedbackMethod::Phone,
        content: text("已电话告知"),
        receipt_code_given: true,
        notified_at: None,
    }
}

fn handle() -> Command {
    Command::Handle { outcome: Outcome::Resolved, result: text("已修复路灯") }
}

fn feed_back() -> Command {
    Command::FeedBack { method: FeedbackMethod::Phone, content: text("路灯已修复，请查看") }
}

fn rate(rating: Rating, solved: Option<bool>) -> Command {
    Command::RecordSatisfaction { rating, comment: None, method: RatingMethod::Phone, solved }
}

fn rate_of(v: &Value, name: &str) -> (i64, i64) {
    let r = &v[name];
    (r["numerator"].as_i64().unwrap(), r["denominator"].as_i64().unwrap())
}

/// Six cases, hand-counted (times are China Standard Time; March 2026 has no holiday, so its
/// working days are Monday to Friday; the default limits: sign-for 1 working day,
/// acknowledgement 15 calendar days, answer 60 calendar days from acceptance):
///
/// - A: acknowledged, dispatched to unit 1 and signed for the same day, replied 6 March,
///   rated 满意, solved.
/// - B: acknowledged on 20 March (due 17 March: late); unit 1 signs on 5 March (due 3 March:
///   late), asks to return it; the return is approved to unit 2 (signs the same day); replied
///   11 March, rated 不满意, which reopens it to unit 2; round 2 replied 17 March, rated 基本满意, not solved.
/// - C: acknowledged, dispatched, signed for, never handled: its answer fell due on 1 May and it
///   is still open — a miss.
/// - D: acknowledged, dispatched, withdrawn before sign-for fell due: its sign-for and answer
///   clocks count nowhere; the dispatch counts.
/// - E: not accepted (rejected), the non-acceptance notice sent in time.
/// - F: everything in December 2025, before the period — but its answer fell due on 30 January
///   2026, in the period, and was met.
#[tokio::test]
async fn each_kpi_equals_its_hand_computed_value() {
    let app = spawn_app().await;
    let (u1, u2) = (app.dept_a, app.dept_b);
    let holder = app.db.app_client().await;
    holder.batch_execute("SELECT pg_advisory_lock(hashtext('huiyin.rollups_compact'))").await.unwrap();
    let mut a = Story::register(&app, "2026-03-02T09:00:00+08:00", true).await;
    a.run(Command::Accept, "2026-03-02T10:00:00+08:00").await;
    a.run(notify(NoticeKind::Acknowledgement), "2026-03-02T11:00:00+08:00").await;
    a.run(assign(u1), "2026-03-02T12:00:00+08:00").await;
    a.run(Command::SignFor, "2026-03-02T14:00:00+08:00").await;
    a.run(handle(), "2026-03-05T10:00:00+08:00").await;
    a.run(feed_back(), "2026-03-06T10:00:00+08:00").await;
    a.run(rate(Rating::Satisfied, Some(true)), "2026-03-09T10:00:00+08:00").await;

    let mut b = Story::register(&app, "2026-03-02T09:00:00+08:00", true).await;
    b.run(Command::Accept, "2026-03-02T10:00:00+08:00").await;
    b.run(assign(u1), "2026-03-02T12:00:00+08:00").await;
    b.run(Command::SignFor, "2026-03-05T09:00:00+08:00").await;
    b.run(Command::RequestReturn { reason: reason("非本单位职责") }, "2026-03-05T10:00:00+08:00").await;
    b.run(Command::ApproveReturn { to_unit: Some(UnitId::from_uuid(u2)) }, "2026-03-06T09:00:00+08:00").await;
    b.run(Command::SignFor, "2026-03-06T10:00:00+08:00").await;
    b.run(handle(), "2026-03-10T10:00:00+08:00").await;
    b.run(feed_back(), "2026-03-11T10:00:00+08:00").await;
    b.run(rate(Rating::Dissatisfied, Some(false)), "2026-03-12T10:00:00+08:00").await;
    b.run(handle(), "2026-03-16T10:00:00+08:00").await;
    b.run(feed_back(), "2026-03-17T10:00:00+08:00").await;
    b.run(rate(Rating::BasicallySatisfied, Some(false)), "2026-03-18T10:00:00+08:00").await;
    b.run(notify(NoticeKind::Acknowledgement), "2026-03-20T10:00:00+08:00").await;

    let mut c = Story::register(&app, "2026-03-02T09:00:00+08:00", true).await;
    c.run(Command::Accept, "2026-03-02T10:00:00+08:00").await;
    c.run(notify(NoticeKind::Acknowledgement), "2026-03-03T09:00:00+08:00").await;
    c.run(assign(u1), "2026-03-03T10:00:00+08:00").await;
    c.run(Command::SignFor, "2026-03-03T11:00:00+08:00").await;

    let mut d = Story::register(&app, "2026-03-02T09:00:00+08:00", true).await;
    d.run(Command::Accept, "2026-03-02T10:00:00+08:00").await;
    d.run(notify(NoticeKind::Acknowledgement), "2026-03-02T10:30:00+08:00").await;
    d.run(assign(u1), "2026-03-02T11:00:00+08:00").await;
    d.run(Command::Withdraw { reason: reason("问题已自行解决") }, "2026-03-02T13:00:00+08:00").await;

    let mut e = Story::register(&app, "2026-03-02T09:00:00+08:00", true).await;
    e.run(
        Command::Reject {
            code: NonAcceptanceCode::OutOfRemit,
            reason: reason("不属于受理范围"),
            referred_to: Some(text("县人社局")),
        },
        "2026-03-03T09:00:00+08:00",
    )
    .await;
    e.run(notify(NoticeKind::NonAcceptance), "2026-03-04T09:00:00+08:00").await;

    let mut f = Story::register(&app, "2025-12-01T09:00:00+08:00", true).await;
    f.run(Command::Accept, "2025-12-01T10:00:00+08:00").await;
    f.run(notify(NoticeKind::Acknowledgement), "2025-12-01T11:00:00+08:00").await;
    f.run(assign(u1), "2025-12-01T12:00:00+08:00").await;
    f.run(Command::SignFor, "2025-12-01T13:00:00+08:00").await;
    f.run(handle(), "2025-12-04T10:00:00+08:00").await;
    f.run(feed_back(), "2025-12-05T10:00:00+08:00").await;
    f.run(rate(Rating::Satisfied, Some(true)), "2025-12-08T10:00:00+08:00").await;

    // First with every change still in the rollup's log (the compaction was held off by its
    // lock), then with all of it compacted into the rollup (V25): the same hand counts.
    async fn pending(c: &tokio_postgres::Client) -> i64 {
        c.query_one("SELECT count(*) FROM kpi_fact_changes", &[]).await.unwrap().get(0)
    }
    assert!(pending(&holder).await > 0, "the facts' changes wait in the log");
    assert_hand_kpis(&app, u1, u2).await;
    holder.batch_execute("SELECT pg_advisory_unlock(hashtext('huiyin.rollups_compact'))").await.unwrap();
    let analysis = infra::analysis::Analysis::new(app.db.app_pool());
    let compacted = async || {
        // The service's own compaction may hold the lock for a moment.
        for _ in 0..100 {
            analysis.compact_rollups().await.unwrap();
            if pending(&holder).await == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the rollup's log was never emptied");
    };
    compacted().await;
    assert_hand_kpis(&app, u1, u2).await;
    // A fact already in the rollup changes (C's answer clock is done, late; a reply is added):
    // the rollup follows, before and after compaction.
    c.run(handle(), "2026-11-30T09:00:00+08:00").await;
    c.run(feed_back(), "2026-11-30T10:00:00+08:00").await;
    for _ in 0..2 {
        let check = infra::ledger::verify_projections(&app.db.app_settings()).await.unwrap();
        assert!(check.mismatches.is_empty(), "the rollups count what the facts hold: {:?}", check.mismatches);
        compacted().await;
    }

    let sup = app.token("supervisor", None);
    // An inverted period is a 400 problem.
    app.get("/api/v1/kpis?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", &sup)
        .await
        .assert_problem(400, "invalid-query");
    // So is an instant the spec's pattern refuses (a signed or blank-led year), a leap second,
    // and a fraction beyond nanoseconds.
    for from in
        ["%2B2026-01-01T00:00:00Z", "+2026-01-01T00:00:00Z", "2026-01-01T23:59:60Z", "2026-01-01T00:00:00.1234567890Z"]
    {
        app.get(&format!("/api/v1/kpis?from={from}"), &sup).await.assert_problem(400, "invalid-query");
    }
}

/// The hand-computed KPIs of the six cases of [`each_kpi_equals_its_hand_computed_value`]. The
/// periods start and end at 08:00 China time, so their first and last hours are read from the
/// facts and the whole days between from the rollup.
async fn assert_hand_kpis(app: &TestApp, u1: Uuid, u2: Uuid) {
    let sup = app.token("supervisor", None);
    let period = "from=2026-01-01T00:00:00Z&to=2026-12-01T00:00:00Z";
    let r = app.get(&format!("/api/v1/kpis?{period}"), &sup).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let groups = r.body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{}", r.text);
    let total = &groups[0];
    // Sign-for: A met, B at unit 1 late, B at unit 2 met, C met; D stopped before it fell due.
    assert_eq!(rate_of(total, "timely_sign_for_rate"), (3, 4), "{}", r.text);
    // Acknowledgement: A, C, D, E in time, B late.
    assert_eq!(rate_of(total, "response_rate"), (4, 5), "{}", r.text);
    // Answer: A, B (first reply 11 March), F (due 30 January) met; C open past 1 May: a miss;
    // D withdrawn before it fell due; E never accepted.
    assert_eq!(rate_of(total, "on_time_completion_rate"), (3, 4), "{}", r.text);
    // Dispatches: A, B to unit 1, B to unit 2, C, D; returns: B's.
    assert_eq!(rate_of(total, "return_rate"), (1, 5), "{}", r.text);
    // Replies: A, B round 1 (reopened), B round 2; each followed up with a rating.
    assert_eq!(rate_of(total, "rework_rate"), (1, 3), "{}", r.text);
    assert_eq!(rate_of(total, "follow_up_rate"), (3, 3), "{}", r.text);
    // Last-round ratings: A 满意 solved, B round 2 基本满意 not solved (its round-1 不满意 is not
    // the last round).
    assert_eq!(rate_of(total, "satisfaction_rate"), (2, 2), "{}", r.text);
    assert_eq!(rate_of(total, "resolution_rate"), (1, 2), "{}", r.text);
    // First replies: A 2 → 6 March: 3, 4, 5, 6 = 4 working days; B 2 → 11 March: 3, 4, 5, 6,
    // 9, 10, 11 = 7. Mean 5.5; the 90th percentile of two (type 8) is the larger.
    let days = &total["reply_working_days"];
    assert_eq!(days["count"], 2, "{}", r.text);
    assert_eq!(days["mean"].as_f64(), Some(5.5), "{}", r.text);
    assert_eq!(days["p90"].as_f64(), Some(7.0), "{}", r.text);
    assert!((total["timely_sign_for_rate"]["value"].as_f64().unwrap() - 0.75).abs() < 1e-12);

    // By unit: sign-for of unit 1 (A met, B late, C met), unit 2 (B met); the return is unit
    // 1's; the replies are unit 1's (A) and unit 2's (B, both rounds).
    let r = app.get(&format!("/api/v1/kpis?{period}&group_by=unit"), &sup).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let by = |unit: Uuid| {
        r.body["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"] == unit.to_string())
            .unwrap_or_else(|| panic!("no group for {unit}: {}", r.text))
            .clone()
    };
    let (g1, g2) = (by(u1), by(u2));
    assert_eq!(rate_of(&g1, "timely_sign_for_rate"), (2, 3));
    assert_eq!(rate_of(&g2, "timely_sign_for_rate"), (1, 1));
    assert_eq!(rate_of(&g1, "return_rate"), (1, 4));
    assert_eq!(rate_of(&g2, "return_rate"), (0, 1));
    assert_eq!(rate_of(&g1, "rework_rate"), (0, 1));
    assert_eq!(rate_of(&g2, "rework_rate"), (1, 2));

    // Every case came by symposium: filtered by that channel the units count the same, and unit
    // 1 grouped by channel is unit 1's counts under one key. These read the `unit+channel` pair
    // with its second key fixed, then with its first key fixed (V35's two indexes).
    let r = app.get(&format!("/api/v1/kpis?{period}&group_by=unit&channel=symposium"), &sup).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let of = |unit: Uuid| r.body["groups"].as_array().unwrap().iter().find(|g| g["key"] == unit.to_string()).cloned();
    let (c1, c2) = (of(u1).expect("unit 1's group"), of(u2).expect("unit 2's group"));
    assert_eq!(rate_of(&c1, "timely_sign_for_rate"), (2, 3), "{}", r.text);
    assert_eq!(rate_of(&c2, "timely_sign_for_rate"), (1, 1), "{}", r.text);
    assert_eq!(rate_of(&c1, "return_rate"), (1, 4), "{}", r.text);
    let r = app.get(&format!("/api/v1/kpis?{period}&group_by=channel&unit_id={u1}"), &sup).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let groups = r.body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{}", r.text);
    assert_eq!(groups[0]["key"], "symposium", "{}", r.text);
    assert_eq!(rate_of(&groups[0], "timely_sign_for_rate"), (2, 3), "{}", r.text);
    assert_eq!(rate_of(&groups[0], "return_rate"), (1, 4), "{}", r.text);
    assert_eq!(rate_of(&groups[0], "rework_rate"), (0, 1), "{}", r.text);

    // A handler sees only the facts scoring their unit.
    let h = app.token("handler", Some(u2));
    let r = app.get(&format!("/api/v1/kpis?{period}"), &h).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(rate_of(&r.body["groups"][0], "timely_sign_for_rate"), (1, 1), "{}", r.text);

    // The period places each fact by its own time: December 2025 holds F's sign-for, reply and
    // rating, not its answer (due in January).
    let r = app.get("/api/v1/kpis?from=2025-12-01T00:00:00Z&to=2026-01-01T00:00:00Z", &sup).await;
    let g = &r.body["groups"][0];
    assert_eq!(rate_of(g, "timely_sign_for_rate"), (1, 1), "{}", r.text);
    assert_eq!(rate_of(g, "on_time_completion_rate"), (0, 0), "{}", r.text);
    assert_eq!(rate_of(g, "satisfaction_rate"), (1, 1), "{}", r.text);
    assert!(g["on_time_completion_rate"]["value"].is_null());
}

/// SplitMix64 and Knuth's Poisson sampler (the background's counts, fixed by the seed).
fn poisson(state: &mut u64, lambda: f64) -> u64 {
    let mut next = || {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    };
    let limit = (-lambda).exp();
    let (mut k, mut p) = (0, 1.0);
    loop {
        p *= next();
        if p <= limit {
            return k;
        }
        k += 1;
    }
}

/// Four categories in three villages, each about two cases a week for nine weeks (a flat
/// background); one cell gets ten more cases about 低保 in the recent week (25–31 May 2026), and
/// six uncategorised complaints accuse one unit that week. The trends flag that cell, the unit,
/// and the word 低保 — and no background cell, and not the word every case uses (路灯).
#[tokio::test]
async fn the_trends_flag_an_injected_spike_and_not_the_background() {
    let app = spawn_app().await;
    let cats: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let villages: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let monday = tests::story::t("2026-03-30T10:00:00+08:00");
    let mut rng = 20_261_201_u64;
    for week in 0..9i64 {
        for c in &cats {
            for v in &villages {
                for i in 0..poisson(&mut rng, 2.0) {
                    let at =
                        monday + chrono::Duration::weeks(week) + chrono::Duration::hours(i64::try_from(i).unwrap());
                    Story::register_with(&app, at, |r| {
                        r.category = Some(CategoryId::from_uuid(*c));
                        r.village = Some(UnitId::from_uuid(*v));
                    })
                    .await;
                }
            }
        }
    }
    let recent = tests::story::t("2026-05-27T09:00:00+08:00");
    let mut spike = Vec::new();
    for i in 0..10 {
        let s = Story::register_with(&app, recent + chrono::Duration::minutes(i), |r| {
            r.category = Some(CategoryId::from_uuid(cats[0]));
            r.village = Some(UnitId::from_uuid(villages[0]));
            r.title = Title::parse("低保评定不公开").unwrap();
            r.description = Description::parse("村里低保名单没有张榜公示，评定过程不透明。").unwrap();
        })
        .await;
        spike.push(s.id.as_uuid());
    }
    let accused = app.dept_b;
    for i in 0..6 {
        Story::register_with(&app, recent + chrono::Duration::hours(i), |r| {
            r.accused_unit = Some(UnitId::from_uuid(accused));
            r.title = Title::parse("办事推诿拖延").unwrap();
        })
        .await;
    }

    let sup = app.token("supervisor", None);
    let r = app.get("/api/v1/trends?to=2026-06-01T00:00:00%2B08:00&baseline=8", &sup).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["recent_from"], "2026-05-25");
    assert_eq!(r.body["recent_to"], "2026-06-01");
    assert_eq!(r.body["baseline_from"], "2026-03-30");
    let flagged = |list: &str| -> Vec<Value> {
        r.body[list].as_array().unwrap().iter().filter(|c| c["flagged"] == true).cloned().collect()
    };
    let cells = flagged("cells");
    let keys: Vec<(Value, Value)> = cells.iter().map(|c| (c["category_id"].clone(), c["village_id"].clone())).collect();
    // The spike's cell, and the cell of the six uncategorised complaints (new that week).
    assert_eq!(keys.len(), 2, "{}", serde_json::to_string_pretty(&r.body["cells"]).unwrap());
    assert!(keys.contains(&(json!(cats[0]), json!(villages[0]))), "{keys:?}");
    assert!(keys.contains(&(Value::Null, Value::Null)), "{keys:?}");
    let hot = cells.iter().find(|c| c["category_id"] == json!(cats[0])).unwrap();
    assert!(hot["recent"].as_i64().unwrap() >= 10);
    assert_eq!(hot["baseline"].as_array().unwrap().len(), 8);
    assert!(hot["q"].as_f64().unwrap() <= 0.05 && hot["p"].as_f64().unwrap() < hot["q"].as_f64().unwrap() + 1e-12);
    let examples: Vec<Uuid> =
        hot["examples"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(examples.len(), 5);
    assert!(examples.iter().all(|e| spike.contains(e)), "the examples are the newest recent cases of the cell");
    let units = flagged("accused_units");
    assert_eq!(units.len(), 1, "{}", r.text);
    assert_eq!(units[0]["accused_unit_id"], json!(accused));
    assert_eq!(units[0]["recent"], 6);
    let words = flagged("words");
    let terms: Vec<&str> = words.iter().map(|w| w["term"].as_str().unwrap()).collect();
    assert!(terms.contains(&"低保"), "{terms:?}");
    assert!(!terms.contains(&"路灯"), "{terms:?}");
    let dibao = words.iter().find(|w| w["term"] == "低保").unwrap();
    assert_eq!((dibao["recent"].as_i64(), dibao["baseline"].as_i64()), (Some(10), Some(0)));
    let examples: Vec<Uuid> =
        dibao["examples"].as_array().unwrap().iter().map(|e| e.as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(examples.len(), 5);
    assert!(examples.iter().all(|e| spike.contains(e)), "the examples are recent cases whose title holds the word");

    // A handler may not read what every case says; bad parameters are 400s.
    app.get("/api/v1/trends", &app.token("handler", Some(app.dept_a))).await.assert_problem(403, "forbidden");
    app.get("/api/v1/trends?baseline=1", &sup).await.assert_problem(400, "invalid-query");
    app.get("/api/v1/trends?q_permille=0", &sup).await.assert_problem(400, "invalid-query");
}

/// Rows written before a migration that adds a computed column lack it (V21's facts): the
/// migration marks the ledger, and the next `serve` rebuilds it from the log once and clears the
/// mark.
#[tokio::test]
async fn a_server_rebuilds_the_ledger_a_migration_marked() {
    let app = spawn_app().await;
    let mut a = Story::register(&app, "2026-03-02T09:00:00+08:00", true).await;
    a.run(Command::Accept, "2026-03-02T10:00:00+08:00").await;
    let owner = app.db.owner_client().await;
    let id = a.id.as_uuid();
    let sql = "SELECT jsonb_array_length(facts) FROM ledger WHERE case_id = $1";
    // Acknowledgement and answer clocks.
    assert_eq!(owner.query_one(sql, &[&id]).await.unwrap().get::<_, i32>(0), 2);
    owner.batch_execute("UPDATE ledger SET facts = '[]'; INSERT INTO projection_rebuilds_due (projection, reason) VALUES ('ledger', 'a test')").await.unwrap();
    assert_eq!(owner.query_one(sql, &[&id]).await.unwrap().get::<_, i32>(0), 0);
    // A server with the owner's connection (`HUIYIN_ADMIN_DATABASE_URL`), which may rebuild.
    let owner_url = app.db.owner_settings().url.expose().clone();
    app.spawn_another(|s| s.db.admin_url = Some(owner_url)).await;
    let mut waited = 0;
    while owner.query_one("SELECT count(*) FROM projection_rebuilds_due", &[]).await.unwrap().get::<_, i64>(0) > 0 {
        assert!(waited < 200, "the mark was not cleared within 20 s");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    assert_eq!(
        owner.query_one(sql, &[&id]).await.unwrap().get::<_, i32>(0),
        2,
        "the rebuild restored the facts from the log"
    );
}

/// Two questionnaires a month apart ask whether two policies reached the respondent: the
/// farmland subsidy's "no" rises from 4 of 40 to 20 of 40 (flagged), the subsistence allowance's
/// "未享受" from 10 of 40 to 11 of 40 (not flagged).
#[tokio::test]
async fn a_policy_whose_not_received_share_rose_between_questionnaires_is_flagged() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let mut ids = Vec::new();
    for (day, no, not_enjoyed) in [("2026-05-20", 4, 10), ("2026-06-20", 20, 11)] {
        let s = app
            .post(
                "/api/v1/surveys",
                &clerk,
                json!({
                    "title": "惠农政策落实情况问卷", "respondent_type": "村民", "surveyed_on": day, "place": "东岭村",
                    "surveyor": "纪委 王", "unit_id": app.town,
                    "questions": [
                        {"key": "subsidy", "text": "您是否已收到耕地地力保护补贴？", "kind": "yes_no", "policy": "耕地地力保护补贴"},
                        {"key": "dibao", "text": "您家是否享受低保？", "kind": "single_choice",
                         "options": [{"label": "已享受"}, {"label": "未享受"}], "policy": "农村低保"}
                    ]
                }),
            )
            .await;
        assert_eq!(s.status, StatusCode::CREATED, "{}", s.text);
        let id = s.body["id"].as_str().unwrap().to_owned();
        let responses: Vec<Value> = (0..40)
            .map(|i| {
                json!({"village_id": app.village, "answers": {
                    "subsidy": i >= no,
                    "dibao": if i < not_enjoyed { "未享受" } else { "已享受" }
                }})
            })
            .collect();
        let r = app.post(&format!("/api/v1/surveys/{id}/responses"), &clerk, json!({"responses": responses})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        ids.push(id);
    }
    let r = app.get("/api/v1/trends", &app.token("supervisor", None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let surveys = r.body["surveys"].as_array().unwrap();
    assert_eq!(surveys.len(), 2, "{}", r.text);
    let of = |policy: &str| surveys.iter().find(|s| s["policy"] == policy).unwrap_or_else(|| panic!("{policy}"));
    let subsidy = of("耕地地力保护补贴");
    assert_eq!(subsidy["before"]["survey_id"], ids[0]);
    assert_eq!(
        (subsidy["before"]["not_received"].as_u64(), subsidy["before"]["answered"].as_u64()),
        (Some(4), Some(40))
    );
    assert_eq!(
        (subsidy["latest"]["not_received"].as_u64(), subsidy["latest"]["answered"].as_u64()),
        (Some(20), Some(40))
    );
    assert_eq!(subsidy["flagged"], true, "{subsidy}");
    let dibao = of("农村低保");
    assert_eq!(
        (dibao["latest"]["not_received"].as_u64(), dibao["before"]["not_received"].as_u64()),
        (Some(11), Some(10))
    );
    assert_eq!(dibao["flagged"], false, "{dibao}");
}

/// A statistics request that has to wait for a rebuild's switch-over counts what the switch-over
/// wrote: it locks its tables before it takes its snapshot. The switch-over is played by the
/// owner: it holds the ledger, the rollup and the change log, logs one more case received on a
/// whole day (as its catch-up does), and commits while the request waits. With the snapshot taken
/// first (before the fix) the request read the log as it was before that commit: total 1.
#[tokio::test]
async fn statistics_that_wait_for_a_switch_over_count_what_it_wrote() {
    let app = spawn_app().await;
    Story::register(&app, "2026-03-03T09:00:00+08:00", false).await;
    let owner = app.db.owner_client().await;
    owner
        .batch_execute(
            "BEGIN; LOCK TABLE ledger, case_rollup, case_changes IN ACCESS EXCLUSIVE MODE; \
             INSERT INTO case_changes (sign, received_at, title, duplicate, status, kind, channel) \
             VALUES (1, '2026-03-04T10:00:00+08:00', '村口路灯不亮', false, 'received', 'complaint', 'phone')",
        )
        .await
        .unwrap();
    // 2 to 5 March, China days: whole days only, all read from the rollup and its log.
    let query = "/api/v1/stats?from=2026-03-02T00:00:00%2B08:00&to=2026-03-06T00:00:00%2B08:00";
    let sup = app.token("supervisor", None);
    let (r, ()) = tokio::join!(app.get(query, &sup), async {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        owner.batch_execute("COMMIT").await.unwrap();
    });
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["total"], 2, "{}", r.text);
}

/// Issue 14: `/stats` reads the whole China days of its period from the case rollup (V31) and
/// only the partial first and last days from the ledger. Hand count, China Standard Time, asked
/// for 2 March 10:00 to 5 March 06:00 (whole days: 3 and 4 March):
/// - A, received 2 March 09:00: before the period;
/// - B, received 3 March 23:30 (a whole day: the rollup), accepted and dispatched to unit 1;
/// - C, received 5 March 00:10 (the partial last day: the ledger), received;
/// - D, received 5 March 12:00: after the period.
///
/// So: total 2; assigned 1 and received 1; unit 1 one, no unit one. The same with every change
/// still in the rollup's log, compacted, and after B is handled (logged again, then compacted);
/// a handler of unit 1 (the ledger, scoped) sees B alone.
#[tokio::test]
async fn statistics_read_whole_days_from_the_rollup_and_the_edges_from_the_ledger() {
    let app = spawn_app().await;
    let u1 = app.dept_a;
    let holder = app.db.app_client().await;
    holder.batch_execute("SELECT pg_advisory_lock(hashtext('huiyin.rollups_compact'))").await.unwrap();
    Story::register(&app, "2026-03-02T09:00:00+08:00", false).await;
    let mut b = Story::register(&app, "2026-03-03T23:30:00+08:00", false).await;
    b.run(Command::Accept, "2026-03-03T23:40:00+08:00").await;
    b.run(assign(u1), "2026-03-03T23:50:00+08:00").await;
    Story::register(&app, "2026-03-05T00:10:00+08:00", false).await;
    Story::register(&app, "2026-03-05T12:00:00+08:00", false).await;

    let query = "/api/v1/stats?from=2026-03-02T10:00:00%2B08:00&to=2026-03-05T06:00:00%2B08:00";
    let sup = app.token("supervisor", None);
    let counts = async |status: &str| {
        let r = app.get(query, &sup).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let key = |dim: &str, k: &Value| {
            r.body[dim].as_array().unwrap().iter().find(|x| &x["key"] == k).map(|x| x["count"].as_i64().unwrap())
        };
        assert_eq!(r.body["total"], 2);
        assert_eq!(key("by_status", &json!(status)), Some(1), "{}", r.text);
        assert_eq!(key("by_status", &json!("received")), Some(1), "{}", r.text);
        assert_eq!(key("by_unit", &json!(u1)), Some(1), "{}", r.text);
        assert_eq!(key("by_unit", &Value::Null), Some(1), "{}", r.text);
        assert_eq!(r.body["by_status"].as_array().unwrap().len(), 2, "{}", r.text);
    };
    let pending = async || -> i64 { holder.query_one("SELECT count(*) FROM case_changes", &[]).await.unwrap().get(0) };
    assert!(pending().await > 0, "the changes wait in the log");
    counts("assigned").await;
    holder.batch_execute("SELECT pg_advisory_unlock(hashtext('huiyin.rollups_compact'))").await.unwrap();
    let analysis = infra::analysis::Analysis::new(app.db.app_pool());
    let compacted = async || {
        for _ in 0..100 {
            analysis.compact_rollups().await.unwrap();
            if pending().await == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the rollup's log was never emptied");
    };
    compacted().await;
    counts("assigned").await;
    b.run(Command::SignFor, "2026-03-04T09:00:00+08:00").await;
    b.run(handle(), "2026-03-04T10:00:00+08:00").await;
    counts("handled").await;
    compacted().await;
    counts("handled").await;
    let check = infra::ledger::verify_projections(&app.db.app_settings()).await.unwrap();
    assert!(check.mismatches.is_empty(), "the rollup counts what the ledger holds: {:?}", check.mismatches);
    let mine = app.get(query, &app.token("handler", Some(u1))).await;
    assert_eq!(mine.body["total"], 1, "{}", mine.text);
}

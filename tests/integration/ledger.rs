//! The ledger (台账), the overdue view and statistics, through HTTP on a real database.

use std::collections::HashSet;

use domain::CaseId;
use infra::ledger::{Ledger, LedgerRow};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tests::app::{TestApp, spawn_app};
use uuid::Uuid;

async fn expect_row_equals_replay(app: &TestApp, id: Uuid) {
    let store = infra::EventStore::new(app.db.app_pool());
    let replayed = store.load(CaseId::from_uuid(id)).await.unwrap().case.unwrap();
    let row = Ledger::new(app.db.app_pool()).row(CaseId::from_uuid(id)).await.unwrap().expect("a ledger row");
    assert_eq!(row, LedgerRow::from_case(&replayed, false), "ledger row of {id}");
}

#[tokio::test]
async fn every_lifecycle_path_ends_with_the_ledger_row_equal_to_the_replay() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let cat =
        app.post("/api/v1/categories", &app.token("admin", None), json!({"code": "t.paths", "name": "路径测试"})).await;
    assert_eq!(cat.status, StatusCode::CREATED, "{}", cat.text);
    let category = cat.body["id"].clone();
    let go = |id: Uuid, action: &'static str, body: Value| {
        let sup = sup.clone();
        let app = &app;
        async move {
            let r = app.post(&format!("/api/v1/cases/{id}/{action}"), &sup, body).await;
            assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.text);
        }
    };
    let paths: Vec<Vec<(&str, Value)>> = vec![
        vec![],
        vec![
            ("reject", json!({"reason_code": "out_of_remit", "reason": "不属于受理范围", "referred_to": "镇司法所"})),
            (
                "notices",
                json!({"kind": "non_acceptance", "method": "letter", "content": "告知不予受理，请向镇司法所反映"}),
            ),
            ("close", json!({})),
        ],
        vec![("assign", json!({"unit_id": app.dept_a})), ("transfer", json!({"reason": "非本单位职责"}))],
        vec![
            ("assign", json!({"unit_id": app.dept_a})),
            ("transfer", json!({"reason": "转卫生院", "to_unit_id": app.dept_b})),
        ],
        vec![
            ("escalate", json!({"reason": "督办"})),
            ("assign", json!({"unit_id": app.dept_a})),
            ("handle", json!({"outcome": "resolved", "result": "已处理"})),
        ],
        vec![
            ("assign", json!({"unit_id": app.dept_a})),
            ("handle", json!({"outcome": "resolved", "result": "已处理"})),
            ("feedback", json!({"method": "phone", "content": "已告知"})),
            ("satisfaction", json!({"rating": "dissatisfied", "method": "phone", "solved": false})),
        ],
        vec![
            ("assign", json!({"unit_id": app.dept_a})),
            ("handle", json!({"outcome": "explained", "result": "已解释"})),
            ("feedback", json!({"method": "sms", "content": "短信告知"})),
            ("satisfaction", json!({"rating": "satisfied", "method": "phone", "solved": true})),
            ("close", json!({"note": "办结"})),
            ("reopen", json!({"reason": "回访发现问题反弹"})),
        ],
        vec![("classify", json!({"category_id": category}))],
        vec![
            ("accept", json!({})),
            (
                "notices",
                json!({"kind": "acknowledgement", "method": "sms", "content": "已受理", "receipt_code_given": true}),
            ),
            ("pause", json!({"reason": "等待补充材料"})),
            ("resume", json!({})),
            ("assign", json!({"unit_id": app.dept_a, "co_unit_ids": [app.dept_b]})),
            ("handle", json!({"outcome": "resolved", "result": "已处理"})),
            ("feedback", json!({"method": "phone", "content": "已告知"})),
            ("follow-up-attempts", json!({"method": "phone", "note": "无人接听"})),
        ],
    ];
    let mut ids = Vec::new();
    for steps in paths {
        let id = app.register(app.case_body()).await;
        for (action, body) in steps {
            go(id, action, body).await;
        }
        let other = app.register(app.case_body()).await;
        go(other, "notes", json!({"text": "备注"})).await;
        if ids.len() == 2 {
            // A duplicate's clocks stop; it closes after its own reply.
            go(other, "link-duplicate", json!({"of": id})).await;
            go(other, "feedback", json!({"method": "sms", "content": "您反映的问题已并入同一事项办理"})).await;
            go(other, "close", json!({})).await;
        }
        ids.push(id);
        ids.push(other);
    }
    for id in &ids {
        expect_row_equals_replay(&app, *id).await;
    }
    let report = infra::ledger::verify_projections(&app.db.app_settings()).await.unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    assert_eq!(report.cases, ids.len() as u64);
}

/// Registers a varied set of cases; returns their ids by label.
async fn varied_cases(app: &TestApp) -> Vec<(Uuid, &'static str)> {
    let sup = app.token("supervisor", None);
    let mut out = Vec::new();
    let specs: Vec<(&str, &str, &str, &str, bool)> = vec![
        ("lamp", "村口路灯损坏", "东岭村村口路灯损坏三个月无人修理，夜间出行不便。", "phone", false),
        ("lamp", "路灯不亮", "村道路灯晚上不亮，老人走路摔倒。", "web", false),
        ("dibao", "低保评定不公开", "低保评定没有张榜公示，群众意见很大。", "symposium", false),
        ("dibao", "低保户资格存疑", "有人反映某低保户有车有房，要求核查低保资格。", "visit", true),
        ("school", "学校乱收费", "镇中心小学以资料费名义乱收费。", "letter", false),
        ("water", "饮用水浑浊", "自来水近期浑浊发黄，群众担心饮水安全。", "phone", true),
    ];
    for round in 0..4 {
        for (label, title, desc, channel, urgent) in &specs {
            let mut body = app.case_body();
            body["title"] = json!(title);
            body["description"] = json!(desc);
            body["channel"] = json!(channel);
            body["urgency"] = json!(if *urgent { "urgent" } else { "normal" });
            let id = app.register(body).await;
            if round % 2 == 0 {
                let unit = if *label == "school" { app.dept_b } else { app.dept_a };
                app.post(&format!("/api/v1/cases/{id}/assign"), &sup, json!({"unit_id": unit})).await;
            }
            if round == 3 && *label == "dibao" {
                app.post(&format!("/api/v1/cases/{id}/escalate"), &sup, json!({"reason": "督办"})).await;
            }
            out.push((id, *label));
        }
    }
    out
}

async fn all_pages(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut path = format!("/api/v1/ledger?{query}");
    let mut pages = 0;
    loop {
        let r = app.get(&path, token).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        items.extend(r.body["items"].as_array().unwrap().iter().cloned());
        pages += 1;
        assert!(pages < 100, "paging does not end");
        match r.header("link") {
            Some(link) => {
                let next = link.trim_start_matches('<').split('>').next().unwrap().to_owned();
                assert!(r.body["next_cursor"].is_string());
                path = next;
            }
            None => {
                assert!(r.body["next_cursor"].is_null());
                break;
            }
        }
    }
    items
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["case_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn filters_search_and_paging_return_exactly_the_matching_rows() {
    let app = spawn_app().await;
    let cases = varied_cases(&app).await;
    let clerk = app.token("clerk", None);

    // Paging in small pages, every sort: no gaps, no repeats.
    for sort in ["received_desc", "received_asc"] {
        let items = all_pages(&app, &clerk, &format!("limit=5&sort={sort}")).await;
        let got = ids(&items);
        let unique: HashSet<_> = got.iter().cloned().collect();
        assert_eq!(got.len(), unique.len(), "{sort}: a row repeats across pages");
        assert_eq!(unique, cases.iter().map(|(id, _)| id.to_string()).collect::<HashSet<_>>(), "{sort}: rows missing");
        let times: Vec<&str> = items.iter().map(|i| i["received_at"].as_str().unwrap()).collect();
        let mut sorted = times.clone();
        sorted.sort();
        if sort == "received_desc" {
            sorted.reverse();
        }
        assert_eq!(times, sorted, "{sort} order");
    }
    let due = all_pages(&app, &clerk, "limit=3&sort=due_asc").await;
    assert_eq!(due.len(), cases.len(), "every registered case has a running deadline");
    let dues: Vec<&str> = due.iter().map(|i| i["deadline"]["due_at"].as_str().unwrap()).collect();
    assert!(dues.windows(2).all(|w| w[0] <= w[1]), "due_asc order");

    // Filters.
    let count = |q: &'static str| {
        let app = &app;
        let clerk = clerk.clone();
        async move { all_pages(app, &clerk, q).await.len() }
    };
    assert_eq!(count("status=assigned").await, 12);
    assert_eq!(count("status=received").await, 12);
    assert_eq!(count("channel=phone").await, 8);
    assert_eq!(count("urgency=urgent").await, 8);
    assert_eq!(count("escalated=true").await, 2);
    assert_eq!(count("overdue=false").await, 24);
    assert_eq!(count("overdue=true").await, 0);
    assert_eq!(all_pages(&app, &clerk, &format!("unit_id={}", app.dept_b)).await.len(), 2);
    assert_eq!(all_pages(&app, &clerk, &format!("village_id={}", app.village)).await.len(), 24);
    assert_eq!(all_pages(&app, &clerk, &format!("village_id={}", app.dept_a)).await.len(), 0);
    assert_eq!(count("status=assigned&channel=phone").await, 4);
    let future = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339().replace('+', "%2B");
    assert_eq!(all_pages(&app, &clerk, &format!("received_from={future}")).await.len(), 0);

    // Chinese full-text search over title and description.
    let search = |q: &str| {
        let app = &app;
        let clerk = clerk.clone();
        let q = q.to_owned();
        async move {
            let items = all_pages(app, &clerk, &format!("q={}", urlencode(&q))).await;
            items.iter().map(|i| i["title"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
        }
    };
    let lamps = search("路灯").await;
    assert_eq!(lamps.len(), 8, "{lamps:?}");
    assert!(lamps.iter().all(|t| t.contains("路灯")));
    let dibao = search("低保").await;
    assert_eq!(dibao.len(), 8, "{dibao:?}");
    assert_eq!(search("张榜公示").await.len(), 4, "words of the description are found");
    assert_eq!(search("饮水安全").await.len(), 4);
    assert_eq!(search("火星移民").await.len(), 0);
    assert_eq!(search("路灯 低保").await.len(), 0, "all words must match");

    // Handlers see only their unit.
    let handler = app.token("handler", Some(app.dept_b));
    let mine = all_pages(&app, &handler, "").await;
    assert_eq!(mine.len(), 2);
    assert!(mine.iter().all(|i| i["unit_id"] == json!(app.dept_b)));

    // Bad queries.
    app.get("/api/v1/ledger?limit=1000", &clerk).await.assert_problem(400, "invalid-query");
    app.get("/api/v1/ledger?cursor=garbage", &clerk).await.assert_problem(400, "invalid-query");
    app.get("/api/v1/ledger?status=lost", &clerk).await.assert_problem(400, "invalid-query");
    app.get("/api/v1/ledger?color=red", &clerk).await.assert_problem(400, "invalid-query");
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test]
async fn csv_and_xlsx_exports_hold_the_same_rows_as_the_ledger() {
    let app = spawn_app().await;
    let cases = varied_cases(&app).await;
    let clerk = app.token("clerk", None);
    let json_rows = all_pages(&app, &clerk, "status=assigned").await;
    let expected: HashSet<String> = json_rows.iter().map(|i| i["receipt_code"].as_str().unwrap().to_owned()).collect();
    assert_eq!(expected.len(), cases.len() / 2);

    let resp = app
        .client
        .get(format!("{}/api/v1/ledger?status=assigned", app.address))
        .bearer_auth(&clerk)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(&bytes[..3], &[0xEF, 0xBB, 0xBF], "UTF-8 BOM for Excel");
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, api::routes::ledger::EXPORT_HEADER.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    let mut got = HashSet::new();
    for rec in reader.records() {
        let rec = rec.unwrap();
        assert_eq!(&rec[4], "办理中");
        assert!(rec[8] == *"卫生院" || rec[8] == *"教育办", "unit name: {:?}", &rec[8]);
        got.insert(rec[0].to_owned());
    }
    assert_eq!(got, expected);

    let resp = app
        .client
        .get(format!("{}/api/v1/ledger?status=assigned", app.address))
        .bearer_auth(&clerk)
        .header("accept", api::routes::ledger::XLSX)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let bytes = resp.bytes().await.unwrap().to_vec();
    use calamine::Reader;
    let mut wb: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
    let range = wb.worksheet_range("台账").unwrap();
    let mut rows = range.rows();
    let header: Vec<String> = rows.next().unwrap().iter().map(|c| c.to_string()).collect();
    assert_eq!(header[0], "受理编号");
    let got: HashSet<String> = rows.map(|r| r[0].to_string()).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn the_overdue_view_is_computed_now_by_stage_with_counts_per_unit() {
    let app = spawn_app().await;
    let admin = app.token("admin", None);
    let clerk = app.token("clerk", None);
    let sup = app.token("supervisor", None);
    // 60 days ago and never assigned: overdue at the assignment stage.
    let mut old = app.case_body();
    old["received_at"] = json!((chrono::Utc::now() - chrono::Duration::days(60)).to_rfc3339());
    let old_id = app.register(old).await;
    // Due tomorrow with two thirds of its time used: due soon.
    let cat = app
        .post("/api/v1/categories", &admin, json!({"code": "t.fast", "name": "三日内分派", "deadline_policy": {"assign": {"unit": "hours", "value": 72}}}))
        .await;
    let mut soon = app.case_body();
    soon["category_id"] = cat.body["id"].clone();
    soon["received_at"] = json!((chrono::Utc::now() - chrono::Duration::hours(48)).to_rfc3339());
    let soon_id = app.register(soon).await;
    // Assigned now: on track, not in the view.
    let fresh = app.register(app.case_body()).await;
    app.post(&format!("/api/v1/cases/{fresh}/assign"), &sup, json!({"unit_id": app.dept_a})).await;
    // Overdue at the handling stage: assigned with a deadline that then passes.
    let handled_late = app.register(app.case_body()).await;
    let due = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let r = app
        .post(&format!("/api/v1/cases/{handled_late}/assign"), &sup, json!({"unit_id": app.dept_b, "due_at": due}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // The handling clock (with the dispatcher's short deadline) starts when the unit signs.
    let r = app
        .post(&format!("/api/v1/cases/{handled_late}/sign"), &app.token("handler", Some(app.dept_b)), json!({}))
        .await;
    assert_eq!(r.body["deadline"]["stage"], "handling", "{}", r.text);
    // Received 20 days ago and never acknowledged (the 15-calendar-day acknowledgement clock ran
    // out on day 15), then assigned to dept_a with a short deadline that passes: two clocks late,
    // answered for by two offices.
    let mut ack = app.case_body();
    ack["received_at"] = json!((chrono::Utc::now() - chrono::Duration::days(20)).to_rfc3339());
    let ack_late = app.register(ack).await;
    let due = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let r = app
        .post(&format!("/api/v1/cases/{ack_late}/assign"), &sup, json!({"unit_id": app.dept_a, "due_at": due}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r =
        app.post(&format!("/api/v1/cases/{ack_late}/sign"), &app.token("handler", Some(app.dept_a)), json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;

    let r = app.get("/api/v1/overdue", &clerk).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let items = r.body["items"].as_array().unwrap();
    let find = |id: Uuid| items.iter().find(|i| i["case_id"] == json!(id)).cloned();
    let old_row = find(old_id).expect("the 60-day-old case is listed");
    assert_eq!(old_row["deadline"]["stage"], "assignment");
    assert_eq!(old_row["deadline"]["state"], "overdue");
    assert!(old_row["deadline"]["working_days_overdue"].as_u64().unwrap() >= 30);
    let soon_row = find(soon_id).expect("the case due tomorrow is listed");
    assert_eq!(soon_row["deadline"]["state"], "due_soon");
    let used = soon_row["deadline"]["permille_used"].as_u64().unwrap();
    assert!((600..800).contains(&used), "{used}");
    assert!(find(fresh).is_none(), "an on-track case is not listed");
    let late = find(handled_late).expect("the case past its handling deadline is listed");
    assert_eq!(
        (late["deadline"]["stage"].as_str(), late["deadline"]["state"].as_str()),
        (Some("handling"), Some("overdue"))
    );
    assert_eq!(items[0]["case_id"], json!(old_id), "the most overdue first");

    // Every running clock counts, booked to whoever answers for it. By hand: the intake is late
    // on the assignment of `old` and due soon on `soon`'s; late on the acknowledgement of `old`
    // (60 days) and `ack_late` (20 days); dept_a and dept_b are each late on one handling. Once
    // only the clock due first counted, per case: `ack_late`'s acknowledgement was booked to
    // dept_a and its late handling did not show, nor did `old`'s acknowledgement.
    let counts = r.body["by_unit"].as_array().unwrap();
    let count = |unit: Option<Uuid>, stage: &str| {
        counts.iter().find(|c| c["unit_id"] == json!(unit) && c["stage"] == stage).map(|c| {
            (c["overdue"].as_i64().unwrap(), c["due_soon_80"].as_i64().unwrap(), c["due_soon_60"].as_i64().unwrap())
        })
    };
    assert_eq!(count(None, "assignment"), Some((1, 0, 1)), "{counts:?}");
    assert_eq!(count(None, "acknowledgement"), Some((2, 0, 0)), "{counts:?}");
    assert_eq!(count(Some(app.dept_a), "handling"), Some((1, 0, 0)), "{counts:?}");
    assert_eq!(count(Some(app.dept_b), "handling"), Some((1, 0, 0)), "{counts:?}");
    assert_eq!(count(Some(app.dept_a), "acknowledgement"), None, "the acknowledgement is never the unit's");
    assert_eq!(counts.len(), 4, "nothing else is late or due soon: {counts:?}");

    // The same counts once the crossings passed an hour ago are compacted into totals (V38),
    // then after a clock whose crossings were compacted stops: `old` is assigned, so the intake
    // is no longer late on its assignment (its due-soon `soon` stays); its acknowledgement clock
    // runs on, and dept_a's new clock on it is fresh. Compacted again, the same.
    let db = app.db.app_client().await;
    let compact = async || {
        let n: i64 = db.query_one("SELECT deadline_crossings_compact(100000)", &[]).await.unwrap().get(0);
        n
    };
    compact().await;
    let view = |r: &tests::app::Reply| r.body["by_unit"].as_array().unwrap().clone();
    let counted = |counts: &[Value], unit: Option<Uuid>, stage: &str| {
        counts.iter().find(|c| c["unit_id"] == json!(unit) && c["stage"] == stage).map(|c| {
            (c["overdue"].as_i64().unwrap(), c["due_soon_80"].as_i64().unwrap(), c["due_soon_60"].as_i64().unwrap())
        })
    };
    let after = view(&app.get("/api/v1/overdue", &clerk).await);
    let sorted = |mut v: Vec<Value>| {
        v.sort_by_key(|c| c.to_string());
        v
    };
    assert_eq!(sorted(after), sorted(counts.clone()), "compaction changes no count");
    let r = app.post(&format!("/api/v1/cases/{old_id}/assign"), &sup, json!({"unit_id": app.dept_a})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    for round in ["before compacting", "after compacting"] {
        let now = view(&app.get("/api/v1/overdue", &clerk).await);
        assert_eq!(counted(&now, None, "assignment"), Some((0, 0, 1)), "{round}: {now:?}");
        assert_eq!(counted(&now, None, "acknowledgement"), Some((2, 0, 0)), "{round}: {now:?}");
        assert_eq!(counted(&now, Some(app.dept_a), "handling"), Some((1, 0, 0)), "{round}: {now:?}");
        assert_eq!(counted(&now, Some(app.dept_b), "handling"), Some((1, 0, 0)), "{round}: {now:?}");
        assert_eq!(now.len(), 4, "{round}: {now:?}");
        // A handler counts the clocks of the cases their unit sees: dept_a leads `ack_late` and
        // now `old`, both late on the acknowledgement (booked to the intake), and is late on
        // `ack_late`'s handling; dept_b leads `handled_late` alone.
        let a = view(&app.get("/api/v1/overdue", &app.token("handler", Some(app.dept_a))).await);
        assert_eq!(counted(&a, None, "acknowledgement"), Some((2, 0, 0)), "{round}: {a:?}");
        assert_eq!(counted(&a, Some(app.dept_a), "handling"), Some((1, 0, 0)), "{round}: {a:?}");
        assert_eq!(a.len(), 2, "{round}: {a:?}");
        let b = view(&app.get("/api/v1/overdue", &app.token("handler", Some(app.dept_b))).await);
        assert_eq!(counted(&b, Some(app.dept_b), "handling"), Some((1, 0, 0)), "{round}: {b:?}");
        assert_eq!(b.len(), 1, "{round}: {b:?}");
        compact().await;
    }
    let report = infra::ledger::verify_projections(&app.db.app_settings()).await.unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);

    // The ledger's overdue filter agrees, and a handler sees only their unit.
    let overdue = all_pages(&app, &clerk, "overdue=true").await;
    assert_eq!(overdue.len(), 3);
    let handler = app.token("handler", Some(app.dept_b));
    let mine = app.get("/api/v1/overdue", &handler).await;
    assert_eq!(mine.body["items"].as_array().unwrap().len(), 1);
    app.get(&format!("/api/v1/overdue?unit_id={}", app.dept_a), &handler).await.assert_problem(403, "forbidden");
}

#[tokio::test]
async fn a_co_unit_counts_the_clocks_of_the_cases_it_sees_and_the_accused_unit_never_does() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    // Two cases received 40 days ago and never acknowledged, both led by dept_a: `joint` with
    // dept_b as a co-unit, `accusing` accusing dept_b. Both acknowledgement clocks ran out: 15
    // calendar days for a complaint, 15 working days for an accusation (40 calendar days hold
    // at least 23 working days, whatever the holidays).
    let late = || {
        let mut body = app.case_body();
        body["received_at"] = json!((chrono::Utc::now() - chrono::Duration::days(40)).to_rfc3339());
        body
    };
    let joint = app.register(late()).await;
    let r = app
        .post(
            &format!("/api/v1/cases/{joint}/assign"),
            &sup,
            json!({"unit_id": app.dept_a, "co_unit_ids": [app.dept_b]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let mut body = late();
    body["accused_unit_id"] = json!(app.dept_b);
    let accusing = app.register(body).await;
    let r = app.post(&format!("/api/v1/cases/{accusing}/assign"), &sup, json!({"unit_id": app.dept_a})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let ack = async |token: String| {
        let r = app.get("/api/v1/overdue", &token).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let counts = r.body["by_unit"].as_array().unwrap().clone();
        counts.iter().map(|c| (c["stage"].clone(), c["overdue"].as_i64().unwrap())).collect::<Vec<_>>()
    };
    // By hand: everyone sees two late acknowledgements; dept_a leads both; dept_b co-handles
    // `joint` and is accused by the other; the village sees neither.
    let two = vec![(json!("acknowledgement"), 2)];
    assert_eq!(ack(app.token("clerk", None)).await, two);
    assert_eq!(ack(app.token("handler", Some(app.dept_a))).await, two);
    assert_eq!(ack(app.token("handler", Some(app.dept_b))).await, vec![(json!("acknowledgement"), 1)]);
    assert_eq!(ack(app.token("handler", Some(app.village))).await, vec![]);
    let report = infra::ledger::verify_projections(&app.db.app_settings()).await.unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
}

#[tokio::test]
async fn statistics_count_every_dimension_of_a_date_range() {
    let app = spawn_app().await;
    let cases = varied_cases(&app).await;
    let clerk = app.token("clerk", None);
    let r = app.get("/api/v1/stats", &clerk).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["total"], cases.len());
    for dim in ["by_status", "by_kind", "by_channel", "by_category", "by_village", "by_unit"] {
        let sum: i64 = r.body[dim].as_array().unwrap().iter().map(|k| k["count"].as_i64().unwrap()).sum();
        assert_eq!(sum, cases.len() as i64, "{dim} sums to the total");
    }
    let status = |s: &str| {
        r.body["by_status"].as_array().unwrap().iter().find(|k| k["key"] == s).map(|k| k["count"].as_i64().unwrap())
    };
    assert_eq!((status("assigned"), status("received")), (Some(12), Some(12)));
    let phone =
        r.body["by_channel"].as_array().unwrap().iter().find(|k| k["key"] == "phone").unwrap()["count"].as_i64();
    assert_eq!(phone, Some(8));
    let past = app.get("/api/v1/stats?from=2001-01-01T00:00:00Z&to=2002-01-01T00:00:00Z", &clerk).await;
    assert_eq!(past.body["total"], 0);
    app.get("/api/v1/stats?from=2030-01-01T00:00:00Z&to=2020-01-01T00:00:00Z", &clerk)
        .await
        .assert_problem(400, "invalid-query");
}

#[tokio::test]
async fn a_rebuild_during_concurrent_writes_loses_nothing() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    for _ in 0..30 {
        app.register(app.case_body()).await;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let client = app.client.clone();
        let base = app.address.clone();
        let sup = sup.clone();
        let body = app.case_body();
        let dept = app.dept_a;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut written = 0;
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && i < 400 {
                i += 1;
                let r = client.post(format!("{base}/api/v1/cases")).bearer_auth(&sup).json(&body).send().await.unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
                let v: Value = r.json().await.unwrap();
                let id = v["id"].as_str().unwrap();
                let r = client
                    .post(format!("{base}/api/v1/cases/{id}/assign"))
                    .bearer_auth(&sup)
                    .json(&json!({"unit_id": dept}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK, "writer {w}");
                written += 1;
            }
            written
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let report = infra::ledger::rebuild(&app.db.owner_settings()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    assert!(report.folded.cases >= 30);
    // The writers ran through the switch-over: the rebuild caught up cases its snapshot missed
    // (each writer writes continuously, so at least one append lands after the snapshot).
    assert!(written > 0, "the writers wrote during the rebuild");
    assert!(report.caught_up > 0, "the switch-over folded the cases written after the snapshot: {report:?}");
    let check = infra::ledger::verify_projections(&app.db.app_settings()).await.unwrap();
    assert!(check.mismatches.is_empty(), "{:?}", check.mismatches);
    assert_eq!(check.cases, 30 + written);
    let rows: i64 = app.db.app_client().await.query_one("SELECT count(*) FROM ledger", &[]).await.unwrap().get(0);
    assert_eq!(rows as u64, 30 + written);
    // The service still writes to the new table.
    let id = app.register(app.case_body()).await;
    expect_row_equals_replay(&app, id).await;
    let _ = Method::GET;
}

/// A search answers in two steps (a probe over the newest rows, then the search index): whichever
/// step finds the matches, every page holds the same rows in the same order.
#[tokio::test]
async fn a_search_pages_the_same_whichever_step_finds_the_matches() {
    use infra::ledger::{LedgerCursor, LedgerFilter, LedgerSort};
    let app = spawn_app().await;
    let cases = varied_cases(&app).await;
    // Hand count: varied_cases registers each of its six texts four times, all in the test's
    // village; 路灯 is in two of the texts, 低保 in two, 火星 in none.
    let with = |label: &str| cases.iter().filter(|(_, l)| *l == label).map(|(id, _)| *id).collect::<HashSet<_>>();
    let searches = [
        ("路灯", None, with("lamp"), 8),
        ("低保", Some(app.village), with("dibao"), 8),
        ("低保", Some(app.dept_a), HashSet::new(), 0),
        ("火星", None, HashSet::new(), 0),
    ];
    for (q, village, expected, count) in &searches {
        assert_eq!(expected.len(), *count, "{q}: the hand count");
        for probe in [0, 1, 3, 8, 2000] {
            for sort in [LedgerSort::ReceivedDesc, LedgerSort::ReceivedAsc, LedgerSort::DueAsc, LedgerSort::DueDesc] {
                let ledger = Ledger::new(app.db.app_pool()).with_search_probe(probe);
                let filter = LedgerFilter { q: Some((*q).into()), village_id: *village, ..Default::default() };
                let mut got: Vec<LedgerRow> = Vec::new();
                let mut after = None;
                for _ in 0..20 {
                    let page = ledger.page(&filter, sort, after, 3, chrono::Utc::now()).await.unwrap();
                    let full = page.len() == 3;
                    got.extend(page);
                    let Some(last) = got.last() else { break };
                    let key = match sort {
                        LedgerSort::ReceivedDesc | LedgerSort::ReceivedAsc => last.received_at,
                        LedgerSort::DueAsc | LedgerSort::DueDesc => last.due_at.unwrap(),
                    };
                    after = Some(LedgerCursor { key, id: last.case_id });
                    if !full {
                        break;
                    }
                }
                let ids: Vec<Uuid> = got.iter().map(|r| r.case_id).collect();
                let unique: HashSet<Uuid> = ids.iter().copied().collect();
                assert_eq!(ids.len(), unique.len(), "{q} probe {probe} {sort:?}: a row repeats");
                assert_eq!(&unique, expected, "{q} probe {probe} {sort:?}");
                let keys: Vec<_> = got
                    .iter()
                    .map(|r| match sort {
                        LedgerSort::ReceivedDesc | LedgerSort::ReceivedAsc => (r.received_at, r.case_id),
                        LedgerSort::DueAsc | LedgerSort::DueDesc => (r.due_at.unwrap(), r.case_id),
                    })
                    .collect();
                let mut sorted = keys.clone();
                sorted.sort();
                if matches!(sort, LedgerSort::ReceivedDesc | LedgerSort::DueDesc) {
                    sorted.reverse();
                }
                assert_eq!(keys, sorted, "{q} probe {probe} {sort:?}: order");
            }
        }
    }
}

/// The rebuild makes the same keys and indexes as the migrations (it reads them off the live
/// table), so a new index can never be lost by a rebuild.
#[tokio::test]
async fn a_rebuild_keeps_every_index_of_the_ledger() {
    let app = spawn_app().await;
    app.register(app.case_body()).await;
    let indexes = || async {
        let client = app.db.app_client().await;
        let mut defs: Vec<String> = client
            .query("SELECT indexname::text, indexdef FROM pg_indexes WHERE tablename = 'ledger'", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| format!("{} {}", r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect();
        defs.sort();
        defs
    };
    let before = indexes().await;
    // Written from the migrations by hand: V3, V10, V15, V17, V22, V33 and V39.
    for name in [
        "ledger_pkey",
        "ledger_receipt_code_key",
        "ledger_received_idx",
        "ledger_due_idx",
        "ledger_search_idx",
        "ledger_next_due_idx",
        "ledger_co_units_idx",
        "ledger_duplicate_of_idx",
        "ledger_calendar_incomplete_idx",
        "ledger_village_received_idx",
        "ledger_campaign_idx",
        "ledger_source_idx",
        "ledger_supervision_idx",
        "ledger_status_received_idx",
        "ledger_campaign_due_idx",
        "ledger_open_unit_idx",
    ] {
        assert!(before.iter().any(|d| d.starts_with(&format!("{name} "))), "{name} missing before: {before:?}");
    }
    assert_eq!(before.len(), 16, "{before:?}");
    infra::ledger::rebuild(&app.db.owner_settings()).await.unwrap();
    assert_eq!(indexes().await, before);
}

/// A word of 5 000 letters and digits from a fixed pseudo-random sequence: its 4 937 suffixes of
/// 64 characters and 63 shorter ones are distinct, 317,984 bytes of terms (4 937 × 64 + 63 × 64 / 2).
fn long_word(seed: u64) -> String {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (0..5000)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[((x >> 33) % 36) as usize])
        })
        .collect()
}

/// A word of 4 992 characters that compresses well: 78 blocks of 59 `a` and then the note's
/// number and the block's, four digits (`a…a10000`, `a…a10001`, …). Its 4 992 suffixes are
/// distinct: 4 929 of 64 characters and 63 shorter, 317,472 bytes (4 929 × 64 + 63 × 64 / 2);
/// a later note shares with an earlier one only the suffixes without the note's number (`7`,
/// `77`, `077`, `0077`: 10 bytes), so it adds 317,462.
fn compressible_word(note: u32) -> String {
    (0..78).map(|block| format!("{}{note}{block:04}", "a".repeat(59))).collect()
}

/// Four notes of the given words and a short one, then: which words find the case (a part from
/// the middle of each), the short one finds it, and the stored terms equal the replay's.
async fn notes_join_under_the_limit(words: &[String], joined: [bool; 4]) {
    let app = spawn_app().await;
    let mut s = tests::story::Story::register(&app, "2026-03-02T09:00:00+08:00", false).await;
    let mut at = tests::story::t("2026-03-02T10:00:00+08:00");
    for text in words.iter().map(String::as_str).chain(["zz9 路灯不亮"]) {
        at += chrono::Duration::minutes(1);
        s.run_at(domain::Command::AddNote { text: domain::Text::parse(text).unwrap() }, at).await;
    }
    let (client, id) = (app.db.app_client().await, s.id.as_uuid());
    let found = |word: String| {
        let client = &client;
        async move {
            let q = format!("'{word}':*");
            client
                .query_one("SELECT search @@ $2::text::tsquery FROM ledger WHERE case_id = $1", &[&id, &q])
                .await
                .unwrap()
                .get::<_, bool>(0)
        }
    };
    for (i, w) in words.iter().enumerate() {
        // A part from the middle of each word (its suffix from the 1 000th character, cut to 64).
        assert_eq!(found(w[1000..1064].to_owned()).await, joined[i], "note {}", i + 1);
    }
    assert!(found("zz9".into()).await, "a short note after the left-out one joins");
    assert!(found("路灯".into()).await);
    let report = infra::ledger::verify_projections(&app.db.app_settings()).await.unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
}

/// Issue 14: an append adds the terms of its own texts to the stored ones (V29) instead of the
/// service re-reading the whole history, under the same per-case limit (960 KiB of distinct
/// terms) as a replay's fold. Four notes of 317,984 bytes of terms each: three fit (953,952),
/// the fourth would cross the limit and is left out whole; a short note after it still joins.
/// The stored terms equal the replay's (`huiyin verify --projections`).
#[tokio::test]
async fn a_note_s_search_terms_join_the_stored_ones_under_the_case_s_limit() {
    let words: Vec<String> = (1..=4).map(long_word).collect();
    notes_join_under_the_limit(&words, [true, true, true, false]).await;
}

/// The same with terms that compress (V32): three notes take 952,396 bytes (317,472 + 2 ×
/// 317,462), a fourth would make 1,269,858 and is left out. The database stores such terms
/// compressed; V29 counted the stored (compressed) size, so the fourth note was added and,
/// past 1 MiB of terms, its append failed ("string is too long for tsvector").
#[tokio::test]
async fn compressed_search_terms_are_counted_at_their_own_size() {
    let words: Vec<String> = (1..=4).map(compressible_word).collect();
    notes_join_under_the_limit(&words, [true, true, true, false]).await;
}

/// The overdue view's page builds the JSON of the rows it answers, not of every row with a
/// running clock. Forced into the plan a pooled connection's first executions picked at 10 k
/// cases (a sort, not a walk of the `next_due_at` index: `enable_indexscan` off, a custom plan
/// for the bound values), no node below the page's `Limit` may compute `to_jsonb`: before the
/// fix the sort's input carried it, 820 rows' JSON built for a 50-row page (BENCHMARKS.md,
/// 2026-12-03).
#[tokio::test]
async fn the_overdue_page_turns_only_its_own_rows_into_json() {
    let db = tests::TestDb::new().await;
    let client = db.app_client().await;
    client.batch_execute("SET enable_indexscan = off; SET plan_cache_mode = force_custom_plan").await.unwrap();
    for scoped in [false, true] {
        let sql = format!("EXPLAIN (VERBOSE, FORMAT JSON) {}", infra::ledger::watch_page_sql(scoped));
        let unit = scoped.then(Uuid::new_v4);
        let now = chrono::Utc::now();
        let row = client
            .query_one(&sql, &[&now, &unit, &chrono::DateTime::<chrono::Utc>::UNIX_EPOCH, &Uuid::nil(), &50i64])
            .await
            .unwrap();
        let plan: Value = row.get(0);
        // Every node's outputs below the first Limit (the page), depth first.
        fn below_limit(node: &Value, under: bool, out: &mut Vec<String>) {
            let under_here = under || node["Node Type"] == "Limit";
            for child in node["Plans"].as_array().into_iter().flatten() {
                if under_here {
                    for o in child["Output"].as_array().into_iter().flatten() {
                        out.push(format!("{}: {}", child["Node Type"], o.as_str().unwrap()));
                    }
                }
                below_limit(child, under_here, out);
            }
        }
        let mut outputs = Vec::new();
        below_limit(&plan[0]["Plan"], false, &mut outputs);
        assert!(!outputs.is_empty(), "the plan has a Limit with nodes below it: {plan}");
        let json_below: Vec<_> = outputs.iter().filter(|o| o.contains("to_jsonb")).collect();
        assert!(json_below.is_empty(), "scoped {scoped}: JSON built below the page's Limit: {json_below:?}\n{plan}");
    }
}

/// The background tasks every instance runs do not read the whole ledger in the usual state.
/// With no unit deactivated, the 15-second look for cases stranded at deactivated units answers
/// without touching the ledger: it returns while another transaction holds the ledger locked
/// (before the fix it read every assigned and handled case, about a second at 1 M cases, and
/// here waited for the lock until its statement timeout).
#[tokio::test]
async fn with_no_unit_deactivated_the_stranded_cases_look_reads_no_ledger() {
    let db = tests::TestDb::new().await;
    let mut settings = db.app_settings();
    settings.statement_timeout = std::time::Duration::from_secs(2);
    let ledger = Ledger::new(settings.pool().unwrap());
    let mut owner = db.owner_client().await;
    let tx = owner.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE ledger IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let stranded = ledger.cases_at_inactive_units().await;
    tx.rollback().await.unwrap();
    assert!(stranded.expect("answered without the ledger").is_empty());
}

/// The plan of `sql` with `params`, sequential scans off, as JSON text.
async fn plan_of(db: &tests::TestDb, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> String {
    let client = db.app_client().await;
    client.batch_execute("SET enable_seqscan = off; SET plan_cache_mode = force_custom_plan").await.unwrap();
    let plan: Value = client.query_one(&format!("EXPLAIN (FORMAT JSON) {sql}"), params).await.unwrap().get(0);
    plan.to_string()
}

/// At start every instance asks for the cases flagged as counted into a missing calendar year
/// (`cases_for_calendar` with no year); that read goes through the flagged cases' partial index,
/// not through every open case (a sequential scan of seconds at 1 M cases before the fix, when
/// one statement served both). Sequential scans off, the plan must name the partial index.
#[tokio::test]
async fn the_flagged_cases_of_the_calendar_are_read_through_their_partial_index() {
    let db = tests::TestDb::new().await;
    let no_year: &[i32] = &[];
    let plan = plan_of(&db, infra::ledger::calendar_sql(no_year), &[&no_year]).await;
    assert!(plan.contains("ledger_calendar_incomplete_idx"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");
}

/// Once a unit has been deactivated (for good: units are never reactivated), the 15-second look
/// for its stranded cases reads only the open cases it led or co-handled: through the open
/// cases' unit index (V39) and the co-units' GIN index, never by walking every assigned and
/// handled case (76 k rows, 4.0 s at 1 M cases through the status index before V39).
#[tokio::test]
async fn the_stranded_cases_look_reads_a_deactivated_units_cases_by_index() {
    let db = tests::TestDb::new().await;
    let gone = vec![Uuid::new_v4()];
    let plan = plan_of(&db, infra::ledger::STRANDED_SQL, &[&gone]).await;
    // (An empty table's plan; at 1 M cases the planner ORs this index with the co-units' GIN
    // index: 112 ms for the busiest unit's 14 374 open cases, BENCHMARKS.md.)
    assert!(plan.contains("ledger_open_unit_idx"), "{plan}");
    assert!(!plan.contains("ledger_status_received_idx"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");
}

//! The bad-input corpus: every malformed request gets a clear 4xx problem+json, never a 500,
//! and nothing stored changes.

use reqwest::Method;
use serde_json::json;
use tests::app::{spawn_app, spawn_app_with};

#[tokio::test]
async fn every_bad_input_gets_a_4xx_problem_and_changes_nothing() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let before = app.event_count().await;
    let good = app.case_body();
    let with = |k: &str, v: serde_json::Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    let url = |p: &str| format!("{}{p}", app.address);

    let raw = |body: &'static str, ct: &'static str| {
        let client = app.client.clone();
        let clerk = clerk.clone();
        let u = url("/api/v1/cases");
        async move {
            let r = client.post(u).bearer_auth(clerk).header("content-type", ct).body(body).send().await.unwrap();
            let status = r.status().as_u16();
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            (status, v)
        }
    };
    for (name, (status, body), want_status, want_code) in [
        ("malformed JSON", raw("{\"channel\": ", "application/json").await, 400, "malformed-json"),
        ("not JSON at all", raw("channel=phone", "application/json").await, 400, "malformed-json"),
        ("wrong content type", raw("{}", "text/plain").await, 415, "unsupported-media-type"),
        ("form content type", raw("a=b", "application/x-www-form-urlencoded").await, 415, "unsupported-media-type"),
    ] {
        assert_eq!((status, body["code"].as_str().unwrap_or_default()), (want_status, want_code), "{name}: {body}");
        assert_eq!(body["type"], format!("urn:huiyin:problem:{want_code}"), "{name}");
    }

    let long = "长".repeat(201);
    let cases = vec![
        ("unknown field", with("mood", json!("angry")), 422, "validation"),
        ("enum out of range", with("channel", json!("fax")), 422, "validation"),
        ("wrong type", with("title", json!(42)), 422, "validation"),
        ("missing field", json!({"channel": "phone", "kind": "complaint", "title": "x"}), 422, "validation"),
        ("over-long title", with("title", json!(long)), 422, "validation"),
        ("blank description", with("description", json!("   ")), 422, "validation"),
        (
            "future received_at",
            with("received_at", json!((chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339())),
            422,
            "received-in-future",
        ),
        ("bad received_at", with("received_at", json!("yesterday")), 422, "validation"),
        ("bad phone", with("complainant", json!({"name": "王五", "phone": "call me"})), 422, "validation"),
        ("anonymous with a name", with("complainant", json!({"name": "王五", "anonymous": true})), 422, "validation"),
        ("neither name nor phone", with("complainant", json!({"anonymous": false})), 422, "validation"),
        ("bad ID number", with("complainant", json!({"name": "王五", "id_number": "123"})), 422, "validation"),
        ("unknown village", with("village_id", json!(uuid::Uuid::new_v4())), 422, "unknown-reference"),
        ("unknown category", with("category_id", json!(uuid::Uuid::new_v4())), 422, "unknown-reference"),
        ("bad uuid in body", with("village_id", json!("not-a-uuid")), 422, "validation"),
        ("control characters", with("title", json!("标题\u{0007}")), 422, "validation"),
        (
            "multi-byte ID number",
            with("complainant", json!({"name": "王五", "id_number": "一二三四五六"})),
            422,
            "validation",
        ),
        ("received_at before year 1", with("received_at", json!("-0001-06-01T00:00:00Z")), 422, "validation"),
        ("received_at in the year 1990", with("received_at", json!("1990-06-01T00:00:00Z")), 422, "validation"),
        // The spec's pattern reads the year as written.
        ("received_at with a signed year", with("received_at", json!("+2026-06-01T00:00:00Z")), 422, "validation"),
        ("received_at on a leap second", with("received_at", json!("2026-06-01T23:59:60Z")), 422, "validation"),
    ];
    for (name, body, status, code) in cases {
        let r = app.post("/api/v1/cases", &clerk, body).await;
        assert_eq!(r.status.as_u16(), status, "{name}: {}", r.text);
        r.assert_problem(status, code);
    }
    let r = app.post("/api/v1/cases", &clerk, with("title", json!(long))).await;
    assert_eq!(r.body["errors"][0]["field"], "title");

    // Oversized body.
    let huge = with("description", json!("大".repeat(40_000)));
    app.post("/api/v1/cases", &clerk, huge).await.assert_problem(413, "payload-too-large");

    // Paths, headers, routes.
    app.get("/api/v1/cases/not-a-uuid", &sup).await.assert_problem(400, "invalid-path");
    app.post("/api/v1/cases/123/notes", &sup, json!({"text": "x"})).await.assert_problem(400, "invalid-path");
    app.get("/api/v1/calendar/99999", &sup).await.assert_problem(400, "invalid-path");
    app.get("/api/v1/calendar/1990", &sup).await.assert_problem(400, "invalid-path");
    app.get("/api/v1/units?include_inactive=maybe", &sup).await.assert_problem(400, "invalid-query");
    app.get("/api/v1/nothing-here", &sup).await.assert_problem(404, "not-found");
    app.get("/api/v1/stats?to=-262143-01-01T00:00:00Z", &sup).await.assert_problem(400, "invalid-query");
    app.get("/api/v1/ledger?received_from=-50000-01-01T00:00:00Z", &sup).await.assert_problem(400, "invalid-query");
    // A range read as [from, to) must not be empty or inverted, as /stats already required.
    for range in [
        "received_from=2030-01-01T00:00:00Z&received_to=2020-01-01T00:00:00Z",
        "received_from=2026-01-01T00:00:00Z&received_to=2026-01-01T00:00:00Z",
    ] {
        app.get(&format!("/api/v1/ledger?{range}"), &sup).await.assert_problem(400, "invalid-query");
    }
    app.get(&format!("/api/v1/cases/{id}?as_of=-50000-01-01T00:00:00Z"), &sup)
        .await
        .assert_problem(400, "invalid-query");
    app.get("/api/v1/ledger?cursor=-3000000000000000000_0193a0c4000070008000000000000001", &sup)
        .await
        .assert_problem(400, "invalid-query");
    app.get("/api/v1/overdue?cursor=99999999999999999999_x", &sup).await.assert_problem(400, "invalid-query");
    let key = "k".repeat(201);
    app.send(
        Method::POST,
        &format!("/api/v1/cases/{id}/notes"),
        Some(&sup),
        Some(&json!({"text": "x"})),
        &[("Idempotency-Key", &key)],
    )
    .await
    .assert_problem(400, "invalid-idempotency-key");
    app.send(
        Method::POST,
        &format!("/api/v1/cases/{id}/notes"),
        Some(&sup),
        Some(&json!({"text": "x"})),
        &[("If-Match", "yesterday")],
    )
    .await
    .assert_problem(400, "invalid-if-match");

    // Command bodies.
    let cmd = |a: &str| format!("/api/v1/cases/{id}/{a}");
    app.post(&cmd("assign"), &sup, json!({"unit_id": uuid::Uuid::new_v4()}))
        .await
        .assert_problem(422, "unknown-reference");
    app.post(&cmd("assign"), &sup, json!({"unit_id": app.dept_a, "due_at": "2001-01-01T00:00:00Z"}))
        .await
        .assert_problem(422, "deadline-in-past");
    app.post(&cmd("notes"), &sup, json!({"text": ""})).await.assert_problem(422, "validation");
    app.post(&cmd("notes"), &sup, json!({"text": "x".repeat(5001)})).await.assert_problem(422, "validation");
    app.post(&cmd("handle"), &sup, json!({"outcome": "perfect", "result": "x"}))
        .await
        .assert_problem(422, "validation");
    app.post(&cmd("link-duplicate"), &sup, json!({"of": id})).await.assert_problem(422, "self-duplicate");
    app.post(&cmd("link-duplicate"), &sup, json!({"of": uuid::Uuid::new_v4()}))
        .await
        .assert_problem(422, "unknown-reference");
    let admin = app.token("admin", None);
    app.post("/api/v1/categories", &admin, json!({"code": "Bad Code", "name": "x"}))
        .await
        .assert_problem(422, "validation");
    app.post(
        "/api/v1/categories",
        &admin,
        json!({"code": "ok", "name": "x", "deadline_policy": {"max_extension_days": 90}}),
    )
    .await
    .assert_problem(422, "validation");
    app.post(
        "/api/v1/categories",
        &admin,
        json!({"code": "ok", "name": "x", "deadline_policy": {"handle": {"unit": "working_days", "value": 0}}}),
    )
    .await
    .assert_problem(422, "validation");
    app.send(
        Method::PUT,
        "/api/v1/calendar/2026",
        Some(&admin),
        Some(&json!({"holidays": [{"date": "2027-01-01", "name": "元旦"}], "makeup_workdays": []})),
        &[],
    )
    .await
    .assert_problem(422, "validation");

    assert_eq!(app.event_count().await, before, "no bad request wrote an event");
    let r = app.get(&format!("/api/v1/cases/{id}"), &sup).await;
    assert_eq!(r.body["version"], 1);
}

#[tokio::test]
async fn every_response_echoes_a_request_id() {
    let app = spawn_app().await;
    let r = app.send(Method::GET, "/healthz", None, None, &[("x-request-id", "abc-123")]).await;
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    let r = app.send(Method::GET, "/healthz", None, None, &[("x-request-id", "bad id with spaces")]).await;
    let generated = r.header("x-request-id").unwrap();
    assert_ne!(generated, "bad id with spaces");
    let r = app.send(Method::GET, "/api/v1/units", None, None, &[("x-request-id", "req-42")]).await;
    assert_eq!(r.body["request_id"], "req-42");
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_503_and_a_retry_hint() {
    let app = spawn_app_with(|s| s.request_timeout_ms = 0).await;
    let clerk = app.token("clerk", None);
    let r = app.post("/api/v1/cases", &clerk, app.case_body()).await;
    r.assert_problem(503, "timeout");
    assert_eq!(r.header("retry-after"), Some("1"));
}

//! The citizen's side (issue 12): submitting online, following the case by receipt code and
//! secret, adding information, answering a handler's question, rating (a dissatisfied rating
//! reopens the case), withdrawing; a wrong secret and an unknown code look alike; the rate limit.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tests::app::{Reply, TestApp, spawn_app, spawn_app_with};

async fn public(app: &TestApp, method: Method, path: &str, secret: Option<&str>, body: Option<Value>) -> Reply {
    let headers: Vec<(&str, &str)> = secret.map(|s| vec![("X-Receipt-Secret", s)]).unwrap_or_default();
    app.send(method, path, None, body.as_ref(), &headers).await
}

async fn submit(app: &TestApp, body: Value) -> (String, String, Value) {
    let r = public(app, Method::POST, "/api/v1/public/cases", None, Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let code = r.body["receipt_code"].as_str().unwrap().to_owned();
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    (code, secret, r.body["case"].clone())
}

fn steps(view: &Value) -> Vec<String> {
    view["timeline"].as_array().unwrap().iter().map(|t| t["step"].as_str().unwrap().to_owned()).collect()
}

/// The case id behind a receipt code, as the ledger (a clerk's view) has it.
async fn case_id(app: &TestApp, code: &str) -> String {
    let r = app.get(&format!("/api/v1/ledger?q={code}"), &app.token("supervisor", None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["items"][0]["case_id"].as_str().expect("the case is in the ledger").to_owned()
}

async fn cmd(app: &TestApp, token: &str, id: &str, action: &str, body: Value) -> Value {
    let r = app.post(&format!("/api/v1/cases/{id}/{action}"), token, body).await;
    assert_eq!(r.status, StatusCode::OK, "{action}: {}", r.text);
    r.body
}

#[tokio::test]
async fn the_public_flow_end_to_end() {
    let app = spawn_app().await;
    let (code, secret, first) = submit(
        &app,
        json!({
            "kind": "complaint",
            "title": "村道路灯不亮",
            "description": "东风村村口到小学的路灯坏了两个月。",
            "village_id": app.village,
            "complainant": {"name": "王五", "phone": "13912345678", "anonymous": false},
            "location": {"address": "东岭村村口", "lat": 30.1234567, "long": 120.654321}
        }),
    )
    .await;
    assert!(code.starts_with("HY-"), "{code}");
    assert_eq!(secret.len(), 43, "a 256-bit secret in base64url");
    assert_eq!(first["status"], "received");
    assert_eq!(first["status_text"], "已登记，等待受理");
    assert_eq!(steps(&first), ["received"]);
    let view_path = format!("/api/v1/public/cases/{code}");
    // The code is case-insensitive.
    let r = public(&app, Method::GET, &view_path.to_ascii_lowercase(), Some(&secret), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Intake accepts and dispatches; the handling unit asks the citizen a question.
    let id = case_id(&app, &code).await;
    let clerk = app.token("clerk", None);
    let handler = app.token("handler", Some(app.dept_a));
    // Staff see where the matter is (coordinates kept to six decimals) and the contact masked.
    let c = app.get(&format!("/api/v1/cases/{id}"), &clerk).await;
    assert_eq!(
        c.body["location"],
        json!({"address": "东岭村村口", "lat": 30.123457, "long": 120.654321}),
        "{}",
        c.text
    );
    assert_eq!(c.body["channel"], "web");
    assert_eq!(c.body["complainant"]["phone"], "139****5678", "{}", c.text);
    cmd(&app, &clerk, &id, "accept", json!({})).await;
    cmd(&app, &clerk, &id, "assign", json!({"unit_id": app.dept_a})).await;
    cmd(&app, &clerk, &id, "notes", json!({"text": "内部备注：请卫生院核实"})).await;
    cmd(&app, &handler, &id, "questions", json!({"text": "请问是哪几根路灯杆？"})).await;

    let r = public(&app, Method::GET, &view_path, Some(&secret), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "assigned");
    assert_eq!(r.body["responsible_unit"], "卫生院");
    assert!(r.body["answer_due_at"].is_string(), "the overall clock runs: {}", r.text);
    assert_eq!(r.body["questions"][0]["number"], 1);
    assert_eq!(r.body["questions"][0]["text"], "请问是哪几根路灯杆？");
    assert_eq!(steps(&r.body), ["received", "accepted", "dispatched", "question"]);
    // Never internal notes, anyone's personal data, or who worked on it.
    for hidden in ["内部备注", "13912345678", "王五", "handler-", "clerk-"] {
        assert!(!r.text.contains(hidden), "the public view shows {hidden:?}: {}", r.text);
    }

    // The citizen answers and adds information; the handling side sees both.
    let r = public(
        &app,
        Method::POST,
        &format!("{view_path}/answers"),
        Some(&secret),
        Some(json!({"question": 1, "text": "A-17 和 A-18 两根。"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["questions"][0]["answer"], "A-17 和 A-18 两根。");
    public(
        &app,
        Method::POST,
        &format!("{view_path}/answers"),
        Some(&secret),
        Some(json!({"question": 1, "text": "again"})),
    )
    .await
    .assert_problem(409, "already-answered");
    public(
        &app,
        Method::POST,
        &format!("{view_path}/answers"),
        Some(&secret),
        Some(json!({"question": 2, "text": "?"})),
    )
    .await
    .assert_problem(422, "no-such-question");
    let r = public(
        &app,
        Method::POST,
        &format!("{view_path}/information"),
        Some(&secret),
        Some(json!({"text": "晚上七点以后完全不亮。"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let history = app.get(&format!("/api/v1/cases/{id}/events"), &handler).await;
    let types: Vec<&str> =
        history.body["events"].as_array().unwrap().iter().map(|e| e["event_type"].as_str().unwrap()).collect();
    assert!(types.contains(&"case.citizen_answered") && types.contains(&"case.information_supplemented"), "{types:?}");

    // A rating before the reply is refused.
    public(
        &app,
        Method::POST,
        &format!("{view_path}/rating"),
        Some(&secret),
        Some(json!({"rating": "satisfied", "solved": true})),
    )
    .await
    .assert_problem(409, "invalid-transition");

    // Handled and replied; the citizen is dissatisfied: the case goes back for rework.
    cmd(&app, &handler, &id, "handle", json!({"outcome": "resolved", "result": "已更换灯泡"})).await;
    cmd(&app, &handler, &id, "feedback", json!({"method": "sms", "content": "路灯已修复。"})).await;
    let r = public(&app, Method::GET, &view_path, Some(&secret), None).await;
    assert_eq!(r.body["status"], "fed_back");
    assert_eq!(r.body["reply"], "路灯已修复。");
    assert_eq!(r.body["can_rate"], true);
    assert!(!r.text.contains("已更换灯泡"), "the handling result is internal: {}", r.text);
    let r = public(
        &app,
        Method::POST,
        &format!("{view_path}/rating"),
        Some(&secret),
        Some(json!({"rating": "dissatisfied", "solved": false, "comment": "只修了一根"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "assigned", "a dissatisfied rating reopens: {}", r.text);
    assert_eq!(r.body["can_rate"], false);
    let c = app.get(&format!("/api/v1/cases/{id}"), &clerk).await;
    assert_eq!(c.body["round"], 2, "{}", c.text);

    // Round two: replied again, rated once.
    cmd(&app, &handler, &id, "handle", json!({"outcome": "resolved", "result": "两根都已修复"})).await;
    cmd(&app, &handler, &id, "feedback", json!({"method": "sms", "content": "两根路灯均已修复。"})).await;
    let r = public(
        &app,
        Method::POST,
        &format!("{view_path}/rating"),
        Some(&secret),
        Some(json!({"rating": "satisfied", "solved": true})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    public(
        &app,
        Method::POST,
        &format!("{view_path}/rating"),
        Some(&secret),
        Some(json!({"rating": "satisfied", "solved": true})),
    )
    .await
    .assert_problem(409, "already-rated");
    // Rated, the answer stands: it is no longer withdrawn.
    assert_eq!(r.body["can_withdraw"], false);
    public(&app, Method::POST, &format!("{view_path}/withdrawal"), Some(&secret), Some(json!({"reason": "不需要了"})))
        .await
        .assert_problem(409, "invalid-transition");
    let c = app.get(&format!("/api/v1/cases/{id}"), &clerk).await;
    assert_eq!(c.body["satisfaction"]["rating"], "satisfied", "{}", c.text);
    assert_eq!(c.body["satisfaction"]["method"], "web", "{}", c.text);
    assert_eq!(
        steps(&r.body),
        [
            "received",
            "accepted",
            "dispatched",
            "question",
            "answered",
            "information_added",
            "handled",
            "replied",
            "rated",
            "reopened",
            "handled",
            "replied",
            "rated"
        ]
    );
}

#[tokio::test]
async fn a_citizen_withdraws_with_a_reason_and_the_case_closes_as_withdrawn() {
    let app = spawn_app().await;
    let (code, secret, _) =
        submit(&app, json!({"kind": "suggestion", "title": "建议增设公交站", "description": "建议在村口增设公交站。"}))
            .await;
    let path = format!("/api/v1/public/cases/{code}/withdrawal");
    let r = public(&app, Method::POST, &path, Some(&secret), Some(json!({"reason": "已通过其他渠道解决"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["status"], "withdrawn");
    assert_eq!(r.body["status_text"], "已撤回");
    assert_eq!(r.body["can_withdraw"], false);
    assert_eq!(steps(&r.body), ["received", "withdrawn"]);
    public(&app, Method::POST, &path, Some(&secret), Some(json!({"reason": "again"})))
        .await
        .assert_problem(409, "case-closed");
    // The ledger has it closed, and no one reopens it.
    let id = case_id(&app, &code).await;
    let c = app.get(&format!("/api/v1/cases/{id}"), &app.token("clerk", None)).await;
    assert_eq!(c.body["status"], "closed", "{}", c.text);
    assert_eq!(c.body["withdrawal_reason"], "已通过其他渠道解决");
    app.post(&format!("/api/v1/cases/{id}/reopen"), &app.token("supervisor", None), json!({"reason": "复查一下"}))
        .await
        .assert_problem(409, "case-withdrawn");
}

/// The answers of a failed lookup, without the request id (which differs by design).
fn comparable(r: &Reply) -> (u16, String, Value) {
    let mut b = r.body.clone();
    b.as_object_mut().unwrap().remove("request_id");
    (r.status.as_u16(), r.content_type().to_owned(), b)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test]
async fn a_wrong_secret_and_an_unknown_code_are_indistinguishable() {
    let app = spawn_app().await;
    let (code, secret, _) =
        submit(&app, json!({"kind": "complaint", "title": "测试", "description": "查询测试。"})).await;
    let wrong_secret = format!("{}{}", &secret[..42], if secret.ends_with('A') { 'B' } else { 'A' });
    let unknown = if code.ends_with('0') { format!("{}1", &code[..19]) } else { format!("{}0", &code[..19]) };
    let cases = [
        (code.clone(), Some(wrong_secret.clone())),
        (unknown.clone(), Some(secret.clone())),
        ("HY-not-a-code".to_owned(), Some(secret.clone())),
        (code.clone(), None),
    ];
    let mut answers = Vec::new();
    for (c, s) in &cases {
        let r = public(&app, Method::GET, &format!("/api/v1/public/cases/{c}"), s.as_deref(), None).await;
        r.assert_problem(404, "not-found");
        answers.push(comparable(&r));
        // The commands answer the same.
        let w = public(
            &app,
            Method::POST,
            &format!("/api/v1/public/cases/{c}/withdrawal"),
            s.as_deref(),
            Some(json!({"reason": "x"})),
        )
        .await;
        assert_eq!(comparable(&w), answers[0], "a command with {c} answers as a lookup");
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "every failure answers alike: {answers:?}");
    // And in the same time: an unknown code is checked against a dummy hash, so it costs what a
    // wrong secret costs (the Argon2id verification); without the dummy it would answer at once.
    let mut wrong = Vec::new();
    let mut absent = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        public(&app, Method::GET, &format!("/api/v1/public/cases/{code}"), Some(&wrong_secret), None).await;
        wrong.push(t.elapsed());
        let t = Instant::now();
        public(&app, Method::GET, &format!("/api/v1/public/cases/{unknown}"), Some(&secret), None).await;
        absent.push(t.elapsed());
    }
    let (w, a) = (median(wrong), median(absent));
    assert!(a * 2 >= w && w * 2 >= a, "an unknown code ({a:?}) and a wrong secret ({w:?}) take the same time");
    // The right secret still opens it.
    let r = public(&app, Method::GET, &format!("/api/v1/public/cases/{code}"), Some(&secret), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn the_public_side_answers_429_with_retry_after_beyond_its_rate() {
    let app = spawn_app_with(|s| {
        s.public.rate_per_min = 2;
        s.public.burst = 3;
    })
    .await;
    for i in 0..3 {
        let r = public(&app, Method::GET, "/api/v1/public/options", None, None).await;
        assert_eq!(r.status, StatusCode::OK, "request {i} is within the burst: {}", r.text);
    }
    let r = public(&app, Method::GET, "/api/v1/public/options", None, None).await;
    r.assert_problem(429, "rate-limited");
    let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=30).contains(&retry), "one request every 30 s: {retry}");
    // Open311 shares the limit, and the authenticated API does not.
    let r = app.send(Method::GET, "/open311/v2/services.json", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = app.get("/api/v1/units", &app.token("clerk", None)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

#[tokio::test]
async fn bad_public_input_is_a_4xx_that_echoes_nothing_and_stores_nothing() {
    let app = spawn_app().await;
    let before = app.event_count().await;
    for (body, field) in [
        (json!({"kind": "complaint", "title": " ", "description": "x"}), "title"),
        (
            json!({"kind": "complaint", "title": "t", "description": "d", "complainant": {"phone": "13912345678x"}}),
            "complainant.phone",
        ),
        (
            json!({"kind": "complaint", "title": "t", "description": "d", "complainant": {"email": "zhang@@example"}}),
            "complainant.email",
        ),
        (
            json!({"kind": "complaint", "title": "t", "description": "d", "location": {"lat": 91.0, "long": 1.0}}),
            "location.lat",
        ),
        (json!({"kind": "complaint", "title": "t", "description": "d", "location": {"lat": 30.0}}), "location"),
    ] {
        let r = public(&app, Method::POST, "/api/v1/public/cases", None, Some(body)).await;
        r.assert_problem(422, "validation");
        assert_eq!(r.body["errors"][0]["field"], field, "{}", r.text);
        assert!(
            !r.text.contains("13912345678x") && !r.text.contains("zhang@@"),
            "no personal value echoed: {}",
            r.text
        );
    }
    assert_eq!(app.event_count().await, before, "nothing stored");
}

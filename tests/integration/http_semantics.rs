//! HTTP as RFC 9110 promises it, and the integrator's defects found in the field: 405 with
//! `Allow`, `HEAD`, `/docs`, `ETag` / `If-None-Match` on every GET, `If-Match: *` and lists,
//! CORS for configured origins, reveal and erase honouring `If-Match` and `Idempotency-Key`,
//! an idempotent replay that re-checks authorisation, and authorisation before the body.

use reqwest::{Method, StatusCode};
use serde_json::json;
use tests::app::{spawn_app, spawn_app_with};

#[tokio::test]
async fn a_path_under_another_method_answers_405_with_allow_and_options_lists_them() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let r = app.send(Method::PUT, &format!("/api/v1/cases/{id}"), Some(&sup), Some(&json!({})), &[]).await;
    r.assert_problem(405, "method-not-allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    let r = app.send(Method::GET, &format!("/api/v1/cases/{id}/assign"), Some(&sup), None, &[]).await;
    r.assert_problem(405, "method-not-allowed");
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
    let r = app.send(Method::OPTIONS, "/api/v1/ledger", None, None, &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    app.send(Method::GET, "/api/v1/nothing-here", Some(&sup), None, &[]).await.assert_problem(404, "not-found");
}

#[tokio::test]
async fn head_is_served_wherever_get_is_and_docs_redirects_to_its_slash() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    app.register(app.case_body()).await;
    let get = app.send(Method::GET, "/api/v1/ledger", Some(&clerk), None, &[]).await;
    let head = app.send(Method::HEAD, "/api/v1/ledger", Some(&clerk), None, &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.text.is_empty());
    assert_eq!(head.header("etag"), get.header("etag"));
    assert_eq!(head.header("content-type"), get.header("content-type"));
    // RFC 9110 §9.3.2: HEAD's Content-Length is the one GET would send (it once said 0).
    assert_eq!(head.header("content-length"), Some(get.text.len().to_string().as_str()));
    assert!(get.text.len() > 2, "the ledger holds a row");
    let head = app.send(Method::HEAD, "/healthz", None, None, &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = client.get(format!("{}/docs", app.address)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers()["location"], "/docs/");
}

/// A HEAD of an export or of the event stream answers its headers without doing the work: it
/// once built the whole workbook (and took an export slot) to throw it away. With no export
/// slot at all, GET is refused and HEAD still answers.
#[tokio::test]
async fn head_of_an_export_or_a_stream_does_not_do_the_work() {
    let app = tests::app::spawn_app_with(|s| {
        s.capacity.max_exports = 0;
        s.capacity.max_streams = 0;
    })
    .await;
    let clerk = app.token("clerk", None);
    app.register(app.case_body()).await;
    let xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
    for accept in ["text/csv", xlsx] {
        let get = app.send(Method::GET, "/api/v1/ledger", Some(&clerk), None, &[("Accept", accept)]).await;
        get.assert_problem(429, "at-capacity");
        let head = app.send(Method::HEAD, "/api/v1/ledger", Some(&clerk), None, &[("Accept", accept)]).await;
        assert_eq!(head.status, StatusCode::OK, "HEAD with Accept: {accept}");
        assert!(
            head.header("content-type").is_some_and(|t| t.starts_with(accept)),
            "{:?}",
            head.header("content-type")
        );
        assert!(head.text.is_empty());
    }
    let sup = app.token("supervisor", None);
    app.send(Method::GET, "/api/v1/events/stream", Some(&sup), None, &[]).await.assert_problem(429, "at-capacity");
    let head = app.send(Method::HEAD, "/api/v1/events/stream", Some(&sup), None, &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-type"), Some("text/event-stream"));
}

#[tokio::test]
async fn every_get_carries_an_etag_and_if_none_match_answers_304() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let id = app.register(app.case_body()).await;
    for path in [format!("/api/v1/cases/{id}/events"), "/api/v1/ledger".to_owned(), "/api/v1/units".to_owned()] {
        let r = app.get(&path, &clerk).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text);
        let etag = r.header("etag").unwrap_or_else(|| panic!("{path} has no ETag")).to_owned();
        let again = app.send(Method::GET, &path, Some(&clerk), None, &[("If-None-Match", &etag)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.text.is_empty());
        let list = format!("\"x\", {etag}");
        let again = app.send(Method::GET, &path, Some(&clerk), None, &[("If-None-Match", &list)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path} with a list");
        let other = app.send(Method::GET, &path, Some(&clerk), None, &[("If-None-Match", "\"other\"")]).await;
        assert_eq!(other.status, StatusCode::OK, "{path}");
    }
    // The case's ETag is its version, the If-Match token. The view also carries its deadlines'
    // state as of now (permille used, overdue), which moves with no new version: that tag once
    // answered 304 to a client holding an `on_track` view of a case since overdue. It answers the
    // whole view now.
    let r = app.get(&format!("/api/v1/cases/{id}"), &clerk).await;
    assert_eq!(r.header("etag"), Some("\"1\""));
    let again =
        app.send(Method::GET, &format!("/api/v1/cases/{id}"), Some(&clerk), None, &[("If-None-Match", "\"1\"")]).await;
    assert_eq!(again.status, StatusCode::OK, "no 304 on a version tag");
    assert!(again.body["deadline"].is_object(), "{}", again.text);
    // After a note the version changes.
    app.post(&format!("/api/v1/cases/{id}/notes"), &clerk, json!({"text": "备注"})).await;
    let r =
        app.send(Method::GET, &format!("/api/v1/cases/{id}"), Some(&clerk), None, &[("If-None-Match", "\"1\"")]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("etag"), Some("\"2\""));
}

#[tokio::test]
async fn if_match_takes_a_star_and_lists() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let path = format!("/api/v1/cases/{id}/notes");
    let note = json!({"text": "备注"});
    // If-Match compares strongly (RFC 9110 §13.1.1): a weak tag never matches, even the
    // current version's (a fresh reviewer's finding: `W/"3"` was taken as `"3"`).
    for (if_match, status) in [
        ("*", StatusCode::OK),
        ("\"1\", \"2\"", StatusCode::OK),
        ("W/\"3\"", StatusCode::PRECONDITION_FAILED),
        ("W/\"3\", \"3\"", StatusCode::OK),
        ("\"1\", \"2\"", StatusCode::PRECONDITION_FAILED),
    ] {
        let r = app.send(Method::POST, &path, Some(&sup), Some(&note), &[("If-Match", if_match)]).await;
        assert_eq!(r.status, status, "If-Match: {if_match}: {}", r.text);
    }
    app.send(Method::POST, &path, Some(&sup), Some(&note), &[("If-Match", "3")])
        .await
        .assert_problem(400, "invalid-if-match");
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let allowed = "https://ledger.example.org";
    let pre = app
        .send(
            Method::OPTIONS,
            "/api/v1/cases",
            None,
            None,
            &[
                ("Origin", allowed),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "authorization, content-type, idempotency-key"),
            ],
        )
        .await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT, "{}", pre.text);
    assert_eq!(pre.header("access-control-allow-origin"), Some(allowed));
    let r = app.send(Method::GET, "/api/v1/ledger", Some(&clerk), None, &[("Origin", allowed)]).await;
    assert_eq!(r.header("access-control-allow-origin"), Some(allowed));
    let exposed = r.header("access-control-expose-headers").unwrap_or_default().to_ascii_lowercase();
    for h in ["etag", "location", "link", "retry-after", "x-request-id"] {
        assert!(exposed.contains(h), "{h} not exposed: {exposed}");
    }
    let other =
        app.send(Method::GET, "/api/v1/ledger", Some(&clerk), None, &[("Origin", "https://evil.example")]).await;
    assert_eq!(other.status, StatusCode::OK, "a non-browser client still gets its answer");
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn reveal_and_erase_honour_if_match_and_idempotency_key() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let admin = app.token("admin", None);
    let id = app.register(app.case_body()).await;
    let reveal = format!("/api/v1/cases/{id}/complainant/reveal");
    let purpose = json!({"purpose_code": "verify_identity", "purpose": "核实反映人身份"});
    app.send(Method::POST, &reveal, Some(&sup), Some(&purpose), &[("If-Match", "\"7\"")])
        .await
        .assert_problem(412, "precondition-failed");
    let key = [("Idempotency-Key", "reveal-1")];
    let first = app.send(Method::POST, &reveal, Some(&sup), Some(&purpose), &key).await;
    let again = app.send(Method::POST, &reveal, Some(&sup), Some(&purpose), &key).await;
    assert_eq!((first.status, again.status), (StatusCode::OK, StatusCode::OK), "{}", again.text);
    assert_eq!(first.body["access_version"], again.body["access_version"]);
    let history = app.get(&format!("/api/v1/cases/{id}/events"), &sup).await.body;
    let reveals =
        history["events"].as_array().unwrap().iter().filter(|e| e["event_type"] == "case.complainant_revealed").count();
    assert_eq!(reveals, 1, "a retried reveal records one access");

    let erase = format!("/api/v1/cases/{id}/complainant/erase");
    app.send(Method::POST, &erase, Some(&admin), Some(&json!({})), &[("If-Match", "\"1\"")])
        .await
        .assert_problem(412, "precondition-failed");
    let view = app.get(&format!("/api/v1/cases/{id}"), &sup).await;
    assert_eq!(view.body["complainant"]["erased"], false, "a stale If-Match shreds nothing");
    let key = [("Idempotency-Key", "erase-1")];
    let a = app.send(Method::POST, &erase, Some(&admin), Some(&json!({})), &key).await;
    let b = app.send(Method::POST, &erase, Some(&admin), Some(&json!({})), &key).await;
    assert_eq!((a.status, b.status), (StatusCode::NO_CONTENT, StatusCode::NO_CONTENT), "{}", b.text);
    assert_eq!(a.header("etag"), b.header("etag"));
}

/// A fresh reviewer's finding: idempotency keys never expire, so replaying a reveal's key at any
/// later time showed the identity again with no new access in the history. A retry shows it
/// only within `HUIYIN_REVEAL_REPLAY_S`; later it is 409 and the history is unchanged.
#[tokio::test]
async fn a_reveal_retried_after_its_replay_window_shows_nothing_and_records_nothing() {
    let app = spawn_app_with(|s| s.vault.reveal_replay_s = 1).await;
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let reveal = format!("/api/v1/cases/{id}/complainant/reveal");
    let purpose = json!({"purpose_code": "verify_identity", "purpose": "核实反映人身份"});
    let key = [("Idempotency-Key", "reveal-late")];
    let first = app.send(Method::POST, &reveal, Some(&sup), Some(&purpose), &key).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let events = app.event_count().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let late = app.send(Method::POST, &reveal, Some(&sup), Some(&purpose), &key).await;
    late.assert_problem(409, "reveal-replay-expired");
    assert!(!late.text.contains("张三") && !late.text.contains("13812345678"), "{}", late.text);
    assert_eq!(app.event_count().await, events, "nothing recorded");
    // A new reveal (a new key) is a new, recorded look.
    let again = app.send(Method::POST, &reveal, Some(&sup), Some(&purpose), &[("Idempotency-Key", "reveal-new")]).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(app.event_count().await, events + 1);
}

#[tokio::test]
async fn an_idempotent_retry_re_checks_the_callers_scope() {
    // The field's input: a handler's note with a key, a transfer away, the same request again.
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let a = app.token("handler", Some(app.dept_a));
    let id = app.register(app.case_body()).await;
    app.post(&format!("/api/v1/cases/{id}/assign"), &clerk, json!({"unit_id": app.dept_a})).await;
    let note = json!({"text": "已联系反映人"});
    let key = [("Idempotency-Key", "k1")];
    let path = format!("/api/v1/cases/{id}/notes");
    let first = app.send(Method::POST, &path, Some(&a), Some(&note), &key).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let r = app
        .post(&format!("/api/v1/cases/{id}/transfer"), &clerk, json!({"reason": "改派", "to_unit_id": app.dept_b}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    app.get(&format!("/api/v1/cases/{id}"), &a).await.assert_problem(404, "not-found");
    let again = app.send(Method::POST, &path, Some(&a), Some(&note), &key).await;
    again.assert_problem(404, "not-found");
    assert!(!again.text.contains("低保"), "nothing of the case leaks");
}

#[tokio::test]
async fn a_role_that_may_never_send_a_command_gets_403_whatever_its_body() {
    let app = spawn_app().await;
    let admin = app.token("admin", None);
    let id = app.register(app.case_body()).await;
    for (path, body) in [
        (format!("/api/v1/cases/{id}/assign"), json!({"unit_id": 42})),
        (format!("/api/v1/cases/{id}/notes"), json!({"nope": true})),
        ("/api/v1/cases".to_owned(), json!({"title": []})),
    ] {
        app.post(&path, &admin, body).await.assert_problem(403, "forbidden");
    }
    let r = app
        .send(Method::POST, &format!("/api/v1/cases/{id}/notes"), Some(&admin), None, &[("Content-Type", "text/plain")])
        .await;
    r.assert_problem(403, "forbidden");
}

/// The kind behind the example above, on every route that takes a body: a citizen (who may send
/// no command today: the citizen's own side is not built yet) gets 403 on every write operation
/// of the served spec, whatever the body: absent, `null`, a string, an object of wrong types,
/// or sent as text. No body is parsed before the permission is checked.
#[tokio::test]
async fn every_write_route_answers_a_role_without_the_right_403_before_reading_its_body() {
    let app = spawn_app().await;
    let citizen = app.token("citizen", None);
    let id = app.register(app.case_body()).await;
    let spec = app.send(Method::GET, "/openapi.json", None, None, &[]).await.body;
    let bodies: [(Option<serde_json::Value>, &str); 5] = [
        (None, "application/json"),
        (Some(json!(null)), "application/json"),
        (Some(json!("text")), "application/json"),
        (Some(json!({"name": 1, "title": [], "max_extension_days": 29.5, "unit_id": "x"})), "application/json"),
        (None, "text/plain"),
    ];
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        // The public side and Open311 take no token: their callers are told apart otherwise.
        if path.starts_with("/api/v1/public") || path.starts_with("/open311/") {
            continue;
        }
        for method in ["post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let url = path.replace("{id}", &id.to_string()).replace("{year}", "2026").replace("{code}", "x");
            let url = format!("/api/v1{}", url.trim_start_matches("/api/v1"));
            for (body, content_type) in &bodies {
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                // Headers that would be 400 (a malformed If-Match, an Idempotency-Key with a
                // space) are read after the permission too.
                let headers =
                    [("Content-Type", *content_type), ("If-Match", "not-an-etag"), ("Idempotency-Key", "a b")];
                let r = app.send(m, &url, Some(&citizen), body.as_ref(), &headers).await;
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{method} {path} with {body:?} as {content_type}: {}",
                    r.text
                );
                checked += 1;
            }
        }
    }
    // Hand count of the write operations in openapi/openapi.json at the time of writing: 39.
    assert!(checked >= 39 * 5, "only {checked} requests: the spec's write operations were not all reached");
}

/// The same kind on every read route: a role without the right gets 403 whatever its query
/// string says (values of the wrong type, out of range, unknown parameters) and whatever
/// `Last-Event-ID` it sends. The query was once parsed by an extractor before the handler ran,
/// so a caller who may read nothing learned 400 (and which parameters exist) instead.
#[tokio::test]
async fn every_read_route_answers_a_role_without_the_right_403_before_reading_its_query() {
    let app = spawn_app().await;
    let citizen = app.token("citizen", None);
    let id = app.register(app.case_body()).await;
    let spec = app.send(Method::GET, "/openapi.json", None, None, &[]).await.body;
    let bad_query =
        "limit=many&after=%00&version=x&as_of=yesterday&from=x&to=y&sort=up&cursor=!&include_inactive=maybe&nope=1";
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        if item.get("get").is_none() || !path.starts_with("/api/v1") || path.starts_with("/api/v1/public") {
            continue;
        }
        let url = path.replace("{id}", &id.to_string()).replace("{year}", "2026").replace("{code}", "x");
        let r = app
            .send(Method::GET, &format!("{url}?{bad_query}"), Some(&citizen), None, &[("Last-Event-ID", "garbage")])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "GET {path}: {}", r.text);
        checked += 1;
    }
    // Hand count of the read operations under /api/v1 in openapi/openapi.json when written: 17.
    assert!(checked >= 17, "only {checked} read routes were reached");
    // And the same queries from a role that may read answer 400, naming the parameter.
    let sup = app.token("supervisor", None);
    app.get("/api/v1/ledger?limit=many", &sup).await.assert_problem(400, "invalid-query");
}

/// What JSON Schema lets a client send, the server takes: `null` where the spec allows it
/// (`oneOf [null, …]` for an optional body) and an integer written with a zero fraction
/// (`29.0` is an integer to JSON Schema); a fraction that is not zero is still refused.
#[tokio::test]
async fn a_null_optional_body_and_a_whole_number_written_as_a_float_are_taken() {
    let app = spawn_app().await;
    let clerk = app.token("clerk", None);
    let id = app.register(app.case_body()).await;
    let r = app.send(Method::POST, &format!("/api/v1/cases/{id}/accept"), Some(&clerk), Some(&json!(null)), &[]).await;
    assert_eq!(r.status, StatusCode::OK, "accept with a null body: {}", r.text);
    // An array is not an object, though serde would read a struct from one.
    let r = app.send(Method::POST, &format!("/api/v1/cases/{id}/resume"), Some(&clerk), Some(&json!([])), &[]).await;
    r.assert_problem(422, "validation");
    let positional = json!(["phone", "complaint", "村口路灯损坏", "村口路灯损坏三个月无人修理"]);
    app.post("/api/v1/cases", &clerk, positional).await.assert_problem(422, "validation");
    let admin = app.token("admin", None);
    let body = |days: serde_json::Value| json!({"code": format!("f.{}", days.to_string().replace('.', "_")), "name": "浮点", "deadline_policy": {"max_extension_days": days}});
    let r = app.post("/api/v1/categories", &admin, body(json!(29.0))).await;
    assert_eq!(r.status, StatusCode::CREATED, "29.0 is an integer: {}", r.text);
    assert_eq!(r.body["deadline_policy"]["max_extension_days"], 29);
    app.post("/api/v1/categories", &admin, body(json!(29.5))).await.assert_problem(422, "validation");
    let r = app.post(&format!("/api/v1/units/{}/deactivate", app.dept_b), &admin, json!(null)).await;
    assert_eq!(r.status, StatusCode::OK, "deactivate with a null body: {}", r.text);
}

/// The spec says what the server answers: the live feed takes no page size (`limit` is
/// refused like any unknown parameter, as the spec lists none), and the latest checkpoint
/// before any was made is a documented 404.
#[tokio::test]
async fn the_stream_refuses_a_page_size_and_a_missing_checkpoint_is_a_documented_404() {
    let app = spawn_app().await;
    let auditor = app.token("auditor", None);
    app.get("/api/v1/events/stream?limit=5", &auditor).await.assert_problem(400, "invalid-query");
    app.get("/api/v1/integrity/checkpoints/latest", &auditor).await.assert_problem(404, "not-found");
    let spec = app.send(Method::GET, "/openapi.json", None, None, &[]).await.body;
    let stream = &spec["paths"]["/api/v1/events/stream"]["get"];
    let params: Vec<&str> =
        stream["parameters"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(params, ["after"]);
    assert!(spec["paths"]["/api/v1/integrity/checkpoints/latest"]["get"]["responses"]["404"].is_object());
}

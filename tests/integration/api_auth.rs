//! Authentication and authorisation: the JWT negative corpus, and every endpoint × role ×
//! own/foreign unit walked against the one table in `api::auth::RULES`.

use api::auth::{Action, Scope, permission};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use domain::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tests::app::{AUDIENCE, ISSUER, TestApp, spawn_app, spawn_app_with};
use uuid::Uuid;

fn claims(role: &str) -> Value {
    json!({"sub": "someone", "role": role, "iss": ISSUER, "aud": AUDIENCE,
           "exp": chrono::Utc::now().timestamp() + 600, "iat": chrono::Utc::now().timestamp()})
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn unsigned(header: Value, claims: &Value) -> String {
    format!("{}.{}.", B64.encode(header.to_string()), B64.encode(claims.to_string()))
}

#[tokio::test]
async fn every_bad_token_is_refused_with_401() {
    let app = spawn_app().await;
    let good = app.token_with(claims("supervisor"));
    let id = app.register(app.case_body()).await;
    let path = format!("/api/v1/cases/{id}");
    assert_eq!(app.get(&path, &good).await.status, StatusCode::OK, "the corpus's baseline token works");

    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims("supervisor"),
        &jsonwebtoken::EncodingKey::from_secret(app.secret.as_bytes()),
    )
    .unwrap();
    let other_secret = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims("supervisor"),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-that-is-long-enough-to-sign"),
    )
    .unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    // The signature of a clerk's token on a supervisor's claims.
    let clerk_sig = app.token_with(claims("clerk")).split('.').nth(2).unwrap().to_owned();
    let forged_role = format!("{}.{}.{}", parts[0], B64.encode(claims("supervisor").to_string()), clerk_sig);
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    // HS/RS confusion: an RS256 header with an HMAC signature made with the secret.
    let rs_header = B64.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
    let rs_confused = {
        let body = format!("{rs_header}.{}", parts[1]);
        let sig = app.token_with(claims("supervisor")).split('.').nth(2).unwrap().to_owned();
        format!("{body}.{sig}")
    };
    let now = chrono::Utc::now().timestamp();

    let corpus: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("garbage", Some("not-a-jwt".into())),
        ("alg none", Some(unsigned(json!({"alg": "none", "typ": "JWT"}), &claims("supervisor")))),
        ("no alg", Some(unsigned(json!({"typ": "JWT"}), &claims("supervisor")))),
        ("alg HS512 (not allowed)", Some(hs512)),
        (
            "alg EdDSA without a configured key",
            Some(format!("{}.{}.{}", B64.encode(json!({"alg": "EdDSA"}).to_string()), parts[1], parts[2])),
        ),
        ("HS/RS confusion", Some(rs_confused)),
        ("signed with another secret", Some(other_secret)),
        ("tampered signature", Some(flipped)),
        ("payload swapped under a valid signature", Some(forged_role)),
        ("expired", Some(app.token_with(with(claims("supervisor"), "exp", json!(now - 600))))),
        (
            "exp as a string (CVE-2026-25537)",
            Some(app.token_with(with(claims("supervisor"), "exp", json!((now + 600).to_string())))),
        ),
        ("no exp", Some(app.token_with(without(claims("supervisor"), "exp")))),
        ("wrong aud", Some(app.token_with(with(claims("supervisor"), "aud", json!("someone-else"))))),
        ("no aud", Some(app.token_with(without(claims("supervisor"), "aud")))),
        ("wrong iss", Some(app.token_with(with(claims("supervisor"), "iss", json!("evil"))))),
        ("no iss", Some(app.token_with(without(claims("supervisor"), "iss")))),
        ("no sub", Some(app.token_with(without(claims("supervisor"), "sub")))),
        ("unknown role", Some(app.token_with(claims("mayor")))),
        ("handler without a unit", Some(app.token_with(claims("handler")))),
        ("not yet valid", Some(app.token_with(with(claims("supervisor"), "nbf", json!(now + 3600))))),
    ];
    for (name, token) in corpus {
        let r = app.send(Method::GET, &path, token.as_deref(), None, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}: {}", r.text);
        r.assert_problem(401, "unauthorized");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{name}");
    }
}

/// Every case endpoint with a body that is valid for it.
fn case_endpoints(app: &TestApp) -> Vec<(Method, &'static str, Action, Value)> {
    vec![
        (Method::GET, "", Action::ReadCase, Value::Null),
        (Method::GET, "/events", Action::ReadCase, Value::Null),
        (Method::POST, "/classify", Action::Classify, json!({"category_id": Uuid::nil()})),
        (Method::POST, "/assign", Action::Assign, json!({"unit_id": app.dept_b})),
        (Method::POST, "/transfer", Action::Transfer, json!({"reason": "非本单位职责"})),
        (
            Method::POST,
            "/extend",
            Action::Extend,
            json!({"due_at": (chrono::Utc::now() + chrono::Duration::days(40)).to_rfc3339(), "reason": "需核查"}),
        ),
        (Method::POST, "/handle", Action::Handle, json!({"outcome": "resolved", "result": "已处理"})),
        (Method::POST, "/feedback", Action::Feedback, json!({"method": "phone", "content": "已告知"})),
        (Method::POST, "/satisfaction", Action::Satisfaction, json!({"rating": "satisfied"})),
        (Method::POST, "/reopen", Action::Reopen, json!({"reason": "重办"})),
        (Method::POST, "/escalate", Action::Escalate, json!({"reason": "督办"})),
        (Method::POST, "/reject", Action::Reject, json!({"reason": "不予受理"})),
        (Method::POST, "/close", Action::Close, json!({})),
        (Method::POST, "/link-duplicate", Action::LinkDuplicate, json!({"of": Uuid::nil()})),
        (Method::POST, "/unlink-duplicate", Action::UnlinkDuplicate, json!({"reason": "并非重复"})),
        (Method::POST, "/notes", Action::AddNote, json!({"text": "备注"})),
    ]
}

#[tokio::test]
async fn every_case_endpoint_answers_every_role_as_the_rules_table_says() {
    let app = spawn_app().await;
    let roles: Vec<(&str, Role, Option<Uuid>, bool)> = vec![
        ("clerk", Role::Clerk, None, false),
        ("handler of the case's unit", Role::Handler, Some(app.dept_a), true),
        ("handler of another unit", Role::Handler, Some(app.dept_b), false),
        ("supervisor", Role::Supervisor, None, false),
        ("auditor", Role::Auditor, None, false),
        ("admin", Role::Admin, None, false),
    ];
    let sup = app.token("supervisor", None);
    let mut checked = 0;
    for (method, suffix, action, body) in case_endpoints(&app) {
        for (who, role, unit, own) in &roles {
            // A fresh case assigned to dept_a for every pair, so no check sees another's effects.
            let id = app.register(app.case_body()).await;
            let r = app.post(&format!("/api/v1/cases/{id}/assign"), &sup, json!({"unit_id": app.dept_a})).await;
            assert_eq!(r.status, StatusCode::OK);
            let token = app.token(role.as_str(), *unit);
            let before = app.event_count().await;
            let body = (method == Method::POST).then_some(&body);
            let r = app.send(method.clone(), &format!("/api/v1/cases/{id}{suffix}"), Some(&token), body, &[]).await;
            let status = r.status.as_u16();
            match permission(*role, action) {
                None => {
                    r.assert_problem(403, "forbidden");
                }
                Some(Scope::OwnUnit) if !own => {
                    r.assert_problem(404, "not-found");
                    assert_eq!(r.body["detail"], "case not found", "out of scope looks exactly like missing");
                }
                Some(_) => assert!(
                    !matches!(status, 401 | 403 | 404),
                    "{who} may {action:?} ({method} {suffix}) but got {status}: {}",
                    r.text
                ),
            }
            if !(200..300).contains(&status) {
                assert_eq!(app.event_count().await, before, "a refused request writes nothing");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 16 * 6);

    // Registration and a missing case.
    for (who, role, unit, _) in &roles {
        let token = app.token(role.as_str(), *unit);
        let r = app.post("/api/v1/cases", &token, app.case_body()).await;
        match permission(*role, Action::RegisterCase) {
            None => r.assert_problem(403, "forbidden"),
            Some(_) => assert_eq!(r.status, StatusCode::CREATED, "{who}: {}", r.text),
        }
        if permission(*role, Action::ReadCase).is_some() {
            app.get(&format!("/api/v1/cases/{}", Uuid::new_v4()), &token).await.assert_problem(404, "not-found");
        }
    }
}

#[tokio::test]
async fn reference_data_is_read_by_all_and_written_by_admins_only() {
    let app = spawn_app().await;
    for role in ["clerk", "supervisor", "auditor"] {
        let t = app.token(role, None);
        assert_eq!(app.get("/api/v1/units", &t).await.status, StatusCode::OK);
        app.post("/api/v1/units", &t, json!({"name": "新村", "kind": "village"}))
            .await
            .assert_problem(403, "forbidden");
        app.post("/api/v1/categories", &t, json!({"code": "x", "name": "x"})).await.assert_problem(403, "forbidden");
    }
    let admin = app.token("admin", None);
    let r =
        app.post("/api/v1/units", &admin, json!({"name": "东岭村", "kind": "village", "parent_id": app.town})).await;
    r.assert_problem(409, "taken");
    let r = app
        .post("/api/v1/units", &admin, json!({"name": "孤村", "kind": "village", "parent_id": Uuid::new_v4()}))
        .await;
    r.assert_problem(422, "unknown-reference");
    let r = app
        .send(
            Method::PATCH,
            &format!("/api/v1/units/{}", app.dept_b),
            Some(&admin),
            Some(&json!({"name": "教育服务中心"})),
            &[],
        )
        .await;
    assert_eq!(r.body["name"], "教育服务中心");
    let r = app.post(&format!("/api/v1/units/{}/deactivate", app.dept_b), &admin, json!({})).await;
    assert_eq!(r.body["active"], false, "{}", r.text);
    // A deactivated unit takes no new case.
    let id = app.register(app.case_body()).await;
    let sup = app.token("supervisor", None);
    app.post(&format!("/api/v1/cases/{id}/assign"), &sup, json!({"unit_id": app.dept_b}))
        .await
        .assert_problem(422, "unknown-reference");
    let listed = app.get("/api/v1/units", &sup).await;
    assert!(listed.body.as_array().unwrap().iter().all(|u| u["id"] != json!(app.dept_b)));
}

#[tokio::test]
async fn eddsa_tokens_work_when_a_key_pair_is_configured_and_hs256_is_then_refused() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let auth = api::settings::AuthArgs {
        jwt_secret: None,
        jwt_private_key: Some(fixtures.join("test-ed25519-private.pem")),
        jwt_public_key: Some(fixtures.join("test-ed25519-public.pem")),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
    };
    let app = spawn_app_with(|s| s.auth = auth.clone()).await;
    let signer = api::auth::Authenticator::from_settings(&auth).unwrap();
    let token = signer.sign("auditor-1", Role::Auditor, None, chrono::Duration::minutes(5)).unwrap();
    assert!(token.starts_with(&B64.encode(r#"{"typ":"JWT","alg":"EdDSA"}"#)[..10]) || token.contains('.'));
    let r = app.get("/api/v1/units", &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Without a configured secret, an HS256 token is refused whatever it is signed with.
    let hs = app.token("auditor", None);
    app.get("/api/v1/units", &hs).await.assert_problem(401, "unauthorized");
}

#[test]
fn a_short_hs256_secret_is_refused_at_startup() {
    let auth = api::settings::AuthArgs {
        jwt_secret: Some("too-short".into()),
        jwt_private_key: None,
        jwt_public_key: None,
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
    };
    assert!(api::auth::Authenticator::from_settings(&auth).is_err());
}

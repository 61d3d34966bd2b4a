//! Authentication and authorisation: the JWT negative corpus, and every endpoint × role ×
//! own/foreign unit walked against a literal matrix written out by hand.

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
    let tokens = corpus.len();
    for (name, token) in corpus {
        let r = app.send(Method::GET, &path, token.as_deref(), None, &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}: {}", r.text);
        r.assert_problem(401, "unauthorized");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{name}");
    }
    println!("hostile callers: JWT corpus of {tokens} bad tokens: {tokens} × 401 with WWW-Authenticate, 0 admitted");
}

/// What a role may do on a case, written out by hand from the intended policy (not read from
/// `api::auth::RULES`, so that a change to the table the server enforces shows up here):
/// `A` allowed (any answer but 401, 403, 404 or 5xx), `F` forbidden (403), `N` out of scope
/// (404, exactly like a missing case). Columns: clerk, handler of the case's lead unit, handler
/// of another unit, supervisor, auditor, admin, citizen.
const MATRIX: &[(&str, &str, &str)] = &[
    ("GET", "", "AANAAFF"),
    ("GET", "/events", "AANAAFF"),
    ("POST", "/accept", "AFFAFFF"),
    ("POST", "/notices", "AANAFFF"),
    ("POST", "/classify", "AFFAFFF"),
    ("POST", "/assign", "AFFAFFF"),
    ("POST", "/sign", "FANFFFF"),
    ("POST", "/return", "FANFFFF"),
    ("POST", "/return/approve", "AFFAFFF"),
    ("POST", "/return/refuse", "AFFAFFF"),
    ("POST", "/transfer", "AFFAFFF"),
    ("POST", "/contributions", "FANFFFF"),
    ("POST", "/extension", "FANFFFF"),
    ("POST", "/extension/approve", "FFFAFFF"),
    ("POST", "/extension/refuse", "FFFAFFF"),
    ("POST", "/extend", "FFFAFFF"),
    ("POST", "/pause", "AFFAFFF"),
    ("POST", "/resume", "AFFAFFF"),
    ("POST", "/handle", "FANAFFF"),
    ("POST", "/feedback", "FANAFFF"),
    ("POST", "/follow-up-attempts", "AFFAFFF"),
    ("POST", "/satisfaction", "AFFAFFF"),
    ("POST", "/reopen", "FFFAFFF"),
    ("POST", "/escalate", "FFFAFFF"),
    ("POST", "/reject", "AFFAFFF"),
    ("POST", "/close", "FFFAFFF"),
    ("POST", "/link-duplicate", "AFFAFFF"),
    ("POST", "/unlink-duplicate", "AFFAFFF"),
    ("POST", "/notes", "AANAFFF"),
    ("POST", "/complainant/reveal", "FFFAFFF"),
    ("POST", "/complainant/erase", "FFFFFAF"),
];

/// A body that is valid for each endpoint.
fn body_for(app: &TestApp, suffix: &str) -> Value {
    let later = (chrono::Utc::now() + chrono::Duration::days(40)).to_rfc3339();
    match suffix {
        "/notices" => {
            json!({"kind": "acknowledgement", "method": "sms", "content": "已受理", "receipt_code_given": true})
        }
        "/classify" => json!({"category_id": Uuid::nil()}),
        "/assign" => json!({"unit_id": app.dept_b}),
        "/return" | "/return/refuse" | "/transfer" | "/extension/refuse" | "/pause" | "/reopen" | "/escalate"
        | "/unlink-duplicate" => json!({"reason": "依规处理"}),
        "/contributions" | "/notes" => json!({"text": "备注"}),
        "/extension" | "/extend" => json!({"due_at": later, "reason": "需核查"}),
        "/handle" => json!({"outcome": "resolved", "result": "已处理"}),
        "/feedback" => json!({"method": "phone", "content": "已告知"}),
        "/follow-up-attempts" => json!({"method": "phone", "note": "无人接听"}),
        "/satisfaction" => json!({"rating": "satisfied", "method": "phone", "solved": true}),
        "/reject" => json!({"reason_code": "other", "reason": "不予受理"}),
        "/link-duplicate" => json!({"of": Uuid::nil()}),
        "/complainant/reveal" => json!({"purpose_code": "verify_identity", "purpose": "核实反映人身份"}),
        _ => json!({}),
    }
}

#[tokio::test]
async fn every_case_endpoint_answers_every_role_as_the_literal_matrix_says() {
    let app = spawn_app().await;
    let roles: [(&str, Option<Uuid>); 7] = [
        ("clerk", None),
        ("handler", Some(app.dept_a)),
        ("handler", Some(app.dept_b)),
        ("supervisor", None),
        ("auditor", None),
        ("admin", None),
        ("citizen", None),
    ];
    let sup = app.token("supervisor", None);
    let mut checked = 0;
    for (method, suffix, expected) in MATRIX {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for ((role, unit), want) in roles.iter().zip(expected.chars()) {
            // A fresh case assigned to dept_a for every pair, so no check sees another's effects.
            let id = app.register(app.case_body()).await;
            let r = app.post(&format!("/api/v1/cases/{id}/assign"), &sup, json!({"unit_id": app.dept_a})).await;
            assert_eq!(r.status, StatusCode::OK);
            let token = app.token(role, *unit);
            let before = app.event_count().await;
            let body = body_for(&app, suffix);
            let body = (method == Method::POST).then_some(&body);
            let r = app.send(method.clone(), &format!("/api/v1/cases/{id}{suffix}"), Some(&token), body, &[]).await;
            let status = r.status.as_u16();
            let who = format!("{role} {unit:?} {method} {suffix}");
            match want {
                'F' => r.assert_problem(403, "forbidden"),
                'N' => {
                    r.assert_problem(404, "not-found");
                    assert_eq!(r.body["detail"], "case not found", "{who}: out of scope looks exactly like missing");
                }
                _ => assert!(
                    !matches!(status, 401 | 403 | 404) && status < 500,
                    "{who}: allowed, but got {status}: {}",
                    r.text
                ),
            }
            if !(200..300).contains(&status) {
                assert_eq!(app.event_count().await, before, "{who}: a refused request writes nothing");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, MATRIX.len() * 7);
    println!(
        "hostile callers: {checked} role × unit × case-endpoint requests ({} endpoints, 7 callers) answered as the literal matrix says; 0 × 5xx",
        MATRIX.len()
    );

    // Registration and a missing case.
    for (who, role, unit) in [
        ("clerk", Role::Clerk, None),
        ("handler", Role::Handler, Some(app.dept_a)),
        ("supervisor", Role::Supervisor, None),
        ("auditor", Role::Auditor, None),
        ("admin", Role::Admin, None),
        ("citizen", Role::Citizen, None),
    ] {
        let token = app.token(role.as_str(), unit);
        let r = app.post("/api/v1/cases", &token, app.case_body()).await;
        let may_register = matches!(role, Role::Clerk | Role::Supervisor);
        if may_register {
            assert_eq!(r.status, StatusCode::CREATED, "{who}: {}", r.text);
        } else {
            r.assert_problem(403, "forbidden");
        }
        let may_read = !matches!(role, Role::Admin | Role::Citizen);
        let missing = app.get(&format!("/api/v1/cases/{}", Uuid::new_v4()), &token).await;
        missing.assert_problem(if may_read { 404 } else { 403 }, if may_read { "not-found" } else { "forbidden" });
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
    let (private, public) = tests::app::test_key_pair();
    let auth = api::settings::AuthArgs {
        jwt_secret: None,
        jwt_private_key: Some(private.clone()),
        jwt_public_key: Some(public.clone()),
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        max_ttl_s: api::settings::DEFAULT_JWT_MAX_TTL_S,
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
        max_ttl_s: api::settings::DEFAULT_JWT_MAX_TTL_S,
    };
    assert!(api::auth::Authenticator::from_settings(&auth).is_err());
}

/// What a role may do on the campaign's records (issue 11), written out by hand from the intended
/// policy: campaigns are launched by supervisors and admins; meetings, open visits, card batches
/// and questionnaires are recorded by clerks and supervisors; an undercover visit is recorded
/// and disclosed by supervisors and read, until then, by supervisors and auditors only; handlers
/// read the records of their unit; the chain check is for supervisors and auditors. Columns and
/// letters as in [`MATRIX`]; the second column is a handler of the village the record concerns,
/// the third a handler of a department it does not concern. `{id}` is a fresh record of the
/// path's kind, `{uc}` a fresh undercover visit.
const RECORD_MATRIX: &[(&str, &str, &str)] = &[
    ("GET", "/campaigns", "AAAAAAF"),
    ("POST", "/campaigns", "FFFAFAF"),
    ("GET", "/campaigns/{id}", "AANAAAF"),
    ("POST", "/campaigns/{id}/documents", "FFFAFAF"),
    ("POST", "/campaigns/{id}/phases", "FFFAFAF"),
    ("GET", "/meetings", "AAAAAAF"),
    ("POST", "/meetings", "AFFAFFF"),
    ("GET", "/meetings/{id}", "AANAAAF"),
    ("POST", "/meetings/{id}/opinions", "AFFAFFF"),
    ("GET", "/contact-cards/batches", "AAAAAAF"),
    ("POST", "/contact-cards/batches", "AFFAFFF"),
    ("GET", "/contact-cards/batches/{id}", "AANAAAF"),
    ("POST", "/contact-cards/batches/{id}/handouts", "AFFAFFF"),
    ("POST", "/contact-cards/batches/{id}/recipients/erase", "FFFFFAF"),
    ("GET", "/visits", "AAAAAAF"),
    ("POST", "/visits", "AFFAFFF"),
    ("GET", "/visits/{id}", "AANAAAF"),
    ("POST", "/visits/{id}/findings", "AFFAFFF"),
    ("POST", "/visits/{id}/rechecks", "AFFAFFF"),
    ("POST", "/visits/{id}/cases", "AFFAFFF"),
    ("GET", "/visits/{uc}", "NNNAANF"),
    ("POST", "/visits/{uc}/findings", "NFFAFFF"),
    ("POST", "/visits/{uc}/disclose", "FFFAFFF"),
    ("GET", "/records/{uc}/history", "NNNAANF"),
    ("GET", "/surveys", "AAAAAAF"),
    ("POST", "/surveys", "AFFAFFF"),
    ("GET", "/surveys/{id}", "AANAAAF"),
    ("POST", "/surveys/{id}/template", "AFFAFFF"),
    ("POST", "/surveys/{id}/responses", "AFFAFFF"),
    ("GET", "/surveys/{id}/results", "AANAAAF"),
    ("GET", "/records/{id}/history", "AANAAAF"),
    ("GET", "/records/{id}/verify", "FFFAAFF"),
];

#[tokio::test]
async fn every_record_endpoint_answers_every_role_as_the_literal_matrix_says() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let roles: [(&str, Option<Uuid>); 7] = [
        ("clerk", None),
        ("handler", Some(app.village)),
        ("handler", Some(app.dept_a)),
        ("supervisor", None),
        ("auditor", None),
        ("admin", None),
        ("citizen", None),
    ];
    let today = chrono::Utc::now().date_naive();
    let day = |d: i64| (today + chrono::Duration::days(d)).to_string();
    let mut serial = 0u64;
    let mut checked = 0;
    for (method, path, expected) in RECORD_MATRIX {
        for ((role, unit), want) in roles.iter().zip(expected.chars()) {
            serial += 100;
            let kind = path.trim_start_matches('/').split('/').next().unwrap();
            // Campaigns may not share a unit and a day: each one here runs on days of its own.
            let k = i64::try_from(serial / 4).unwrap();
            let campaign_body = json!({"name": "纠风", "leading_unit_id": app.town, "unit_ids": [app.village],
                "phases": [{"phase": "implementation", "from": day(k), "to": day(k + 20)}]});
            let meeting_body = json!({"topic": "座谈", "held_on": day(0), "venue": "会议室", "host_unit_id": app.village,
                "chair": "李", "recorder": "王", "attendance": [{"type": "villager_representative", "count": 24}]});
            let batch_body = json!({"serial_from": serial, "serial_to": serial + 50, "phone": "0571", "email": "a@b.cn",
                "village_id": app.village, "delivered_on": day(0)});
            let visit_body = |mode: &str| {
                json!({"mode": mode, "visited_on": day(0), "organiser_unit_id": app.town,
                "team": [{"name": "张"}], "places": [{"type": "village", "name": "东岭村", "village_id": app.village}]})
            };
            let survey_body = json!({"title": "问卷", "respondent_type": "村民", "surveyed_on": day(0), "place": "东岭村",
                "surveyor": "王", "unit_id": app.village,
                "questions": [{"key": "q1", "text": "补贴是否到位", "kind": "yes_no"}]});
            let create = |p: &str, b: Value| {
                let app = &app;
                let sup = sup.clone();
                let p = p.to_owned();
                async move {
                    let r = app.post(&format!("/api/v1{p}"), &sup, b).await;
                    assert_eq!(r.status, StatusCode::CREATED, "{p}: {}", r.text);
                    r.body["id"].as_str().unwrap().to_owned()
                }
            };
            let id = if path.contains("{uc}") {
                let id = create("/visits", visit_body("undercover")).await;
                let f = app.post(&format!("/api/v1/visits/{id}/findings"), &sup, json!({"text": "发现"})).await;
                assert_eq!(f.status, StatusCode::OK);
                Some(id)
            } else if path.contains("{id}") {
                Some(match kind {
                    "campaigns" | "records" => create("/campaigns", campaign_body.clone()).await,
                    "meetings" => create("/meetings", meeting_body.clone()).await,
                    "contact-cards" => create("/contact-cards/batches", batch_body.clone()).await,
                    "visits" => {
                        let id = create("/visits", visit_body("open")).await;
                        let f = app
                            .post(
                                &format!("/api/v1/visits/{id}/findings"),
                                &sup,
                                json!({"text": "发现",
                                "rectification": {"demand": "整改", "due_on": day(7)}}),
                            )
                            .await;
                        assert_eq!(f.status, StatusCode::OK);
                        id
                    }
                    _ => create("/surveys", survey_body.clone()).await,
                })
            } else {
                None
            };
            serial += 100;
            let body = match (*method, *path) {
                ("POST", "/campaigns") => {
                    json!({"name": "纠风", "leading_unit_id": app.town, "unit_ids": [app.village],
                    "phases": [{"phase": "implementation", "from": day(i64::try_from(serial / 4).unwrap()), "to": day(i64::try_from(serial / 4).unwrap() + 20)}]})
                }
                ("POST", "/campaigns/{id}/documents") => {
                    json!({"kind": "publicity", "title": "宣传", "content": "内容"})
                }
                ("POST", "/campaigns/{id}/phases") => {
                    let k = i64::try_from(serial / 4).unwrap();
                    json!({"phases": [{"phase": "implementation", "from": day(k - 25), "to": day(k - 15)}]})
                }
                ("POST", "/meetings") => meeting_body.clone(),
                ("POST", "/meetings/{id}/opinions") => {
                    json!({"opinions": [{"kind": "complaint", "title": "意见", "description": "内容"}]})
                }
                ("POST", "/contact-cards/batches") => {
                    json!({"serial_from": serial, "serial_to": serial + 50, "phone": "0571",
                    "email": "a@b.cn", "village_id": app.village, "delivered_on": day(0)})
                }
                ("POST", "/contact-cards/batches/{id}/handouts") => {
                    json!({"serial_from": serial - 200, "serial_to": serial - 190, "on": day(0)})
                }
                ("POST", "/contact-cards/batches/{id}/recipients/erase") => json!({"serial": serial - 200}),
                ("POST", "/visits") => visit_body("open"),
                ("POST", "/visits/{id}/findings") | ("POST", "/visits/{uc}/findings") => json!({"text": "又一发现"}),
                ("POST", "/visits/{id}/rechecks") => json!({"finding": 1, "on": day(0), "rectified": true}),
                ("POST", "/visits/{id}/cases") => json!({"finding": 1, "kind": "complaint", "title": "发现成案"}),
                ("POST", "/surveys") => survey_body.clone(),
                ("POST", "/surveys/{id}/template") => {
                    json!({"questions": [{"key": "q2", "text": "新问题", "kind": "rating"}]})
                }
                ("POST", "/surveys/{id}/responses") => {
                    json!({"responses": [{"village_id": app.village, "answers": {"q1": true}}]})
                }
                _ => json!({}),
            };
            let url = format!(
                "/api/v1{}",
                path.replace("{id}", id.as_deref().unwrap_or("")).replace("{uc}", id.as_deref().unwrap_or(""))
            );
            let token = app.token(role, *unit);
            let before = app.event_count().await;
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let body = (m == Method::POST).then_some(&body);
            let r = app.send(m.clone(), &url, Some(&token), body, &[]).await;
            let status = r.status.as_u16();
            let who = format!("{role} {unit:?} {method} {path}");
            match want {
                'F' => r.assert_problem(403, "forbidden"),
                'N' => r.assert_problem(404, "not-found"),
                _ => assert!(
                    !matches!(status, 401 | 403 | 404) && status < 500,
                    "{who}: allowed, but got {status}: {}",
                    r.text
                ),
            }
            if !(200..300).contains(&status) {
                assert_eq!(app.event_count().await, before, "{who}: a refused request writes nothing");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, RECORD_MATRIX.len() * 7);
    println!(
        "hostile callers: {checked} role × unit × record-endpoint requests ({} endpoints, 7 callers) answered as the literal matrix says; 0 × 5xx",
        RECORD_MATRIX.len()
    );
}

/// Who may use the integrations and the handler's question, written out by hand from the
/// authorisation table's intent (issue 12): clerk, handler of the village (the case is not at
/// its unit), handler of the department the case is assigned to, supervisor, auditor, admin,
/// citizen. `A` allowed, `F` 403, `N` 404 (outside the caller's scope).
const INTEGRATION_MATRIX: &[(&str, &str, &str)] = &[
    ("GET", "/notice-templates", "AFFAAAF"),
    ("PUT", "/notice-templates/question/email", "FFFFFAF"),
    ("GET", "/cases/{case}/notices/outbox", "AFFAAFF"),
    ("POST", "/cases/{case}/questions", "ANAAFFF"),
    ("POST", "/webhooks", "FFFFFAF"),
    ("GET", "/webhooks", "FFFFFAF"),
    ("GET", "/webhooks/{hook}", "FFFFFAF"),
    ("POST", "/webhooks/{hook}/disable", "FFFFFAF"),
    ("POST", "/webhooks/{hook}/enable", "FFFFFAF"),
    ("POST", "/open311-keys", "FFFFFAF"),
    ("GET", "/open311-keys", "FFFFFAF"),
    ("DELETE", "/open311-keys/{key}", "FFFFFAF"),
    ("PUT", "/categories/{category}/attributes", "FFFFFAF"),
];

#[tokio::test]
async fn every_integration_endpoint_answers_every_role_as_the_literal_matrix_says() {
    let app = spawn_app().await;
    let admin = app.token("admin", None);
    let clerk = app.token("clerk", None);
    let case = app.register(app.case_body()).await;
    let r = app.post(&format!("/api/v1/cases/{case}/assign"), &clerk, json!({"unit_id": app.dept_a})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let hook =
        app.post("/api/v1/webhooks", &admin, json!({"url": "http://127.0.0.1:9/hook"})).await.body["endpoint"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
    let category = app.post("/api/v1/categories", &admin, json!({"code": "matrix", "name": "矩阵"})).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let roles: [(&str, Option<Uuid>); 7] = [
        ("clerk", None),
        ("handler", Some(app.village)),
        ("handler", Some(app.dept_a)),
        ("supervisor", None),
        ("auditor", None),
        ("admin", None),
        ("citizen", None),
    ];
    let mut checked = 0;
    for (method, path, expected) in INTEGRATION_MATRIX {
        for ((role, unit), want) in roles.iter().zip(expected.chars()) {
            let key =
                app.post("/api/v1/open311-keys", &admin, json!({"name": "矩阵", "channel": "web"})).await.body["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
            let url = format!(
                "/api/v1{}",
                path.replace("{case}", &case.to_string())
                    .replace("{hook}", &hook)
                    .replace("{key}", &key)
                    .replace("{category}", &category)
            );
            let body = match *path {
                "/notice-templates/question/email" => json!({"subject": "询问", "body": "请回答：{question}"}),
                "/cases/{case}/questions" => json!({"text": "请问具体位置？"}),
                "/webhooks" => json!({"url": "http://127.0.0.1:9/other"}),
                "/webhooks/{hook}/disable" => json!({"reason": "矩阵测试停用"}),
                "/open311-keys" => json!({"name": "平台", "channel": "web"}),
                "/categories/{category}/attributes" => json!({"attributes": []}),
                _ => json!({}),
            };
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let body = matches!(m, Method::POST | Method::PUT).then_some(&body);
            let before = app.event_count().await;
            let r = app.send(m, &url, Some(&app.token(role, *unit)), body, &[]).await;
            let status = r.status.as_u16();
            let who = format!("{role} {unit:?} {method} {path}");
            match want {
                'F' => r.assert_problem(403, "forbidden"),
                'N' => r.assert_problem(404, "not-found"),
                _ => assert!((200..300).contains(&status), "{who}: allowed, but got {status}: {}", r.text),
            }
            if !(200..300).contains(&status) {
                assert_eq!(app.event_count().await, before, "{who}: a refused request writes nothing");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, INTEGRATION_MATRIX.len() * 7);
}

//! Contention: many writers at one case at one moment.

use reqwest::StatusCode;
use serde_json::json;
use tests::app::spawn_app;

/// 50 commands sent at once with one `If-Match` on one case: exactly one is applied, the other
/// 49 answer 412 with the current version, and the case holds one more event.
#[tokio::test]
async fn fifty_commands_with_one_if_match_let_exactly_one_win() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let url = format!("{}/api/v1/cases/{id}/notes", app.address);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (client, url, sup) = (app.client.clone(), url.clone(), sup.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(sup)
                .header("If-Match", "\"1\"")
                .json(&json!({"text": format!("并发备注{i}")}))
                .send()
                .await
                .unwrap();
            let status = r.status();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (status, body)
        }));
    }
    let mut won = 0;
    let mut refused = 0;
    for t in tasks {
        let (status, body) = t.await.unwrap();
        match status {
            StatusCode::OK => won += 1,
            StatusCode::PRECONDITION_FAILED => {
                assert_eq!(body["current_version"], 2, "{body}");
                refused += 1;
            }
            other => panic!("only 200 or 412, got {other}: {body}"),
        }
    }
    assert_eq!((won, refused), (1, 49));
    let v = app.get(&format!("/api/v1/cases/{id}"), &sup).await.body;
    assert_eq!((v["version"].as_u64(), v["notes"].as_u64()), (Some(2), Some(1)));
    println!("contention: 50 commands at If-Match \"1\": 1 applied, 49 × 412, version 2");
}

/// Retries of one request (one Idempotency-Key, one body, one `If-Match`) sent at the same
/// moment all answer what the first did: 200 at version 2, one note written. A retry that met
/// the case after the first had committed used to answer 412 (its If-Match no longer held).
/// Five cases, thirty copies each.
#[tokio::test]
async fn concurrent_retries_of_one_keyed_command_all_answer_the_first_result() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    for round in 0..5 {
        let id = app.register(app.case_body()).await;
        let url = format!("{}/api/v1/cases/{id}/notes", app.address);
        let mut tasks = Vec::new();
        for _ in 0..30 {
            let (client, url, sup) = (app.client.clone(), url.clone(), sup.clone());
            tasks.push(tokio::spawn(async move {
                let r = client
                    .post(url)
                    .bearer_auth(sup)
                    .header("If-Match", "\"1\"")
                    .header("Idempotency-Key", format!("retry-{round}"))
                    .json(&json!({"text": "同一请求的重试"}))
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.headers().get("etag").map(|v| v.to_str().unwrap().to_owned()))
            }));
        }
        for t in tasks {
            let (status, etag) = t.await.unwrap();
            assert_eq!(status, StatusCode::OK, "round {round}");
            assert_eq!(etag.as_deref(), Some("\"2\""), "round {round}");
        }
        let case: serde_json::Value = app
            .client
            .get(format!("{}/api/v1/cases/{id}", app.address))
            .bearer_auth(&sup)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(case["version"], 2, "round {round}: one note written");
    }
}

/// `If-Match: *` asks only that the case exist (RFC 9110 §13.1.1), which a concurrent write does
/// not change: twelve notes sent at once with it are all applied, as without it. A writer that
/// loses the race decides again on the case as it now is and checks its If-Match there. The
/// losers used to answer 412.
#[tokio::test]
async fn commands_at_if_match_star_are_all_applied_under_contention() {
    let app = spawn_app().await;
    let sup = app.token("supervisor", None);
    let id = app.register(app.case_body()).await;
    let url = format!("{}/api/v1/cases/{id}/notes", app.address);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (client, url, sup) = (app.client.clone(), url.clone(), sup.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(sup)
                .header("If-Match", "*")
                .json(&json!({"text": format!("星号备注{i}")}))
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
    let v = app.get(&format!("/api/v1/cases/{id}"), &sup).await.body;
    assert_eq!((v["version"].as_u64(), v["notes"].as_u64()), (Some(13), Some(12)));
}

//! Liveness and readiness.

use actix_web::{HttpResponse, get, web};

use crate::startup::AppState;

/// The process is up.
#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// The process can reach its database.
#[get("/readyz")]
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let ok = match state.pool.get().await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    if ok {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({ "status": "database unreachable" }))
    }
}

/// Registers the routes.
pub fn configure(cfg: &mut actix_web::web::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

//! Liveness and readiness.

use actix_web::{HttpResponse, get, web};

use crate::startup::AppState;

/// Liveness
///
/// The process is up.
#[utoipa::path(tag = "health", responses((status = 200, description = "Up", body = Object, example = json!({"status": "ok"}))))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Readiness
///
/// The process can reach its database.
#[utoipa::path(tag = "health", responses(
    (status = 200, description = "Ready", body = Object, example = json!({"status": "ready"})),
    (status = 503, description = "The database is unreachable", body = Object, example = json!({"status": "database unreachable"}))
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let ok = match state.pool.get().await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    if ok {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "database unreachable" }))
    }
}

/// Registers the routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

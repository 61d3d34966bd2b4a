//! Liveness and readiness.

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};

use crate::middleware::Capacity;
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
/// The process can reach its database: a connection and `SELECT 1` within
/// `HUIYIN_READY_TIMEOUT_MS` (default 2 s). A database that is down, frozen or out of connections
/// answers 503 when that time is up, never later.
#[utoipa::path(tag = "health", responses(
    (status = 200, description = "Ready", body = Object, example = json!({"status": "ready"})),
    (status = 503, description = "The database is unreachable", body = Object, example = json!({"status": "database unreachable"}))
))]
#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>, capacity: web::Data<Capacity>) -> HttpResponse {
    if infra::db::ping(&state.pool, capacity.ready_timeout).await {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "1"))
            .json(serde_json::json!({ "status": "database unreachable" }))
    }
}

/// Registers the routes.
pub fn configure(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(healthz).service(readyz);
}

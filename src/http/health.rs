//! `/healthz` (the process answers) and `/readyz` (the database takes a
//! durable write and the disk has room).

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::{error::ApiError, AppState};

pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub(super) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let readiness = state.store.readiness().await?;
    let min = state.settings.storage.min_free_mb;
    if readiness.free_mb < min {
        return Err(ApiError::NotReady(format!(
            "only {} MiB free on the data disk, below storage.min_free_mb = {min}",
            readiness.free_mb
        )));
    }
    Ok(HttpResponse::Ok().json(json!({ "status": "ready", "storage": readiness })))
}

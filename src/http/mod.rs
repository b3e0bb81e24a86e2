//! HTTP endpoints, one file per family; [`configure`] mounts them all.

mod admin;
mod callbacks;
mod door;
mod error;
mod handshake;
mod health;
pub(crate) mod limits;
mod metrics;

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde_json::json;

pub use error::ApiError;

use crate::config::Settings;
use crate::ingest::IngestOptions;
use crate::metrics::Metrics;
use crate::store::Store;

/// Shared by every handler.
pub struct AppState {
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// Storage handle.
    pub store: Store,
    /// Parser options derived from settings.
    pub ingest: IngestOptions,
    /// Prometheus metrics of this service.
    pub metrics: Metrics,
}

impl AppState {
    /// Builds the state from settings and an open store.
    pub fn new(settings: Arc<Settings>, store: Store) -> Self {
        let ingest = IngestOptions {
            provider_timezone: settings.ingest.provider_timezone,
            default_country_code: settings.ingest.default_country_code.clone(),
            max_json_depth: settings.server.max_json_depth,
        };
        let metrics = Metrics::new(&store);
        AppState {
            settings,
            store,
            ingest,
            metrics,
        }
    }
}

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(health::healthz)))
        .service(web::resource("/readyz").route(web::get().to(health::readyz)))
        .service(web::resource("/metrics").route(web::get().to(metrics::metrics)))
        .service(
            web::resource("/v1/callbacks/{client}/{channel}")
                .route(web::get().to(callbacks::callback))
                .route(web::post().to(callbacks::callback)),
        )
        .route("/v1/exports", web::get().to(admin::export))
        .route(
            "/v1/messages/{client}/{message_id:.+}",
            web::get().to(admin::lookup),
        );
}

/// JSON 404 for every path no route serves.
pub async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .json(json!({ "error": { "code": "not_found", "message": "no such endpoint" } }))
}

//! `GET /metrics`: Prometheus text format, for scrapers connecting directly
//! from `server.metrics_allow`, or from anywhere with a valid admin bearer
//! token (any role: metrics hold no personal data). Without a token a request
//! relayed by a proxy is refused: the proxy's own (often loopback) address
//! says nothing about who asked.

use actix_web::http::header::{self, HeaderName};
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::AppState;
use crate::access::tokens;

/// Content type of the Prometheus text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let peer = req.peer_addr().map(|a| a.ip().to_canonical());
    let relayed = req.headers().contains_key(header::FORWARDED)
        || req
            .headers()
            .contains_key(HeaderName::from_static("x-forwarded-for"));
    let allowed = peer.is_some_and(|ip| {
        state
            .settings
            .server
            .metrics_allow
            .iter()
            .any(|n| n.contains(&ip))
    });
    if !allowed || relayed {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if authorization.is_some()
            && tokens::authenticate(&state.store, authorization)
                .await
                .is_ok()
        {
            return render(&state);
        }
        let who = peer.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        tracing::warn!(peer = %who, relayed, "metrics request refused");
        let message = if relayed {
            "metrics are served only to direct connections, not through a proxy".to_string()
        } else {
            format!("address {who} may not read metrics (server.metrics_allow)")
        };
        return HttpResponse::Forbidden()
            .json(json!({ "error": { "code": "metrics_not_allowed", "message": message } }));
    }
    render(&state)
}

fn render(state: &AppState) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, TEXT_FORMAT))
        .body(state.metrics.render())
}

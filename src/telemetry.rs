//! The tracing subscriber (JSON or pretty lines on standard error, filtered
//! by `log.level`) and the per-request span middleware.

use std::io::IsTerminal;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest};
use tracing::Instrument;
use tracing_subscriber::EnvFilter;
use uuid::Uuid;

use crate::config::{LogFormat, LogSettings};
use crate::domain::Channel;
use crate::http::AppState;

/// tokio-postgres logs every statement's parameters at debug level: phone
/// numbers and payloads. Whatever `log.level` says, that module stays above
/// debug (it logs nothing else).
const NO_QUERY_PARAMETERS: &str = "tokio_postgres::query=info";

/// Installs the global subscriber. `level` was validated with the config.
pub fn init(log: &LogSettings) {
    let filter = EnvFilter::try_new(&log.level)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive(NO_QUERY_PARAMETERS.parse().expect("a valid directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .init(),
        LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// Header carrying the request id, both ways.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Longest incoming request id taken over as is.
const MAX_REQUEST_ID_LEN: usize = 64;

/// Middleware: one `request` span per request, carrying the request id (taken
/// from a well-formed incoming `X-Request-Id`, e.g. nginx's `$request_id`,
/// else generated), method, route pattern, client, channel, status and
/// latency, closed by one `request finished` line. The id is returned as
/// `X-Request-Id`. Only the path pattern is logged, never the raw path or
/// query string (URL tokens and phone numbers travel there), and a client
/// name only when it is a configured client.
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_safe_request_id(v))
        .map_or_else(|| Uuid::new_v4().simple().to_string(), str::to_string);
    let method = req.method().to_string();
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_canonical().to_string())
        .unwrap_or_default();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = tracing::field::Empty,
        peer = %peer,
        client = tracing::field::Empty,
        channel = tracing::field::Empty,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
    );
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let result = next.call(req).instrument(span.clone()).await;
    let took = started.elapsed();
    let (status, channel, client, route) = match &result {
        Ok(res) => {
            let route = route_pattern(res.request());
            let info = res.request().match_info();
            let channel = info.get("channel").and_then(|c| c.parse::<Channel>().ok());
            let client = info.get("client").and_then(|c| {
                state
                    .as_ref()
                    .and_then(|s| s.settings.client(c))
                    .map(|c| c.id.to_string())
            });
            (res.status(), channel, client, route)
        }
        Err(e) => (e.as_response_error().status_code(), None, None, UNMATCHED),
    };
    span.record("route", route);
    if let Some(client) = &client {
        span.record("client", client.as_str());
    }
    if let Some(channel) = channel {
        span.record("channel", channel.as_str());
    }
    span.record("status", status.as_u16());
    span.record("latency_ms", took.as_secs_f64() * 1000.0);
    span.in_scope(|| tracing::info!("request finished"));
    if let Some(state) = &state {
        state
            .metrics
            .request(route, &method, status.as_u16(), channel, took);
    }
    let mut res = result?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(res)
}

/// Route label of requests no route served.
const UNMATCHED: &str = "unmatched";

/// The pattern of the route that served `req`, told from the path and the
/// segments the router captured. `HttpRequest::match_pattern` would give the
/// same answer by running every route's regex again: 9% of the instructions
/// spent on a callback in a callgrind profile (docs/benchmarks.md).
fn route_pattern(req: &HttpRequest) -> &'static str {
    let info = req.match_info();
    if info.get("message_id").is_some() {
        "/v1/messages/{client}/{message_id}"
    } else if info.get("channel").is_some() {
        "/v1/callbacks/{client}/{channel}"
    } else {
        match req.path() {
            "/healthz" => "/healthz",
            "/readyz" => "/readyz",
            "/metrics" => "/metrics",
            "/v1/exports" => "/v1/exports",
            _ => UNMATCHED,
        }
    }
}

/// An incoming id is kept only if it cannot smuggle anything into a log line
/// or a header: 1 to 64 of `A-Z a-z 0-9 . _ -`.
fn is_safe_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_request_ids_are_taken_over() {
        assert!(is_safe_request_id("3f2b9c0e1d4a4b6f8e7d6c5b4a392817"));
        assert!(is_safe_request_id("req-1.2_3"));
        assert!(!is_safe_request_id(""));
        assert!(!is_safe_request_id("a b"));
        assert!(!is_safe_request_id("x\"}{"));
        assert!(!is_safe_request_id(&"a".repeat(65)));
    }
}

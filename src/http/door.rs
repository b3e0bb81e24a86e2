//! The checks a callback passes before its body is parsed, in HTTP terms:
//! each reads the request and hands plain values to [`crate::access`].
//! `callbacks` runs them in order: client address → allowlist → URL token →
//! content encoding → body (size, deadline) → signatures → JSON depth.

use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use super::error::ApiError;
use crate::access::{proxies, signatures};
use crate::config::{ClientSettings, ServerSettings};

/// The address the request is judged by: the TCP peer, or the client a
/// trusted proxy names (see [`proxies::client_ip`]).
pub(super) fn client_ip(req: &HttpRequest, server: &ServerSettings) -> Result<IpAddr, ApiError> {
    let peer = req
        .peer_addr()
        .map(|a| a.ip())
        .ok_or(ApiError::UnreadableClientAddress)?;
    let name = server.forwarded_header.name();
    let values = req.headers().get_all(name).filter_map(|v| v.to_str().ok());
    proxies::client_ip(peer, &server.trusted_proxies, server.forwarded_header, values).ok_or_else(
        || {
            tracing::warn!(%peer, header = name, "trusted proxy forwarded an unreadable client address");
            ApiError::UnreadableClientAddress
        },
    )
}

/// Compressed bodies are refused before a byte of them is read: nothing is
/// ever inflated, so a decompression bomb costs nothing.
pub(super) fn refuse_content_encoding(req: &HttpRequest) -> Result<(), ApiError> {
    for value in req.headers().get_all(header::CONTENT_ENCODING) {
        let text = String::from_utf8_lossy(value.as_bytes());
        let encodings = text.split(',').map(str::trim).filter(|e| !e.is_empty());
        if let Some(other) = encodings
            .into_iter()
            .find(|e| !e.eq_ignore_ascii_case("identity"))
        {
            return Err(ApiError::UnsupportedEncoding(
                other.chars().take(32).collect(),
            ));
        }
    }
    Ok(())
}

/// Reads the body, refusing it as soon as it is known to exceed `limit` (from
/// `Content-Length` before reading anything, else while streaming) or when it
/// has not fully arrived within `timeout`.
pub(super) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<web::Bytes, ApiError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::BodyTooLarge(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    loop {
        let next = tokio::time::timeout_at(deadline, payload.next())
            .await
            .map_err(|_| ApiError::BodyTimeout(timeout.as_secs()))?;
        let Some(chunk) = next else {
            break;
        };
        let chunk = chunk.map_err(|e| ApiError::BodyRead(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::BodyTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Every signature the client requires, over the raw body.
pub(super) fn verify_signatures(
    req: &HttpRequest,
    client: &ClientSettings,
    body: &[u8],
) -> Result<(), ApiError> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let now = chrono::Utc::now().timestamp();
    signatures::verify_client(client, header, body, now).map_err(|e| {
        tracing::warn!(client = %client.id, reason = %e, "callback with missing or wrong signature");
        ApiError::BadSignature(e)
    })
}

//! Provider subscription handshakes on the callback URL: Meta's
//! `hub.challenge` (GET) and Google RBM's `{clientToken, secret}` (POST).
//! Each answers its echo as `text/plain` only when the client's configured
//! token matches, compared in constant time; nothing is stored.

use actix_web::HttpResponse;

use super::error::ApiError;
use crate::access;
use crate::config::ClientSettings;
use crate::ingest::{meta, rbm, Rejection};

/// Answers Meta's handshake if `query` is one (it carries `hub.mode`).
pub(super) fn meta(client: &ClientSettings, query: &str) -> Option<Result<HttpResponse, ApiError>> {
    let v = meta::verification(query)?;
    let Some(expected) = &client.meta_verify_token else {
        return Some(Err(not_configured(client, "meta_verify_token")));
    };
    if v.mode != "subscribe" {
        return Some(Err(ApiError::Rejected(Rejection::new(
            "invalid_handshake",
            "`hub.mode` must be `subscribe`",
        ))));
    }
    if !access::token_matches(expected, v.verify_token.as_deref()) {
        tracing::warn!(client = %client.id, "Meta handshake with a wrong hub.verify_token");
        return Some(Err(ApiError::HandshakeRefused {
            code: "invalid_verify_token",
            message: "`hub.verify_token` does not match this client's meta_verify_token".into(),
        }));
    }
    let Some(challenge) = v.challenge.filter(|c| !c.is_empty()) else {
        return Some(Err(ApiError::Rejected(Rejection::new(
            "invalid_handshake",
            "`hub.challenge` is missing",
        ))));
    };
    tracing::info!(client = %client.id, "answered Meta webhook verification");
    Some(Ok(plain(challenge)))
}

/// Answers RBM's handshake if `body` is one (exactly `clientToken` and `secret`).
pub(super) fn rbm(client: &ClientSettings, body: &[u8]) -> Option<Result<HttpResponse, ApiError>> {
    let v = rbm::verification(body)?;
    let Some(expected) = &client.rbm_client_token else {
        return Some(Err(not_configured(client, "rbm_client_token")));
    };
    if !access::token_matches(expected, Some(&v.client_token)) {
        tracing::warn!(client = %client.id, "RBM handshake with a wrong clientToken");
        return Some(Err(ApiError::HandshakeRefused {
            code: "invalid_client_token",
            message: "`clientToken` does not match this client's rbm_client_token".into(),
        }));
    }
    tracing::info!(client = %client.id, "answered RBM webhook verification");
    Some(Ok(plain(v.secret)))
}

fn not_configured(client: &ClientSettings, key: &str) -> ApiError {
    tracing::warn!(client = %client.id, key, "provider handshake for a client without its token");
    ApiError::HandshakeRefused {
        code: "handshake_not_configured",
        message: format!("this client has no `{key}`, so the handshake cannot be answered"),
    }
}

fn plain(text: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(text)
}

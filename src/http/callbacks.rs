//! `GET|POST /v1/callbacks/{client}/{channel}`: the door for provider
//! callbacks. Access is judged before the body is read, signatures over the
//! raw body before it is parsed (see `door`); the response is sent only after
//! the store has committed.

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};

use super::{door, error::ApiError, handshake, AppState};
use crate::access;
use crate::config::BodyEncoding;
use crate::domain::Channel;
use crate::ingest::{self, RawCallback, Rejection};
use crate::metrics::Denial;
use crate::store::{IngestBatch, IngestOutcome, Quarantined};

pub(super) async fn callback(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (client_name, channel_name) = path.into_inner();
    let settings = &state.settings;
    let client = settings
        .client(&client_name)
        .ok_or_else(|| ApiError::UnknownClient(client_name.clone()))?;
    let channel: Channel = channel_name
        .parse()
        .map_err(|()| ApiError::UnknownChannel(channel_name.clone()))?;

    // The client's address: the TCP peer, or whom a trusted proxy names.
    let peer = door::client_ip(&req, &settings.server)?;
    if !access::ip_allowed(settings, client, peer) {
        tracing::warn!(%peer, client = %client.id, "callback from address not in allowlist");
        state
            .metrics
            .access_denied(&client.id, Denial::IpNotAllowed);
        return Err(ApiError::IpNotAllowed(peer.to_string()));
    }
    let (token, query) = access::take_token(req.query_string());
    if let Some(expected) = &client.url_token {
        if !access::token_matches(expected, token.as_deref()) {
            tracing::warn!(%peer, client = %client.id, "callback with missing or wrong url token");
            state
                .metrics
                .access_denied(&client.id, Denial::InvalidToken);
            return Err(ApiError::BadUrlToken);
        }
    }

    if req.method() == Method::GET {
        if let Some(answer) = handshake::meta(client, &query) {
            return answer;
        }
    }

    door::refuse_content_encoding(&req)?;
    let body = door::read_body(
        &req,
        payload,
        settings.server.max_body_bytes,
        settings.server.body_timeout,
    )
    .await?;
    // Handshakes carry no signature: they are answered before the check.
    if let Some(answer) = handshake::rbm(client, &body) {
        return answer;
    }
    if let Err(e) = door::verify_signatures(&req, client, &body) {
        state
            .metrics
            .access_denied(&client.id, Denial::InvalidSignature);
        return Err(e);
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let raw = RawCallback {
        channel,
        query: Some(query.as_str()),
        content_type,
        body: &body,
    };
    let mut batch = IngestBatch {
        client: client.id.clone(),
        received_at: chrono::Utc::now().timestamp_millis(),
        source_ip: peer.to_string(),
        events: Vec::new(),
        quarantined: Vec::new(),
    };
    let quarantine = |rejection: &Rejection, bytes: Vec<u8>| Quarantined {
        channel,
        content_type: content_type.map(str::to_string),
        code: rejection.code,
        reason: rejection.message.clone(),
        body: bytes,
    };
    let whole_body = || {
        if body.is_empty() {
            query.as_bytes().to_vec()
        } else {
            body.to_vec()
        }
    };
    // A Base16 body is decoded first; its declared type describes the hex,
    // so the decoded bytes are sniffed.
    let parsed = match client.encoding {
        Some(BodyEncoding::Base16) => ingest::decode_base16(&body).and_then(|decoded| {
            let raw = RawCallback {
                content_type: None,
                body: &decoded,
                ..raw
            };
            ingest::parse(raw, &state.ingest)
        }),
        None => ingest::parse(raw, &state.ingest),
    };
    let failure = match parsed {
        Ok(parsed)
            if !parsed.events.is_empty() || !parsed.notices.is_empty() || parsed.ignored > 0 =>
        {
            for item in parsed.rejects.iter().chain(&parsed.notices) {
                batch
                    .quarantined
                    .push(quarantine(&item.rejection, item.raw.clone().into_bytes()));
            }
            batch.events = parsed.events;
            None
        }
        Ok(parsed) => {
            let first = parsed.rejects.into_iter().next().map_or_else(
                || Rejection {
                    code: "no_events",
                    message: "the body holds no events".into(),
                },
                |r| r.rejection,
            );
            Some(first)
        }
        Err(rejection) => Some(rejection),
    };
    if let Some(rejection) = failure {
        batch.quarantined.push(quarantine(&rejection, whole_body()));
        let outcome = state.store.ingest(batch).await?;
        state.metrics.events(&client.id, channel, &outcome);
        tracing::info!(client = %client.id, channel = channel.as_str(), code = rejection.code, "callback quarantined");
        return Err(ApiError::Rejected(rejection));
    }
    if batch.events.is_empty() && batch.quarantined.is_empty() {
        // Only ignored items (RBM IS_TYPING): nothing to commit.
        return Ok(HttpResponse::Ok().json(IngestOutcome::default()));
    }
    let outcome = state.store.ingest(batch).await?;
    state.metrics.events(&client.id, channel, &outcome);
    Ok(HttpResponse::Ok().json(outcome))
}

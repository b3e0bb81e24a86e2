//! `GET|POST /v1/callbacks/{client}/{channel}`: the door for provider
//! callbacks. Access is judged before the body is read; the response is sent
//! only after the store has committed.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::{error::ApiError, AppState};
use crate::access;
use crate::domain::Channel;
use crate::ingest::{self, RawCallback, Rejection};
use crate::metrics::Denial;
use crate::store::{IngestBatch, Quarantined};

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

    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_canonical())
        .ok_or_else(|| ApiError::IpNotAllowed("unknown".into()))?;
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

    let body = read_body(&req, payload, settings.server.max_body_bytes).await?;
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
    let failure = match ingest::parse(raw, &state.ingest) {
        Ok(parsed) if !parsed.events.is_empty() => {
            for item in &parsed.rejects {
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
    let outcome = state.store.ingest(batch).await?;
    state.metrics.events(&client.id, channel, &outcome);
    Ok(HttpResponse::Ok().json(outcome))
}

/// Reads the body, refusing it as soon as it is known to exceed `limit`: from
/// `Content-Length` before reading anything, else while streaming.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::BodyTooLarge(limit));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::BodyRead(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::BodyTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

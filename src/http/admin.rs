//! `GET /v1/exports` (streamed CSV/NDJSON) and `GET /v1/messages/{client}/{id}`
//! for the people who read the data. Every request — served or refused —
//! leaves a row in the audit log. Data is masked unless an `owner` token
//! asks for `unmasked=true` with a `reason` and a valid `X-TOTP` code.

use std::collections::HashMap;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

use super::AppState;
use crate::access::tokens::{self, AuthError, Principal, Role};
use crate::export::{self, Format, Privacy};
use crate::store::{AuditEntry, EventFilter, StoreError};

/// Shortest accepted `reason` for unmasked access.
const MIN_REASON_CHARS: usize = 10;

/// A refused admin request.
#[derive(Debug)]
pub(super) struct AdminError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl AdminError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        AdminError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        AdminError::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        AdminError::new(StatusCode::FORBIDDEN, code, message)
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AdminError {}

impl From<AuthError> for AdminError {
    fn from(e: AuthError) -> Self {
        let status = match &e {
            AuthError::Storage(_) => return StoreError::Unavailable(e.to_string()).into(),
            AuthError::NoSecondFactor => StatusCode::FORBIDDEN,
            AuthError::TotpLocked => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::UNAUTHORIZED,
        };
        AdminError::new(status, e.code(), e.to_string())
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "storage fault on an admin request");
        AdminError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "storage is unavailable; retry later",
        )
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        match self.status {
            StatusCode::UNAUTHORIZED => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                response.insert_header((header::RETRY_AFTER, "5"));
            }
            _ => {}
        }
        // Messages echo request values; none may carry a number unmasked.
        let message = Privacy::default_masker().text(&self.message);
        response.json(json!({ "error": { "code": self.code, "message": message } }))
    }
}

/// What a request asked for, once parsed.
struct Ask {
    params: HashMap<String, String>,
}

impl Ask {
    fn parse(query: &str, allowed: &[&str]) -> Result<Ask, AdminError> {
        let mut params = HashMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            if !allowed.contains(&k.as_ref()) {
                return Err(AdminError::bad_request(
                    "unknown_parameter",
                    format!("unknown query parameter `{k}`; use {}", allowed.join(", ")),
                ));
            }
            params.insert(k.into_owned(), v.into_owned());
        }
        Ok(Ask { params })
    }

    fn get(&self, key: &str) -> Option<String> {
        self.params.get(key).filter(|v| !v.is_empty()).cloned()
    }

    fn unmasked(&self) -> Result<bool, AdminError> {
        self.flag("unmasked")
    }

    fn flag(&self, key: &str) -> Result<bool, AdminError> {
        match self.get(key).as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(_) => Err(AdminError::bad_request(
                "invalid_parameter",
                format!("`{key}` must be true or false"),
            )),
        }
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// Starts the audit row of a request; filled in as the request is judged.
/// The source is the client a trusted proxy names, as for callbacks; a
/// proxy that names nobody readable leaves its own address.
fn audit_for(req: &HttpRequest, state: &AppState, action: &str) -> AuditEntry {
    let source = super::door::client_ip(req, &state.settings.server)
        .ok()
        .or_else(|| req.peer_addr().map(|a| a.ip()))
        .map(|ip| ip.to_canonical().to_string());
    AuditEntry {
        at: now().timestamp_millis(),
        actor: "anonymous".into(),
        action: action.into(),
        source_ip: source,
        outcome: "ok".into(),
        ..AuditEntry::default()
    }
}

/// Runs the token check and records who is asking in `audit`.
async fn principal(
    req: &HttpRequest,
    state: &AppState,
    audit: &mut AuditEntry,
) -> Result<Principal, AdminError> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let who = tokens::authenticate(&state.store, authorization).await?;
    audit.actor = who.name.clone();
    audit.role = Some(who.role.as_str().to_string());
    Ok(who)
}

/// The checks for unmasked data: owner, a reason, then the second factor
/// (last, so a refused request does not burn the code).
async fn allow_unmasked(
    req: &HttpRequest,
    state: &AppState,
    who: &Principal,
    reason: Option<String>,
    audit: &mut AuditEntry,
) -> Result<(), AdminError> {
    if who.role != Role::Owner {
        return Err(AdminError::forbidden(
            "unmasked_not_allowed",
            "only owner tokens may ask for unmasked data",
        ));
    }
    let reason = reason.unwrap_or_default();
    if reason.trim().chars().count() < MIN_REASON_CHARS {
        return Err(AdminError::bad_request(
            "reason_required",
            format!("unmasked data needs a `reason` of at least {MIN_REASON_CHARS} characters"),
        ));
    }
    audit.reason = Some(reason.trim().to_string());
    let code = req.headers().get("x-totp").and_then(|v| v.to_str().ok());
    tokens::verify_totp(&state.store, who, code, now().timestamp_millis()).await?;
    Ok(())
}

/// Writes the audit row of a refused request, then refuses.
async fn refuse(state: &AppState, mut audit: AuditEntry, e: AdminError) -> AdminError {
    audit.outcome = e.code.to_string();
    if let Err(store) = state.store.audit(audit).await {
        return store.into();
    }
    tracing::info!(
        code = e.code,
        status = e.status.as_u16(),
        "admin request refused"
    );
    e
}

/// `GET /v1/exports`
pub(super) async fn export(
    req: HttpRequest,
    state: web::Data<AppState>,
    privacy: web::Data<Privacy>,
) -> Result<HttpResponse, AdminError> {
    let mut audit = audit_for(&req, &state, "export");
    match start_export(&req, &state, &privacy, &mut audit).await {
        Ok(response) => Ok(response),
        Err(e) => {
            audit.filters = Some(privacy.masker.text(req.query_string()));
            Err(refuse(&state, audit, e).await)
        }
    }
}

async fn start_export(
    req: &HttpRequest,
    state: &AppState,
    privacy: &Privacy,
    audit: &mut AuditEntry,
) -> Result<HttpResponse, AdminError> {
    let who = principal(req, state, audit).await?;
    let ask = Ask::parse(
        req.query_string(),
        &[
            "client",
            "from",
            "to",
            "channel",
            "direction",
            "status",
            "format",
            "unmasked",
            "reason",
            "include_archive",
        ],
    )?;
    if who.role == Role::Support {
        return Err(AdminError::forbidden(
            "role_not_allowed",
            "support tokens may look up single messages but not export",
        ));
    }
    let client = ask.get("client");
    audit.client_id.clone_from(&client);
    let time = |key: &str| {
        ask.get(key)
            .map(|v| export::parse_time(key, &v))
            .transpose()
            .map_err(|m| AdminError::bad_request("invalid_parameter", m))
    };
    let filter = EventFilter {
        clients: match &client {
            Some(c) => Some(vec![c.clone()]),
            None => who.clients.clone(),
        },
        from: time("from")?,
        to: time("to")?,
        channel: ask.get("channel"),
        direction: ask.get("direction"),
        status: ask.get("status"),
    };
    export::check_filter(&filter).map_err(|m| AdminError::bad_request("invalid_parameter", m))?;
    let format = ask
        .get("format")
        .map_or(Ok(Format::Csv), |f| Format::parse(&f))
        .map_err(|m| AdminError::bad_request("invalid_parameter", m))?;
    let unmasked = ask.unmasked()?;
    let include_archive = ask.flag("include_archive")?;
    if let Some(c) = &client {
        if state.settings.client(c).is_none() {
            return Err(AdminError::new(
                StatusCode::NOT_FOUND,
                "unknown_client",
                format!("unknown client `{c}`"),
            ));
        }
        if !who.may_read(c) {
            return Err(AdminError::forbidden(
                "client_not_allowed",
                format!("this token may not read client `{c}`"),
            ));
        }
    }
    if unmasked {
        allow_unmasked(req, state, &who, ask.get("reason"), audit).await?;
    }
    audit.filters = Some(
        json!({
            "filter": filter,
            "format": format.extension(),
            "unmasked": unmasked,
            "include_archive": include_archive,
        })
        .to_string(),
    );
    let file = format!(
        "authkey-export-{}-{}.{}",
        client.as_deref().unwrap_or("all"),
        now().format("%Y%m%dT%H%M%SZ"),
        format.extension()
    );
    let (head, encode) = privacy.view(unmasked).encoder(format);
    let archive = include_archive.then(|| state.settings.archive.dir.clone());
    let rx = state
        .store
        .export_events(filter, archive, head, encode, audit.clone());
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        Some((item.map_err(AdminError::from), rx))
    });
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .streaming(body))
}

/// `GET /v1/messages/{client}/{message_id}`
pub(super) async fn lookup(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    privacy: web::Data<Privacy>,
) -> Result<HttpResponse, AdminError> {
    let (client, id) = path.into_inner();
    let mut audit = audit_for(&req, &state, "lookup");
    audit.client_id = Some(client.clone());
    audit.filters = Some(json!({ "provider_message_id": id }).to_string());
    match find_message(&req, &state, &privacy, &client, &id, &mut audit).await {
        Ok(body) => {
            state.store.audit(audit).await?;
            Ok(HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(body))
        }
        Err(e) => Err(refuse(&state, audit, e).await),
    }
}

async fn find_message(
    req: &HttpRequest,
    state: &AppState,
    privacy: &Privacy,
    client: &str,
    id: &str,
    audit: &mut AuditEntry,
) -> Result<serde_json::Value, AdminError> {
    let who = principal(req, state, audit).await?;
    let ask = Ask::parse(req.query_string(), &["unmasked", "reason"])?;
    let unmasked = ask.unmasked()?;
    if state.settings.client(client).is_none() {
        return Err(AdminError::new(
            StatusCode::NOT_FOUND,
            "unknown_client",
            format!("unknown client `{client}`"),
        ));
    }
    if !who.may_read(client) {
        return Err(AdminError::forbidden(
            "client_not_allowed",
            format!("this token may not read client `{client}`"),
        ));
    }
    if unmasked {
        allow_unmasked(req, state, &who, ask.get("reason"), audit).await?;
    }
    let (messages, events) = state.store.message_history(client, id).await?;
    audit.rows = Some(events.len() as i64);
    if messages.is_empty() && events.is_empty() {
        return Err(AdminError::new(
            StatusCode::NOT_FOUND,
            "message_not_found",
            "no message with this id for this client",
        ));
    }
    let view = privacy.view(unmasked);
    let messages: Vec<_> = messages
        .iter()
        .map(|m| {
            json!({
                "recipient": view.recipient(&m.recipient),
                "pseudonym": view.key.pseudonym(&m.recipient),
                "channel": m.channel,
                "direction": m.direction,
                "status": m.status,
                "provider_status": m.provider_status,
                "error_code": m.error_code,
                "first_seen_at": export::rfc3339(m.first_seen_at),
                "last_event_at": m.last_event_at.map(export::rfc3339),
                "last_received_at": export::rfc3339(m.last_received_at),
                "event_count": m.event_count,
            })
        })
        .collect();
    let events: Vec<_> = events.iter().map(|e| view.record(e)).collect();
    Ok(json!({
        "client_id": client,
        "provider_message_id": id,
        "unmasked": unmasked,
        "messages": messages,
        "events": events,
    }))
}

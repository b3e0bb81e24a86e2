//! One error type for every endpoint, mapped to HTTP in one place. Client
//! errors say exactly what was wrong; storage faults answer 503 with
//! `Retry-After` and are logged with their cause.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::access::signatures::SignatureError;
use crate::ingest::Rejection;
use crate::store::StoreError;

/// Seconds a provider should wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "5";

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such client in the config.
    #[error("unknown client `{0}`")]
    UnknownClient(String),
    /// Channel not one of sms, whatsapp, rcs, voice, email.
    #[error("unknown channel `{0}`; use sms, whatsapp, rcs, voice or email")]
    UnknownChannel(String),
    /// Source address not in the allowlist.
    #[error("address {0} may not post callbacks for this client")]
    IpNotAllowed(String),
    /// URL token missing or wrong.
    #[error("missing or wrong `token` query parameter")]
    BadUrlToken,
    /// A trusted proxy named a client address that cannot be read.
    #[error("the client address forwarded by the proxy cannot be read")]
    UnreadableClientAddress,
    /// A required signature is missing or wrong.
    #[error("signature check failed: {0}")]
    BadSignature(SignatureError),
    /// A `Content-Encoding` other than identity.
    #[error("content encoding `{0}` is not accepted; send the body uncompressed")]
    UnsupportedEncoding(String),
    /// The body did not arrive within `server.body_timeout`.
    #[error("the body did not arrive within {0} seconds")]
    BodyTimeout(u64),
    /// The request head is over `server.max_header_bytes`.
    #[error("request line and headers are larger than {0} bytes")]
    HeadersTooLarge(usize),
    /// Body over `server.max_body_bytes`.
    #[error("body is larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The body could not be read off the connection.
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    /// The body could not be parsed; it was quarantined.
    #[error("{}", .0.message)]
    Rejected(Rejection),
    /// A provider handshake carried a wrong token, or the client has none.
    #[error("{message}")]
    HandshakeRefused {
        /// Machine code.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// Storage could not take the write.
    #[error(transparent)]
    Storage(#[from] StoreError),
    /// Storage works but is not ready to take traffic.
    #[error("{0}")]
    NotReady(String),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            ApiError::UnknownClient(_) => "unknown_client",
            ApiError::UnknownChannel(_) => "unknown_channel",
            ApiError::IpNotAllowed(_) => "ip_not_allowed",
            ApiError::BadUrlToken => "invalid_token",
            ApiError::UnreadableClientAddress => "ip_not_allowed",
            ApiError::BadSignature(_) => "invalid_signature",
            ApiError::UnsupportedEncoding(_) => "unsupported_content_encoding",
            ApiError::BodyTimeout(_) => "body_timeout",
            ApiError::HeadersTooLarge(_) => "headers_too_large",
            ApiError::BodyTooLarge(_) => "body_too_large",
            ApiError::BodyRead(_) => "body_read_error",
            ApiError::Rejected(r) => r.code,
            ApiError::HandshakeRefused { code, .. } => code,
            ApiError::Storage(_) | ApiError::NotReady(_) => "storage_unavailable",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::UnknownClient(_) | ApiError::UnknownChannel(_) => StatusCode::NOT_FOUND,
            ApiError::IpNotAllowed(_) | ApiError::UnreadableClientAddress => StatusCode::FORBIDDEN,
            ApiError::BadUrlToken | ApiError::BadSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::UnsupportedEncoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::HandshakeRefused { .. } => StatusCode::FORBIDDEN,
            ApiError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyRead(_) => StatusCode::BAD_REQUEST,
            ApiError::Rejected(r) if r.code == "unsupported_media_type" => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            ApiError::Rejected(_) => StatusCode::BAD_REQUEST,
            ApiError::Storage(_) | ApiError::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut response = HttpResponse::build(status);
        let message = match self {
            ApiError::Storage(e) => {
                tracing::error!(error = %e, "storage fault");
                "storage is unavailable; retry later".to_string()
            }
            other => other.to_string(),
        };
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
        }
        response.json(json!({ "error": { "code": self.code(), "message": message } }))
    }
}

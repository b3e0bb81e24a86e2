//! Limits on every request, whatever its endpoint. The HTTP parser itself
//! caps a head at [`crate::config::MAX_HEADER_BYTES`] and closes slow heads
//! after `server.head_timeout`; this middleware applies the operator's lower
//! `server.max_header_bytes`.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error};

use super::{ApiError, AppState};

/// Per-header overhead in the request as sent: `: ` and CRLF.
const HEADER_OVERHEAD: usize = 4;

/// Refuses a request whose head is larger than `server.max_header_bytes`
/// with 431, before any handler runs.
pub(crate) async fn head_size(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let limit = req
        .app_data::<web::Data<AppState>>()
        .map_or(crate::config::MAX_HEADER_BYTES, |s| {
            s.settings.server.max_header_bytes
        });
    let target = req.uri().path_and_query().map_or(1, |p| p.as_str().len());
    let line = req.method().as_str().len() + target + " HTTP/1.1\r\n".len() + 1;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + HEADER_OVERHEAD)
        .sum();
    if line + headers > limit {
        return Err(ApiError::HeadersTooLarge(limit).into());
    }
    next.call(req).await
}

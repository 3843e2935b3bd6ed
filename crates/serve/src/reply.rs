//! What every handler answers with when it cannot go on: a JSON error, or the 401 of a
//! request without the token.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Shared;

/// A JSON error body.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// The request carries the token (or none is configured); else the 401 to answer.
#[allow(clippy::result_large_err)] // a ready Response, as every handler returns
pub fn check(shared: &Shared, headers: &HeaderMap) -> Result<(), Response> {
    let h = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if crate::auth::allowed(shared.cfg.token.as_deref(), h) {
        Ok(())
    } else {
        shared.metrics.refuse_request("unauthorized");
        let mut r =
            error(StatusCode::UNAUTHORIZED, "a bearer token is required (authorization: Bearer …)");
        r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Err(r)
    }
}

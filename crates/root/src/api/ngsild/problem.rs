//! Errors as NGSI-LD answers them: RFC 7807 ProblemDetails with the error types of ETSI GS
//! CIM 009 §5.5.2. What the shared middleware refuses (401, 403, 405, 429, the host guard)
//! leaves it as Canopy's `{code, message}` and is rewritten here, so that every answer under
//! `/ngsi-ld/v1/` has one shape.

use crate::api::error::{ApiError, ErrorBody};
use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

const ERRORS: &str = "https://uri.etsi.org/ngsi-ld/errors/";
/// The largest error body rewritten (Canopy's are a few hundred bytes).
const MAX_ERROR_BYTES: usize = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("{ERRORS}{kind}"),
            title: kind.to_string(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "BadRequestData", detail)
    }

    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, "InvalidRequest", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "ResourceNotFound", detail)
    }

    /// A Canopy error as ProblemDetails: the NGSI-LD type where its status has one, else
    /// Canopy's own code (`urn:canopy:error:unauthenticated`, `...:forbidden`,
    /// `...:rate_limited`: NGSI-LD names no type for these).
    fn from_canopy(status: StatusCode, code: &str, detail: String) -> Problem {
        let kind = match status {
            StatusCode::BAD_REQUEST => Some("BadRequestData"),
            StatusCode::NOT_FOUND => Some("ResourceNotFound"),
            StatusCode::CONFLICT => Some("AlreadyExists"),
            StatusCode::METHOD_NOT_ALLOWED => Some("OperationNotSupported"),
            StatusCode::PAYLOAD_TOO_LARGE => Some("RequestEntityTooLarge"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Some("UnsupportedMediaType"),
            s if s.is_server_error() => Some("InternalError"),
            _ => None,
        };
        match kind {
            Some(kind) => Problem::new(status, kind, detail),
            None => Problem {
                kind: format!("urn:canopy:error:{code}"),
                title: code.to_string(),
                status: status.as_u16(),
                detail,
            },
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(self)).into_response()
    }
}

impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Problem {
        Problem::from_canopy(error.status, &error.body.code, error.body.message)
    }
}

impl From<crate::desired::RootError> for Problem {
    fn from(error: crate::desired::RootError) -> Problem {
        ApiError::from(error).into()
    }
}

impl From<canopy_store::StoreError> for Problem {
    fn from(error: canopy_store::StoreError) -> Problem {
        ApiError::from(error).into()
    }
}

/// Rewrites a Canopy error body into ProblemDetails, keeping the status and headers
/// (`WWW-Authenticate`, `Allow`, `Retry-After`).
pub async fn as_problem_details(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if response.status().is_success() || response.status().is_redirection() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BYTES).await else {
        return Problem::from_canopy(
            parts.status,
            "internal",
            "the error could not be read".into(),
        )
        .into_response();
    };
    let problem = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(error) => Problem::from_canopy(parts.status, &error.code, error.message),
        // The handlers' own ProblemDetails: left as they are.
        Err(_) if serde_json::from_slice::<Problem>(&bytes).is_ok() => {
            return Response::from_parts(parts, Body::from(bytes));
        }
        // A bare status from the router (e.g. a method no route takes).
        Err(_) => {
            let reason = parts.status.canonical_reason().unwrap_or("error");
            Problem::from_canopy(parts.status, "http", reason.to_string())
        }
    };
    let Ok(encoded) = serde_json::to_vec(&problem) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(encoded))
}

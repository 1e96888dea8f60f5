//! Every failure leaves the API as JSON `{code, message, details[]}` with a fitting status.

use crate::desired::RootError;
use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use canopy_model::FieldError;
use canopy_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable kind, e.g. `invalid_descriptor`, `not_found`.
    pub code: String,
    pub message: String,
    /// One entry per offending field, when the input was at fault.
    pub details: Vec<FieldError>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code: code.to_string(),
                message: message.into(),
                details: Vec::new(),
            },
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn with_details(mut self, details: Vec<FieldError>) -> Self {
        self.body.details = details;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<RootError> for ApiError {
    fn from(error: RootError) -> Self {
        match error {
            RootError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            RootError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            RootError::Invalid(invalid) => {
                // The message counts; `details` carries each problem once, with its path.
                let count = invalid.errors.len();
                let message = format!(
                    "invalid descriptor: {count} problem{}",
                    if count == 1 { "" } else { "s" }
                );
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_descriptor", message)
                    .with_details(invalid.errors)
            }
            RootError::Forbidden(refused) => {
                let count = refused.errors.len();
                let message = format!(
                    "forbidden in this namespace: {count} field{}",
                    if count == 1 { "" } else { "s" }
                );
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
                    .with_details(refused.errors)
            }
            RootError::BadRequest(message) => ApiError::bad_request(message),
            RootError::Store(e) => e.into(),
            RootError::Accounts(e) => e.into(),
            RootError::Trust(e) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
            RootError::Sealing(e) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Compacted { requested, oldest } => ApiError::new(
                StatusCode::GONE,
                "compacted",
                format!(
                    "revision {requested} is older than the retained history (oldest {oldest}); list again"
                ),
            ),
            // A write raced another one past its retries: the caller may try again.
            StoreError::Conflict { .. } => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                "the state changed concurrently; nothing was applied, try again",
            ),
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the state store failed; the request was not applied",
                )
            }
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_request"
        };
        ApiError::new(status, code, rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(rejection.body_text())
    }
}

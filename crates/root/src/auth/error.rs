//! What can go wrong in authentication and user management, and how the API answers it.

use super::jwt::TokenError;
use super::passwords::HashError;
use crate::api::error::ApiError;
use axum::http::StatusCode;
use canopy_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// 401: no credentials, or ones that are wrong, expired or revoked.
    #[error("{0}")]
    Unauthenticated(String),
    /// 403: who is calling is known, and may not do this.
    #[error("{0}")]
    Forbidden(String),
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{0}")]
    Conflict(String),
    /// 400 naming the field at fault.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl AuthError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> AuthError {
        AuthError::Invalid {
            field,
            message: message.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        match error {
            AuthError::Unauthenticated(message) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
            }
            AuthError::Forbidden(message) => {
                ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
            }
            AuthError::NotFound { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            AuthError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            AuthError::Invalid { field, message } => {
                ApiError::bad_request(format!("{field}: {message}"))
                    .with_details(vec![canopy_model::FieldError::new(field, message)])
            }
            AuthError::Store(e) => e.into(),
            AuthError::Token(e) => {
                tracing::error!(error = %e, "token signing failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "cannot sign tokens",
                )
            }
            AuthError::Hash(e) => {
                tracing::error!(error = %e, "password hashing failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "cannot hash the password",
                )
            }
        }
    }
}

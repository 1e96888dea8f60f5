//! `POST /api/v1/login` (a user name and password for tokens) and `/login/refresh`.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{self, LoginTokens};
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(min_length = 1, max_length = 63)]
    pub user: String,
    #[schema(min_length = 1, max_length = 256)]
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(min_length = 1)]
    pub refresh_token: String,
}

pub(super) fn json<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))
}

fn answer(result: Result<LoginTokens, auth::AuthError>) -> Response {
    match result {
        Ok(tokens) => Json(tokens).into_response(),
        Err(auth::AuthError::Unauthenticated(message)) => auth::unauthorized(message),
        Err(other) => ApiError::from(other).into_response(),
    }
}

/// Checks a user's password: an access token (1 h) and a refresh token (30 days).
#[utoipa::path(post, path = "/api/v1/login", tag = "auth", request_body = LoginRequest,
    security(()),
    responses((status = 200, body = LoginTokens),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody, description = "Wrong user name or password"),
        (status = 415, body = ErrorBody, description = "The body is not JSON"),
        (status = 422, body = ErrorBody, description = "The body is not a login")))]
pub async fn login(
    State(state): State<AppState>,
    body: Result<Json<LoginRequest>, JsonRejection>,
) -> Response {
    let request = match json(body) {
        Ok(request) => request,
        Err(e) => return e.into_response(),
    };
    let result = state
        .accounts
        .login(&request.user, &request.password, auth::now())
        .await;
    if result.is_ok() {
        tracing::info!(user = %request.user, "logged in");
    }
    answer(result)
}

/// A new access token for a refresh token, while its session lasts (not revoked, the user
/// not deleted).
#[utoipa::path(post, path = "/api/v1/login/refresh", tag = "auth", request_body = RefreshRequest,
    security(()),
    responses((status = 200, body = LoginTokens),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody, description = "Not a live refresh token"),
        (status = 415, body = ErrorBody, description = "The body is not JSON"),
        (status = 422, body = ErrorBody, description = "The body is not a refresh request")))]
pub async fn refresh(
    State(state): State<AppState>,
    body: Result<Json<RefreshRequest>, JsonRejection>,
) -> Response {
    match json(body) {
        Ok(request) => answer(
            state
                .accounts
                .refresh(&request.refresh_token, auth::now())
                .await,
        ),
        Err(e) => e.into_response(),
    }
}

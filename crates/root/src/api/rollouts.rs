//! A service's rollout: its status and revision history, pausing, resuming and undoing it.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{Action, Principal};
use crate::desired::{RolloutStatus, UndoRequest};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::{Extension, Json};

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    const BASE: &str = "/services/{namespace}/{application}/{name}/rollout";
    axum::Router::new()
        .route(BASE, get(status))
        .route(&format!("{BASE}/pause"), post(pause))
        .route(&format!("{BASE}/resume"), post(resume))
        .route(&format!("{BASE}/undo"), post(undo))
}

/// The rollout of a service: revision, updated and ready counts, pause, history.
#[utoipa::path(get, path = "/api/v1/services/{namespace}/{application}/{name}/rollout", tag = "services",
    params(("namespace" = String, Path), ("application" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = RolloutStatus),
        (status = 400, body = ErrorBody, description = "A path segment that is not UTF-8"),
        (status = 404, body = ErrorBody, description = "No such service"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn status(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<RolloutStatus>, ApiError> {
    let Path((namespace, application, name)) = path?;
    principal.require(Action::Read, Some(&namespace))?;
    let status = state
        .desired
        .rollout_status(&namespace, &application, &name)
        .await?;
    Ok(Json(status))
}

/// Pauses a service's rollout: old instances stay, no new ones start.
#[utoipa::path(post, path = "/api/v1/services/{namespace}/{application}/{name}/rollout/pause", tag = "services",
    params(("namespace" = String, Path), ("application" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = RolloutStatus),
        (status = 400, body = ErrorBody, description = "A path segment that is not UTF-8"),
        (status = 404, body = ErrorBody, description = "No such service"),
        (status = 409, body = ErrorBody, description = "The rollout kept changing concurrently"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn pause(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<RolloutStatus>, ApiError> {
    set_paused(state, principal, path, true).await
}

/// Resumes a service's rollout (also one that paused itself on a failing instance).
#[utoipa::path(post, path = "/api/v1/services/{namespace}/{application}/{name}/rollout/resume", tag = "services",
    params(("namespace" = String, Path), ("application" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = RolloutStatus),
        (status = 400, body = ErrorBody, description = "A path segment that is not UTF-8"),
        (status = 404, body = ErrorBody, description = "No such service"),
        (status = 409, body = ErrorBody, description = "The rollout kept changing concurrently"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn resume(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<RolloutStatus>, ApiError> {
    set_paused(state, principal, path, false).await
}

async fn set_paused(
    state: AppState,
    principal: Principal,
    path: Result<Path<(String, String, String)>, PathRejection>,
    paused: bool,
) -> Result<Json<RolloutStatus>, ApiError> {
    let Path((namespace, application, name)) = path?;
    principal.require(Action::Deploy, Some(&namespace))?;
    let status = state
        .desired
        .set_rollout_paused(&namespace, &application, &name, paused)
        .await?;
    state.federation.wake();
    Ok(Json(status))
}

/// Rolls a service back to an earlier revision (the previous one by default).
#[utoipa::path(post, path = "/api/v1/services/{namespace}/{application}/{name}/rollout/undo", tag = "services",
    params(("namespace" = String, Path), ("application" = String, Path), ("name" = String, Path)),
    request_body = UndoRequest,
    responses((status = 200, body = RolloutStatus),
        (status = 400, body = ErrorBody, description = "Malformed JSON"),
        (status = 404, body = ErrorBody, description = "No such service"),
        (status = 409, body = ErrorBody, description = "No such revision, no previous one, or the application kept changing concurrently"),
        (status = 413, body = ErrorBody, description = "Body too large"),
        (status = 415, body = ErrorBody, description = "Not `Content-Type: application/json`"),
        (status = 422, body = ErrorBody, description = "JSON that is not an undo request"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn undo(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    body: Result<Json<UndoRequest>, JsonRejection>,
) -> Result<Json<RolloutStatus>, ApiError> {
    let Path((namespace, application, name)) = path?;
    principal.require(Action::Deploy, Some(&namespace))?;
    let Json(request) = body.map_err(|e| {
        ApiError::new(e.status(), "bad_request", e.body_text()).with_details(vec![
            canopy_model::FieldError::new("toRevision", e.body_text()),
        ])
    })?;
    let status = state
        .desired
        .undo_rollout(&namespace, &application, &name, request.to_revision)
        .await?;
    state.federation.wake();
    Ok(Json(status))
}

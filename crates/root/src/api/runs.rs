//! Jobs started on demand: `POST /api/v1/services/{namespace}/{application}/{name}/runs`.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{Action, Principal};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use canopy_model::{Instance, RunRequest};

pub fn routes() -> axum::Router<AppState> {
    axum::Router::new().route(
        "/services/{namespace}/{application}/{name}/runs",
        axum::routing::post(start),
    )
}

/// Starts a job of a job service with these arguments (in place of the service's `args`);
/// answers its first run. Its output is the run's logs once it ended.
#[utoipa::path(post, path = "/api/v1/services/{namespace}/{application}/{name}/runs", tag = "services",
    params(("namespace" = String, Path), ("application" = String, Path), ("name" = String, Path)),
    request_body = RunRequest,
    responses((status = 201, body = Instance, description = "The job's first run"),
        (status = 400, body = ErrorBody, description = "Malformed JSON, or arguments too long or with NUL (each named)"),
        (status = 404, body = ErrorBody, description = "No such service"),
        (status = 409, body = ErrorBody, description = "The service is not a job, or its job record kept changing concurrently"),
        (status = 413, body = ErrorBody, description = "Body too large"),
        (status = 415, body = ErrorBody, description = "Not `Content-Type: application/json`"),
        (status = 422, body = ErrorBody, description = "JSON that is not a run request"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn start(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    body: Result<Json<RunRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<Instance>), ApiError> {
    let Path((namespace, application, name)) = path?;
    principal.require(Action::Deploy, Some(&namespace))?;
    let Json(request) = body.map_err(|e| {
        ApiError::new(e.status(), "bad_request", e.body_text())
            .with_details(vec![canopy_model::FieldError::new("args", e.body_text())])
    })?;
    let run = state
        .desired
        .start_run(&namespace, &application, &name, &request)
        .await?;
    state.federation.wake();
    Ok((StatusCode::CREATED, Json(run)))
}

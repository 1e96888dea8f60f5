//! Secrets of a namespace: `PUT` takes values, every answer shows names, keys and metadata
//! only (values are write-only), `DELETE` removes one. Instances referencing a secret that
//! appears later are placed on the next scheduling pass.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{Action, Principal};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use canopy_model::{SecretInfo, SecretInput};

/// The path's namespace and name, refused (400, naming the segment) unless DNS labels.
fn check_path(namespace: &str, name: Option<&str>) -> Result<(), ApiError> {
    for (segment, value) in [("namespace", Some(namespace)), ("name", name)] {
        if let Some(value) = value
            && let Err(reason) = canopy_model::validate_dns_label(value)
        {
            return Err(ApiError::bad_request(format!("{segment}: {reason}"))
                .with_details(vec![canopy_model::FieldError::new(segment, reason)]));
        }
    }
    Ok(())
}

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/namespaces/{namespace}/secrets", get(list))
        .route(
            "/namespaces/{namespace}/secrets/{name}",
            get(get_one).put(put).delete(delete),
        )
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/secrets", tag = "secrets",
    params(("namespace" = String, Path)),
    responses((status = 200, body = [SecretInfo], description = "Names, keys and metadata; never a value"),
        (status = 400, body = ErrorBody, description = "A path segment that is not UTF-8"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Vec<SecretInfo>>, ApiError> {
    let Path(namespace) = path?;
    check_path(&namespace, None)?;
    principal.require(Action::Read, Some(&namespace))?;
    Ok(Json(state.desired.list_secrets(Some(&namespace)).await?))
}

#[utoipa::path(get, path = "/api/v1/namespaces/{namespace}/secrets/{name}", tag = "secrets",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = SecretInfo, description = "Names, keys and metadata; never a value"),
        (status = 400, body = ErrorBody, description = "A path segment that is not UTF-8"),
        (status = 404, body = ErrorBody, description = "No such secret"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn get_one(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<SecretInfo>, ApiError> {
    let Path((namespace, name)) = path?;
    check_path(&namespace, Some(&name))?;
    principal.require(Action::Read, Some(&namespace))?;
    Ok(Json(state.desired.get_secret(&namespace, &name).await?))
}

/// Creates or replaces a secret: the keys given are all it holds afterwards.
#[utoipa::path(put, path = "/api/v1/namespaces/{namespace}/secrets/{name}", tag = "secrets",
    params(("namespace" = String, Path), ("name" = String, Path)),
    request_body(content = SecretInput, content_type = "application/json"),
    responses(
        (status = 200, body = SecretInfo, description = "Replaced"),
        (status = 201, body = SecretInfo, description = "Created"),
        (status = 400, body = ErrorBody, description = "Invalid name, key or data (`details` names each field)"),
        (status = 409, body = ErrorBody, description = "The secret changed concurrently; try again"),
        (status = 415, body = ErrorBody, description = "A content type other than JSON"),
        (status = 422, body = ErrorBody, description = "JSON that is not a secret"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<SecretInput>, JsonRejection>,
) -> Result<(StatusCode, Json<SecretInfo>), ApiError> {
    let Path((namespace, name)) = path?;
    // The name is checked with the body, so that every problem is told at once.
    check_path(&namespace, None)?;
    principal.require(Action::Deploy, Some(&namespace))?;
    // The rejection's text quotes serde's error, never the body's values.
    let Json(input) = body.map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?;
    let (info, created) = state.desired.put_secret(&namespace, &name, input).await?;
    state.federation.wake();
    let status = match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    };
    Ok((status, Json(info)))
}

/// Deletes a secret. Running instances keep the values they were started with; instances
/// placed later that reference it stay pending.
#[utoipa::path(delete, path = "/api/v1/namespaces/{namespace}/secrets/{name}", tag = "secrets",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = SecretInfo, description = "The secret as it was (no values)"),
        (status = 400, body = ErrorBody, description = "A path segment that is not UTF-8"),
        (status = 404, body = ErrorBody, description = "No such secret"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<SecretInfo>, ApiError> {
    let Path((namespace, name)) = path?;
    check_path(&namespace, Some(&name))?;
    principal.require(Action::Deploy, Some(&namespace))?;
    Ok(Json(state.desired.delete_secret(&namespace, &name).await?))
}

//! Namespaces as objects: create one, mark it trusted or not, list, delete an empty one.
//! Marking trust is an admin's decision; the role rule belongs on these routes.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::desired::{Namespace, NamespaceSpec};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use canopy_model::FieldError;

fn name_of(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(name) = path?;
    canopy_model::validate_dns_label(&name).map_err(|reason| {
        ApiError::bad_request(format!("namespace {name:?} {reason}"))
            .with_details(vec![FieldError::new("name", reason)])
    })?;
    Ok(name)
}

#[utoipa::path(get, path = "/api/v1/namespaces", tag = "namespaces",
    responses((status = 200, body = [Namespace]),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<Namespace>>, ApiError> {
    Ok(Json(state.desired.list_namespaces().await?))
}

#[utoipa::path(get, path = "/api/v1/namespaces/{name}", tag = "namespaces",
    params(("name" = String, Path)),
    responses((status = 200, body = Namespace),
        (status = 400, body = ErrorBody, description = "A name that is not a DNS label"),
        (status = 404, body = ErrorBody, description = "No such namespace"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn get(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Namespace>, ApiError> {
    let name = name_of(path)?;
    Ok(Json(state.desired.get_namespace(&name).await?))
}

/// Creates the namespace or sets whether it is trusted.
#[utoipa::path(put, path = "/api/v1/namespaces/{name}", tag = "namespaces",
    params(("name" = String, Path)),
    request_body(content = NamespaceSpec, content_type = "application/json"),
    responses(
        (status = 200, body = Namespace, description = "Updated"),
        (status = 201, body = Namespace, description = "Created"),
        (status = 400, body = ErrorBody, description = "A name that is not a DNS label, or a malformed body"),
        (status = 415, body = ErrorBody, description = "A body that is not JSON"),
        (status = 422, body = ErrorBody, description = "A body of the wrong shape"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn put(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<NamespaceSpec>, JsonRejection>,
) -> Result<(StatusCode, Json<Namespace>), ApiError> {
    let name = name_of(path)?;
    let Json(spec) = body.map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?;
    let (namespace, created) = state.desired.put_namespace(&name, spec).await?;
    // Applications admitted before stay as they are; a namespace made untrusted refuses
    // their next apply.
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(namespace)))
}

/// Deletes an empty namespace (`default` stays).
#[utoipa::path(delete, path = "/api/v1/namespaces/{name}", tag = "namespaces",
    params(("name" = String, Path)),
    responses((status = 200, body = Namespace, description = "The namespace as it was"),
        (status = 400, body = ErrorBody, description = "A name that is not a DNS label"),
        (status = 404, body = ErrorBody, description = "No such namespace"),
        (status = 409, body = ErrorBody, description = "Applications live in it, or it is `default`"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn delete(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Namespace>, ApiError> {
    let name = name_of(path)?;
    Ok(Json(state.desired.delete_namespace(&name).await?))
}

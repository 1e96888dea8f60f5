use super::AppState;
use super::body::{Descriptor, descriptor};
use super::error::{ApiError, ErrorBody};
use super::selectors;
use crate::auth::{Action, Principal};
use crate::records::{ApplicationView, ApplyResult};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use canopy_model::{Application, ParsedDescriptor};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NamespaceQuery {
    /// Only this namespace; all when absent.
    pub namespace: Option<String>,
    /// Only those whose labels match: `key=value`, `key!=value`, `key` (has it), `!key`
    /// (has it not), comma-separated, all must hold (as `kubectl -l`).
    #[serde(rename = "labelSelector")]
    pub label_selector: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApplyQuery {
    /// Run every check and report what would be created, configured or left unchanged,
    /// writing nothing.
    #[serde(rename = "dryRun", default)]
    pub dry_run: bool,
}

/// Applies a descriptor (native, multi-document YAML, or Oakestra SLA): creates what is new,
/// updates what changed, all in one transaction.
#[utoipa::path(post, path = "/api/v1/apply", tag = "applications", params(ApplyQuery),
    request_body(content(
        (Descriptor = "application/json"), (Descriptor = "application/yaml"),
        (Descriptor = "application/x-yaml"), (Descriptor = "text/yaml"),
        (Descriptor = "text/x-yaml")),
        description = "Native descriptor (JSON or YAML: one application, a JSON array of them, or several YAML documents), an Oakestra SLA v2 or an aeriOS TOSCA descriptor"),
    responses(
        (status = 200, body = ApplyResult),
        (status = 400, body = ErrorBody, description = "Invalid descriptor (`details` names every offending field), or a body that is not UTF-8"),
        (status = 403, body = ErrorBody, description = "The namespace is not trusted for what the descriptor asks (`details` names each field: root user, privileged, extra capabilities, the process runtime), or it would exceed the namespace's quota (`details` says by how much)"),
        (status = 404, body = ErrorBody, description = "The namespace does not exist"),
        (status = 409, body = ErrorBody, description = "The application changed concurrently, or a lowercased name collides with another application"),
        (status = 413, body = ErrorBody, description = "Body larger than the descriptor limit"),
        (status = 415, body = ErrorBody, description = "A content type other than JSON, YAML or plain text"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn apply(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<ApplyQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ApplyResult>, ApiError> {
    let Query(query) = query?;
    let ParsedDescriptor {
        applications,
        warnings,
        ..
    } = descriptor(&state, &headers, body).await?;
    for application in &applications {
        principal.require(Action::Deploy, Some(&application.metadata.namespace))?;
    }
    if query.dry_run {
        return Ok(Json(
            state.desired.apply_dry_run(applications, warnings).await?,
        ));
    }
    let result = state.desired.apply(applications, warnings).await?;
    state.federation.wake();
    Ok(Json(result))
}

/// Creates one application; 409 if it exists.
#[utoipa::path(post, path = "/api/v1/applications", tag = "applications",
    request_body(content(
        (Application = "application/json"), (Application = "application/yaml"),
        (Application = "application/x-yaml"), (Application = "text/yaml"),
        (Application = "text/x-yaml")),
        description = "One application, JSON or YAML"),
    responses(
        (status = 201, body = ApplicationView),
        (status = 400, body = ErrorBody, description = "Invalid descriptor (`details` names every offending field), or a body that is not UTF-8"),
        (status = 403, body = ErrorBody, description = "The namespace is not trusted for what the descriptor asks (`details` names each field), or it would exceed the namespace's quota"),
        (status = 404, body = ErrorBody, description = "The namespace does not exist"),
        (status = 409, body = ErrorBody, description = "The application exists"),
        (status = 413, body = ErrorBody, description = "Body larger than the descriptor limit"),
        (status = 415, body = ErrorBody, description = "A content type other than JSON, YAML or plain text"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ApplicationView>), ApiError> {
    let application = single(descriptor(&state, &headers, body).await?)?;
    principal.require(Action::Deploy, Some(&application.metadata.namespace))?;
    let view = state.desired.create(application).await?;
    state.federation.wake();
    Ok((StatusCode::CREATED, Json(view.redacted())))
}

#[utoipa::path(get, path = "/api/v1/applications", tag = "applications",
    params(NamespaceQuery),
    responses((status = 200, body = [ApplicationView]),
        (status = 400, body = ErrorBody, description = "Malformed query (e.g. an invalid `labelSelector`)"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<NamespaceQuery>, QueryRejection>,
) -> Result<Json<Vec<ApplicationView>>, ApiError> {
    let Query(query) = query?;
    let selector = selectors::parse(query.label_selector.as_deref())?;
    let readable = principal.readable(query.namespace.as_deref())?;
    let mut views = state
        .desired
        .list_applications(query.namespace.as_deref())
        .await?;
    views.retain(|view| readable.contains(&view.application.metadata.namespace));
    selectors::retain(&mut views, selector.as_ref(), |view| {
        Some(view.application.metadata.labels.clone())
    });
    Ok(Json(
        views.into_iter().map(ApplicationView::redacted).collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/applications/{namespace}/{name}", tag = "applications",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = ApplicationView),
        (status = 400, body = ErrorBody, description = "A path segment that is not UTF-8"),
        (status = 404, body = ErrorBody, description = "No such application"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<ApplicationView>, ApiError> {
    let Path((namespace, name)) = path?;
    principal.require(Action::Read, Some(&namespace))?;
    let view = state.desired.get_application(&namespace, &name).await?;
    Ok(Json(view.redacted()))
}

/// Creates or replaces the application at this path.
#[utoipa::path(put, path = "/api/v1/applications/{namespace}/{name}", tag = "applications",
    params(("namespace" = String, Path), ("name" = String, Path)),
    request_body(content(
        (Application = "application/json"), (Application = "application/yaml"),
        (Application = "application/x-yaml"), (Application = "text/yaml"),
        (Application = "text/x-yaml")),
        description = "One application, JSON or YAML; its metadata must match the path"),
    responses(
        (status = 200, body = ApplicationView, description = "Replaced"),
        (status = 201, body = ApplicationView, description = "Created"),
        (status = 400, body = ErrorBody, description = "Invalid descriptor (`details` names every offending field; metadata that does not match the path), or a body that is not UTF-8"),
        (status = 403, body = ErrorBody, description = "The namespace is not trusted for what the descriptor asks (`details` names each field: root user, privileged, extra capabilities, the process runtime), or it would exceed the namespace's quota (`details` says by how much)"),
        (status = 404, body = ErrorBody, description = "The namespace does not exist"),
        (status = 409, body = ErrorBody, description = "The application changed concurrently, or a lowercased name collides with another application"),
        (status = 413, body = ErrorBody, description = "Body larger than the descriptor limit"),
        (status = 415, body = ErrorBody, description = "A content type other than JSON, YAML or plain text"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn replace(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ApplicationView>), ApiError> {
    let Path((namespace, name)) = path?;
    principal.require(Action::Deploy, Some(&namespace))?;
    let application = single(descriptor(&state, &headers, body).await?)?;
    let metadata = &application.metadata;
    if metadata.namespace != namespace || metadata.name != name {
        return Err(ApiError::bad_request(format!(
            "metadata names {}/{} but the path names {namespace}/{name}",
            metadata.namespace, metadata.name
        ))
        .with_details(vec![canopy_model::FieldError::new(
            "metadata.name",
            "must match the path",
        )]));
    }
    let (view, created) = state.desired.replace(application).await?;
    state.federation.wake();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view.redacted())))
}

/// Deletes an application; its instances are stopped.
#[utoipa::path(delete, path = "/api/v1/applications/{namespace}/{name}", tag = "applications",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = ApplicationView, description = "The application as it was"),
        (status = 400, body = ErrorBody, description = "A path segment that is not UTF-8"),
        (status = 404, body = ErrorBody, description = "No such application"),
        (status = 409, body = ErrorBody, description = "The state changed concurrently; try again"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<ApplicationView>, ApiError> {
    let Path((namespace, name)) = path?;
    principal.require(Action::Deploy, Some(&namespace))?;
    let view = state.desired.delete(&namespace, &name).await?.redacted();
    state.federation.wake();
    Ok(Json(view))
}

fn single(parsed: ParsedDescriptor) -> Result<Application, ApiError> {
    let count = parsed.applications.len();
    let mut applications = parsed.applications.into_iter();
    match (applications.next(), count) {
        (Some(application), 1) => Ok(application),
        _ => Err(ApiError::bad_request(format!(
            "this endpoint takes exactly one application, the descriptor has {count}; use POST /api/v1/apply"
        ))),
    }
}

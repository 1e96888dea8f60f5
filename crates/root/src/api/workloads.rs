//! Services, instances, clusters and nodes: read views, plus scaling.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::selectors;
use crate::auth::{Action, Principal};
use crate::desired::InstanceFilter;
use crate::records::{ScaleRequest, ServiceView};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use canopy_model::{ClusterInfo, Instance, InstanceState, NodeInfo};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ServiceQuery {
    pub namespace: Option<String>,
    pub application: Option<String>,
    /// Only services whose labels (their application's, overlaid by their own) match:
    /// `key=value`, `key!=value`, `key`, `!key`, comma-separated, all must hold.
    #[serde(rename = "labelSelector")]
    pub label_selector: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InstanceQuery {
    pub namespace: Option<String>,
    pub application: Option<String>,
    pub service: Option<String>,
    #[param(value_type = Option<InstanceState>)]
    pub state: Option<InstanceState>,
    /// Only instances whose service's labels (its application's, overlaid by its own)
    /// match: `key=value`, `key!=value`, `key`, `!key`, comma-separated, all must hold.
    #[serde(rename = "labelSelector")]
    pub label_selector: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NodeQuery {
    pub cluster: Option<String>,
    /// Only those whose labels match: `key=value`, `key!=value`, `key` (has it), `!key`
    /// (has it not), comma-separated, all must hold (as `kubectl -l`).
    #[serde(rename = "labelSelector")]
    pub label_selector: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClusterQuery {
    /// Only those whose labels match: `key=value`, `key!=value`, `key` (has it), `!key`
    /// (has it not), comma-separated, all must hold (as `kubectl -l`).
    #[serde(rename = "labelSelector")]
    pub label_selector: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/services", tag = "services", params(ServiceQuery),
    responses((status = 200, body = [ServiceView]),
        (status = 400, body = ErrorBody, description = "Malformed query (e.g. an invalid `labelSelector`)"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn list_services(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<ServiceQuery>, QueryRejection>,
) -> Result<Json<Vec<ServiceView>>, ApiError> {
    let Query(query) = query?;
    let selector = selectors::parse(query.label_selector.as_deref())?;
    let readable = principal.readable(query.namespace.as_deref())?;
    let mut views = state
        .desired
        .list_services(query.namespace.as_deref(), query.application.as_deref())
        .await?;
    views.retain(|view| readable.contains(&view.namespace));
    if selector.is_some() {
        let labels = state
            .desired
            .service_labels(query.namespace.as_deref())
            .await?;
        selectors::retain(&mut views, selector.as_ref(), |view| {
            labels
                .get(&(
                    view.namespace.clone(),
                    view.application.clone(),
                    view.name.clone(),
                ))
                .cloned()
        });
    }
    Ok(Json(views.into_iter().map(ServiceView::redacted).collect()))
}

#[utoipa::path(get, path = "/api/v1/services/{namespace}/{application}/{name}", tag = "services",
    params(("namespace" = String, Path), ("application" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = ServiceView),
        (status = 400, body = ErrorBody, description = "A path segment that is not UTF-8"),
        (status = 404, body = ErrorBody, description = "No such service"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn get_service(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<ServiceView>, ApiError> {
    let Path((namespace, application, name)) = path?;
    principal.require(Action::Read, Some(&namespace))?;
    let view = state
        .desired
        .get_service(&namespace, &application, &name)
        .await?;
    Ok(Json(view.redacted()))
}

/// Sets a service's replica count.
#[utoipa::path(post, path = "/api/v1/services/{namespace}/{application}/{name}/scale", tag = "services",
    params(("namespace" = String, Path), ("application" = String, Path), ("name" = String, Path)),
    request_body = ScaleRequest,
    responses((status = 200, body = ServiceView),
        (status = 400, body = ErrorBody, description = "Malformed JSON, more replicas than allowed, or a path segment that is not UTF-8"),
        (status = 403, body = ErrorBody, description = "More replicas than the namespace's quota allows (`details` says by how much)"),
        (status = 404, body = ErrorBody, description = "No such service"),
        (status = 409, body = ErrorBody, description = "The application kept changing concurrently"),
        (status = 413, body = ErrorBody, description = "Body too large"),
        (status = 415, body = ErrorBody, description = "Not `Content-Type: application/json`"),
        (status = 422, body = ErrorBody, description = "JSON that is not a scale request (`replicas` missing, negative or not an integer)"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn scale(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    body: Result<Json<ScaleRequest>, JsonRejection>,
) -> Result<Json<ServiceView>, ApiError> {
    let Path((namespace, application, name)) = path?;
    principal.require(Action::Deploy, Some(&namespace))?;
    let Json(request) = body.map_err(|e| {
        ApiError::new(e.status(), "bad_request", e.body_text()).with_details(vec![
            canopy_model::FieldError::new("replicas", e.body_text()),
        ])
    })?;
    let view = state
        .desired
        .scale(&namespace, &application, &name, request.replicas)
        .await?
        .redacted();
    state.federation.wake();
    Ok(Json(view))
}

#[utoipa::path(get, path = "/api/v1/instances", tag = "instances", params(InstanceQuery),
    responses((status = 200, body = [Instance]),
        (status = 400, body = ErrorBody, description = "Malformed query, e.g. a `state` that is not an instance state"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn list_instances(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<InstanceQuery>, QueryRejection>,
) -> Result<Json<Vec<Instance>>, ApiError> {
    let Query(query) = query?;
    let selector = selectors::parse(query.label_selector.as_deref())?;
    let filter = InstanceFilter {
        namespace: query.namespace,
        application: query.application,
        service: query.service,
        state: query.state,
    };
    let readable = principal.readable(filter.namespace.as_deref())?;
    let mut instances = state.desired.list_instances(&filter).await?;
    instances.retain(|instance| readable.contains(&instance.namespace));
    if selector.is_some() {
        // An instance whose application is gone (still terminating) has no labels left.
        let labels = state
            .desired
            .service_labels(filter.namespace.as_deref())
            .await?;
        selectors::retain(&mut instances, selector.as_ref(), |instance| {
            labels
                .get(&(
                    instance.namespace.clone(),
                    instance.application.clone(),
                    instance.service.clone(),
                ))
                .cloned()
        });
    }
    Ok(Json(state.federation.with_usage(instances)))
}

#[utoipa::path(get, path = "/api/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path)),
    responses((status = 200, body = Instance),
        (status = 400, body = ErrorBody, description = "A path segment that is not UTF-8"),
        (status = 404, body = ErrorBody, description = "No such instance"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn get_instance(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Instance>, ApiError> {
    let Path(id) = path?;
    let mut instance = state.desired.get_instance(&id).await?;
    principal.require(Action::Read, Some(&instance.namespace))?;
    instance.usage = state.federation.usage_of(&instance);
    Ok(Json(instance))
}

#[utoipa::path(get, path = "/api/v1/clusters", tag = "infrastructure", params(ClusterQuery),
    responses((status = 200, body = [ClusterInfo]),
        (status = 400, body = ErrorBody, description = "Invalid `labelSelector`"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn list_clusters(
    State(state): State<AppState>,
    query: Result<Query<ClusterQuery>, QueryRejection>,
) -> Result<Json<Vec<ClusterInfo>>, ApiError> {
    let Query(query) = query?;
    let selector = selectors::parse(query.label_selector.as_deref())?;
    let mut clusters = state.desired.list_clusters().await?;
    selectors::retain(&mut clusters, selector.as_ref(), |c| Some(c.labels.clone()));
    Ok(Json(clusters))
}

#[utoipa::path(get, path = "/api/v1/nodes", tag = "infrastructure", params(NodeQuery),
    responses((status = 200, body = [NodeInfo]),
        (status = 400, body = ErrorBody, description = "Malformed query (e.g. an invalid `labelSelector`)"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn list_nodes(
    State(state): State<AppState>,
    query: Result<Query<NodeQuery>, QueryRejection>,
) -> Result<Json<Vec<NodeInfo>>, ApiError> {
    let Query(query) = query?;
    let selector = selectors::parse(query.label_selector.as_deref())?;
    let mut nodes = state.desired.list_nodes(query.cluster.as_deref()).await?;
    selectors::retain(&mut nodes, selector.as_ref(), |n| Some(n.labels.clone()));
    Ok(Json(nodes))
}

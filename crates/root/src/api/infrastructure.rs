//! Clusters, nodes and instances as objects, and what an operator does to them: cordon,
//! uncordon, drain, label (`kubectl cordon|drain|label`), and deleting an instance so that it
//! is replaced (`kubectl delete pod`).
//!
//! Every changing handler here is an operator action and passes [`operator_only`] first
//! (the middleware checked the same rule, `api::rules`; this keeps the handler safe alone).

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{Action, Principal};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use canopy_model::{ClusterInfo, FieldError, Instance, LabelEdit, NodeInfo};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Whether `principal` may change infrastructure: operators and admins.
fn operator_only(principal: Option<&Principal>) -> Result<(), ApiError> {
    match principal {
        Some(principal) => principal.require(Action::ManageInfrastructure, None),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "no caller identity",
        )),
    }
}

type Caller = Option<axum::Extension<Principal>>;

fn check(caller: &Caller) -> Result<(), ApiError> {
    operator_only(caller.as_ref().map(|axum::Extension(p)| p))
}

/// A label change in the shape of a JSON merge patch: a value sets, `null` removes.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct LabelPatch {
    #[schema(value_type = Object)]
    pub labels: BTreeMap<String, Option<String>>,
}

impl LabelPatch {
    /// The edits, each key and value checked (errors name `labels.<key>`).
    fn edits(&self) -> Result<Vec<LabelEdit>, ApiError> {
        let mut edits = Vec::new();
        let mut problems = Vec::new();
        for (key, value) in &self.labels {
            let edit = match value {
                Some(value) => LabelEdit::Set {
                    key: key.clone(),
                    value: value.clone(),
                },
                None => LabelEdit::Remove { key: key.clone() },
            };
            match edit.validate() {
                Ok(()) => edits.push(edit),
                Err(reason) => problems.push(FieldError::new(format!("labels.{key}"), reason)),
            }
        }
        if self.labels.is_empty() {
            problems.push(FieldError::new("labels", "no label to set or remove"));
        }
        if problems.is_empty() {
            Ok(edits)
        } else {
            Err(ApiError::bad_request("invalid labels").with_details(problems))
        }
    }
}

/// What a drain did.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainResult {
    pub node: NodeInfo,
    /// The instances stopped there; each was replaced as it stopped.
    pub stopped: Vec<Instance>,
}

fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(value)| value)
        .map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))
}

#[utoipa::path(get, path = "/api/v1/clusters/{name}", tag = "infrastructure",
    params(("name" = String, Path)),
    responses((status = 200, body = ClusterInfo), (status = 404, body = ErrorBody)))]
pub async fn get_cluster(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<ClusterInfo>, ApiError> {
    let Path(name) = path?;
    Ok(Json(state.desired.get_cluster(&name).await?))
}

#[utoipa::path(get, path = "/api/v1/nodes/{cluster}/{name}", tag = "infrastructure",
    params(("cluster" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = NodeInfo), (status = 404, body = ErrorBody)))]
pub async fn get_node(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<NodeInfo>, ApiError> {
    let Path((cluster, name)) = path?;
    Ok(Json(state.desired.get_node(&cluster, &name).await?))
}

/// Marks the node unschedulable: what runs there stays, nothing new is placed there.
#[utoipa::path(post, path = "/api/v1/nodes/{cluster}/{name}/cordon", tag = "infrastructure",
    params(("cluster" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = NodeInfo), (status = 404, body = ErrorBody)))]
pub async fn cordon(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<NodeInfo>, ApiError> {
    check(&caller)?;
    let Path((cluster, name)) = path?;
    Ok(Json(
        set_unschedulable(&state, &cluster, &name, true).await?,
    ))
}

/// Makes the node schedulable again.
#[utoipa::path(post, path = "/api/v1/nodes/{cluster}/{name}/uncordon", tag = "infrastructure",
    params(("cluster" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = NodeInfo), (status = 404, body = ErrorBody)))]
pub async fn uncordon(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<NodeInfo>, ApiError> {
    check(&caller)?;
    let Path((cluster, name)) = path?;
    Ok(Json(
        set_unschedulable(&state, &cluster, &name, false).await?,
    ))
}

async fn set_unschedulable(
    state: &AppState,
    cluster: &str,
    name: &str,
    unschedulable: bool,
) -> Result<NodeInfo, ApiError> {
    Ok(state
        .federation
        .configure_node(cluster, name, |s| {
            let changed = s.unschedulable != unschedulable;
            s.unschedulable = unschedulable;
            changed
        })
        .await?)
}

/// Cordons the node and stops every instance on it; each is replaced as it stops (the
/// replacement is placed elsewhere at once, not after the old copy is gone).
#[utoipa::path(post, path = "/api/v1/nodes/{cluster}/{name}/drain", tag = "infrastructure",
    params(("cluster" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = DrainResult), (status = 404, body = ErrorBody)))]
pub async fn drain(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<DrainResult>, ApiError> {
    check(&caller)?;
    let Path((cluster, name)) = path?;
    let (node, stopped) = state.federation.drain(&cluster, &name).await?;
    Ok(Json(DrainResult { node, stopped }))
}

/// Sets (a value) or removes (`null`) operator labels of a node; node selectors see them.
#[utoipa::path(patch, path = "/api/v1/nodes/{cluster}/{name}/labels", tag = "infrastructure",
    params(("cluster" = String, Path), ("name" = String, Path)),
    request_body = LabelPatch,
    responses((status = 200, body = NodeInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody, description = "The body is not JSON"),
        (status = 422, body = ErrorBody, description = "The body is not a label patch")))]
pub async fn label_node(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    patch: Result<Json<LabelPatch>, JsonRejection>,
) -> Result<Json<NodeInfo>, ApiError> {
    check(&caller)?;
    let Path((cluster, name)) = path?;
    let edits = body(patch)?.edits()?;
    Ok(Json(
        state
            .federation
            .configure_node(&cluster, &name, |s| s.edit_labels(&edits))
            .await?,
    ))
}

/// Sets (a value) or removes (`null`) operator labels of a cluster; cluster selectors see them.
#[utoipa::path(patch, path = "/api/v1/clusters/{name}/labels", tag = "infrastructure",
    params(("name" = String, Path)),
    request_body = LabelPatch,
    responses((status = 200, body = ClusterInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody, description = "The body is not JSON"),
        (status = 422, body = ErrorBody, description = "The body is not a label patch")))]
pub async fn label_cluster(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    patch: Result<Json<LabelPatch>, JsonRejection>,
) -> Result<Json<ClusterInfo>, ApiError> {
    check(&caller)?;
    let Path(name) = path?;
    let edits = body(patch)?.edits()?;
    Ok(Json(state.federation.label_cluster(&name, &edits).await?))
}

/// Stops the instance; its service creates a replacement at once.
#[utoipa::path(delete, path = "/api/v1/instances/{id}", tag = "instances",
    params(("id" = String, Path)),
    responses((status = 200, body = Instance, description = "The instance as it was marked to stop"),
        (status = 404, body = ErrorBody)))]
pub async fn delete_instance(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Instance>, ApiError> {
    let Path(id) = path?;
    let instance = state.desired.get_instance(&id).await?;
    let Some(axum::Extension(principal)) = &caller else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "no caller identity",
        ));
    };
    principal.require(Action::ReplaceInstance, Some(&instance.namespace))?;
    let mut stopped = state
        .desired
        .replace_instances(std::slice::from_ref(&id), "deleted by the operator")
        .await?;
    state.federation.wake();
    stopped.pop().map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("instance {id:?} not found"),
        )
    })
}

/// The routes of this file (but `DELETE /instances/{id}`, which shares its path).
pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, patch, post};
    axum::Router::new()
        .route(
            "/clusters/{name}",
            get(get_cluster).delete(super::joins::delete_cluster),
        )
        .route("/clusters/{name}/labels", patch(label_cluster))
        .route(
            "/nodes/{cluster}/{name}",
            get(get_node).delete(super::joins::delete_node),
        )
        .route("/nodes/{cluster}/{name}/cordon", post(cordon))
        .route("/nodes/{cluster}/{name}/uncordon", post(uncordon))
        .route("/nodes/{cluster}/{name}/drain", post(drain))
        .route("/nodes/{cluster}/{name}/labels", patch(label_node))
}

//! The public REST API under `/api/v1`, its OpenAPI document and browsable docs.

mod applications;
mod body;
pub mod error;
mod events;
mod exec;
mod forward;
mod joins;
mod streams;
mod workloads;

use crate::auth;
use crate::desired::Desired;
use crate::federation::Federation;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, middleware};
use error::{ApiError, ErrorBody};
use serde::Serialize;
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

pub use events::ChangeEvent;

#[derive(Clone)]
pub struct AppState {
    pub desired: Arc<Desired>,
    pub federation: Arc<Federation>,
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Canopy API", description = "Hierarchical orchestration for the cloud-edge-IoT continuum."),
    paths(
        applications::apply, applications::create, applications::list, applications::get,
        applications::replace, applications::delete,
        workloads::list_services, workloads::get_service, workloads::scale,
        workloads::list_instances, workloads::get_instance, streams::logs, exec::exec, forward::port_forward,
        workloads::list_clusters, workloads::list_nodes,
        joins::create_token, joins::delete_cluster,
        events::events, healthz, readyz,
    ),
    components(schemas(ErrorBody, canopy_model::FieldError)),
    tags(
        (name = "applications", description = "Desired state: applications and their services"),
        (name = "services"), (name = "instances"),
        (name = "infrastructure", description = "Clusters and nodes"),
        (name = "events"), (name = "health"),
    )
)]
pub struct ApiDoc;

/// The whole HTTP surface of the root.
pub fn router(
    desired: Arc<Desired>,
    federation: Arc<Federation>,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Router {
    let state = AppState {
        desired,
        federation,
        stopping,
    };
    let api = Router::new()
        .route("/apply", post(applications::apply))
        .route(
            "/applications",
            get(applications::list).post(applications::create),
        )
        .route(
            "/applications/{namespace}/{name}",
            get(applications::get)
                .put(applications::replace)
                .delete(applications::delete),
        )
        .route("/services", get(workloads::list_services))
        .route(
            "/services/{namespace}/{application}/{name}",
            get(workloads::get_service),
        )
        .route(
            "/services/{namespace}/{application}/{name}/scale",
            post(workloads::scale),
        )
        .route("/instances", get(workloads::list_instances))
        .route("/instances/{id}", get(workloads::get_instance))
        .route("/instances/{id}/logs", get(streams::logs))
        .route("/instances/{id}/exec", post(exec::exec))
        .route("/instances/{id}/port-forward", post(forward::port_forward))
        .route("/clusters", get(workloads::list_clusters))
        .route("/clusters/{name}", delete(joins::delete_cluster))
        .route("/tokens", post(joins::create_token))
        .route("/nodes", get(workloads::list_nodes))
        .route("/events", get(events::events))
        .fallback(not_found)
        .route_layer(middleware::from_fn(auth::authenticate));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
        .fallback(not_found)
        // Room for a descriptor at its size limit plus JSON framing; larger bodies get 413.
        .layer(DefaultBodyLimit::max(
            canopy_model::limits::MAX_DESCRIPTOR_BYTES + 64 * 1024,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process can serve: its store answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    state.desired.store().revision().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("store unavailable: {e}"),
        )
    })?;
    Ok(Json(Health { status: "ready" }))
}

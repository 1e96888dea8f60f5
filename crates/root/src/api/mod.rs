//! The public REST API under `/api/v1`, its OpenAPI document and browsable docs.

mod api_tokens;
mod applications;
pub mod audit;
mod body;
mod contract;
mod dashboard;
pub mod error;
mod events;
mod exec;
pub(crate) mod exec_ws;
mod forward;
pub mod guard;
mod infrastructure;
mod joins;
mod login;
mod namespaces;
pub mod ngsild;
pub mod rate_limit;
mod rollouts;
pub mod rules;
mod runs;
mod secrets;
mod selectors;
mod streams;
mod traffic;
mod users;
mod version;
mod whoami;
mod workloads;

use crate::auth::{self, Accounts};
use crate::desired::Desired;
use crate::federation::Federation;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, middleware};
use error::{ApiError, ErrorBody};
use serde::Serialize;
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

pub use events::ChangeEvent;
pub use version::VersionInfo;

#[derive(Clone)]
pub struct AppState {
    pub desired: Arc<Desired>,
    pub federation: Arc<Federation>,
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// Descriptor parses running at once (see `body`).
    pub parsing: Arc<tokio::sync::Semaphore>,
    pub audit: Arc<audit::AuditLog>,
    /// Users, their tokens and the signing key.
    pub accounts: Arc<Accounts>,
}

/// How the API guards itself; the defaults suit a root on loopback.
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    /// Host names the API answers to besides IP addresses and `localhost`.
    pub allowed_hosts: guard::AllowedHosts,
    pub rate_limits: rate_limit::RateLimits,
}

/// The address of the client of a connection, for rate limits and the audit log.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for ClientAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        ClientAddr(*stream.remote_addr())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Canopy API", description = "Hierarchical orchestration for the cloud-edge-IoT continuum."),
    paths(
        applications::apply, applications::create, applications::list, applications::get,
        applications::replace, applications::delete, traffic::traffic,
        workloads::list_services, workloads::get_service, workloads::scale,
        workloads::list_instances, workloads::get_instance, streams::logs, exec::exec, exec_ws::exec_ws, forward::port_forward,
        workloads::list_clusters, workloads::list_nodes,
        infrastructure::get_cluster, infrastructure::get_node, infrastructure::cordon,
        infrastructure::uncordon, infrastructure::drain, infrastructure::label_node,
        infrastructure::label_cluster, infrastructure::delete_instance,
        joins::create_token, joins::delete_cluster, joins::delete_node,
        namespaces::list, namespaces::get, namespaces::put, namespaces::delete,
        events::events, audit::list, version::version, healthz, readyz,
        login::login, login::refresh, whoami::whoami, api_tokens::list, api_tokens::revoke,
        users::list, users::create, users::show, users::delete, users::grant, users::revoke,
        secrets::list, secrets::get_one, secrets::put, secrets::delete,
        rollouts::status, rollouts::pause, rollouts::resume, rollouts::undo, runs::start,
    ),
    components(schemas(ErrorBody, canopy_model::FieldError, ChangeEvent)),
    tags(
        (name = "applications", description = "Desired state: applications and their services"),
        (name = "services"), (name = "instances"),
        (name = "infrastructure", description = "Clusters and nodes"),
        (name = "namespaces", description = "Tenants, each trusted to run privileged workloads or not"),
        (name = "events"), (name = "version"), (name = "health"),
        (name = "secrets", description = "Secrets of a namespace: values are write-only"),
        (name = "audit", description = "Every mutating call: who, what, when, result"),
        (name = "auth", description = "Logging in, and tokens"),
        (name = "users", description = "Users and the roles granted to them (admins)"),
    )
)]
pub struct ApiDoc;

/// The whole HTTP surface of the root.
pub fn router(
    desired: Arc<Desired>,
    federation: Arc<Federation>,
    accounts: Arc<Accounts>,
    stopping: tokio::sync::watch::Receiver<bool>,
    config: &ApiConfig,
    metrics: Arc<dyn canopy_tier::metrics::Exposition>,
) -> Router {
    let state = AppState {
        desired,
        federation,
        stopping,
        parsing: Arc::new(body::parse_slots()),
        audit: Arc::new(audit::AuditLog::default()),
        accounts,
    };
    let limiter = Arc::new(rate_limit::Limiter::new(config.rate_limits));
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
        .route(
            "/applications/{namespace}/{name}/traffic",
            get(traffic::traffic),
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
        .route(
            "/instances/{id}",
            get(workloads::get_instance).delete(infrastructure::delete_instance),
        )
        .route("/instances/{id}/logs", get(streams::logs))
        .route(
            "/instances/{id}/exec",
            post(exec::exec).get(exec_ws::exec_ws),
        )
        .route("/instances/{id}/port-forward", post(forward::port_forward))
        .route("/clusters", get(workloads::list_clusters))
        .route("/tokens", post(joins::create_token).get(api_tokens::list))
        .route("/tokens/{id}", axum::routing::delete(api_tokens::revoke))
        .route("/login", post(login::login))
        .route("/login/refresh", post(login::refresh))
        .route("/whoami", get(whoami::whoami))
        .merge(users::routes())
        .route("/nodes", get(workloads::list_nodes))
        .route("/namespaces", get(namespaces::list))
        .route(
            "/namespaces/{name}",
            get(namespaces::get)
                .put(namespaces::put)
                .delete(namespaces::delete),
        )
        .merge(infrastructure::routes())
        .merge(secrets::routes())
        .merge(rollouts::routes())
        .merge(runs::routes())
        .route("/events", get(events::events))
        .route("/audit", get(audit::list))
        .route("/version", get(version::version))
        .fallback(not_found)
        // Every route's rule is in `rules::RULES`; a route without one is refused.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        // Outermost last: rate limit, then the audit (which so records what the guard
        // refuses), then the guard, then authentication.
        .layer(middleware::from_fn_with_state(
            Arc::new(config.allowed_hosts.clone()),
            guard::guard,
        ))
        .layer(middleware::from_fn_with_state(
            state.audit.clone(),
            audit::audit,
        ))
        .layer(middleware::from_fn_with_state(
            limiter.clone(),
            rate_limit::limit,
        ));
    // The NGSI-LD view: the same rules table, guard, audit and rate limit, with its errors
    // as ProblemDetails.
    let ngsi_ld = ngsild::routes()
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(middleware::from_fn(ngsild::as_problem_details))
        .layer(middleware::from_fn_with_state(
            Arc::new(config.allowed_hosts.clone()),
            guard::guard,
        ))
        .layer(middleware::from_fn_with_state(
            state.audit.clone(),
            audit::audit,
        ))
        .layer(middleware::from_fn_with_state(limiter, rate_limit::limit));
    // Prometheus text at `/metrics`, for any role's token (its rule is in `rules`).
    let metrics = Router::new()
        .route("/metrics", get(canopy_tier::metrics::answer))
        .with_state(metrics)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    Router::new()
        .nest("/api/v1", api)
        .merge(ngsi_ld)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(dashboard::routes())
        .merge(
            SwaggerUi::new("/docs").external_url_unchecked("/openapi.json", contract::document()),
        )
        .fallback(not_found)
        // Room for a descriptor at its size limit plus JSON framing; larger bodies get 413.
        .layer(DefaultBodyLimit::max(
            canopy_model::limits::MAX_DESCRIPTOR_BYTES + 64 * 1024,
        ))
        .with_state(state)
        .merge(metrics)
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

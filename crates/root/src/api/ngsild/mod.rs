//! The continuum as NGSI-LD entities under `/ngsi-ld/v1/` (ETSI GS CIM 009), read-only, and
//! subscriptions with HTTP notifications; see docs/ngsi-ld.md. Authorised like `/api/v1`:
//! each route's rule is in `rules::NGSI_LD_RULES`, and the caller sees the infrastructure
//! and the services and instances of the namespaces it may read.

mod context;
mod entities;
mod entity;
mod mapping;
mod notifier;
mod problem;
mod query;
mod subscription;
mod subscriptions;
mod view;

pub use notifier::Notifier;

use super::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;

/// The largest subscription accepted (each is kept in the store and matched on every change).
const MAX_SUBSCRIPTION_BYTES: usize = 64 * 1024;

/// The routes, by their full paths (the authorisation rules name them so).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ngsi-ld/v1/entities", get(entities::query_entities))
        .route("/ngsi-ld/v1/entities/{id}", get(entities::retrieve_entity))
        .route("/ngsi-ld/v1/types", get(entities::types))
        .route(context::CONTEXT_PATH, get(context::serve))
        .route(
            subscriptions::PATH,
            get(subscriptions::list).post(subscriptions::create),
        )
        // ngsildclient posts to the collection with a trailing slash.
        .route(
            "/ngsi-ld/v1/subscriptions/",
            axum::routing::post(subscriptions::create),
        )
        .route(
            "/ngsi-ld/v1/subscriptions/{id}",
            get(subscriptions::get_one).delete(subscriptions::delete),
        )
        .layer(DefaultBodyLimit::max(MAX_SUBSCRIPTION_BYTES))
}

/// The layer that turns the shared middleware's errors into ProblemDetails.
pub use problem::as_problem_details;

//! `POST /api/v1/instances/{id}/port-forward?port=P`: one TCP connection to port P of an
//! instance, over an upgraded connection carrying [`canopy_tier::wire`] frames (the client's
//! bytes as data on channel 0, the instance's on channel 1).

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::exec::{switch, upgrade_of};
use super::streams::open;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::response::Response;
use canopy_tier::pb::{self, open_stream::Kind};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForwardQuery {
    /// The instance's port to connect to.
    pub port: u16,
}

/// Connects to a port of an instance on its node (a container's own address, or the node's
/// loopback for a process), reached through its cluster.
#[utoipa::path(post, path = "/api/v1/instances/{id}/port-forward", tag = "instances",
    params(("id" = String, Path), ForwardQuery),
    responses(
        (status = 101, description = "Switched to the `canopy-stream` framed protocol, relaying one TCP connection"),
        (status = 400, description = "No port, or not an upgrade request", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "Nothing answers on that port", body = ErrorBody),
        (status = 503, description = "Its cluster or node cannot be reached", body = ErrorBody)))]
pub async fn port_forward(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ForwardQuery>, QueryRejection>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let Path(id) = path?;
    // Who may is decided before anything about the request itself.
    let instance = state.desired.get_instance(&id).await?;
    crate::auth::caller(&request)?.require(crate::auth::Action::Exec, Some(&instance.namespace))?;
    let Query(query) = query?;
    let on_upgrade = upgrade_of(&mut request)?;
    let kind = Kind::PortForward(pb::PortForwardRequest {
        port: u32::from(query.port),
    });
    let pipe = open(&state, &instance, kind).await?;
    Ok(switch(on_upgrade, pipe, id))
}

//! `POST /api/v1/instances/{id}/exec`: a command inside a running instance, over an upgraded
//! connection (`Upgrade: canopy-stream`) that carries [`canopy_tier::wire`] frames both ways:
//! stdin down, stdout and stderr up, and last the command's exit code.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::streams::open;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use canopy_tier::pb::{self, open_stream::Kind};
use canopy_tier::streams::Pipe;

/// The `Upgrade` token of the framed stream protocol.
pub const PROTOCOL: &str = "canopy-stream";

/// Runs a command in a running instance (its environment, working directory and cgroup; a
/// container's namespaces) on its node, reached through its cluster.
#[utoipa::path(post, path = "/api/v1/instances/{id}/exec", tag = "instances",
    params(
        ("id" = String, Path),
        ("command" = Vec<String>, Query, description = "The program and its arguments, one `command=` each, in order"),
        ("tty" = Option<bool>, Query, description = "Run it on a pseudo-terminal (output then comes on channel 1 only; resize frames change its size)"),
        ("cols" = Option<u16>, Query, description = "The terminal's initial width"),
        ("rows" = Option<u16>, Query, description = "The terminal's initial height"),
    ),
    responses(
        (status = 101, description = "Switched to the `canopy-stream` framed protocol: frames are kind (u8), length (u32 BE), payload; stdin goes as data on channel 0, stdout/stderr come on channels 1/2, and an end frame carries the exit code"),
        (status = 400, description = "No command, or not an upgrade request", body = ErrorBody),
        (status = 404, description = "No such instance", body = ErrorBody),
        (status = 409, description = "The instance is not running, or its runtime cannot exec", body = ErrorBody),
        (status = 503, description = "Its cluster or node cannot be reached", body = ErrorBody)))]
pub async fn exec(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
    mut request: Request,
) -> Result<Response, ApiError> {
    let Path(id) = path?;
    // Who may is decided before anything about the request itself.
    let instance = state.desired.get_instance(&id).await?;
    crate::auth::caller(&request)?.require(crate::auth::Action::Exec, Some(&instance.namespace))?;
    let Query(pairs) = query?;
    let kind = Kind::Exec(exec_request(&pairs)?);
    let on_upgrade = upgrade_of(&mut request)?;
    let pipe = open(&state, &instance, kind).await?;
    Ok(switch(on_upgrade, pipe, id))
}

/// The command of an exec request's query (`command=` each, `tty`, `cols`, `rows`), shared
/// by this endpoint and its WebSocket variant (`exec_ws`).
pub(super) fn exec_request(pairs: &[(String, String)]) -> Result<pb::ExecRequest, ApiError> {
    let command: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    let tty = pairs.iter().any(|(k, v)| k == "tty" && v == "true");
    let size = |name: &str| -> Result<u32, ApiError> {
        match pairs.iter().find(|(k, _)| k == name) {
            None => Ok(0),
            Some((_, v)) => v.parse::<u16>().map(u32::from).map_err(|_| {
                ApiError::bad_request(format!("{name} must be a number up to 65535, not {v:?}"))
            }),
        }
    };
    let (cols, rows) = (size("cols")?, size("rows")?);
    if command.is_empty() {
        return Err(ApiError::bad_request(
            "exec needs a command (`command=` query parameters)",
        ));
    }
    Ok(pb::ExecRequest {
        command,
        tty,
        cols,
        rows,
    })
}

/// The connection's upgrade to [`PROTOCOL`], or a 400 when the client did not ask for one.
pub(super) fn upgrade_of(request: &mut Request) -> Result<hyper::upgrade::OnUpgrade, ApiError> {
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok());
    if !upgrade.is_some_and(|v| v.eq_ignore_ascii_case(PROTOCOL)) {
        return Err(ApiError::bad_request(format!(
            "this endpoint needs an upgraded connection (Connection: Upgrade, Upgrade: {PROTOCOL})"
        )));
    }
    Ok(hyper::upgrade::on(request))
}

/// Answers 101 and, once the connection is switched, relays it and the stream.
pub(super) fn switch(on_upgrade: hyper::upgrade::OnUpgrade, pipe: Pipe, id: String) -> Response {
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                canopy_tier::wire::bridge(hyper_util::rt::TokioIo::new(upgraded), pipe).await
            }
            Err(e) => tracing::warn!(instance = %id, error = %e, "connection upgrade failed"),
        }
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static(PROTOCOL));
    response
}

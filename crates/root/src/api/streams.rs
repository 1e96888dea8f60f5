//! Streams to an instance through its cluster and node: logs as a chunked text body (exec
//! and port-forward as upgraded connections, in their own files).

use super::AppState;
use super::error::{ApiError, ErrorBody};
use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use canopy_model::Instance;
use canopy_tier::pb::{self, open_stream::Kind};
use canopy_tier::streams::{End, Frame, Pipe};
use serde::Deserialize;
use utoipa::IntoParams;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Keep the response open and stream lines as the instance writes them.
    #[serde(default)]
    pub follow: bool,
    /// Start with the last N lines of each output (stdout, stderr); all of them when absent.
    pub tail: Option<u64>,
    /// The run before the current one (after a restart).
    #[serde(default)]
    pub previous: bool,
    /// Only lines written in the last N seconds (to about a second: the node marks its logs'
    /// times once a second).
    #[serde(rename = "sinceSeconds")]
    #[param(rename = "sinceSeconds")]
    pub since_seconds: Option<u64>,
}

/// An instance's output (stdout and stderr), fetched from its node through its cluster.
#[utoipa::path(get, path = "/api/v1/instances/{id}/logs", tag = "instances",
    params(("id" = String, Path), LogsQuery),
    responses(
        (status = 200, description = "The output as it is written (chunked; open while following)", content_type = "text/plain", body = String),
        (status = 400, body = ErrorBody),
        (status = 404, description = "No such instance, or no logs of it on its node", body = ErrorBody),
        (status = 409, description = "The instance is not placed on a node", body = ErrorBody),
        (status = 503, description = "Its cluster or node cannot be reached", body = ErrorBody)))]
pub async fn logs(
    State(state): State<AppState>,
    axum::Extension(principal): axum::Extension<crate::auth::Principal>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<LogsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Path(id) = path?;
    let Query(query) = query?;
    let request = pb::LogsRequest {
        follow: query.follow,
        has_tail: query.tail.is_some(),
        tail: query.tail.unwrap_or(0),
        previous: query.previous,
        has_since: query.since_seconds.is_some(),
        since_ms: query.since_seconds.unwrap_or(0).saturating_mul(1000),
    };
    let instance = state.desired.get_instance(&id).await?;
    principal.require(crate::auth::Action::Read, Some(&instance.namespace))?;
    let pipe = open(&state, &instance, Kind::Logs(request)).await?;
    let body = futures::stream::unfold(Some(pipe), |pipe| async move {
        let mut pipe = pipe?;
        loop {
            match pipe.recv().await {
                Frame::Data { data, .. } => return Some((Ok(data), Some(pipe))),
                Frame::End(End { error: None, .. }) => return None,
                // Mid-body, an error can only cut the response short, which the client sees.
                Frame::End(End {
                    error: Some((_, message)),
                    ..
                }) => return Some((Err(std::io::Error::other(message)), None)),
                _ => {}
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(body),
    )
        .into_response())
}

/// Opens a stream of `kind` to `instance` on its node and waits until the node accepted it,
/// so that refusals answer with a status and an error body, not a cut-off response.
pub(super) async fn open(
    state: &AppState,
    instance: &Instance,
    kind: Kind,
) -> Result<Pipe, ApiError> {
    let (Some(cluster), Some(node)) = (&instance.cluster, &instance.node) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_placed",
            format!("instance {} is not placed on a node yet", instance.id),
        ));
    };
    let open = pb::OpenStream {
        stream_id: 0,
        instance_id: instance.id.clone(),
        node: node.clone(),
        kind: Some(kind),
    };
    let mut pipe = state
        .federation
        .open_stream(cluster, open)
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        })?;
    loop {
        match pipe.recv().await {
            Frame::Ready => return Ok(pipe),
            Frame::End(end) => return Err(refused(end)),
            _ => {}
        }
    }
}

/// The error a stream that ended before it was ready stands for.
fn refused(end: End) -> ApiError {
    let (code, message) = end
        .error
        .unwrap_or_else(|| ("unavailable".into(), "the stream ended at once".into()));
    let status = match code.as_str() {
        "not_found" => StatusCode::NOT_FOUND,
        "bad_request" => StatusCode::BAD_REQUEST,
        "not_running" | "unsupported" => StatusCode::CONFLICT,
        _ => StatusCode::BAD_GATEWAY,
    };
    ApiError::new(status, &code, message)
}

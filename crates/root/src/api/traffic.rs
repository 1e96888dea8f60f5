//! The calls into and out of an application's services, as the nodes' proxies counted them
//! (summed over every node): the dashboard draws them as its graph's edges.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{Action, Principal};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use canopy_tier::pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A caller in a namespace the reader may not read: named no further.
const HIDDEN: &str = "hidden";

/// Calls from one service to another, totals since the nodes that carried them started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficEdge {
    /// The calling service, `namespace/application/service`; `unknown` when the node could
    /// not tell (a wasm instance, a process that is no instance), `hidden` when it is in a
    /// namespace the reader may not read.
    pub from: String,
    /// The called service, `namespace/application/service`.
    pub to: String,
    /// Connections (UDP: flows) forwarded to an instance.
    pub connections: u64,
    /// Bytes from the callers to the service's instances.
    pub bytes_to_callee: u64,
    /// Bytes back.
    pub bytes_from_callee: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApplicationTraffic {
    /// Every pair with a caller or callee in this application.
    pub edges: Vec<TrafficEdge>,
}

/// The calls between services that touch this application, from the overlay's proxies.
#[utoipa::path(get, path = "/api/v1/applications/{namespace}/{name}/traffic", tag = "applications",
    params(("namespace" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = ApplicationTraffic),
        (status = 400, body = ErrorBody, description = "A path segment that is not UTF-8"),
        (status = 404, body = ErrorBody, description = "No such application"),
        (status = 500, body = ErrorBody, description = "The state store failed")))]
pub async fn traffic(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<ApplicationTraffic>, ApiError> {
    let Path((namespace, name)) = path?;
    principal.require(Action::Read, Some(&namespace))?;
    state.desired.get_application(&namespace, &name).await?;
    let readable = |ns: &str| principal.may(Action::Read, Some(ns));
    let edges = of_application(&state.federation.traffic(), &namespace, &name, readable);
    Ok(Json(ApplicationTraffic { edges }))
}

/// The edges with either end in `namespace/application`, callers the reader may not see
/// renamed [`HIDDEN`] (and merged).
fn of_application(
    edges: &[pb::TrafficEdge],
    namespace: &str,
    application: &str,
    readable: impl Fn(&str) -> bool,
) -> Vec<TrafficEdge> {
    let prefix = format!("{namespace}/{application}/");
    let mut kept: Vec<TrafficEdge> = Vec::new();
    for edge in edges {
        if !edge.caller.starts_with(&prefix) && !edge.callee.starts_with(&prefix) {
            continue;
        }
        let visible = |service: &str| match service.split_once('/') {
            Some((ns, _)) if !readable(ns) => HIDDEN.to_string(),
            _ => service.to_string(),
        };
        let (from, to) = (visible(&edge.caller), visible(&edge.callee));
        match kept.iter_mut().find(|k| k.from == from && k.to == to) {
            Some(same) => {
                same.connections += edge.connections;
                same.bytes_to_callee += edge.bytes_to_callee;
                same.bytes_from_callee += edge.bytes_from_callee;
            }
            None => kept.push(TrafficEdge {
                from,
                to,
                connections: edge.connections,
                bytes_to_callee: edge.bytes_to_callee,
                bytes_from_callee: edge.bytes_from_callee,
            }),
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(caller: &str, callee: &str, bytes: u64) -> pb::TrafficEdge {
        pb::TrafficEdge {
            caller: caller.into(),
            callee: callee.into(),
            connections: 1,
            bytes_to_callee: bytes,
            bytes_from_callee: 2 * bytes,
        }
    }

    #[test]
    fn an_application_sees_its_calls_and_no_names_it_may_not_read() {
        let edges = [
            edge("default/shop/web", "default/shop/db", 10),
            edge("unknown", "default/shop/web", 5),
            edge("default/shop/web", "default/pay/api", 7),
            edge("default/other/x", "default/other/y", 99),
            edge("secret/a/b", "default/shop/web", 3),
            edge("secret/c/d", "default/shop/web", 4),
        ];
        let seen = of_application(&edges, "default", "shop", |ns| ns == "default");
        let pairs: Vec<(&str, &str, u64)> = seen
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str(), e.bytes_to_callee))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("default/shop/web", "default/shop/db", 10),
                ("unknown", "default/shop/web", 5),
                ("default/shop/web", "default/pay/api", 7),
                (HIDDEN, "default/shop/web", 7),
            ]
        );
        assert_eq!(seen[3].connections, 2, "the hidden callers merged");
    }
}

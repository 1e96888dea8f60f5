//! Membership administration: join tokens for new clusters and for a cluster's nodes, and
//! revoking a cluster's or a node's certificates. All are for administrators
//! ([`auth::may_manage_members`]). The same `POST /api/v1/tokens` with a `role` instead of
//! `join` makes an API token (`api_tokens`).

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{self, Principal};
use crate::auth::{ApiToken, Role};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use canopy_tier::AskError;
use canopy_tier::trust::{CreatedToken as TierToken, TrustError};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Longest lifetime a join token may be given.
pub(super) const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most nodes one node token admits.
const MAX_USES: u32 = 100_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// A join token: what it admits, `cluster` or `node` (of the cluster `cluster`). Give
    /// this or `role`.
    #[serde(default)]
    #[schema(pattern = "^(cluster|node)$")]
    pub join: Option<String>,
    /// A join token for `node`: the cluster the node joins. The root makes the token and
    /// hands the cluster what checks it over the cluster's link (so it must be linked).
    #[serde(default)]
    pub cluster: Option<String>,
    /// A join token for `node`, without `name`: how many nodes may join with it (default
    /// 1), as for a fleet of simulated nodes.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100000)]
    pub uses: Option<u32>,
    /// A join token: the one name it admits; any free name when absent.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9._-]{1,63}$")]
    pub name: Option<String>,
    /// An API token: the role it carries (no more than its creator holds). Give this or `join`.
    #[serde(default)]
    pub role: Option<Role>,
    /// An API token: the namespace its role covers; every namespace when absent.
    #[serde(default)]
    #[schema(pattern = "^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")]
    pub namespace: Option<String>,
    /// Lifetime in seconds: a join token's default 24 h, at most 7 days; an API token's
    /// default 30 days, at most 366 days.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub ttl_seconds: Option<u64>,
}

/// A join token or an API token, as the request asked.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum CreatedToken {
    Join(TokenResponse),
    Api(ApiToken),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// `<id>.<secret>`: shown once, never stored.
    pub token: String,
    /// What the joining side pins: `sha256:<hex>` of the root CA's public key (for a
    /// cluster) or of the cluster's intermediate CA (for a node).
    pub ca_hash: String,
    pub join: String,
    /// For `node`: its cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    pub name: Option<String>,
    /// RFC 3339.
    pub expires_at: String,
}

fn field(path: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError::bad_request(message.clone())
        .with_details(vec![canopy_model::FieldError::new(path, message)])
}

/// Creates a one-time join token (`join`, admins), or an API token (`role`).
#[utoipa::path(post, path = "/api/v1/tokens", tag = "infrastructure",
    request_body = TokenRequest,
    responses((status = 201, body = CreatedToken), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No such cluster (`join: node`)"),
        (status = 409, body = ErrorBody, description = "The cluster is not linked, or cannot admit nodes yet"),
        (status = 415, body = ErrorBody, description = "The body is not JSON"),
        (status = 422, body = ErrorBody, description = "The body is not a token request")))]
pub async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let Json(request) =
        body.map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?;
    let join = match (request.join, request.role) {
        (Some(_), Some(_)) => {
            return Err(field(
                "role",
                "give `join` (a join token) or `role` (an API token), not both",
            ));
        }
        (None, None) => {
            return Err(field(
                "join",
                "give `join` (a join token) or `role` (an API token)",
            ));
        }
        (None, Some(role)) => {
            for (path, given) in [
                ("name", request.name.is_some()),
                ("cluster", request.cluster.is_some()),
                ("uses", request.uses.is_some()),
            ] {
                if given {
                    return Err(field(path, "only join tokens say what they admit"));
                }
            }
            let created = super::api_tokens::create(
                &state,
                &principal,
                role,
                request.namespace,
                request.ttl_seconds,
            )
            .await?;
            return Ok((StatusCode::CREATED, Json(CreatedToken::Api(created))));
        }
        (Some(join), None) => join,
    };
    auth::may_manage_members(&principal)?;
    if request.namespace.is_some() {
        return Err(field("namespace", "join tokens belong to no namespace"));
    }
    if let Some(name) = &request.name {
        canopy_tier::trust::tokens::check_name(name)
            .map_err(|refusal| field("name", refusal.to_string()))?;
    }
    let ttl = match request.ttl_seconds {
        Some(0) => return Err(field("ttl_seconds", "must be at least 1")),
        Some(seconds) if Duration::from_secs(seconds) > MAX_TTL => {
            return Err(field(
                "ttl_seconds",
                format!("at most {} (7 days)", MAX_TTL.as_secs()),
            ));
        }
        Some(seconds) => Some(Duration::from_secs(seconds)),
        None => None,
    };
    let created: Made = match (join.as_str(), request.cluster) {
        ("cluster", None) => {
            if request.uses.is_some() {
                return Err(field("uses", "a cluster token is one-time"));
            }
            state
                .federation
                .enrolment()
                .create_token(request.name, ttl, OffsetDateTime::now_utc())
                .await
                .map_err(token_error)?
                .into()
        }
        ("cluster", Some(_)) => {
            return Err(field(
                "cluster",
                "only for `node` tokens (a cluster joins the root)",
            ));
        }
        ("node", Some(cluster)) => {
            node_token(&state, cluster, request.name, ttl, request.uses).await?
        }
        ("node", None) => {
            return Err(field(
                "cluster",
                "a node joins a cluster: name it (`--cluster C`)",
            ));
        }
        (other, _) => {
            return Err(field(
                "join",
                format!("expected `cluster` or `node`, not {other:?}"),
            ));
        }
    };
    let expires_at = OffsetDateTime::from_unix_timestamp(created.expires_unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    tracing::info!(by = %principal.name, join = %created.role, name = ?created.name, "join token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken::Join(TokenResponse {
            token: created.token,
            ca_hash: created.ca_hash,
            join: created.role.to_string(),
            cluster: created.cluster,
            name: created.name,
            expires_at,
        })),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    pub cluster: String,
}

/// Revokes a cluster's certificates and ends its link: it can no longer link (its next
/// handshake fails), and its name is free for a new join.
#[utoipa::path(delete, path = "/api/v1/clusters/{name}", tag = "infrastructure",
    params(("name" = String, Path)),
    responses((status = 200, body = Revoked), (status = 404, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn delete_cluster(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Revoked>, ApiError> {
    auth::may_manage_members(&principal)?;
    let Path(name) = path?;
    let revoked = state
        .federation
        .enrolment()
        .revoke(&name)
        .await
        .map_err(crate::desired::RootError::from)?;
    if !revoked {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("cluster {name:?} holds no certificate"),
        ));
    }
    state.federation.end_link(&name).await;
    tracing::info!(by = %principal.name, cluster = %name, "cluster revoked");
    Ok(Json(Revoked { cluster: name }))
}

/// A token and what made it, as answered.
struct Made {
    token: String,
    ca_hash: String,
    role: canopy_tier::trust::Role,
    cluster: Option<String>,
    name: Option<String>,
    expires_unix: i64,
}

impl From<TierToken> for Made {
    fn from(created: TierToken) -> Made {
        Made {
            token: created.token,
            ca_hash: created.ca_hash,
            role: created.role,
            cluster: None,
            name: created.name,
            expires_unix: created.expires_unix,
        }
    }
}

fn token_error(error: TrustError) -> ApiError {
    match error {
        TrustError::Refused(refusal) => field("name", refusal.to_string()),
        TrustError::NotMember(cluster) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("cluster {cluster:?} holds no certificate"),
        ),
        TrustError::Certificate(message) => {
            ApiError::new(StatusCode::CONFLICT, "conflict", message)
        }
        other => crate::desired::RootError::from(other).into(),
    }
}

fn ask_error(error: AskError) -> ApiError {
    // The cluster's state, not the root's failure: a 4xx the caller can retry.
    ApiError::new(
        StatusCode::CONFLICT,
        "cluster_unavailable",
        error.to_string(),
    )
}

/// A node token for `cluster`, kept by the cluster (over its link) before it is answered,
/// so the node can join at once.
async fn node_token(
    state: &AppState,
    cluster: String,
    name: Option<String>,
    ttl: Option<Duration>,
    uses: Option<u32>,
) -> Result<Made, ApiError> {
    let extra_uses = match uses {
        Some(0) => return Err(field("uses", "must be at least 1")),
        Some(uses) if uses > MAX_USES => {
            return Err(field("uses", format!("at most {MAX_USES}")));
        }
        Some(uses) => uses - 1,
        None => 0,
    };
    let (created, message) = state
        .federation
        .enrolment()
        .node_token(&cluster, name, ttl, extra_uses, OffsetDateTime::now_utc())
        .await
        .map_err(|e| match e {
            TrustError::Refused(refusal @ canopy_tier::trust::Refusal::NamedReuse) => {
                field("uses", refusal.to_string())
            }
            other => token_error(other),
        })?;
    let downlink = state
        .federation
        .cluster_downlink(&cluster)
        .await
        .ok_or_else(|| ask_error(AskError::LinkDown(format!("cluster {cluster}"))))?;
    downlink.node_token(message).await.map_err(ask_error)?;
    let mut made = Made::from(created);
    made.cluster = Some(cluster);
    Ok(made)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RemovedNode {
    pub cluster: String,
    pub node: String,
}

/// Removes a node: its cluster revokes its certificates (its link is refused from then on),
/// ends its link and forgets it; what it ran is placed on other nodes. Told to the cluster
/// over its link, so the cluster must be linked.
#[utoipa::path(delete, path = "/api/v1/nodes/{cluster}/{name}", tag = "infrastructure",
    params(("cluster" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = RemovedNode), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn delete_node(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<RemovedNode>, ApiError> {
    auth::may_manage_members(&principal)?;
    let Path((cluster, node)) = path?;
    let downlink = state
        .federation
        .cluster_downlink(&cluster)
        .await
        .ok_or_else(|| ask_error(AskError::LinkDown(format!("cluster {cluster}"))))?;
    downlink.remove_node(&node).await.map_err(|e| match e {
        AskError::Refused(_, message) => ApiError::new(StatusCode::NOT_FOUND, "not_found", message),
        other => ask_error(other),
    })?;
    tracing::info!(by = %principal.name, %cluster, %node, "node removed");
    Ok(Json(RemovedNode { cluster, node }))
}

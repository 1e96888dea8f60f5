//! Membership administration: join tokens for new clusters, and revoking a cluster's
//! certificates. Both are for administrators ([`auth::may_manage_members`]). The same
//! `POST /api/v1/tokens` with a `role` instead of `join` makes an API token (`api_tokens`).

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{self, Principal};
use crate::auth::{ApiToken, Role};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use canopy_tier::trust::{Role as TierRole, TrustError};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Longest lifetime a join token may be given.
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// A join token: what it admits (`cluster`). Give this or `role`.
    #[serde(default)]
    #[schema(pattern = "^cluster$")]
    pub join: Option<String>,
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
    /// What the joining side pins: `sha256:<hex>` of the root CA's public key.
    pub ca_hash: String,
    pub join: String,
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
            if request.name.is_some() {
                return Err(field("name", "only join tokens name what they admit"));
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
    if join != "cluster" {
        return Err(field(
            "join",
            format!(
                "the root admits clusters only (`cluster`), not {join:?}; nodes join their cluster"
            ),
        ));
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
    let created = state
        .federation
        .enrolment()
        .create_token(request.name, ttl, OffsetDateTime::now_utc())
        .await
        .map_err(|e| match e {
            TrustError::Refused(refusal) => field("name", refusal.to_string()),
            other => crate::desired::RootError::from(other).into(),
        })?;
    let expires_at = OffsetDateTime::from_unix_timestamp(created.expires_unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    tracing::info!(by = %principal.name, name = ?created.name, "join token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken::Join(TokenResponse {
            token: created.token,
            ca_hash: created.ca_hash,
            join: TierRole::Cluster.to_string(),
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

//! Membership administration: join tokens for new clusters, and revoking a cluster's
//! certificates. Both are for administrators ([`auth::may_manage_members`]).

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{self, Principal};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use canopy_tier::trust::{Role, TrustError};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Longest lifetime a join token may be given.
const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// What the token admits: `cluster`.
    #[schema(pattern = "^cluster$")]
    pub join: String,
    /// The one name it admits; any free name when absent.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9._-]{1,63}$")]
    pub name: Option<String>,
    /// Lifetime in seconds (default 24 h, at most 7 days).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 604800)]
    pub ttl_seconds: Option<u64>,
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

/// Creates a one-time join token.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "infrastructure",
    request_body = TokenRequest,
    responses((status = 201, body = TokenResponse), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 415, description = "The body is not JSON", body = ErrorBody),
        (status = 422, description = "The body is JSON but not a token request", body = ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<TokenRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    auth::may_manage_members(&principal)?;
    let Json(request) =
        body.map_err(|e| ApiError::new(e.status(), "bad_request", e.body_text()))?;
    if request.join != "cluster" {
        return Err(field(
            "join",
            format!(
                "the root admits clusters only (`cluster`), not {:?}; nodes join their cluster",
                request.join
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
        Json(TokenResponse {
            token: created.token,
            ca_hash: created.ca_hash,
            join: Role::Cluster.to_string(),
            name: created.name,
            expires_at,
        }),
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

//! API tokens for automation (`POST /api/v1/tokens` with a `role`), and every token record:
//! listed and revoked by its owner, or by anyone who may manage users.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use crate::auth::{self, Action, ApiToken, AuthError, Grant, Principal, Role, TokenInfo};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::{Extension, Json};

/// Creates an API token for `role` in `namespace` (all when absent) living `ttl_seconds`.
pub async fn create(
    state: &AppState,
    principal: &Principal,
    role: Role,
    namespace: Option<String>,
    ttl_seconds: Option<u64>,
) -> Result<ApiToken, ApiError> {
    if let Some(namespace) = &namespace {
        auth::check_namespace(namespace)?;
    }
    let lifetime = match ttl_seconds {
        None => auth::API_TOKEN_DEFAULT,
        Some(0) => return Err(AuthError::invalid("ttl_seconds", "must be at least 1").into()),
        Some(seconds) => i64::try_from(seconds)
            .ok()
            .filter(|s| *s <= auth::API_TOKEN_MAX)
            .ok_or_else(|| {
                AuthError::invalid(
                    "ttl_seconds",
                    format!("at most {} (366 days)", auth::API_TOKEN_MAX),
                )
            })?,
    };
    let grant = Grant { role, namespace };
    let created = state
        .accounts
        .create_api_token(principal, grant.clone(), lifetime, auth::now())
        .await?;
    tracing::info!(by = %principal.name, id = %created.info.id, %grant, "API token created");
    Ok(created)
}

/// The caller's tokens and login sessions; everybody's for those who may manage users.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "auth",
    responses((status = 200, body = [TokenInfo])))]
pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let all = principal.may(Action::ManageUsers, None);
    let records = state.accounts.list_tokens(auth::now()).await?;
    Ok(Json(
        records
            .iter()
            .filter(|record| all || record.user == principal.name)
            .map(|record| record.info())
            .collect(),
    ))
}

/// Revokes an API token or ends a login session: every token naming it gets 401 from now on.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "auth",
    params(("id" = String, Path)),
    responses((status = 200, body = TokenInfo),
        (status = 404, body = ErrorBody, description = "No such token (or another user's)")))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<TokenInfo>, ApiError> {
    let Path(id) = path?;
    let not_found = || {
        ApiError::from(AuthError::NotFound {
            kind: "token",
            name: id.clone(),
        })
    };
    let record = state
        .accounts
        .token_record(&id)
        .await?
        .ok_or_else(not_found)?;
    // Another user's token is not even confirmed to exist.
    if record.user != principal.name && !principal.may(Action::ManageUsers, None) {
        return Err(not_found());
    }
    let revoked = state.accounts.revoke_token(&id).await?;
    tracing::info!(by = %principal.name, id = %id, "token revoked");
    Ok(Json(revoked.info()))
}

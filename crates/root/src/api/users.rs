//! User management (admins): users, and the grants that give them roles.

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::login::json;
use crate::auth::{self, Grant, Principal, Role, User};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// A DNS label.
    #[schema(pattern = "^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")]
    pub name: String,
    #[schema(min_length = 8, max_length = 256)]
    pub password: String,
}

/// Debug never shows the password.
impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A grant to add, or (as query parameters) to remove.
#[derive(Debug, Deserialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    pub role: Role,
    /// The namespace it covers; every namespace when absent.
    #[param(pattern = "^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")]
    #[schema(pattern = "^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")]
    pub namespace: Option<String>,
}

impl GrantRequest {
    fn grant(self) -> Grant {
        Grant {
            role: self.role,
            namespace: self.namespace,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, body = [User])))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<User>>, ApiError> {
    Ok(Json(state.accounts.list_users().await?))
}

/// Creates a user with no grant (it may log in and do nothing until granted a role).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 400, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The user exists"),
        (status = 415, body = ErrorBody, description = "The body is not JSON"),
        (status = 422, body = ErrorBody, description = "The body is not a user")))]
pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let request = json(body)?;
    let user = state
        .accounts
        .create_user(&request.name, &request.password, auth::now())
        .await?;
    tracing::info!(by = %principal.name, user = %user.name, "user created");
    Ok((StatusCode::CREATED, Json(user)))
}

#[utoipa::path(get, path = "/api/v1/users/{name}", tag = "users",
    params(("name" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<User>, ApiError> {
    let Path(name) = path?;
    Ok(Json(state.accounts.get_user(&name).await?))
}

/// Deletes the user and revokes every token of it (not the last user who may manage users).
#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "users",
    params(("name" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "The last user who may manage users")))]
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<User>, ApiError> {
    let Path(name) = path?;
    let user = state.accounts.delete_user(&name).await?;
    tracing::info!(by = %principal.name, user = %name, "user deleted");
    Ok(Json(user))
}

/// Gives the user a role over one namespace or all of them.
#[utoipa::path(post, path = "/api/v1/users/{name}/grants", tag = "users",
    params(("name" = String, Path)), request_body = GrantRequest,
    responses((status = 200, body = User), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody, description = "The body is not JSON"),
        (status = 422, body = ErrorBody, description = "The body is not a grant")))]
pub async fn grant(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<GrantRequest>, JsonRejection>,
) -> Result<Json<User>, ApiError> {
    let Path(name) = path?;
    let grant = json(body)?.grant();
    let user = state.accounts.grant(&name, grant.clone()).await?;
    tracing::info!(by = %principal.name, user = %name, %grant, "granted");
    Ok(Json(user))
}

/// Takes a grant away (`namespace` absent: the all-namespaces grant of that role).
#[utoipa::path(delete, path = "/api/v1/users/{name}/grants", tag = "users",
    params(("name" = String, Path), GrantRequest),
    responses((status = 200, body = User), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No such user, or it does not hold the grant"),
        (status = 409, body = ErrorBody, description = "The last grant that may manage users")))]
pub async fn revoke(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<GrantRequest>, QueryRejection>,
) -> Result<Json<User>, ApiError> {
    let Path(name) = path?;
    let Query(request) = query?;
    let grant = request.grant();
    let user = state.accounts.revoke(&name, grant.clone()).await?;
    tracing::info!(by = %principal.name, user = %name, %grant, "grant revoked");
    Ok(Json(user))
}

pub fn routes() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/users", get(list).post(create))
        .route("/users/{name}", get(show).delete(delete))
        .route("/users/{name}/grants", post(grant).delete(revoke))
}

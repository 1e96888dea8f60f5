//! Who is calling, and whether they may. Every `/api/v1` request passes [`authenticate`]
//! before its handler: it finds the route's rule (`api::rules`), checks the bearer token
//! (401 otherwise) and the rule's coarse check (403); handlers then check the namespace the
//! request touches with [`Principal::require`]. It also names the caller for the audit log.

mod accounts;
pub mod decide;
mod error;
pub mod jwt;
pub mod passwords;
pub mod roles;
mod sessions;
mod users;

pub use accounts::{Accounts, FIRST_ADMIN, InitialPassword, now};
pub use decide::{Action, Namespaces};
pub use error::AuthError;
pub use roles::{Grant, Role};
pub use sessions::{
    API_TOKEN_DEFAULT, API_TOKEN_MAX, ApiToken, LoginTokens, RecordKind, TokenInfo, TokenRecord,
};
pub use users::check_namespace;
pub use users::{User, UserRecord};

use crate::api::AppState;
use crate::api::audit::AuditSubject;
use crate::api::error::ApiError;
use crate::api::rules::{self, Rule};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// An authenticated caller and the grants its token carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub grants: Vec<Grant>,
    /// The id of the session or API token it presented.
    pub token: String,
}

impl Principal {
    pub fn may(&self, action: Action, namespace: Option<&str>) -> bool {
        decide::may(&self.grants, action, namespace)
    }

    /// 403 unless the caller may do `action` in `namespace` (`None`: all namespaces, or the
    /// installation for actions on no namespace).
    pub fn require(&self, action: Action, namespace: Option<&str>) -> Result<(), ApiError> {
        if self.may(action, namespace) {
            return Ok(());
        }
        let place = match namespace {
            Some(namespace) if action.is_namespaced() => format!("in namespace {namespace:?}"),
            _ if action.is_namespaced() => "in every namespace".to_string(),
            _ => "here".to_string(),
        };
        Err(forbidden(format!(
            "{} may not {} {place}",
            self.name,
            describe(action)
        )))
    }

    /// What a list may show: `namespace` when asked for (403 unless readable), else every
    /// namespace the caller may read.
    pub fn readable(&self, namespace: Option<&str>) -> Result<Namespaces, ApiError> {
        match namespace {
            Some(namespace) => {
                self.require(Action::Read, Some(namespace))?;
                Ok(Namespaces::All)
            }
            None => Ok(self.namespaces(Action::Read)),
        }
    }

    /// The namespaces where the caller may do `action`.
    pub fn namespaces(&self, action: Action) -> Namespaces {
        decide::namespaces_for(&self.grants, action)
    }
}

fn describe(action: Action) -> &'static str {
    match action {
        Action::Read => "read applications and instances",
        Action::Deploy => "change applications",
        Action::Exec => "exec into or forward ports of instances",
        Action::ReplaceInstance => "replace instances",
        Action::ReadInfrastructure => "read clusters and nodes",
        Action::ManageInfrastructure => "cordon, drain or label clusters and nodes",
        Action::ManageMembers => "manage join tokens and cluster certificates",
        Action::ReadAudit => "read the audit log",
        Action::ManageUsers => "manage users",
    }
}

pub fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// A 401 with its `WWW-Authenticate: Bearer` challenge.
pub fn unauthorized(message: impl Into<String>) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"canopy\""),
    );
    response
}

pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let Some(rule) = rules::rule_for(request.method(), &path) else {
        let allowed = rules::methods_for(&path);
        if !allowed.is_empty() {
            // Another method of a known path: what the router would answer, never the handler.
            let mut response = ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} takes {}", path, allowed.join(", ")),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            return response;
        }
        // Deny by default: a route nobody wrote a rule for serves nobody.
        tracing::error!(method = %request.method(), %path, "no authorisation rule for this route");
        return forbidden("no authorisation rule covers this endpoint").into_response();
    };
    if rule == Rule::Public {
        return next.run(request).await;
    }
    let Some(token) = bearer(&request) else {
        return unauthorized(
            "this endpoint needs `Authorization: Bearer <token>` (`canopy login`)",
        );
    };
    let principal = match state.accounts.authenticate(&token, now()).await {
        Ok(principal) => principal,
        Err(AuthError::Unauthenticated(message)) => return unauthorized(message),
        Err(other) => return ApiError::from(other).into_response(),
    };
    if let Some(subject) = request.extensions().get::<AuditSubject>() {
        subject.set(&principal.name);
    }
    let allowed = match rule {
        Rule::Public | Rule::Authenticated => true,
        Rule::Namespaced(action) => decide::may_somewhere(&principal.grants, action),
        Rule::Installation(action) => principal.may(action, None),
    };
    if !allowed {
        let action = match rule {
            Rule::Namespaced(action) | Rule::Installation(action) => describe(action),
            _ => "do this",
        };
        return forbidden(format!("{} may not {action}", principal.name)).into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

fn bearer(request: &Request) -> Option<String> {
    let Some(value) = request.headers().get(header::AUTHORIZATION) else {
        // A browser's WebSocket cannot set the header: it offers the token as a subprotocol.
        return crate::api::exec_ws::subprotocol_token(request.headers());
    };
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The caller the middleware let in, for handlers that take the whole request.
pub fn caller(request: &Request) -> Result<&Principal, ApiError> {
    request.extensions().get::<Principal>().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "no caller identity",
        )
    })
}

/// The one place that decides who may manage members (create join tokens, revoke
/// certificates): admins over every namespace.
pub fn may_manage_members(principal: &Principal) -> Result<(), ApiError> {
    principal.require(Action::ManageMembers, None)
}

//! Who is calling. Every `/api/v1` request passes here before its handler; the security work
//! (users, roles, JWTs) replaces `authenticate` and adds checks on the `Principal` it inserts.

use crate::api::audit::AuditSubject;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
}

/// Until users exist, every caller is `anonymous`; the name also goes to the audit log.
pub async fn authenticate(mut request: Request, next: Next) -> Response {
    let principal = Principal {
        name: "anonymous".to_string(),
    };
    if let Some(subject) = request.extensions().get::<AuditSubject>() {
        subject.set(&principal.name);
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The one place that decides who may manage members (create join tokens, revoke
/// certificates). Today every caller the middleware let in is the local administrator; the
/// users-and-roles work narrows this to the admin role.
pub fn may_manage_members(principal: &Principal) -> Result<(), crate::api::error::ApiError> {
    let _ = principal;
    Ok(())
}

//! Who is calling. Every `/api/v1` request passes here before its handler; the security work
//! (users, roles, JWTs) replaces `authenticate` and adds checks on the `Principal` it inserts.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
}

pub async fn authenticate(mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(Principal {
        name: "local".to_string(),
    });
    next.run(request).await
}

//! What a browser page must not be able to make the API do: requests under a foreign `Host`
//! (DNS rebinding: a page's own domain pointed at the root's address) are refused with 403;
//! mutating requests carrying a foreign `Origin` (or `Sec-Fetch-Site: cross-site`) are refused
//! with 403, and those with a body must declare JSON or YAML (415), which a page cannot send
//! cross-origin without a CORS preflight the API never grants.

use super::error::ApiError;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::IpAddr;
use std::sync::Arc;

/// Content types a descriptor or JSON request body may declare.
pub const BODY_TYPES: [&str; 5] = [
    "application/json",
    "application/yaml",
    "application/x-yaml",
    "text/yaml",
    "text/x-yaml",
];

/// Host names (beyond IP addresses and `localhost`) the API answers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts(pub Vec<String>);

impl AllowedHosts {
    /// Whether a `Host` header value (with or without port) names this API: an IP literal
    /// cannot be rebound, `localhost` resolves locally, other names only when configured.
    pub fn allows(&self, host: &str) -> bool {
        let name = host_name(host);
        if name.parse::<IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        self.0
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }
}

pub fn is_mutating(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// The host part of a `Host` value: `[::1]:7700` → `::1`, `a.b:80` → `a.b`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The decision on one request's headers; `None` lets it through.
pub fn refuse(allowed: &AllowedHosts, method: &Method, headers: &HeaderMap) -> Option<ApiError> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    // HTTP/1.1 always carries Host; HTTP/2 carries :authority, which hyper exposes as Host
    // only on some paths: a request with neither has no name to rebind.
    if let Some(host) = text(header::HOST)
        && !allowed.allows(host)
    {
        return Some(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_host",
            format!(
                "host {:?} is not a name of this API (DNS rebinding guard); use its IP address \
                 or start the root with --allowed-host {}",
                host,
                host_name(host)
            ),
        ));
    }
    if !is_mutating(method) {
        return None;
    }
    if let Some(origin) = text(header::ORIGIN) {
        let same = text(header::HOST).is_some_and(|host| origin_authority(origin) == Some(host));
        if !same {
            return Some(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                format!("cross-origin request from {origin:?} refused"),
            ));
        }
    }
    if text(header::HeaderName::from_static("sec-fetch-site"))
        .is_some_and(|site| site == "cross-site" || site == "same-site")
    {
        return Some(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_origin",
            "cross-site request refused",
        ));
    }
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || text(header::CONTENT_LENGTH).is_some_and(|length| length.trim() != "0");
    if has_body {
        let essence = text(header::CONTENT_TYPE)
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase());
        // `application/*+json` (merge patches) is JSON too, as axum's `Json` reads it.
        let accepted = |e: &str| {
            BODY_TYPES.contains(&e) || (e.starts_with("application/") && e.ends_with("+json"))
        };
        if !essence.as_deref().is_some_and(accepted) {
            return Some(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "content type {} is not accepted; send one of {} (or application/*+json)",
                    essence.map_or("(none)".to_string(), |e| format!("{e:?}")),
                    BODY_TYPES.join(", ")
                ),
            ));
        }
    }
    None
}

/// `http://host:port` → `host:port`.
fn origin_authority(origin: &str) -> Option<&str> {
    let (_, rest) = origin.split_once("://")?;
    Some(rest.trim_end_matches('/'))
}

pub async fn guard(
    State(allowed): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    match refuse(&allowed, request.method(), request.headers()) {
        Some(error) => error.into_response(),
        None => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn status(method: Method, pairs: &[(&'static str, &str)]) -> Option<StatusCode> {
        let allowed = AllowedHosts(vec!["canopy.example".to_string()]);
        refuse(&allowed, &method, &headers(pairs)).map(|e| e.status)
    }

    #[test]
    fn hosts_by_address_localhost_or_configured_name_pass_others_are_refused() {
        for host in [
            "127.0.0.1:7700",
            "[::1]:7700",
            "localhost:7700",
            "canopy.example",
        ] {
            assert_eq!(status(Method::GET, &[("host", host)]), None, "{host}");
        }
        assert_eq!(
            status(Method::GET, &[("host", "evil.example:7700")]),
            Some(StatusCode::FORBIDDEN)
        );
    }

    #[test]
    fn foreign_origins_and_plain_text_bodies_of_mutating_calls_are_refused() {
        let host = ("host", "127.0.0.1:7700");
        let yaml = ("content-type", "application/yaml");
        let body = ("content-length", "10");
        assert_eq!(status(Method::POST, &[host, yaml, body]), None);
        assert_eq!(
            status(
                Method::POST,
                &[host, yaml, body, ("origin", "http://127.0.0.1:7700")]
            ),
            None
        );
        assert_eq!(
            status(
                Method::POST,
                &[host, yaml, body, ("origin", "http://evil.example")]
            ),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status(Method::POST, &[host, ("content-type", "text/plain"), body]),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        assert_eq!(
            status(Method::POST, &[host, body]),
            Some(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        );
        // No body (exec, delete): no content type needed; reads are never judged on origin.
        assert_eq!(status(Method::DELETE, &[host]), None);
        assert_eq!(
            status(Method::GET, &[host, ("origin", "http://evil.example")]),
            None
        );
    }
}

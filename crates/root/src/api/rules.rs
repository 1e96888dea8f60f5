//! The authorisation rule of every `/api/v1` route, next to the router: the middleware
//! (`auth::authenticate`) denies a route without one, and the tests below fail when a route
//! of the OpenAPI document (which another test ties to the router) has none.

use crate::auth::Action::{self, *};
use axum::http::Method;

/// What the middleware checks before the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No credentials needed (logging in).
    Public,
    /// Any valid token; the handler decides the rest (its own tokens, the version).
    Authenticated,
    /// The action in at least one namespace; the handler checks the namespace the request
    /// touches (or narrows a list to the readable ones).
    Namespaced(Action),
    /// The action over the whole installation.
    Installation(Action),
}

use Rule::{Authenticated, Installation, Namespaced, Public};

/// `(method, path as in the OpenAPI document, rule)` for every route under `/api/v1`.
pub const RULES: &[(&str, &str, Rule)] = &[
    ("POST", "/api/v1/login", Public),
    ("POST", "/api/v1/login/refresh", Public),
    ("GET", "/api/v1/version", Authenticated),
    ("GET", "/api/v1/whoami", Authenticated),
    ("POST", "/api/v1/apply", Namespaced(Deploy)),
    ("GET", "/api/v1/applications", Namespaced(Read)),
    ("POST", "/api/v1/applications", Namespaced(Deploy)),
    (
        "GET",
        "/api/v1/applications/{namespace}/{name}",
        Namespaced(Read),
    ),
    (
        "PUT",
        "/api/v1/applications/{namespace}/{name}",
        Namespaced(Deploy),
    ),
    (
        "DELETE",
        "/api/v1/applications/{namespace}/{name}",
        Namespaced(Deploy),
    ),
    (
        "GET",
        "/api/v1/applications/{namespace}/{name}/traffic",
        Namespaced(Read),
    ),
    ("GET", "/api/v1/services", Namespaced(Read)),
    (
        "GET",
        "/api/v1/services/{namespace}/{application}/{name}",
        Namespaced(Read),
    ),
    (
        "POST",
        "/api/v1/services/{namespace}/{application}/{name}/scale",
        Namespaced(Deploy),
    ),
    (
        "GET",
        "/api/v1/services/{namespace}/{application}/{name}/rollout",
        Namespaced(Read),
    ),
    (
        "POST",
        "/api/v1/services/{namespace}/{application}/{name}/rollout/pause",
        Namespaced(Deploy),
    ),
    (
        "POST",
        "/api/v1/services/{namespace}/{application}/{name}/rollout/resume",
        Namespaced(Deploy),
    ),
    (
        "POST",
        "/api/v1/services/{namespace}/{application}/{name}/rollout/undo",
        Namespaced(Deploy),
    ),
    (
        "POST",
        "/api/v1/services/{namespace}/{application}/{name}/runs",
        Namespaced(Deploy),
    ),
    ("GET", "/api/v1/instances", Namespaced(Read)),
    ("GET", "/api/v1/instances/{id}", Namespaced(Read)),
    (
        "DELETE",
        "/api/v1/instances/{id}",
        Namespaced(ReplaceInstance),
    ),
    ("GET", "/api/v1/instances/{id}/logs", Namespaced(Read)),
    ("POST", "/api/v1/instances/{id}/exec", Namespaced(Exec)),
    // The WebSocket variant of exec, for browsers.
    ("GET", "/api/v1/instances/{id}/exec", Namespaced(Exec)),
    (
        "POST",
        "/api/v1/instances/{id}/port-forward",
        Namespaced(Exec),
    ),
    ("GET", "/api/v1/events", Namespaced(Read)),
    ("GET", "/api/v1/clusters", Installation(ReadInfrastructure)),
    (
        "GET",
        "/api/v1/clusters/{name}",
        Installation(ReadInfrastructure),
    ),
    (
        "DELETE",
        "/api/v1/clusters/{name}",
        Installation(ManageMembers),
    ),
    (
        "PATCH",
        "/api/v1/clusters/{name}/labels",
        Installation(ManageInfrastructure),
    ),
    ("GET", "/api/v1/nodes", Installation(ReadInfrastructure)),
    (
        "DELETE",
        "/api/v1/nodes/{cluster}/{name}",
        Installation(ManageMembers),
    ),
    (
        "GET",
        "/api/v1/nodes/{cluster}/{name}",
        Installation(ReadInfrastructure),
    ),
    (
        "POST",
        "/api/v1/nodes/{cluster}/{name}/cordon",
        Installation(ManageInfrastructure),
    ),
    (
        "POST",
        "/api/v1/nodes/{cluster}/{name}/uncordon",
        Installation(ManageInfrastructure),
    ),
    (
        "POST",
        "/api/v1/nodes/{cluster}/{name}/drain",
        Installation(ManageInfrastructure),
    ),
    (
        "PATCH",
        "/api/v1/nodes/{cluster}/{name}/labels",
        Installation(ManageInfrastructure),
    ),
    // Join tokens need ManageMembers, API tokens no more than their creator holds: the
    // handler tells them apart.
    ("POST", "/api/v1/tokens", Authenticated),
    // Everyone lists and revokes their own tokens; user managers everybody's.
    ("GET", "/api/v1/tokens", Authenticated),
    ("DELETE", "/api/v1/tokens/{id}", Authenticated),
    ("GET", "/api/v1/audit", Installation(ReadAudit)),
    // Namespaces are known to every caller by name; marking one trusted is an admin's.
    ("GET", "/api/v1/namespaces", Authenticated),
    ("GET", "/api/v1/namespaces/{name}", Authenticated),
    (
        "PUT",
        "/api/v1/namespaces/{name}",
        Installation(ManageUsers),
    ),
    (
        "DELETE",
        "/api/v1/namespaces/{name}",
        Installation(ManageUsers),
    ),
    // A secret's values are the namespace's developers' (and never readable by anyone).
    (
        "GET",
        "/api/v1/namespaces/{namespace}/secrets",
        Namespaced(Read),
    ),
    (
        "GET",
        "/api/v1/namespaces/{namespace}/secrets/{name}",
        Namespaced(Read),
    ),
    (
        "PUT",
        "/api/v1/namespaces/{namespace}/secrets/{name}",
        Namespaced(Deploy),
    ),
    (
        "DELETE",
        "/api/v1/namespaces/{namespace}/secrets/{name}",
        Namespaced(Deploy),
    ),
    ("GET", "/api/v1/users", Installation(ManageUsers)),
    ("POST", "/api/v1/users", Installation(ManageUsers)),
    ("GET", "/api/v1/users/{name}", Installation(ManageUsers)),
    ("DELETE", "/api/v1/users/{name}", Installation(ManageUsers)),
    (
        "POST",
        "/api/v1/users/{name}/grants",
        Installation(ManageUsers),
    ),
    (
        "DELETE",
        "/api/v1/users/{name}/grants",
        Installation(ManageUsers),
    ),
];

/// Routes outside `/api/v1` that need a token, by their full path. `/metrics` shows no
/// namespace's data (counts, latencies, link traffic), so any role may scrape it, as
/// Kubernetes lets a token with the `/metrics` non-resource grant do.
pub const TOP_LEVEL_RULES: &[(&str, &str, Rule)] =
    &[("GET", "/metrics", Installation(ReadInfrastructure))];

/// The NGSI-LD view (`api::ngsild`), by full path: reading is `Read` somewhere (each
/// caller sees the infrastructure and its namespaces' services and instances); a
/// subscription is its creator's and notifies what it may read; the `@context` document is
/// public, as JSON-LD processors fetch it without credentials.
pub const NGSI_LD_RULES: &[(&str, &str, Rule)] = &[
    ("GET", "/ngsi-ld/v1/entities", Namespaced(Read)),
    ("GET", "/ngsi-ld/v1/entities/{id}", Namespaced(Read)),
    ("GET", "/ngsi-ld/v1/types", Namespaced(Read)),
    ("GET", "/ngsi-ld/v1/jsonldContexts/canopy", Public),
    ("GET", "/ngsi-ld/v1/subscriptions", Namespaced(Read)),
    ("POST", "/ngsi-ld/v1/subscriptions", Namespaced(Read)),
    ("POST", "/ngsi-ld/v1/subscriptions/", Namespaced(Read)),
    ("GET", "/ngsi-ld/v1/subscriptions/{id}", Namespaced(Read)),
    ("DELETE", "/ngsi-ld/v1/subscriptions/{id}", Namespaced(Read)),
];

/// The rules outside `/api/v1`, which are matched by their full path.
fn full_path_rules() -> impl Iterator<Item = &'static (&'static str, &'static str, Rule)> {
    TOP_LEVEL_RULES.iter().chain(NGSI_LD_RULES)
}

/// The rule of a request, by its method and matched route (with or without the `/api/v1`
/// prefix, as the nested router reports it).
pub fn rule_for(method: &Method, matched: &str) -> Option<Rule> {
    if let Some((_, _, rule)) =
        full_path_rules().find(|(m, path, _)| *m == method.as_str() && *path == matched)
    {
        return Some(*rule);
    }
    let full = if matched.starts_with("/api/v1") {
        matched.to_string()
    } else {
        format!("/api/v1{matched}")
    };
    RULES
        .iter()
        .find(|(m, path, _)| *m == method.as_str() && *path == full)
        .map(|(_, _, rule)| *rule)
}

/// The methods that have a rule on `matched` (with or without the prefix).
pub fn methods_for(matched: &str) -> Vec<&'static str> {
    let top: Vec<&'static str> = full_path_rules()
        .filter(|(_, path, _)| *path == matched)
        .map(|(method, _, _)| *method)
        .collect();
    if !top.is_empty() {
        return top;
    }
    let full = if matched.starts_with("/api/v1") {
        matched.to_string()
    } else {
        format!("/api/v1{matched}")
    };
    RULES
        .iter()
        .filter(|(_, path, _)| *path == full)
        .map(|(method, _, _)| *method)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use utoipa::OpenApi;

    /// Every operation of the document under `/api/v1`, as `METHOD path`.
    fn documented() -> BTreeSet<String> {
        let document = serde_json::to_value(super::super::ApiDoc::openapi()).unwrap();
        let mut operations = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            if !path.starts_with("/api/v1") {
                continue;
            }
            for method in item.as_object().unwrap().keys() {
                operations.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
        operations
    }

    #[test]
    fn every_documented_route_has_exactly_one_rule() {
        let ruled: Vec<String> = RULES.iter().map(|(m, p, _)| format!("{m} {p}")).collect();
        let unique: BTreeSet<String> = ruled.iter().cloned().collect();
        assert_eq!(unique.len(), ruled.len(), "a route has two rules");
        let documented = documented();
        let missing: Vec<_> = documented.difference(&unique).collect();
        let stale: Vec<_> = unique.difference(&documented).collect();
        assert!(missing.is_empty(), "routes without a rule: {missing:?}");
        assert!(stale.is_empty(), "rules for no route: {stale:?}");
    }

    #[test]
    fn rules_are_found_with_or_without_the_prefix() {
        assert_eq!(
            rule_for(&Method::GET, "/api/v1/audit"),
            Some(Installation(ReadAudit))
        );
        assert_eq!(
            rule_for(&Method::GET, "/audit"),
            Some(Installation(ReadAudit))
        );
        assert_eq!(rule_for(&Method::POST, "/audit"), None);
        assert_eq!(rule_for(&Method::GET, "/api/v1/nowhere"), None);
        assert_eq!(methods_for("/tokens"), ["POST", "GET"]);
        assert_eq!(
            rule_for(&Method::GET, "/metrics"),
            Some(Installation(ReadInfrastructure))
        );
        assert_eq!(methods_for("/metrics"), ["GET"]);
        assert_eq!(
            rule_for(&Method::GET, "/ngsi-ld/v1/entities"),
            Some(Namespaced(Read))
        );
        assert_eq!(
            rule_for(&Method::GET, "/ngsi-ld/v1/jsonldContexts/canopy"),
            Some(Public)
        );
        assert_eq!(
            methods_for("/ngsi-ld/v1/subscriptions/{id}"),
            ["GET", "DELETE"]
        );
        assert_eq!(rule_for(&Method::PATCH, "/ngsi-ld/v1/entities/{id}"), None);
        assert!(methods_for("/nowhere").is_empty());
    }
}

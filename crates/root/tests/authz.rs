//! The authorisation matrix: every route of the router's own rule table
//! (`canopy_root::api::rules::RULES`) × role × own/other namespace, against the expectations
//! written out here by hand. A route added without a rule fails `rules.rs`' test (the rule
//! table must match the OpenAPI document, which `api.rs` ties to the router); one added with
//! a rule but no expectation here fails this test.

mod harness;

use canopy_root::api::rules::{RULES, Rule};
use harness::{OTHER, OWN, Server, shop};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Who may, by hand: admin, operator (all namespaces), developer of `team-a` asking for
/// `team-a`, the same for `team-b`, viewer of `team-a` asking for `team-a`, for `team-b`.
/// `x` allowed (an answer other than 401 and 403), `-` refused with 403.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "/api/v1/version", "xxxxxx"),
    ("GET", "/api/v1/whoami", "xxxxxx"),
    ("POST", "/api/v1/apply", "x-x---"),
    ("GET", "/api/v1/applications", "xxx-x-"),
    ("POST", "/api/v1/applications", "x-x---"),
    ("GET", "/api/v1/applications/{namespace}/{name}", "xxx-x-"),
    (
        "GET",
        "/api/v1/applications/{namespace}/{name}/traffic",
        "xxx-x-",
    ),
    ("PUT", "/api/v1/applications/{namespace}/{name}", "x-x---"),
    (
        "DELETE",
        "/api/v1/applications/{namespace}/{name}",
        "x-x---",
    ),
    ("GET", "/api/v1/services", "xxx-x-"),
    (
        "GET",
        "/api/v1/services/{namespace}/{application}/{name}",
        "xxx-x-",
    ),
    (
        "POST",
        "/api/v1/services/{namespace}/{application}/{name}/scale",
        "x-x---",
    ),
    (
        "GET",
        "/api/v1/services/{namespace}/{application}/{name}/rollout",
        "xxx-x-",
    ),
    (
        "POST",
        "/api/v1/services/{namespace}/{application}/{name}/rollout/pause",
        "x-x---",
    ),
    (
        "POST",
        "/api/v1/services/{namespace}/{application}/{name}/rollout/resume",
        "x-x---",
    ),
    (
        "POST",
        "/api/v1/services/{namespace}/{application}/{name}/rollout/undo",
        "x-x---",
    ),
    (
        "POST",
        "/api/v1/services/{namespace}/{application}/{name}/runs",
        "x-x---",
    ),
    ("GET", "/api/v1/instances", "xxx-x-"),
    ("GET", "/api/v1/instances/{id}", "xxx-x-"),
    ("DELETE", "/api/v1/instances/{id}", "xxx---"),
    ("GET", "/api/v1/instances/{id}/logs", "xxx-x-"),
    ("POST", "/api/v1/instances/{id}/exec", "x-x---"),
    ("GET", "/api/v1/instances/{id}/exec", "x-x---"),
    ("POST", "/api/v1/instances/{id}/port-forward", "x-x---"),
    ("GET", "/api/v1/events", "xxxxxx"),
    ("GET", "/api/v1/clusters", "xxxxxx"),
    ("GET", "/api/v1/clusters/{name}", "xxxxxx"),
    ("DELETE", "/api/v1/clusters/{name}", "x-----"),
    ("PATCH", "/api/v1/clusters/{name}/labels", "xx----"),
    ("GET", "/api/v1/nodes", "xxxxxx"),
    ("GET", "/api/v1/nodes/{cluster}/{name}", "xxxxxx"),
    ("DELETE", "/api/v1/nodes/{cluster}/{name}", "x-----"),
    ("POST", "/api/v1/nodes/{cluster}/{name}/cordon", "xx----"),
    ("POST", "/api/v1/nodes/{cluster}/{name}/uncordon", "xx----"),
    ("POST", "/api/v1/nodes/{cluster}/{name}/drain", "xx----"),
    ("PATCH", "/api/v1/nodes/{cluster}/{name}/labels", "xx----"),
    ("POST", "/api/v1/tokens", "xxxxxx"),
    ("GET", "/api/v1/tokens", "xxxxxx"),
    ("DELETE", "/api/v1/tokens/{id}", "xxxxxx"),
    ("GET", "/api/v1/audit", "x-----"),
    ("GET", "/api/v1/namespaces", "xxxxxx"),
    ("GET", "/api/v1/namespaces/{name}", "xxxxxx"),
    ("PUT", "/api/v1/namespaces/{name}", "x-----"),
    ("DELETE", "/api/v1/namespaces/{name}", "x-----"),
    ("GET", "/api/v1/namespaces/{namespace}/secrets", "xxx-x-"),
    (
        "GET",
        "/api/v1/namespaces/{namespace}/secrets/{name}",
        "xxx-x-",
    ),
    (
        "PUT",
        "/api/v1/namespaces/{namespace}/secrets/{name}",
        "x-x---",
    ),
    (
        "DELETE",
        "/api/v1/namespaces/{namespace}/secrets/{name}",
        "x-x---",
    ),
    ("GET", "/api/v1/users", "x-----"),
    ("POST", "/api/v1/users", "x-----"),
    ("GET", "/api/v1/users/{name}", "x-----"),
    ("DELETE", "/api/v1/users/{name}", "x-----"),
    ("POST", "/api/v1/users/{name}/grants", "x-----"),
    ("DELETE", "/api/v1/users/{name}/grants", "x-----"),
];

/// The concrete request for a route asked about `namespace`: path, content type and body.
fn request(
    path: &str,
    namespace: &str,
    instance: &str,
) -> (String, Option<(&'static str, String)>) {
    let json = |value: Value| Some(("application/json", value.to_string()));
    let concrete = path
        .replace(
            "{namespace}/{application}/{name}",
            &format!("{namespace}/shop/web"),
        )
        .replace("{namespace}/{name}", &format!("{namespace}/shop"))
        .replace("/instances/{id}", &format!("/instances/{instance}"))
        .replace("/tokens/{id}", "/tokens/no-such-token")
        .replace("{cluster}/{name}", "c1/n1")
        .replace("/clusters/{name}", "/clusters/c1")
        .replace("/users/{name}", "/users/nobody")
        .replace(
            "/namespaces/{namespace}/secrets",
            &format!("/namespaces/{namespace}/secrets"),
        )
        .replace("/secrets/{name}", "/secrets/regcred")
        .replace("/namespaces/{name}", "/namespaces/made-here");
    assert!(
        !concrete.contains('{'),
        "no value for a parameter of {path}"
    );
    let listing = [
        "/api/v1/applications",
        "/api/v1/services",
        "/api/v1/instances",
    ];
    let concrete = if listing.contains(&concrete.as_str()) {
        format!("{concrete}?namespace={namespace}")
    } else if concrete.ends_with("/users/nobody/grants") {
        format!("{concrete}?role=viewer")
    } else {
        concrete
    };
    let body = match path {
        "/api/v1/apply" | "/api/v1/applications/{namespace}/{name}" => {
            Some(("application/yaml", shop(namespace)))
        }
        "/api/v1/applications" => Some((
            "application/yaml",
            shop(namespace).replace("name: shop", "name: extra"),
        )),
        p if p.ends_with("/scale") => json(json!({"replicas": 1})),
        p if p.ends_with("/rollout/undo") => json(json!({})),
        p if p.ends_with("/runs") => json(json!({"args": ["x"]})),
        p if p.ends_with("/labels") => json(json!({"labels": {"tier": "edge"}})),
        "/api/v1/tokens" => json(json!({"role": "viewer", "namespace": OWN})),
        "/api/v1/users" => json(json!({"name": "made-here", "password": "made-here-password"})),
        "/api/v1/users/{name}/grants" => json(json!({"role": "viewer"})),
        "/api/v1/namespaces/{name}" => json(json!({"trusted": false})),
        "/api/v1/namespaces/{namespace}/secrets/{name}" => {
            json(json!({"data": {"password": "made-here"}}))
        }
        _ => None,
    };
    (concrete, body)
}

#[tokio::test]
async fn every_route_by_role_and_namespace() {
    let server = Server::start().await;
    let operator = server.user_with("op", json!({"role": "operator"})).await;
    let developer = server
        .user_with("dev", json!({"role": "developer", "namespace": OWN}))
        .await;
    let viewer = server
        .user_with("view", json!({"role": "viewer", "namespace": OWN}))
        .await;
    let callers = [
        ("admin", server.admin.clone(), OWN),
        ("operator", operator, OWN),
        ("developer/own", developer.clone(), OWN),
        ("developer/other", developer, OTHER),
        ("viewer/own", viewer.clone(), OWN),
        ("viewer/other", viewer, OTHER),
    ];
    let mut checked = 0;
    for (method, path, rule) in RULES {
        if *rule == Rule::Public {
            continue;
        }
        let expected = EXPECTED
            .iter()
            .find(|(m, p, _)| m == method && p == path)
            .map(|(_, _, e)| e.as_bytes())
            .unwrap_or_else(|| panic!("no expectation for {method} {path}: add it to EXPECTED"));
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        for (column, (who, token, namespace)) in callers.iter().enumerate() {
            // Each request finds both applications and their instances in place.
            server.apply_shop(OWN).await;
            server.apply_shop(OTHER).await;
            let instance = server.instance_in(namespace).await;
            let (concrete, body) = request(path, namespace, &instance);
            if column == 0 {
                let anonymous = server
                    .send(method.clone(), &concrete, None, body.clone())
                    .await;
                assert_eq!(
                    anonymous.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} without a token"
                );
                assert!(anonymous.headers().get("www-authenticate").is_some());
                let error: Value = anonymous.json().await.unwrap();
                assert_eq!(error["code"], "unauthenticated", "{error}");
                let forged = server
                    .send(
                        method.clone(),
                        &concrete,
                        Some("e30.e30.AAAA"),
                        body.clone(),
                    )
                    .await;
                assert_eq!(
                    forged.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} forged"
                );
            }
            let response = server
                .send(method.clone(), &concrete, Some(token.as_str()), body)
                .await;
            let status = response.status();
            // An event stream never ends: its status says enough.
            let streaming = response
                .headers()
                .get("content-type")
                .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"));
            let text = if streaming {
                String::new()
            } else {
                response.text().await.unwrap_or_default()
            };
            if expected[column] == b'x' {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{who}: {method} {concrete} must be allowed, got {status}: {text}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{who}: {method} {concrete}: {text}"
                );
                let error: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(error["code"], "forbidden", "{error}");
            }
            checked += 1;
        }
    }
    assert_eq!(
        EXPECTED.len(),
        RULES.len() - 2,
        "an expectation for a route that is gone"
    );
    assert_eq!(checked, EXPECTED.len() * callers.len());
}

/// Join tokens are for admins, even though `POST /tokens` lets everyone make API tokens.
#[tokio::test]
async fn only_admins_make_join_tokens_and_nobody_more_than_they_hold() {
    let server = Server::start().await;
    let developer = server
        .user_with("dev", json!({"role": "developer", "namespace": OWN}))
        .await;
    let join = json!({"join": "cluster"});
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(server.admin.as_str()),
            Some(join.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(developer.as_str()),
            Some(join),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for wider in [
        json!({"role": "developer", "namespace": OTHER}),
        json!({"role": "viewer"}),
        json!({"role": "operator"}),
        json!({"role": "admin"}),
    ] {
        let (status, body) = server
            .call(
                Method::POST,
                "/api/v1/tokens",
                Some(developer.as_str()),
                Some(wider.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{wider}: {body}");
    }
}

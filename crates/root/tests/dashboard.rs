//! The dashboard's server side over real HTTP: its files without credentials and under a
//! strict Content-Security-Policy, `whoami`, and exec's WebSocket variant taking its token
//! as a subprotocol (the browser test, `crates/canopy/tests/dashboard.rs`, runs a command
//! through it end to end).

mod harness;

use harness::Server;
use reqwest::{Method, StatusCode};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, http::HeaderValue};

#[tokio::test]
async fn the_page_and_its_modules_are_served_without_credentials_under_a_strict_policy() {
    let server = Server::start().await;
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/style.css", "text/css; charset=utf-8"),
    ] {
        let response = server.send(Method::GET, path, None, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert_eq!(headers["content-type"], content_type, "{path}");
        let policy = headers["content-security-policy"].to_str().unwrap();
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(!policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["cache-control"], "no-cache");
        assert!(headers.contains_key("etag"));
    }
    let page = server
        .send(Method::GET, "/", None, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"<script type="module" src="/ui/app.js">"#));
    // No inline script or style for the policy to refuse.
    assert!(!page.contains("<script>") && !page.contains("style="));

    let missing = server.send(Method::GET, "/ui/nope.js", None, None).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn whoami_tells_a_caller_what_its_grants_allow() {
    let server = Server::start().await;
    let (status, _) = server.call(Method::GET, "/api/v1/whoami", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, admin) = server
        .call(Method::GET, "/api/v1/whoami", Some(&server.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{admin}");
    assert_eq!(admin["user"], "admin");
    assert_eq!(admin["namespaced"]["deploy"], serde_json::json!(["*"]));
    assert!(
        admin["installation"]
            .as_array()
            .unwrap()
            .contains(&"manageUsers".into())
    );
    let viewer = server
        .user_with(
            "ann",
            serde_json::json!({"role": "viewer", "namespace": harness::OWN}),
        )
        .await;
    let (_, who) = server
        .call(Method::GET, "/api/v1/whoami", Some(&viewer), None)
        .await;
    assert_eq!(who["user"], "ann");
    assert_eq!(who["namespaced"]["read"], serde_json::json!([harness::OWN]));
    assert_eq!(who["namespaced"]["deploy"], serde_json::json!([]));
    assert_eq!(
        who["installation"],
        serde_json::json!(["readInfrastructure"])
    );
}

/// The HTTP status a WebSocket handshake to `path` gets, offering `protocols`.
async fn handshake(server: &Server, path: &str, protocols: &str) -> StatusCode {
    let url = server.url(path).replacen("http://", "ws://", 1);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_str(protocols).unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => StatusCode::from_u16(response.status().as_u16()).unwrap(),
        Err(tungstenite::Error::Http(response)) => {
            StatusCode::from_u16(response.status().as_u16()).unwrap()
        }
        Err(other) => panic!("handshake to {path}: {other}"),
    }
}

#[tokio::test]
async fn exec_over_a_websocket_takes_the_token_as_a_subprotocol() {
    let server = Server::start().await;
    server.apply_shop(harness::OWN).await;
    let id = server.instance_in(harness::OWN).await;
    let path = format!("/api/v1/instances/{id}/exec?command=true");
    // No token: refused before anything else.
    assert_eq!(
        handshake(&server, &path, "canopy.exec").await,
        StatusCode::UNAUTHORIZED
    );
    let bad = "canopy.exec, canopy.bearer.not-a-token";
    assert_eq!(
        handshake(&server, &path, bad).await,
        StatusCode::UNAUTHORIZED
    );
    // The admin's token is accepted; the instance is not placed on a node (this root has
    // no cluster), which is the answer, with no upgrade.
    let offered = format!("canopy.exec, canopy.bearer.{}", server.admin);
    assert_eq!(
        handshake(&server, &path, &offered).await,
        StatusCode::CONFLICT
    );
    let unknown = "/api/v1/instances/no-such-instance/exec?command=true";
    assert_eq!(
        handshake(&server, unknown, &offered).await,
        StatusCode::NOT_FOUND
    );
    // A viewer may not exec: 403 before any upgrade.
    let viewer = server
        .user_with(
            "vic",
            serde_json::json!({"role": "viewer", "namespace": harness::OWN}),
        )
        .await;
    let offered = format!("canopy.exec, canopy.bearer.{viewer}");
    assert_eq!(
        handshake(&server, &path, &offered).await,
        StatusCode::FORBIDDEN
    );
    // A plain GET (no handshake) with a command is told what the endpoint needs.
    let (status, body) = server
        .call(Method::GET, &path, Some(&server.admin), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("WebSocket"),
        "{body}"
    );
}

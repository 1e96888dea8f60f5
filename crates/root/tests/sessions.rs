//! Logging in, refreshing, expiry and revocation over real HTTP; what a developer's event
//! stream shows; and that no password or hash ever comes back.

mod harness;

use futures::StreamExt;
use harness::{OTHER, OWN, Server};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const VERSION: &str = "/api/v1/version";

async fn status(server: &Server, token: &str) -> StatusCode {
    server.call(Method::GET, VERSION, Some(token), None).await.0
}

#[tokio::test]
async fn health_and_the_document_need_no_token() {
    let server = Server::start().await;
    for path in ["/healthz", "/readyz", "/openapi.json"] {
        let (status, _) = server.call(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[tokio::test]
async fn a_login_refreshes_until_its_session_is_revoked() {
    let server = Server::start().await;
    server.user_with("ada", json!({"role": "viewer"})).await;
    let tokens = server.login("ada", "ada-password").await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(status(&server, access).await, StatusCode::OK);
    // A refresh token is no access token.
    assert_eq!(status(&server, refresh).await, StatusCode::UNAUTHORIZED);
    let (code, renewed) = server
        .call(
            Method::POST,
            "/api/v1/login/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{renewed}");
    let renewed_access = renewed["access_token"].as_str().unwrap();
    assert_eq!(status(&server, renewed_access).await, StatusCode::OK);
    let (code, _) = server
        .call(
            Method::POST,
            "/api/v1/login/refresh",
            None,
            Some(json!({"refresh_token": access})),
        )
        .await;
    assert_eq!(
        code,
        StatusCode::UNAUTHORIZED,
        "an access token refreshes nothing"
    );

    // Wrong password and unknown user: the same 401, with its challenge.
    for (user, password) in [("ada", "not-her-password"), ("nobody", "ada-password")] {
        let response = server
            .send(
                Method::POST,
                "/api/v1/login",
                None,
                Some((
                    "application/json",
                    json!({"user": user, "password": password}).to_string(),
                )),
            )
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get("www-authenticate").is_some());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["message"], "wrong user name or password");
    }

    // Ending the session (her own token list shows it) ends both tokens and the refresh.
    let session = tokens["session"].as_str().unwrap();
    let (code, listed) = server
        .call(Method::GET, "/api/v1/tokens", Some(access), None)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["user"] == "ada"),
        "{listed}"
    );
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == session),
        "{listed}"
    );
    let (code, _) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{session}"),
            Some(access),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(status(&server, access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(&server, renewed_access).await,
        StatusCode::UNAUTHORIZED
    );
    let (code, _) = server
        .call(
            Method::POST,
            "/api/v1/login/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_api_token_works_until_it_expires() {
    let server = Server::start().await;
    let request = json!({"role": "viewer", "namespace": OWN, "ttl_seconds": 1});
    let (code, created) = server
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(server.admin.as_str()),
            Some(request),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap();
    assert_eq!(
        created["grant"],
        json!({"role": "viewer", "namespace": OWN})
    );
    let apps = format!("/api/v1/applications?namespace={OWN}");
    assert_eq!(
        server.call(Method::GET, &apps, Some(token), None).await.0,
        StatusCode::OK
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (code, body) = server.call(Method::GET, &apps, Some(token), None).await;
        if code == StatusCode::UNAUTHORIZED {
            assert!(
                body["message"].as_str().unwrap().contains("expired"),
                "{body}"
            );
            break;
        }
        assert_eq!(code, StatusCode::OK);
        assert!(
            Instant::now() < deadline,
            "the 1 s token still works after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn deleting_a_user_ends_its_tokens_also_for_a_new_user_of_that_name() {
    let server = Server::start().await;
    let access = server
        .user_with("bob", json!({"role": "developer", "namespace": OWN}))
        .await;
    let (_, created) = server
        .call(
            Method::POST,
            "/api/v1/tokens",
            Some(access.as_str()),
            Some(json!({"role": "viewer", "namespace": OWN})),
        )
        .await;
    let api = created["token"].as_str().unwrap().to_string();
    assert_eq!(status(&server, &api).await, StatusCode::OK);
    let (code, _) = server
        .call(
            Method::DELETE,
            "/api/v1/users/bob",
            Some(server.admin.as_str()),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(status(&server, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&server, &api).await, StatusCode::UNAUTHORIZED);
    server
        .user_with("bob", json!({"role": "developer", "namespace": OWN}))
        .await;
    assert_eq!(status(&server, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&server, &api).await, StatusCode::UNAUTHORIZED);
    // The last admin stays.
    let (code, body) = server
        .call(
            Method::DELETE,
            "/api/v1/users/admin",
            Some(server.admin.as_str()),
            None,
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn a_developer_s_event_stream_shows_only_its_namespaces() {
    let server = Server::start().await;
    let developer = server
        .user_with("dev", json!({"role": "developer", "namespace": OWN}))
        .await;
    let response = server
        .send(
            Method::GET,
            "/api/v1/events",
            Some(developer.as_str()),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.bytes_stream();
    // The other namespace's change comes first: had it passed, it would be in the text read
    // before the own namespace's.
    server.apply_shop(OTHER).await;
    server.apply_shop(OWN).await;
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(&format!("\"namespace\":\"{OWN}\"")) {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.next())
            .await
            .expect("the own namespace's events within 10 s")
            .expect("the stream stays open")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(!seen.contains(OTHER), "{seen}");
}

#[tokio::test]
async fn no_password_or_hash_ever_comes_back() {
    let server = Server::start().await;
    server.user_with("eve", json!({"role": "viewer"})).await;
    for path in [
        "/api/v1/users",
        "/api/v1/users/eve",
        "/api/v1/tokens",
        "/api/v1/audit",
    ] {
        let (code, body) = server
            .call(Method::GET, path, Some(server.admin.as_str()), None)
            .await;
        assert_eq!(code, StatusCode::OK, "{path}");
        let text = body.to_string();
        assert!(
            !text.contains("eve-password") && !text.contains("argon2"),
            "{path}: {text}"
        );
    }
}

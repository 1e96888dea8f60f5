//! The root's `/metrics` over real HTTP: refused without a token, served in the Prometheus
//! text format to a viewer, and moving when an application is applied (no cluster yet:
//! its instances wait, and each pass counts a failed attempt).

mod harness;

use canopy_tier::metrics::sample_value;
use harness::{OWN, Server};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::time::{Duration, Instant};

async fn scrape(server: &Server, token: Option<&str>) -> (StatusCode, String, String) {
    let response = server.send(Method::GET, "/metrics", token, None).await;
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn metrics_need_a_token_of_any_role_and_count_pending_instances() {
    let server = Server::start().await;
    let (status, _, body) = scrape(&server, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, _) = scrape(&server, Some("not-a-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let viewer = server
        .user_with("vic", json!({"role": "viewer", "namespace": OWN}))
        .await;
    let (status, content_type, text) = scrape(&server, Some(&viewer)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert_eq!(
        sample_value(&text, "canopy_root_instances", &[("state", "Pending")]),
        Some(0.0),
        "{text}"
    );
    let posted = server
        .send(Method::POST, "/metrics", Some(&viewer), None)
        .await;
    let status = posted.status();
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    server.apply_shop(OWN).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, _, text) = scrape(&server, Some(&viewer)).await;
        let pending = sample_value(&text, "canopy_root_instances", &[("state", "Pending")]);
        let failures = sample_value(
            &text,
            "canopy_root_scheduling_failures_total",
            &[("reason", "no candidates")],
        );
        if pending == Some(1.0) && failures.is_some_and(|f| f >= 1.0) {
            let attempts = sample_value(&text, "canopy_root_scheduling_attempts_total", &[]);
            assert!(attempts >= failures, "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no pending instance counted: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

//! Secrets through the root's REST API over real HTTP, over a real redb file: values go in,
//! never come out (answers, events, the store file), descriptors name secrets, and an
//! instance whose secret is missing says so.

use canopy_root::Root;
use canopy_store::RedbStore;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const PASSWORD: &str = "s3cret-Pa55word-9f1";

struct Server {
    base: String,
    http: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(dir: &std::path::Path) -> Server {
        let store = RedbStore::open(dir.join("root.redb")).expect("store");
        let key = canopy_tier::sealing::SealingKey::load_or_create(dir).expect("key");
        let root = Root::open_sealed(Arc::new(store), canopy_root::Timing::default(), key)
            .await
            .expect("root");
        // Its workloads are `process` ones, which only a trusted namespace may run.
        root.trust_namespace("default").await.expect("trust");
        let token = root
            .local_admin_session()
            .await
            .expect("a session")
            .access_token;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = root
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await;
        });
        let _ = rustls::crypto::ring::default_provider().install_default();
        Server {
            base,
            http: reqwest::Client::builder()
                .default_headers(reqwest::header::HeaderMap::from_iter([(
                    reqwest::header::AUTHORIZATION,
                    format!("Bearer {token}").parse().unwrap(),
                )]))
                .build()
                .unwrap(),
            stop,
            task,
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

fn app(service: Value) -> Value {
    json!({"apiVersion": "canopy.dev/v1", "kind": "Application",
        "metadata": {"name": "private"}, "spec": {"services": [service]}})
}

fn detail_paths(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| d["path"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn secret_values_go_in_and_never_come_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path()).await;
    let events = server
        .http
        .get(format!("{}/api/v1/events", server.base))
        .send()
        .await
        .expect("events");
    let mut events = Box::pin(events.bytes_stream());
    let mut answers = Vec::new();

    let path = "/api/v1/namespaces/default/secrets/regcred";
    let secret =
        json!({"data": {"username": "robot", "password": PASSWORD}, "labels": {"team": "a"}});
    let (status, body) = server
        .call(reqwest::Method::PUT, path, Some(secret.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["keys"], json!(["password", "username"]));
    answers.push(body);
    let (status, body) = server.call(reqwest::Method::PUT, path, Some(secret)).await;
    assert_eq!(status, StatusCode::OK, "a second put replaces: {body}");
    answers.push(body);
    for read in [path, "/api/v1/namespaces/default/secrets"] {
        let (status, body) = server.call(reqwest::Method::GET, read, None).await;
        assert_eq!(status, StatusCode::OK, "{read}: {body}");
        answers.push(body);
    }
    assert_eq!(answers[3][0]["name"], "regcred");

    let service = json!({"name": "web", "runtime": "container",
        "image": "127.0.0.1:1/private/web:1", "imagePullSecret": "regcred",
        "secretEnv": {"TOKEN": {"name": "regcred", "key": "password"}}});
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/applications",
            Some(app(service)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["spec"]["services"][0]["imagePullSecret"], "regcred");
    answers.push(body);
    for read in [
        "/api/v1/applications/default/private",
        "/api/v1/services",
        "/api/v1/instances",
    ] {
        let (status, body) = server.call(reqwest::Method::GET, read, None).await;
        assert_eq!(status, StatusCode::OK, "{read}");
        answers.push(body);
    }
    let (status, body) = server.call(reqwest::Method::DELETE, path, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    answers.push(body);
    for answer in &answers {
        let text = answer.to_string();
        assert!(
            !text.contains(PASSWORD),
            "an answer carried the value: {text}"
        );
    }
    let (status, _) = server.call(reqwest::Method::GET, path, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The application's events arrived (so would a secret's value, if any were streamed).
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains("imagePullSecret") {
        let chunk = tokio::time::timeout_at(deadline, events.next())
            .await
            .expect("the application's event within 10 s")
            .expect("stream open")
            .expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        !text.contains(PASSWORD),
        "an event carried the value: {text}"
    );
    server.stop().await;

    let store = std::fs::read(dir.path().join("root.redb")).expect("store file");
    let hits = store
        .windows(PASSWORD.len())
        .filter(|w| *w == PASSWORD.as_bytes())
        .count();
    assert_eq!(hits, 0, "the store file holds the value in the clear");
}

#[tokio::test]
async fn bad_secrets_and_references_name_their_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path()).await;
    let (status, body) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/namespaces/default/secrets/Bad_Name",
            Some(json!({"data": {"a/b": "v"}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(detail_paths(&body), ["metadata.name", "data[\"a/b\"]"]);

    // Inline credentials (the old shape) are refused: a descriptor names a secret.
    let inline = json!({"name": "web", "runtime": "container", "image": "reg/x:1",
        "imagePullSecret": {"username": "robot", "password": PASSWORD}});
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/applications",
            Some(app(inline)),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(!body.to_string().contains(PASSWORD), "{body}");

    let bad_ref = json!({"name": "web", "runtime": "process", "command": ["/bin/true"],
        "secretEnv": {"TOKEN": {"name": "api", "key": "../k"}}});
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/applications",
            Some(app(bad_ref)),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        detail_paths(&body),
        ["spec.services[0].secretEnv.TOKEN.key"]
    );
    server.stop().await;
}

#[tokio::test]
async fn an_instance_whose_secret_is_missing_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path()).await;
    let service = json!({"name": "web", "runtime": "process", "command": ["/bin/true"],
        "secretEnv": {"TOKEN": {"name": "api", "key": "token"}}});
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/applications",
            Some(app(service)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let expected = "secretEnv.TOKEN: secret \"api\" not found in namespace \"default\"";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = server
            .call(reqwest::Method::GET, "/api/v1/instances", None)
            .await;
        let reason = body[0]["reason"].as_str().unwrap_or_default().to_string();
        if reason == expected {
            assert_eq!(body[0]["state"], "Pending", "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reason never said so: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A key the secret lacks is named too.
    let (status, _) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/namespaces/default/secrets/api",
            Some(json!({"data": {"other": "x"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let expected = "secretEnv.TOKEN: secret \"api\" has no key \"token\"";
    loop {
        let (_, body) = server
            .call(reqwest::Method::GET, "/api/v1/instances", None)
            .await;
        if body[0]["reason"] == expected {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reason never said so: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

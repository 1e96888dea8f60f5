//! A real root on a random loopback port over a redb file, and callers of each role with
//! tokens got the way users get them (`POST /api/v1/login`).

#![allow(dead_code)]

use canopy_root::Root;
use canopy_store::RedbStore;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::sync::Arc;

pub const OWN: &str = "team-a";
pub const OTHER: &str = "team-b";

pub struct Server {
    pub base: String,
    pub http: reqwest::Client,
    pub admin: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path().join("root.redb")).unwrap();
        // The matrix sends hundreds of requests from one client: past the rate limits
        // (tested in `hardening.rs`), which would answer 429 instead of the rule's answer.
        let unlimited = canopy_root::api::rate_limit::Rate {
            per_second: 1e6,
            burst: 1_000_000,
        };
        let root = Root::open(Arc::new(store), canopy_root::Timing::default())
            .await
            .unwrap()
            .with_api_config(canopy_root::api::ApiConfig {
                rate_limits: canopy_root::api::rate_limit::RateLimits {
                    requests: unlimited,
                    mutations: unlimited,
                },
                ..Default::default()
            });
        // The matrix deploys `process` workloads, which only a trusted namespace may.
        for namespace in [OWN, OTHER] {
            root.trust_namespace(namespace).await.unwrap();
        }
        let password = root.initial_admin_password().unwrap().to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            root.serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut server = Server {
            base,
            http: reqwest::Client::new(),
            admin: String::new(),
            _stop: stop,
            _dir: dir,
        };
        server.admin = server.login("admin", &password).await["access_token"]
            .as_str()
            .unwrap()
            .to_string();
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn login(&self, user: &str, password: &str) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/login",
                None,
                Some(json!({"user": user, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login of {user}: {body}");
        body
    }

    /// A request with `token` (none: no Authorization header) and a JSON body; the status
    /// and the body (Null when not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let response = self
            .send(
                method,
                path,
                token,
                body.map(|b| ("application/json", b.to_string())),
            )
            .await;
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, String)>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some((content_type, body)) = body {
            request = request.header("content-type", content_type).body(body);
        }
        request.send().await.unwrap()
    }

    /// Creates `name` with `grant` (`{"role": ..., "namespace": ...}`) and logs it in: its
    /// access token.
    pub async fn user_with(&self, name: &str, grant: Value) -> String {
        let password = format!("{name}-password");
        let admin = Some(self.admin.as_str());
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/users",
                admin,
                Some(json!({"name": name, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let path = format!("/api/v1/users/{name}/grants");
        let (status, body) = self.call(Method::POST, &path, admin, Some(grant)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        self.login(name, &password).await["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Applies application `shop` (one process service `web`, one replica) in `namespace`
    /// as the admin.
    pub async fn apply_shop(&self, namespace: &str) {
        let response = self
            .send(
                Method::POST,
                "/api/v1/apply",
                Some(self.admin.as_str()),
                Some(("application/yaml", shop(namespace))),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "{}",
            response.text().await.unwrap()
        );
    }

    /// The id of an instance of `shop` in `namespace`.
    pub async fn instance_in(&self, namespace: &str) -> String {
        let path = format!("/api/v1/instances?namespace={namespace}");
        let (status, body) = self
            .call(Method::GET, &path, Some(self.admin.as_str()), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array()
            .and_then(|all| all.first())
            .and_then(|i| i["id"].as_str())
            .unwrap_or_else(|| panic!("no live instance in {namespace}: {body}"))
            .to_string()
    }
}

pub fn shop(namespace: &str) -> String {
    format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: shop, namespace: {namespace}}}\nspec:\n  services:\n    - {{name: web, runtime: process, command: [/bin/sleep, '600'], replicas: 1}}\n"
    )
}

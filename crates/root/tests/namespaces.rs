//! Namespaces through the real API of a root on a real store: what exists at first start,
//! trust, deletion, and the privilege check at apply time (each refused field named).

use canopy_root::Root;
use canopy_store::RedbStore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

struct Server {
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("root.redb")).unwrap();
    let root = Root::open(Arc::new(store), canopy_root::Timing::default())
        .await
        .unwrap();
    let token = root.local_admin_session().await.unwrap().access_token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { root.serve(listener, std::future::pending()).await });
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
        _dir: dir,
    }
}

impl Server {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn apply(&self, app: &Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, "/api/v1/apply", Some(app.clone()))
            .await
    }

    async fn trust(&self, namespace: &str, trusted: bool) -> (StatusCode, Value) {
        let path = format!("/api/v1/namespaces/{namespace}");
        self.send(
            reqwest::Method::PUT,
            &path,
            Some(json!({"trusted": trusted})),
        )
        .await
    }
}

/// What a developer writes to get a node's root: each field is one way out of a container.
fn escaping(namespace: &str) -> Value {
    json!({
        "metadata": {"name": "tools", "namespace": namespace},
        "spec": {"services": [
            {"name": "shell", "runtime": "container", "image": "busybox",
             "securityContext": {"runAsUser": 0, "privileged": true,
                "capabilities": {"add": ["SYS_ADMIN"]}}},
            {"name": "job", "runtime": "process", "command": ["/bin/sh", "-c", "id"]},
        ]},
    })
}

fn paths(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_new_root_has_an_untrusted_default_namespace() {
    let server = start().await;
    let (status, list) = server
        .send(reqwest::Method::GET, "/api/v1/namespaces", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["name"], "default");
    assert_eq!(list[0]["trusted"], false);
}

#[tokio::test]
async fn an_untrusted_namespace_refuses_each_escape_with_its_field_and_a_trusted_one_accepts() {
    let server = start().await;
    let (status, body) = server.apply(&escaping("default")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "forbidden");
    assert_eq!(
        paths(&body),
        [
            "spec.services[0].securityContext.runAsUser",
            "spec.services[0].securityContext.privileged",
            "spec.services[0].securityContext.capabilities.add[0]",
            "spec.services[1].runtime",
        ]
    );
    for detail in body["details"].as_array().unwrap() {
        let reason = detail["reason"].as_str().unwrap();
        assert!(
            reason.contains("namespace default is not trusted"),
            "{reason}"
        );
    }
    // Nothing was written, and a dry run is refused the same way.
    let (status, _) = server
        .send(
            reqwest::Method::GET,
            "/api/v1/applications/default/tools",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .send(
            reqwest::Method::POST,
            "/api/v1/apply?dryRun=true",
            Some(escaping("default")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, marked) = server.trust("default", true).await;
    assert_eq!(status, StatusCode::OK, "{marked}");
    assert_eq!(marked["trusted"], true);
    let (status, body) = server.apply(&escaping("default")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applications"][0]["action"], "created");
}

#[tokio::test]
async fn an_unprivileged_container_runs_in_any_namespace() {
    let server = start().await;
    let app = json!({
        "metadata": {"name": "web"},
        "spec": {"services": [{"name": "web", "runtime": "container", "image": "busybox",
            "securityContext": {"runAsUser": 1000, "capabilities": {"add": ["NET_BIND_SERVICE"]}}}]},
    });
    let (status, body) = server.apply(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_namespace_nobody_created_is_not_found() {
    let server = start().await;
    let mut app = escaping("nowhere");
    app["spec"]["services"] = json!([{"name": "web", "runtime": "container", "image": "busybox"}]);
    let (status, body) = server.apply(&app).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("nowhere"),
        "{body}"
    );

    let (status, created) = server.trust("nowhere", false).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, body) = server.apply(&app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_namespace_is_deleted_only_when_empty_and_default_never() {
    let server = start().await;
    let delete = |name: &'static str| {
        let server = &server;
        async move {
            server
                .send(
                    reqwest::Method::DELETE,
                    &format!("/api/v1/namespaces/{name}"),
                    None,
                )
                .await
        }
    };
    let (status, _) = delete("default").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(server.trust("team-a", false).await.0, StatusCode::CREATED);
    let app = json!({"metadata": {"name": "web", "namespace": "team-a"},
        "spec": {"services": [{"name": "web", "runtime": "container", "image": "busybox"}]}});
    assert_eq!(server.apply(&app).await.0, StatusCode::OK);
    let (status, body) = delete("team-a").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("application"),
        "{body}"
    );
    let (status, _) = server
        .send(
            reqwest::Method::DELETE,
            "/api/v1/applications/team-a/web",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, gone) = delete("team-a").await;
    assert_eq!(status, StatusCode::OK, "{gone}");
    assert_eq!(gone["name"], "team-a");
    assert_eq!(delete("team-a").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_namespace_name_must_be_a_dns_label() {
    let server = start().await;
    let (status, body) = server.trust("Not_A_Label", true).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = server
        .send(
            reqwest::Method::PUT,
            "/api/v1/namespaces/ok",
            Some(json!({"trusted": "yes"})),
        )
        .await;
    assert!(status.is_client_error(), "{status}");
}

fn sized(name: &str, replicas: u32) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"services": [
            {"name": "web", "runtime": "container", "image": "busybox", "replicas": replicas,
             "resources": {"cpu": "500m", "memory": "256Mi"}},
        ]},
    })
}

#[tokio::test]
async fn a_quota_refuses_what_would_exceed_it_with_the_numbers_and_scaling_down_always_passes() {
    let server = start().await;
    let (status, made) = server
        .send(
            reqwest::Method::PUT,
            "/api/v1/namespaces/team",
            Some(json!({"quota": {"cpu": "2", "memory": "1Gi", "instances": 4}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["quota"]["instances"], 4, "{made}");

    // 1500m, 768Mi, 3 instances: fits.
    let (status, body) = server.apply(&sized("one", 3)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Another 1000m / 512Mi / 2 would make 2500m, 1280Mi, 5: three resources over.
    let (status, body) = server.apply(&sized("two", 2)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let reasons: Vec<&str> = body["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(
        reasons[0].contains(
            "cpu quota: requests 1000m, 1500m in use by its other applications, quota 2000m"
        ),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("memory quota"), "{reasons:?}");
    assert!(
        reasons[2].contains("instances quota: requests 2, 3 in use"),
        "{reasons:?}"
    );
    assert!(paths(&body).iter().all(|p| p == "spec.services"));
    // One replica more fits; changing an application counts it once, not twice.
    let (status, body) = server.apply(&sized("two", 1)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server.apply(&sized("one", 3)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Scaling past it is refused; scaling down passes.
    let scale = |replicas: u32| {
        server.send(
            reqwest::Method::POST,
            "/api/v1/services/team/one/web/scale",
            Some(json!({"replicas": replicas})),
        )
    };
    let (status, body) = scale(4).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = scale(1).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A quota out of bounds names its field.
    let (status, body) = server
        .send(
            reqwest::Method::PUT,
            "/api/v1/namespaces/team",
            Some(json!({"quota": {"instances": 2_000_000}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(paths(&body), ["quota.instances"]);
    // An object or nothing: not an array, which serde would read as the fields in order.
    let (status, body) = server
        .send(
            reqwest::Method::PUT,
            "/api/v1/namespaces/team",
            Some(json!({"quota": [null, null]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

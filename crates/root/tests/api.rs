//! The root's REST API over real HTTP on a random loopback port, backed by a real redb file.

use canopy_root::Root;
use canopy_store::{RedbOptions, RedbStore};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

struct Server {
    base: String,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Server::start_in(dir.path()).await;
        server._dir = Some(dir);
        server
    }

    async fn start_in(dir: &std::path::Path) -> Server {
        let store = RedbStore::open(dir.join("root.redb")).unwrap();
        Server::start_on(Arc::new(store)).await
    }

    /// Serves a root on `store` (a temp dir kept alive by the caller).
    async fn start_on(store: Arc<dyn canopy_store::Store>) -> Server {
        let root = Root::open(store, canopy_root::Timing::default())
            .await
            .unwrap();
        let token = root.local_admin_session().await.unwrap().access_token;
        // The tests run `process` workloads, which only a trusted namespace may.
        for namespace in ["default", "test"] {
            root.trust_namespace(namespace).await.unwrap();
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            root.serve(listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Server {
            base,
            http: {
                // The workspace's reqwest has rustls without a provider (the image store picks
                // ring for the whole binary): a client needs one installed first.
                let _ = rustls::crypto::ring::default_provider().install_default();
                admin_client(&token)
            },
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    /// Stops serving and waits until the store is released.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn apply(
        &self,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, "/api/v1/apply", content_type, body)
            .await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.send(
            reqwest::Method::POST,
            path,
            "application/json",
            body.to_string(),
        )
        .await
    }
}

/// A client that sends the admin's token with every request.
fn admin_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

fn app(name: &str, replicas: u32) -> Value {
    json!({
        "apiVersion": "canopy.dev/v1",
        "kind": "Application",
        "metadata": {"name": name},
        "spec": {"services": [{
            "name": "web",
            "runtime": "process",
            "command": ["/bin/sleep", "600"],
            "replicas": replicas,
            "resources": {"cpu": "100m", "memory": "32Mi"}
        }]}
    })
}

fn detail_paths(body: &Value) -> Vec<String> {
    body["details"]
        .as_array()
        .map(|details| {
            details
                .iter()
                .map(|d| d["path"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn create_get_list_delete_an_application() {
    let server = Server::start().await;
    let (status, created) = server
        .post_json("/api/v1/applications", &app("shop", 2))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["metadata"]["namespace"], "default");
    assert_eq!(created["status"]["generation"], 1);
    assert_eq!(created["status"]["services"][0]["desired"], 2);
    assert_eq!(created["status"]["services"][0]["pending"], 2);

    let (status, fetched) = server.get("/api/v1/applications/default/shop").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        fetched["spec"]["services"][0]["command"],
        json!(["/bin/sleep", "600"])
    );

    let (_, list) = server.get("/api/v1/applications").await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (_, other_ns) = server.get("/api/v1/applications?namespace=elsewhere").await;
    assert_eq!(other_ns, json!([]));

    let (_, instances) = server.get("/api/v1/instances?application=shop").await;
    let instances = instances.as_array().unwrap().clone();
    assert_eq!(instances.len(), 2);
    let replicas: Vec<u64> = {
        let mut r: Vec<u64> = instances
            .iter()
            .map(|i| i["replica"].as_u64().unwrap())
            .collect();
        r.sort();
        r
    };
    assert_eq!(replicas, vec![0, 1]);
    assert!(
        instances
            .iter()
            .all(|i| i["state"] == "Pending" && i["reason"].is_string())
    );
    let id = instances[0]["id"].as_str().unwrap();
    let (status, one) = server.get(&format!("/api/v1/instances/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["service"], "web");

    let (status, services) = server.get("/api/v1/services?application=shop").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(services[0]["artifact"], "/bin/sleep 600");
    let (status, _) = server.get("/api/v1/services/default/shop/web").await;
    assert_eq!(status, StatusCode::OK);

    let (status, conflict) = server
        .post_json("/api/v1/applications", &app("shop", 2))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(conflict["code"], "conflict");

    let (status, _) = server
        .send(
            reqwest::Method::DELETE,
            "/api/v1/applications/default/shop",
            "application/json",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, gone) = server.get("/api/v1/applications/default/shop").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(gone["code"], "not_found");
    let (_, instances) = server.get("/api/v1/instances").await;
    assert_eq!(
        instances,
        json!([]),
        "deleting the application removes its instances"
    );
    server.stop().await;
}

#[tokio::test]
async fn apply_creates_updates_and_reports_unchanged() {
    let server = Server::start().await;
    let yaml = "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {name: blog}\nspec:\n  services:\n  - name: api\n    runtime: process\n    command: [/bin/true]\n    replicas: 3\n";
    let (status, result) = server.apply("application/yaml", yaml).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["applications"][0]["action"], "created");
    let (_, result) = server.apply("application/yaml", yaml).await;
    assert_eq!(result["applications"][0]["action"], "unchanged");
    assert_eq!(result["applications"][0]["generation"], 1);

    let scaled_down = yaml.replace("replicas: 3", "replicas: 1");
    let (_, result) = server.apply("application/yaml", scaled_down).await;
    assert_eq!(result["applications"][0]["action"], "configured");
    assert_eq!(result["applications"][0]["generation"], 2);
    let (_, instances) = server.get("/api/v1/instances?application=blog").await;
    let instances = instances.as_array().unwrap();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0]["replica"], 0);

    let (status, service) = server
        .post_json(
            "/api/v1/services/default/blog/api/scale",
            &json!({"replicas": 4}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{service}");
    assert_eq!(service["status"]["desired"], 4);
    let (_, instances) = server
        .get("/api/v1/instances?application=blog&state=Pending")
        .await;
    assert_eq!(instances.as_array().unwrap().len(), 4);
    let (status, error) = server
        .post_json(
            "/api/v1/services/default/blog/api/scale",
            &json!({"replicas": "many"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["code"], "bad_request");
    let (status, _) = server
        .post_json(
            "/api/v1/services/default/blog/nope/scale",
            &json!({"replicas": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test]
async fn oakestra_sla_is_accepted_through_apply() {
    let server = Server::start().await;
    let sla = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/oakestra-sla.json"
    ))
    .unwrap();
    let (status, result) = server.apply("application/json", sla).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert!(!result["applications"].as_array().unwrap().is_empty());
    assert!(
        !result["warnings"].as_array().unwrap().is_empty(),
        "fields without a native home are reported"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_input_gets_4xx_json_with_field_paths() {
    let server = Server::start().await;

    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/api/v1/applications",
            "application/json",
            "{\"apiVersion\": ",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "invalid_descriptor");
    assert!(body["message"].is_string());

    let mut wrong_type = app("shop", 1);
    wrong_type["spec"]["services"][0]["replicas"] = json!("three");
    let (status, body) = server.post_json("/api/v1/applications", &wrong_type).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        detail_paths(&body)
            .iter()
            .any(|p| p.contains("spec.services[0].replicas")),
        "{body}"
    );

    let mut invalid = app("Bad_Name", 1);
    invalid["spec"]["services"][0]["resources"]["memory"] = json!(0);
    let (status, body) = server.post_json("/api/v1/applications", &invalid).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let paths = detail_paths(&body);
    assert!(paths.contains(&"metadata.name".to_string()), "{body}");
    assert!(
        paths.contains(&"spec.services[0].resources.memory".to_string()),
        "{body}"
    );

    let oversize = format!("{{\"pad\": \"{}\"}}", "x".repeat(3 * 1024 * 1024));
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/api/v1/applications",
            "application/json",
            oversize,
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "payload_too_large");

    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/api/v1/applications",
            "image/png",
            "x",
        )
        .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["code"], "unsupported_media_type");

    let (status, body) = server
        .get("/api/v1/applications/default/nothing-here")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    let (status, body) = server.get("/api/v1/instances/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    let (status, body) = server.get("/api/v1/no-such-endpoint").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], "not_found");
    let (status, body) = server.get("/api/v1/instances?state=Sleeping").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "bad_request");

    let (status, body) = server
        .send(
            reqwest::Method::PUT,
            "/api/v1/applications/default/other",
            "application/json",
            app("shop", 1).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(detail_paths(&body), vec!["metadata.name".to_string()]);

    let (_, list) = server.get("/api/v1/applications").await;
    assert_eq!(list, json!([]), "nothing invalid was stored");
    server.stop().await;
}

#[tokio::test]
async fn put_creates_then_replaces() {
    let server = Server::start().await;
    let body = app("cache", 1).to_string();
    let (status, _) = server
        .send(
            reqwest::Method::PUT,
            "/api/v1/applications/default/cache",
            "application/json",
            body.clone(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, view) = server
        .send(
            reqwest::Method::PUT,
            "/api/v1/applications/default/cache",
            "application/json",
            app("cache", 2).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"]["generation"], 2);
    server.stop().await;
}

/// Every parameter the document declares is where the router takes it from: a path parameter
/// is a `{segment}` of its path (and every segment is declared), anything else is a query
/// parameter. Each filter of the list endpoints is declared in the query.
#[tokio::test]
async fn openapi_parameters_are_where_the_router_reads_them() {
    let server = Server::start().await;
    let (_, spec) = server.get("/openapi.json").await;
    let mut queries = Vec::new();
    for (path, operations) in spec["paths"].as_object().unwrap() {
        let segments: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, operation) in operations.as_object().unwrap() {
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for parameter in &parameters {
                let name = parameter["name"].as_str().unwrap();
                let place = parameter["in"].as_str().unwrap();
                if segments.contains(&name) {
                    assert_eq!(place, "path", "{method} {path} {name}");
                    assert_eq!(parameter["required"], true, "{method} {path} {name}");
                } else {
                    assert_eq!(place, "query", "{method} {path} {name}: not in the path");
                    queries.push(format!("{path}?{name}"));
                }
            }
            for segment in &segments {
                assert!(
                    parameters.iter().any(|p| p["name"] == *segment),
                    "{method} {path} does not declare {segment}"
                );
            }
        }
    }
    for expected in [
        "/api/v1/instances?state",
        "/api/v1/instances?namespace",
        "/api/v1/events?since",
    ] {
        assert!(
            queries.iter().any(|q| q == expected),
            "{expected} among {queries:?}"
        );
    }
    server.stop().await;
}

/// The media types the document lists for a descriptor are exactly the ones the root reads:
/// each is accepted, any other answers 415 with the JSON error.
#[tokio::test]
async fn every_documented_descriptor_type_is_accepted_and_no_other() {
    let server = Server::start().await;
    let (_, spec) = server.get("/openapi.json").await;
    for (path, method) in [
        ("/api/v1/apply", "post"),
        ("/api/v1/applications", "post"),
        ("/api/v1/applications/{namespace}/{name}", "put"),
    ] {
        let types: BTreeSet<&str> = spec["paths"][path][method]["requestBody"]["content"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert!(
            types.contains("application/json") && types.contains("application/yaml"),
            "{method} {path}: {types:?}"
        );
        for code in ["400", "413", "415"] {
            let error = &spec["paths"][path][method]["responses"][code]["content"]["application/json"]
                ["schema"];
            assert_eq!(
                error["$ref"], "#/components/schemas/ErrorBody",
                "{method} {path} {code}"
            );
        }
    }
    let content = spec["paths"]["/api/v1/apply"]["post"]["requestBody"]["content"]
        .as_object()
        .unwrap();
    for (i, media_type) in content.keys().enumerate() {
        let name = format!("typed{i}");
        let text = if media_type.contains("json") {
            app(&name, 0).to_string()
        } else {
            format!(
                "apiVersion: canopy.dev/v1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  services: []\n"
            )
        };
        let (status, body) = server.apply(media_type, text).await;
        assert_eq!(status, StatusCode::OK, "{media_type}: {body}");
    }
    // text/plain is what a page may post cross-origin without a preflight: no descriptor type.
    assert!(!content.contains_key("text/plain"));
    let (status, _) = server.apply("text/plain", HELLO_YAML_FOR_PLAIN).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, body) = server.apply("application/xml", "<application/>").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["code"], "unsupported_media_type");
    server.stop().await;
}

const HELLO_YAML_FOR_PLAIN: &str = "apiVersion: canopy.dev/v1\nkind: Application\nmetadata:\n  name: plain\nspec:\n  services: []\n";

/// Query values outside their documented enum or format answer 400 with the JSON error,
/// and the event stream is documented as text/event-stream, not as one JSON object.
#[tokio::test]
async fn bad_query_values_answer_400_and_the_stream_is_documented_as_sse() {
    let server = Server::start().await;
    for query in [
        "/api/v1/instances?state=Sleeping",
        "/api/v1/instances?state=",
        "/api/v1/events?since=yesterday",
        "/api/v1/events?since=-1",
        "/api/v1/events?since=1.5",
    ] {
        let (status, body) = server.get(query).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["code"], "bad_request", "{query}: {body}");
    }
    let (status, _) = server.get("/api/v1/instances?state=Running").await;
    assert_eq!(status, StatusCode::OK);

    let (_, spec) = server.get("/openapi.json").await;
    let events = &spec["paths"]["/api/v1/events"]["get"];
    let stream = &events["responses"]["200"]["content"]["text/event-stream"]["schema"];
    assert_eq!(stream["type"], "string", "{stream}");
    assert_eq!(
        stream["x-event-data"]["$ref"],
        "#/components/schemas/ChangeEvent"
    );
    for code in ["400", "410"] {
        assert!(events["responses"][code].is_object(), "events lacks {code}");
    }
    let state = &spec["components"]["schemas"]["InstanceState"]["enum"];
    assert!(
        state
            .as_array()
            .is_some_and(|s| s.contains(&json!("Running"))),
        "{state}"
    );
    server.stop().await;
}

#[tokio::test]
async fn openapi_docs_and_health_are_served() {
    let server = Server::start().await;
    let (status, spec) = server.get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/apply",
        "/api/v1/applications",
        "/api/v1/applications/{namespace}/{name}",
        "/api/v1/instances",
        "/api/v1/events",
    ] {
        assert!(spec["paths"][path].is_object(), "OpenAPI lacks {path}");
    }
    assert!(spec["components"]["schemas"]["Application"].is_object());
    let docs = server.http.get(server.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.text().await.unwrap().contains("swagger"),
        "docs page is Swagger UI, served locally"
    );
    let (status, health) = server.get("/healthz").await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, _) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn events_stream_reports_changes_and_resumes_by_revision() {
    let server = Server::start().await;
    let response = server
        .http
        .get(server.url("/api/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut stream = response.bytes_stream();
    let (status, _) = server
        .post_json("/api/v1/applications", &app("feed", 1))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Read until both the application and its instance have been announced.
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(text.contains("event: application.put") && text.contains("event: instance.put")) {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .expect("events within the deadline")
            .expect("stream open")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let first_id: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // Resuming after the first event replays what followed it.
    let resumed = server
        .http
        .get(server.url(&format!("/api/v1/events?since={first_id}")))
        .send()
        .await
        .unwrap();
    let mut resumed = resumed.bytes_stream();
    let chunk = tokio::time::timeout(Duration::from_secs(10), resumed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let replay = String::from_utf8_lossy(&chunk);
    assert!(replay.contains("\"kind\":\"instance\""), "{replay}");
    assert!(
        !replay.contains(&format!("id: {first_id}\n")),
        "the event at `since` is not repeated"
    );
    server.stop().await;
}

#[tokio::test]
async fn accepted_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_in(dir.path()).await;
    server
        .post_json("/api/v1/applications", &app("durable", 2))
        .await;
    let (_, before) = server.get("/api/v1/instances").await;
    server.stop().await;

    let server = Server::start_in(dir.path()).await;
    let (status, view) = server.get("/api/v1/applications/default/durable").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(view["status"]["services"][0]["desired"], 2);
    let (_, after) = server.get("/api/v1/instances").await;
    let ids = |v: &Value| {
        let mut ids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&before),
        ids(&after),
        "no instance lost or doubled by a restart"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_changed_spec_replaces_every_instance_and_scaling_replaces_none() {
    let server = Server::start().await;
    server
        .post_json("/api/v1/applications", &app("roll", 2))
        .await;
    let ids = |v: &Value| {
        let mut ids: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let (_, first) = server.get("/api/v1/instances?application=roll").await;

    // Scaling keeps the instances that stay.
    let (_, _) = server
        .post_json(
            "/api/v1/services/default/roll/web/scale",
            &json!({"replicas": 3}),
        )
        .await;
    let (_, scaled) = server.get("/api/v1/instances?application=roll").await;
    assert_eq!(scaled.as_array().unwrap().len(), 3);
    assert!(ids(&first).iter().all(|id| ids(&scaled).contains(id)));

    // A new command is a new template: every instance is replaced, one per replica.
    let mut changed = app("roll", 3);
    changed["spec"]["services"][0]["command"] = json!(["/bin/sleep", "601"]);
    let (status, result) = server.apply("application/json", changed.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    let (_, rolled) = server.get("/api/v1/instances?application=roll").await;
    let rolled_ids = ids(&rolled);
    assert_eq!(rolled_ids.len(), 3);
    assert!(
        rolled_ids.iter().all(|id| !ids(&scaled).contains(id)),
        "old instances remain: {rolled:#}"
    );
    let replicas: BTreeSet<u64> = rolled
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["replica"].as_u64().unwrap())
        .collect();
    assert_eq!(replicas, BTreeSet::from([0, 1, 2]));
    let hashes: BTreeSet<&str> = rolled
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["templateHash"].as_str().unwrap())
        .collect();
    assert_eq!(hashes.len(), 1);
    server.stop().await;
}

/// One Server-Sent Event: (revision, `event:` name, key).
type Sse = (u64, String, String);

/// Reads SSE frames from `stream` until `done` says the events so far are enough, or fails
/// after 10 s.
async fn read_events(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    mut done: impl FnMut(&[Sse]) -> bool,
) -> Vec<Sse> {
    let mut text = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done(&events) {
        let chunk = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("more events within 10 s; got {events:?}"))
            .expect("stream open")
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let frame: String = text.drain(..end + 2).collect();
            let (mut id, mut name, mut key) = (None, String::new(), String::new());
            for line in frame.lines() {
                if let Some(value) = line.strip_prefix("id: ") {
                    id = value.trim().parse().ok();
                } else if let Some(value) = line.strip_prefix("event: ") {
                    name = value.trim().to_string();
                } else if let Some(value) = line.strip_prefix("data: ") {
                    let data: Value = serde_json::from_str(value).unwrap();
                    key = data["key"].as_str().unwrap_or_default().to_string();
                    assert_eq!(data["revision"].as_u64(), id, "data and id agree: {frame}");
                }
            }
            // Keep-alive comments have no id.
            if let Some(id) = id {
                events.push((id, name, key));
            }
        }
    }
    events
}

async fn open_events(server: &Server, last_event_id: Option<u64>) -> reqwest::Response {
    let mut request = server.http.get(server.url("/api/v1/events"));
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn last_event_id_resumes_with_exactly_the_events_after_it() {
    let server = Server::start().await;
    let live = open_events(&server, None).await;
    assert_eq!(live.status(), StatusCode::OK);
    let mut live = Box::pin(live.bytes_stream());
    // A history of several revisions, some of several events (an application and its
    // instances are written together).
    for (name, replicas) in [("one", 2), ("two", 1), ("three", 3)] {
        let (status, _) = server
            .post_json("/api/v1/applications", &app(name, replicas))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = server
        .post_json(
            "/api/v1/services/default/one/web/scale",
            &json!({"replicas": 1}),
        )
        .await;
    assert!(status.is_success(), "{status}");
    let (status, _) = server
        .post_json("/api/v1/applications", &app("last", 1))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let end = read_events(&mut live, |events| {
        events
            .iter()
            .any(|(_, name, key)| name == "application.put" && key.ends_with("/last"))
    })
    .await
    .into_iter()
    .find(|(_, name, key)| name == "application.put" && key.ends_with("/last"))
    .unwrap()
    .0;

    // Everything before `end`, from the start of the history: every event of a revision
    // comes before the first of the next.
    let before_end = |events: &[Sse]| -> Vec<Sse> {
        events
            .iter()
            .filter(|(r, _, _)| *r < end)
            .cloned()
            .collect()
    };
    let reached_end = |events: &[Sse]| events.iter().any(|(r, _, _)| *r >= end);
    let mut all = Box::pin(open_events(&server, Some(0)).await.bytes_stream());
    let history = before_end(&read_events(&mut all, reached_end).await);
    let revisions: BTreeSet<u64> = history.iter().map(|(r, _, _)| *r).collect();
    assert!(revisions.len() >= 4, "a history of revisions: {history:?}");
    assert!(
        history.len() > revisions.len(),
        "some revisions of several events: {history:?}"
    );
    // Resume from the middle of it: exactly what followed, in order, nothing repeated.
    let middle = *revisions.iter().nth(revisions.len() / 2).unwrap();
    let expected: Vec<Sse> = history
        .iter()
        .filter(|(r, _, _)| *r > middle)
        .cloned()
        .collect();
    assert!(!expected.is_empty());
    let resumed = open_events(&server, Some(middle)).await;
    assert_eq!(resumed.status(), StatusCode::OK);
    let mut resumed = Box::pin(resumed.bytes_stream());
    let replay = before_end(&read_events(&mut resumed, reached_end).await);
    assert_eq!(replay, expected, "resumed after revision {middle}");
    server.stop().await;
}

#[tokio::test]
async fn resuming_from_a_compacted_revision_answers_410() {
    let dir = tempfile::tempdir().unwrap();
    // A history of only a few events: older revisions are compacted away.
    let store = RedbStore::open_with(
        dir.path().join("root.redb"),
        RedbOptions::default().history_limit(4),
    )
    .unwrap();
    let server = Server::start_on(Arc::new(store)).await;
    for i in 0..6 {
        let (status, _) = server
            .post_json("/api/v1/applications", &app(&format!("app{i}"), 2))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let mut oldest = None;
    for request in [
        server.http.get(server.url("/api/v1/events?since=1")),
        server
            .http
            .get(server.url("/api/v1/events"))
            .header("Last-Event-ID", "1"),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::GONE);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "compacted", "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("revision 1 "), "{body}");
        oldest = oldest_named(&body);
    }
    // Only what was compacted is gone: from the oldest retained revision it resumes. The
    // scheduler writes meanwhile (why the instances are pending), which may compact more:
    // then the answer names a newer oldest revision, and it resumes from that.
    let mut oldest = oldest.expect("the answer names the oldest retained revision");
    assert!(oldest > 1);
    let mut attempts = 0;
    let resumed = loop {
        let response = open_events(&server, Some(oldest)).await;
        if response.status() == StatusCode::OK {
            break response;
        }
        assert_eq!(response.status(), StatusCode::GONE);
        let newer = oldest_named(&response.json().await.unwrap()).expect("oldest named");
        assert!(newer > oldest, "{newer} after {oldest}");
        oldest = newer;
        attempts += 1;
        assert!(attempts < 20, "the history never held still");
    };
    let mut resumed = Box::pin(resumed.bytes_stream());
    let replay = read_events(&mut resumed, |events| !events.is_empty()).await;
    assert!(replay[0].0 > oldest, "{replay:?}");
    server.stop().await;
}

/// The oldest retained revision a 410 answer names.
fn oldest_named(body: &Value) -> Option<u64> {
    body["message"]
        .as_str()?
        .split("oldest ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse::<u64>().ok())
}

/// A real store whose `revision` fails while `down` is set: the one fault `/readyz` reports.
/// (The `Store` trait is an `async_trait`; these are its methods written out.)
struct Flaky {
    store: RedbStore,
    down: std::sync::atomic::AtomicBool,
}

type Answer<'a, T> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<T, canopy_store::StoreError>> + Send + 'a>,
>;

impl canopy_store::Store for Flaky {
    fn get<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
    ) -> Answer<'async_trait, Option<canopy_store::Entry>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.store.get(key)
    }

    fn list<'life0, 'life1, 'async_trait>(
        &'life0 self,
        prefix: &'life1 str,
    ) -> Answer<'async_trait, (Vec<canopy_store::Entry>, canopy_store::Revision)>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.store.list(prefix)
    }

    fn put<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        value: Vec<u8>,
        precondition: canopy_store::Precondition,
    ) -> Answer<'async_trait, canopy_store::Revision>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.store.put(key, value, precondition)
    }

    fn delete<'life0, 'life1, 'async_trait>(
        &'life0 self,
        key: &'life1 str,
        precondition: canopy_store::Precondition,
    ) -> Answer<'async_trait, Option<canopy_store::Revision>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.store.delete(key, precondition)
    }

    fn txn<'life0, 'async_trait>(
        &'life0 self,
        ops: Vec<canopy_store::Op>,
    ) -> Answer<'async_trait, canopy_store::Revision>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.store.txn(ops)
    }

    fn txn_with<'life0, 'async_trait>(
        &'life0 self,
        ops: Vec<canopy_store::Op>,
        durability: canopy_store::Durability,
    ) -> Answer<'async_trait, canopy_store::Revision>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        self.store.txn_with(ops, durability)
    }

    fn watch<'life0, 'life1, 'async_trait>(
        &'life0 self,
        prefix: &'life1 str,
        after: canopy_store::Revision,
    ) -> Answer<'async_trait, canopy_store::WatchStream>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        self.store.watch(prefix, after)
    }

    fn revision<'life0, 'async_trait>(&'life0 self) -> Answer<'async_trait, canopy_store::Revision>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            Box::pin(async {
                Err(canopy_store::StoreError::Backend(
                    "injected: the disk is gone".into(),
                ))
            })
        } else {
            self.store.revision()
        }
    }
}

#[tokio::test]
async fn readyz_answers_503_while_the_store_fails_and_200_once_it_answers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Flaky {
        store: RedbStore::open(dir.path().join("root.redb")).unwrap(),
        down: false.into(),
    });
    let server = Server::start_on(store.clone()).await;
    let (status, body) = server.get("/readyz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );

    store.down.store(true, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["code"], "not_ready", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("the disk is gone"),
        "{body}"
    );
    // The process itself is up meanwhile.
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);

    store.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let (status, _) = server.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

/// An imported name lowercased onto another application's is refused, naming both: `MyApp`
/// from an Oakestra SLA never replaces a native `myapp`. Applying the SLA again is fine.
#[tokio::test]
async fn a_lowercased_name_never_takes_over_another_application() {
    let server = Server::start().await;
    let (status, body) = server
        .post_json("/api/v1/applications", &app("pipeline", 1))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let sla = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/oakestra-sla.json"
    ))
    .unwrap()
    .replace(
        "\"application_name\": \"pipeline\"",
        "\"application_name\": \"PipeLine\"",
    );
    let sla = sla.replace(
        "\"application_namespace\": \"test\"",
        "\"application_namespace\": \"default\"",
    );
    let (status, body) = server.apply("application/json", sla.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("PipeLine") && message.contains("default/pipeline"),
        "{body}"
    );
    let (_, native) = server.get("/api/v1/applications/default/pipeline").await;
    assert_eq!(
        native["spec"]["services"][0]["name"], "web",
        "the native one is untouched"
    );

    // Once the native one is gone, the SLA applies, and applies again unchanged.
    let response = server
        .http
        .delete(server.url("/api/v1/applications/default/pipeline"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = server.apply("application/json", sla.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server.apply("application/json", sla).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applications"][0]["action"], "unchanged", "{body}");
    server.stop().await;
}

fn labelled(name: &str, app_labels: Value, service_labels: Value) -> Value {
    let mut app = app(name, 1);
    app["metadata"]["labels"] = app_labels;
    app["spec"]["services"][0]["labels"] = service_labels;
    app
}

#[tokio::test]
async fn label_selectors_filter_the_lists_and_a_bad_one_is_a_400_naming_its_part() {
    let server = Server::start().await;
    let shop = labelled("shop", json!({"team": "a"}), json!({"tier": "web"}));
    let blog = labelled("blog", json!({"team": "b", "tier": "app"}), json!({}));
    for app in [&shop, &blog] {
        let (status, body) = server.post_json("/api/v1/applications", app).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let names = |body: &Value, field: &str| -> Vec<String> {
        let mut names: Vec<String> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                let value = field.split('.').fold(item, |v, f| &v[f]);
                value.as_str().unwrap().to_string()
            })
            .collect();
        names.sort();
        names
    };
    let cases = [
        (
            "/api/v1/applications?labelSelector=team%3Da",
            "metadata.name",
            vec!["shop"],
        ),
        (
            "/api/v1/applications?labelSelector=team%21%3Da",
            "metadata.name",
            vec!["blog"],
        ),
        (
            "/api/v1/applications?labelSelector=%21team",
            "metadata.name",
            vec![],
        ),
        // A service carries its application's labels under its own.
        (
            "/api/v1/services?labelSelector=tier%3Dweb",
            "application",
            vec!["shop"],
        ),
        (
            "/api/v1/services?labelSelector=tier%3Dapp",
            "application",
            vec!["blog"],
        ),
        (
            "/api/v1/services?labelSelector=team",
            "application",
            vec!["blog", "shop"],
        ),
        (
            "/api/v1/instances?labelSelector=team%3Db,tier",
            "application",
            vec!["blog"],
        ),
        ("/api/v1/clusters?labelSelector=zone", "name", vec![]),
        ("/api/v1/nodes?labelSelector=zone", "name", vec![]),
    ];
    for (path, field, expected) in cases {
        let (status, body) = server.get(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(names(&body, field), expected, "{path}");
    }
    for path in [
        "/api/v1/applications?labelSelector=team%3D%3D%3Da",
        "/api/v1/services?labelSelector=a,,b",
        "/api/v1/instances?labelSelector=Bad%20Key",
        "/api/v1/nodes?labelSelector=x%3D-y",
        "/api/v1/clusters?labelSelector=in%20(a)",
    ] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["code"], "invalid_label_selector", "{path}: {body}");
        assert_eq!(detail_paths(&body), ["labelSelector"], "{path}: {body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_dry_run_apply_checks_everything_and_writes_nothing() {
    let server = Server::start().await;
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/api/v1/apply?dryRun=true",
            "application/json",
            app("shop", 2).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applications"][0]["action"], "created");
    let (_, apps) = server.get("/api/v1/applications").await;
    assert_eq!(apps, json!([]), "a dry run created nothing");
    let (_, instances) = server.get("/api/v1/instances").await;
    assert_eq!(instances, json!([]));

    let (status, _) = server
        .apply("application/json", app("shop", 2).to_string())
        .await;
    assert_eq!(status, StatusCode::OK);
    let dry = |body: Value| {
        server.send(
            reqwest::Method::POST,
            "/api/v1/apply?dryRun=true",
            "application/json",
            body.to_string(),
        )
    };
    let (_, body) = dry(app("shop", 2)).await;
    assert_eq!(body["applications"][0]["action"], "unchanged");
    let (_, body) = dry(app("shop", 5)).await;
    assert_eq!(body["applications"][0]["action"], "configured");
    assert_eq!(body["applications"][0]["generation"], 2);
    let (_, view) = server.get("/api/v1/applications/default/shop").await;
    assert_eq!(
        view["spec"]["services"][0]["replicas"], 2,
        "still as applied"
    );
    assert_eq!(view["status"]["generation"], 1);

    // The same checks as a real apply: invalid input, and the lowercasing conflict.
    let mut invalid = app("shop", 1);
    invalid["spec"]["services"][0]["replicas"] = json!(-1);
    let (status, _) = dry(invalid).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = server
        .send(
            reqwest::Method::POST,
            "/api/v1/apply?dryRun=maybe",
            "application/json",
            app("shop", 1).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn the_version_endpoint_names_the_build() {
    let server = Server::start().await;
    let (status, body) = server.get("/api/v1/version").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    // Built in a git checkout (as the tests are), the commit is known.
    assert!(
        body["gitCommit"].as_str().is_some_and(|c| c.len() >= 7),
        "{body}"
    );
    let (_, spec) = server.get("/openapi.json").await;
    assert!(spec["paths"]["/api/v1/version"]["get"].is_object());
    let params = |path: &str, method: &str| -> Vec<String> {
        spec["paths"][path][method]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert!(params("/api/v1/apply", "post").contains(&"dryRun".to_string()));
    for path in [
        "/api/v1/applications",
        "/api/v1/services",
        "/api/v1/instances",
        "/api/v1/clusters",
        "/api/v1/nodes",
    ] {
        assert!(
            params(path, "get").contains(&"labelSelector".to_string()),
            "{path}"
        );
    }
    server.stop().await;
}

/// Clusters, nodes and instances that do not exist answer 404 with the JSON error body, for
/// reads and for the operator's verbs alike; malformed labels answer 400 naming the label.
#[tokio::test]
async fn infrastructure_objects_and_verbs_answer_404_and_400_as_json() {
    let server = Server::start().await;
    for path in ["/api/v1/clusters/nowhere", "/api/v1/nodes/nowhere/n1"] {
        let (status, body) = server.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["code"], "not_found", "{path}: {body}");
    }
    for verb in ["cordon", "uncordon", "drain"] {
        let path = format!("/api/v1/nodes/nowhere/n1/{verb}");
        let (status, body) = server.post_json(&path, &Value::Null).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["code"], "not_found");
    }
    let (status, body) = server
        .send(
            reqwest::Method::DELETE,
            "/api/v1/instances/nope",
            "application/json",
            "",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "not_found");
    let bad = serde_json::json!({"labels": {"-bad": "x", "good": "a b"}});
    let (status, body) = server
        .send(
            reqwest::Method::PATCH,
            "/api/v1/nodes/nowhere/n1/labels",
            "application/merge-patch+json",
            bad.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(detail_paths(&body), ["labels.-bad", "labels.good"]);
    server.stop().await;
}

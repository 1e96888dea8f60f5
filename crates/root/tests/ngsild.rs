//! The NGSI-LD view over a real root (`/ngsi-ld/v1/`): what each role sees, the query
//! language, paging and counts, content negotiation, ProblemDetails errors, and
//! subscriptions whose notifications reach a real HTTP endpoint.

mod harness;

use canopy_root::api::rules::{NGSI_LD_RULES, Rule};
use harness::{OTHER, OWN, Server};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(20);

async fn get(server: &Server, path: &str, token: Option<&str>) -> reqwest::Response {
    server.send(Method::GET, path, token, None).await
}

async fn entities(server: &Server, path: &str, token: &str) -> Vec<Value> {
    let response = get(server, path, Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json::<Vec<Value>>().await.unwrap()
}

fn ids(entities: &[Value]) -> Vec<String> {
    entities
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

async fn problem(response: reqwest::Response, status: StatusCode, kind: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.unwrap();
    let expected = if kind.starts_with("urn:") {
        kind.to_string()
    } else {
        format!("https://uri.etsi.org/ngsi-ld/errors/{kind}")
    };
    assert_eq!(body["type"], expected, "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    body
}

async fn scale(server: &Server, namespace: &str, replicas: u32) {
    let path = format!("/api/v1/services/{namespace}/shop/web/scale");
    let (status, body) = server
        .call(
            Method::POST,
            &path,
            Some(server.admin.as_str()),
            Some(json!({"replicas": replicas})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn each_role_sees_its_namespaces_with_queries_paging_and_counts() {
    let server = Server::start().await;
    server.apply_shop(OWN).await;
    server.apply_shop(OTHER).await;
    scale(&server, OWN, 3).await;
    let developer = server
        .user_with("dev", json!({"role": "developer", "namespace": OWN}))
        .await;
    let admin = server.admin.clone();

    let all = entities(
        &server,
        "/ngsi-ld/v1/entities?type=ServiceComponent&limit=100",
        &admin,
    )
    .await;
    assert_eq!(all.len(), 4, "{all:?}");
    let own = entities(
        &server,
        "/ngsi-ld/v1/entities?type=ServiceComponent",
        &developer,
    )
    .await;
    assert_eq!(own.len(), 3, "{own:?}");
    assert!(
        own.iter().all(|e| e["namespace"]["value"] == OWN),
        "{own:?}"
    );
    let service = format!("urn:ngsi-ld:Service:{OWN}:shop:web");
    assert!(
        own.iter().all(|e| e["service"]["object"] == service),
        "{own:?}"
    );

    // What ngsildclient asks first: a count of nothing.
    let response = get(
        &server,
        "/ngsi-ld/v1/entities?type=None&limit=0&count=true",
        Some(developer.as_str()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["ngsild-results-count"], "0");
    assert!(
        response.headers()["link"]
            .to_str()
            .unwrap()
            .contains("/ngsi-ld/v1/jsonldContexts/canopy")
    );

    let paged = get(
        &server,
        "/ngsi-ld/v1/entities?type=ServiceComponent&limit=2&offset=1&count=true",
        Some(developer.as_str()),
    )
    .await;
    assert_eq!(paged.headers()["ngsild-results-count"], "3");
    let page: Vec<Value> = paged.json().await.unwrap();
    assert_eq!(ids(&page), ids(&own)[1..3].to_vec());

    let q = "/ngsi-ld/v1/entities?type=Service&q=replicas%3E%3D2;namespace==%22team-a%22&attrs=replicas";
    let services = entities(&server, q, &admin).await;
    assert_eq!(services.len(), 1, "{services:?}");
    assert_eq!(services[0]["id"], service);
    assert_eq!(services[0]["replicas"]["value"], 3);
    assert!(services[0].get("runtime").is_none(), "attrs projects");

    let key_values = entities(
        &server,
        "/ngsi-ld/v1/entities?type=Service&options=keyValues",
        &developer,
    )
    .await;
    assert_eq!(key_values[0]["replicas"], 3, "{key_values:?}");

    // One entity, as JSON-LD; another namespace's is as absent as a missing one.
    let path = format!("/ngsi-ld/v1/entities/{service}");
    let response = server
        .http
        .get(server.url(&path))
        .bearer_auth(&developer)
        .header("accept", "application/ld+json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/ld+json");
    let entity: Value = response.json().await.unwrap();
    assert_eq!(entity["type"], "Service");
    assert_eq!(entity["@context"][0], "/ngsi-ld/v1/jsonldContexts/canopy");
    let theirs = format!("/ngsi-ld/v1/entities/urn:ngsi-ld:Service:{OTHER}:shop:web");
    problem(
        get(&server, &theirs, Some(developer.as_str())).await,
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
    )
    .await;
    assert_eq!(
        get(&server, &theirs, Some(admin.as_str())).await.status(),
        StatusCode::OK
    );

    let types: Value = get(&server, "/ngsi-ld/v1/types", Some(developer.as_str()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        types["typeList"],
        json!(["Service", "ServiceComponent"]),
        "{types}"
    );

    let context = get(&server, "/ngsi-ld/v1/jsonldContexts/canopy", None).await;
    assert_eq!(context.status(), StatusCode::OK, "the context is public");
    let context: Value = context.json().await.unwrap();
    assert!(context["@context"][0]["InfrastructureElement"].is_string());
}

#[tokio::test]
async fn errors_are_problem_details() {
    let server = Server::start().await;
    let admin = Some(server.admin.as_str());
    let body = problem(
        get(&server, "/ngsi-ld/v1/entities?type=Domain", None).await,
        StatusCode::UNAUTHORIZED,
        "urn:canopy:error:unauthenticated",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("Bearer"),
        "{body}"
    );
    let body = problem(
        get(&server, "/ngsi-ld/v1/entities?q=a%3D%3D", admin).await,
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
    )
    .await;
    assert!(
        body["detail"].as_str().unwrap().contains("needs a value"),
        "{body}"
    );
    problem(
        get(&server, "/ngsi-ld/v1/entities?limit=5000", admin).await,
        StatusCode::BAD_REQUEST,
        "BadRequestData",
    )
    .await;
    problem(
        get(&server, "/ngsi-ld/v1/entities?limit=x", admin).await,
        StatusCode::BAD_REQUEST,
        "BadRequestData",
    )
    .await;
    problem(
        get(
            &server,
            "/ngsi-ld/v1/entities/urn:ngsi-ld:Domain:nowhere",
            admin,
        )
        .await,
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
    )
    .await;
    let html = server
        .http
        .get(server.url("/ngsi-ld/v1/entities"))
        .bearer_auth(&server.admin)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    problem(html, StatusCode::NOT_ACCEPTABLE, "NotAcceptable").await;
    let write = server
        .send(
            Method::PATCH,
            "/ngsi-ld/v1/entities/urn:ngsi-ld:Domain:x",
            admin,
            Some(("application/json", "{}".into())),
        )
        .await;
    problem(
        write,
        StatusCode::METHOD_NOT_ALLOWED,
        "OperationNotSupported",
    )
    .await;
}

/// Every NGSI-LD route of the rules table: allowed to every role (each reads somewhere),
/// refused without a token (but the public context).
#[tokio::test]
async fn every_ngsi_ld_route_by_role() {
    let server = Server::start().await;
    let viewer = server
        .user_with("view", json!({"role": "viewer", "namespace": OWN}))
        .await;
    let operator = server.user_with("op", json!({"role": "operator"})).await;
    for (method, path, rule) in NGSI_LD_RULES {
        let concrete = path
            .replace("{id}", "urn:ngsi-ld:Subscription:none")
            .replace(
                "/entities/urn:ngsi-ld:Subscription:none",
                "/entities/urn:ngsi-ld:Domain:none",
            );
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let body = (method == Method::POST).then(|| ("application/json", "{}".to_string()));
        for token in [server.admin.as_str(), viewer.as_str(), operator.as_str()] {
            let status = server
                .send(method.clone(), &concrete, Some(token), body.clone())
                .await
                .status();
            assert!(
                status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                "{method} {concrete}: {status}"
            );
        }
        let anonymous = server
            .send(method.clone(), &concrete, None, body.clone())
            .await
            .status();
        if *rule == Rule::Public {
            assert_eq!(anonymous, StatusCode::OK, "{method} {concrete}");
        } else {
            assert_eq!(anonymous, StatusCode::UNAUTHORIZED, "{method} {concrete}");
        }
    }
}

/// An HTTP endpoint on loopback that hands every notification it receives to a channel.
async fn endpoint() -> (String, mpsc::UnboundedReceiver<Value>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route(
            "/notify",
            axum::routing::post(
                |axum::extract::State(sender): axum::extract::State<
                    mpsc::UnboundedSender<Value>,
                >,
                 axum::Json(body): axum::Json<Value>| async move {
                    let _ = sender.send(body);
                    StatusCode::OK
                },
            ),
        )
        .with_state(sender);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, receiver)
}

async fn next(notifications: &mut mpsc::UnboundedReceiver<Value>) -> Value {
    tokio::time::timeout(WAIT, notifications.recv())
        .await
        .expect("a notification within the deadline")
        .expect("the endpoint runs")
}

async fn subscribe(server: &Server, token: &str, body: Value) -> (StatusCode, reqwest::Response) {
    let response = server
        .send(
            Method::POST,
            "/ngsi-ld/v1/subscriptions/",
            Some(token),
            Some(("application/ld+json", body.to_string())),
        )
        .await;
    (response.status(), response)
}

#[tokio::test]
async fn subscriptions_notify_their_owner_of_what_it_may_read() {
    let server = Server::start().await;
    server.apply_shop(OWN).await;
    server.apply_shop(OTHER).await;
    let developer = server
        .user_with("dev", json!({"role": "developer", "namespace": OWN}))
        .await;
    let (own_url, mut own_notifications) = endpoint().await;
    let (admin_url, mut admin_notifications) = endpoint().await;
    let on_replicas = |url: &str| {
        json!({
            "type": "Subscription",
            "entities": [{"type": "Service"}],
            "watchedAttributes": ["replicas"],
            "notification": {"attributes": ["replicas", "namespace"], "format": "keyValues",
                "endpoint": {"uri": url, "accept": "application/json"}},
            "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"
        })
    };
    let (status, created) = subscribe(&server, &developer, on_replicas(&own_url)).await;
    assert_eq!(status, StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with("/ngsi-ld/v1/subscriptions/urn:ngsi-ld:Subscription:"),
        "{location}"
    );
    let (status, _) = subscribe(&server, &server.admin, on_replicas(&admin_url)).await;
    assert_eq!(status, StatusCode::CREATED);

    scale(&server, OTHER, 2).await;
    let seen = next(&mut admin_notifications).await;
    assert_eq!(seen["type"], "Notification");
    assert_eq!(seen["data"][0]["namespace"], OTHER, "{seen}");
    scale(&server, OWN, 4).await;
    // The developer's endpoint hears of its namespace only: the change in the other one
    // came first, and was not sent.
    let own = next(&mut own_notifications).await;
    assert_eq!(
        own["subscriptionId"],
        location.rsplit('/').next().unwrap(),
        "{own}"
    );
    assert_eq!(
        own["data"],
        json!([{"id": format!("urn:ngsi-ld:Service:{OWN}:shop:web"),
        "type": "Service", "replicas": 4, "namespace": OWN}]),
        "{own}"
    );

    // Each sees its own subscriptions; the admin everyone's.
    let list = |token: String| {
        let server = &server;
        async move {
            get(server, "/ngsi-ld/v1/subscriptions", Some(token.as_str()))
                .await
                .json::<Vec<Value>>()
                .await
                .unwrap()
        }
    };
    assert_eq!(list(developer.clone()).await.len(), 1);
    assert_eq!(list(server.admin.clone()).await.len(), 2);
    let admins = list(server.admin.clone()).await;
    let admin_id = admins
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .find(|id| !location.ends_with(id))
        .unwrap()
        .to_string();
    let theirs = format!("/ngsi-ld/v1/subscriptions/{admin_id}");
    problem(
        get(&server, &theirs, Some(developer.as_str())).await,
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
    )
    .await;
    let mine: Value = get(&server, &location, Some(developer.as_str()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(mine["status"], "active");
    assert_eq!(mine["watchedAttributes"], json!(["replicas"]));

    let (status, _) = subscribe(
        &server,
        &developer,
        json!({"entities": [{"type": "Service"}],
        "notification": {"endpoint": {"uri": "ftp://x/"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, refused) = subscribe(
        &server,
        &developer,
        json!({"entities": [{"type": "Service"}],
        "expiresAt": "2030-01-01T00:00:00Z", "notification": {"endpoint": {"uri": "http://x/"}}}),
    )
    .await;
    let body = problem(refused, StatusCode::BAD_REQUEST, "BadRequestData").await;
    assert!(
        body["detail"].as_str().unwrap().contains("expiresAt"),
        "{body}"
    );

    let deleted = server
        .send(Method::DELETE, &location, Some(developer.as_str()), None)
        .await;
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get(&server, &location, Some(developer.as_str()))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        server
            .send(Method::DELETE, &theirs, Some(developer.as_str()), None)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

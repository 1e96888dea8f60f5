//! The root's API against the attacks of the security review, over real HTTP (and TLS) on
//! loopback with a real redb store: each attack that once worked is refused here.

use canopy_root::Root;
use canopy_root::api::ApiConfig;
use canopy_root::api::rate_limit::{Rate, RateLimits};
use canopy_store::RedbStore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

struct Server {
    base: String,
    port: u16,
    http: reqwest::Client,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

async fn start(config: ApiConfig) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("root.redb")).unwrap();
    let root = Root::open(Arc::new(store), canopy_root::Timing::default())
        .await
        .unwrap()
        .with_api_config(config);
    let token = root.local_admin_session().await.unwrap().access_token;
    // The tests run `process` workloads, which only a trusted namespace may.
    for namespace in ["default", "test"] {
        root.trust_namespace(namespace).await.unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        root.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    let _ = rustls::crypto::ring::default_provider().install_default();
    Server {
        base: format!("http://127.0.0.1:{port}"),
        port,
        http: {
            let mut headers = reqwest::header::HeaderMap::new();
            let bearer = format!("Bearer {token}").parse().unwrap();
            headers.insert(reqwest::header::AUTHORIZATION, bearer);
            reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .unwrap()
        },
        _stop: stop,
        _dir: dir,
    }
}

const HELLO: &str = "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {name: hello}\nspec:\n  services:\n    - name: a\n      runtime: process\n      command: [/bin/true]\n";

impl Server {
    fn post(&self, path: &str, content_type: &str, body: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_string())
    }

    async fn applications(&self) -> Vec<Value> {
        self.http
            .get(format!("{}/api/v1/applications", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

async fn status_and_body(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// What a browser page sends with a `<form enctype="text/plain">` or a no-preflight fetch:
/// once accepted, now refused, and nothing is applied.
#[tokio::test]
async fn a_cross_origin_text_plain_post_is_refused_and_applies_nothing() {
    let server = start(ApiConfig::default()).await;
    let (status, body) = status_and_body(
        server
            .post("/api/v1/apply", "text/plain", HELLO)
            .header("origin", "http://evil.example")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "forbidden_origin");
    // Even from the same origin, text/plain is no descriptor type any more.
    let (status, body) = status_and_body(
        server
            .post("/api/v1/apply", "text/plain", HELLO)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(body["code"], "unsupported_media_type");
    assert!(server.applications().await.is_empty());
    // The API's own client (no Origin, YAML) still applies.
    let response = server
        .post("/api/v1/apply", "application/yaml", HELLO)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// DNS rebinding: a page's own name resolved to the root's address carries that name as Host.
#[tokio::test]
async fn a_foreign_host_name_is_refused_and_a_configured_one_served() {
    let config = ApiConfig {
        allowed_hosts: canopy_root::api::guard::AllowedHosts(vec!["canopy.test".to_string()]),
        ..ApiConfig::default()
    };
    let server = start(config).await;
    let get = |host: String| {
        server
            .http
            .get(format!("{}/api/v1/applications", server.base))
            .header("host", host)
            .send()
    };
    let (status, body) = status_and_body(
        get(format!("rebound.example:{}", server.port))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "forbidden_host");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("--allowed-host rebound.example")
    );
    let response = server
        .post("/api/v1/apply", "application/yaml", HELLO)
        .header("host", format!("rebound.example:{}", server.port))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(server.applications().await.is_empty());
    for host in [
        format!("canopy.test:{}", server.port),
        format!("localhost:{}", server.port),
    ] {
        assert_eq!(
            get(host.clone()).await.unwrap().status(),
            StatusCode::OK,
            "{host}"
        );
    }
}

/// `a: [[[…` once took 40 s of CPU for 200 KB: now a 400 naming the nesting bound.
#[tokio::test]
async fn quadratic_yaml_gets_a_400_naming_the_nesting_bound() {
    let server = start(ApiConfig::default()).await;
    let deep = format!("a: {}", "[".repeat(200 * 1024));
    let (status, body) = status_and_body(
        server
            .post("/api/v1/apply", "application/yaml", &deep)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_descriptor");
    let reason = body["details"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("deeper than 64 flow levels"), "{reason}");
}

/// One 500 KB scalar referenced 10,000 times: once 5 GB of memory, now a 400.
#[tokio::test]
async fn an_alias_bomb_gets_a_400_naming_the_expanded_size_bound() {
    let server = start(ApiConfig::default()).await;
    let mut bomb = format!("big: &b {}\nl:\n", "x".repeat(500 * 1024));
    for _ in 0..10_000 {
        bomb.push_str("- *b\n");
    }
    let (status, body) = status_and_body(
        server
            .post("/api/v1/apply", "application/yaml", &bomb)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let reason = body["details"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("aliases"), "{reason}");
}

/// Oakestra names that are no DNS label are refused with their SLA path, not normalised.
#[tokio::test]
async fn oakestra_names_like_dot_dot_etc_are_refused_with_their_path() {
    let server = start(ApiConfig::default()).await;
    for bad in ["../../etc".to_string(), "a".repeat(300)] {
        let sla = json!({
            "sla_version": "v2.0",
            "customerID": "Admin",
            "applications": [{
                "application_name": bad,
                "application_namespace": "test",
                "microservices": [{
                    "microservice_name": "srv",
                    "microservice_namespace": "test",
                    "virtualization": "container",
                    "code": "docker.io/library/nginx:latest",
                    "memory": 100,
                    "vcpus": 1
                }]
            }]
        });
        let (status, body) = status_and_body(
            server
                .post("/api/v1/apply", "application/json", &sla.to_string())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        let paths: Vec<&str> = body["details"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["path"].as_str())
            .collect();
        assert!(
            paths.contains(&"applications[0].application_name"),
            "{bad}: {body}"
        );
    }
}

/// Over its limit a client gets 429, a JSON error body and `Retry-After`; reads go on.
#[tokio::test]
async fn over_the_rate_limit_a_client_gets_429_with_retry_after() {
    let config = ApiConfig {
        rate_limits: RateLimits {
            mutations: Rate {
                per_second: 0.01,
                burst: 2,
            },
            ..RateLimits::default()
        },
        ..ApiConfig::default()
    };
    let server = start(config).await;
    for _ in 0..2 {
        let response = server
            .post("/api/v1/apply", "application/yaml", HELLO)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = server
        .post("/api/v1/apply", "application/yaml", HELLO)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=100).contains(&retry), "Retry-After {retry}");
    let (_, body) = status_and_body(response).await;
    assert_eq!(body["code"], "rate_limited");
    assert!(body["message"].as_str().unwrap().contains("retry in"));
    assert_eq!(server.applications().await.len(), 1);
}

/// Each mutating call is in the audit log with who, what, when and its result.
#[tokio::test]
async fn the_audit_log_lists_each_mutating_call_with_its_result() {
    let server = start(ApiConfig::default()).await;
    let ok = server
        .post("/api/v1/apply", "application/yaml", HELLO)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let refused = server
        .post("/api/v1/apply", "text/plain", HELLO)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let deleted = server
        .http
        .delete(format!("{}/api/v1/applications/default/hello", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    let entries: Vec<Value> = server
        .http
        .get(format!("{}/api/v1/audit", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen: Vec<(&str, &str, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap(),
                e["path"].as_str().unwrap(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("POST", "/api/v1/apply", 200),
            ("POST", "/api/v1/apply", 415),
            ("DELETE", "/api/v1/applications/default/hello", 200),
        ],
        "{entries:#?}"
    );
    // The guard refuses the text/plain call before authentication names its caller.
    let subjects: Vec<&str> = entries
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert_eq!(subjects, ["admin", "anonymous", "admin"]);
    for entry in &entries {
        assert_eq!(entry["client"], "127.0.0.1");
        assert!(entry["time"].as_str().unwrap().ends_with('Z'), "{entry}");
    }
    // Reads are not audited, and `after` reads on from an id.
    let last = entries[1]["id"].as_u64().unwrap();
    let newer: Vec<Value> = server
        .http
        .get(format!("{}/api/v1/audit?after={last}", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0]["method"], "DELETE");
}

/// `--tls-cert/--tls-key`: the API over TLS with a certificate made by openssl.
#[tokio::test]
async fn the_api_is_served_over_tls_from_pem_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let config = canopy_root::tls::server_config(&cert, &key).unwrap();

    let store = RedbStore::open(dir.path().join("root.redb")).unwrap();
    let root = Root::open(Arc::new(store), canopy_root::Timing::default())
        .await
        .unwrap();
    // The tests run `process` workloads, which only a trusted namespace may.
    for namespace in ["default", "test"] {
        root.trust_namespace(namespace).await.unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let tls = canopy_root::tls::TlsListener::new(listener, config).unwrap();
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        root.serve(tls, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });

    // A client trusting exactly this certificate.
    let pem = std::fs::read(&cert).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile_certs(&pem) {
        roots.add(c).unwrap();
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = connector.connect(name, tcp).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"ok\""), "{response}");

    // Plain HTTP to the TLS port gets no API answer.
    let mut plain = tokio::net::TcpStream::connect(address).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(!String::from_utf8_lossy(&answer).contains("\"ok\""));
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

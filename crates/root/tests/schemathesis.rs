//! The OpenAPI document against the real root: schemathesis (PyPI, pinned in
//! `schemathesis/requirements.txt`, installed in `.venv/schemathesis` by `scripts/test`)
//! generates requests from the document, valid ones and invalid ones, sends them to a root
//! serving on loopback with a real redb store, and checks every answer with `--checks all`:
//! valid requests accepted, invalid ones refused with a documented 4xx, every status code,
//! content type and body as documented.
//!
//! Left out, with the reason: `GET /api/v1/events`, whose 200 answer is a stream that ends
//! only when the root stops (schemathesis would wait on it until its request timeout and
//! report that as a failure); `tests/api.rs` checks its documented answers instead.
//! `schemathesis/hooks.py` adds the four rules JSON Schema cannot state (names unique
//! within a list, `latency.toService` naming a sibling, an autoscale's `min <= max`, a PUT's
//! path matching its body).

use canopy_root::Root;
use canopy_store::RedbStore;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Few examples per operation keep the run within four to five minutes on 2 cores (most of it
/// is the coverage phase, which `--max-examples` does not bound); the seed makes a failure
/// reproducible (`schemathesis run ... --seed`).
const MAX_EXAMPLES: &str = "5";
const SEED: &str = "20261201";
const DEADLINE: Duration = Duration::from_secs(480);
/// Paths schemathesis cannot drive (every method of each): the event stream never ends, and
/// a log follow may not; exec and port-forward only work over an upgraded connection
/// (`Upgrade: canopy-stream`), which it cannot make. The two label patches are excluded
/// until the document states their keys' rule (a `propertyNames` pattern, which utoipa drops;
/// to be added to `canopy_model::schema`'s table). `tests/api.rs`, the e2e streams tests and
/// `operations.rs` check their documented answers instead.
const EXCLUDED: [&str; 6] = [
    "/api/v1/events",
    "/api/v1/instances/{id}/logs",
    "/api/v1/instances/{id}/exec",
    "/api/v1/instances/{id}/port-forward",
    "/api/v1/clusters/{name}/labels",
    "/api/v1/nodes/{cluster}/{name}/labels",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn here() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis")
}

/// The version `requirements.txt` pins.
fn pinned_version() -> String {
    let requirements = std::fs::read_to_string(here().join("requirements.txt")).unwrap();
    requirements
        .lines()
        .find_map(|line| line.trim().strip_prefix("schemathesis=="))
        .expect("requirements.txt pins schemathesis==X.Y.Z")
        .to_string()
}

/// The venv's schemathesis, which must be the pinned version. Missing is a failure: the
/// test suite's setup (`scripts/test`) creates it.
fn schemathesis() -> PathBuf {
    let binary = workspace().join(".venv/schemathesis/bin/schemathesis");
    let pinned = pinned_version();
    let version = std::process::Command::new(&binary)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "{} cannot run ({e}): run scripts/schemathesis-venv (scripts/test does) to install schemathesis {pinned}",
                binary.display()
            )
        });
    let printed = String::from_utf8_lossy(&version.stdout);
    assert!(
        printed.trim().ends_with(&format!("version {pinned}")),
        "{} is {printed:?}, not the pinned {pinned}: run scripts/schemathesis-venv",
        binary.display()
    );
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_the_document_does_not_say() {
    let binary = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("root.redb")).unwrap();
    // A fuzzer is one client sending as fast as it can: the rate limits (tested in
    // `hardening.rs`) would answer most of its calls with 429 before they reach a handler.
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
    // Every operation is fuzzed as the admin (the authorisation matrix is `tests/authz.rs`'s).
    let token = root.local_admin_session().await.unwrap().access_token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        root.serve(listener, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });

    // Every operation but the excluded stream must be tested, so count them in the document.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let document: serde_json::Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Every method of a path that is not excluded (exec has two: POST and the WebSocket GET).
    let expected: usize = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| !EXCLUDED.contains(&path.as_str()))
        .map(|(_, path)| path.as_object().map_or(0, |methods| methods.len()))
        .sum();

    let started = Instant::now();
    let mut run = tokio::process::Command::new(&binary);
    run.arg("run")
        .arg(format!("{base}/openapi.json"))
        .args([
            "--checks",
            "all",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
        ])
        .args([
            "--workers",
            "1",
            "--no-color",
            "--generation-database",
            "none",
        ])
        .args(["--request-timeout", "20"])
        // Not the stateful phase: 4.32.5 infers links from `GET /audit` to operations with a
        // parameter they do not have (`namespace` into `GET /namespaces/{name}`) and stops
        // with "Invalid OpenAPI Links Definition", an error of its own inference that no
        // document change avoids. The three stateless phases cover every operation.
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(EXCLUDED.iter().flat_map(|path| ["--exclude-path", *path]))
        .env("SCHEMATHESIS_HOOKS", here().join("hooks.py"))
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(DEADLINE, run.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis still running after {DEADLINE:?}"))
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    println!("schemathesis took {:?}", started.elapsed());

    let _ = stop.send(());
    server.await.unwrap();
    assert!(
        output.status.success(),
        "schemathesis reports failures (above); reproduce with the seed {SEED}"
    );
    // Each operation was exercised, not skipped for want of a schema it can read.
    assert!(
        report.contains(&format!("Tested: {expected}")),
        "schemathesis did not test all {expected} operations but {EXCLUDED:?}"
    );
}

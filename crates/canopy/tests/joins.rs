//! Tier joins end to end: clusters join the root with one-time tokens and link with mutual
//! TLS. Every refused join, foreign or revoked certificate, and squatting hello is refused
//! with a clear error, and the real member's instances are untouched.

mod support;

use canopy_tier::trust::{self, Identity};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{
    CANOPY, Daemon, KillOnDrop, canopy, canopy_json, canopy_ok, eventually, join_token, link_as,
    start_cluster, start_node, start_root, strings,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SETTLE: Duration = Duration::from_secs(30);

/// `canopy cluster` that is expected to exit (its join refused): its stderr.
fn refused_cluster(root: &Daemon, dir: &Path, name: &str, token: &str, ca_hash: &str) -> String {
    let mut child = Command::new(CANOPY)
        .env("CANOPY_CONFIG", support::client_config())
        .args(strings(&[
            "cluster",
            "--root",
            &root.tier_url,
            "--data",
            &dir.join(format!("refused-{name}-{}", token.len()))
                .display()
                .to_string(),
            "--name",
            name,
            "--listen",
            "127.0.0.1:0",
            "--token",
            token,
            "--ca-hash",
            ca_hash,
        ]))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("canopy starts");
    let status = eventually(SETTLE, "the refused cluster to exit", || {
        child.try_wait().expect("waitable")
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "a refused join must fail: {stderr}");
    stderr
}

fn clusters(root: &Daemon) -> Vec<Value> {
    canopy_json(&root.url, &["get", "clusters"])
}

fn cluster_ready(root: &Daemon, name: &str) -> bool {
    clusters(root)
        .iter()
        .any(|c| c["name"] == name && c["state"] == "Ready")
}

/// The ids of running instances, and the cluster each runs on.
fn running(root: &Daemon) -> Vec<(String, String)> {
    let mut running: Vec<(String, String)> = canopy_json(&root.url, &["get", "instances"])
        .iter()
        .filter(|i| i["state"] == "Running")
        .map(|i| {
            (
                i["id"].as_str().unwrap_or("").to_string(),
                i["cluster"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    running.sort();
    running
}

fn copy_identity(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for file in ["tier-key.pem", "tier-cert.pem", "tier-ca.pem"] {
        std::fs::copy(from.join(file), to.join(file)).unwrap();
    }
}

#[test]
fn a_cluster_joins_once_with_a_token_and_relinks_with_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let root = start_root(dir.path());
    let mut cluster = start_cluster(dir.path(), &root, "c0", &[]);
    eventually(SETTLE, "c0 ready at the root", || {
        cluster_ready(&root, "c0").then_some(())
    });
    let key = dir.path().join("c0/tier-key.pem");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the key is private");

    // Its token is spent: the restart links with the certificate alone.
    cluster.restart();
    eventually(SETTLE, "c0 linked again after a restart", || {
        cluster_ready(&root, "c0").then_some(())
    });
    let token = cluster.args[cluster.args.iter().position(|a| a == "--token").unwrap() + 1].clone();
    let ca_hash =
        cluster.args[cluster.args.iter().position(|a| a == "--ca-hash").unwrap() + 1].clone();
    let reused = refused_cluster(&root, dir.path(), "c0", &token, &ca_hash);
    assert!(reused.contains("already used"), "{reused}");
}

#[test]
fn refused_joins_and_foreign_links_leave_the_member_and_its_instances_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-joins-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let root = start_root(dir.path());
    let cluster = start_cluster(dir.path(), &root, "c0", &[]);
    let _node = start_node(&dir.path().join("n0"), &cluster, "n0", &[]);
    let app = dir.path().join("app.yaml");
    std::fs::write(
        &app,
        format!(
            "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: keep}}\nspec:\n  services:\n    - name: keep\n      runtime: process\n      command: [/bin/sh, -c, \"exec sleep 600\", {marker}]\n      replicas: 2\n      resources: {{cpu: 10m, memory: 8Mi}}\n"
        ),
    )
    .unwrap();
    canopy_ok(&root.url, &["apply", "-f", app.to_str().unwrap()]);
    let before = eventually(SETTLE, "both instances running on c0", || {
        let running = running(&root);
        (running.len() == 2 && running.iter().all(|(_, c)| c == "c0")).then_some(running)
    });

    // Tokens: unknown, forged, expired, for another name, and a free-name token used to squat.
    let (token, ca_hash) = join_token(&root, "c9");
    let (id, _) = token.split_once('.').unwrap();
    let unknown = refused_cluster(&root, dir.path(), "c9", "zzzzzz.0123456789abcdef", &ca_hash);
    assert!(unknown.contains("unknown join token"), "{unknown}");
    let forged = refused_cluster(
        &root,
        dir.path(),
        "c9",
        &format!("{id}.0123456789abcdef"),
        &ca_hash,
    );
    assert!(forged.contains("does not match its secret"), "{forged}");
    let wrong_name = refused_cluster(&root, dir.path(), "c8", &token, &ca_hash);
    assert!(
        wrong_name.contains("is for the name \"c9\""),
        "{wrong_name}"
    );
    let wrong_ca = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    let pinned = refused_cluster(&root, dir.path(), "c9", &token, wrong_ca);
    assert!(
        pinned.contains("does not match the pinned CA hash"),
        "{pinned}"
    );
    let any_name: Value = serde_json::from_str(&canopy_ok(
        &root.url,
        &["token", "create", "--join", "cluster", "-o", "json"],
    ))
    .unwrap();
    let squat = refused_cluster(
        &root,
        dir.path(),
        "c0",
        any_name["token"].as_str().unwrap(),
        &ca_hash,
    );
    assert!(squat.contains("is taken"), "{squat}");
    let short: Value = serde_json::from_str(&canopy_ok(
        &root.url,
        &[
            "token", "create", "--join", "cluster", "--name", "c7", "--ttl", "1s", "-o", "json",
        ],
    ))
    .unwrap();
    let expires = OffsetDateTime::parse(short["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    // Waiting on the clock itself: the token's expiry is a time, not an event.
    eventually(SETTLE, "the short token's expiry", || {
        (OffsetDateTime::now_utc() > expires).then_some(())
    });
    let expired = refused_cluster(
        &root,
        dir.path(),
        "c7",
        short["token"].as_str().unwrap(),
        &ca_hash,
    );
    assert!(expired.contains("has expired"), "{expired}");

    // Links: no certificate, another CA's certificate, a member's certificate saying hello
    // as c0.
    let anonymous = link_as(
        &root.tier_url,
        trust::joining_config(&ca_hash).unwrap(),
        "c0",
    )
    .expect_err("no certificate, no link");
    assert_eq!(
        anonymous.code(),
        tonic::Code::Unauthenticated,
        "{anonymous}"
    );

    let other_root_dir = dir.path().join("other");
    let other_root = start_root(&other_root_dir);
    let (other_token, other_hash) = join_token(&other_root, "c0");
    let foreign_dir = dir.path().join("foreign");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(trust::enrol(
            &other_root.tier_url,
            &foreign_dir,
            "c0",
            trust::Role::Cluster,
            Some(&other_token),
            Some(&other_hash),
        ))
        .expect("c0 joins the other root");
    std::fs::copy(
        dir.path().join("c0/tier-ca.pem"),
        foreign_dir.join("tier-ca.pem"),
    )
    .unwrap();
    let foreign = Identity::load(&foreign_dir).unwrap().unwrap();
    let refused = link_as(&root.tier_url, foreign.client_config().unwrap(), "c0")
        .expect_err("another CA's certificate");
    assert_ne!(refused.code(), tonic::Code::Ok, "{refused}");

    let c9_dir = dir.path().join("c9");
    runtime
        .block_on(trust::enrol(
            &root.tier_url,
            &c9_dir,
            "c9",
            trust::Role::Cluster,
            Some(&token),
            Some(&ca_hash),
        ))
        .expect("c9 joins with its own token (not spent by the refusals)");
    let c9 = Identity::load(&c9_dir).unwrap().unwrap();
    let squatting = link_as(&root.tier_url, c9.client_config().unwrap(), "c0")
        .expect_err("a hello under another member's name");
    assert_eq!(
        squatting.code(),
        tonic::Code::PermissionDenied,
        "{squatting}"
    );
    assert!(squatting.message().contains("\"c9\""), "{squatting}");

    assert!(cluster_ready(&root, "c0"));
    assert_eq!(running(&root), before, "c0's instances are untouched");

    // Revoked: c0's own certificate (a copy of it) no longer links once c0 is deleted.
    let stolen = dir.path().join("stolen");
    copy_identity(&dir.path().join("c0"), &stolen);
    let output = canopy(&root.url, &["delete", "cluster", "c0"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stolen = Identity::load(&stolen).unwrap().unwrap();
    let revoked = link_as(&root.tier_url, stolen.client_config().unwrap(), "c0")
        .expect_err("a revoked certificate");
    assert_ne!(revoked.code(), tonic::Code::Ok, "{revoked}");
    // Its link was ended and cannot come back: the root loses it like a silent cluster.
    eventually(SETTLE, "c0 no longer ready after its revocation", || {
        (!cluster_ready(&root, "c0")).then_some(())
    });
}

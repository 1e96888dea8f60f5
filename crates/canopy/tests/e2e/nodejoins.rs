//! Node joins end to end: a node joins its cluster once with a node token made at the root
//! (and handed to the cluster over its link), then links with mutual TLS under the
//! cluster's own CA. Every refused join, certificate-less, foreign or revoked link and
//! squatting join is refused with a clear error, and the member node's instances are
//! untouched.

use crate::support;

use canopy_tier::trust::{self, Identity};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::{
    Daemon, KillOnDrop, canopy, canopy_json, canopy_ok, eventually, joins, link_as, node_token_for,
    start_cluster, start_node, start_root,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SETTLE: Duration = Duration::from_secs(30);

/// `canopy node` that is expected to exit (its join refused): its stderr.
fn refused_node(cluster: &Daemon, dir: &Path, name: &str, token: &str, ca_hash: &str) -> String {
    joins::refused_member(&joins::join_args(
        "node",
        "--cluster",
        &cluster.url,
        dir,
        name,
        token,
        ca_hash,
    ))
}

fn node_ready(root: &Daemon, name: &str) -> bool {
    canopy_json(&root.url, &["get", "nodes"])
        .iter()
        .any(|n| n["name"] == name && n["state"] == "Ready")
}

fn running(root: &Daemon) -> Vec<(String, String)> {
    joins::running_on(root, "node")
}

fn token_json(root: &Daemon, args: &[&str]) -> Value {
    let mut all = vec!["token", "create", "--join", "node"];
    all.extend(args);
    all.extend(["-o", "json"]);
    serde_json::from_str(&canopy_ok(&root.url, &all)).expect("a token as JSON")
}

fn field(value: &Value, key: &str) -> String {
    value[key].as_str().expect("token fields").to_string()
}

#[test]
fn a_node_joins_once_and_refused_joins_and_foreign_links_leave_its_instances_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-nodejoins-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let root = start_root(dir.path());
    let c0 = start_cluster(dir.path(), &root, "c0", &[]);
    let c1 = start_cluster(dir.path(), &root, "c1", &[]);
    let mut n0 = start_node(&dir.path().join("n0"), &c0, "n0", &[]);
    eventually(SETTLE, "n0 ready", || node_ready(&root, "n0").then_some(()));
    let key = dir.path().join("n0/tier-key.pem");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the node's key is private");
    let app = dir.path().join("app.yaml");
    std::fs::write(
        &app,
        format!(
            "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: keep}}\nspec:\n  services:\n    - name: keep\n      runtime: process\n      command: [/bin/sh, -c, \"exec sleep 600\", {marker}]\n      replicas: 2\n      resources: {{cpu: 10m, memory: 8Mi}}\n"
        ),
    )
    .unwrap();
    canopy_ok(&root.url, &["apply", "-f", app.to_str().unwrap()]);
    let before = eventually(SETTLE, "both instances running on n0", || {
        let running = running(&root);
        (running.len() == 2 && running.iter().all(|(_, n)| n == "n0")).then_some(running)
    });

    // Its token is spent: a restart links with the certificate alone, a reuse is refused.
    n0.restart();
    let token = n0.args[n0.args.iter().position(|a| a == "--token").unwrap() + 1].clone();
    let ca_hash = n0.args[n0.args.iter().position(|a| a == "--ca-hash").unwrap() + 1].clone();
    let reused = refused_node(&c0, dir.path(), "n0", &token, &ca_hash);
    assert!(reused.contains("already used"), "{reused}");

    // Tokens: unknown, forged, expired, for another name, pinned to another CA, and a
    // free-name token used to squat on n0.
    let named = token_json(&root, &["--cluster", "c0", "--name", "n9"]);
    assert_eq!(field(&named, "ca_hash"), ca_hash, "c0's CA, not the root's");
    let token = field(&named, "token");
    let (id, _) = token.split_once('.').unwrap();
    let unknown = refused_node(&c0, dir.path(), "n9", "zzzzzz.0123456789abcdef", &ca_hash);
    assert!(unknown.contains("unknown join token"), "{unknown}");
    let forged = refused_node(
        &c0,
        dir.path(),
        "n9",
        &format!("{id}.0123456789abcdef"),
        &ca_hash,
    );
    assert!(forged.contains("does not match its secret"), "{forged}");
    let wrong_name = refused_node(&c0, dir.path(), "n8", &token, &ca_hash);
    assert!(
        wrong_name.contains("is for the name \"n9\""),
        "{wrong_name}"
    );
    let (_, c1_hash) = node_token_for(&c1, None, None);
    let pinned = refused_node(&c0, dir.path(), "n9", &token, &c1_hash);
    assert!(
        pinned.contains("does not match the pinned CA hash"),
        "{pinned}"
    );
    let other_cluster = refused_node(&c1, dir.path(), "n9", &token, &c1_hash);
    assert!(
        other_cluster.contains("unknown join token"),
        "a token of c0 is unknown at c1: {other_cluster}"
    );
    let any_name = token_json(&root, &["--cluster", "c0"]);
    let squat = refused_node(&c0, dir.path(), "n0", &field(&any_name, "token"), &ca_hash);
    assert!(squat.contains("is taken"), "{squat}");
    let short = token_json(&root, &["--cluster", "c0", "--name", "n7", "--ttl", "1s"]);
    let expires = OffsetDateTime::parse(short["expires_at"].as_str().unwrap(), &Rfc3339).unwrap();
    // Waiting on the clock itself: the token's expiry is a time, not an event.
    eventually(SETTLE, "the short token's expiry", || {
        (OffsetDateTime::now_utc() > expires).then_some(())
    });
    let expired = refused_node(&c0, dir.path(), "n7", &field(&short, "token"), &ca_hash);
    assert!(expired.contains("has expired"), "{expired}");
    let unlinked = canopy(
        &root.url,
        &["token", "create", "--join", "node", "--cluster", "nowhere"],
    );
    assert!(!unlinked.status.success());
    assert!(
        String::from_utf8_lossy(&unlinked.stderr).contains("holds no certificate"),
        "{}",
        String::from_utf8_lossy(&unlinked.stderr)
    );

    // Links: no certificate, a node certificate of c1, a member's certificate saying hello
    // as n0.
    let anonymous = link_as(&c0.url, trust::joining_config(&ca_hash).unwrap(), "n0")
        .expect_err("no certificate, no link");
    assert_eq!(
        anonymous.code(),
        tonic::Code::Unauthenticated,
        "{anonymous}"
    );
    let (c1_token, c1_hash) = node_token_for(&c1, Some("n0"), None);
    joins::foreign_and_squatting_links_are_refused(
        dir.path(),
        trust::Role::Node,
        "n0",
        &dir.path().join("n0"),
        &joins::Joinable {
            tier_url: &c0.url,
            token: &token,
            ca_hash: &ca_hash,
        },
        &joins::Joinable {
            tier_url: &c1.url,
            token: &c1_token,
            ca_hash: &c1_hash,
        },
        "n9",
    );

    eventually(SETTLE, "n0 ready again after its restart", || {
        node_ready(&root, "n0").then_some(())
    });
    assert_eq!(running(&root), before, "n0's instances are untouched");

    // Revoked: n9's certificate no longer links once `delete node c0/n9` ran, and c0 forgets
    // n9; n0 keeps its instances.
    let removed = canopy(&root.url, &["delete", "node", "c0/n9"]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let n9 = Identity::load(&dir.path().join("n9")).unwrap().unwrap();
    let revoked =
        link_as(&c0.url, n9.client_config().unwrap(), "n9").expect_err("a revoked certificate");
    assert_ne!(revoked.code(), tonic::Code::Ok, "{revoked}");
    let again = canopy(&root.url, &["delete", "node", "c0/n9"]);
    assert!(!again.status.success(), "n9 is gone");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("no node"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(running(&root), before, "n0's instances are untouched");
}

#[test]
fn a_removed_node_is_forgotten_and_its_instances_move() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-nodejoins-rm-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let root = start_root(dir.path());
    let c0 = start_cluster(dir.path(), &root, "c0", &[]);
    let _n0 = start_node(&dir.path().join("n0"), &c0, "n0", &[]);
    eventually(SETTLE, "n0 ready", || node_ready(&root, "n0").then_some(()));
    let app = dir.path().join("app.yaml");
    std::fs::write(
        &app,
        format!(
            "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: moves}}\nspec:\n  services:\n    - name: moves\n      runtime: process\n      command: [/bin/sh, -c, \"exec sleep 600\", {marker}]\n      replicas: 1\n      resources: {{cpu: 10m, memory: 8Mi}}\n"
        ),
    )
    .unwrap();
    canopy_ok(&root.url, &["apply", "-f", app.to_str().unwrap()]);
    eventually(SETTLE, "the instance running on n0", || {
        (running(&root).iter().any(|(_, n)| n == "n0")).then_some(())
    });
    let _n1 = start_node(&dir.path().join("n1"), &c0, "n1", &[]);
    eventually(SETTLE, "n1 ready", || node_ready(&root, "n1").then_some(()));

    canopy_ok(&root.url, &["delete", "node", "c0/n0"]);
    eventually(SETTLE, "n0 forgotten and its instance on n1", || {
        let nodes = canopy_json(&root.url, &["get", "nodes"]);
        let forgotten = !nodes.iter().any(|n| n["name"] == "n0");
        let moved = running(&root).iter().any(|(_, n)| n == "n1");
        (forgotten && moved).then_some(())
    });
    let n0 = Identity::load(&dir.path().join("n0")).unwrap().unwrap();
    let refused = link_as(&c0.url, n0.client_config().unwrap(), "n0").expect_err("n0 was revoked");
    assert_ne!(refused.code(), tonic::Code::Ok, "{refused}");
}

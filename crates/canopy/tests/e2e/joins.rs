//! Tier joins end to end: clusters join the root with one-time tokens and link with mutual
//! TLS. Every refused join, foreign or revoked certificate, and squatting hello is refused
//! with a clear error, and the real member's instances are untouched.

use crate::support;

use canopy_tier::trust::{self, Identity};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::{
    Daemon, KillOnDrop, canopy, canopy_json, canopy_ok, eventually, join_token, joins, link_as,
    link_as_version, start_cluster, start_node, start_root, strings,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SETTLE: Duration = Duration::from_secs(30);

/// `canopy cluster` that is expected to exit (its join refused): its stderr.
fn refused_cluster(root: &Daemon, dir: &Path, name: &str, token: &str, ca_hash: &str) -> String {
    let mut args = joins::join_args(
        "cluster",
        "--root",
        &root.tier_url,
        dir,
        name,
        token,
        ca_hash,
    );
    args.extend(strings(&["--listen", "127.0.0.1:0"]));
    joins::refused_member(&args)
}

fn clusters(root: &Daemon) -> Vec<Value> {
    canopy_json(&root.url, &["get", "clusters"])
}

fn cluster_ready(root: &Daemon, name: &str) -> bool {
    clusters(root)
        .iter()
        .any(|c| c["name"] == name && c["state"] == "Ready")
}

fn running(root: &Daemon) -> Vec<(String, String)> {
    joins::running_on(root, "cluster")
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

    let other_root = start_root(&dir.path().join("other"));
    let (other_token, other_hash) = join_token(&other_root, "c0");
    joins::foreign_and_squatting_links_are_refused(
        dir.path(),
        trust::Role::Cluster,
        "c0",
        &dir.path().join("c0"),
        &joins::Joinable {
            tier_url: &root.tier_url,
            token: &token,
            ca_hash: &ca_hash,
        },
        &joins::Joinable {
            tier_url: &other_root.tier_url,
            token: &other_token,
            ca_hash: &other_hash,
        },
        "c9",
    );

    assert!(cluster_ready(&root, "c0"));
    assert_eq!(running(&root), before, "c0's instances are untouched");

    // Versions: c0's own certificate, but a hello from a newer canopy than the root, one
    // without a version, or (where this version has one) one two minor versions older, is
    // refused naming both versions, before it could replace c0's link.
    let own = Identity::load(&dir.path().join("c0")).unwrap().unwrap();
    let this = canopy_tier::version::VERSION;
    let (major, minor) = {
        let mut parts = this.split('.').map(|p| p.parse::<u64>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap())
    };
    let mut versions = vec![format!("{major}.{}.0", minor + 1), String::new()];
    if minor >= 2 {
        versions.push(format!("{major}.{}.0", minor - 2));
    } else if major >= 1 {
        versions.push(format!("{}.{minor}.0", major - 1));
    }
    for version in &versions {
        let refused = link_as_version(&root.tier_url, own.client_config().unwrap(), "c0", version)
            .expect_err("an incompatible version");
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
        assert!(refused.message().contains(this), "{refused}");
        assert!(refused.message().contains(version.as_str()), "{refused}");
    }
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

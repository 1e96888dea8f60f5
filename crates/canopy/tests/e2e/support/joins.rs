//! What the cluster and node join tests share: a member whose join must be refused, the
//! running instances and where they run, and the two link attacks a joined member must
//! survive (a certificate of another CA under its name, another member's hello under it).

use super::{CANOPY, Daemon, canopy_json, eventually, strings};
use canopy_tier::trust::{self, Identity};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(30);

/// `canopy ARGS` that is expected to exit (its join refused): its stderr.
pub fn refused_member(args: &[String]) -> String {
    let mut child = Command::new(CANOPY)
        .env("CANOPY_CONFIG", super::client_config())
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("canopy starts");
    let status = eventually(SETTLE, "the refused member to exit", || {
        child.try_wait().expect("waitable")
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "a refused join must fail: {stderr}");
    stderr
}

/// The ids of running instances with the value of `place` (`cluster` or `node`) of each.
pub fn running_on(root: &Daemon, place: &str) -> Vec<(String, String)> {
    let mut running: Vec<(String, String)> = canopy_json(&root.url, &["get", "instances"])
        .iter()
        .filter(|i| i["state"] == "Running")
        .map(|i| {
            let text = |key: &str| i[key].as_str().unwrap_or("").to_string();
            (text("id"), text(place))
        })
        .collect();
    running.sort();
    running
}

/// A parent's tier URL with a one-time join token and its CA hash.
pub struct Joinable<'a> {
    pub tier_url: &'a str,
    pub token: &'a str,
    pub ca_hash: &'a str,
}

/// With `victim` (of `role`, its identity in `victim_dir`) linked to `parent`: a certificate
/// for the victim's name from `foreign` (another root or cluster) is refused, and so is a
/// hello under the victim's name from `squatter`, a member that joins `parent` here with
/// the parent's own token (one the refusals must not have spent).
pub fn foreign_and_squatting_links_are_refused(
    dir: &Path,
    role: trust::Role,
    victim: &str,
    victim_dir: &Path,
    parent: &Joinable,
    foreign: &Joinable,
    squatter: &str,
) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let enrol = |at: &Joinable, into: &Path, name: &str| {
        runtime
            .block_on(trust::enrol(
                at.tier_url,
                into,
                name,
                role,
                Some(at.token),
                Some(at.ca_hash),
            ))
            .unwrap_or_else(|e| panic!("{name} joins {}: {e}", at.tier_url));
    };
    let foreign_dir = dir.join("foreign");
    enrol(foreign, &foreign_dir, victim);
    // It trusts the parent's CA too, so only the parent's verdict on its certificate counts.
    std::fs::copy(
        victim_dir.join("tier-ca.pem"),
        foreign_dir.join("tier-ca.pem"),
    )
    .unwrap();
    let foreign = Identity::load(&foreign_dir).unwrap().unwrap();
    let refused = super::link_as(parent.tier_url, foreign.client_config().unwrap(), victim)
        .expect_err("a certificate of another CA");
    assert_ne!(refused.code(), tonic::Code::Ok, "{refused}");

    let squatter_dir = dir.join(squatter);
    enrol(parent, &squatter_dir, squatter);
    let squatter_identity = Identity::load(&squatter_dir).unwrap().unwrap();
    let squatting = super::link_as(
        parent.tier_url,
        squatter_identity.client_config().unwrap(),
        victim,
    )
    .expect_err("a hello under another member's name");
    assert_eq!(
        squatting.code(),
        tonic::Code::PermissionDenied,
        "{squatting}"
    );
    assert!(
        squatting.message().contains(&format!("{squatter:?}")),
        "{squatting}"
    );
}

/// `canopy SUBCOMMAND` args joining `name` to `parent_flag parent_url` with `token`, data
/// in a directory of its own under `dir`.
pub fn join_args(
    subcommand: &str,
    parent_flag: &str,
    parent_url: &str,
    dir: &Path,
    name: &str,
    token: &str,
    ca_hash: &str,
) -> Vec<String> {
    let unique = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let data = dir.join(format!("refused-{name}-{unique}"));
    strings(&[
        subcommand,
        parent_flag,
        parent_url,
        "--data",
        &data.display().to_string(),
        "--name",
        name,
        "--token",
        token,
        "--ca-hash",
        ca_hash,
    ])
}

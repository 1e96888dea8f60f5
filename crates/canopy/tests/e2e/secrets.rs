//! Secrets end to end (issue 13): a deployment pulls from Debian's docker-registry with
//! htpasswd auth through an `imagePullSecret`, with every tier (root, cluster, node, each
//! its own process) logging at debug level into files; then the password is looked for in
//! those logs, in every API answer and CLI output about the application, the secret and the
//! instances, in the events, and in every file of every tier's data dir (the root's and the
//! cluster's store, the node's state file): zero hits. Without the secret the pull fails
//! with a clear reason; with it the container runs, and a `secretEnv` variable reaches it.

use crate::support;
use crate::support::registry;

use registry::{Registry, Residue, free_subnet, require};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{CANOPY, Daemon, canopy, canopy_json, canopy_ok, eventually, join_token, strings};

const SETTLE: Duration = Duration::from_secs(60);
const USER: &str = "robot";
const PASSWORD: &str = "Pa55-w0rd-7c1e9b";
/// A second secret's value, the one the container is given as `TOKEN`.
const TOKEN: &str = "tok-5d2a";

/// `canopy ARGS...` with its log (stderr, debug level) appended to `log`.
fn logged(args: &[String], log: &Path, listens: bool) -> Daemon {
    let mut wrapped = strings(&[
        "-c",
        &format!("RUST_LOG=debug exec \"$0\" \"$@\" 2>>'{}'", log.display()),
        CANOPY,
    ]);
    wrapped.extend(args.iter().cloned());
    Daemon::start_program("sh", &wrapped, listens)
}

/// Standard base64 of `bytes` (what an HTTP basic `Authorization` header carries).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every regular file under `dir` (symlinks and unreadable files skipped).
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            files_under(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

fn hits(haystack: &[u8], needle: &str) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

fn instance_of(root: &Daemon, application: &str) -> Option<Value> {
    canopy_json(&root.url, &["get", "instances"])
        .into_iter()
        .find(|i| i["application"] == application)
}

#[test]
fn an_image_pull_secret_pulls_from_an_authenticated_registry_and_the_password_is_nowhere() {
    require();
    let repository = "private/web";
    let registry = Registry::start_with_auth(USER, PASSWORD, repository);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");

    let mut root_args = strings(&[
        "root",
        "--listen",
        "127.0.0.1:0",
        "--tier-listen",
        "127.0.0.1:0",
        "--data",
    ]);
    root_args.push(data.join("root").display().to_string());
    root_args.extend(support::fast_timing());
    let mut root = logged(&root_args, &logs.join("root.log"), true);

    let (token, ca_hash) = join_token(&root, "c0");
    let mut cluster_args = strings(&["cluster", "--root", &root.tier_url, "--name", "c0"]);
    cluster_args.extend(strings(&["--token", &token, "--ca-hash", &ca_hash]));
    cluster_args.extend(strings(&["--listen", "127.0.0.1:0", "--data"]));
    cluster_args.push(data.join("c0").display().to_string());
    cluster_args.extend(support::fast_timing());
    let mut cluster = logged(&cluster_args, &logs.join("cluster.log"), true);
    cluster.name = "c0".into();
    cluster.root_api = root.url.clone();

    let node_dir = data.join("node");
    let subnet = free_subnet();
    let name = format!("sec-{}", std::process::id());
    let residue = Residue::new(&node_dir, &name, &subnet);
    let registry_address = format!("127.0.0.1:{}", registry.port);
    let mut node_args = strings(&["node", "--cluster", &cluster.url, "--name", &name, "--data"]);
    node_args.push(node_dir.display().to_string());
    node_args.extend(strings(&[
        "--insecure-registry",
        &registry_address,
        "--container-subnet",
        &subnet,
    ]));
    node_args.extend(support::node_join_args(&cluster, &name));
    let mut node = logged(&node_args, &logs.join("node.log"), false);
    eventually(SETTLE, "the node offers containers", || {
        canopy_json(&root.url, &["get", "nodes"])
            .iter()
            .any(|n| {
                n["state"] == "Ready"
                    && n["runtimes"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|r| r == "container"))
            })
            .then_some(())
    });

    let image = format!("{registry_address}/{repository}:latest");
    let descriptor = |app: &str, pull_secret: bool| {
        let secret = match pull_secret {
            true => {
                "    imagePullSecret: regcred\n    secretEnv:\n      TOKEN: {name: api, key: token}\n"
            }
            false => "",
        };
        format!(
            "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: {app}}}\nspec:\n  services:\n  - name: web\n    runtime: container\n    image: {image}\n    command: [sh, -c, 'echo token=$TOKEN; exec sleep 600']\n    resources: {{cpu: 50m, memory: 32Mi}}\n{secret}"
        )
    };
    let write = |file: &str, text: &str| {
        let path = dir.path().join(file);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };

    // Without credentials the registry refuses the pull, and the instance says so.
    let anonymous = write("anonymous.yaml", &descriptor("anonymous", false));
    canopy_ok(&root.url, &["apply", "-f", &anonymous]);
    let refused = eventually(SETTLE, "the anonymous pull is refused", || {
        let instance = instance_of(&root, "anonymous")?;
        let reason = instance["reason"].as_str().unwrap_or_default().to_string();
        reason.contains("authentication").then_some(reason)
    });
    assert!(
        refused.contains(&format!("authentication to {registry_address} failed")),
        "the reason names the registry: {refused}"
    );

    // A reference to a secret that does not exist yet holds the instance back, saying why.
    let private = write("private.yaml", &descriptor("private", true));
    canopy_ok(&root.url, &["apply", "-f", &private]);
    eventually(SETTLE, "the missing secret is named", || {
        let instance = instance_of(&root, "private")?;
        (instance["reason"]
            == "imagePullSecret: secret \"regcred\" not found in namespace \"default\"")
            .then_some(())
    });

    // The password goes in from a file (never on a command line); the token as a literal.
    let password_dir = tempfile::tempdir().expect("tempdir");
    let password_file = password_dir.path().join("password");
    std::fs::write(&password_file, PASSWORD).expect("password file");
    let mut outputs = Vec::new();
    outputs.push(canopy_ok(
        &root.url,
        &[
            "create",
            "secret",
            "regcred",
            "--from-literal",
            &format!("username={USER}"),
            "--from-file",
            &format!("password={}", password_file.display()),
        ],
    ));
    outputs.push(canopy_ok(
        &root.url,
        &[
            "create",
            "secret",
            "api",
            "--from-literal",
            &format!("token={TOKEN}"),
        ],
    ));

    let running = eventually(SETTLE, "the private container runs", || {
        let instance = instance_of(&root, "private")?;
        (instance["state"] == "Running").then_some(instance)
    });
    let id = running["id"].as_str().expect("an id").to_string();
    let logs_of = eventually(SETTLE, "the container printed its token", || {
        let out = canopy(&root.url, &["logs", &id]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("token=").then_some(text)
    });
    assert!(
        logs_of.contains(&format!("token={TOKEN}")),
        "secretEnv reached the container: {logs_of}"
    );

    // Everything the API and the CLI show about it.
    for args in [
        &["get", "application", "private", "-o", "yaml"][..],
        &["get", "application", "private", "-o", "json"],
        &["get", "services", "-o", "yaml"],
        &["get", "instances", "-o", "json"],
        &["get", "secrets", "-o", "yaml"],
        &["get", "secrets", "regcred", "-o", "json"],
        &["get", "secrets"],
        &["describe", "secret", "regcred"],
        &["describe", "application", "private"],
        &["describe", "instance", &id],
        &["events"],
    ] {
        outputs.push(canopy_ok(&root.url, args));
    }
    let shown = canopy_ok(&root.url, &["get", "secrets", "regcred", "-o", "json"]);
    assert!(
        shown.contains("\"password\"") && shown.contains("\"username\""),
        "keys are shown: {shown}"
    );
    // The application as shown applies again unchanged: it names the secret, holds no
    // (redacted) value that would overwrite the real one.
    let yaml = canopy_ok(&root.url, &["get", "application", "private", "-o", "yaml"]);
    assert!(yaml.contains("imagePullSecret: regcred"), "{yaml}");
    let mut shown_app = canopy_json(&root.url, &["get", "application", "private"])
        .pop()
        .expect("the application");
    if let Some(fields) = shown_app.as_object_mut() {
        fields.remove("status");
    }
    let again = write("again.json", &shown_app.to_string());
    let applied = canopy_ok(&root.url, &["apply", "-f", &again]);
    assert!(
        applied.contains("application/private unchanged"),
        "{applied}"
    );
    outputs.push(applied);
    let events = std::process::Command::new("curl")
        .args([
            "-s",
            "-N",
            "--max-time",
            "3",
            "-H",
            &format!("Authorization: Bearer {}", support::token_for(&root.url)),
            &format!("{}/api/v1/events?since=0", root.url),
        ])
        .output()
        .expect("curl runs");
    outputs.push(String::from_utf8_lossy(&events.stdout).into_owned());
    assert!(
        outputs
            .last()
            .is_some_and(|e| e.contains("application.put")),
        "the event stream answered"
    );

    // Stopped (the data dirs stay): what the stores committed is in their files.
    node.kill();
    cluster.kill();
    root.kill();
    drop(residue);

    let basic = base64(format!("{USER}:{PASSWORD}").as_bytes());
    let mut files = Vec::new();
    files_under(&logs, &mut files);
    let log_bytes: usize = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len() as usize)
        .sum();
    assert!(
        log_bytes > 10_000,
        "the tiers logged at debug level ({log_bytes} bytes)"
    );
    files_under(&data, &mut files);
    for wanted in ["root/root.redb", "c0/cluster.redb", "node/assignments.json"] {
        assert!(files.contains(&data.join(wanted)), "{wanted} was searched");
    }
    let mut found = Vec::new();
    let mut token_seen = false;
    for file in &files {
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        token_seen |= hits(&bytes, TOKEN) > 0;
        for needle in [PASSWORD, &basic] {
            if hits(&bytes, needle) > 0 {
                found.push(format!("{} holds {needle:?}", file.display()));
            }
        }
    }
    for (i, output) in outputs.iter().enumerate() {
        for needle in [PASSWORD, &basic] {
            if output.contains(needle) {
                found.push(format!("output {i} shows {needle:?}: {output}"));
            }
        }
    }
    assert!(found.is_empty(), "the password leaked: {found:#?}");
    // The scan does see values that are there: the container printed its token to its log.
    assert!(
        token_seen,
        "the scan read the node's files (the container's log holds the token)"
    );
    let state = std::fs::read_to_string(node_dir.join("assignments.json")).expect("state file");
    assert!(
        state.contains("sealedSecrets"),
        "the node keeps the values, sealed: {state}"
    );
}

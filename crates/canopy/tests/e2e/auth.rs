//! Users, roles and tokens end to end: `canopy up` logs its own CLI in, the first admin's
//! password file is private, and the verbs of user management and API tokens work on a real
//! root with what each role may and may not do.

use crate::support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::{CANOPY, Daemon, KillOnDrop, client_config, examples, start_root, strings};

/// What hello-process.yaml's processes run.
const HELLO: &str = "hello from $CANOPY_INSTANCE";

/// `canopy ARGS` with `config` as its client config and nothing from the environment
/// choosing a server: the current context decides. `stdin` is piped in when given.
fn client(config: &Path, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(CANOPY)
        .args(args)
        .env_remove("CANOPY_SERVER")
        .env_remove("CANOPY_CONTEXT")
        .env_remove("CANOPY_TOKEN")
        .env("CANOPY_CONFIG", config)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("canopy runs");
    let mut input = child.stdin.take().expect("piped stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("stdin is written");
    }
    drop(input);
    child.wait_with_output().expect("canopy ends")
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

fn refused(output: Output, status: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "succeeded, expected {status}");
    assert!(stderr.contains(status), "expected {status}: {stderr}");
    stderr
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The README's first two commands, with nothing in between: `canopy up` logged the CLI in.
#[test]
fn canopy_up_logs_the_cli_in_and_keeps_the_admin_password_private() {
    let data = tempfile::tempdir().unwrap();
    let _cleanup = KillOnDrop(HELLO.into());
    let mut args = strings(&[
        "up",
        "--listen",
        "127.0.0.1:0",
        "--tier-listen",
        "127.0.0.1:0",
        "--data",
    ]);
    args.push(data.path().display().to_string());
    args.extend(support::fast_timing());
    let up = Daemon::start(&args, true);
    let config = client_config();
    assert_eq!(mode(&config), 0o600, "the client config holds tokens");
    let hello = examples().join("hello-process.yaml");
    ok(client(
        &config,
        &["apply", "-f", hello.to_str().unwrap()],
        None,
        &[],
    ));
    let listed = ok(client(&config, &["get", "instances"], None, &[]));
    assert!(listed.contains("hello"), "{listed}");
    let current = ok(client(&config, &["config", "current-context"], None, &[]));
    assert_eq!(current.trim(), "local");

    // The first start's password: private, and good for a login.
    let file = data.path().join("admin-password");
    assert_eq!(mode(&file), 0o600);
    let password = std::fs::read_to_string(&file).unwrap();
    assert!(password.trim().len() >= 16, "a long random password");
    assert!(
        !std::fs::read_to_string(&config)
            .unwrap()
            .contains(password.trim())
    );
    let other = data.path().join("other-config.yaml");
    let login = [
        "login",
        "--server",
        up.url.as_str(),
        "--user",
        "admin",
        "--password-stdin",
    ];
    ok(client(&other, &login, Some(&password), &[]));
    assert_eq!(mode(&other), 0o600);
    ok(client(&other, &["get", "apps"], None, &[]));
    refused(client(&other, &login, Some("wrong password\n"), &[]), "401");

    // No token, or a forged one: 401 (the CLI says so).
    let empty = data.path().join("empty-config.yaml");
    let server = [("CANOPY_SERVER", up.url.as_str())];
    refused(client(&empty, &["get", "apps"], None, &server), "401");
    let forged = [
        ("CANOPY_SERVER", up.url.as_str()),
        ("CANOPY_TOKEN", "e30.e30.AAAA"),
    ];
    refused(client(&empty, &["get", "apps"], None, &forged), "401");
}

/// An admin makes a developer of one namespace; the developer deploys there and nowhere
/// else, hands on a viewer token, and loses everything when deleted.
#[test]
fn roles_grants_and_api_tokens_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let root = start_root(dir.path());
    let admin = client_config();
    let server = [("CANOPY_SERVER", root.url.as_str())];
    ok(client(
        &admin,
        &["create", "user", "dev", "--password-stdin"],
        Some("dev-password-1\n"),
        &server,
    ));
    refused(
        client(
            &admin,
            &["create", "user", "dev", "--password-stdin"],
            Some("dev-password-1\n"),
            &server,
        ),
        "409",
    );
    ok(client(
        &admin,
        &[
            "grant",
            "developer",
            "--user",
            "dev",
            "--namespace",
            "team-a",
        ],
        None,
        &server,
    ));
    let users = ok(client(&admin, &["get", "users"], None, &server));
    assert!(users.contains("developer@team-a"), "{users}");

    for namespace in ["team-a", "team-b"] {
        ok(client(
            &admin,
            &["create", "namespace", namespace, "--trusted"],
            None,
            &server,
        ));
    }
    let dev = dir.path().join("dev-config.yaml");
    let login = [
        "login",
        "--server",
        root.url.as_str(),
        "--user",
        "dev",
        "--password-stdin",
    ];
    ok(client(&dev, &login, Some("dev-password-1\n"), &[]));
    let app = dir.path().join("app.yaml");
    std::fs::write(&app, "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {name: shop, namespace: team-a}\nspec:\n  services:\n    - {name: web, runtime: process, command: [/bin/sleep, '600'], replicas: 0}\n").unwrap();
    ok(client(
        &dev,
        &["apply", "-f", app.to_str().unwrap()],
        None,
        &[],
    ));
    let other = dir.path().join("other.yaml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&app)
            .unwrap()
            .replace("team-a", "team-b"),
    )
    .unwrap();
    let stderr = refused(
        client(&dev, &["apply", "-f", other.to_str().unwrap()], None, &[]),
        "403",
    );
    assert!(stderr.contains("team-b"), "{stderr}");
    ok(client(
        &admin,
        &["apply", "-f", other.to_str().unwrap()],
        None,
        &server,
    ));
    let seen = ok(client(&dev, &["get", "apps", "-A"], None, &[]));
    assert!(
        seen.contains("team-a") && !seen.contains("team-b"),
        "{seen}"
    );
    refused(client(&dev, &["get", "users"], None, &[]), "403");
    refused(client(&dev, &["cordon", "local/n1"], None, &[]), "403");

    // A viewer token for team-a: reads there, changes nothing; revoked, it is refused.
    let created = ok(client(
        &dev,
        &[
            "token",
            "create",
            "--role",
            "viewer",
            "--namespace",
            "team-a",
            "--ttl",
            "1h",
            "-o",
            "json",
        ],
        None,
        &[],
    ));
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let token = created["token"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let as_viewer = [
        ("CANOPY_SERVER", root.url.as_str()),
        ("CANOPY_TOKEN", token),
    ];
    let empty = dir.path().join("empty.yaml");
    let apps = ok(client(
        &empty,
        &["get", "apps", "-n", "team-a"],
        None,
        &as_viewer,
    ));
    assert!(apps.contains("shop"), "{apps}");
    refused(
        client(
            &empty,
            &["delete", "application", "shop", "-n", "team-a"],
            None,
            &as_viewer,
        ),
        "403",
    );
    refused(
        client(
            &dev,
            &["token", "create", "--role", "admin", "--all-namespaces"],
            None,
            &[],
        ),
        "403",
    );
    let listed = ok(client(&dev, &["token", "list"], None, &[]));
    assert!(listed.contains(id), "{listed}");
    ok(client(&dev, &["token", "revoke", id], None, &[]));
    refused(
        client(&empty, &["get", "apps", "-n", "team-a"], None, &as_viewer),
        "401",
    );

    // Deleting the user ends its login too.
    ok(client(&admin, &["delete", "user", "dev"], None, &server));
    refused(
        client(&dev, &["get", "apps", "-n", "team-a"], None, &[]),
        "401",
    );
    refused(
        client(&admin, &["delete", "user", "admin"], None, &server),
        "409",
    );
}

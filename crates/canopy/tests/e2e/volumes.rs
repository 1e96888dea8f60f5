//! Volumes (issue 18): a `node` volume keeps what one instance wrote for its replacement on
//! the same node and goes when the application is deleted; an `emptyDir` goes with its
//! instance; a `hostPath` runs under a prefix the node allows and is refused, with the
//! node's reason, outside them; a container sees its volumes as bind mounts (read-only
//! where asked). Processes under `canopy up` for speed; the container through every tier.

use crate::support;
use crate::support::registry;

use registry::{Registry, Residue, free_subnet, require};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{
    Daemon, KillOnDrop, canopy_json, canopy_ok, eventually, fast_timing, start_cluster, start_root,
    strings,
};

const SETTLE: Duration = Duration::from_secs(30);

/// `canopy up` on a random loopback port with its state in `data`, plus `extra` flags.
fn up_with(data: &Path, extra: &[&str]) -> Daemon {
    let mut args = strings(&["up", "--listen", "127.0.0.1:0", "--data"]);
    args.push(data.display().to_string());
    args.extend(fast_timing());
    args.extend(strings(extra));
    Daemon::start(&args, true)
}

fn apply(url: &str, dir: &Path, yaml: &str) {
    let file = dir.join("app.yaml");
    std::fs::write(&file, yaml).unwrap();
    canopy_ok(url, &["apply", "-f", file.to_str().unwrap()]);
}

/// The id of the running instance of `service` other than `not`.
fn running(url: &str, service: &str, not: Option<&str>) -> String {
    eventually(SETTLE, &format!("an instance of {service} running"), || {
        canopy_json(url, &["get", "instances"])
            .iter()
            .find(|i| i["service"] == service && i["state"] == "Running" && i["id"].as_str() != not)
            .map(|i| i["id"].as_str().unwrap().to_string())
    })
}

#[test]
fn a_node_volume_outlives_its_instance_an_empty_dir_does_not_and_both_go_with_the_application() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let marker = format!("canopy-volumes-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let up = up_with(&data, &[]);
    // Each instance prints what the ones before it wrote, then adds its own id.
    apply(
        &up.url,
        dir.path(),
        &format!(
            r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: keep}}
spec:
  services:
    - name: store
      runtime: process
      command: [/bin/sh, -c, 'cat "$CANOPY_VOLUME_DATA/ids" 2>/dev/null; echo "$CANOPY_INSTANCE" >> "$CANOPY_VOLUME_DATA/ids"; touch "$CANOPY_VOLUME_SCRATCH/mine"; echo written; exec sleep 600', {marker}]
      resources: {{cpu: 10m, memory: 8Mi}}
      volumes:
        - {{name: data, path: /var/lib/store}}
        - {{name: scratch, kind: emptyDir, path: /tmp/scratch}}
"#
        ),
    );
    let node = data.join("node");
    let volume = node.join("volumes/default/keep/data");
    let first = running(&up.url, "store", None);
    let scratch = node.join("@emptydir").join(&first).join("scratch");
    eventually(SETTLE, "the first instance wrote its volumes", || {
        let ids = std::fs::read_to_string(volume.join("ids")).ok()?;
        (ids == format!("{first}\n") && scratch.join("mine").is_file()).then_some(())
    });

    canopy_ok(&up.url, &["delete", "instance", &first]);
    let second = running(&up.url, "store", Some(first.as_str()));
    let logs = eventually(SETTLE, "the replacement read the volume", || {
        let logs = canopy_ok(&up.url, &["logs", &second]);
        logs.contains("written").then_some(logs)
    });
    assert_eq!(
        logs,
        format!("{first}\nwritten\n"),
        "the replacement found what the first instance wrote"
    );
    eventually(
        SETTLE,
        "the first instance's emptyDir removed with it",
        || (!scratch.exists()).then_some(()),
    );
    assert!(
        node.join("@emptydir")
            .join(&second)
            .join("scratch/mine")
            .is_file(),
        "the replacement has an emptyDir of its own"
    );

    canopy_ok(&up.url, &["delete", "application", "keep"]);
    eventually(SETTLE, "the application's volumes removed with it", || {
        let gone = !node.join("volumes/default/keep").exists()
            && !node.join("@emptydir").join(&second).exists();
        let instances = canopy_json(&up.url, &["get", "instances"]);
        (gone && instances.is_empty()).then_some(())
    });
}

/// Every event reason of the instances of `service`.
fn reasons(url: &str, service: &str) -> Vec<String> {
    canopy_json(url, &["get", "instances"])
        .iter()
        .filter(|i| i["service"] == service)
        .flat_map(|i| {
            let events = i["events"].as_array().cloned().unwrap_or_default();
            let reason = i["reason"].as_str().map(str::to_string);
            events
                .iter()
                .filter_map(|e| e["reason"].as_str().map(str::to_string))
                .chain(reason)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn a_host_path_runs_under_an_allowed_prefix_and_is_refused_outside_with_the_node_s_reason() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let allowed = dir.path().join("allowed");
    std::fs::create_dir_all(allowed.join("logs")).unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let marker = format!("canopy-host-path-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let up = up_with(&data, &["--allow-host-path", allowed.to_str().unwrap()]);
    apply(
        &up.url,
        dir.path(),
        &format!(
            r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: hosts}}
spec:
  services:
    - name: inside
      runtime: process
      command: [/bin/sh, -c, 'echo hej > "$CANOPY_VOLUME_LOGS/out"; exec sleep 600', {marker}]
      resources: {{cpu: 10m, memory: 8Mi}}
      volumes:
        - {{name: logs, kind: hostPath, hostPath: {inside}, path: /logs}}
    - name: outside
      runtime: process
      command: [/bin/sh, -c, 'exec sleep 600', {marker}]
      resources: {{cpu: 10m, memory: 8Mi}}
      volumes:
        - {{name: logs, kind: hostPath, hostPath: {outside}, path: /logs}}
"#,
            inside = allowed.join("logs").display(),
            outside = outside.display(),
        ),
    );
    running(&up.url, "inside", None);
    eventually(SETTLE, "the process wrote into the host directory", || {
        let out = std::fs::read_to_string(allowed.join("logs/out")).ok()?;
        (out == "hej\n").then_some(())
    });
    let expected = format!("host path {} is not under a prefix node", outside.display());
    let seen = eventually(SETTLE, "the node's refusal reaching the user", || {
        let reasons = reasons(&up.url, "outside");
        reasons.iter().find(|r| r.contains(&expected)).cloned()
    });
    assert!(
        seen.contains(&format!("(allowed: {})", allowed.display())),
        "the refusal names what the node allows: {seen}"
    );
    let instances = canopy_json(&up.url, &["get", "instances"]);
    let refused: Vec<&Value> = instances
        .iter()
        .filter(|i| i["service"] == "outside")
        .collect();
    assert!(
        refused.iter().all(|i| i["state"] != "Running"),
        "nothing of it runs: {refused:?}"
    );
}

/// A root, cluster `c0` and a container node offering images from a test registry (fields
/// drop in order: the node and its residue before the rest).
struct ContainerBed {
    _node: Daemon,
    _residue: Residue,
    node_dir: PathBuf,
    _cluster: Daemon,
    root: Daemon,
    registry: Registry,
}

impl ContainerBed {
    fn start(dir: &Path) -> ContainerBed {
        let registry = Registry::start();
        let root = start_root(dir);
        let cluster = start_cluster(dir, &root, "c0", &[]);
        let node_dir = dir.join("node");
        let subnet = free_subnet();
        let name = format!("vol-{}", std::process::id());
        let residue = Residue::new(&node_dir, &name, &subnet);
        let registry_address = format!("127.0.0.1:{}", registry.port);
        let extra = [
            "--insecure-registry",
            &registry_address,
            "--container-subnet",
            &subnet,
        ];
        let node = support::start_node(&node_dir, &cluster, &name, &extra);
        ContainerBed {
            _node: node,
            _residue: residue,
            node_dir,
            _cluster: cluster,
            root,
            registry,
        }
    }
}

#[test]
fn a_container_sees_its_volumes_as_bind_mounts_read_only_where_asked() {
    require();
    let dir = tempfile::tempdir().unwrap();
    let bed = ContainerBed::start(dir.path());
    let url = &bed.root.url;
    let image = format!("127.0.0.1:{}/busybox:latest", bed.registry.port);
    apply(
        url,
        dir.path(),
        &format!(
            r#"apiVersion: canopy.dev/v1
kind: Application
metadata: {{name: boxes}}
spec:
  services:
    - name: box
      runtime: container
      image: {image}
      command: [sleep, "600"]
      volumes:
        - {{name: data, path: /data}}
        - {{name: seen, kind: emptyDir, path: /seen, readOnly: true}}
"#
        ),
    );
    let boxed = eventually(Duration::from_secs(60), "the container running", || {
        canopy_json(url, &["get", "instances"])
            .iter()
            .find(|i| i["state"] == "Running")
            .map(|i| i["id"].as_str().unwrap().to_string())
    });
    let exec = |script: &str| support::canopy(url, &["exec", &boxed, "--", "sh", "-c", script]);
    let wrote = exec("echo hej > /data/note && echo $CANOPY_VOLUME_DATA");
    assert!(wrote.status.success(), "{wrote:?}");
    assert_eq!(String::from_utf8_lossy(&wrote.stdout), "/data\n");
    let on_node = bed.node_dir.join("volumes/default/boxes/data/note");
    assert_eq!(
        std::fs::read_to_string(&on_node).unwrap(),
        "hej\n",
        "written by the unprivileged container user into the node's directory"
    );
    let refused = exec("echo x > /seen/x");
    assert!(!refused.status.success(), "a read-only volume: {refused:?}");
    let mounts = canopy_ok(url, &["exec", &boxed, "--", "cat", "/proc/mounts"]);
    let line = |path: &str| {
        mounts
            .lines()
            .find(|l| l.split(' ').nth(1) == Some(path))
            .unwrap_or_else(|| panic!("{path} is a mount of its own: {mounts}"))
            .to_string()
    };
    assert!(line("/seen").contains(" ro,"), "{}", line("/seen"));
    assert!(line("/data").contains(" rw,"), "{}", line("/data"));
    canopy_ok(url, &["delete", "application", "boxes"]);
    eventually(SETTLE, "the application's volume removed with it", || {
        (!bed.node_dir.join("volumes/default/boxes").exists()).then_some(())
    });
}

//! Everything Canopy writes for itself in a data directory is its own: after `canopy up`
//! ran a workload (its logs written, its state saved), every file there is 0600 and every
//! directory 0700. Container root filesystems and image layers keep the image's modes and
//! are not walked.

use crate::support;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{
    Daemon, KillOnDrop, canopy, canopy_json, canopy_ok, eventually, fast_timing, strings,
};

const SETTLE: Duration = Duration::from_secs(30);

/// Directories whose contents are an image's, not Canopy's.
fn is_image_content(path: &Path) -> bool {
    path.components().any(|c| {
        let c = c.as_os_str();
        c == "@rootfs" || c == "layers" || c == "@files"
    })
}

/// Every entry under `dir` whose mode is not private: `(path, mode)`.
fn not_private(dir: &Path, found: &mut Vec<(PathBuf, u32)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let mode = meta.permissions().mode() & 0o7777;
        let kind = meta.file_type();
        if kind.is_symlink() || kind.is_socket() || kind.is_fifo() {
            continue;
        }
        if kind.is_dir() {
            if mode != 0o700 {
                found.push((path.clone(), mode));
            }
            if !is_image_content(&path) {
                not_private(&path, found);
            }
        } else if mode != 0o600 {
            found.push((path, mode));
        }
    }
}

#[test]
fn canopy_up_keeps_every_file_of_its_data_dir_private() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let marker = format!("canopy-private-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let mut args = strings(&["up", "--listen", "127.0.0.1:0", "--data"]);
    args.push(data.display().to_string());
    args.extend(fast_timing());
    let up = Daemon::start(&args, true);
    let app = dir.path().join("app.yaml");
    std::fs::write(
        &app,
        format!(
            "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: talk}}\nspec:\n  services:\n    - name: talk\n      runtime: process\n      command: [/bin/sh, -c, \"echo hello; exec sleep 600\", {marker}]\n      resources: {{cpu: 10m, memory: 8Mi}}\n"
        ),
    )
    .unwrap();
    canopy_ok(&up.url, &["apply", "-f", app.to_str().unwrap()]);
    eventually(SETTLE, "the workload running and its log written", || {
        let instances = canopy_json(&up.url, &["get", "instances"]);
        let id = instances.iter().find(|i| i["state"] == "Running")?["id"]
            .as_str()?
            .to_string();
        let logs = canopy(&up.url, &["logs", &id]);
        String::from_utf8_lossy(&logs.stdout)
            .contains("hello")
            .then_some(())
    });

    let mut found = Vec::new();
    let top = std::fs::metadata(&data).unwrap().permissions().mode() & 0o7777;
    if top != 0o700 {
        found.push((data.clone(), top));
    }
    not_private(&data, &mut found);
    assert!(
        found.is_empty(),
        "not private: {:#?}",
        found
            .iter()
            .map(|(p, m)| format!("{} {m:o}", p.display()))
            .collect::<Vec<_>>()
    );
    // The walk saw the stores, the certificates and the workload's files.
    for file in [
        "root.redb",
        "cluster/cluster.redb",
        "node/tier-key.pem",
        "cluster/tier-nodes-ca-key.pem",
    ] {
        assert!(data.join(file).is_file(), "{file} is where it should be");
    }
}

//! Whether gVisor runs on this node: a node offers the `gvisor` sandbox only when a probe
//! sandbox starts (`runsc do`: a sandbox over a read-only view of the host's root, running
//! `/bin/true` with no network), since runsc installs fine on hosts whose kernel or
//! platform it cannot use.

use super::cli::{self, find_binary};
use crate::RuntimeError;
use crate::supervise::DEFAULT_PATH;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Starts a probe sandbox with `binary` (a name in PATH or a path), its runsc state under
/// `scratch` (removed afterwards); the resolved binary when the probe exited 0.
pub async fn probe_gvisor(
    binary: &str,
    scratch: &Path,
    timeout: Duration,
) -> Result<PathBuf, RuntimeError> {
    let path = find_binary(binary)?;
    std::fs::create_dir_all(scratch).map_err(|e| RuntimeError::io("create", scratch, e))?;
    let mut cmd = tokio::process::Command::new(&path);
    cmd.env_clear()
        .env("PATH", DEFAULT_PATH)
        .arg("--root")
        .arg(scratch)
        .arg("--network=none")
        .args(["do", "/bin/true"]);
    let result = cli::output(cmd, None, timeout, "runsc do (gVisor probe)").await;
    if let Err(e) = std::fs::remove_dir_all(scratch) {
        tracing::warn!(dir = %scratch.display(), error = %e, "gVisor probe state left");
    }
    let out = result?;
    if !out.status.success() {
        return Err(RuntimeError::oci(
            "runsc",
            "do",
            "probe",
            format!("{}: {}", out.status, cli::trimmed(&out)),
        ));
    }
    Ok(path)
}

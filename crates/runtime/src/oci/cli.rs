//! The OCI runtime's command line (runc, crun or gVisor's runsc) and external commands with
//! a deadline.

use crate::RuntimeError;
use crate::supervise::DEFAULT_PATH;
use serde::Deserialize;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// Runs `cmd` to completion with `stdin`, killing it after `timeout`.
pub(crate) async fn output(
    cmd: tokio::process::Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
    what: &str,
) -> Result<Output, RuntimeError> {
    canopy_net::output(cmd, stdin, timeout, what)
        .await
        .map_err(|e| match e {
            canopy_net::CommandError::Spawn { command, source } => {
                RuntimeError::Spawn { command, source }
            }
            canopy_net::CommandError::Timeout { command, timeout } => {
                RuntimeError::CommandTimeout { command, timeout }
            }
        })
}

/// The last error a runtime wrote to its JSON log (`--log F --log-format json`), or its
/// plain text when it is not JSON.
pub(crate) fn last_log_error(log: &Path) -> Option<String> {
    #[derive(Deserialize)]
    struct Line {
        #[serde(default)]
        level: String,
        #[serde(default)]
        msg: String,
    }
    let text = fs::read_to_string(log).ok()?;
    let mut last = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Line>(line) {
            Ok(l) if matches!(l.level.as_str(), "error" | "fatal") => last = Some(l.msg),
            Ok(_) => {}
            Err(_) => last = Some(line.trim().to_string()),
        }
    }
    last.filter(|m| !m.is_empty())
}

/// First line-ish of a command's stderr (or stdout), trimmed, for error messages.
pub(crate) fn trimmed(out: &Output) -> String {
    let text = if out.stderr.iter().any(|b| !b.is_ascii_whitespace()) {
        &out.stderr
    } else {
        &out.stdout
    };
    let s = String::from_utf8_lossy(text).trim().to_string();
    const MAX: usize = 2000;
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s
    }
}

/// Which runtime the binary is: they differ in a few flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Runc,
    Crun,
    /// gVisor: the container's system calls go to its user-space kernel.
    Runsc,
    Other,
}

/// `runc` or `crun` with a private state root (`--root`), so agents never share state.
#[derive(Debug, Clone)]
pub(crate) struct Cli {
    pub binary: PathBuf,
    pub name: String,
    pub flavor: Flavor,
    pub root: PathBuf,
    pub timeout: Duration,
}

/// The container's state as `runc state` prints it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OciState {
    pub status: String,
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds `binary` (a path, or a name looked up in PATH and the sbin directories).
pub(crate) fn find_binary(binary: &str) -> Result<PathBuf, RuntimeError> {
    let name = Path::new(binary)
        .file_name()
        .and_then(OsStr::to_str)
        .unwrap_or(binary)
        .to_string();
    let missing = || RuntimeError::RuntimeNotInstalled {
        hint: match name.as_str() {
            "runc" | "crun" | "runsc" => format!("apt-get install {name}"),
            "qemu-system-x86_64" => "apt-get install qemu-system-x86".to_string(),
            _ => format!("install it or give its full path (looked for {binary:?})"),
        },
        binary: name.clone(),
    };
    if binary.contains('/') {
        let p = PathBuf::from(binary);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(missing())
        };
    }
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(DEFAULT_PATH.split(':'))
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(binary))
        .find(|p| is_executable(p))
        .ok_or_else(missing)
}

impl Cli {
    pub fn new(binary: &str, root: PathBuf, timeout: Duration) -> Result<Cli, RuntimeError> {
        let path = find_binary(binary)?;
        let name = path
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or("runc")
            .to_string();
        let flavor = match name.as_str() {
            "runc" => Flavor::Runc,
            "crun" => Flavor::Crun,
            "runsc" => Flavor::Runsc,
            _ => Flavor::Other,
        };
        Ok(Cli {
            binary: path,
            name,
            flavor,
            root,
            timeout,
        })
    }

    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.env_clear()
            .env("PATH", DEFAULT_PATH)
            .arg("--root")
            .arg(&self.root);
        cmd
    }

    /// Whether containers are made with `create` and set going with `start` (runc, crun and
    /// others), rather than by a foreground `run`: runsc's pid file names its sandbox, not
    /// the workload, whose exit only a foreground runsc reports.
    pub fn creates_then_starts(&self) -> bool {
        self.flavor != Flavor::Runsc
    }

    /// The global flags of a `run` or `create` (after the binary). `netns`: the bundle
    /// joins a network namespace the node prepared.
    fn global_args(&self, log: &Path, netns: bool) -> Vec<String> {
        let mut args = vec![
            "--root".to_string(),
            self.root.display().to_string(),
            "--log".to_string(),
            log.display().to_string(),
            "--log-format".to_string(),
            "json".to_string(),
        ];
        if self.flavor == Flavor::Runsc {
            // runsc makes no namespace of its own (a fresh one fails "cannot run with network
            // enabled in root network namespace"): none without the node's. With it, runsc's
            // netstack (`sandbox`) fails the same way on Debian's runsc (2022-12-19), so the
            // sandbox uses the network of the instance's own namespace (`host` inside it).
            let network = if netns { "host" } else { "none" };
            args.push(format!("--network={network}"));
        }
        args
    }

    /// The arguments of a foreground `run` (after the binary): global flags first.
    pub fn run_args(
        &self,
        bundle: &Path,
        pid_file: &Path,
        log: &Path,
        id: &str,
        netns: bool,
    ) -> Vec<String> {
        let mut args = self.global_args(log, netns);
        args.push("run".to_string());
        // runc keeps the stopped container (and so its cgroup, with the OOM counters)
        // until we delete it; crun has no such flag and removes it at exit.
        if self.flavor == Flavor::Runc {
            args.push("--keep".to_string());
        }
        args.extend(Self::bundle_args(bundle, pid_file, id));
        args
    }

    /// The arguments of a `create` (after the binary): it returns once the container's
    /// init is set up and waits for `start`; its stdio is the container's. Nothing deletes
    /// the stopped container (its cgroup, with the OOM counters) until we do.
    pub fn create_args(&self, bundle: &Path, pid_file: &Path, log: &Path, id: &str) -> Vec<String> {
        let mut args = self.global_args(log, false);
        args.push("create".to_string());
        args.extend(Self::bundle_args(bundle, pid_file, id));
        args
    }

    fn bundle_args(bundle: &Path, pid_file: &Path, id: &str) -> [String; 5] {
        [
            "--bundle".to_string(),
            bundle.display().to_string(),
            "--pid-file".to_string(),
            pid_file.display().to_string(),
            id.to_string(),
        ]
    }

    /// `start <id>`: the created container's init executes the workload.
    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let mut cmd = self.command();
        cmd.arg("start").arg(id);
        let out = output(cmd, None, self.timeout, &format!("{} start", self.name)).await?;
        if out.status.success() {
            return Ok(());
        }
        Err(RuntimeError::oci(&self.name, "start", id, trimmed(&out)))
    }

    /// `exec [--tty] <id> COMMAND...`: runs in the container's namespaces with its process
    /// spec (environment, working directory, user). In the foreground with `--tty`, the
    /// runtime makes the container a terminal of its own and relays it to the caller's stdio
    /// (a terminal too, whose size it follows).
    pub fn exec_command(
        &self,
        id: &str,
        command: &[String],
        tty: bool,
    ) -> Result<tokio::process::Command, RuntimeError> {
        let mut cmd = self.command();
        cmd.arg("exec");
        if tty {
            // runsc's exec hands a terminal only to a console socket, never to our stdio.
            if self.flavor == Flavor::Runsc {
                return Err(RuntimeError::Unsupported {
                    what: "exec with a terminal (--tty) into a gVisor sandbox",
                });
            }
            cmd.arg("--tty");
        }
        cmd.arg(id).args(command);
        Ok(cmd)
    }

    /// `state <id>`; None when the runtime does not know the container.
    pub async fn state(&self, id: &str) -> Result<Option<OciState>, RuntimeError> {
        let mut cmd = self.command();
        cmd.arg("state").arg(id);
        let out = output(cmd, None, self.timeout, &format!("{} state", self.name)).await?;
        if !out.status.success() {
            return Ok(None);
        }
        serde_json::from_slice(&out.stdout).map(Some).map_err(|e| {
            RuntimeError::oci(&self.name, "state", id, format!("unreadable state: {e}"))
        })
    }

    /// `kill <id> <signal>`; Ok when the container is already stopped or gone.
    pub async fn kill(&self, id: &str, signal: &str) -> Result<(), RuntimeError> {
        let mut cmd = self.command();
        cmd.arg("kill").arg(id).arg(signal);
        let out = output(cmd, None, self.timeout, &format!("{} kill", self.name)).await?;
        if out.status.success() {
            return Ok(());
        }
        match self.state(id).await? {
            Some(s) if s.status == "running" || s.status == "paused" => {
                Err(RuntimeError::oci(&self.name, "kill", id, trimmed(&out)))
            }
            _ => Ok(()),
        }
    }

    /// `delete --force <id>`; idempotent.
    pub async fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        let mut cmd = self.command();
        cmd.arg("delete").arg("--force").arg(id);
        let out = output(cmd, None, self.timeout, &format!("{} delete", self.name)).await?;
        if out.status.success() || self.state(id).await?.is_none() {
            return Ok(());
        }
        Err(RuntimeError::oci(&self.name, "delete", id, trimmed(&out)))
    }

    /// Ids of every container in this runtime's root.
    pub async fn list(&self) -> Result<Vec<String>, RuntimeError> {
        let mut cmd = self.command();
        cmd.arg("list").arg("--quiet");
        let out = output(cmd, None, self.timeout, &format!("{} list", self.name)).await?;
        if !out.status.success() {
            return Err(RuntimeError::oci(&self.name, "list", "-", trimmed(&out)));
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_runtime_says_how_to_install() {
        let e = find_binary("/nonexistent/runc").expect_err("missing");
        assert_eq!(e.to_string(), "runc is not installed: apt-get install runc");
        let e = find_binary("no-such-oci-runtime").expect_err("missing");
        assert!(
            e.to_string()
                .contains("no-such-oci-runtime is not installed")
        );
    }

    #[test]
    fn log_errors_are_extracted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log.json");
        fs::write(
            &p,
            "{\"level\":\"warning\",\"msg\":\"w\"}\n{\"level\":\"error\",\"msg\":\"exec: \\\"nope\\\": not found\"}\n",
        )
        .expect("write");
        assert_eq!(
            last_log_error(&p).as_deref(),
            Some("exec: \"nope\": not found")
        );
        fs::write(&p, "cgroups in hybrid mode not supported\n").expect("write");
        assert_eq!(
            last_log_error(&p).as_deref(),
            Some("cgroups in hybrid mode not supported")
        );
        assert_eq!(last_log_error(&dir.path().join("none")), None);
    }
}

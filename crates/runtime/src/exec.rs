//! Running a command inside a running instance (`canopy exec`): for a process instance, with
//! the instance's own environment and working directory (read from its leader's `/proc`
//! entry, so they are exactly what it runs with) and in its cgroup; for a container, through
//! `runc exec`, which enters its namespaces and takes its process spec.

use crate::RuntimeError;
use crate::cgroup::InstanceCgroup;
use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::process::Command;

/// The environment of live process `pid`, as `/proc/<pid>/environ` holds it.
fn environment_of(pid: u32) -> std::io::Result<Vec<(OsString, OsString)>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ"))?;
    Ok(raw
        .split(|b| *b == 0)
        .filter(|v| !v.is_empty())
        .filter_map(|var| {
            let eq = var.iter().position(|b| *b == b'=')?;
            Some((
                OsString::from_vec(var[..eq].to_vec()),
                OsString::from_vec(var[eq + 1..].to_vec()),
            ))
        })
        .collect())
}

pub(crate) fn check_command(id: &str, command: &[String]) -> Result<(), RuntimeError> {
    if command.is_empty() {
        return Err(RuntimeError::InvalidSpec {
            service: id.to_string(),
            reason: "exec needs a command".to_string(),
        });
    }
    Ok(())
}

/// The effective uid and gid of `pid`, from `/proc/PID/status`.
fn identity_of(pid: u32) -> Option<(u32, u32)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let effective = |key: &str| -> Option<u32> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(2)?.parse().ok()
    };
    Some((effective("Uid:")?, effective("Gid:")?))
}

/// `command` beside the process instance led by `pid`, with its environment and working
/// directory, in its cgroup (joined before exec), ready for the caller's stdio.
pub(crate) fn exec_beside(
    id: &str,
    pid: u32,
    cgroup: Option<&InstanceCgroup>,
    command: &[String],
) -> Result<Command, RuntimeError> {
    check_command(id, command)?;
    let environ = format!("/proc/{pid}/environ");
    let env = environment_of(pid).map_err(|e| RuntimeError::io("read", &environ, e))?;
    let cwd_link = format!("/proc/{pid}/cwd");
    let cwd: PathBuf =
        std::fs::read_link(&cwd_link).map_err(|e| RuntimeError::io("read", &cwd_link, e))?;
    let join: Arc<Vec<File>> = Arc::new(match cgroup {
        Some(cg) => cg.open_procs()?,
        None => Vec::new(),
    });
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .env_clear()
        .envs(env)
        .current_dir(cwd);
    // As the instance itself: an exec must not be a way to root for a workload that has none.
    if let Some((uid, gid)) = identity_of(pid)
        && (uid, gid)
            != (
                rustix::process::getuid().as_raw(),
                rustix::process::getgid().as_raw(),
            )
    {
        cmd.gid(gid).uid(uid);
    }
    let child_join = Arc::clone(&join);
    // SAFETY: the closure runs in the forked child before exec and only makes raw write
    // syscalls on files already open: no allocation, no locks (async-signal-safe).
    unsafe {
        cmd.pre_exec(move || {
            for f in child_join.iter() {
                rustix::io::write(f, b"0")?;
            }
            Ok(())
        });
    }
    Ok(cmd)
}

//! The holder of a container made with `create` and set going with `start` (runc, crun).
//!
//! `create` forks the container's init and exits once the init is set up (the seccomp filter
//! compiled, the process waiting for `start`); the init is then an orphan, and orphans go to
//! their nearest child subreaper. The holder is that subreaper: a shell in a session of its
//! own, made subreaper before exec, that runs `create` in the foreground and then becomes
//! `sleep`, which never reaps. So the init becomes the holder's child and, once it ends, stays
//! its zombie, whose exit status `/proc/<pid>/stat` shows (as `waitpid` would) to whichever
//! agent watches it, also one that restarted in between; that agent then ends the holder and
//! the machine's init reaps both. The agent itself never becomes a subreaper, so no other
//! orphan of its descendants lands on it.

use crate::RuntimeError;
use crate::proc_fs;
use crate::state::ProcessRef;
use crate::supervise::{DEFAULT_PATH, pid_i32, spawn_in_session};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};
use std::fs;
use std::path::Path;
use std::process::{Child, Command};

/// `"$@"` is the OCI runtime's `create`; its failure ends the holder with its status.
/// Nothing runs between `create` returning and `exec`, so the shell reaps no zombie of ours.
const HOLDER: &str = r#""$@" || exit; exec sleep infinity"#;
/// The exit-code file's temporary, renamed over it.
const EXIT_TMP: &str = "exit-code.tmp";
/// In the holder's environment: its instance's directory. `sleep infinity` is all its
/// command line says, so this is how leftovers (a failed test's) are found and ended.
const HOLDER_ENV: &str = "CANOPY_HOLDER";

/// Spawns the holder running `binary args...` (the `create`) with the instance's logs as
/// stdout and stderr, which `create` hands to the container.
pub(crate) fn spawn(
    binary: &Path,
    args: &[String],
    dir: &Path,
    what: &str,
) -> Result<Child, RuntimeError> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(HOLDER)
        .arg("canopy-holder")
        .arg(binary)
        .args(args)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .env(HOLDER_ENV, dir);
    spawn_in_session(cmd, dir, Vec::new(), true, what)
}

/// The holder has become `sleep`: `create` succeeded and its shell is gone, so the init may
/// be started (an init that ends now stays a zombie until it is read).
pub(crate) fn holding(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == "sleep")
}

/// The process `pid` as it is now (its start time), if it exists.
pub(crate) fn process_ref(pid: u32) -> Option<ProcessRef> {
    proc_fs::stat(pid_i32(pid)).map(|s| ProcessRef {
        pid,
        start_time: s.start_time,
    })
}

/// How the held `init` ended, in the OCI runtimes' own encoding (its code, or 128 + the
/// signal that killed it), while it is still the holder's zombie.
pub(crate) fn exit_status(init: ProcessRef) -> Option<i32> {
    let raw = proc_fs::zombie_status(pid_i32(init.pid), init.start_time)?;
    Some(decode(raw))
}

fn decode(raw: i32) -> i32 {
    match raw & 0x7f {
        0 => (raw >> 8) & 0xff,
        signal => 128 + signal,
    }
}

/// Writes `status` to `file` atomically (as the foreground shim does), so that an agent
/// restarting before it recorded the exit still finds it once the zombie is gone.
pub(crate) fn record(file: &Path, status: i32) {
    let tmp = file.with_file_name(EXIT_TMP);
    let res = fs::write(&tmp, format!("{status}\n")).and_then(|()| fs::rename(&tmp, file));
    if let Err(e) = res {
        tracing::warn!(path = %file.display(), error = %e, "could not record the exit status");
    }
}

/// Ends the holder and whatever of `create` is left in its process group. `child`: the
/// holder is this process's child (spawned by this runtime), reaped here.
pub(crate) async fn release(holder: ProcessRef, child: Option<Child>) {
    let ours = child.is_some()
        || proc_fs::stat(pid_i32(holder.pid)).is_some_and(|s| {
            s.start_time == holder.start_time
                && u32::try_from(s.ppid).ok() == Some(std::process::id())
        });
    if (child.is_some() || proc_fs::alive_with_start(pid_i32(holder.pid), holder.start_time))
        && let Some(pgid) = Pid::from_raw(pid_i32(holder.pid))
    {
        // Its session's group: itself, and `create` when it is still running.
        let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
    }
    if !ours {
        return;
    }
    let pid = holder.pid;
    let reaped = tokio::task::spawn_blocking(move || match child {
        Some(mut c) => c.wait().map(drop),
        // A runtime re-created in this process: the holder is still our child.
        None => match Pid::from_raw(pid_i32(pid)) {
            Some(p) => rustix::process::waitid(WaitId::Pid(p), WaitIdOptions::EXITED)
                .map(drop)
                .map_err(std::io::Error::from),
            None => Ok(()),
        },
    })
    .await;
    if let Ok(Err(e)) = reaped {
        tracing::debug!(pid, error = %e, "could not reap the holder");
    }
}

/// Ends every holder whose instance directory is under `dir`: what a killed agent or a failed
/// test leaves once its containers are deleted (each holder keeps its dead init's zombie).
/// Returns how many it ended.
pub fn end_holders_under(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    let marker = format!("{HOLDER_ENV}={}/", dir.display());
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
                env.split(|b| *b == 0)
                    .any(|var| var.starts_with(marker.as_bytes()))
            })
        })
        .filter_map(Pid::from_raw)
        .filter(|pid| rustix::process::kill_process(*pid, Signal::KILL).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_decode_as_the_oci_runtimes_report_them() {
        assert_eq!(decode(7 << 8), 7);
        assert_eq!(decode(0), 0);
        assert_eq!(decode(9), 137);
        // SIGSEGV with a core dump.
        assert_eq!(decode(11 | 0x80), 139);
    }
}

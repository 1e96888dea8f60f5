//! What every runtime that supervises a host process shares: id checks, log files and their
//! rotation, spawning in a new session, exit descriptions, and the watcher task that turns
//! a pidfd (or polling) into an [`Exit`] on disk and in a watch channel.

use crate::state::{self, PersistedState};
use crate::{Exit, RuntimeError, logs, proc_fs};
use rustix::fd::{AsFd, OwnedFd};
use rustix::process::{Pid, PidfdFlags, WaitId, WaitIdOptions};
use std::fs::File;
use std::future::Future;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

pub(crate) use canopy_net::DEFAULT_PATH;
const STDOUT_LOG: &str = "stdout.log";
const STDERR_LOG: &str = "stderr.log";
/// How often liveness is polled on kernels without pidfd (< 5.3).
const NO_PIDFD_POLL: Duration = Duration::from_millis(250);
/// How often a running instance's logs get a time mark (when they grew): `--since` is
/// this precise.
const LOG_MARK_EVERY: Duration = Duration::from_secs(1);

/// Where an instance's output goes, for followers (`canopy logs -f`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPaths {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

pub(crate) fn log_paths(dir: &Path) -> LogPaths {
    LogPaths {
        stdout: dir.join(STDOUT_LOG),
        stderr: dir.join(STDERR_LOG),
    }
}

pub(crate) fn rotate_logs(dir: &Path, max: u64, lock: &Mutex<()>) {
    let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
    let paths = log_paths(dir);
    for p in [paths.stdout, paths.stderr] {
        if let Err(e) = logs::rotate_if_needed(&p, max) {
            tracing::warn!(path = %p.display(), error = %e, "log rotation failed");
        }
    }
}

/// Marks the time of each of the instance's logs in `dir` whose length is not `marked` any
/// more (see [`crate::log_times`]), under the rotation lock so no mark lands on a file the
/// rotation is truncating.
fn mark_log_times(dir: &Path, marked: &mut [Option<u64>; 2], lock: &Mutex<()>) {
    let _guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
    let paths = log_paths(dir);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    for (path, marked) in [paths.stdout, paths.stderr].iter().zip(marked.iter_mut()) {
        let Ok(len) = std::fs::metadata(path).map(|m| m.len()) else {
            continue;
        };
        // An empty log needs no mark (a window starts at 0 anyway): most instances of a
        // burst never print, and their marks files would be thousands of inodes made.
        if len == 0 || *marked == Some(len) {
            continue;
        }
        match crate::log_times::record(path, now_ms, len) {
            Ok(()) => *marked = Some(len),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "cannot mark the log's time")
            }
        }
    }
}

/// Opens (creating) the instance's two log files for appending.
pub(crate) fn open_logs(dir: &Path) -> Result<(File, File), RuntimeError> {
    let paths = log_paths(dir);
    let stdout =
        logs::open_append(&paths.stdout).map_err(|e| RuntimeError::io("open", &paths.stdout, e))?;
    let stderr =
        logs::open_append(&paths.stderr).map_err(|e| RuntimeError::io("open", &paths.stderr, e))?;
    Ok((stdout, stderr))
}

/// The last `tail` lines of stdout followed by the last `tail` lines of stderr.
pub(crate) fn read_logs(paths: &LogPaths, tail: usize) -> Result<String, RuntimeError> {
    let mut out =
        logs::tail(&paths.stdout, tail).map_err(|e| RuntimeError::io("read", &paths.stdout, e))?;
    out.push_str(
        &logs::tail(&paths.stderr, tail).map_err(|e| RuntimeError::io("read", &paths.stderr, e))?,
    );
    Ok(out)
}

/// Spawns `cmd` in its own session (so it outlives the agent), stdin from /dev/null and
/// output appended to the instance's log files in `dir`. Before exec the child writes "0"
/// to each of `join` (cgroup.procs files), so it never runs outside its limits; with
/// `subreaper` it becomes the child subreaper of its descendants (kept across exec), so
/// orphans among them (a container's init once `runc create` exits) become its children.
pub(crate) fn spawn_in_session(
    mut cmd: Command,
    dir: &Path,
    join: Vec<File>,
    subreaper: bool,
    what: &str,
) -> Result<Child, RuntimeError> {
    crate::follow::keep_previous_run(&log_paths(dir));
    let (stdout, stderr) = open_logs(dir)?;
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    let join = Arc::new(join);
    let child_join = Arc::clone(&join);
    // SAFETY: the closure runs in the forked child before exec and only makes raw
    // syscalls (setsid, prctl, umask, write) on memory that is already allocated: it neither
    // allocates nor takes locks, so it is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            rustix::process::setsid()?;
            if subreaper {
                // Any pid turns it on; our own is at hand.
                rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
            }
            // The agent's own files are private (umask 077); a workload starts with the
            // conventional mask, as under any service manager.
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
            for f in child_join.iter() {
                rustix::io::write(f, b"0")?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| RuntimeError::Spawn {
        command: what.to_string(),
        source: e,
    })?;
    drop(cmd);
    drop(join);
    Ok(child)
}

pub(crate) fn pid_i32(pid: u32) -> i32 {
    i32::try_from(pid).unwrap_or(i32::MAX)
}

/// Ids become directory and cgroup names (of runtimes and hooks): keep them to a safe alphabet.
pub fn validate_id(id: &str) -> Result<(), RuntimeError> {
    let bad = |reason| {
        Err(RuntimeError::InvalidId {
            id: id.to_string(),
            reason,
        })
    };
    if id.is_empty() || id.len() > 128 {
        return bad("must be 1 to 128 bytes long");
    }
    if id == "." || id == ".." {
        return bad("must not be '.' or '..'");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("may contain only letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

pub(crate) fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|i| NAMES.get(i))
        .filter(|n| !n.is_empty())
        .map_or_else(|| format!("signal {sig}"), |n| n.to_string())
}

pub(crate) fn make_exit(
    code: Option<i32>,
    signal: Option<i32>,
    oom_killed: bool,
    unknown: &str,
) -> Exit {
    let what = match (code, signal) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(s)) => format!("killed by {}", signal_name(s)),
        (None, None) => unknown.to_string(),
    };
    let reason = if oom_killed {
        format!("out of memory ({what})")
    } else {
        what
    };
    Exit {
        code,
        signal,
        oom_killed,
        reason,
    }
}

/// A pidfd registered with tokio, or None on kernels without pidfd_open.
pub(crate) fn open_pidfd(pid: u32) -> Option<AsyncFd<OwnedFd>> {
    let fd = rustix::process::pidfd_open(Pid::from_raw(pid_i32(pid))?, PidfdFlags::NONBLOCK)
        .map_err(|e| tracing::debug!(pid, error = %e, "pidfd_open failed; polling instead"))
        .ok()?;
    // SAFETY: an OwnedFd is open until dropped and always returns the same descriptor,
    // and the AsyncFd owns it, which is all register_with_interest requires.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .map_err(|e| tracing::debug!(pid, error = %e, "pidfd not pollable; polling instead"))
        .ok()
}

/// How the watched process ended, as far as the watcher could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The process was re-adopted (not our child): code and signal are usually unknown.
    pub adopted: bool,
}

/// Turns a raw exit into the instance's [`Exit`] (OOM check, runtime clean-up...).
pub(crate) type Finish =
    Box<dyn FnOnce(RawExit, PersistedState) -> Pin<Box<dyn Future<Output = Exit> + Send>> + Send>;

/// Everything the watcher task owns (nothing of the runtime, so dropping the runtime
/// just aborts it and leaves the workload alone).
pub(crate) struct Watcher {
    pub pid: u32,
    pub start_time: u64,
    /// Our own child, when this runtime spawned it; None for re-adopted instances.
    pub child: Option<Child>,
    pub pidfd: Option<AsyncFd<OwnedFd>>,
    pub dir: PathBuf,
    pub state: PersistedState,
    pub max_log_bytes: u64,
    pub check_every: Duration,
    pub rotate_lock: Arc<Mutex<()>>,
    pub tx: watch::Sender<Option<Exit>>,
    /// Runs once, after the process ended.
    pub finish: Option<Finish>,
}

impl Watcher {
    pub fn spawn(self) -> AbortHandle {
        tokio::spawn(self.run()).abort_handle()
    }

    async fn run(mut self) {
        // start() has just rotated: the first check is one period away.
        let mut tick =
            tokio::time::interval_at(Instant::now() + self.check_every, self.check_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut mark = tokio::time::interval(LOG_MARK_EVERY);
        mark.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut marked = [None, None];
        loop {
            tokio::select! {
                () = exited(self.pidfd.as_ref(), &mut self.child, self.pid, self.start_time) => break,
                _ = tick.tick() => rotate_logs(&self.dir, self.max_log_bytes, &self.rotate_lock),
                _ = mark.tick() => mark_log_times(&self.dir, &mut marked, &self.rotate_lock),
            }
        }
        // Its last words get their time too.
        mark_log_times(&self.dir, &mut marked, &self.rotate_lock);
        let raw = self.reap().await;
        let exit = match self.finish.take() {
            Some(finish) => finish(raw, self.state.clone()).await,
            None => make_exit(raw.code, raw.signal, false, "exited; code unknown"),
        };
        tracing::debug!(id = %self.state.id, pid = self.pid, reason = %exit.reason, "instance exited");
        self.state.exit = Some(exit.clone());
        if let Err(e) =
            crate::blocking::off_the_workers(|| state::write_atomic(&self.dir, &self.state)).await
        {
            tracing::warn!(id = %self.state.id, error = %e, "could not record the exit");
        }
        self.tx.send_replace(Some(exit));
    }

    async fn reap(&mut self) -> RawExit {
        match self.child.take() {
            Some(mut child) => {
                let status = match child.try_wait() {
                    Ok(Some(s)) => Ok(s),
                    // pidfd said it exited; reaping cannot block for long.
                    Ok(None) => tokio::task::spawn_blocking(move || child.wait())
                        .await
                        .unwrap_or_else(|e| Err(std::io::Error::other(e))),
                    Err(e) => Err(e),
                };
                match status {
                    Ok(s) => RawExit {
                        code: s.code(),
                        signal: s.signal(),
                        adopted: false,
                    },
                    Err(e) => {
                        tracing::warn!(pid = self.pid, error = %e, "could not reap child");
                        RawExit {
                            code: None,
                            signal: None,
                            adopted: false,
                        }
                    }
                }
            }
            // Not our child after an agent restart: waitid only works if it happens to be
            // (a runtime re-created in the same process); otherwise the code is gone.
            None => match self.pidfd.as_ref().map(|fd| {
                rustix::process::waitid(
                    WaitId::PidFd(fd.get_ref().as_fd()),
                    WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
                )
            }) {
                Some(Ok(Some(st))) => RawExit {
                    code: st.exit_status(),
                    signal: st.terminating_signal(),
                    adopted: true,
                },
                _ => RawExit {
                    code: None,
                    signal: None,
                    adopted: true,
                },
            },
        }
    }
}

/// Resolves when the watched process has exited.
async fn exited(
    pidfd: Option<&AsyncFd<OwnedFd>>,
    child: &mut Option<Child>,
    pid: u32,
    start_time: u64,
) {
    if let Some(fd) = pidfd {
        loop {
            match fd.readable().await {
                // A pidfd only turns readable on exit; checked anyway for adopted
                // processes, whose exit cannot be confirmed by reaping them.
                Ok(mut guard) => {
                    if child.is_some() || !proc_fs::alive_with_start(pid_i32(pid), start_time) {
                        return;
                    }
                    guard.clear_ready();
                }
                // The reactor is gone (runtime shutting down): never report a false exit.
                Err(_) => std::future::pending::<()>().await,
            }
        }
    }
    loop {
        tokio::time::sleep(NO_PIDFD_POLL).await;
        let gone = match child {
            // try_wait caches the status for reap().
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => !proc_fs::alive_with_start(pid_i32(pid), start_time),
        };
        if gone {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("web-0.abc_1").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", &"x".repeat(129)] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn exits_are_described() {
        assert_eq!(
            make_exit(Some(3), None, false, "").reason,
            "exited with code 3"
        );
        assert_eq!(
            make_exit(None, Some(9), false, "").reason,
            "killed by SIGKILL"
        );
        let oom = make_exit(None, Some(9), true, "");
        assert_eq!(oom.reason, "out of memory (killed by SIGKILL)");
        assert!(!oom.success());
        assert!(make_exit(Some(0), None, false, "").success());
        assert!(!make_exit(None, None, false, "x").success());
        assert_eq!(signal_name(64), "signal 64");
    }
}

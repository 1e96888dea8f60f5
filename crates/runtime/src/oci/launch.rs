//! Getting a container's process going, the two ways (see the module docs of `oci`): runc
//! and crun `create`, the CPU quota, `start`, under a holder; runsc `run` in the foreground
//! under the shim.

use super::{OciRuntime, PID_FILE, RUNTIME_LOG, SHIM, START_POLL, cli, holder, read_pid};
use crate::cgroup::InstanceCgroup;
use crate::state::ProcessRef;
use crate::supervise::{DEFAULT_PATH, open_pidfd, pid_i32, spawn_in_session};
use crate::{RuntimeError, proc_fs};
use canopy_model::Resources;
use rustix::fd::OwnedFd;
use rustix::process::{Pid, Signal};
use std::path::Path;
use std::process::{Child, Command};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// A container whose process exists (and, when held, runs the workload).
pub(super) struct Spawned {
    /// What the watcher waits on: the shim (foreground) or the container's init (held).
    pub watched: ProcessRef,
    pub pidfd: Option<AsyncFd<OwnedFd>>,
    /// The watched shim, our child (None when the init is watched: the holder's child).
    pub shim: Option<Child>,
    /// The container's init as the host sees it.
    pub init: ProcessRef,
    /// The holder (held containers only), our child until its release.
    pub holder: Option<(ProcessRef, Child)>,
    /// The OCI runtime's command line, for the state file.
    pub command: Vec<String>,
}

impl Spawned {
    /// Undoes a start that cannot be recorded: the container and its supervisor go.
    pub async fn abandon(self, rt: &OciRuntime, id: &str) {
        let _ = rt.cli.kill(id, "KILL").await;
        if let Some(shim) = self.shim {
            let _ = tokio::task::spawn_blocking(move || wait_child(shim)).await;
        }
        if let Some((r, child)) = self.holder {
            holder::release(r, Some(child)).await;
        }
    }
}

fn wait_child(mut child: Child) {
    let _ = child.wait();
}

fn kill_group(leader: u32) {
    if let Some(pgid) = Pid::from_raw(pid_i32(leader)) {
        let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
    }
}

impl OciRuntime {
    /// runc, crun: `create` under a holder, then `quota` (the container's group and the
    /// service's limits, when the bundle left the CPU quota out), then `start`. The init
    /// compiles its seccomp filter and sets up within `create`, without the quota; the
    /// workload's first instruction comes after `start`, under it.
    pub(super) async fn create_and_start(
        &self,
        id: &str,
        dir: &Path,
        quota: Option<(&InstanceCgroup, &Resources)>,
    ) -> Result<Spawned, RuntimeError> {
        let pid_file = dir.join(PID_FILE);
        let runtime_log = dir.join(RUNTIME_LOG);
        let args = self.cli.create_args(dir, &pid_file, &runtime_log, id);
        let what = format!("{} create", self.cli.name);
        let mut child = holder::spawn(&self.cli.binary, &args, dir, &what)?;
        let holder_pid = child.id();
        let holder_ref = holder::process_ref(holder_pid).unwrap_or(ProcessRef {
            pid: holder_pid,
            start_time: 0,
        });
        let created = self
            .await_created(&mut child, &pid_file, &runtime_log, id)
            .await
            .and_then(|pid| {
                holder::process_ref(pid).ok_or_else(|| {
                    RuntimeError::oci(
                        &self.cli.name,
                        "create",
                        id,
                        format!("its init (pid {pid}) ended before it was started"),
                    )
                })
            });
        let init = match created {
            Ok(init) => init,
            Err(e) => {
                holder::release(holder_ref, Some(child)).await;
                return Err(e);
            }
        };
        // Opened while the init waits for `start`: it pins the process we just identified.
        let pidfd = open_pidfd(init.pid);
        let go = async {
            if let Some((group, resources)) = quota {
                group.set_cpu_quota(resources)?;
            }
            self.cli.start(id).await
        };
        if let Err(e) = go.await {
            holder::release(holder_ref, Some(child)).await;
            return Err(e);
        }
        let mut command = vec![self.cli.binary.display().to_string()];
        command.extend(args);
        Ok(Spawned {
            watched: init,
            pidfd,
            shim: None,
            init,
            holder: Some((holder_ref, child)),
            command,
        })
    }

    /// Until the holder holds a created container: the init's pid from the pid file.
    async fn await_created(
        &self,
        child: &mut Child,
        pid_file: &Path,
        runtime_log: &Path,
        id: &str,
    ) -> Result<u32, RuntimeError> {
        let deadline = Instant::now() + self.opts.start_timeout;
        loop {
            if holder::holding(child.id()) {
                return read_pid(pid_file).ok_or_else(|| {
                    RuntimeError::oci(&self.cli.name, "create", id, "no pid file".to_string())
                });
            }
            match child.try_wait() {
                Ok(Some(status)) => {
                    let msg = cli::last_log_error(runtime_log).unwrap_or_else(|| {
                        format!("it exited with {status} before the container was created")
                    });
                    return Err(RuntimeError::oci(&self.cli.name, "create", id, msg));
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(RuntimeError::Spawn {
                        command: format!("{} create", self.cli.name),
                        source: e,
                    });
                }
            }
            if Instant::now() >= deadline {
                return Err(RuntimeError::CommandTimeout {
                    command: format!("{} create (until the container is created)", self.cli.name),
                    timeout: self.opts.start_timeout,
                });
            }
            tokio::time::sleep(START_POLL).await;
        }
    }

    /// runsc: `run` in the foreground under the shim, which records its exit status.
    pub(super) async fn run_in_foreground(
        &self,
        id: &str,
        dir: &Path,
        netns: bool,
    ) -> Result<Spawned, RuntimeError> {
        let pid_file = dir.join(PID_FILE);
        let runtime_log = dir.join(RUNTIME_LOG);
        let run_args = self.cli.run_args(dir, &pid_file, &runtime_log, id, netns);
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(SHIM)
            .arg(dir.join(super::EXIT_FILE))
            .arg(&self.cli.binary)
            .args(&run_args)
            .env_clear()
            .env("PATH", DEFAULT_PATH);
        let what = format!("{} run", self.cli.name);
        let mut child = spawn_in_session(cmd, dir, Vec::new(), false, &what)?;
        let shim_pid = child.id();
        let shim_start = proc_fs::stat(pid_i32(shim_pid)).map_or(0, |s| s.start_time);

        let deadline = Instant::now() + self.opts.start_timeout;
        let pid = loop {
            if let Some(pid) = read_pid(&pid_file) {
                break pid;
            }
            match child.try_wait() {
                Ok(Some(status)) => {
                    if let Some(pid) = read_pid(&pid_file) {
                        break pid;
                    }
                    let msg = cli::last_log_error(&runtime_log).unwrap_or_else(|| {
                        format!("it exited with {status} before the container ran")
                    });
                    return Err(RuntimeError::oci(&self.cli.name, "run", id, msg));
                }
                Ok(None) => {}
                Err(e) => {
                    return Err(RuntimeError::Spawn {
                        command: what,
                        source: e,
                    });
                }
            }
            if Instant::now() >= deadline {
                // The shim leads its own session: its group holds it and runsc.
                kill_group(shim_pid);
                let _ = tokio::task::spawn_blocking(move || wait_child(child)).await;
                return Err(RuntimeError::CommandTimeout {
                    command: format!("{what} (until the container runs)"),
                    timeout: self.opts.start_timeout,
                });
            }
            tokio::time::sleep(START_POLL).await;
        };
        // A container that already ended has no start time left to read; 0 never matches.
        let init = ProcessRef {
            pid,
            start_time: proc_fs::stat(pid_i32(pid)).map_or(0, |s| s.start_time),
        };
        let mut command = vec![self.cli.binary.display().to_string()];
        command.extend(run_args);
        Ok(Spawned {
            watched: ProcessRef {
                pid: shim_pid,
                start_time: shim_start,
            },
            pidfd: open_pidfd(shim_pid),
            shim: Some(child),
            init,
            holder: None,
            command,
        })
    }
}

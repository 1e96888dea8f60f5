//! The `process` runtime: a native command per instance, in its own session, with its
//! output in files and its limits in cgroups, tracked on disk so that it outlives the agent.

use crate::cgroup::{CgroupVersion, Cgroups, InstanceCgroup, OomCounters};
use crate::instance::{self, Instances, LogRotation, remove_dir_if_exists, terminate};
use crate::state::{self, PersistedState};
use crate::supervise::{
    DEFAULT_PATH, Finish, LogPaths, RawExit, make_exit, open_pidfd, pid_i32, rotate_logs,
    spawn_in_session, validate_id,
};
use crate::{
    Exit, InstanceSpec, KEPT_LOGS_BUDGET, Recovered, Runtime, RuntimeError, Started, Stats, proc_fs,
};
use async_trait::async_trait;
use canopy_model::RuntimeKind;
use rustix::process::{Pid, Signal};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How often group membership is polled while stopping.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Settings of a [`ProcessRuntime`].
#[derive(Debug, Clone)]
pub struct ProcessOptions {
    /// Enforce limits with cgroups when the node allows it.
    pub cgroups: bool,
    /// Instance groups go to `<hierarchy>/<cgroup_parent>/<id>`.
    pub cgroup_parent: String,
    /// A log file larger than this is rotated to `<name>.1`.
    pub max_log_bytes: u64,
    /// How often a running instance's log sizes are checked (also on every `logs`/`stats`).
    pub log_check_interval: Duration,
    /// `remove` keeps stdout.log/stderr.log (and their `.1`) and drops the rest.
    pub keep_logs_on_remove: bool,
    /// Kept logs of removed instances, all together, past which the oldest are dropped.
    pub kept_logs_budget: u64,
    /// How long to wait for the processes to vanish after SIGKILL before `stop` fails.
    pub kill_timeout: Duration,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            cgroups: true,
            cgroup_parent: "canopy".to_string(),
            max_log_bytes: 10 << 20,
            log_check_interval: Duration::from_secs(10),
            keep_logs_on_remove: false,
            kept_logs_budget: KEPT_LOGS_BUDGET,
            kill_timeout: Duration::from_secs(10),
        }
    }
}

/// Runs native commands; see the crate docs. Dropping it leaves the workloads running
/// (they are in their own sessions and write to files); a new runtime on the same
/// state dir re-adopts them with [`Runtime::recover`].
pub struct ProcessRuntime {
    state_dir: PathBuf,
    opts: ProcessOptions,
    cgroups: Option<Cgroups>,
    base_env: BTreeMap<String, String>,
    instances: Instances<()>,
}

/// One generation of an instance as this runtime knows it.
type Instance = instance::Instance<()>;

/// A process instance is its process group (plus strays its cgroup still names).
impl Instance {
    fn pgid(&self) -> i32 {
        pid_i32(self.pid)
    }

    /// Live processes of the instance: its process group, plus anything in its cgroup that
    /// left the group (setsid/setpgid), which only the cgroup can still name. With a cgroup
    /// the kernel lists them; only without one is the group found by scanning /proc (which,
    /// per call, made stopping a thousand instances quadratic).
    fn members(&self) -> (Vec<i32>, Vec<i32>) {
        let Some(cgroup) = self.cgroup.as_ref() else {
            let group = proc_fs::group_members(self.pgid(), self.start_time)
                .into_iter()
                .map(|(pid, _)| pid)
                .collect();
            return (group, Vec::new());
        };
        let (mut group, mut extra) = (Vec::new(), Vec::new());
        for pid in cgroup.members() {
            match proc_fs::stat(pid) {
                Some(s) if s.is_live() && s.pgrp == self.pgid() => group.push(pid),
                Some(s) if s.is_live() => extra.push(pid),
                _ => {}
            }
        }
        (group, extra)
    }

    fn gone(&self) -> bool {
        if !self.exited() {
            return false;
        }
        let (group, extra) = self.members();
        group.is_empty() && extra.is_empty()
    }

    fn signal_all(&self, sig: Signal) {
        let (group, extra) = self.members();
        // Only while the group has members: then its id cannot have been reused.
        if !group.is_empty()
            && let Some(pgid) = Pid::from_raw(self.pgid())
        {
            let _ = rustix::process::kill_process_group(pgid, sig);
        }
        for pid in extra.into_iter().filter_map(Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }

    /// Polls until the leader's exit is known and no process of the instance is left.
    async fn wait_gone(&self, deadline: Instant) -> bool {
        loop {
            if self.gone() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            tokio::time::sleep(STOP_POLL.min(deadline - now)).await;
        }
    }
}

fn is_executable_file(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Resolves `command[0]` ourselves (with the workload's PATH) to give a clear error
/// instead of a bare ENOENT from exec.
fn resolve_program(
    program: &str,
    path_var: &str,
    working_dir: Option<&Path>,
) -> Result<PathBuf, RuntimeError> {
    if program.contains('/') {
        let p = Path::new(program);
        let full = match working_dir {
            Some(wd) if p.is_relative() => wd.join(p),
            _ => p.to_path_buf(),
        };
        return match fs::metadata(&full) {
            Err(_) => Err(RuntimeError::CommandNotFound {
                command: program.to_string(),
            }),
            Ok(_) if !is_executable_file(&full) => Err(RuntimeError::NotExecutable {
                command: program.to_string(),
            }),
            Ok(_) => Ok(full),
        };
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|c| is_executable_file(c))
        .ok_or_else(|| RuntimeError::CommandNotInPath {
            command: program.to_string(),
            path: path_var.to_string(),
        })
}

/// A process's exit: its status, and an OOM kill if the cgroup counters moved.
fn process_finish() -> Finish {
    Box::new(|raw: RawExit, state: PersistedState| {
        Box::pin(async move {
            let oom = state.cgroup.as_ref().is_some_and(|cg| {
                cg.oom_counters()
                    .oom_since(&state.oom_base, raw.signal == Some(9))
            });
            let unknown = if raw.adopted {
                "exited after being re-adopted; code unknown"
            } else {
                "exited; code unknown"
            };
            make_exit(raw.code, raw.signal, oom, unknown)
        })
    })
}

impl ProcessRuntime {
    /// A runtime keeping its instances under `state_dir` (created if missing). Cgroups are
    /// probed here; when unusable, instances run without limits and a warning is logged once.
    pub fn new(state_dir: PathBuf, opts: ProcessOptions) -> Result<Self, RuntimeError> {
        fs::create_dir_all(&state_dir)
            .map_err(|e| RuntimeError::io("create state directory", &state_dir, e))?;
        let cgroups = if opts.cgroups {
            match Cgroups::detect(&opts.cgroup_parent) {
                Ok(c) => {
                    tracing::info!(version = ?c.version(), "process runtime enforces limits with cgroups");
                    Some(c)
                }
                Err(reason) => {
                    tracing::warn!(%reason, "cgroups unavailable: process instances run WITHOUT cpu/memory limits");
                    None
                }
            }
        } else {
            None
        };
        // Never the agent's whole environment: only what a program needs to find things.
        let mut base_env = BTreeMap::new();
        base_env.insert(
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_string()),
        );
        base_env.insert(
            "HOME".to_string(),
            std::env::var("HOME").unwrap_or_else(|_| "/".to_string()),
        );
        if let Ok(lang) = std::env::var("LANG") {
            base_env.insert("LANG".to_string(), lang);
        }
        Ok(ProcessRuntime {
            state_dir,
            opts,
            cgroups,
            base_env,
            instances: Instances::new(),
        })
    }

    /// Whether cpu/memory limits are enforced (cgroups usable), for the node to report.
    pub fn limits_enforced(&self) -> bool {
        self.cgroups.is_some()
    }

    pub fn cgroup_version(&self) -> Option<CgroupVersion> {
        self.cgroups.as_ref().map(Cgroups::version)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The instance's log files (they exist once it started; `remove` may keep them).
    pub fn log_paths(&self, id: &str) -> Result<LogPaths, RuntimeError> {
        instance::instance_log_paths(&self.state_dir, id)
    }

    async fn get_or_adopt(&self, id: &str) -> Result<Option<Arc<Instance>>, RuntimeError> {
        let adopt = |id: String| async move { self.adopt(&id).await };
        self.instances
            .get_or_adopt(&self.state_dir, id, adopt)
            .await
    }

    fn log_rotation(&self) -> LogRotation {
        LogRotation {
            max_bytes: self.opts.max_log_bytes,
            check_every: self.opts.log_check_interval,
        }
    }

    /// Starts the instance; `made` is the cgroup it created, for the caller to remove when
    /// the start fails after that (nothing runs in it then, and nothing else would).
    fn start_locked(
        &self,
        spec: &InstanceSpec,
        made: &mut Option<InstanceCgroup>,
    ) -> Result<Started, RuntimeError> {
        let id = spec.id.as_str();
        validate_id(id)?;
        let svc = &spec.service;
        let invalid = |reason: String| RuntimeError::InvalidSpec {
            service: svc.name.clone(),
            reason,
        };
        if svc.runtime != RuntimeKind::Process {
            return Err(invalid(format!(
                "it asks for the {} runtime, not process",
                svc.runtime.as_str()
            )));
        }
        let Some(program) = svc.command.first() else {
            return Err(invalid("command is empty".to_string()));
        };
        let previous = self.instances.check_not_running(id)?;

        let mut env = self.base_env.clone();
        env.extend(svc.env.clone());
        env.extend(spec.env.clone());
        if let Some(files) = &spec.prepared.files {
            env.insert(
                canopy_model::FILES_ENV.to_string(),
                files.root.display().to_string(),
            );
        }
        // A process has no mounts: it is told where its volumes are on the node.
        if let Some(volumes) = &spec.prepared.volumes {
            env.extend(volumes.env(true));
        }
        let working_dir = svc.working_dir.as_deref().map(Path::new);
        if let Some(wd) = working_dir
            && !wd.is_dir()
        {
            return Err(RuntimeError::WorkingDir {
                path: wd.display().to_string(),
            });
        }
        let path_var = env.get("PATH").map_or(DEFAULT_PATH, String::as_str);
        let exe = resolve_program(program, path_var, working_dir)?;

        // Daemonised leftovers of the previous generation would share the new one's limits.
        if let Some(prev) = &previous {
            prev.signal_all(Signal::KILL);
        }

        let dir = self.state_dir.join(id);
        fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;

        let (cgroup, oom_base, procs) = match &self.cgroups {
            Some(cgs) => {
                let cg = cgs.instance(id);
                *made = Some(cg.clone());
                cg.create(&svc.resources)?;
                for pid in cg.members().into_iter().filter_map(Pid::from_raw) {
                    let _ = rustix::process::kill_process(pid, Signal::KILL);
                }
                let base = cg.oom_counters();
                let procs = cg.open_procs()?;
                (Some(cg), base, procs)
            }
            None => (None, OomCounters::default(), Vec::new()),
        };

        let rotate_lock = Arc::new(Mutex::new(()));
        rotate_logs(&dir, self.opts.max_log_bytes, &rotate_lock);
        let mut cmd = Command::new(&exe);
        cmd.arg0(program)
            .args(&svc.command[1..])
            .args(&svc.args)
            .env_clear()
            .envs(&env);
        if let Some(wd) = working_dir {
            cmd.current_dir(wd);
        }
        let (uid, gid) = crate::identity::process_identity(&svc.security_context);
        if let Some(gid) = gid {
            cmd.gid(gid);
        }
        if let Some(uid) = uid {
            cmd.uid(uid);
        }
        // Joining the cgroups before exec means the workload never runs a single
        // instruction outside its limits.
        let child = spawn_in_session(cmd, &dir, procs, false, program)?;
        let pid = child.id();
        let start_time = proc_fs::stat(pid_i32(pid)).map(|s| s.start_time);
        let mut command = svc.command.clone();
        command.extend(svc.args.iter().cloned());
        let persisted = start_time
            .ok_or_else(|| {
                RuntimeError::io(
                    "read",
                    format!("/proc/{pid}/stat"),
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                )
            })
            .and_then(|st| {
                let s = PersistedState::new(
                    id,
                    spec.generation,
                    pid,
                    st,
                    command,
                    cgroup.clone(),
                    oom_base,
                );
                state::write_atomic(&dir, &s).map(|()| s)
            });
        let persisted = match persisted {
            Ok(s) => s,
            Err(e) => {
                // An instance we cannot track must not keep running.
                if let Some(pgid) = Pid::from_raw(pid_i32(pid)) {
                    let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
                }
                let mut child = child;
                let _ = child.wait();
                return Err(e);
            }
        };

        let start_time = persisted.start_time;
        let (rx, task) = instance::watch(
            persisted,
            &dir,
            Some(child),
            open_pidfd(pid),
            self.log_rotation(),
            &rotate_lock,
            process_finish(),
        );
        let inst = Instance {
            generation: spec.generation,
            pid,
            start_time,
            dir,
            cgroup,
            exit: rx,
            rotate_lock,
            task: Some(task),
            extra: (),
        };
        self.instances.started(id, inst);
        tracing::info!(id, pid, generation = spec.generation, "started");
        Ok(Started { pid: Some(pid) })
    }

    /// Loads one instance from its state.json and re-adopts it when its process still lives.
    async fn adopt(&self, id: &str) -> Result<Arc<Instance>, RuntimeError> {
        let dir = self.state_dir.join(id);
        let st = state::read(&dir)?;
        let ended = |same_boot: bool, st: PersistedState| {
            let oom = same_boot
                && st
                    .cgroup
                    .as_ref()
                    .is_some_and(|cg| cg.oom_counters().oom_since(&st.oom_base, false));
            std::future::ready(make_exit(
                None,
                None,
                oom,
                "exited while the agent was down; code unknown",
            ))
        };
        let a = instance::adopt(&dir, st, self.log_rotation(), process_finish(), ended).await;
        let st = a.state;
        let inst = self.instances.adopted(
            id,
            Instance {
                generation: st.generation,
                pid: st.pid,
                start_time: st.start_time,
                dir,
                cgroup: if a.same_boot { st.cgroup.clone() } else { None },
                exit: a.exit,
                rotate_lock: a.rotate_lock,
                task: a.task,
                extra: (),
            },
        );
        tracing::info!(id, pid = st.pid, running = a.running, "recovered");
        Ok(inst)
    }
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Process
    }

    /// Processes share the node's network: they listen on its ports themselves.
    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities {
            ports: false,
            networking: false,
            netns: false,
            stats: true,
            exec: true,
            logs: true,
            limits: self.cgroups.is_some(),
            image_rootfs: false,
            oci_modules: false,
        }
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        let _guard = self.instances.lock_start(&spec.id).await;
        let mut made = None;
        let started = crate::blocking::off_the_workers(|| self.start_locked(spec, &mut made)).await;
        if started.is_err()
            && let Some(cg) = made
            && let Err(e) = cg.remove(Instant::now() + self.opts.kill_timeout).await
        {
            tracing::warn!(id = %spec.id, error = %e, "cgroup of a failed start left");
        }
        started
    }

    async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        self.instances.wait(id).await
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let inst = self
            .get_or_adopt(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
        if inst.gone() {
            return Ok(());
        }
        terminate(
            id,
            grace,
            self.opts.kill_timeout,
            |sig| {
                inst.signal_all(sig);
                std::future::ready(())
            },
            |within| inst.wait_gone(Instant::now() + within),
        )
        .await
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let inst = self.get_or_adopt(id).await?;
        let dir = self.state_dir.join(id);
        if let Some(inst) = inst {
            if !inst.gone() {
                self.stop(id, Duration::ZERO).await?;
            }
            self.instances.forget(id, &inst);
            if let Some(cg) = &inst.cgroup {
                cg.remove(Instant::now() + self.opts.kill_timeout).await?;
            }
        }
        // Also the group of a start that never ran anything (no state to find it by).
        if let Some(cg) = self.cgroups.as_ref().map(|c| c.instance(id)) {
            cg.remove(Instant::now() + self.opts.kill_timeout).await?;
        }
        let res = if self.opts.keep_logs_on_remove {
            let kept = if dir.exists() {
                state::remove(&dir)
            } else {
                Ok(())
            };
            crate::retention::prune(&self.state_dir, self.opts.kept_logs_budget);
            kept
        } else {
            remove_dir_if_exists(&dir)
        };
        tracing::info!(id, "removed");
        res
    }

    async fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        let inst = self.instances.get(id)?;
        if !inst.exited() {
            inst.rotate_logs(self.opts.max_log_bytes);
        }
        if let Some(stats) = inst.cgroup_stats() {
            return Ok(stats);
        }
        if inst.exited() {
            return Err(RuntimeError::NotRunning { id: id.to_string() });
        }
        let members = proc_fs::group_members(inst.pgid(), inst.start_time);
        Ok(members
            .into_iter()
            .fold(Stats::default(), |acc, (pid, s)| Stats {
                cpu_usage_ns: acc
                    .cpu_usage_ns
                    .saturating_add(proc_fs::ticks_to_ns(s.utime.saturating_add(s.stime))),
                memory_bytes: acc.memory_bytes.saturating_add(proc_fs::rss_bytes(pid)),
            }))
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<String, RuntimeError> {
        self.instances
            .logs(&self.state_dir, id, tail, self.opts.max_log_bytes)
    }

    async fn exec_command(
        &self,
        id: &str,
        command: &[String],
        _tty: bool,
    ) -> Result<tokio::process::Command, RuntimeError> {
        let inst = self
            .get_or_adopt(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
        if inst.exited() {
            return Err(RuntimeError::NotRunning { id: id.to_string() });
        }
        crate::exec::exec_beside(id, inst.pid, inst.cgroup.as_ref(), command)
    }

    fn log_paths(&self, id: &str) -> Result<LogPaths, RuntimeError> {
        instance::instance_log_paths(&self.state_dir, id)
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        let adopt = |id: String| async move { self.adopt(&id).await };
        self.instances
            .recover(&self.state_dir, "instance", adopt)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_resolved_with_clear_errors() {
        assert_eq!(
            resolve_program("sh", "/nonexistent:/bin", None).expect("found"),
            PathBuf::from("/bin/sh")
        );
        let e = resolve_program("/bin/nope", DEFAULT_PATH, None).expect_err("missing");
        assert_eq!(e.to_string(), "command /bin/nope not found");
        let e = resolve_program("nope-xyz", "/bin", None).expect_err("missing");
        assert_eq!(e.to_string(), "command nope-xyz not found in PATH /bin");
        let dir = tempfile::tempdir().expect("tempdir");
        let plain = dir.path().join("data.txt");
        fs::write(&plain, "x").expect("write");
        fs::set_permissions(&plain, fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = resolve_program(&plain.display().to_string(), DEFAULT_PATH, None)
            .expect_err("not exec");
        assert!(e.to_string().contains("not an executable"));
    }
}

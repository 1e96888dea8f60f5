//! The `process` runtime: a native command per instance, in its own session, with its
//! output in files and its limits in cgroups, tracked on disk so that it outlives the agent.

use crate::cgroup::{CgroupVersion, Cgroups, InstanceCgroup, OomCounters};
use crate::state::{self, PersistedState};
use crate::supervise::{
    DEFAULT_PATH, Finish, LogPaths, RawExit, Watcher, log_paths, make_exit, open_pidfd, pid_i32,
    read_logs, rotate_logs, spawn_in_session, validate_id,
};
use crate::{Exit, InstanceSpec, Recovered, Runtime, RuntimeError, Started, Stats, proc_fs};
use async_trait::async_trait;
use canopy_model::RuntimeKind;
use rustix::process::{Pid, Signal};
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::AbortHandle;
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
    instances: Mutex<HashMap<String, Arc<Instance>>>,
    /// Serialises starts so two starts of one id cannot both pass the "not running" check.
    start_lock: tokio::sync::Mutex<()>,
}

/// One generation of an instance as this runtime knows it.
struct Instance {
    generation: u64,
    pid: u32,
    start_time: u64,
    dir: PathBuf,
    cgroup: Option<InstanceCgroup>,
    exit: watch::Receiver<Option<Exit>>,
    rotate_lock: Arc<Mutex<()>>,
    /// The watcher task; None when the instance had ended before it was recovered.
    task: Option<AbortHandle>,
}

impl Instance {
    fn pgid(&self) -> i32 {
        pid_i32(self.pid)
    }

    fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Live processes of the instance: its process group, plus anything in its cgroup that
    /// left the group (setsid/setpgid), which only the cgroup can still name.
    fn members(&self) -> (Vec<i32>, Vec<i32>) {
        let group: Vec<i32> = proc_fs::group_members(self.pgid(), self.start_time)
            .into_iter()
            .map(|(pid, _)| pid)
            .collect();
        let extra = self
            .cgroup
            .as_ref()
            .map(|cg| {
                cg.members()
                    .into_iter()
                    .filter(|p| !group.contains(p))
                    .filter(|&p| proc_fs::stat(p).is_some_and(|s| s.is_live()))
                    .collect()
            })
            .unwrap_or_default();
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

    fn log_paths(&self) -> LogPaths {
        log_paths(&self.dir)
    }

    fn rotate_logs(&self, max: u64) {
        rotate_logs(&self.dir, max, &self.rotate_lock);
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
            instances: Mutex::new(HashMap::new()),
            start_lock: tokio::sync::Mutex::new(()),
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
        validate_id(id)?;
        Ok(log_paths(&self.state_dir.join(id)))
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Instance>>> {
        self.instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, id: &str) -> Result<Arc<Instance>, RuntimeError> {
        self.map()
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })
    }

    /// The instance, adopting it from disk when this runtime has not recovered it yet
    /// (so that stop and remove work right after an agent restart).
    fn get_or_adopt(&self, id: &str) -> Result<Option<Arc<Instance>>, RuntimeError> {
        validate_id(id)?;
        if let Some(inst) = self.map().get(id).cloned() {
            return Ok(Some(inst));
        }
        if self.state_dir.join(id).join(state::STATE_FILE).is_file() {
            return self.adopt(id).map(Some);
        }
        Ok(None)
    }

    fn spawn_watcher(&self, w: Watcher) -> AbortHandle {
        w.spawn()
    }

    fn start_locked(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
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
        let previous = self.map().get(id).cloned();
        if let Some(prev) = &previous
            && !prev.exited()
        {
            return Err(RuntimeError::AlreadyRunning {
                id: id.to_string(),
                pid: prev.pid,
            });
        }

        let mut env = self.base_env.clone();
        env.extend(svc.env.clone());
        env.extend(spec.env.clone());
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
        // Joining the cgroups before exec means the workload never runs a single
        // instruction outside its limits.
        let child = spawn_in_session(cmd, &dir, procs, program)?;
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

        let (tx, rx) = watch::channel(None);
        let task = self.spawn_watcher(Watcher {
            pid,
            start_time: persisted.start_time,
            child: Some(child),
            pidfd: open_pidfd(pid),
            dir: dir.clone(),
            max_log_bytes: self.opts.max_log_bytes,
            check_every: self.opts.log_check_interval,
            rotate_lock: Arc::clone(&rotate_lock),
            state: persisted.clone(),
            tx,
            finish: Some(process_finish()),
        });
        let inst = Instance {
            generation: spec.generation,
            pid,
            start_time: persisted.start_time,
            dir,
            cgroup,
            exit: rx,
            rotate_lock,
            task: Some(task),
        };
        if let Some(old) = self.map().insert(id.to_string(), Arc::new(inst))
            && let Some(t) = &old.task
        {
            t.abort();
        }
        tracing::info!(id, pid, generation = spec.generation, "started");
        Ok(Started { pid: Some(pid) })
    }

    /// Loads one instance from its state.json and re-adopts it when its process still lives.
    fn adopt(&self, id: &str) -> Result<Arc<Instance>, RuntimeError> {
        let dir = self.state_dir.join(id);
        let mut st = state::read(&dir)?;
        let pid = pid_i32(st.pid);
        let same_boot = match (&st.boot_id, proc_fs::boot_id()) {
            (Some(then), Some(now)) => *then == now,
            _ => true,
        };
        let candidate =
            st.exit.is_none() && same_boot && proc_fs::alive_with_start(pid, st.start_time);
        let pidfd = candidate.then(|| open_pidfd(st.pid)).flatten();
        // Checked again after pidfd_open: a pidfd pins the process it was opened for, so
        // a matching start time now means the pidfd watches the right process.
        let running = candidate && proc_fs::alive_with_start(pid, st.start_time);
        let rotate_lock = Arc::new(Mutex::new(()));
        let (exit, task) = if running {
            let (tx, rx) = watch::channel(None);
            let task = self.spawn_watcher(Watcher {
                pid: st.pid,
                start_time: st.start_time,
                child: None,
                pidfd,
                dir: dir.clone(),
                max_log_bytes: self.opts.max_log_bytes,
                check_every: self.opts.log_check_interval,
                rotate_lock: Arc::clone(&rotate_lock),
                state: st.clone(),
                tx,
                finish: Some(process_finish()),
            });
            (rx, Some(task))
        } else {
            let exit = match &st.exit {
                Some(e) => e.clone(),
                None => {
                    let oom = same_boot
                        && st
                            .cgroup
                            .as_ref()
                            .is_some_and(|cg| cg.oom_counters().oom_since(&st.oom_base, false));
                    let e = make_exit(
                        None,
                        None,
                        oom,
                        "exited while the agent was down; code unknown",
                    );
                    st.exit = Some(e.clone());
                    // Recorded so that the next recovery tells the same story.
                    if let Err(err) = state::write_atomic(&dir, &st) {
                        tracing::warn!(id, error = %err, "could not record the exit");
                    }
                    e
                }
            };
            (watch::channel(Some(exit)).1, None)
        };
        let inst = Arc::new(Instance {
            generation: st.generation,
            pid: st.pid,
            start_time: st.start_time,
            dir,
            cgroup: if same_boot { st.cgroup.clone() } else { None },
            exit,
            rotate_lock,
            task,
        });
        self.map().insert(id.to_string(), Arc::clone(&inst));
        tracing::info!(id, pid = st.pid, running, "recovered");
        Ok(inst)
    }
}

impl Drop for ProcessRuntime {
    fn drop(&mut self) {
        // Stop watching; the workloads themselves keep running.
        let map = self
            .instances
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for inst in map.values() {
            if let Some(t) = &inst.task {
                t.abort();
            }
        }
    }
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Process
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        let _guard = self.start_lock.lock().await;
        self.start_locked(spec)
    }

    async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        let mut rx = self.get(id)?.exit.clone();
        let shutdown = || RuntimeError::Shutdown { id: id.to_string() };
        let exit = rx.wait_for(Option::is_some).await.map_err(|_| shutdown())?;
        exit.clone().ok_or_else(shutdown)
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let inst = self
            .get_or_adopt(id)?
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
        if inst.gone() {
            return Ok(());
        }
        inst.signal_all(Signal::TERM);
        if inst.wait_gone(Instant::now() + grace).await {
            return Ok(());
        }
        tracing::info!(
            id,
            ?grace,
            "still running after the grace period; sending SIGKILL"
        );
        inst.signal_all(Signal::KILL);
        if inst
            .wait_gone(Instant::now() + self.opts.kill_timeout)
            .await
        {
            Ok(())
        } else {
            Err(RuntimeError::StopTimeout {
                id: id.to_string(),
                waited: self.opts.kill_timeout,
            })
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let inst = self.get_or_adopt(id)?;
        let dir = self.state_dir.join(id);
        if let Some(inst) = inst {
            if !inst.gone() {
                self.stop(id, Duration::ZERO).await?;
            }
            if let Some(t) = &inst.task {
                t.abort();
            }
            self.map().remove(id);
            if let Some(cg) = &inst.cgroup {
                cg.remove(Instant::now() + self.opts.kill_timeout).await?;
            }
        }
        let res = if self.opts.keep_logs_on_remove {
            if dir.exists() {
                state::remove(&dir)
            } else {
                Ok(())
            }
        } else {
            match fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(RuntimeError::io("remove", &dir, e))
                }
                _ => Ok(()),
            }
        };
        tracing::info!(id, "removed");
        res
    }

    async fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        let inst = self.get(id)?;
        if !inst.exited() {
            inst.rotate_logs(self.opts.max_log_bytes);
        }
        if let Some((cpu_usage_ns, memory_bytes)) = inst.cgroup.as_ref().and_then(|c| c.usage()) {
            return Ok(Stats {
                cpu_usage_ns,
                memory_bytes,
            });
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
        validate_id(id)?;
        let known = self.map().get(id).cloned();
        let paths = match &known {
            Some(inst) => {
                if !inst.exited() {
                    inst.rotate_logs(self.opts.max_log_bytes);
                }
                inst.log_paths()
            }
            // Logs kept after remove, or not recovered yet.
            None => {
                let dir = self.state_dir.join(id);
                if !dir.is_dir() {
                    return Err(RuntimeError::NotFound { id: id.to_string() });
                }
                log_paths(&dir)
            }
        };
        read_logs(&paths, tail)
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        let entries = fs::read_dir(&self.state_dir)
            .map_err(|e| RuntimeError::io("read", &self.state_dir, e))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if validate_id(&id).is_err() || !entry.path().join(state::STATE_FILE).is_file() {
                continue;
            }
            let known = self.map().get(&id).cloned();
            let inst = match known {
                Some(i) => i,
                None => match self.adopt(&id) {
                    Ok(i) => i,
                    Err(e) => {
                        tracing::warn!(%id, error = %e, "skipping unreadable instance state");
                        continue;
                    }
                },
            };
            out.push(Recovered {
                id,
                generation: inst.generation,
                pid: Some(inst.pid),
                running: !inst.exited(),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
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

//! The bookkeeping every supervising runtime shares: its instances by id (each with the
//! watch channel its watcher reports the exit on), the start lock, waiting, stopping by
//! SIGTERM then SIGKILL, re-adopting instances from their state on disk, and logs.
//! What differs between runtimes (how to start, signal and clean up) stays with them.

use crate::cgroup::InstanceCgroup;
use crate::state::{self, PersistedState};
use crate::supervise::{
    Finish, LogPaths, Watcher, log_paths, open_pidfd, pid_i32, read_logs, rotate_logs, validate_id,
};
use crate::{Exit, Recovered, RuntimeError, Stats, proc_fs};
use rustix::fd::OwnedFd;
use rustix::process::Signal;
use std::collections::HashMap;
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// One generation of an instance as a runtime knows it; `X` is what only one runtime keeps.
pub(crate) struct Instance<X = ()> {
    pub generation: u64,
    /// The process the workload is (a container's init, as the host sees it).
    pub pid: u32,
    pub start_time: u64,
    pub dir: PathBuf,
    pub cgroup: Option<InstanceCgroup>,
    pub exit: watch::Receiver<Option<Exit>>,
    pub rotate_lock: Arc<Mutex<()>>,
    /// The watcher task; None when the instance had ended before it was recovered.
    pub task: Option<AbortHandle>,
    pub extra: X,
}

impl<X> Instance<X> {
    pub fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Waits up to `within` for the exit.
    pub async fn wait_exit(&self, within: Duration) -> bool {
        let mut rx = self.exit.clone();
        matches!(
            tokio::time::timeout(within, rx.wait_for(Option::is_some)).await,
            Ok(Ok(_))
        )
    }

    pub fn rotate_logs(&self, max: u64) {
        rotate_logs(&self.dir, max, &self.rotate_lock);
    }

    /// Usage from the instance's cgroup, when it has a readable one.
    pub fn cgroup_stats(&self) -> Option<Stats> {
        let (cpu_usage_ns, memory_bytes) = self.cgroup.as_ref().and_then(InstanceCgroup::usage)?;
        Some(Stats {
            cpu_usage_ns,
            memory_bytes,
        })
    }
}

/// How log files are kept in check while an instance runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LogRotation {
    pub max_bytes: u64,
    pub check_every: Duration,
}

/// Starts the watcher of the process `state` names (pid and start time), living in `dir`.
pub(crate) fn watch(
    state: PersistedState,
    dir: &Path,
    child: Option<Child>,
    pidfd: Option<AsyncFd<OwnedFd>>,
    logs: LogRotation,
    rotate_lock: &Arc<Mutex<()>>,
    finish: Finish,
) -> (watch::Receiver<Option<Exit>>, AbortHandle) {
    let (tx, rx) = watch::channel(None);
    let task = Watcher {
        pid: state.pid,
        start_time: state.start_time,
        child,
        pidfd,
        dir: dir.to_path_buf(),
        state,
        max_log_bytes: logs.max_bytes,
        check_every: logs.check_every,
        rotate_lock: Arc::clone(rotate_lock),
        tx,
        finish: Some(finish),
    }
    .spawn();
    (rx, task)
}

/// A runtime's instances by id, and the locks that serialise starts of one id. Dropping it
/// stops the watchers; the workloads themselves keep running.
pub(crate) struct Instances<X> {
    map: Mutex<HashMap<String, Arc<Instance<X>>>>,
    /// Per id, so two starts of one id cannot both pass the "not running" check, while
    /// different instances (fifty replicas landing at once) start in parallel.
    start_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl<X> Instances<X> {
    pub fn new() -> Self {
        Instances {
            map: Mutex::new(HashMap::new()),
            start_locks: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Instance<X>>>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub async fn lock_start(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .start_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(id.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// The instance, if this runtime knows it.
    pub fn known(&self, id: &str) -> Option<Arc<Instance<X>>> {
        self.map().get(id).cloned()
    }

    pub fn get(&self, id: &str) -> Result<Arc<Instance<X>>, RuntimeError> {
        self.known(id)
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })
    }

    /// Fails when the previous generation of `id` still runs.
    pub fn check_not_running(&self, id: &str) -> Result<Option<Arc<Instance<X>>>, RuntimeError> {
        let previous = self.known(id);
        if let Some(prev) = &previous
            && !prev.exited()
        {
            return Err(RuntimeError::AlreadyRunning {
                id: id.to_string(),
                pid: prev.pid,
            });
        }
        Ok(previous)
    }

    /// Records a newly started generation, stopping the previous one's watcher.
    pub fn started(&self, id: &str, inst: Instance<X>) {
        if let Some(old) = self.map().insert(id.to_string(), Arc::new(inst))
            && let Some(t) = &old.task
        {
            t.abort();
        }
    }

    /// Records an instance re-adopted from disk.
    pub fn adopted(&self, id: &str, inst: Instance<X>) -> Arc<Instance<X>> {
        let inst = Arc::new(inst);
        self.map().insert(id.to_string(), Arc::clone(&inst));
        inst
    }

    /// Stops watching `inst` and forgets `id`.
    pub fn forget(&self, id: &str, inst: &Instance<X>) {
        if let Some(t) = &inst.task {
            t.abort();
        }
        self.map().remove(id);
        self.start_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    pub async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        let mut rx = self.get(id)?.exit.clone();
        let shutdown = || RuntimeError::Shutdown { id: id.to_string() };
        let exit = rx.wait_for(Option::is_some).await.map_err(|_| shutdown())?;
        exit.clone().ok_or_else(shutdown)
    }

    /// The instance, adopting it from disk when this runtime has not recovered it yet
    /// (so that stop and remove work right after an agent restart).
    pub async fn get_or_adopt<F, Fut>(
        &self,
        state_dir: &Path,
        id: &str,
        adopt: F,
    ) -> Result<Option<Arc<Instance<X>>>, RuntimeError>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = Result<Arc<Instance<X>>, RuntimeError>>,
    {
        validate_id(id)?;
        if let Some(inst) = self.known(id) {
            return Ok(Some(inst));
        }
        if state_dir.join(id).join(state::STATE_FILE).is_file() {
            return adopt(id.to_string()).await.map(Some);
        }
        Ok(None)
    }

    /// Every instance under `state_dir`, re-adopting those this runtime does not know yet.
    pub async fn recover<F, Fut>(
        &self,
        state_dir: &Path,
        what: &str,
        mut adopt: F,
    ) -> Result<Vec<Recovered>, RuntimeError>
    where
        F: FnMut(String) -> Fut,
        Fut: Future<Output = Result<Arc<Instance<X>>, RuntimeError>>,
    {
        let entries =
            fs::read_dir(state_dir).map_err(|e| RuntimeError::io("read", state_dir, e))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Some(id) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if validate_id(&id).is_err() || !entry.path().join(state::STATE_FILE).is_file() {
                continue;
            }
            let inst = match self.known(&id) {
                Some(i) => i,
                None => match adopt(id.clone()).await {
                    Ok(i) => i,
                    Err(e) => {
                        tracing::warn!(%id, error = %e, "skipping unreadable {what} state");
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

    /// The last `tail` lines of each log (rotating a running instance's first); also for
    /// logs kept after remove, or of an instance not recovered yet.
    pub fn logs(
        &self,
        state_dir: &Path,
        id: &str,
        tail: usize,
        max_log_bytes: u64,
    ) -> Result<String, RuntimeError> {
        validate_id(id)?;
        let paths = match self.known(id) {
            Some(inst) => {
                if !inst.exited() {
                    inst.rotate_logs(max_log_bytes);
                }
                log_paths(&inst.dir)
            }
            None => {
                let dir = state_dir.join(id);
                if !dir.is_dir() {
                    return Err(RuntimeError::NotFound { id: id.to_string() });
                }
                log_paths(&dir)
            }
        };
        read_logs(&paths, tail)
    }
}

impl<X> Drop for Instances<X> {
    fn drop(&mut self) {
        let map = self.map.get_mut().unwrap_or_else(PoisonError::into_inner);
        for inst in map.values() {
            if let Some(t) = &inst.task {
                t.abort();
            }
        }
    }
}

/// The instance's log files (they exist once it started; `remove` may keep them).
pub(crate) fn instance_log_paths(state_dir: &Path, id: &str) -> Result<LogPaths, RuntimeError> {
    validate_id(id)?;
    Ok(log_paths(&state_dir.join(id)))
}

/// SIGTERM, up to `grace` for the instance to be gone, then SIGKILL and up to
/// `kill_timeout` more. `signal` sends a signal; `gone_within` waits up to a duration.
pub(crate) async fn terminate<S, SF, W, WF>(
    id: &str,
    grace: Duration,
    kill_timeout: Duration,
    mut signal: S,
    mut gone_within: W,
) -> Result<(), RuntimeError>
where
    S: FnMut(Signal) -> SF,
    SF: Future<Output = ()>,
    W: FnMut(Duration) -> WF,
    WF: Future<Output = bool>,
{
    signal(Signal::TERM).await;
    if gone_within(grace).await {
        return Ok(());
    }
    tracing::info!(
        id,
        ?grace,
        "still running after the grace period; sending SIGKILL"
    );
    signal(Signal::KILL).await;
    if gone_within(kill_timeout).await {
        Ok(())
    } else {
        Err(RuntimeError::StopTimeout {
            id: id.to_string(),
            waited: kill_timeout,
        })
    }
}

/// What re-adopting an instance from its state found: a watcher when its process still
/// lives, or its exit (from the state, else from `ended`, then recorded on disk).
pub(crate) struct Adoption {
    pub state: PersistedState,
    /// Same boot as when the state was written (or unknown): its cgroup is still its own.
    pub same_boot: bool,
    pub running: bool,
    pub exit: watch::Receiver<Option<Exit>>,
    pub rotate_lock: Arc<Mutex<()>>,
    pub task: Option<AbortHandle>,
}

/// Reads the process `st` names back: re-adopts it (watched, `finish` on its exit) when
/// it still lives, else settles how it ended with `ended(same_boot, state)`.
pub(crate) async fn adopt<E, EF>(
    dir: &Path,
    mut st: PersistedState,
    logs: LogRotation,
    finish: Finish,
    ended: E,
) -> Adoption
where
    E: FnOnce(bool, PersistedState) -> EF,
    EF: Future<Output = Exit>,
{
    let same_boot = match (&st.boot_id, proc_fs::boot_id()) {
        (Some(then), Some(now)) => *then == now,
        _ => true,
    };
    let pid = pid_i32(st.pid);
    let candidate = st.exit.is_none() && same_boot && proc_fs::alive_with_start(pid, st.start_time);
    let pidfd = candidate.then(|| open_pidfd(st.pid)).flatten();
    // Checked again after pidfd_open: a pidfd pins the process it was opened for, so
    // a matching start time now means the pidfd watches the right process.
    let running = candidate && proc_fs::alive_with_start(pid, st.start_time);
    let rotate_lock = Arc::new(Mutex::new(()));
    let (exit, task) = if running {
        let (rx, task) = watch(st.clone(), dir, None, pidfd, logs, &rotate_lock, finish);
        (rx, Some(task))
    } else {
        let exit = match &st.exit {
            Some(e) => e.clone(),
            None => {
                let e = ended(same_boot, st.clone()).await;
                st.exit = Some(e.clone());
                // Recorded so that the next recovery tells the same story.
                if let Err(err) = state::write_atomic(dir, &st) {
                    tracing::warn!(id = %st.id, error = %err, "could not record the exit");
                }
                e
            }
        };
        (watch::channel(Some(exit)).1, None)
    };
    Adoption {
        state: st,
        same_boot,
        running,
        exit,
        rotate_lock,
        task,
    }
}

/// Deletes `dir` and all in it; a missing one is fine.
pub(crate) fn remove_dir_if_exists(dir: &Path) -> Result<(), RuntimeError> {
    match fs::remove_dir_all(dir) {
        // An empty directory goes without opening it: also on a node out of descriptors.
        Err(_) if fs::remove_dir(dir).is_ok() => Ok(()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(RuntimeError::io("remove", dir, e))
        }
        _ => Ok(()),
    }
}

//! Where an instance's run is, from its service's tasks. Each run is one task: the service
//! is created (or forced to update, which makes a new task) with a `ForceUpdate` counter,
//! and the task whose spec carries the counter is the run's. Swarm keeps no event stream of
//! task states, so they are polled; a task that reached a final state (complete, failed,
//! shutdown, rejected, orphaned) ends the run with its exit code and Swarm's reason, and a
//! task that vanished (the service scaled to none or removed) ends it too.

use bollard::models::{Task, TaskState};
use canopy_runtime::Exit;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;

/// A run, as the poller sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Phase {
    /// No task yet, or one not started (pending, preparing the image, starting).
    Starting,
    /// Its task runs, with the container's pid on its node when Swarm says it.
    Running(Option<u32>),
    Ended(Exit),
}

/// The current run of an instance, as the runtime tracks it.
pub(crate) struct Run {
    pub service: String,
    /// The `ForceUpdate` counter of the run's task.
    pub force: u64,
    /// Its task was seen, or a stop was asked: from then on a task gone is a run ended.
    pub gone_ends: bool,
    pub phase: watch::Sender<Phase>,
}

pub(crate) type Runs = Arc<Mutex<HashMap<String, Run>>>;

pub(crate) fn lock(runs: &Runs) -> MutexGuard<'_, HashMap<String, Run>> {
    runs.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a task in a final state ended.
fn exit_of(task: &Task, state: TaskState) -> Exit {
    let status = task.status.clone().unwrap_or_default();
    let code = status
        .container_status
        .as_ref()
        .filter(|c| c.container_id.as_deref().is_some_and(|id| !id.is_empty()))
        .and_then(|c| c.exit_code)
        .and_then(|c| i32::try_from(c).ok());
    let said = status
        .err
        .filter(|e| !e.is_empty())
        .or(status.message)
        .unwrap_or_default();
    let ended = match code {
        Some(code) => format!("container exited with code {code}"),
        None => "container ended; code unknown".to_string(),
    };
    let reason = format!("{ended} (Swarm task {state}: {said})");
    Exit {
        code,
        signal: None,
        oom_killed: false,
        reason,
    }
}

/// The phase of the run whose task carries `force`, among `tasks` of its service (pure).
pub(crate) fn phase_of(tasks: &[Task], force: u64, gone_ends: bool) -> Phase {
    let current = tasks
        .iter()
        .filter(|t| t.spec.as_ref().and_then(|s| s.force_update).unwrap_or(0) == force)
        .max_by_key(|t| t.version.as_ref().and_then(|v| v.index).unwrap_or(0));
    let Some(task) = current else {
        return match gone_ends {
            true => Phase::Ended(Exit {
                code: None,
                signal: None,
                oom_killed: false,
                reason: "the Swarm task is gone (its service scaled to none or removed)"
                    .to_string(),
            }),
            false => Phase::Starting,
        };
    };
    let state = task
        .status
        .as_ref()
        .and_then(|s| s.state)
        .unwrap_or(TaskState::NEW);
    match state {
        TaskState::RUNNING => Phase::Running(
            task.status
                .as_ref()
                .and_then(|s| s.container_status.as_ref())
                .and_then(|c| c.pid)
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0),
        ),
        TaskState::COMPLETE
        | TaskState::FAILED
        | TaskState::SHUTDOWN
        | TaskState::REJECTED
        | TaskState::ORPHANED
        | TaskState::REMOVE => Phase::Ended(exit_of(task, state)),
        _ => Phase::Starting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerStatus, ObjectVersion, TaskSpec, TaskStatus};

    fn task(force: u64, version: u64, state: TaskState, code: Option<i64>, err: &str) -> Task {
        Task {
            version: Some(ObjectVersion {
                index: Some(version),
            }),
            spec: Some(TaskSpec {
                force_update: Some(force),
                ..TaskSpec::default()
            }),
            status: Some(TaskStatus {
                state: Some(state),
                err: Some(err.to_string()),
                container_status: code.map(|code| ContainerStatus {
                    container_id: Some("c1".into()),
                    pid: Some(42),
                    exit_code: Some(code),
                }),
                ..TaskStatus::default()
            }),
            ..Task::default()
        }
    }

    #[test]
    fn the_runs_task_is_the_one_with_its_force_counter() {
        let tasks = [
            task(
                0,
                5,
                TaskState::FAILED,
                Some(137),
                "task: non-zero exit (137)",
            ),
            task(1, 9, TaskState::RUNNING, Some(0), ""),
        ];
        assert_eq!(phase_of(&tasks, 1, false), Phase::Running(Some(42)));
        let Phase::Ended(exit) = phase_of(&tasks, 0, true) else {
            panic!("the first run ended");
        };
        assert_eq!(exit.code, Some(137));
        assert!(
            exit.reason.contains("failed: task: non-zero exit"),
            "{exit:?}"
        );
        assert_eq!(phase_of(&tasks, 2, false), Phase::Starting);
    }

    #[test]
    fn a_rejected_or_vanished_task_ends_its_run() {
        let rejected = [task(0, 3, TaskState::REJECTED, None, "No such image: x")];
        let Phase::Ended(exit) = phase_of(&rejected, 0, false) else {
            panic!("rejected is final");
        };
        assert_eq!(exit.code, None);
        assert!(exit.reason.contains("No such image"), "{exit:?}");
        assert!(matches!(phase_of(&[], 0, true), Phase::Ended(_)));
        let pending = [task(0, 1, TaskState::PREPARING, None, "")];
        assert_eq!(phase_of(&pending, 0, true), Phase::Starting);
    }
}

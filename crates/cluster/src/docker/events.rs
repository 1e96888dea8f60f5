//! How the engine's containers end, from its event stream: `die` ends a run (its exit code,
//! and whether the OOM killer struck, from `oom` and the container's state), `destroy` of a
//! running one ends it too (Podman's service says `remove`), `start` of one Canopy saw end means someone else started it.
//! While the engine is away the stream is re-opened with backoff; once back, the events
//! missed meanwhile are asked for again (`since`) and each run not yet ended is inspected,
//! since an engine that restarted has forgotten its events.

use super::runtime::{DockerRuntime, now_nanos};
use super::spec::{CLUSTER, INSTANCE};
use bollard::models::{ContainerState, EventMessage};
use bollard::query_parameters::EventsOptionsBuilder;
use canopy_runtime::Exit;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// The current run of an instance, as the runtime tracks it.
pub(crate) struct Tracked {
    pub container: String,
    /// When this run was started (ns since the epoch): events of the container's earlier
    /// runs are not this run's.
    pub since_nanos: i64,
    pub exit: watch::Sender<Option<Exit>>,
    /// The engine said its OOM killer struck during this run.
    pub oom: bool,
    /// The engine answered the start of this run. Before, the container's state is still
    /// that of its creation or of its earlier run, and says nothing of how this run ended.
    pub started: bool,
}

pub(crate) type Table = Arc<Mutex<HashMap<String, Tracked>>>;

pub(crate) fn lock(table: &Table) -> MutexGuard<'_, HashMap<String, Tracked>> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a run ended, from the container's state (pure).
pub(crate) fn exit_of(state: &ContainerState, oom_seen: bool) -> Exit {
    let code = state.exit_code.and_then(|c| i32::try_from(c).ok());
    let oom_killed = oom_seen || state.oom_killed.unwrap_or(false);
    let mut reason = match code {
        Some(code) => format!("container exited with code {code}"),
        None => "container ended; code unknown".to_string(),
    };
    if oom_killed {
        reason = format!("out of memory ({reason})");
    }
    if let Some(error) = state.error.as_deref().filter(|e| !e.is_empty()) {
        reason = format!("{reason}: {error}");
    }
    Exit {
        code,
        signal: None,
        oom_killed,
        reason,
    }
}

/// Least and most time between two attempts to re-open the event stream.
const RETRY_MIN: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(3);

/// Follows the engine's events for the runtime's containers until the runtime is gone.
pub(crate) async fn watch(runtime: Weak<DockerRuntime>) {
    let mut since_secs = now_nanos() / 1_000_000_000;
    let mut retry = RETRY_MIN;
    loop {
        let Some(strong) = runtime.upgrade() else {
            return;
        };
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "label".to_string(),
                vec![format!("{CLUSTER}={}", strong.owner.cluster)],
            ),
        ]);
        let options = EventsOptionsBuilder::new()
            .since(&since_secs.to_string())
            .filters(&filters)
            .build();
        let mut stream = strong.docker.events(Some(options));
        drop(strong);
        let mut settled = false;
        loop {
            let item = stream.next().await;
            let Some(runtime) = runtime.upgrade() else {
                return;
            };
            match item {
                Some(Ok(event)) => {
                    if !settled {
                        // Answered: runs that ended while nobody listened are settled now.
                        settled = true;
                        retry = RETRY_MIN;
                        settle(&runtime).await;
                    }
                    if let Some(seconds) = event.time {
                        since_secs = since_secs.max(seconds);
                    }
                    handle(&runtime, event).await;
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "the engine's event stream failed; re-opening it");
                    break;
                }
                None => break,
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
        // An engine that is back answers a ping: the runs it ended meanwhile are settled
        // even before its next event.
        if let Some(runtime) = runtime.upgrade()
            && runtime.docker.ping().await.is_ok()
        {
            settle(&runtime).await;
        }
    }
}

/// Inspects every started run not yet ended; one whose container stopped or is gone ends.
async fn settle(runtime: &DockerRuntime) {
    let open: Vec<(String, String)> = lock(&runtime.table)
        .iter()
        .filter(|(_, t)| t.started && t.exit.borrow().is_none())
        .map(|(id, t)| (id.clone(), t.container.clone()))
        .collect();
    for (id, container) in open {
        let exit = match super::compat::inspect(&runtime.docker, &container).await {
            Ok(found) => {
                let state = found.state.unwrap_or_default();
                if state.running.unwrap_or(false) {
                    continue;
                }
                exit_of(&state, false)
            }
            Err(e) if super::runtime::status_of(&e) == Some(404) => Exit {
                code: None,
                signal: None,
                oom_killed: false,
                reason: "container removed outside Canopy".to_string(),
            },
            Err(_) => continue,
        };
        end(runtime, &id, &container, exit);
    }
}

/// Ends the current run of `id` on `container`, once.
fn end(runtime: &DockerRuntime, id: &str, container: &str, mut exit: Exit) {
    let table = lock(&runtime.table);
    if let Some(tracked) = table.get(id).filter(|t| t.container == container) {
        exit.oom_killed |= tracked.oom;
        tracked.exit.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(exit);
            true
        });
    }
}

async fn handle(runtime: &DockerRuntime, event: EventMessage) {
    let Some(actor) = event.actor else { return };
    let (Some(container), Some(attributes)) = (actor.id, actor.attributes) else {
        return;
    };
    let Some(id) = attributes.get(INSTANCE).cloned() else {
        return;
    };
    let at = event
        .time_nano
        .or(event.time.map(|s| s.saturating_mul(1_000_000_000)))
        .unwrap_or(i64::MAX);
    let current = {
        let mut table = lock(&runtime.table);
        match table.get_mut(&id) {
            Some(t) if t.container == container && at >= t.since_nanos => {
                if event.action.as_deref() == Some("oom") {
                    t.oom = true;
                }
                Some(t.exit.borrow().is_some())
            }
            _ => None,
        }
    };
    let Some(ended) = current else { return };
    match event.action.as_deref() {
        Some("die") if !ended => {
            let state = match super::compat::inspect(&runtime.docker, &container).await {
                Ok(found) => found.state.unwrap_or_default(),
                // Gone already: the event's own exit code is all there is.
                Err(_) => ContainerState {
                    exit_code: attributes.get("exitCode").and_then(|c| c.parse().ok()),
                    ..ContainerState::default()
                },
            };
            end(runtime, &id, &container, exit_of(&state, false));
        }
        Some("destroy" | "remove") if !ended => {
            let exit = Exit {
                code: None,
                signal: None,
                oom_killed: false,
                reason: "container removed outside Canopy".to_string(),
            };
            end(runtime, &id, &container, exit);
        }
        Some("start") if ended => {
            tracing::warn!(instance = %id, %container, "a container Canopy saw end was started outside Canopy");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exit_says_its_code_and_an_oom_kill() {
        let state = ContainerState {
            exit_code: Some(137),
            oom_killed: Some(true),
            ..ContainerState::default()
        };
        let exit = exit_of(&state, false);
        assert_eq!(exit.code, Some(137));
        assert!(exit.oom_killed && !exit.success());
        assert_eq!(
            exit.reason,
            "out of memory (container exited with code 137)"
        );
        let clean = exit_of(
            &ContainerState {
                exit_code: Some(0),
                ..ContainerState::default()
            },
            false,
        );
        assert!(clean.success(), "{clean:?}");
        assert!(!exit_of(&ContainerState::default(), true).success());
    }
}

//! One instance on this node and its lifecycle: the model's [`InstanceState`], moved only
//! along the edges [`InstanceState::can_become`] allows. Stopping is the `Terminating`
//! state, not a flag beside it, so a supervisor that reports late (a run that ended because
//! it was stopped, a restart delay that ran out) is refused by the lifecycle itself.
//!
//! On a node: admitted → `Starting` → `Running` → (ended) `BackOff` → `Starting` → ...
//! until the restart policy gives up (`Succeeded` / `Failed`) or its cluster revokes it
//! (`Terminating`, then it is removed and reported `Terminated`).

use crate::statefile::Record;
use canopy_model::{IllegalTransition, InstanceState, Termination};
use std::time::Duration;

pub(crate) struct Local {
    /// What the state file keeps of it.
    pub record: Record,
    state: InstanceState,
    reason: String,
    pid: Option<u32>,
    ready: bool,
    last_termination: Option<Termination>,
    /// When it reached its state, unix ms.
    at_ms: i64,
    /// Its runtime, and once started its address, ports and image.
    pub details: crate::details::Details,
    /// Held by a start and by the stop: one at a time, so a stop never races a start.
    pub op: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Local {
    fn new(record: Record, state: InstanceState, reason: &str, at_ms: i64) -> Local {
        let mut details = crate::details::Details::of(&record.workload.spec);
        // Re-adopted after an agent restart: the digest was kept with the assignment.
        details.image(record.image_digest.as_deref());
        Local {
            details,
            record,
            state,
            reason: reason.to_string(),
            pid: None,
            ready: false,
            last_termination: None,
            at_ms,
            op: Default::default(),
        }
    }

    /// Just admitted; its supervisor starts it next.
    pub fn admitted(record: Record, at_ms: i64) -> Local {
        Local::new(record, InstanceState::Starting, "admitted", at_ms)
    }

    /// Found still running after an agent restart.
    pub fn readopted(record: Record, pid: Option<u32>, at_ms: i64) -> Local {
        let mut local = Local {
            pid,
            ..Local::new(
                record,
                InstanceState::Running,
                "re-adopted after agent restart",
                at_ms,
            )
        };
        // Probed instances are ready again once their probes say so.
        local.ready = !local.probed_ready();
        local
    }

    /// Assigned before an agent restart but not found running: its supervisor decides.
    pub fn recovering(record: Record, at_ms: i64) -> Local {
        Local::new(
            record,
            InstanceState::Starting,
            "recovering after agent restart",
            at_ms,
        )
    }

    pub fn generation(&self) -> u64 {
        self.record.generation
    }
    pub fn state(&self) -> InstanceState {
        self.state
    }
    pub fn reason(&self) -> &str {
        &self.reason
    }
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }
    pub fn ready(&self) -> bool {
        self.ready
    }
    pub fn last_termination(&self) -> Option<&Termination> {
        self.last_termination.as_ref()
    }
    pub fn at_ms(&self) -> i64 {
        self.at_ms
    }

    /// Whether it holds its resources and host ports (also while it is being stopped).
    pub fn holds_resources(&self) -> bool {
        self.state.is_live()
    }

    pub fn is_stopping(&self) -> bool {
        self.state == InstanceState::Terminating
    }

    /// The one way the state moves: along an edge of the lifecycle, or not at all.
    fn go(
        &mut self,
        next: InstanceState,
        reason: String,
        at_ms: i64,
    ) -> Result<(), IllegalTransition> {
        if !self.state.can_become(next) {
            return Err(IllegalTransition {
                from: self.state,
                to: next,
            });
        }
        self.state = next;
        self.reason = reason;
        self.at_ms = at_ms;
        // Only a running instance has a process and can be ready.
        if next != InstanceState::Running && next != InstanceState::Terminating {
            self.pid = None;
        }
        if next != InstanceState::Running {
            self.ready = false;
        }
        Ok(())
    }

    /// Start progress (an image pull) is shown as the reason of a starting instance only.
    pub fn progress(&mut self, text: &str, at_ms: i64) -> Result<(), IllegalTransition> {
        if self.state != InstanceState::Starting {
            return Err(IllegalTransition {
                from: self.state,
                to: InstanceState::Starting,
            });
        }
        self.go(InstanceState::Starting, text.to_string(), at_ms)
    }

    pub fn starting(&mut self, reason: &str, at_ms: i64) -> Result<(), IllegalTransition> {
        self.go(InstanceState::Starting, reason.to_string(), at_ms)
    }

    pub fn running(&mut self, pid: Option<u32>, at_ms: i64) -> Result<(), IllegalTransition> {
        self.go(InstanceState::Running, "started".into(), at_ms)?;
        self.pid = pid;
        self.ready = !self.probed_ready();
        Ok(())
    }

    /// Whether readiness waits for probes (a readiness or startup probe) rather than
    /// following from Running.
    fn probed_ready(&self) -> bool {
        let spec = &self.record.workload.spec;
        spec.readiness_probe.is_some() || spec.startup_probe.is_some()
    }

    /// What its probes say; only a running instance can be ready.
    pub fn set_ready(&mut self, ready: bool) -> Result<(), IllegalTransition> {
        if self.state != InstanceState::Running {
            return Err(IllegalTransition {
                from: self.state,
                to: InstanceState::Running,
            });
        }
        self.ready = ready;
        Ok(())
    }

    /// A run ended and the policy restarts it after `delay` (its `restarts`-th restart).
    pub fn backing_off(
        &mut self,
        ended: Termination,
        delay: Duration,
        restarts: u32,
        at_ms: i64,
    ) -> Result<(), IllegalTransition> {
        let reason = format!("restarting in {} ms: {}", delay.as_millis(), ended.reason);
        self.go(InstanceState::BackOff, reason, at_ms)?;
        self.last_termination = Some(ended);
        self.record.restarts = restarts;
        Ok(())
    }

    /// A run ended and the policy gives up: `state` is `Succeeded` or `Failed`.
    pub fn ended(
        &mut self,
        state: InstanceState,
        ended: Termination,
        at_ms: i64,
    ) -> Result<(), IllegalTransition> {
        if !matches!(state, InstanceState::Succeeded | InstanceState::Failed) {
            return Err(IllegalTransition {
                from: self.state,
                to: state,
            });
        }
        self.go(state, ended.reason.clone(), at_ms)?;
        self.last_termination = Some(ended);
        Ok(())
    }

    /// Asked to stop: from here only its removal (reported `Terminated`) follows.
    pub fn terminating(&mut self, reason: &str, at_ms: i64) -> Result<(), IllegalTransition> {
        self.go(
            InstanceState::Terminating,
            format!("stopping: {reason}"),
            at_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceState::*;
    use time::OffsetDateTime;

    fn record() -> Record {
        let workload = serde_json::from_value(serde_json::json!({
            "namespace": "ns", "application": "app", "service": "s", "replica": 0,
            "spec": {"name": "s", "runtime": "process", "command": ["/bin/true"]}
        }));
        match workload {
            Ok(workload) => Record {
                generation: 1,
                workload,
                restarts: 0,
                image_digest: None,
                secrets: Default::default(),
            },
            Err(e) => panic!("test workload: {e}"),
        }
    }

    fn exited(code: i32) -> Termination {
        Termination {
            exit_code: Some(code),
            signal: None,
            reason: format!("exited with code {code}"),
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_restart_cycle_walks_the_lifecycle_and_keeps_what_ended() {
        let mut local = Local::admitted(record(), 1);
        assert_eq!((local.state(), local.ready()), (Starting, false));
        assert!(local.running(Some(42), 2).is_ok());
        assert_eq!(
            (local.state(), local.pid(), local.ready()),
            (Running, Some(42), true)
        );
        assert!(
            local
                .backing_off(exited(3), Duration::from_millis(400), 2, 3)
                .is_ok()
        );
        assert_eq!(
            (local.state(), local.pid(), local.ready()),
            (BackOff, None, false)
        );
        assert_eq!(local.reason(), "restarting in 400 ms: exited with code 3");
        assert_eq!(local.record.restarts, 2);
        assert_eq!(local.last_termination(), Some(&exited(3)));
        assert!(local.starting("restarting", 4).is_ok());
        assert!(local.running(None, 5).is_ok());
        // The last termination outlives the restart, for `describe`.
        assert_eq!(local.last_termination(), Some(&exited(3)));
        assert_eq!(local.at_ms(), 5);
    }

    #[test]
    fn a_stopping_instance_refuses_everything_its_supervisor_says_late() {
        let mut local = Local::admitted(record(), 1);
        assert!(local.running(Some(7), 2).is_ok());
        assert!(local.terminating("revoked", 3).is_ok());
        assert!(local.is_stopping());
        assert!(local.running(Some(8), 4).is_err());
        assert!(local.backing_off(exited(1), Duration::ZERO, 1, 4).is_err());
        assert!(local.starting("restarting", 4).is_err());
        assert!(local.ended(Failed, exited(1), 4).is_err());
        assert!(local.progress("pulling", 4).is_err());
        assert_eq!(
            (local.state(), local.reason(), local.at_ms()),
            (Terminating, "stopping: revoked", 3)
        );
        assert_eq!(local.record.restarts, 0);
        // Still holds its resources and ports until it is removed.
        assert!(local.holds_resources());
    }

    #[test]
    fn a_finished_instance_is_not_started_again_and_frees_its_resources() {
        for (state, code) in [(Succeeded, 0), (Failed, 1)] {
            let mut local = Local::admitted(record(), 1);
            assert!(local.running(None, 2).is_ok());
            assert!(local.ended(state, exited(code), 3).is_ok());
            assert!(!local.holds_resources(), "{state}");
            assert!(local.starting("restarting", 4).is_err(), "{state}");
            assert!(local.running(None, 4).is_err(), "{state}");
            // A finished instance can still be revoked (and is then removed).
            assert!(local.terminating("revoked", 5).is_ok(), "{state}");
        }
    }

    #[test]
    fn a_probed_instance_is_ready_only_when_its_probes_say_so() {
        let mut probed = record();
        probed.workload.spec.readiness_probe =
            serde_json::from_value(serde_json::json!({"tcpSocket": {"port": 80}})).ok();
        let mut local = Local::admitted(probed.clone(), 1);
        assert!(local.set_ready(true).is_err(), "not running yet");
        assert!(local.running(Some(3), 2).is_ok());
        assert!(!local.ready());
        assert!(local.set_ready(true).is_ok());
        assert!(local.ready());
        assert!(local.backing_off(exited(1), Duration::ZERO, 1, 3).is_ok());
        assert!(!local.ready());
        assert!(!Local::readopted(probed, Some(4), 4).ready());
    }

    #[test]
    fn only_a_final_state_ends_an_instance() {
        let mut local = Local::admitted(record(), 1);
        assert!(local.ended(Running, exited(0), 2).is_err());
        assert!(local.ended(BackOff, exited(1), 2).is_err());
        assert_eq!(local.state(), Starting);
    }

    #[test]
    fn start_progress_only_describes_a_starting_instance() {
        let mut local = Local::admitted(record(), 1);
        assert!(local.progress("pulling image: 3/5 layers", 2).is_ok());
        assert_eq!(
            (local.state(), local.reason()),
            (Starting, "pulling image: 3/5 layers")
        );
        assert!(local.running(None, 3).is_ok());
        assert!(local.progress("late pull event", 4).is_err());
        assert_eq!((local.state(), local.reason()), (Running, "started"));
    }

    #[test]
    fn re_adoption_resumes_running_or_lets_the_supervisor_decide() {
        let adopted = Local::readopted(record(), Some(9), 1);
        assert_eq!(
            (adopted.state(), adopted.pid(), adopted.ready()),
            (Running, Some(9), true)
        );
        let mut recovering = Local::recovering(record(), 1);
        assert_eq!(recovering.state(), Starting);
        // It ended while the agent was down: back-off (or give up) straight from Starting.
        assert!(
            recovering
                .backing_off(exited(1), Duration::ZERO, 1, 2)
                .is_ok()
        );
    }
}

//! The one place the node turns what it knows into a [`StatusReport`]: every status it sends
//! up (admitted, running, backing off, ended, refused, stopped) is built here.

use crate::lifecycle::Local;
use canopy_model::{InstanceDetails, InstanceState, Termination};
use canopy_tier::{Reported, StatusReport};

/// What a report says beyond its state and reason.
#[derive(Default)]
struct Details<'a> {
    pid: Option<u32>,
    restarts: u32,
    ready: bool,
    last_termination: Option<&'a Termination>,
    details: Option<&'a InstanceDetails>,
}

fn build(
    node: &str,
    id: &str,
    generation: u64,
    state: Reported,
    reason: &str,
    details: Details<'_>,
    at_ms: i64,
) -> StatusReport {
    StatusReport {
        pid: details.pid,
        restarts: details.restarts,
        // The lifecycle keeps `ready` to Running (see `Local`); the builder passes it on.
        ready: details.ready,
        last_termination: details.last_termination.cloned(),
        details: details.details.cloned().unwrap_or_default(),
        ..StatusReport::new(id, generation, state, reason)
            .on_node(node)
            .at(at_ms)
    }
}

/// Where instance `id` stands.
pub(crate) fn of(node: &str, id: &str, local: &Local) -> StatusReport {
    build(
        node,
        id,
        local.generation(),
        Reported::State(local.state()),
        local.reason(),
        Details {
            pid: local.pid(),
            restarts: local.record.restarts,
            ready: local.ready(),
            last_termination: local.last_termination(),
            details: Some(local.details.current()),
        },
        local.at_ms(),
    )
}

/// The node could not admit it; the reason goes up verbatim.
pub(crate) fn refused(
    node: &str,
    id: &str,
    generation: u64,
    reason: &str,
    at_ms: i64,
) -> StatusReport {
    build(
        node,
        id,
        generation,
        Reported::Refused,
        reason,
        Details::default(),
        at_ms,
    )
}

/// It is gone from the node: stopped and removed (`last` is what it was before), or never here.
pub(crate) fn terminated(
    node: &str,
    id: &str,
    generation: u64,
    reason: &str,
    last: Option<&Local>,
    at_ms: i64,
) -> StatusReport {
    let details = last.map_or_else(Details::default, |local| Details {
        restarts: local.record.restarts,
        last_termination: local.last_termination(),
        ..Details::default()
    });
    build(
        node,
        id,
        generation,
        Reported::State(InstanceState::Terminated),
        reason,
        details,
        at_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statefile::Record;
    use time::OffsetDateTime;

    fn local() -> Local {
        let workload = serde_json::from_value(serde_json::json!({
            "namespace": "ns", "application": "app", "service": "s", "replica": 0,
            "spec": {"name": "s", "runtime": "process", "command": ["/bin/true"]}
        }));
        match workload {
            Ok(workload) => Local::admitted(
                Record {
                    generation: 4,
                    workload,
                    restarts: 0,
                    image_digest: None,
                    secrets: Default::default(),
                },
                10,
            ),
            Err(e) => panic!("test workload: {e}"),
        }
    }

    fn ended() -> Termination {
        Termination {
            exit_code: Some(1),
            signal: None,
            reason: "exited with code 1".into(),
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_running_instance_reports_everything_it_knows() {
        let mut local = local();
        assert!(
            local
                .backing_off(ended(), std::time::Duration::ZERO, 3, 11)
                .is_ok()
        );
        assert!(local.starting("restarting", 12).is_ok());
        assert!(local.running(Some(42), 13).is_ok());
        let report = of("edge-1", "i", &local);
        assert_eq!(report.state, Reported::State(InstanceState::Running));
        assert_eq!(
            (
                report.generation,
                report.node.as_deref(),
                report.pid,
                report.ready
            ),
            (4, Some("edge-1"), Some(42), true)
        );
        assert_eq!((report.restarts, report.at_ms), (3, 13));
        assert_eq!(report.last_termination, Some(ended()));
        assert_eq!(report.cluster, None);
    }

    #[test]
    fn only_a_running_instance_is_ready() {
        let mut local = local();
        assert!(!of("n", "i", &local).ready);
        assert!(local.running(None, 11).is_ok());
        assert!(of("n", "i", &local).ready);
        assert!(local.terminating("revoked", 12).is_ok());
        let stopping = of("n", "i", &local);
        assert_eq!(stopping.state, Reported::State(InstanceState::Terminating));
        assert!(!stopping.ready);
    }

    #[test]
    fn a_refusal_carries_its_reason_verbatim() {
        let reason = "insufficient memory on node n: 512 MiB asked, 100 MiB free";
        let report = refused("n", "i", 2, reason, 5);
        assert_eq!(report.state, Reported::Refused);
        assert_eq!(
            (report.reason.as_str(), report.node.as_deref()),
            (reason, Some("n"))
        );
        assert_eq!((report.generation, report.at_ms), (2, 5));
        assert!(report.is_gone());
    }

    #[test]
    fn a_stopped_instance_keeps_its_history() {
        let mut local = local();
        assert!(
            local
                .backing_off(ended(), std::time::Duration::ZERO, 2, 11)
                .is_ok()
        );
        let report = terminated("n", "i", 4, "stopped: revoked", Some(&local), 20);
        assert_eq!(report.state, Reported::State(InstanceState::Terminated));
        assert_eq!(
            (report.restarts, report.pid, report.ready),
            (2, None, false)
        );
        assert_eq!(report.last_termination, Some(ended()));
        let unknown = terminated("n", "j", 1, "not on this node", None, 20);
        assert_eq!((unknown.restarts, unknown.last_termination), (0, None));
    }
}

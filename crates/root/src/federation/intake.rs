//! Status intake: a cluster's report about one instance, applied where the lifecycle allows
//! it. A report about an instance that is not (or no longer) that cluster's at that
//! generation is a stale copy: it is revoked.

use super::{Federation, transition};
use crate::desired::{InstanceChange, RootError};
use crate::instances::service_key;
use canopy_model::{Instance, InstanceState, WhenGone};
use canopy_tier::parent::Downlink;
use canopy_tier::session::accepts;
use canopy_tier::{Reported, Revocation, StatusReport, from_unix_ms};
use time::OffsetDateTime;
use tokio::time::Instant;

impl Federation {
    pub(super) async fn apply_status(
        &self,
        cluster: &str,
        report: StatusReport,
        downlink: &Downlink,
    ) -> Result<(), RootError> {
        let mut stale = false;
        let mut known = false;
        let mut paced = None;
        let now = OffsetDateTime::now_utc();
        let mut first_run = None;
        self.desired
            .observe_instance(&report.id, |instance| {
                known = true;
                stale = instance.cluster.as_deref() != Some(cluster)
                    || instance.generation != report.generation;
                if stale {
                    return InstanceChange::None;
                }
                let before = (instance.ready, instance.state);
                let change = intake(instance, cluster, &report, now);
                // What reconciling waits for: an end or a removal (a replacement, a job's
                // next run), and, while a rollout is under way, readiness and each step.
                let ended = change == InstanceChange::Delete
                    || (!before.1.is_final() && instance.state.is_final());
                let stepped = before != (instance.ready, instance.state);
                if ended || (stepped && self.instances.mixes_templates(&service_key(instance))) {
                    paced = Some((instance.namespace.clone(), instance.application.clone()));
                }
                if before.1 != InstanceState::Running
                    && instance.state == InstanceState::Running
                    && instance.restarts == 0
                {
                    first_run = Some(instance.clone());
                }
                change
            })
            .await?;
        if let Some(application) = paced {
            self.reconcile_soon(application);
        }
        if let Some(instance) = first_run {
            self.metrics.placed(&instance, now);
        }
        if (stale || !known) && !report.is_gone() {
            downlink.revoke(&Revocation::new(
                &report.id,
                report.generation,
                "not assigned to this cluster",
            ));
        }
        if report.state == Reported::Refused && known && !stale {
            let mut links = self.links.lock().await;
            let refusals = links.refused.entry(report.id.clone()).or_default();
            refusals.since = Some(Instant::now());
            refusals.clusters.push(cluster.to_string());
            refusals.reasons.push(report.reason.clone());
            drop(links);
            self.wake();
        }
        if report.state == Reported::State(InstanceState::Terminated) {
            self.links.lock().await.revoked_at.remove(&report.id);
            self.wake();
        }
        Ok(())
    }
}

/// What one report of `cluster` does to `instance` (known to be that cluster's at the
/// report's generation).
fn intake(
    instance: &mut Instance,
    cluster: &str,
    report: &StatusReport,
    now: OffsetDateTime,
) -> InstanceChange {
    let gone = matches!(
        report.state,
        Reported::Refused | Reported::State(InstanceState::Terminated)
    );
    if gone && instance.when_gone() == WhenGone::Ends {
        return InstanceChange::Delete;
    }
    match report.state {
        Reported::Refused => {
            instance.cluster = None;
            instance.node = None;
            transition(instance, InstanceState::Pending, report.reason.clone(), now)
        }
        Reported::State(InstanceState::Terminated) => {
            // Stopped without being asked to: place it again.
            instance.cluster = None;
            instance.node = None;
            instance.pid = None;
            instance.ready = false;
            let reason = format!("stopped on cluster {cluster}: {}", report.reason);
            transition(instance, InstanceState::Pending, reason, now)
        }
        Reported::State(state) if accepts(instance.state, report) => {
            observe(instance, state, report)
        }
        Reported::State(_) => InstanceChange::None,
    }
}

fn observe(instance: &mut Instance, state: InstanceState, report: &StatusReport) -> InstanceChange {
    // While starting, a new reason is progress (pulling the image, ...): an event of its own.
    let progress = state == InstanceState::Starting
        && instance.state == state
        && instance.reason.as_deref().unwrap_or("") != report.reason;
    if instance.state == state
        && !progress
        && instance.node == report.node
        && instance.pid == report.pid
        && instance.restarts == report.restarts
        && instance.ready == report.ready
        && instance.last_termination == report.last_termination
        && instance.details == report.details
    {
        return InstanceChange::None;
    }
    instance.node = report.node.clone();
    instance.pid = report.pid;
    instance.restarts = report.restarts;
    instance.ready = report.ready;
    instance.last_termination = report.last_termination.clone();
    instance.details = report.details.clone();
    let at = from_unix_ms(report.at_ms);
    if instance.state == state && !progress {
        instance.updated_at = at;
        instance.reason = (!report.reason.is_empty()).then(|| report.reason.clone());
        InstanceChange::Write
    } else {
        // Allowed by `accepts`, so the observation holds.
        let _ = instance.observe(state, report.reason.clone(), at);
        InstanceChange::Write
    }
}

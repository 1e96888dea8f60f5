//! Rollouts of each service: its revision history (the specs it ran, newest last), whether
//! the rollout is paused (by a user, or by itself when a new instance fails), and the
//! operations `canopy rollout status|pause|resume|undo` call.

use super::{CAS_ATTEMPTS, Desired, InstanceFilter, RootError, not_found, to_json};
use crate::keys;
use canopy_model::{Instance, InstanceState, ServiceSpec};
use canopy_store::{Op, Precondition, Revision, StoreError, StoreExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// Revisions kept per service, as Kubernetes' `revisionHistoryLimit` default.
pub const REVISION_HISTORY: usize = 10;
/// The reason of a pause a user asked for (other pauses the rollout took itself).
pub const USER_PAUSE: &str = "paused by a user";
/// Restarts of a new instance that is not ready after which its rollout pauses itself.
pub const FAILED_RESTARTS: u32 = 3;

/// What the root keeps of one service's rollouts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutRecord {
    pub paused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<String>,
    /// Oldest first; the last is the current spec.
    pub revisions: Vec<RevisionRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRecord {
    pub revision: u64,
    pub template_hash: String,
    pub spec: ServiceSpec,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl RolloutRecord {
    /// Records `spec` as the current revision if it is not already (a spec seen before
    /// moves to the end with a new number, as `kubectl rollout undo` does). Whether it
    /// changed.
    pub fn observe(&mut self, spec: &ServiceSpec, hash: &str, now: OffsetDateTime) -> bool {
        if self
            .revisions
            .last()
            .is_some_and(|r| r.template_hash == hash)
        {
            return false;
        }
        let next = self.revisions.last().map_or(1, |r| r.revision + 1);
        self.revisions.retain(|r| r.template_hash != hash);
        self.revisions.push(RevisionRecord {
            revision: next,
            template_hash: hash.to_string(),
            spec: spec.clone(),
            created_at: now,
        });
        let surplus = self.revisions.len().saturating_sub(REVISION_HISTORY);
        self.revisions.drain(..surplus);
        true
    }

    pub fn current(&self) -> Option<&RevisionRecord> {
        self.revisions.last()
    }
}

/// A rollout as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    pub namespace: String,
    pub application: String,
    pub service: String,
    /// The current revision (0 before the first reconciliation).
    pub revision: u64,
    pub replicas: u32,
    /// Live instances of the current revision.
    pub updated: u32,
    /// Ready instances of the current revision.
    pub updated_ready: u32,
    /// Ready instances of any revision.
    pub ready: u32,
    /// Live instances of older revisions.
    pub old: u32,
    pub paused: bool,
    /// `Complete`, `Progressing` or `Paused`.
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Oldest first.
    pub history: Vec<RevisionSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSummary {
    pub revision: u64,
    pub template_hash: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// What `POST .../rollout/undo` takes: the revision to go back to, the previous when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UndoRequest {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "canopy_model::integer::optional_integral"
    )]
    #[schema(minimum = 1)]
    pub to_revision: Option<u64>,
}

/// A live instance of the current spec that keeps failing: why its rollout pauses.
pub(super) fn failing(instances: &[&Instance], hash: &str) -> Option<String> {
    instances
        .iter()
        .filter(|i| i.template_hash == hash && i.desired.is_run() && !i.ready)
        .find(|i| i.state == InstanceState::Failed || i.restarts >= FAILED_RESTARTS)
        .map(|i| {
            format!(
                "instance {} of the new revision is failing ({}, {} restarts)",
                i.id,
                i.display_state(),
                i.restarts
            )
        })
}

impl Desired {
    pub(super) async fn rollout_record(
        &self,
        namespace: &str,
        application: &str,
        service: &str,
    ) -> Result<(RolloutRecord, Option<Revision>), RootError> {
        let key = keys::rollout(namespace, application, service);
        Ok(match self.store.get_json::<RolloutRecord>(&key).await? {
            Some((record, revision)) => (record, Some(revision)),
            None => (RolloutRecord::default(), None),
        })
    }

    /// The store write of `record` after it was read at `revision` (absent: none).
    pub(super) fn rollout_put(
        namespace: &str,
        application: &str,
        service: &str,
        record: &RolloutRecord,
        revision: Option<Revision>,
    ) -> Result<Op, RootError> {
        Ok(Op::Put {
            key: keys::rollout(namespace, application, service),
            value: to_json(record)?,
            precondition: revision.map_or(Precondition::Absent, Precondition::ModRevision),
        })
    }

    pub async fn rollout_status(
        &self,
        namespace: &str,
        application: &str,
        service: &str,
    ) -> Result<RolloutStatus, RootError> {
        let (record, _) = self.record(namespace, application).await?;
        let spec = record
            .application
            .spec
            .services
            .iter()
            .find(|s| s.name == service)
            .ok_or_else(|| not_found("service", format!("{namespace}/{application}/{service}")))?;
        let (rollout, _) = self.rollout_record(namespace, application, service).await?;
        let instances = self
            .list_instances(&InstanceFilter {
                namespace: Some(namespace.to_string()),
                application: Some(application.to_string()),
                service: Some(service.to_string()),
                ..InstanceFilter::default()
            })
            .await?;
        let hash = spec.template_hash();
        let live: Vec<&Instance> = instances
            .iter()
            .filter(|i| i.shown_state().is_live() && !i.is_stopping())
            .collect();
        let count =
            |keep: &dyn Fn(&Instance) -> bool| live.iter().filter(|i| keep(i)).count() as u32;
        let is_ready = |i: &Instance| i.ready && i.shown_state() == InstanceState::Running;
        let updated = count(&|i: &Instance| i.template_hash == hash);
        let updated_ready = count(&|i: &Instance| i.template_hash == hash && is_ready(i));
        let old = count(&|i: &Instance| i.template_hash != hash);
        let phase = if rollout.paused {
            "Paused"
        } else if old == 0 && updated_ready >= spec.replicas && updated == spec.replicas {
            "Complete"
        } else {
            "Progressing"
        };
        Ok(RolloutStatus {
            namespace: namespace.to_string(),
            application: application.to_string(),
            service: service.to_string(),
            revision: rollout.current().map_or(0, |r| r.revision),
            replicas: spec.replicas,
            updated,
            updated_ready,
            ready: count(&is_ready),
            old,
            paused: rollout.paused,
            phase: phase.to_string(),
            reason: rollout.pause_reason.clone(),
            history: rollout
                .revisions
                .iter()
                .map(|r| RevisionSummary {
                    revision: r.revision,
                    template_hash: r.template_hash.clone(),
                    created_at: r.created_at,
                })
                .collect(),
        })
    }

    /// Pauses (`true`) or resumes a service's rollout; resuming also clears a pause the
    /// rollout took by itself.
    pub async fn set_rollout_paused(
        &self,
        namespace: &str,
        application: &str,
        service: &str,
        paused: bool,
    ) -> Result<RolloutStatus, RootError> {
        self.rollout_status(namespace, application, service).await?;
        for _ in 0..CAS_ATTEMPTS {
            let (mut rollout, revision) =
                self.rollout_record(namespace, application, service).await?;
            rollout.paused = paused;
            rollout.pause_reason = paused.then(|| USER_PAUSE.to_string());
            let op = Self::rollout_put(namespace, application, service, &rollout, revision)?;
            match self.store.txn(vec![op]).await {
                Ok(_) => {
                    self.reconcile_application(namespace, application).await?;
                    return self.rollout_status(namespace, application, service).await;
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy(namespace, application))
    }

    /// Rolls a service back to revision `to` (the one before the current when `None`): its
    /// spec, with today's replica count and strategy, becomes the service's spec again.
    pub async fn undo_rollout(
        &self,
        namespace: &str,
        application: &str,
        service: &str,
        to: Option<u64>,
    ) -> Result<RolloutStatus, RootError> {
        let (rollout, _) = self.rollout_record(namespace, application, service).await?;
        let target = match to {
            Some(number) => rollout.revisions.iter().find(|r| r.revision == number),
            None => rollout.revisions.iter().rev().nth(1),
        };
        let Some(target) = target.cloned() else {
            // The state, not the request, lacks it: a conflict (409), as for any request
            // that is well formed but does not fit what exists.
            return Err(RootError::Conflict(match to {
                Some(number) => {
                    format!("service {namespace}/{application}/{service} has no revision {number}")
                }
                None => {
                    format!("service {namespace}/{application}/{service} has no previous revision")
                }
            }));
        };
        let key = keys::application(namespace, application);
        for _ in 0..CAS_ATTEMPTS {
            let (mut record, revision) = self.record(namespace, application).await?;
            let Some(spec) = record
                .application
                .spec
                .services
                .iter_mut()
                .find(|s| s.name == service)
            else {
                return Err(not_found(
                    "service",
                    format!("{namespace}/{application}/{service}"),
                ));
            };
            *spec = ServiceSpec {
                replicas: spec.replicas,
                strategy: spec.strategy.clone(),
                ..target.spec.clone()
            };
            record.generation += 1;
            record.updated_at = OffsetDateTime::now_utc();
            let op = Op::Put {
                key: key.clone(),
                value: to_json(&record)?,
                precondition: Precondition::ModRevision(revision),
            };
            match self.store.txn(vec![op]).await {
                Ok(_) => {
                    self.reconcile_application(namespace, application).await?;
                    return self.rollout_status(namespace, application, service).await;
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(busy(namespace, application))
    }
}

fn busy(namespace: &str, application: &str) -> RootError {
    RootError::Conflict(format!(
        "application {namespace}/{application} is being changed concurrently; try again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(command: &str) -> ServiceSpec {
        match serde_json::from_value(
            serde_json::json!({"name": "s", "runtime": "process", "command": [command]}),
        ) {
            Ok(spec) => spec,
            Err(e) => panic!("test spec: {e}"),
        }
    }

    #[test]
    fn history_numbers_revisions_moves_a_repeated_spec_to_the_end_and_keeps_ten() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut rollout = RolloutRecord::default();
        let (a, b) = (spec("/a"), spec("/b"));
        assert!(rollout.observe(&a, &a.template_hash(), now));
        assert!(!rollout.observe(&a, &a.template_hash(), now), "unchanged");
        assert!(rollout.observe(&b, &b.template_hash(), now));
        // Back to a (an undo): it becomes revision 3, and 1 is gone.
        assert!(rollout.observe(&a, &a.template_hash(), now));
        let numbers: Vec<u64> = rollout.revisions.iter().map(|r| r.revision).collect();
        assert_eq!(numbers, [2, 3]);
        assert_eq!(rollout.current().map(|r| &r.spec), Some(&a));
        for n in 0..20 {
            let s = spec(&format!("/c{n}"));
            rollout.observe(&s, &s.template_hash(), now);
        }
        assert_eq!(rollout.revisions.len(), REVISION_HISTORY);
        assert_eq!(rollout.current().map(|r| r.revision), Some(23));
    }
}

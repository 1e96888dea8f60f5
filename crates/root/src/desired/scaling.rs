//! The autoscaler's side of the desired state: the services that autoscale, and each one's
//! last scaling (`/autoscale/NS/APP/SERVICE`), which the event stream carries as
//! `autoscale.put` with the numbers that drove it. The decision itself is the core's
//! (`autoscale.rs`); the federation runs it on the leader.

use super::autoscale::{Decision, Reading, Requests};
use super::{Desired, RootError, ServiceKey, to_json};
use crate::keys;
use canopy_model::AutoscaleSpec;
use canopy_store::{Precondition, StoreExt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::ToSchema;

/// A change the autoscaler made (or was refused) to a service's replicas, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingEvent {
    pub namespace: String,
    pub application: String,
    pub service: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// The replicas it had.
    pub current: u32,
    /// The replicas it was given (or asked for, when `error` says why not).
    pub desired: u32,
    /// Each target's measured use (percent of the request) against it.
    pub readings: Vec<Reading>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A service with `autoscale:`, as the autoscaler decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autoscaled {
    pub key: ServiceKey,
    pub spec: AutoscaleSpec,
    pub replicas: u32,
    pub requests: Requests,
}

/// Every service's last scaling, by its store key ([`keys::autoscale`]).
pub type ScalingEvents = BTreeMap<String, ScalingEvent>;

impl Desired {
    /// The services that autoscale (jobs never do).
    pub async fn autoscaled_services(&self) -> Result<Vec<Autoscaled>, RootError> {
        let records = self.records(None).await?;
        Ok(records
            .iter()
            .flat_map(|record| {
                let metadata = &record.application.metadata;
                record
                    .application
                    .spec
                    .services
                    .iter()
                    .filter(|s| s.job.is_none())
                    .filter_map(move |s| {
                        Some(Autoscaled {
                            key: (
                                metadata.namespace.clone(),
                                metadata.name.clone(),
                                s.name.clone(),
                            ),
                            spec: s.autoscale.clone()?,
                            replicas: s.replicas,
                            requests: Requests {
                                cpu_millis: s.resources.cpu.0,
                                memory_bytes: s.resources.memory.0.saturating_mul(1 << 20),
                            },
                        })
                    })
            })
            .collect())
    }

    /// Applies `decision` to the service `key` as `canopy scale` would (only while it still
    /// has the replicas the decision saw) and records it for the event stream. A refusal (a
    /// quota) is recorded too, and is no error here.
    pub async fn apply_scaling(
        &self,
        key: &ServiceKey,
        decision: &Decision,
        now: OffsetDateTime,
    ) -> Result<ScalingEvent, RootError> {
        let (namespace, application, service) = key;
        let scaled = self
            .scale_from(
                namespace,
                application,
                service,
                Some(decision.current),
                decision.desired,
            )
            .await;
        let error = match scaled {
            Ok(_) => None,
            Err(RootError::Forbidden(refused)) => Some(refused.to_string()),
            Err(e) => return Err(e),
        };
        let event = ScalingEvent {
            namespace: namespace.clone(),
            application: application.clone(),
            service: service.clone(),
            at: now,
            current: decision.current,
            desired: decision.desired,
            readings: decision.readings.clone(),
            reason: decision.reason.clone(),
            error,
        };
        self.store
            .put(
                &keys::autoscale(namespace, application, service),
                to_json(&event)?,
                Precondition::None,
            )
            .await?;
        Ok(event)
    }

    /// Every service's last scaling (for the views).
    pub(super) async fn scaling_events(&self) -> Result<ScalingEvents, RootError> {
        let (events, _) = self
            .store
            .list_json::<ScalingEvent>(keys::AUTOSCALE)
            .await?;
        Ok(events
            .into_iter()
            .map(|(key, event, _)| (key, event))
            .collect())
    }
}

//! The autoscaler's shell, run by the scheduling loop (so on the leader alone): every
//! period each service with `autoscale:` is decided by the core (`desired::autoscale`) over
//! its instances' measured use, and a change goes through the path of `canopy scale`, with
//! the numbers that drove it recorded for the event stream. The recommendation history lives
//! as long as the leader's term; a new term starts each service's afresh (no scale-down
//! before a whole window).

use super::Federation;
use crate::desired::autoscale::{self, History, Sample};
use crate::desired::{RootError, ServiceKey};
use canopy_model::InstanceState;
use canopy_tier::Timing;
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

/// Each autoscaled service's recommendations of the current term.
pub(super) type Histories = BTreeMap<ServiceKey, History>;

/// How often services are decided: HPA's 15 s at the default 1 s heartbeat, sooner with
/// faster tiers (measurements come as often).
pub(super) fn period(timing: Timing) -> Duration {
    (timing.heartbeat * 15).clamp(Duration::from_secs(1), Duration::from_secs(15))
}

impl Federation {
    /// Decides every autoscaled service once, scaling those whose count should change.
    pub(super) async fn autoscale(&self, histories: &mut Histories) {
        if let Err(e) = self.autoscale_once(histories).await {
            tracing::warn!(error = %e, "autoscaling pass failed");
        }
    }

    async fn autoscale_once(&self, histories: &mut Histories) -> Result<(), RootError> {
        let services = self.desired.autoscaled_services().await?;
        histories.retain(|key, _| services.iter().any(|s| &s.key == key));
        if services.is_empty() {
            return Ok(());
        }
        let instances = self.instances.by_service();
        let now = OffsetDateTime::now_utc();
        for service in services {
            // Instances on their way out neither serve nor count.
            let samples: Vec<Sample> = instances
                .get(&service.key)
                .into_iter()
                .flatten()
                .filter(|i| !i.is_stopping() && !i.shown_state().is_final())
                .map(|i| Sample {
                    ready: i.ready && i.shown_state() == InstanceState::Running,
                    usage: self.usage_of(i),
                })
                .collect();
            let history = histories
                .entry(service.key.clone())
                .or_insert_with(|| History::starting(now, service.replicas));
            let decision = autoscale::decide(
                &service.spec,
                service.replicas,
                service.requests,
                &samples,
                history,
                now,
            );
            if decision.desired == decision.current {
                continue;
            }
            let (namespace, application, name) = &service.key;
            match self
                .desired
                .apply_scaling(&service.key, &decision, now)
                .await
            {
                Ok(event) if event.error.is_none() => {
                    tracing::info!(service = %format!("{namespace}/{application}/{name}"),
                        from = decision.current, to = decision.desired, reason = %decision.reason,
                        "autoscaled");
                    self.wake();
                }
                Ok(event) => tracing::warn!(
                    service = %format!("{namespace}/{application}/{name}"),
                    error = event.error.as_deref().unwrap_or_default(),
                    "autoscaling refused"
                ),
                // Changed meanwhile (a user's scale): decided again next period.
                Err(RootError::Conflict(why)) => tracing::debug!(%why, "autoscaling skipped"),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

//! The shell around [`Health`]: while one run of an instance lasts, its probes run when the
//! core says they are due, readiness changes are reported, and a failed liveness (or
//! startup) probe ends the run.

use super::{Health, Verdict, check};
use crate::Agent;
use canopy_runtime::Runtime;
use std::net::{IpAddr, Ipv4Addr};
use tokio::time::Instant;

impl Agent {
    /// Probes instance `id` at `generation` until a probe says it must restart: returns why.
    /// Never returns for a healthy instance (its supervisor races this against its end).
    pub(crate) async fn watch_health(
        &self,
        runtime: &dyn Runtime,
        id: &str,
        generation: u64,
        mut health: Health,
    ) -> String {
        let began = Instant::now();
        let address = self.probe_address(id).await;
        let mut ready = None;
        loop {
            if ready != Some(health.ready()) {
                let now_ready = health.ready();
                ready = Some(now_ready);
                self.update(id, generation, false, |l, _| l.set_ready(now_ready))
                    .await;
            }
            let Some(next) = health.next_due() else {
                // Nothing left to probe (a startup probe passed, no other): healthy for good.
                return std::future::pending::<String>().await;
            };
            tokio::time::sleep_until(began + next).await;
            for kind in health.due(began.elapsed()) {
                let Some(probe) = health.probe(kind).cloned() else {
                    continue;
                };
                let outcome = check::run(runtime, id, address, &probe).await;
                if let Err(why) = &outcome {
                    tracing::debug!(instance = id, probe = ?kind, reason = %why, "probe failed");
                }
                if let Verdict::Restart(why) = health.record(kind, outcome, began.elapsed()) {
                    self.update(id, generation, false, |l, _| l.set_ready(false))
                        .await;
                    return why;
                }
            }
        }
    }

    /// Where the instance's ports are: its own address (a container's CNI IP), else where
    /// the node's workloads are reached (`CANOPY_NODE_ADDRESS` on an overlay), else the
    /// node's loopback.
    async fn probe_address(&self, id: &str) -> IpAddr {
        let own = {
            let instances = self.instances.lock().await;
            instances
                .get(id)
                .and_then(|l| l.details.current().addresses.first().cloned())
        };
        own.and_then(|a| a.parse().ok())
            .or_else(|| {
                self.overlay_env()
                    .into_iter()
                    .find(|(var, _)| var == "CANOPY_NODE_ADDRESS")
                    .and_then(|(_, address)| address.parse().ok())
            })
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }
}

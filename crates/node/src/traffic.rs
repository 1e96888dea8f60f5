//! The calls the node's proxy carries, per caller service → callee service: connections
//! (UDP: flows) forwarded and bytes each way, totals since the agent started. They go up
//! in heartbeats when they changed (the full list, which is small: one entry per pair that
//! talked through this node), so a lost heartbeat or a new link loses nothing.

use crate::Agent;
use crate::callers::{self, Running};
use crate::proxy_metrics::ProxyMetrics;
use canopy_net::overlay::{Meter, Outcome, ServiceName};
use canopy_tier::pb;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Totals {
    connections: u64,
    to_callee: u64,
    from_callee: u64,
}

/// (caller, callee) → totals; callers and callees as `namespace/application/service`.
#[derive(Debug, Default)]
pub(crate) struct Edges {
    totals: Mutex<BTreeMap<(String, String), Totals>>,
    changed: AtomicBool,
}

impl Edges {
    fn add(&self, caller: &str, callee: String, add: Totals) {
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        let entry = totals.entry((caller.to_string(), callee)).or_default();
        entry.connections += add.connections;
        entry.to_callee += add.to_callee;
        entry.from_callee += add.from_callee;
        self.changed.store(true, Ordering::Release);
    }

    /// Every edge's totals if any changed since the last report (or a resend was asked).
    pub fn report(&self) -> Option<Vec<pb::TrafficEdge>> {
        if !self.changed.swap(false, Ordering::AcqRel) {
            return None;
        }
        let totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        Some(
            totals
                .iter()
                .map(|((caller, callee), t)| pb::TrafficEdge {
                    caller: caller.clone(),
                    callee: callee.clone(),
                    connections: t.connections,
                    bytes_to_callee: t.to_callee,
                    bytes_from_callee: t.from_callee,
                })
                .collect(),
        )
    }

    /// The next heartbeat carries the totals again (a new link: the cluster may know none).
    pub fn resend(&self) {
        let any = !self
            .totals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        if any {
            self.changed.store(true, Ordering::Release);
        }
    }
}

pub(crate) fn label(service: &ServiceName) -> String {
    format!(
        "{}/{}/{}",
        service.namespace, service.application, service.service
    )
}

/// The proxy's meter on a node: its series (per callee) and the edges (per caller too).
pub(crate) struct TrafficMeter {
    pub metrics: Arc<ProxyMetrics>,
    pub edges: Arc<Edges>,
    pub agent: Weak<Agent>,
}

impl Meter for TrafficMeter {
    fn caller(&self, peer: SocketAddr, local: SocketAddr) -> String {
        let Some(agent) = self.agent.upgrade() else {
            return callers::UNKNOWN.to_string();
        };
        let running = agent.running_callers();
        callers::caller(&running, peer, local, std::path::Path::new("/proc"))
    }

    fn opened(&self, service: &ServiceName, caller: &str, outcome: Outcome) {
        self.metrics.opened(service, outcome);
        if outcome == Outcome::Forwarded {
            let one = Totals {
                connections: 1,
                ..Totals::default()
            };
            self.edges.add(caller, label(service), one);
        }
    }

    fn carried(&self, service: &ServiceName, caller: &str, to_service: u64, from_service: u64) {
        self.metrics.carried(service, to_service, from_service);
        if to_service > 0 || from_service > 0 {
            let bytes = Totals {
                connections: 0,
                to_callee: to_service,
                from_callee: from_service,
            };
            self.edges.add(caller, label(service), bytes);
        }
    }
}

impl Agent {
    /// What attribution needs of the instances this node runs (blocking: called off the
    /// runtime's workers, as the meter's `caller` is).
    pub(crate) fn running_callers(&self) -> Running {
        let instances = self.instances.blocking_lock();
        let mut running = Running::default();
        for (id, local) in instances.iter() {
            let workload = &local.record.workload;
            let service = format!(
                "{}/{}/{}",
                workload.namespace, workload.application, workload.service
            );
            running.by_instance.insert(id.clone(), service.clone());
            // Addresses and pids of ended runs may be anyone's by now.
            if local.state() != canopy_model::InstanceState::Running {
                continue;
            }
            for address in &local.details.current().addresses {
                if let Ok(ip) = address.parse() {
                    running.by_address.insert(ip, service.clone());
                }
            }
            if let Some(pid) = local.pid() {
                running.by_pid.push((pid, service));
            }
        }
        running
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_add_up_per_pair_and_report_only_when_changed() {
        let edges = Edges::default();
        assert!(edges.report().is_none(), "nothing carried, nothing to say");
        let one = Totals {
            connections: 1,
            ..Totals::default()
        };
        edges.add("default/shop/web", "default/shop/db".into(), one);
        edges.add("default/shop/web", "default/shop/db".into(), one);
        let bytes = Totals {
            connections: 0,
            to_callee: 10,
            from_callee: 300,
        };
        edges.add("default/shop/web", "default/shop/db".into(), bytes);
        edges.add(callers::UNKNOWN, "default/shop/db".into(), one);
        let report = edges.report().expect("changed");
        assert_eq!(report.len(), 2);
        let web = report
            .iter()
            .find(|e| e.caller == "default/shop/web")
            .unwrap();
        assert_eq!(
            (
                web.callee.as_str(),
                web.connections,
                web.bytes_to_callee,
                web.bytes_from_callee
            ),
            ("default/shop/db", 2, 10, 300)
        );
        assert!(edges.report().is_none(), "unchanged since");
        edges.resend();
        assert_eq!(edges.report().map(|r| r.len()), Some(2), "the totals again");
    }
}

//! Feasibility (Nomad's feasibility checkers, kube-scheduler's Filter plugins): one file per
//! filter, each answering `Ok(())` or a short static reason that the explanation counts.
//! Node-level filters read a node exactly; cluster-level filters read the summary and are
//! conservative: they refuse a cluster only when no node of it can pass.

mod arch;
mod clusters;
mod cordon;
mod direct;
mod geo;
pub(crate) mod latency;
mod ports;
mod resources;
mod runtime;
mod sandbox;
mod selector;
mod spread;
mod trust;

pub(crate) use latency::estimate as latency_estimate;
/// The node-level resources check, for a node's own admission of what its cluster placed.
pub use resources::node as node_resources;
pub use selector::matches as selector_matches;

use crate::prepare::{Kind, Prepared};
use crate::{Candidate, ClusterView, NodeView};

/// Why a candidate was ruled out.
pub type Reason = &'static str;

/// The filters of one level, as a table of functions over the candidate type.
pub(crate) trait Filterable: Candidate {
    /// Checks every request has: refusals, readiness, runtime.
    fn basic(&self, p: &Prepared) -> Result<(), Reason>;
    fn resources(&self, p: &Prepared) -> Result<(), Reason>;
    fn constraint(&self, p: &Prepared, kind: &Kind) -> Result<(), Reason>;
    /// What the candidate costs in preferences that are no constraint of the spec (the
    /// volumes a node holds); nothing by default.
    fn preference_penalty(&self, _p: &Prepared) -> f64 {
        0.0
    }
}

fn refused_or_ready(p: &Prepared, name: &str, ready: bool) -> Result<(), Reason> {
    if p.request.refused.iter().any(|r| r == name) {
        return Err("refused this instance already");
    }
    if !ready {
        return Err("not ready");
    }
    Ok(())
}

impl Filterable for NodeView {
    fn basic(&self, p: &Prepared) -> Result<(), Reason> {
        refused_or_ready(p, &self.name, self.ready)?;
        cordon::node(self)?;
        runtime::check(p, &self.runtimes)?;
        sandbox::check(p, &self.sandboxes, self.kvm)
    }

    /// What the node has room for: resources, and its free host ports.
    fn resources(&self, p: &Prepared) -> Result<(), Reason> {
        resources::node(p, self)?;
        ports::node(p, self)
    }

    fn constraint(&self, p: &Prepared, kind: &Kind) -> Result<(), Reason> {
        match kind {
            Kind::Arch(allowed) => arch::node(allowed, self),
            Kind::NodeSelector(requirements) => selector::node(requirements, self),
            // The root already chose the cluster; a node does not know its cluster's labels.
            Kind::ClusterSelector(_) | Kind::Clusters(_) => Ok(()),
            Kind::Direct(direct) => direct::node(direct, self),
            Kind::Geo(geo, cos_lat) => geo::measure(geo, *cos_lat, self).0,
            Kind::Latency { max_ms, target } => latency::check(*max_ms, target, self),
            Kind::Spread(spread) => spread::node(p, spread, self),
            Kind::Trust(floor) => trust::check(*floor, self),
        }
    }

    fn preference_penalty(&self, p: &Prepared) -> f64 {
        crate::volumes::penalty(p, &self.volumes)
    }
}

impl Filterable for ClusterView {
    fn basic(&self, p: &Prepared) -> Result<(), Reason> {
        refused_or_ready(p, &self.name, self.ready)?;
        runtime::check(p, &self.runtimes)?;
        sandbox::check(p, &self.sandboxes, self.kvm)
    }

    fn resources(&self, p: &Prepared) -> Result<(), Reason> {
        resources::cluster(p, self)?;
        ports::cluster(p, self)
    }

    fn constraint(&self, p: &Prepared, kind: &Kind) -> Result<(), Reason> {
        match kind {
            Kind::Arch(allowed) => arch::cluster(allowed, self),
            Kind::NodeSelector(requirements) => selector::cluster_nodes(requirements, self),
            Kind::ClusterSelector(requirements) => selector::cluster(requirements, self),
            Kind::Clusters(allowed) => clusters::cluster(allowed, self),
            Kind::Direct(direct) => direct::cluster(direct, self),
            Kind::Geo(geo, cos_lat) => geo::measure(geo, *cos_lat, self).0,
            Kind::Latency { max_ms, target } => latency::check(*max_ms, target, self),
            Kind::Spread(spread) => spread::cluster(p, spread, self),
            Kind::Trust(floor) => trust::check(*floor, self),
        }
    }
}

/// What passing the filters costs: the summed rigidness of the violated soft constraints and
/// which checks (bit i = `p.checks[i]`, first 64) they were.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Feasible {
    pub penalty: f64,
    pub violated: u64,
    /// Latency estimates the filters already made, per target (first [`CACHED`]); NaN when
    /// not measured, infinite when unknown. The latency scorer reuses them.
    pub latency_ms: [f64; CACHED],
}

pub(crate) const CACHED: usize = 4;

impl Default for Feasible {
    fn default() -> Self {
        Feasible {
            penalty: 0.0,
            violated: 0,
            latency_ms: [f64::NAN; CACHED],
        }
    }
}

/// Runs every filter: hard failures rule the candidate out, soft ones add to the penalty.
pub(crate) fn evaluate<C: Filterable>(p: &Prepared, candidate: &C) -> Result<Feasible, Reason> {
    candidate.basic(p)?;
    let mut feasible = Feasible::default();
    let mut resources_checked = false;
    // Checks are sorted hard first; resources sit between the hard and the soft ones.
    for (i, check) in p.checks.iter().enumerate() {
        if !check.hard && !resources_checked {
            candidate.resources(p)?;
            resources_checked = true;
        }
        let verdict = match &check.kind {
            // Geo and latency are generic over the candidate: measured here to keep the value.
            Kind::Geo(area, cos_lat) => {
                let (verdict, ms) = geo::measure(area, *cos_lat, candidate);
                remember(&mut feasible, check.target, ms);
                verdict
            }
            Kind::Latency { max_ms, target } => {
                let ms = latency::estimate(candidate, target);
                remember(&mut feasible, check.target, ms.unwrap_or(f64::INFINITY));
                latency::verdict(*max_ms, target, ms)
            }
            kind => candidate.constraint(p, kind),
        };
        if let Err(reason) = verdict {
            if check.hard {
                return Err(reason);
            }
            feasible.penalty += check.rigidness;
            if i < 64 {
                feasible.violated |= 1 << i;
            }
        }
    }
    if !resources_checked {
        candidate.resources(p)?;
    }
    feasible.penalty += candidate.preference_penalty(p);
    Ok(feasible)
}

fn remember(feasible: &mut Feasible, target: Option<usize>, ms: f64) {
    if let Some(slot) = target.and_then(|t| feasible.latency_ms.get_mut(t)) {
        *slot = ms;
    }
}

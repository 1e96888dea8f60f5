//! Selection (Nomad's select, kube-scheduler's "pick the highest score"): the feasible
//! candidate with the lowest soft-constraint penalty, then the highest score, then the
//! earliest index, so the choice is deterministic.

use crate::explain::{Explanation, Placement};
use crate::filters::{Filterable, Reason, evaluate};
use crate::prepare::Prepared;
use crate::scorers::{components, total};
use crate::{ClusterView, NodeView, Request};

/// Picks the node for `request`, or says why none fits.
pub fn place_on_node(request: &Request, nodes: &[NodeView]) -> Result<usize, Explanation> {
    select(&Prepared::new(request), nodes, "nodes").map(|c| c.index)
}

/// Picks the cluster for `request`, or says why none fits.
pub fn place_on_cluster(request: &Request, clusters: &[ClusterView]) -> Result<usize, Explanation> {
    select(&Prepared::new(request), clusters, "clusters").map(|c| c.index)
}

/// [`place_on_node`], with why the chosen node won and which soft constraints it violates.
pub fn place_on_node_explained(
    request: &Request,
    nodes: &[NodeView],
) -> Result<Placement, Explanation> {
    let prepared = Prepared::new(request);
    let chosen = select(&prepared, nodes, "nodes")?;
    Ok(Placement::new(&prepared, &nodes[chosen.index], chosen))
}

/// [`place_on_cluster`], with why the chosen cluster won and which soft constraints it violates.
pub fn place_on_cluster_explained(
    request: &Request,
    clusters: &[ClusterView],
) -> Result<Placement, Explanation> {
    let prepared = Prepared::new(request);
    let chosen = select(&prepared, clusters, "clusters")?;
    Ok(Placement::new(&prepared, &clusters[chosen.index], chosen))
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Chosen {
    pub index: usize,
    pub score: f64,
    pub penalty: f64,
    pub violated: u64,
}

fn select<C: Filterable>(
    p: &Prepared,
    candidates: &[C],
    noun: &'static str,
) -> Result<Chosen, Explanation> {
    // Rejections are counted by static reason: no allocation per candidate.
    let mut rejected: Vec<(Reason, usize)> = Vec::new();
    let mut best: Option<Chosen> = None;
    for (index, candidate) in candidates.iter().enumerate() {
        let feasible = match evaluate(p, candidate) {
            Ok(feasible) => feasible,
            Err(reason) => {
                match rejected.iter_mut().find(|(r, _)| *r == reason) {
                    Some((_, count)) => *count += 1,
                    None => rejected.push((reason, 1)),
                }
                continue;
            }
        };
        // A higher penalty can never win: skip scoring it.
        if best.is_some_and(|b| feasible.penalty > b.penalty) {
            continue;
        }
        let score = total(p, &components(p, candidate, &feasible.latency_ms));
        let better = best.is_none_or(|b| feasible.penalty < b.penalty || score > b.score);
        if better {
            best = Some(Chosen {
                index,
                score,
                penalty: feasible.penalty,
                violated: feasible.violated,
            });
        }
    }
    best.ok_or_else(|| {
        let mut explanation = Explanation::new(noun, candidates.len());
        for (reason, count) in rejected {
            explanation.reasons.insert(reason.to_string(), count);
        }
        explanation
    })
}

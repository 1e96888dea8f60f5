//! Ranking of feasible candidates (Nomad's rankers, kube-scheduler's Score plugins): one file
//! per scorer, each normalised to [0, 1], higher is better; the total is their weighted mean
//! with the [`crate::Objective`]'s weights.

mod best_fit;
mod energy;
pub(crate) mod latency;
mod spread;
mod trust;

pub use best_fit::BestFit;
pub use energy::Energy;
pub use latency::Latency;
pub use spread::Spread;
pub use trust::Trust;

use crate::Candidate;
use crate::prepare::Prepared;

/// One ranking criterion.
pub trait Scorer<C: Candidate> {
    fn name(&self) -> &'static str;
    /// In [0, 1], higher is better.
    fn score(&self, p: &Prepared, candidate: &C) -> f64;
}

/// Per-scorer weighted contributions, in the order best fit, spread, latency, energy, trust.
pub(crate) const NAMES: [&str; 5] = ["best fit", "spread", "latency", "energy", "trust"];

/// Scores of each scorer (zero-weight ones are skipped and read 0).
/// `known`: latency estimates the filters already made (see `Feasible::latency_ms`).
pub(crate) fn components<C: Candidate>(p: &Prepared, candidate: &C, known: &[f64]) -> [f64; 5] {
    let w = &p.weights;
    let run = |weight: f64, scorer: &dyn Scorer<C>| {
        if weight > 0.0 {
            scorer.score(p, candidate)
        } else {
            0.0
        }
    };
    [
        run(w.best_fit, &BestFit),
        run(w.spread, &Spread),
        if w.latency > 0.0 {
            latency::cached(p, candidate, known)
        } else {
            0.0
        },
        run(w.energy, &Energy),
        run(w.trust, &Trust),
    ]
}

/// The weighted mean of the components, in [0, 1].
pub(crate) fn total(p: &Prepared, parts: &[f64; 5]) -> f64 {
    let w = &p.weights;
    if p.weight_total <= 0.0 {
        return 0.0;
    }
    (w.best_fit * parts[0]
        + w.spread * parts[1]
        + w.latency * parts[2]
        + w.energy * parts[3]
        + w.trust * parts[4])
        / p.weight_total
}

/// Fraction of capacity left free after the placement, 0 when there is no capacity.
pub(crate) fn left(free: u64, need: u64, capacity: u64) -> f64 {
    if capacity == 0 {
        0.0
    } else {
        free.saturating_sub(need) as f64 / capacity as f64
    }
}

//! Latency: closer to the request's latency and geo targets is better. Each target scores
//! `1 / (1 + rtt / 20 ms)` (1 next door, 0.5 at 20 ms), unknown latency 0; the mean counts.
//! A request without targets scores 1 everywhere (no preference).

use super::Scorer;
use crate::Candidate;
use crate::filters::latency_estimate;
use crate::prepare::{Prepared, Target};

/// Round trip at which the latency score is one half, ms.
pub const HALF_SCORE_MS: f64 = 20.0;

pub struct Latency;

impl<C: Candidate> Scorer<C> for Latency {
    fn name(&self) -> &'static str {
        "latency"
    }

    fn score(&self, p: &Prepared, candidate: &C) -> f64 {
        cached(p, candidate, &[])
    }
}

/// The score, reusing estimates the filters made (`known[i]` for target i; NaN: not made).
pub(crate) fn cached<C: Candidate>(p: &Prepared, candidate: &C, known: &[f64]) -> f64 {
    if p.targets.is_empty() {
        return 1.0;
    }
    let sum: f64 = p
        .targets
        .iter()
        .enumerate()
        .map(|(i, target)| {
            if let Target::Service { endpoints: [], .. } = target {
                return 1.0;
            }
            let ms = match known.get(i) {
                Some(ms) if !ms.is_nan() => Some(*ms).filter(|ms| ms.is_finite()),
                _ => latency_estimate(candidate, target),
            };
            ms.map_or(0.0, |ms| 1.0 / (1.0 + ms / HALF_SCORE_MS))
        })
        .sum();
    sum / p.targets.len() as f64
}

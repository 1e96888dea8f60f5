use crate::Candidate;
use crate::filters::latency_estimate;
use crate::prepare::{Prepared, Target};
use crate::scorers;
use crate::select::Chosen;
use std::collections::BTreeMap;
use std::fmt;

/// Why no candidate fits: how many were considered, and how many each reason ruled out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub noun: &'static str,
    pub candidates: usize,
    pub reasons: BTreeMap<String, usize>,
}

impl Explanation {
    pub fn new(noun: &'static str, candidates: usize) -> Self {
        Explanation {
            noun,
            candidates,
            reasons: BTreeMap::new(),
        }
    }

    pub fn add(&mut self, reason: String) {
        *self.reasons.entry(reason).or_default() += 1;
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} {} are available", self.candidates, self.noun)?;
        if self.candidates == 0 {
            return Ok(());
        }
        // Most common reason first, as kube-scheduler lists them.
        let mut reasons: Vec<(&String, &usize)> = self.reasons.iter().collect();
        reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let parts: Vec<String> = reasons
            .into_iter()
            .map(|(reason, count)| format!("{count} {reason}"))
            .collect();
        write!(f, ": {}", parts.join(", "))
    }
}

/// A soft constraint the chosen candidate violates.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Index in `spec.constraints`.
    pub constraint: usize,
    /// Its kind, as the descriptor names it (`geo`, `latency`, ...).
    pub kind: &'static str,
    pub rigidness: f64,
}

/// Why a candidate was chosen: "node n2: score 0.84 (best fit 0.83, trust 1.00),
/// latency 12 ms to 48.1,11.6".
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Index of the chosen candidate in the slice given.
    pub index: usize,
    /// "node" or "cluster".
    pub noun: &'static str,
    pub name: String,
    /// Weighted mean of the scorers, in [0, 1], before soft-constraint penalties.
    pub score: f64,
    /// Summed rigidness of the violated soft constraints.
    pub penalty: f64,
    /// Scorers by weighted contribution, largest first: (name, score in [0, 1]).
    pub reasons: Vec<(&'static str, f64)>,
    /// Estimated round trip to each latency or geo target: (target, ms, unknown as None).
    pub latencies: Vec<(String, Option<f64>)>,
    /// Soft constraints violated; the caller tracks how long (see [`crate::should_replace`]).
    pub violated: Vec<Violation>,
}

impl Placement {
    pub(crate) fn new<C: Candidate>(p: &Prepared, candidate: &C, chosen: Chosen) -> Self {
        let parts = scorers::components(p, candidate, &[]);
        let w = &p.weights;
        let weights = [w.best_fit, w.spread, w.latency, w.energy, w.trust];
        let mut reasons: Vec<(&'static str, f64, f64)> = (0..5)
            // Latency without targets is the same everywhere: not a reason.
            .filter(|&i| weights[i] > 0.0 && !(i == 2 && p.targets.is_empty()))
            .map(|i| (scorers::NAMES[i], parts[i], weights[i] * parts[i]))
            .collect();
        reasons.sort_by(|a, b| b.2.total_cmp(&a.2));
        let latencies = p
            .targets
            .iter()
            .map(|target| {
                let label = match target {
                    Target::Point { point, .. } => format!("{},{}", point.lat, point.lon),
                    Target::Service { name, .. } => format!("service {name}"),
                };
                (label, latency_estimate(candidate, target))
            })
            .collect();
        let violated = p
            .checks
            .iter()
            .enumerate()
            .filter(|(i, _)| *i < 64 && chosen.violated & (1 << i) != 0)
            .map(|(_, check)| Violation {
                constraint: check.index,
                kind: check.kind.name(),
                rigidness: check.rigidness,
            })
            .collect();
        Placement {
            index: chosen.index,
            noun: C::NOUN,
            name: candidate.name().to_string(),
            score: chosen.score,
            penalty: chosen.penalty,
            reasons: reasons.into_iter().map(|(n, s, _)| (n, s)).collect(),
            latencies,
            violated,
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: score {:.2}", self.noun, self.name, self.score)?;
        let top: Vec<String> = self
            .reasons
            .iter()
            .take(3)
            .map(|(name, score)| format!("{name} {score:.2}"))
            .collect();
        if !top.is_empty() {
            write!(f, " ({})", top.join(", "))?;
        }
        for (target, ms) in &self.latencies {
            match ms {
                Some(ms) => write!(f, ", latency {ms:.0} ms to {target}")?,
                None => write!(f, ", latency unknown to {target}")?,
            }
        }
        if !self.violated.is_empty() {
            let soft: Vec<String> = self
                .violated
                .iter()
                .map(|v| format!("#{} ({})", v.constraint, v.kind))
                .collect();
            write!(f, "; violates soft constraint {}", soft.join(", "))?;
        }
        Ok(())
    }
}

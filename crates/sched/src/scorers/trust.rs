//! Trust: the candidate's trust score, clamped to [0, 1] (NaN counts as 0).

use super::Scorer;
use crate::Candidate;
use crate::prepare::Prepared;

pub struct Trust;

impl<C: Candidate> Scorer<C> for Trust {
    fn name(&self) -> &'static str {
        "trust"
    }

    fn score(&self, _: &Prepared, candidate: &C) -> f64 {
        let trust = candidate.trust();
        if trust.is_nan() {
            0.0
        } else {
            trust.clamp(0.0, 1.0)
        }
    }
}

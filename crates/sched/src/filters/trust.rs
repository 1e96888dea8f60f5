//! Trust floor: a node's trust (a cluster's best node's) must reach the minimum score.

use super::Reason;
use crate::Candidate;

pub fn check<C: Candidate>(floor: f64, candidate: &C) -> Result<(), Reason> {
    // NaN trust never passes.
    if candidate.trust() >= floor {
        Ok(())
    } else {
        Err("trust below the floor")
    }
}

//! Best fit (bin packing): prefer the candidate left with the least free CPU and memory after
//! the placement, as fractions of its capacity, so large holes stay for large instances.

use super::{Scorer, left};
use crate::prepare::Prepared;
use crate::{Candidate, free};

pub struct BestFit;

impl<C: Candidate> Scorer<C> for BestFit {
    fn name(&self) -> &'static str {
        "best fit"
    }

    fn score(&self, p: &Prepared, candidate: &C) -> f64 {
        let capacity = candidate.capacity();
        let free = free(capacity, candidate.allocated());
        let cpu = left(free.cpu_millis, p.need.cpu_millis, capacity.cpu_millis);
        let memory = left(free.memory_mib, p.need.memory_mib, capacity.memory_mib);
        1.0 - (cpu + memory) / 2.0
    }
}

//! Spread (least loaded): prefer the candidate left with the most free CPU and memory, and
//! with the fewest instances of this service already (halved per instance present).

use super::{Scorer, left};
use crate::prepare::Prepared;
use crate::{Candidate, free};

pub struct Spread;

impl<C: Candidate> Scorer<C> for Spread {
    fn name(&self) -> &'static str {
        "spread"
    }

    fn score(&self, p: &Prepared, candidate: &C) -> f64 {
        let capacity = candidate.capacity();
        let free = free(capacity, candidate.allocated());
        let cpu = left(free.cpu_millis, p.need.cpu_millis, capacity.cpu_millis);
        let memory = left(free.memory_mib, p.need.memory_mib, capacity.memory_mib);
        let present = p.request.context.map_or(0, |c| candidate.instances(c));
        (cpu + memory) / 2.0 / (1.0 + f64::from(present))
    }
}

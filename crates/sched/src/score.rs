//! Ranking of feasible candidates: higher is better.

use crate::free;
use canopy_model::{ResourceAmounts, Resources};

/// Best fit (bin packing): prefer the candidate left with the least free CPU and memory after
/// the placement, as fractions of its capacity, so large holes stay for large instances.
pub fn best_fit(capacity: &ResourceAmounts, allocated: &ResourceAmounts, need: &Resources) -> f64 {
    let free = free(capacity, allocated);
    let left = |free: u64, need: u64, capacity: u64| {
        if capacity == 0 {
            0.0
        } else {
            free.saturating_sub(need) as f64 / capacity as f64
        }
    };
    let cpu = left(free.cpu_millis, need.cpu.0, capacity.cpu_millis);
    let memory = left(free.memory_mib, need.memory.0, capacity.memory_mib);
    1.0 - (cpu + memory) / 2.0
}

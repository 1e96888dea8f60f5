//! Resources: cpu, memory, gpu count, gpu model, storage against free = capacity − allocated
//! (allocated already includes reservations). A cluster needs room in total and on at least
//! one node per dimension (`max_node_free`), and a node with the GPU model when one is asked.

use super::Reason;
use crate::prepare::Prepared;
use crate::{ClusterView, GPU_MODEL_LABEL, NodeView, free};
use canopy_model::ResourceAmounts;

#[derive(Clone, Copy)]
enum Short {
    Cpu,
    Memory,
    Gpu,
    Storage,
}

fn short(free: &ResourceAmounts, need: &ResourceAmounts) -> Option<Short> {
    if free.cpu_millis < need.cpu_millis {
        Some(Short::Cpu)
    } else if free.memory_mib < need.memory_mib {
        Some(Short::Memory)
    } else if free.gpus < need.gpus {
        Some(Short::Gpu)
    } else if free.storage_mib < need.storage_mib {
        Some(Short::Storage)
    } else {
        None
    }
}

fn anywhere(short: Short) -> Reason {
    match short {
        Short::Cpu => "insufficient cpu",
        Short::Memory => "insufficient memory",
        Short::Gpu => "insufficient gpu",
        Short::Storage => "insufficient storage",
    }
}

fn single_node(short: Short) -> Reason {
    match short {
        Short::Cpu => "insufficient cpu on any single node",
        Short::Memory => "insufficient memory on any single node",
        Short::Gpu => "insufficient gpu on any single node",
        Short::Storage => "insufficient storage on any single node",
    }
}

const GPU_MODEL: Reason = "gpu model mismatch";

pub fn node(p: &Prepared, node: &NodeView) -> Result<(), Reason> {
    if let Some(s) = short(&free(&node.capacity, &node.allocated), &p.need) {
        return Err(anywhere(s));
    }
    // A model only matters when GPUs are asked for.
    if let (true, Some(model)) = (p.need.gpus > 0, p.gpu_model) {
        let have = node
            .gpu_model
            .as_deref()
            .or_else(|| node.labels.get(GPU_MODEL_LABEL).map(String::as_str));
        if have != Some(model) {
            return Err(GPU_MODEL);
        }
    }
    Ok(())
}

pub fn cluster(p: &Prepared, cluster: &ClusterView) -> Result<(), Reason> {
    if let Some(s) = short(&free(&cluster.capacity, &cluster.allocated), &p.need) {
        return Err(anywhere(s));
    }
    if let Some(s) = short(&cluster.max_node_free, &p.need) {
        return Err(single_node(s));
    }
    if let (true, Some(model), Some(models)) = (p.need.gpus > 0, p.gpu_model, &cluster.gpu_models)
        && !models.contains(model)
    {
        return Err(GPU_MODEL);
    }
    Ok(())
}

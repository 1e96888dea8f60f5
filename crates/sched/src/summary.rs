//! Cluster summary: what the root needs to decide conservatively, from the node views.

use crate::geo::centroid;
use crate::vivaldi::Coordinate;
use crate::{ClusterView, GPU_MODEL_LABEL, NodeView, free};
use canopy_model::ResourceAmounts;
use std::collections::{BTreeMap, BTreeSet};

/// Summarises `nodes` as cluster `name`. Only ready nodes that are not cordoned count (a node
/// that cannot take an instance must not make the cluster look roomier); `labels` (the
/// cluster's own) start empty.
pub fn summarise(name: &str, nodes: &[NodeView]) -> ClusterView {
    let ready = || nodes.iter().filter(|n| n.ready && !n.unschedulable);
    let mut view = ClusterView {
        name: name.to_string(),
        ready: ready().next().is_some(),
        ..ClusterView::default()
    };
    let mut arches = BTreeSet::new();
    let mut runtimes = BTreeSet::new();
    let mut sandboxes = BTreeSet::new();
    let mut node_labels: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut gpu_models = BTreeSet::new();
    let mut max_free = ResourceAmounts::default();
    let (mut watts, mut carbon) = (Vec::new(), Vec::new());
    let mut trust = f64::NEG_INFINITY;
    let mut count = 0u32;
    let mut taken_everywhere: Option<BTreeSet<crate::HostPort>> = None;
    for node in ready() {
        count += 1;
        taken_everywhere = Some(match taken_everywhere {
            None => node.host_ports.clone(),
            Some(taken) => taken.intersection(&node.host_ports).copied().collect(),
        });
        view.capacity.add(&node.capacity);
        view.allocated.add(&node.allocated);
        let f = free(&node.capacity, &node.allocated);
        max_free.cpu_millis = max_free.cpu_millis.max(f.cpu_millis);
        max_free.memory_mib = max_free.memory_mib.max(f.memory_mib);
        max_free.gpus = max_free.gpus.max(f.gpus);
        max_free.storage_mib = max_free.storage_mib.max(f.storage_mib);
        arches.insert(node.arch.clone());
        runtimes.extend(node.runtimes.iter().copied());
        sandboxes.extend(node.sandboxes.iter().copied());
        view.kvm |= node.kvm;
        for (key, value) in &node.labels {
            node_labels
                .entry(key.clone())
                .or_default()
                .insert(value.clone());
        }
        if let Some(model) = node
            .gpu_model
            .as_ref()
            .or_else(|| node.labels.get(GPU_MODEL_LABEL))
        {
            gpu_models.insert(model.clone());
        }
        watts.extend(node.watts_per_core.filter(|w| w.is_finite()));
        carbon.extend(node.carbon_g_per_kwh.filter(|c| c.is_finite()));
        if !node.trust.is_nan() {
            trust = trust.max(node.trust);
        }
    }
    view.max_node_free = max_free;
    view.host_ports_taken_everywhere = Some(taken_everywhere.unwrap_or_default());
    view.arches = arches.into_iter().collect();
    view.runtimes = runtimes.into_iter().collect();
    view.sandboxes = sandboxes.into_iter().collect();
    view.node_labels = Some(node_labels);
    view.gpu_models = Some(gpu_models);
    view.node_count = Some(count);
    view.trust = if trust.is_finite() { trust } else { 0.0 };
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    view.watts_per_core = mean(&watts);
    view.carbon_g_per_kwh = mean(&carbon);
    if let Some((centre, radius)) = centroid(ready().filter_map(|n| n.location)) {
        view.location = Some(centre);
        view.location_radius_km = radius;
    }
    let coordinates: Vec<Coordinate> = ready().filter_map(|n| n.coordinate).collect();
    if !coordinates.is_empty() {
        let n = coordinates.len() as f64;
        // Lowest height and largest planar radius: centre estimate − radius is a lower bound
        // of every node's estimate (triangle inequality).
        let mut centre = Coordinate {
            x: coordinates.iter().map(|c| c.x).sum::<f64>() / n,
            y: coordinates.iter().map(|c| c.y).sum::<f64>() / n,
            height: coordinates
                .iter()
                .map(|c| c.height)
                .fold(f64::INFINITY, f64::min),
        };
        if !centre.height.is_finite() {
            centre.height = 0.0;
        }
        view.coordinate_radius_ms = coordinates
            .iter()
            .map(|c| c.planar_distance(&centre))
            .fold(0.0, f64::max);
        view.coordinate = Some(centre);
    }
    view
}

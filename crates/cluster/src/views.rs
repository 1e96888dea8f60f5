//! The scheduler's view of the nodes: what each offers and what the cluster's placements
//! already hold there, and what placing one instance depends on besides the nodes.

use crate::state::ClusterState;
use canopy_model::{ResourceAmounts, ServiceSpec};
use canopy_sched::{Endpoint, NodeView, PlacementContext, demand};
use canopy_tier::node_view;

impl ClusterState {
    /// Brings the views up to date: rebuilt when a node joined or changed, else only
    /// readiness and allocation refreshed. Allocation counts every live instance placed on a
    /// node, including those assigned but not yet running (reservations), and both copies of
    /// one being moved.
    pub(crate) fn refresh_views(&mut self) {
        if self.views_stale || self.views.len() != self.nodes.len() {
            let carbon = self.settings.carbon_g_per_kwh;
            self.views = self
                .nodes
                .values()
                .map(|entry| {
                    let mut view = node_view(&entry.member, false, ResourceAmounts::default());
                    view.carbon_g_per_kwh = view.carbon_g_per_kwh.or(carbon);
                    crate::config::apply(&mut view, self.node_settings.get(&entry.member.name));
                    view
                })
                .collect();
            self.views_stale = false;
        }
        for (view, entry) in self.views.iter_mut().zip(self.nodes.values()) {
            view.ready = entry.usable();
            view.allocated = ResourceAmounts::default();
            view.host_ports.clear();
        }
        for placed in self.instances.values().filter(|p| p.is_live()) {
            for node in placed.nodes() {
                reserve(&mut self.views, node, &placed.workload.spec);
            }
        }
    }

    pub(crate) fn view(&self, node: &str) -> Option<&NodeView> {
        self.views
            .binary_search_by(|v| v.name.as_str().cmp(node))
            .ok()
            .map(|index| &self.views[index])
    }

    pub(crate) fn view_mut(&mut self, node: &str) -> Option<&mut NodeView> {
        self.views
            .binary_search_by(|v| v.name.as_str().cmp(node))
            .ok()
            .map(|index| &mut self.views[index])
    }

    /// What placing instance `id` depends on besides the nodes: how many instances of its
    /// service each node runs (spread), where the application's other services run
    /// (latency to a service), and the named volumes it uses (held by some nodes).
    pub(crate) fn context(&self, id: &str) -> Option<PlacementContext> {
        let placed = self.instances.get(id)?;
        let workload = &placed.workload;
        let mut context = PlacementContext {
            volumes: (workload.spec).node_volume_keys(&workload.namespace, &workload.application),
            ..PlacementContext::default()
        };
        for other in self
            .instances
            .values()
            .filter(|p| p.is_live() && p.id != id)
        {
            let Some(node) = &other.node else { continue };
            if other.same_service(placed) {
                *context.instances_per_node.entry(node.clone()).or_default() += 1;
            } else if (&other.workload.namespace, &other.workload.application)
                == (&placed.workload.namespace, &placed.workload.application)
            {
                let member = self.nodes.get(node).map(|n| &n.member);
                context
                    .services
                    .entry(other.workload.service.clone())
                    .or_default()
                    .push(Endpoint {
                        location: member.and_then(canopy_tier::location_from_pb),
                        coordinate: member
                            .and_then(|m| canopy_tier::coordinate_from_pb(m.coordinate.as_ref())),
                    });
            }
        }
        Some(context)
    }
}

/// Counts `spec`'s demand and host ports against `node` in `views` (which are in the nodes'
/// sorted order).
pub(crate) fn reserve(views: &mut [NodeView], node: &str, spec: &ServiceSpec) {
    if let Ok(index) = views.binary_search_by(|v| v.name.as_str().cmp(node)) {
        let view = &mut views[index];
        view.allocated.add(&demand(spec));
        let published = spec
            .ports
            .iter()
            .filter_map(|p| Some((p.host_port?, p.protocol)));
        view.host_ports.extend(published);
    }
}

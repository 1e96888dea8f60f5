//! What the root hears of this cluster: a summary for coarse placement (from
//! [`canopy_sched::summarise`]) and every node, sent as changes only.

use crate::state::{ClusterState, Now};
use canopy_model::GeoPoint;
use canopy_sched::{Coordinate, summarise};
use canopy_tier::{coordinate_to_pb, pb, summary_to_pb};
use std::collections::{BTreeMap, BTreeSet};

/// Where the cluster stands, beyond its nodes: set by its operator and its probers.
#[derive(Debug, Clone, Default)]
pub struct Site {
    pub labels: BTreeMap<String, String>,
    pub location: Option<GeoPoint>,
    /// The cluster's own coordinate among its nodes (LAN space).
    pub lan: Option<Coordinate>,
    /// Its coordinate among clusters (WAN space), with its error and the address other
    /// clusters probe it at.
    pub wan: Option<(Coordinate, f64, String)>,
}

impl ClusterState {
    /// The summary for the root and every node as reported up.
    pub fn summary(&mut self, site: &Site, now: Now) -> (pb::Member, Vec<pb::Member>) {
        self.refresh_views();
        let mut instance_counts: BTreeMap<&str, u32> = BTreeMap::new();
        for placed in self.instances.values().filter(|p| p.is_live()) {
            if let Some(node) = &placed.node {
                *instance_counts.entry(node.as_str()).or_default() += 1;
            }
        }
        let nodes = self
            .views
            .iter()
            .zip(self.nodes.values())
            .map(|(view, entry)| {
                let silent = now.at.saturating_duration_since(entry.last_seen);
                pb::Member {
                    allocated: Some(view.allocated.into()),
                    // Reachable as the failure detector judges it: a link that is being
                    // re-made (an agent restarting) is not a lost node. The scheduler's view
                    // also needs the link (`view.ready`) to send it work.
                    ready: entry.ready,
                    instance_count: instance_counts
                        .get(view.name.as_str())
                        .copied()
                        .unwrap_or(0),
                    joined_at_ms: entry.joined_at_ms,
                    last_seen_ms: now.unix_ms - silent.as_millis() as i64,
                    cluster: self.settings.name.clone(),
                    cluster_rtt_ms: match (site.lan, view.coordinate) {
                        (Some(centre), Some(node)) => centre.estimate_rtt(&node),
                        _ => 0.0,
                    },
                    usage: Some(canopy_tier::usage_to_pb(crate::usage::total(&entry.usage))),
                    instance_usage: canopy_tier::instance_usage_to_pb(&entry.usage),
                    ..entry.member.clone()
                }
            })
            .collect();
        let mut view = summarise(&self.settings.name, &self.views);
        view.ready = true;
        view.labels = site.labels.clone();
        if view.location.is_none() {
            view.location = site.location;
        }
        // Down nodes count as members, not as capacity.
        view.node_count = Some(self.nodes.len() as u32);
        // The cluster's coordinate is its WAN one (the nodes' LAN coordinates live in another
        // space); the radius is how far its farthest ready node is, in its LAN space.
        view.coordinate = site.wan.as_ref().map(|(c, _, _)| *c);
        view.coordinate_radius_ms = match site.lan {
            Some(centre) => self
                .views
                .iter()
                .filter(|v| v.ready)
                .filter_map(|v| v.coordinate.map(|c| centre.estimate_rtt(&c)))
                .fold(0.0, f64::max),
            None => 0.0,
        };
        let mut summary = summary_to_pb(&view);
        // The calls its nodes' proxies carried, summed: the root needs pairs, not nodes.
        summary.traffic = canopy_tier::sum_traffic(self.nodes.values().flat_map(|n| &n.traffic));
        if let Some((coordinate, error, advertised)) = &site.wan {
            summary.probe_address = advertised.clone();
            summary.coordinate = coordinate_to_pb(Some((*coordinate, *error)));
        }
        (summary, nodes)
    }
}

/// What the root last heard, in comparable form (see [`comparable`]), to send only changes.
#[derive(Default)]
pub struct Reported {
    summary: Option<pb::Member>,
    nodes: BTreeMap<String, pb::Member>,
}

impl Reported {
    /// What changed since the root last heard; everything when `complete` (a new link).
    pub fn delta(
        &mut self,
        summary: pb::Member,
        nodes: Vec<pb::Member>,
        complete: bool,
    ) -> Option<pb::Membership> {
        if complete {
            *self = Reported::default();
        }
        let mut current = BTreeSet::new();
        let mut changed = Vec::new();
        for node in nodes {
            current.insert(node.name.clone());
            let seen = comparable(&node);
            if self.nodes.get(&node.name) != Some(&seen) {
                self.nodes.insert(node.name.clone(), seen);
                changed.push(node);
            }
        }
        let removed: Vec<String> = self
            .nodes
            .keys()
            .filter(|name| !current.contains(*name))
            .cloned()
            .collect();
        for name in &removed {
            self.nodes.remove(name);
        }
        let seen = comparable(&summary);
        if !complete
            && changed.is_empty()
            && removed.is_empty()
            && self.summary == Some(seen.clone())
        {
            return None;
        }
        self.summary = Some(seen);
        Some(pb::Membership {
            summary: Some(summary),
            nodes: changed,
            removed,
            complete,
        })
    }
}

/// A member without what changes all the time and is not worth a report: last-seen times,
/// and latency jitter below a millisecond (or a tenth of relative error): coordinates, the
/// round trip to the cluster and the cluster's radius move a little with every probe.
fn comparable(member: &pb::Member) -> pb::Member {
    let round = |value: f64, step: f64| (value / step).round() * step;
    pb::Member {
        last_seen_ms: 0,
        coordinate: member.coordinate.map(|c| pb::Coordinate {
            x: round(c.x, 1.0),
            y: round(c.y, 1.0),
            height: round(c.height, 1.0),
            error: round(c.error, 0.1),
        }),
        cluster_rtt_ms: round(member.cluster_rtt_ms, 1.0),
        coordinate_radius_ms: round(member.coordinate_radius_ms, 1.0),
        ..member.clone()
    }
}

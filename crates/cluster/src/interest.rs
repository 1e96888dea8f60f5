//! Which nodes want routes to which services: a node says so when its workloads resolve a
//! name and renews it while they use it; interest not renewed lapses. Only interested nodes
//! get a service's routes, and only when they change, so a cluster of thousands of nodes
//! that use nothing sends no routes at all.

use crate::effects::{Effects, ToNode};
use crate::routes::{ServiceKey, key_of};
use crate::state::{ClusterState, Now};
use canopy_tier::pb;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Interest a node does not renew within this lapses (nodes renew every 10 s).
pub const INTEREST_EXPIRY: Duration = Duration::from_secs(35);

#[derive(Debug, Default)]
pub struct Interests {
    /// Until when each node is interested, by service.
    by_service: BTreeMap<ServiceKey, BTreeMap<String, Instant>>,
    /// Where each node's process workloads are reached, as it said.
    pub addresses: BTreeMap<String, String>,
    /// What each (node, service) was last sent.
    sent: BTreeMap<(String, ServiceKey), pb::ServiceRoutes>,
}

impl ClusterState {
    /// `node` uses these services: their routes are sent now (only those new to this
    /// cluster's interest when it is a renewal), as the node may be waiting on its first word.
    pub fn node_interest(
        &mut self,
        node: &str,
        interest: pb::Interest,
        now: Now,
        fx: &mut Effects,
    ) {
        if !interest.address.is_empty() {
            self.interests
                .addresses
                .insert(node.to_string(), interest.address);
        }
        let until = now.at + INTEREST_EXPIRY;
        let mut fresh = Vec::new();
        for name in &interest.services {
            let key = key_of(name);
            let nodes = self.interests.by_service.entry(key.clone()).or_default();
            if nodes.insert(node.to_string(), until).is_none() || !interest.renewal {
                fresh.push(key);
            }
        }
        // A whole application's services: sent now, whatever the node had.
        for app in &interest.applications {
            for key in self.services_of(&app.namespace, &app.application) {
                let nodes = self.interests.by_service.entry(key.clone()).or_default();
                nodes.insert(node.to_string(), until);
                if !fresh.contains(&key) {
                    fresh.push(key);
                }
            }
        }
        let mut routes = Vec::new();
        for key in fresh {
            let current = self.routes_for(&key, node, &self.interests.addresses);
            self.interests
                .sent
                .insert((node.to_string(), key), current.clone());
            routes.push(current);
        }
        if !routes.is_empty() {
            fx.send(node, ToNode::Routes(pb::Routes { services: routes }));
        }
        // A node that just told its address may serve endpoints others are waiting on.
        self.refresh_routes(now, fx);
    }

    /// Drops lapsed interest and sends each interested node the routes that changed since
    /// it last heard.
    pub fn refresh_routes(&mut self, now: Now, fx: &mut Effects) {
        let mut lapsed = Vec::new();
        for (key, nodes) in &mut self.interests.by_service {
            nodes.retain(|node, until| {
                let keep = *until > now.at;
                if !keep {
                    lapsed.push((node.clone(), key.clone()));
                }
                keep
            });
        }
        self.interests
            .by_service
            .retain(|_, nodes| !nodes.is_empty());
        for pair in lapsed {
            self.interests.sent.remove(&pair);
        }
        let mut changed: BTreeMap<String, Vec<pb::ServiceRoutes>> = BTreeMap::new();
        for (key, nodes) in &self.interests.by_service {
            for node in nodes.keys() {
                let current = self.routes_for(key, node, &self.interests.addresses);
                let pair = (node.clone(), key.clone());
                if self.interests.sent.get(&pair) != Some(&current) {
                    changed.entry(node.clone()).or_default().push(current);
                }
            }
        }
        for (node, services) in changed {
            for routes in &services {
                if let Some(name) = &routes.name {
                    self.interests
                        .sent
                        .insert((node.clone(), key_of(name)), routes.clone());
                }
            }
            fx.send(&node, ToNode::Routes(pb::Routes { services }));
        }
    }
}

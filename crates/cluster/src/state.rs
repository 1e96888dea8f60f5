//! The cluster's pure core: its nodes, the instances it placed and the scheduler's view of
//! the nodes. Every decision is a method of [`ClusterState`] (in the file named for it:
//! `placement`, `intake`, `membership`, `failure`, `moves`, `peers`, `summary`) that takes
//! the time as a value and records what should happen in an [`crate::Effects`]; none of
//! them does I/O or reads a clock.

use crate::placed::Placed;
use canopy_sched::NodeView;
use canopy_tier::pb;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The time a decision is taken at: monotonic for deadlines, wall-clock for records.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub at: Instant,
    pub unix_ms: i64,
}

impl Now {
    pub fn later(self, by: Duration) -> Now {
        Now {
            at: self.at + by,
            unix_ms: self.unix_ms + by.as_millis() as i64,
        }
    }
}

/// What the core needs to know about itself.
#[derive(Debug, Clone)]
pub struct Settings {
    pub name: String,
    /// Silence after which a node is unreachable.
    pub node_deadline: Duration,
    /// Grid carbon intensity at the site, for nodes that report none.
    pub carbon_g_per_kwh: Option<f64>,
    /// The port of the cluster's own LAN prober, given to nodes as a peer.
    pub probe_port: Option<u16>,
}

pub struct NodeEntry {
    pub member: pb::Member,
    /// Heard from within the deadline.
    pub ready: bool,
    pub last_seen: Instant,
    pub joined_at_ms: i64,
    /// The id of its current link; none while it is disconnected.
    pub link: Option<u64>,
    /// What its instances use, by instance id, from its last sample.
    pub usage: BTreeMap<String, canopy_model::Usage>,
    /// The calls its proxy carried (totals), from its last heartbeat that said.
    pub traffic: Vec<pb::TrafficEdge>,
}

impl NodeEntry {
    /// A node that may be given work: ready and linked.
    pub fn usable(&self) -> bool {
        self.ready && self.link.is_some()
    }
}

pub struct ClusterState {
    pub settings: Settings,
    pub nodes: BTreeMap<String, NodeEntry>,
    pub instances: BTreeMap<String, Placed>,
    /// The scheduler's view of every node, in `nodes`' order. Rebuilt only when a node's
    /// description changes (`views_stale`); readiness and allocation are refreshed in place
    /// before each use, so placing over thousands of nodes allocates nothing per node.
    pub(crate) views: Vec<NodeView>,
    pub(crate) views_stale: bool,
    /// The operator's settings of nodes (cordon, labels), from the root.
    pub node_settings: BTreeMap<String, canopy_model::OperatorSettings>,
    /// Which nodes want overlay routes to which services.
    pub(crate) interests: crate::interest::Interests,
}

impl ClusterState {
    /// The state after a restart: the instances it had placed. Nodes that ran them get one
    /// deadline from `now` to reconnect before their instances count as lost.
    pub fn recover(settings: Settings, placed: Vec<Placed>, now: Now) -> ClusterState {
        let mut state = ClusterState {
            settings,
            nodes: BTreeMap::new(),
            instances: BTreeMap::new(),
            views: Vec::new(),
            views_stale: true,
            node_settings: BTreeMap::new(),
            interests: Default::default(),
        };
        for placed in placed {
            for node in placed.nodes() {
                state
                    .nodes
                    .entry(node.to_string())
                    .or_insert_with(|| NodeEntry {
                        member: pb::Member {
                            name: node.to_string(),
                            ..pb::Member::default()
                        },
                        ready: true,
                        last_seen: now.at,
                        joined_at_ms: now.unix_ms,
                        link: None,
                        usage: BTreeMap::new(),
                        traffic: Vec::new(),
                    });
            }
            state.instances.insert(placed.id.clone(), placed);
        }
        state
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Whether `node` can be sent work now.
    pub fn linked(&self, node: &str) -> bool {
        self.nodes.get(node).is_some_and(NodeEntry::usable)
    }
}

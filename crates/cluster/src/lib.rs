//! The cluster orchestrator: one per site or operator. Holds a link up to the root (which it
//! dials, so it may sit behind NAT) and accepts links from its nodes. It places instances the
//! root assigns onto nodes, watches the nodes, replaces what a lost node ran, and keeps doing
//! all of that while the root is away.
//!
//! A pure core ([`ClusterState`], with one file per decision: `placement`, `intake`,
//! `membership`, `failure`, `moves`, `peers`, `summary`) records [`Effects`]; the shell
//! ([`Cluster`], in `cluster.rs`) feeds it events with the time, commits the effects' writes
//! and only then sends what they say.

mod cluster;
mod config;
pub mod docker;
pub mod driver;
mod effects;
mod failure;
mod intake;
mod interest;
mod links;
mod membership;
pub mod metrics;
mod moves;
mod peers;
mod placed;
mod placement;
mod routes;
mod sealed;
mod state;
mod streams;
mod summary;
pub mod swarm;
mod trust;
mod usage;
mod views;

pub use cluster::Cluster;
pub use driver::{ClusterDriver, DriverError, DriverKind, ForeignMember};
pub use effects::{Effects, ToNode};
pub use links::NodeSide;
pub use placed::{Move, Placed};
pub use state::{ClusterState, NodeEntry, Now, Settings};
pub use summary::{Reported, Site};
pub use trust::NODE_TRUST_PREFIX;

use canopy_model::GeoPoint;
use canopy_tier::Timing;
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub name: String,
    /// The root's tier endpoint (`http://host:port`); none to run detached.
    pub root: Option<String>,
    /// How it proves who it is to the root (a certificate, for an `https://` root).
    pub credentials: canopy_tier::child::Credentials,
    pub labels: BTreeMap<String, String>,
    pub location: Option<GeoPoint>,
    /// Heartbeat and deadline asked of nodes.
    pub node_timing: Timing,
    /// Grid carbon intensity at this site (gCO2/kWh), for nodes that do not report their own.
    pub carbon_g_per_kwh: Option<f64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("store: {0}")]
    Store(#[from] canopy_store::StoreError),
    #[error("link to the root: {0}")]
    Tier(#[from] canopy_tier::TierError),
    #[error("node trust: {0}")]
    Trust(#[from] canopy_tier::trust::TrustError),
}

//! Cluster allow-list.

use super::Reason;
use crate::ClusterView;

pub fn cluster(allowed: &[String], cluster: &ClusterView) -> Result<(), Reason> {
    if allowed.contains(&cluster.name) {
        Ok(())
    } else {
        Err("not in the allowed clusters")
    }
}

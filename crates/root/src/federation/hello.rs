//! A cluster's hello: it is linked, its membership recorded, and the instances it reports
//! diffed against the desired state (the same diff a cluster makes of its nodes' hellos).

use super::ClusterEntry;
use super::{Federation, assignment, peers};
use crate::desired::{InstanceChange, RootError};
use canopy_tier::Hello;
use canopy_tier::parent::Downlink;
use canopy_tier::session::{Known, diff_hello};
use std::collections::BTreeMap;
use time::OffsetDateTime;
use tokio::time::Instant;

impl Federation {
    pub(super) async fn on_hello(&self, hello: Hello, downlink: Downlink) -> Result<(), RootError> {
        let name = hello.name().to_string();
        {
            let mut links = self.links.lock().await;
            let joined_at = links
                .clusters
                .get(&name)
                .map_or_else(OffsetDateTime::now_utc, |c| c.joined_at);
            links.clusters.insert(
                name.clone(),
                ClusterEntry {
                    summary: hello.member.clone(),
                    ready: true,
                    last_seen: Instant::now(),
                    joined_at,
                    downlink: Some(downlink.clone()),
                },
            );
            // Everyone hears of the newcomer now, not at the next refresh.
            peers::send_to_all(&links);
        }
        tracing::info!(cluster = %name, nodes = hello.nodes.len(), "cluster linked");
        // Before any assignment: the cluster places them knowing which nodes are cordoned.
        self.send_node_config(&name, &downlink).await?;
        self.record_membership(&name, &hello.member, &hello.nodes, &[], true)
            .await?;

        self.instances.synced().await?;
        let assigned: BTreeMap<String, _> = self
            .instances
            .on_cluster(&name)
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let known: BTreeMap<String, Known> = assigned
            .iter()
            .map(|(id, i)| {
                let known = Known {
                    generation: i.generation,
                    desired: i.desired,
                    state: i.state,
                };
                (id.clone(), known)
            })
            .collect();
        let diff = diff_hello(hello.instances, &known);
        for report in diff.current {
            self.apply_status(&name, report, &downlink).await?;
        }
        for revocation in diff.stale {
            downlink.revoke(&revocation);
        }
        for id in diff.missing {
            let Some(instance) = assigned.get(&id) else {
                continue;
            };
            if let Some(spec) = self.desired.service_spec(instance).await? {
                // Resolved when first sent; a secret deleted since leaves nothing to resend.
                match self.secrets_for(&instance.namespace, &spec).await? {
                    Ok(values) => {
                        downlink.assign(&assignment(instance, &spec, values));
                    }
                    Err(unresolved) => {
                        tracing::warn!(instance = %id, reason = %unresolved, "not resent")
                    }
                }
            }
        }
        for id in diff.stopped {
            self.desired
                .update_instance(&id, |_| InstanceChange::Delete)
                .await?;
        }
        self.wake();
        Ok(())
    }
}

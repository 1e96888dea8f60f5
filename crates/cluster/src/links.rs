//! The cluster's two ends of the tier protocol: the parent of its nodes, the child of the root.

use crate::cluster::Cluster;
use canopy_tier::child::Child;
use canopy_tier::metrics::{LinkCounters, PeerTier};
use canopy_tier::parent::{Downlink, Parent};
use canopy_tier::{Assignment, Hello, Message, Revocation, Timing, pb};
use std::sync::Arc;

/// The cluster seen from its nodes (it is their parent).
pub struct NodeSide(pub(crate) Arc<Cluster>);

impl Parent for NodeSide {
    async fn on_hello(&self, hello: Hello, downlink: Downlink) -> Result<(), tonic::Status> {
        let link = downlink.link();
        self.0.link_node(hello.name(), downlink);
        self.0
            .step(|state, now, fx| state.node_hello(hello, link, now, fx))
            .await;
        Ok(())
    }

    async fn on_message(&self, node: &str, message: Message) {
        match message {
            Message::Heartbeat(beat) => {
                self.0
                    .read(|state, now| state.node_heard(node, Some(&beat), now))
                    .await
            }
            Message::Status(report) => {
                self.0
                    // Routes follow on the detector's next tick (200 ms at most), for all
                    // the statuses meanwhile: refreshed per status, a burst of a thousand
                    // instances sent each interested node a thousand ever-longer lists.
                    .step(|state, now, fx| {
                        state.node_heard(node, None, now);
                        state.node_status(node, report, now, fx);
                    })
                    .await
            }
            Message::Interest(interest) => {
                self.0
                    .step(|state, now, fx| state.node_interest(node, interest, now, fx))
                    .await
            }
            Message::Membership(_) => {}
        }
    }

    async fn on_goodbye(&self, node: &str, link: u64) {
        self.0.unlink_node(node, link).await;
    }

    fn link_counters(&self, node: &str) -> LinkCounters {
        self.0.metrics.links.counters(node, PeerTier::node)
    }
}

/// The cluster seen from the root (it is the root's child).
pub(crate) struct RootSide(pub(crate) Arc<Cluster>);

impl Child for RootSide {
    async fn hello(&self) -> Hello {
        let (member, nodes) = match self.0.membership_delta(true).await {
            Some(membership) => (membership.summary.unwrap_or_default(), membership.nodes),
            None => self.0.summary().await,
        };
        Hello {
            member,
            token: String::new(),
            instances: self.0.statuses().await,
            nodes,
        }
    }

    async fn on_assigns(&self, assignments: Vec<Assignment>) {
        self.0
            .step(|state, now, fx| state.assign(assignments, now, fx))
            .await;
    }

    async fn on_revoke(&self, revocation: Revocation) {
        self.0
            .step(|state, now, fx| state.revoke(revocation, now, fx))
            .await;
    }

    async fn on_peers(&self, peers: pb::Peers) {
        self.0.set_remote_peers(peers.peers);
        self.0.refresh_peers().await;
    }

    async fn on_stream(&self, open: pb::OpenStream, pipe: canopy_tier::streams::Pipe) {
        self.0.relay_stream(open, pipe).await;
    }

    async fn on_configure(&self, config: pb::NodeConfig) {
        self.0
            .configure(canopy_tier::node_config_from_pb(&config))
            .await;
    }

    async fn on_node_token(&self, token: pb::NodeToken) -> Result<(), String> {
        self.0.keep_node_token(token).await
    }

    async fn on_remove_node(&self, name: String) -> Result<(), String> {
        self.0.remove_node(&name).await
    }

    fn link_counters(&self) -> LinkCounters {
        self.0.metrics.links.counters("root", PeerTier::root)
    }

    async fn on_link(&self, up: Option<Timing>) {
        let cluster = self.0.name();
        match up {
            Some(_) => tracing::info!(cluster, "linked to the root"),
            None => tracing::warn!(cluster, "link to the root down; running autonomously"),
        }
    }
}

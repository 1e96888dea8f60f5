//! Who may link to this cluster: its nodes join with node tokens (made at the root and
//! kept here, or made here by `canopy up`), receive a certificate of this cluster's
//! intermediate CA, and link with mutual TLS on a TLS-only node listener. A certificate of
//! another cluster's CA fails the handshake; a revoked one too.

use crate::ClusterError;
use crate::cluster::Cluster;
use canopy_tier::pb;
use canopy_tier::trust::{Enrolment, JoinService, TrustError, listener};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Where the node members live in the cluster's store.
pub const NODE_TRUST_PREFIX: &str = "/trust/nodes/";

impl Cluster {
    /// Admits nodes through `enrolment` from now on (once; later calls are ignored).
    pub fn admit_nodes(&self, enrolment: Arc<Enrolment>) {
        let _ = self.enrolment.set(enrolment);
    }

    pub fn enrolment(&self) -> Option<&Arc<Enrolment>> {
        self.enrolment.get()
    }

    /// Serves the node listener over TLS until `shutdown`: links and renewals for nodes
    /// with a valid certificate of this cluster, the join call (and `/healthz`) for the rest.
    pub fn serve_nodes(
        self: &Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<impl Future<Output = std::io::Result<()>> + Send + 'static, ClusterError> {
        let enrolment = self.enrolment.get().cloned().ok_or_else(|| {
            ClusterError::Trust(TrustError::NotJoined(format!(
                "cluster {} (its node CA)",
                self.name()
            )))
        })?;
        let tls = enrolment.server_config()?;
        let join = JoinService::new(enrolment).into_server();
        let healthz = || axum::routing::get(|| async { "ok" });
        let routes = listener::Routes {
            members: axum::Router::new()
                .route_service(canopy_tier::ROUTE, self.tier_service())
                .route_service(canopy_tier::JOIN_ROUTE, join.clone())
                .route("/healthz", healthz()),
            joining: listener::unauthenticated()
                .route_service(canopy_tier::JOIN_ROUTE, join)
                .route("/healthz", healthz()),
        };
        Ok(listener::serve(listener, tls, routes, shutdown))
    }

    /// The root sent a token for one of this cluster's nodes.
    pub(crate) async fn keep_node_token(&self, token: pb::NodeToken) -> Result<(), String> {
        let enrolment = self
            .enrolment
            .get()
            .ok_or("this cluster admits no nodes with tokens (its node listener is cleartext)")?;
        enrolment.keep_token(&token).await.map_err(|e| {
            tracing::warn!(error = %e, "cannot keep a node token");
            e.to_string()
        })
    }

    /// Revokes `node`'s certificates, ends its link and forgets it; its instances are
    /// replaced on other nodes. An error when it is neither certified nor known here.
    pub async fn remove_node(&self, node: &str) -> Result<(), String> {
        let revoked = match self.enrolment.get() {
            Some(enrolment) => enrolment.revoke(node).await.map_err(|e| e.to_string())?,
            None => false,
        };
        if let Some(downlink) = self.forget_downlink(node) {
            downlink.end(tonic::Status::permission_denied(format!(
                "node {node} was removed from cluster {}",
                self.name()
            )));
        }
        let known = self
            .step(|state, now, fx| state.remove_node(node, now, fx))
            .await;
        if revoked || known {
            Ok(())
        } else {
            Err(format!("cluster {} has no node {node:?}", self.name()))
        }
    }
}

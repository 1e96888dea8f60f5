//! The root orchestrator: holds the desired state (applications, services, instances), serves
//! the public REST API, and places instances over clusters.

pub mod api;
mod auth;
pub mod desired;
pub mod keys;
pub mod records;

use canopy_store::Store;
use desired::{Desired, RootError};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Root {
    desired: Arc<Desired>,
    /// Flips to true when serving stops, so that endless responses (event streams) end too.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Root {
    /// Opens the root over a store and reconciles whatever a previous run left half done.
    pub async fn open(store: Arc<dyn Store>) -> Result<Root, RootError> {
        let desired = Arc::new(Desired::new(store));
        desired.reconcile_all().await?;
        Ok(Root {
            desired,
            stopping: tokio::sync::watch::Sender::new(false),
        })
    }

    pub fn desired(&self) -> &Arc<Desired> {
        &self.desired
    }

    pub fn router(&self) -> axum::Router {
        api::router(self.desired.clone(), self.stopping.subscribe())
    }

    /// Serves the API on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stopping = self.stopping.clone();
        axum::serve(listener, self.router())
            .with_graceful_shutdown(async move {
                shutdown.await;
                stopping.send_replace(true);
            })
            .await
    }
}

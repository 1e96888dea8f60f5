//! The root orchestrator: holds the desired state (applications, services, instances), serves
//! the public REST API, and places instances over clusters.

pub mod api;
mod auth;
pub mod build_info;
pub mod desired;
pub mod federation;
pub mod instances;
pub mod keys;
pub mod records;

use canopy_store::Store;
pub use canopy_tier::Timing;
use desired::{Desired, RootError};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

pub struct Root {
    desired: Arc<Desired>,
    federation: Arc<federation::Federation>,
    /// Flips to true when serving stops, so that endless responses (event streams) end too.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Root {
    /// Opens the root over a store and reconciles whatever a previous run left half done.
    pub async fn open(store: Arc<dyn Store>, timing: Timing) -> Result<Root, RootError> {
        let desired = Arc::new(Desired::new(store.clone()));
        desired.reconcile_all().await?;
        let instances = instances::InstanceCache::start(store).await?;
        let federation = federation::Federation::new(desired.clone(), instances, timing);
        federation.load_settings().await?;
        Ok(Root {
            desired,
            federation,
            stopping: tokio::sync::watch::Sender::new(false),
        })
    }

    /// The scheduler and the clusters' links.
    pub fn federation(&self) -> &Arc<federation::Federation> {
        &self.federation
    }

    /// The public API and, on the same port, the tier endpoint clusters link to.
    pub fn router(&self) -> axum::Router {
        api::router(
            self.desired.clone(),
            self.federation.clone(),
            self.stopping.subscribe(),
        )
        .route_service(canopy_tier::ROUTE, self.federation.tier_service())
    }

    /// Serves the API on `listener` until `shutdown` completes.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let stopping = self.stopping.clone();
        let scheduler = tokio::spawn(self.federation.clone().run(self.stopping.subscribe()));
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(async move {
                shutdown.await;
                stopping.send_replace(true);
            })
            .await;
        self.stopping.send_replace(true);
        let _ = scheduler.await;
        served
    }
}

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
pub mod tls;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use canopy_store::Store;
pub use canopy_tier::Timing;
use desired::{Desired, RootError};
use std::future::Future;
use std::sync::Arc;

pub struct Root {
    desired: Arc<Desired>,
    federation: Arc<federation::Federation>,
    /// Flips to true when serving stops, so that endless responses (event streams) end too.
    stopping: tokio::sync::watch::Sender<bool>,
    api_config: api::ApiConfig,
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
            api_config: api::ApiConfig::default(),
        })
    }

    /// Sets how the API guards itself (allowed host names, rate limits).
    pub fn with_api_config(mut self, config: api::ApiConfig) -> Root {
        self.api_config = config;
        self
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
            &self.api_config,
        )
        .route_service(canopy_tier::ROUTE, self.federation.tier_service())
    }

    /// Only the tier endpoint clusters link to, for a listener of its own (`canopy up` links
    /// its cluster over plain loopback while the API is served over TLS).
    pub fn tier_router(&self) -> axum::Router {
        axum::Router::new().route_service(canopy_tier::ROUTE, self.federation.tier_service())
    }

    /// Serves the API on `listener` (a `TcpListener` or a [`tls::TlsListener`]) until
    /// `shutdown` completes.
    pub async fn serve<L>(
        &self,
        listener: L,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()>
    where
        L: Listener,
        L::Addr: std::fmt::Debug,
        for<'a> api::ClientAddr: Connected<IncomingStream<'a, L>>,
    {
        let stopping = self.stopping.clone();
        let scheduler = tokio::spawn(self.federation.clone().run(self.stopping.subscribe()));
        let service = self
            .router()
            .into_make_service_with_connect_info::<api::ClientAddr>();
        let served = axum::serve(listener, service)
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

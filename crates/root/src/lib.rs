//! The root orchestrator: holds the desired state (applications, services, instances), serves
//! the public REST API, and places instances over clusters.

pub mod api;
pub mod auth;
pub mod build_info;
pub mod desired;
pub mod federation;
pub mod instances;
pub mod keys;
mod leadership;
pub mod metrics;
pub mod records;
pub mod tls;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use canopy_store::Store;
pub use canopy_tier::Timing;
use canopy_tier::sealing::SealingKey;
use canopy_tier::trust::{Enrolment, JoinService, Role, listener};
use desired::{Desired, RootError};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Where the root keeps its CA, join tokens and members in its store.
const TRUST_PREFIX: &str = "/trust/";

pub struct Root {
    desired: Arc<Desired>,
    federation: Arc<federation::Federation>,
    /// Flips to true when serving stops, so that endless responses (event streams) end too.
    stopping: tokio::sync::watch::Sender<bool>,
    api_config: api::ApiConfig,
    accounts: Arc<auth::Accounts>,
    /// The first admin's password when this open created it (the first start).
    initial_password: Option<auth::InitialPassword>,
    /// Whether this replica is the elected leader (several roots on one etcd); `None`: alone.
    leadership: Option<tokio::sync::watch::Receiver<bool>>,
    /// Other tiers' series served with the root's at `/metrics` (`canopy up`).
    more_metrics: Vec<Arc<dyn canopy_tier::metrics::Exposition>>,
}

impl Root {
    /// Opens the root over a store and reconciles whatever a previous run left half done.
    /// A root whose secrets are sealed under a key that lives as long as the process
    /// (tests); [`Root::open_sealed`] takes the data dir's.
    pub async fn open(store: Arc<dyn Store>, timing: Timing) -> Result<Root, RootError> {
        Root::open_sealed(store, timing, SealingKey::ephemeral()).await
    }

    pub async fn open_sealed(
        store: Arc<dyn Store>,
        timing: Timing,
        sealing: SealingKey,
    ) -> Result<Root, RootError> {
        let store_for_accounts = store.clone();
        let desired = Arc::new(Desired::with_sealing(store.clone(), sealing));
        desired.reconcile_all().await?;
        // Untrusted at first start: an admin marks what is trusted.
        desired
            .ensure_namespace(canopy_model::DEFAULT_NAMESPACE)
            .await?;
        let enrolment =
            Enrolment::open(store.clone(), TRUST_PREFIX, "canopy root CA", Role::Cluster).await?;
        let instances = instances::InstanceCache::start(store).await?;
        desired.follow_instances(instances.clone());
        let federation = federation::Federation::new(desired.clone(), enrolment, instances, timing);
        federation.load_settings().await?;
        let (accounts, initial_password) = auth::Accounts::open(store_for_accounts).await?;
        Ok(Root {
            desired,
            federation,
            stopping: tokio::sync::watch::Sender::new(false),
            api_config: api::ApiConfig::default(),
            accounts: Arc::new(accounts),
            initial_password,
            leadership: None,
            more_metrics: Vec::new(),
        })
    }

    /// The password of the `admin` user when this open created it (the root's first start
    /// on this store): to be shown once. `None` on every later start.
    pub fn initial_admin_password(&self) -> Option<&str> {
        self.initial_password.as_ref().map(|p| p.0.as_str())
    }

    /// Tokens of the local administrator, for a process that runs this root (`canopy up`).
    pub async fn local_admin_session(&self) -> Result<auth::LoginTokens, RootError> {
        Ok(self.accounts.local_admin_session(auth::now()).await?)
    }

    /// Users, grants and tokens.
    pub fn accounts(&self) -> &Arc<auth::Accounts> {
        &self.accounts
    }

    /// Sets how the API guards itself (allowed host names, rate limits).
    pub fn with_api_config(mut self, config: api::ApiConfig) -> Root {
        self.api_config = config;
        self
    }

    /// Sets the first back-off delay of a job after a failed run (doubled with each
    /// failure, up to six minutes; 10 s unless set).
    pub fn with_job_backoff(self, base: std::time::Duration) -> Root {
        self.desired.set_job_backoff(base);
        self
    }

    /// Schedules only while `leader` is true (replicas on a shared store elect one leader).
    pub fn with_leadership(mut self, leader: tokio::sync::watch::Receiver<bool>) -> Root {
        self.leadership = Some(leader);
        self
    }

    /// Creates `name` if needed and marks it trusted (`canopy up` for `default`, and
    /// `--trusted-namespace`).
    pub async fn trust_namespace(&self, name: &str) -> Result<(), RootError> {
        canopy_model::validate_dns_label(name)
            .map_err(|reason| RootError::BadRequest(format!("namespace {name:?}: {reason}")))?;
        // A quota an admin set stays.
        let quota = match self.desired.get_namespace(name).await {
            Ok(namespace) => namespace.quota,
            Err(RootError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        self.desired
            .put_namespace(
                name,
                desired::NamespaceSpec {
                    trusted: true,
                    quota,
                },
            )
            .await
            .map(|_| ())
    }

    /// The scheduler and the clusters' links.
    pub fn federation(&self) -> &Arc<federation::Federation> {
        &self.federation
    }

    /// Serves `source`'s series at the API's `/metrics` after the root's own (`canopy up`
    /// adds its cluster's and node's).
    pub fn with_more_metrics(mut self, source: Arc<dyn canopy_tier::metrics::Exposition>) -> Root {
        self.more_metrics.push(source);
        self
    }

    /// The public API.
    pub fn router(&self) -> axum::Router {
        let mut sources: Vec<Arc<dyn canopy_tier::metrics::Exposition>> =
            vec![Arc::new(self.federation.exposition())];
        sources.extend(self.more_metrics.iter().cloned());
        api::router(
            self.desired.clone(),
            self.federation.clone(),
            self.accounts.clone(),
            self.stopping.subscribe(),
            &self.api_config,
            Arc::new(canopy_tier::metrics::Chain(sources)),
        )
    }

    /// The tier listener clusters join and link on (TLS; the link needs a member's client
    /// certificate, the join a token), served until `shutdown` by the future returned.
    pub fn serve_tier(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<impl Future<Output = std::io::Result<()>> + Send + 'static, RootError> {
        let enrolment = self.federation.enrolment().clone();
        let tls = enrolment.server_config()?;
        let join = JoinService::new(enrolment).into_server();
        let routes = listener::Routes {
            members: axum::Router::new()
                .route_service(canopy_tier::ROUTE, self.federation.tier_service())
                .route_service(canopy_tier::JOIN_ROUTE, join.clone()),
            joining: listener::unauthenticated().route_service(canopy_tier::JOIN_ROUTE, join),
        };
        Ok(listener::serve(listener, tls, routes, shutdown))
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
        let scheduler = match self.leadership.clone() {
            None => tokio::spawn(self.federation.clone().run(self.stopping.subscribe())),
            Some(leader) => tokio::spawn(leadership::schedule_while_leader(
                self.federation.clone(),
                leader,
                self.stopping.subscribe(),
            )),
        };
        // Subscriptions' notifications (`/ngsi-ld/v1/subscriptions`), sent by the leader.
        let notifier = tokio::spawn(
            api::ngsild::Notifier {
                desired: self.desired.clone(),
                accounts: self.accounts.clone(),
                leader: self.leadership.clone(),
            }
            .run(self.stopping.subscribe()),
        );
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
        let _ = notifier.await;
        served
    }
}

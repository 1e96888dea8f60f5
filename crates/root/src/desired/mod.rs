//! The desired state: applications as users submitted them, and the instances they imply.
//! Every operation persists before it returns, so an acknowledged change survives a crash.

mod applications;
pub mod autoscale;
mod clusters;
mod cron;
mod instances;
mod job;
mod jobs;
mod labels;
mod namespaces;
mod operator;
mod reconcile;
mod removal;
mod replicas;
mod rollout;
mod rollouts;
mod runs;
mod scaling;
mod secrets;
mod views;

pub use instances::{InstanceChange, InstanceFilter};
pub use job::{Finished, Outcome};
pub use jobs::{JobEntry, JobRecord, JobStatus};
pub use labels::ServiceKey;
pub use namespaces::{Namespace, NamespaceSpec};
pub use operator::{with_cluster_settings, with_node_settings};
pub use rollouts::{RevisionSummary, RolloutStatus, UndoRequest};
pub use scaling::{Autoscaled, ScalingEvent};

use crate::keys;
use crate::records::ApplicationRecord;
use canopy_model::DescriptorError;
use canopy_store::{Revision, Store, StoreError, StoreExt};
use canopy_tier::sealing::SealingKey;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] DescriptorError),
    /// Valid, but its namespace does not allow it (each field named).
    #[error("forbidden: {0}")]
    Forbidden(DescriptorError),
    #[error("{0}")]
    BadRequest(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("members: {0}")]
    Trust(#[from] canopy_tier::trust::TrustError),
    #[error("accounts: {0}")]
    Accounts(#[from] crate::auth::AuthError),
    #[error("secrets: {0}")]
    Sealing(#[from] canopy_tier::sealing::SealError),
}

/// How many times a write is retried when a concurrent writer changed the same record.
const CAS_ATTEMPTS: usize = 8;

pub struct Desired {
    store: Arc<dyn Store>,
    /// Seals secret values at rest.
    sealing: SealingKey,
    /// Reconciliation reads then writes many keys; one at a time keeps it simple and correct.
    reconcile_lock: tokio::sync::Mutex<()>,
    /// The root's indexed view of the instances, once it runs: reconciling one application
    /// then reads its instances there instead of parsing every instance in the store (a
    /// burst of 1,000 made each status change's pass parse all 1,000).
    instances: std::sync::OnceLock<Arc<crate::instances::InstanceCache>>,
    /// How long a job waits after a failed run (Kubernetes' 10 s doubling by default).
    job_backoff: std::sync::RwLock<job::Backoff>,
}

impl Desired {
    /// Secrets sealed under a key that lives as long as the process (tests); a root over a
    /// data dir uses [`Desired::with_sealing`].
    pub fn new(store: Arc<dyn Store>) -> Self {
        Desired::with_sealing(store, SealingKey::ephemeral())
    }

    pub fn with_sealing(store: Arc<dyn Store>, sealing: SealingKey) -> Self {
        Desired {
            store,
            sealing,
            reconcile_lock: tokio::sync::Mutex::new(()),
            instances: std::sync::OnceLock::new(),
            job_backoff: Default::default(),
        }
    }

    /// Reads instances from `cache` from now on.
    pub fn follow_instances(&self, cache: Arc<crate::instances::InstanceCache>) {
        let _ = self.instances.set(cache);
    }

    /// Sets the first back-off delay of a job after a failed run (it doubles with each
    /// failure, up to six minutes): 10 s unless set (tests make it short).
    pub fn set_job_backoff(&self, base: std::time::Duration) {
        let base = time::Duration::try_from(base).unwrap_or(time::Duration::MAX);
        let mut backoff = self.job_backoff.write().unwrap_or_else(|p| p.into_inner());
        backoff.base = base.min(backoff.max);
    }

    fn job_backoff(&self) -> job::Backoff {
        *self.job_backoff.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    async fn record(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(ApplicationRecord, Revision), RootError> {
        self.store
            .get_json::<ApplicationRecord>(&keys::application(namespace, name))
            .await?
            .ok_or_else(|| not_found("application", format!("{namespace}/{name}")))
    }

    async fn records(&self, namespace: Option<&str>) -> Result<Vec<ApplicationRecord>, RootError> {
        let prefix =
            namespace.map_or_else(|| keys::APPLICATIONS.to_string(), keys::applications_in);
        let (records, _) = self.store.list_json::<ApplicationRecord>(&prefix).await?;
        Ok(records.into_iter().map(|(_, record, _)| record).collect())
    }
}

fn not_found(kind: &'static str, name: String) -> RootError {
    RootError::NotFound { kind, name }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, RootError> {
    serde_json::to_vec(value).map_err(|e| RootError::Store(StoreError::Backend(e.to_string())))
}

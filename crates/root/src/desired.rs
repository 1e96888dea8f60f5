//! The desired state: applications as users submitted them, and the instances they imply.
//! Every operation persists before it returns, so an acknowledged change survives a crash.

use crate::keys;
use crate::records::{
    ApplicationRecord, ApplicationStatus, ApplicationView, AppliedApplication, ApplyAction,
    ApplyResult, ServiceView, tally,
};
use canopy_model::{
    Application, ClusterInfo, DescriptorError, FieldError, Instance, InstanceState, NodeInfo,
    RuntimeKind, ServiceSpec,
};
use canopy_store::{Durability, Op, Precondition, Revision, Store, StoreError, StoreExt};
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("{kind} {name:?} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] DescriptorError),
    #[error("{0}")]
    BadRequest(String),
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// Which instances to list.
#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub namespace: Option<String>,
    pub application: Option<String>,
    pub service: Option<String>,
    pub state: Option<InstanceState>,
}

impl InstanceFilter {
    fn matches(&self, instance: &Instance) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.namespace, &instance.namespace)
            && eq(&self.application, &instance.application)
            && eq(&self.service, &instance.service)
            && self.state.is_none_or(|s| s == instance.state)
    }
}

/// How many times a write is retried when a concurrent writer changed the same record.
const CAS_ATTEMPTS: usize = 8;

pub struct Desired {
    store: Arc<dyn Store>,
    /// Reconciliation reads then writes many keys; one at a time keeps it simple and correct.
    reconcile_lock: tokio::sync::Mutex<()>,
}

impl Desired {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Desired {
            store,
            reconcile_lock: tokio::sync::Mutex::new(()),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Creates or updates every application of a descriptor in one transaction (kubectl apply).
    pub async fn apply(
        &self,
        applications: Vec<Application>,
        warnings: Vec<FieldError>,
    ) -> Result<ApplyResult, RootError> {
        let mut attempt = 0;
        let applied = loop {
            attempt += 1;
            let mut ops = Vec::new();
            let mut applied = Vec::new();
            for app in &applications {
                let (op, result) = self.plan_write(app.clone(), WriteMode::Upsert).await?;
                ops.extend(op);
                applied.push(result);
            }
            match self.store.txn(ops).await {
                Ok(_) => break applied,
                Err(StoreError::Conflict { .. }) if attempt < CAS_ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        };
        for app in &applied {
            self.reconcile_application(&app.namespace, &app.name)
                .await?;
        }
        Ok(ApplyResult {
            applications: applied,
            warnings,
        })
    }

    /// Creates one application; a conflict if it exists.
    pub async fn create(&self, app: Application) -> Result<ApplicationView, RootError> {
        let (namespace, name) = (app.metadata.namespace.clone(), app.metadata.name.clone());
        let (op, _) = self.plan_write(app, WriteMode::CreateOnly).await?;
        match self.store.txn(op.into_iter().collect()).await {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(RootError::Conflict(format!(
                    "application {namespace}/{name} already exists"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.reconcile_application(&namespace, &name).await?;
        self.get_application(&namespace, &name).await
    }

    /// Creates or replaces one application; says whether it was created.
    pub async fn replace(&self, app: Application) -> Result<(ApplicationView, bool), RootError> {
        let (namespace, name) = (app.metadata.namespace.clone(), app.metadata.name.clone());
        let result = self.apply(vec![app], Vec::new()).await?;
        let created = result
            .applications
            .first()
            .is_some_and(|a| a.action == ApplyAction::Created);
        Ok((self.get_application(&namespace, &name).await?, created))
    }

    async fn plan_write(
        &self,
        application: Application,
        mode: WriteMode,
    ) -> Result<(Option<Op>, AppliedApplication), RootError> {
        let (namespace, name) = (
            application.metadata.namespace.clone(),
            application.metadata.name.clone(),
        );
        let key = keys::application(&namespace, &name);
        let now = OffsetDateTime::now_utc();
        let existing = self.store.get_json::<ApplicationRecord>(&key).await?;
        let (record, precondition, action) = match existing {
            Some((_, _)) if mode == WriteMode::CreateOnly => {
                return Err(RootError::Conflict(format!(
                    "application {namespace}/{name} already exists"
                )));
            }
            Some((old, _)) if old.application == application => {
                let applied = AppliedApplication {
                    namespace,
                    name,
                    action: ApplyAction::Unchanged,
                    generation: old.generation,
                };
                return Ok((None, applied));
            }
            Some((old, revision)) => (
                ApplicationRecord {
                    generation: old.generation + 1,
                    updated_at: now,
                    application,
                    ..old
                },
                Precondition::ModRevision(revision),
                ApplyAction::Configured,
            ),
            None => (
                ApplicationRecord {
                    uid: random_suffix(12),
                    generation: 1,
                    created_at: now,
                    updated_at: now,
                    application,
                },
                Precondition::Absent,
                ApplyAction::Created,
            ),
        };
        let op = Op::Put {
            key,
            value: to_json(&record)?,
            precondition,
        };
        let applied = AppliedApplication {
            namespace,
            name,
            action,
            generation: record.generation,
        };
        Ok((Some(op), applied))
    }

    pub async fn delete(&self, namespace: &str, name: &str) -> Result<ApplicationView, RootError> {
        let view = self.get_application(namespace, name).await?;
        self.store
            .delete(&keys::application(namespace, name), Precondition::None)
            .await?;
        self.reconcile_application(namespace, name).await?;
        Ok(view)
    }

    /// Sets one service's replica count, keeping the rest of the application as it is.
    pub async fn scale(
        &self,
        namespace: &str,
        application: &str,
        service: &str,
        replicas: u32,
    ) -> Result<ServiceView, RootError> {
        if replicas > canopy_model::limits::MAX_REPLICAS {
            return Err(RootError::Invalid(DescriptorError {
                errors: vec![FieldError::new(
                    "replicas",
                    format!("must be <= {}", canopy_model::limits::MAX_REPLICAS),
                )],
            }));
        }
        let key = keys::application(namespace, application);
        for _ in 0..CAS_ATTEMPTS {
            let (mut record, revision) = self.record(namespace, application).await?;
            let spec = record
                .application
                .spec
                .services
                .iter_mut()
                .find(|s| s.name == service)
                .ok_or_else(|| {
                    not_found("service", format!("{namespace}/{application}/{service}"))
                })?;
            if spec.replicas != replicas {
                spec.replicas = replicas;
                record.generation += 1;
                record.updated_at = OffsetDateTime::now_utc();
                let value = to_json(&record)?;
                match self
                    .store
                    .put(&key, value, Precondition::ModRevision(revision))
                    .await
                {
                    Ok(_) => {}
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            self.reconcile_application(namespace, application).await?;
            return self.get_service(namespace, application, service).await;
        }
        Err(RootError::Conflict(format!(
            "application {namespace}/{application} is being changed concurrently; try again"
        )))
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

    pub async fn get_application(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ApplicationView, RootError> {
        let (record, _) = self.record(namespace, name).await?;
        let instances = self
            .list_instances(&InstanceFilter {
                namespace: Some(namespace.to_string()),
                application: Some(name.to_string()),
                ..InstanceFilter::default()
            })
            .await?;
        Ok(view_of(record, &instances))
    }

    pub async fn list_applications(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<ApplicationView>, RootError> {
        let records = self.records(namespace).await?;
        let instances = self
            .list_instances(&InstanceFilter {
                namespace: namespace.map(str::to_string),
                ..InstanceFilter::default()
            })
            .await?;
        Ok(records
            .into_iter()
            .map(|record| view_of(record, &instances))
            .collect())
    }

    pub async fn list_services(
        &self,
        namespace: Option<&str>,
        application: Option<&str>,
    ) -> Result<Vec<ServiceView>, RootError> {
        let records = self.records(namespace).await?;
        let instances = self
            .list_instances(&InstanceFilter {
                namespace: namespace.map(str::to_string),
                application: application.map(str::to_string),
                ..InstanceFilter::default()
            })
            .await?;
        Ok(records
            .iter()
            .filter(|r| application.is_none_or(|a| a == r.application.metadata.name))
            .flat_map(|record| {
                let metadata = &record.application.metadata;
                record
                    .application
                    .spec
                    .services
                    .iter()
                    .map(|spec| service_view(&metadata.namespace, &metadata.name, spec, &instances))
            })
            .collect())
    }

    pub async fn get_service(
        &self,
        namespace: &str,
        application: &str,
        service: &str,
    ) -> Result<ServiceView, RootError> {
        self.list_services(Some(namespace), Some(application))
            .await?
            .into_iter()
            .find(|s| s.name == service)
            .ok_or_else(|| not_found("service", format!("{namespace}/{application}/{service}")))
    }

    pub async fn list_instances(
        &self,
        filter: &InstanceFilter,
    ) -> Result<Vec<Instance>, RootError> {
        let (instances, _) = self.store.list_json::<Instance>(keys::INSTANCES).await?;
        Ok(instances
            .into_iter()
            .map(|(_, instance, _)| instance)
            .filter(|i| filter.matches(i))
            .collect())
    }

    pub async fn get_instance(&self, id: &str) -> Result<Instance, RootError> {
        self.store
            .get_json::<Instance>(&keys::instance(id))
            .await?
            .map(|(instance, _)| instance)
            .ok_or_else(|| not_found("instance", id.to_string()))
    }

    pub async fn list_clusters(&self) -> Result<Vec<ClusterInfo>, RootError> {
        let (clusters, _) = self.store.list_json::<ClusterInfo>(keys::CLUSTERS).await?;
        Ok(clusters.into_iter().map(|(_, c, _)| c).collect())
    }

    pub async fn list_nodes(&self, cluster: Option<&str>) -> Result<Vec<NodeInfo>, RootError> {
        let (nodes, _) = self.store.list_json::<NodeInfo>(keys::NODES).await?;
        Ok(nodes
            .into_iter()
            .map(|(_, n, _)| n)
            .filter(|n| cluster.is_none_or(|c| c == n.cluster))
            .collect())
    }

    /// Brings every application's instances in line with its spec; run at start so that a
    /// crash between accepting a change and reconciling it loses nothing.
    pub async fn reconcile_all(&self) -> Result<(), RootError> {
        let mut names: BTreeSet<(String, String)> = self
            .records(None)
            .await?
            .into_iter()
            .map(|r| {
                (
                    r.application.metadata.namespace,
                    r.application.metadata.name,
                )
            })
            .collect();
        // Instances of applications deleted before a crash.
        for instance in self.list_instances(&InstanceFilter::default()).await? {
            names.insert((instance.namespace, instance.application));
        }
        for (namespace, name) in names {
            self.reconcile_application(&namespace, &name).await?;
        }
        Ok(())
    }

    /// Creates the missing replicas of each service and retires the surplus ones.
    pub async fn reconcile_application(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<(), RootError> {
        let _guard = self.reconcile_lock.lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.reconcile_once(namespace, name).await {
                // The federation updated an instance meanwhile: read again.
                Err(RootError::Store(StoreError::Conflict { .. })) if attempt < CAS_ATTEMPTS => {}
                result => return result,
            }
        }
    }

    async fn reconcile_once(&self, namespace: &str, name: &str) -> Result<(), RootError> {
        let record = match self.record(namespace, name).await {
            Ok((record, _)) => Some(record),
            Err(RootError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let (entries, _) = self.store.list_json::<Instance>(keys::INSTANCES).await?;
        let instances: Vec<(Instance, Revision)> = entries
            .into_iter()
            .filter(|(_, i, _)| i.namespace == namespace && i.application == name)
            .map(|(_, i, revision)| (i, revision))
            .collect();
        let now = OffsetDateTime::now_utc();
        let desired: BTreeMap<&str, (&ServiceSpec, String)> = record
            .iter()
            .flat_map(|r| r.application.spec.services.iter())
            .map(|s| (s.name.as_str(), (s, s.template_hash())))
            .collect();

        let mut ops = Vec::new();
        let mut kept: BTreeSet<(&str, u32)> = BTreeSet::new();
        for (instance, revision) in &instances {
            // Wanted: its service still has this replica, made from the current spec.
            let wanted = desired
                .get(instance.service.as_str())
                .is_some_and(|(spec, hash)| {
                    instance.replica < spec.replicas && instance.template_hash == *hash
                });
            let live = !instance.state.is_final() && instance.state != InstanceState::Terminating;
            if instance.state == InstanceState::Terminated {
                ops.push(delete_instance(instance, *revision));
            } else if live && wanted && kept.insert((&instance.service, instance.replica)) {
                // This replica is covered.
            } else if instance.state != InstanceState::Terminating && (live || !wanted) {
                // Also one that ended (Failed, Succeeded): its node still holds its state.
                ops.push(retire(instance.clone(), *revision, now)?);
            }
        }
        if let Some(record) = &record {
            for (spec, _) in desired.values() {
                for replica in 0..spec.replicas {
                    if !kept.contains(&(spec.name.as_str(), replica)) {
                        let instance = new_instance(record, spec, replica, now);
                        ops.push(Op::Put {
                            key: keys::instance(&instance.id),
                            value: to_json(&instance)?,
                            precondition: Precondition::Absent,
                        });
                    }
                }
            }
        }
        if !ops.is_empty() {
            self.store.txn(ops).await?;
        }
        Ok(())
    }

    /// Changes one instance with compare-and-swap, retrying on concurrent changes. `change`
    /// returns whether it changed anything; the instance as stored afterwards is returned.
    pub async fn update_instance(
        &self,
        id: &str,
        change: impl FnMut(&mut Instance) -> InstanceChange,
    ) -> Result<Option<Instance>, RootError> {
        self.update_instance_with(id, Durability::Immediate, change)
            .await
    }

    /// [`Desired::update_instance`] for what a cluster observed (state, node, pid): deferred
    /// durability, since a restarted root learns it again from every cluster's hello.
    pub async fn observe_instance(
        &self,
        id: &str,
        change: impl FnMut(&mut Instance) -> InstanceChange,
    ) -> Result<Option<Instance>, RootError> {
        self.update_instance_with(id, Durability::Deferred, change)
            .await
    }

    /// [`Desired::update_instance`] over many instances in one transaction (one commit): a
    /// scheduling pass places hundreds at once. Returns the instances found, changed or not
    /// (those deleted left out). If another write changed one of them meanwhile, each is
    /// updated on its own instead, so `change` may see an instance twice.
    pub async fn update_instances(
        &self,
        ids: &[&str],
        mut change: impl FnMut(&mut Instance) -> InstanceChange,
    ) -> Result<Vec<Instance>, RootError> {
        let mut ops = Vec::with_capacity(ids.len());
        let mut after = Vec::with_capacity(ids.len());
        for id in ids {
            let key = keys::instance(id);
            let Some((mut instance, revision)) = self.store.get_json::<Instance>(&key).await?
            else {
                continue;
            };
            let change = change(&mut instance);
            ops.extend(instance_op(key, &instance, revision, change)?);
            if change != InstanceChange::Delete {
                after.push(instance);
            }
        }
        match self.store.txn_with(ops, Durability::Immediate).await {
            Ok(_) => Ok(after),
            Err(StoreError::Conflict { .. }) => {
                let mut after = Vec::with_capacity(ids.len());
                for id in ids {
                    after.extend(self.update_instance(id, &mut change).await?);
                }
                Ok(after)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn update_instance_with(
        &self,
        id: &str,
        durability: Durability,
        mut change: impl FnMut(&mut Instance) -> InstanceChange,
    ) -> Result<Option<Instance>, RootError> {
        let key = keys::instance(id);
        for _ in 0..CAS_ATTEMPTS {
            let Some((mut instance, revision)) = self.store.get_json::<Instance>(&key).await?
            else {
                return Ok(None);
            };
            let change = change(&mut instance);
            let Some(op) = instance_op(key.clone(), &instance, revision, change)? else {
                return Ok(Some(instance));
            };
            let after = (change != InstanceChange::Delete).then_some(instance);
            match self.store.txn_with(vec![op], durability).await {
                Ok(_) => return Ok(after),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(RootError::Conflict(format!(
            "instance {id} is being changed concurrently"
        )))
    }

    /// The spec of the service an instance belongs to, if it still exists.
    pub async fn service_spec(
        &self,
        instance: &Instance,
    ) -> Result<Option<ServiceSpec>, RootError> {
        self.spec_of(
            &instance.namespace,
            &instance.application,
            &instance.service,
        )
        .await
    }

    /// The spec of service `service` of an application, if both still exist.
    pub async fn spec_of(
        &self,
        namespace: &str,
        application: &str,
        service: &str,
    ) -> Result<Option<ServiceSpec>, RootError> {
        match self.record(namespace, application).await {
            Ok((record, _)) => Ok(record
                .application
                .spec
                .services
                .into_iter()
                .find(|s| s.name == service)),
            Err(RootError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The write an [`InstanceChange`] of `instance` (read at `revision`) makes, if any.
fn instance_op(
    key: String,
    instance: &Instance,
    revision: Revision,
    change: InstanceChange,
) -> Result<Option<Op>, RootError> {
    let precondition = Precondition::ModRevision(revision);
    Ok(match change {
        InstanceChange::None => None,
        InstanceChange::Write => Some(Op::Put {
            key,
            value: to_json(instance)?,
            precondition,
        }),
        InstanceChange::Delete => Some(Op::Delete { key, precondition }),
    })
}

/// What an [`Desired::update_instance`] closure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceChange {
    None,
    Write,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    CreateOnly,
    Upsert,
}

fn not_found(kind: &'static str, name: String) -> RootError {
    RootError::NotFound { kind, name }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, RootError> {
    serde_json::to_vec(value).map_err(|e| RootError::Store(StoreError::Backend(e.to_string())))
}

fn delete_instance(instance: &Instance, revision: Revision) -> Op {
    Op::Delete {
        key: keys::instance(&instance.id),
        precondition: Precondition::ModRevision(revision),
    }
}

/// An instance no longer wanted (scaled away, or made from an older spec, whose replacement is
/// created at once): one that never reached a node is simply forgotten; one on a node is
/// marked Terminating until its node confirms it stopped.
fn retire(
    mut instance: Instance,
    revision: Revision,
    now: OffsetDateTime,
) -> Result<Op, RootError> {
    if instance.node.is_none() && instance.cluster.is_none() {
        return Ok(delete_instance(&instance, revision));
    }
    if instance
        .transition(InstanceState::Terminating, "no longer desired", now)
        .is_err()
    {
        // Stopped already: nothing more to say about it.
        return Ok(delete_instance(&instance, revision));
    }
    Ok(Op::Put {
        key: keys::instance(&instance.id),
        value: to_json(&instance)?,
        precondition: Precondition::ModRevision(revision),
    })
}

fn new_instance(
    record: &ApplicationRecord,
    spec: &ServiceSpec,
    replica: u32,
    now: OffsetDateTime,
) -> Instance {
    let metadata = &record.application.metadata;
    let mut instance = Instance {
        id: format!("{}-{}-{}", spec.name, metadata.name, random_suffix(6)),
        namespace: metadata.namespace.clone(),
        application: metadata.name.clone(),
        service: spec.name.clone(),
        replica,
        generation: record.generation,
        template_hash: spec.template_hash(),
        state: InstanceState::Pending,
        reason: None,
        cluster: None,
        node: None,
        pid: None,
        restarts: 0,
        last_termination: None,
        ready: false,
        created_at: now,
        updated_at: now,
        events: Vec::new(),
    };
    let _ = instance.transition(InstanceState::Pending, "waiting for placement", now);
    instance
}

fn view_of(record: ApplicationRecord, instances: &[Instance]) -> ApplicationView {
    let metadata = &record.application.metadata;
    let services = record
        .application
        .spec
        .services
        .iter()
        .map(|spec| service_status(&metadata.namespace, &metadata.name, spec, instances))
        .collect();
    ApplicationView {
        status: ApplicationStatus {
            uid: record.uid,
            generation: record.generation,
            created_at: record.created_at,
            updated_at: record.updated_at,
            services,
        },
        application: record.application,
    }
}

fn service_status(
    namespace: &str,
    application: &str,
    spec: &ServiceSpec,
    instances: &[Instance],
) -> crate::records::ServiceStatus {
    tally(
        &spec.name,
        spec.replicas,
        instances
            .iter()
            .filter(|i| {
                i.namespace == namespace && i.application == application && i.service == spec.name
            })
            .map(|i| &i.state),
    )
}

fn service_view(
    namespace: &str,
    application: &str,
    spec: &ServiceSpec,
    instances: &[Instance],
) -> ServiceView {
    let artifact = match spec.runtime {
        RuntimeKind::Container => spec.image.clone().unwrap_or_default(),
        RuntimeKind::Wasm => spec.module.clone().unwrap_or_default(),
        RuntimeKind::Process => spec.command.join(" "),
    };
    ServiceView {
        namespace: namespace.to_string(),
        application: application.to_string(),
        name: spec.name.clone(),
        runtime: spec.runtime,
        artifact,
        status: service_status(namespace, application, spec, instances),
        spec: spec.clone(),
    }
}

/// Lowercase letters and digits, so ids stay valid DNS labels.
fn random_suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

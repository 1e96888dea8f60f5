//! The root's indexed view of every instance, fed by the store's watch (the informer
//! pattern): a scheduling pass reads the pending instances and per-service counts, a hello
//! or a lost cluster the instances of that cluster, and none of them lists the whole store.
//! Writes still go to the store (compare-and-swap); [`InstanceCache::synced`] waits until the
//! view reflects every write committed before the call.

use crate::keys;
use canopy_model::{Instance, InstanceState};
use canopy_store::{Revision, Store, StoreError, StoreExt, WatchEvent};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use tokio::sync::watch;

/// (namespace, application, service).
pub type ServiceKey = (String, String, String);

#[derive(Default)]
struct Index {
    instances: BTreeMap<String, Instance>,
    by_cluster: BTreeMap<String, BTreeSet<String>>,
    /// By the state users see ([`Instance::shown_state`]): `Terminating` holds the ones asked
    /// to stop and not confirmed, whatever was last observed of them.
    by_state: BTreeMap<InstanceState, BTreeSet<String>>,
    /// Live instances with a cluster, counted per service and cluster: what placement
    /// reserves and spreads by.
    live: BTreeMap<ServiceKey, BTreeMap<String, u32>>,
    /// Per (namespace, application): what reconciliation reads, with each one's revision for
    /// its compare-and-swap writes.
    by_application: BTreeMap<(String, String), BTreeSet<String>>,
    revisions: BTreeMap<String, Revision>,
    /// Instances per service and template hash: more than one hash is a rollout under way.
    templates: BTreeMap<ServiceKey, BTreeMap<String, u32>>,
}

pub fn service_key(instance: &Instance) -> ServiceKey {
    (
        instance.namespace.clone(),
        instance.application.clone(),
        instance.service.clone(),
    )
}

impl Index {
    fn insert(&mut self, instance: Instance, revision: Revision) {
        self.remove(&instance.id);
        let id = instance.id.clone();
        self.by_application
            .entry((instance.namespace.clone(), instance.application.clone()))
            .or_default()
            .insert(id.clone());
        self.revisions.insert(id.clone(), revision);
        *self
            .templates
            .entry(service_key(&instance))
            .or_default()
            .entry(instance.template_hash.clone())
            .or_default() += 1;
        if let Some(cluster) = &instance.cluster {
            self.by_cluster
                .entry(cluster.clone())
                .or_default()
                .insert(id.clone());
            if instance.state.is_live() {
                *self
                    .live
                    .entry(service_key(&instance))
                    .or_default()
                    .entry(cluster.clone())
                    .or_default() += 1;
            }
        }
        self.by_state
            .entry(instance.shown_state())
            .or_default()
            .insert(id.clone());
        self.instances.insert(id, instance);
    }

    fn remove(&mut self, id: &str) {
        let Some(old) = self.instances.remove(id) else {
            return;
        };
        self.revisions.remove(id);
        let application = (old.namespace.clone(), old.application.clone());
        if let Some(ids) = self.by_application.get_mut(&application) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_application.remove(&application);
            }
        }
        let service = service_key(&old);
        if let Some(hashes) = self.templates.get_mut(&service) {
            if let Some(count) = hashes.get_mut(&old.template_hash) {
                *count -= 1;
                if *count == 0 {
                    hashes.remove(&old.template_hash);
                }
            }
            if hashes.is_empty() {
                self.templates.remove(&service);
            }
        }
        if let Some(cluster) = &old.cluster {
            if let Some(ids) = self.by_cluster.get_mut(cluster) {
                ids.remove(id);
            }
            if old.state.is_live() {
                let key = service_key(&old);
                if let Some(counts) = self.live.get_mut(&key) {
                    if let Some(count) = counts.get_mut(cluster) {
                        *count -= 1;
                        if *count == 0 {
                            counts.remove(cluster);
                        }
                    }
                    if counts.is_empty() {
                        self.live.remove(&key);
                    }
                }
            }
        }
        if let Some(ids) = self.by_state.get_mut(&old.shown_state()) {
            ids.remove(id);
        }
    }

    fn mixes_templates(&self, service: &ServiceKey) -> bool {
        self.templates.get(service).is_some_and(|h| h.len() > 1)
    }

    fn collect<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> Vec<Instance> {
        ids.into_iter()
            .filter_map(|id| self.instances.get(id).cloned())
            .collect()
    }
}

pub struct InstanceCache {
    store: Arc<dyn Store>,
    index: RwLock<Index>,
    /// The store revision the index reflects.
    applied: watch::Sender<Revision>,
}

impl InstanceCache {
    /// Lists the instances once and follows the store from there.
    pub async fn start(store: Arc<dyn Store>) -> Result<Arc<InstanceCache>, StoreError> {
        let cache = Arc::new(InstanceCache {
            store,
            index: RwLock::new(Index::default()),
            applied: watch::channel(0).0,
        });
        let revision = cache.relist().await?;
        tokio::spawn(follow(Arc::downgrade(&cache), revision));
        Ok(cache)
    }

    /// Rebuilds the index from a listing; the revision it reflects.
    async fn relist(&self) -> Result<Revision, StoreError> {
        let (instances, revision) = self.store.list_json::<Instance>(keys::INSTANCES).await?;
        let mut index = Index::default();
        for (_, instance, revision) in instances {
            index.insert(instance, revision);
        }
        *self.write() = index;
        self.applied.send_replace(revision);
        Ok(revision)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn apply(&self, event: &WatchEvent) {
        if let Some(id) = event.key().strip_prefix(keys::INSTANCES) {
            match event {
                WatchEvent::Put { entry } => match serde_json::from_slice::<Instance>(&entry.value)
                {
                    Ok(instance) => self.write().insert(instance, entry.mod_revision),
                    Err(e) => tracing::error!(instance = id, error = %e, "unreadable instance"),
                },
                WatchEvent::Delete { .. } => self.write().remove(id),
            }
        }
        self.applied.send_if_modified(|applied| {
            let newer = event.revision() > *applied;
            *applied = (*applied).max(event.revision());
            newer
        });
    }

    /// Waits until the view reflects every write the store committed before this call.
    pub async fn synced(&self) -> Result<(), StoreError> {
        let target = self.store.revision().await?;
        let mut applied = self.applied.subscribe();
        applied
            .wait_for(|revision| *revision >= target)
            .await
            .map(|_| ())
            .map_err(|_| StoreError::Closed)
    }

    /// The instances users see in `state` ([`Instance::shown_state`]).
    pub fn in_state(&self, state: InstanceState) -> Vec<Instance> {
        let index = self.read();
        index.collect(index.by_state.get(&state).into_iter().flatten())
    }

    /// How many instances users see in each state (`/metrics`).
    pub fn count_by_state(&self) -> Vec<(InstanceState, usize)> {
        let index = self.read();
        index
            .by_state
            .iter()
            .map(|(state, ids)| (*state, ids.len()))
            .collect()
    }

    /// The instances of one application, each with the revision of its last write.
    pub fn of_application(&self, namespace: &str, application: &str) -> Vec<(Instance, Revision)> {
        let index = self.read();
        let key = (namespace.to_string(), application.to_string());
        index
            .by_application
            .get(&key)
            .into_iter()
            .flatten()
            .filter_map(|id| {
                let instance = index.instances.get(id)?.clone();
                Some((
                    instance,
                    index.revisions.get(id).copied().unwrap_or_default(),
                ))
            })
            .collect()
    }

    /// Every instance, grouped by service (the autoscaler's view).
    pub fn by_service(&self) -> BTreeMap<ServiceKey, Vec<Instance>> {
        let mut services: BTreeMap<ServiceKey, Vec<Instance>> = BTreeMap::new();
        for instance in self.read().instances.values() {
            services
                .entry(service_key(instance))
                .or_default()
                .push(instance.clone());
        }
        services
    }

    pub fn on_cluster(&self, cluster: &str) -> Vec<Instance> {
        let index = self.read();
        index.collect(index.by_cluster.get(cluster).into_iter().flatten())
    }

    /// Whether the service's instances run more than one template: a rollout under way,
    /// whose pace follows each instance's readiness and steps.
    pub fn mixes_templates(&self, service: &ServiceKey) -> bool {
        self.read().mixes_templates(service)
    }

    /// Live instances with a cluster, per service and cluster.
    pub fn live_per_cluster(&self) -> BTreeMap<ServiceKey, BTreeMap<String, u32>> {
        self.read().live.clone()
    }

    pub fn len(&self) -> usize {
        self.read().instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Applies the store's changes after `revision` for as long as the cache lives; re-lists when
/// it fell behind the retained history.
async fn follow(cache: std::sync::Weak<InstanceCache>, mut revision: Revision) {
    loop {
        let Some(strong) = cache.upgrade() else {
            return;
        };
        // Every key: the applied revision must reach the store's, whatever was written last.
        let mut events = match strong.store.watch("/", revision).await {
            Ok(events) => events,
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "instance cache re-lists");
                match strong.relist().await {
                    Ok(now) => revision = now,
                    Err(StoreError::Closed) => return,
                    Err(e) => {
                        tracing::error!(error = %e, "instance cache cannot list");
                        drop(strong);
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                }
                continue;
            }
        };
        drop(strong);
        while let Some(event) = events.next().await {
            let Some(strong) = cache.upgrade() else {
                return;
            };
            match event {
                Ok(event) => {
                    revision = event.revision();
                    strong.apply(&event);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "instance watch ended; resuming");
                    if e.is_compacted()
                        && let Ok(now) = strong.relist().await
                    {
                        revision = now;
                    }
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn instance(id: &str, cluster: Option<&str>, state: InstanceState) -> Instance {
        Instance {
            id: id.into(),
            namespace: "ns".into(),
            application: "app".into(),
            service: "web".into(),
            replica: 0,
            generation: 1,
            template_hash: String::new(),
            job: None,
            args: None,
            desired: Default::default(),
            state,
            reason: None,
            cluster: cluster.map(str::to_string),
            node: None,
            pid: None,
            restarts: 0,
            last_termination: None,
            ready: false,
            details: Default::default(),
            usage: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            events: Vec::new(),
        }
    }

    fn key() -> ServiceKey {
        ("ns".into(), "app".into(), "web".into())
    }

    #[test]
    fn the_index_follows_inserts_updates_and_removals() {
        let mut index = Index::default();
        index.insert(instance("a", None, InstanceState::Pending), 1);
        index.insert(instance("b", Some("c1"), InstanceState::Running), 1);
        assert_eq!(index.by_state[&InstanceState::Pending].len(), 1);
        assert_eq!(index.live[&key()]["c1"], 1);

        index.insert(
            instance("a", Some("c1"), InstanceState::ClusterScheduled),
            1,
        );
        assert!(index.by_state[&InstanceState::Pending].is_empty());
        assert_eq!(index.live[&key()]["c1"], 2);
        assert_eq!(index.by_cluster["c1"].len(), 2);

        index.insert(instance("b", Some("c1"), InstanceState::Failed), 1);
        assert_eq!(
            index.live[&key()]["c1"],
            1,
            "an ended instance holds nothing"
        );
        let mut stopping = instance("c", Some("c1"), InstanceState::Running);
        stopping.desired = canopy_model::Desired::Stop;
        index.insert(stopping, 1);
        assert_eq!(index.by_state[&InstanceState::Terminating].len(), 1);
        assert!(!index.by_state[&InstanceState::Running].contains("c"));
        index.remove("c");
        assert!(index.by_state[&InstanceState::Terminating].is_empty());
        index.remove("a");
        assert!(!index.live.contains_key(&key()));
        assert_eq!(index.by_cluster["c1"].len(), 1);
        index.remove("b");
        assert!(index.instances.is_empty());
        assert!(index.by_cluster["c1"].is_empty());
    }

    #[test]
    fn two_templates_in_a_service_are_a_rollout_until_the_old_ones_go() {
        let mut index = Index::default();
        let with = |id: &str, hash: &str| {
            let mut i = instance(id, Some("c1"), InstanceState::Running);
            i.template_hash = hash.into();
            i
        };
        index.insert(with("a", "old"), 1);
        index.insert(with("b", "old"), 1);
        let mixed = |index: &Index| index.mixes_templates(&key());
        assert!(!mixed(&index));
        index.insert(with("c", "new"), 1);
        assert!(mixed(&index), "an old and a new template");
        // A status update of an old instance keeps its template counted once.
        index.insert(with("a", "old"), 2);
        index.remove("a");
        assert!(mixed(&index), "one old instance left");
        index.remove("b");
        assert!(!mixed(&index), "only the new template");
        index.remove("c");
        assert!(!index.templates.contains_key(&key()));
    }
}

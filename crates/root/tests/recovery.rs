//! The repair of a crash between accepting an application and reconciling its instances: the
//! root writes the record first, and `Root::open` reconciles whatever a previous run left half
//! done. Each case writes the store as a crashed root would have left it, opens a root over
//! it, and reads the store again, with no API call in between.

use canopy_model::{Instance, InstanceState, parse_descriptor};
use canopy_root::desired::Desired;
use canopy_root::records::ApplicationRecord;
use canopy_root::{Root, Timing, keys};
use canopy_store::{Precondition, RedbStore, Store, StoreExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// `shop` with a `web` service of `web` replicas and, if `api`, an `api` service of 2.
fn record(web: u32, api: bool) -> ApplicationRecord {
    let mut text = format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: shop}}\nspec:\n  \
         services:\n    - name: web\n      runtime: process\n      command: [/bin/sleep, '600']\n      \
         replicas: {web}\n      resources: {{cpu: 100m, memory: 32Mi}}\n"
    );
    if api {
        text.push_str(
            "    - name: api\n      runtime: process\n      command: [/bin/sleep, '600']\n      \
             replicas: 2\n      resources: {cpu: 100m, memory: 32Mi}\n",
        );
    }
    let mut parsed = parse_descriptor(&text).expect("descriptor");
    let now = OffsetDateTime::now_utc();
    // As `apply` writes a new application.
    ApplicationRecord {
        uid: "u1".into(),
        generation: 1,
        created_at: now,
        updated_at: now,
        application: parsed.applications.remove(0),
    }
}

async fn write_record(store: &dyn Store, record: &ApplicationRecord) {
    let key = keys::application("default", &record.application.metadata.name);
    let value = serde_json::to_vec(record).unwrap();
    store.put(&key, value, Precondition::Absent).await.unwrap();
}

async fn instances(store: &RedbStore) -> Vec<Instance> {
    let (entries, _) = store.list_json::<Instance>(keys::INSTANCES).await.unwrap();
    entries.into_iter().map(|(_, i, _)| i).collect()
}

fn by_service(instances: &[Instance]) -> BTreeMap<String, Vec<&Instance>> {
    let mut services: BTreeMap<String, Vec<&Instance>> = BTreeMap::new();
    for instance in instances {
        services
            .entry(instance.service.clone())
            .or_default()
            .push(instance);
    }
    services
}

/// Opens a root over the store the way `canopy root` does after a restart, then lets it go.
async fn restart(store: &Arc<RedbStore>) {
    let root = Root::open(store.clone(), Timing::default())
        .await
        .expect("root opens");
    drop(root);
}

#[tokio::test]
async fn an_application_written_before_a_crash_gets_its_instances_when_the_root_opens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path().join("root.redb")).unwrap());
    let record = record(3, true);
    write_record(store.as_ref(), &record).await;
    assert!(instances(&store).await.is_empty(), "the crash left none");

    restart(&store).await;

    let all = instances(&store).await;
    let services = by_service(&all);
    assert_eq!(
        services.keys().map(String::as_str).collect::<Vec<_>>(),
        ["api", "web"],
        "{all:#?}"
    );
    for (service, replicas) in [("web", 3), ("api", 2)] {
        let spec = record
            .application
            .spec
            .services
            .iter()
            .find(|s| s.name == service)
            .unwrap();
        let got = &services[service];
        let mut ordinals: Vec<u32> = got.iter().map(|i| i.replica).collect();
        ordinals.sort();
        assert_eq!(ordinals, (0..replicas).collect::<Vec<_>>(), "{service}");
        for instance in got {
            assert_eq!(instance.state, InstanceState::Pending, "{instance:#?}");
            assert_eq!(
                (instance.namespace.as_str(), instance.application.as_str()),
                ("default", "shop")
            );
            assert_eq!(instance.generation, record.generation);
            assert_eq!(instance.template_hash, spec.template_hash());
            assert_eq!((&instance.cluster, &instance.node), (&None, &None));
        }
    }

    // A second start finds nothing to repair: the same instances, no duplicates.
    restart(&store).await;
    let mut before: Vec<String> = all.iter().map(|i| i.id.clone()).collect();
    let mut after: Vec<String> = instances(&store)
        .await
        .iter()
        .map(|i| i.id.clone())
        .collect();
    before.sort();
    after.sort();
    assert_eq!(before, after);
}

#[tokio::test]
async fn instances_of_a_service_deleted_before_a_crash_are_retired_when_the_root_opens() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(RedbStore::open(dir.path().join("root.redb")).unwrap());
    // The first run: shop with web and api, reconciled, one api instance placed and running.
    write_record(store.as_ref(), &record(2, true)).await;
    Desired::new(store.clone()).reconcile_all().await.unwrap();
    let mut api: Vec<Instance> = instances(&store)
        .await
        .into_iter()
        .filter(|i| i.service == "api")
        .collect();
    assert_eq!(api.len(), 2);
    api.sort_by_key(|i| i.replica);
    let (placed, unplaced) = (api[0].clone(), api[1].clone());
    let mut running = placed.clone();
    running.cluster = Some("c1".into());
    running.node = Some("n1".into());
    running.state = InstanceState::Running;
    let (_, revision) = store
        .get_json::<Instance>(&keys::instance(&placed.id))
        .await
        .unwrap()
        .unwrap();
    store
        .put_json(
            &keys::instance(&placed.id),
            &running,
            Precondition::ModRevision(revision),
        )
        .await
        .unwrap();

    // Then api is removed from the spec, and the root crashes before reconciling.
    let mut shrunk = record(2, false);
    let key = keys::application("default", "shop");
    let (old, revision) = store
        .get_json::<ApplicationRecord>(&key)
        .await
        .unwrap()
        .unwrap();
    shrunk.uid = old.uid;
    shrunk.generation = old.generation + 1;
    store
        .put_json(&key, &shrunk, Precondition::ModRevision(revision))
        .await
        .unwrap();

    restart(&store).await;

    let all = instances(&store).await;
    let services = by_service(&all);
    assert_eq!(services["web"].len(), 2, "web is untouched: {all:#?}");
    assert!(
        services["web"]
            .iter()
            .all(|i| i.state == InstanceState::Pending)
    );
    // The unplaced one never reached a node: forgotten. The running one is asked to stop.
    assert!(
        all.iter().all(|i| i.id != unplaced.id),
        "unplaced api instance still there: {all:#?}"
    );
    let retired = all
        .iter()
        .find(|i| i.id == placed.id)
        .expect("the running api instance is kept until its node confirms");
    assert_eq!(retired.desired, canopy_model::Desired::Stop, "{retired:#?}");
    assert_eq!(
        retired.state,
        InstanceState::Running,
        "observed as it was: {retired:#?}"
    );
    assert_eq!(retired.display_state(), "Terminating");
    assert_eq!(services["api"].len(), 1, "{all:#?}");
}

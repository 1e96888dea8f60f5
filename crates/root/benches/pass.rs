//! One scheduling pass of the root over 10,000 instances: 9,990 running on a cluster and 10
//! pending (no cluster is linked, so they stay pending and the pass writes nothing after the
//! first). What a pass costs when almost everything is placed already.

use canopy_model::{Instance, InstanceState, parse_descriptor};
use canopy_root::desired::{Desired, InstanceFilter};
use canopy_root::{Root, Timing, keys};
use canopy_store::{Op, Precondition, RedbStore, Store};
use criterion::{Criterion, criterion_group, criterion_main};
use std::sync::Arc;

const INSTANCES: u32 = 10_000;
const PENDING: usize = 10;

/// Ten services of 1,000 replicas (the most one service may ask for).
fn descriptor() -> String {
    let services: String = (0..INSTANCES / 1000)
        .map(|i| {
            format!(
                "    - name: web{i}\n      runtime: process\n      command: [/bin/true]\n      \
                 replicas: 1000\n      resources: {{cpu: 1m, memory: 1Mi}}\n"
            )
        })
        .collect();
    format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: big}}\nspec:\n  services:\n{services}"
    )
}

async fn root(dir: &std::path::Path) -> Root {
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(dir.join("root.redb")).expect("store"));
    let desired = Desired::new(store.clone());
    let parsed = parse_descriptor(&descriptor()).expect("descriptor");
    desired
        .apply(parsed.applications, Vec::new())
        .await
        .expect("apply");
    desired.reconcile_all().await.expect("reconcile");
    let instances = desired
        .list_instances(&InstanceFilter::default())
        .await
        .expect("list");
    let mut ops = Vec::new();
    for mut instance in instances.into_iter().skip(PENDING) {
        instance.cluster = Some("c1".into());
        instance.node = Some("n1".into());
        instance.state = InstanceState::Running;
        ops.push(put(&instance));
    }
    store.txn(ops).await.expect("placed");
    Root::open(store, Timing::default()).await.expect("root")
}

fn put(instance: &Instance) -> Op {
    Op::Put {
        key: keys::instance(&instance.id),
        value: serde_json::to_vec(instance).expect("json"),
        precondition: Precondition::None,
    }
}

fn pass(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let root = runtime.block_on(root(dir.path()));
    let federation = root.federation().clone();
    runtime
        .block_on(federation.schedule_once())
        .expect("first pass");
    let mut group = c.benchmark_group("federation");
    group.sample_size(30);
    group.bench_function("pass-10000", |b| {
        b.iter(|| runtime.block_on(federation.schedule_once()).expect("pass"))
    });
    group.finish();
}

criterion_group!(benches, pass);
criterion_main!(benches);

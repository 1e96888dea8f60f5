//! Placement throughput: node level over 1,000 and 10,000 nodes, root level over 100 and
//! 1,000 cluster summaries, and both levels end to end over 100 clusters × 100 nodes.
//! Each iteration is one decision, so criterion's elements/s are decisions/s.

use canopy_model::{Constraint, GeoPoint, ResourceAmounts, RuntimeKind, ServiceSpec};
use canopy_sched::{ClusterView, NodeView, Request, place_on_cluster, place_on_node, summarise};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;

struct SeededRng(u64);

impl SeededRng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
}

fn nodes(prefix: &str, count: usize, rng: &mut SeededRng) -> Vec<NodeView> {
    (0..count)
        .map(|i| {
            let cpu = 2000 + (rng.next() % 15) * 1000;
            let memory = 2048 + (rng.next() % 31) * 1024;
            NodeView {
                name: format!("{prefix}-n{i}"),
                ready: !rng.next().is_multiple_of(50),
                arch: if rng.next().is_multiple_of(4) {
                    "arm64"
                } else {
                    "amd64"
                }
                .into(),
                runtimes: vec![RuntimeKind::Container, RuntimeKind::Process],
                labels: [("zone".to_string(), format!("z{}", rng.next() % 3))].into(),
                location: Some(GeoPoint {
                    lat: rng.range(40.0, 60.0),
                    lon: rng.range(-5.0, 25.0),
                }),
                capacity: ResourceAmounts {
                    cpu_millis: cpu,
                    memory_mib: memory,
                    gpus: 0,
                    storage_mib: 100_000,
                },
                allocated: ResourceAmounts {
                    cpu_millis: rng.next() % cpu,
                    memory_mib: rng.next() % memory,
                    gpus: 0,
                    storage_mib: 0,
                },
                trust: rng.range(0.5, 1.0),
                ..NodeView::default()
            }
        })
        .collect()
}

/// A typical request: 500m / 512 MiB, a hard arch constraint, a hard trust floor and a soft
/// geo preference.
fn spec() -> ServiceSpec {
    let mut spec: ServiceSpec = serde_json::from_value(serde_json::json!({
        "name": "web", "runtime": "container", "image": "nginx",
        "resources": {"cpu": "500m", "memory": "512Mi"}
    }))
    .expect("valid spec");
    let constraint = |json| serde_json::from_value::<Constraint>(json).expect("valid constraint");
    spec.constraints = vec![
        constraint(serde_json::json!({"arch": ["amd64", "arm64"]})),
        constraint(serde_json::json!({"trust": {"minScore": 0.55}})),
        constraint(serde_json::json!({
            "geo": {"location": {"lat": 48.1, "lon": 11.6}, "radiusKm": 500},
            "rigidness": 0.5
        })),
    ];
    spec
}

fn federation(clusters: usize, per_cluster: usize) -> Vec<(ClusterView, Vec<NodeView>)> {
    let mut rng = SeededRng(42);
    (0..clusters)
        .map(|c| {
            let name = format!("c{c}");
            let nodes = nodes(&name, per_cluster, &mut rng);
            (summarise(&name, &nodes), nodes)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let spec = spec();
    let request = Request::new(&spec, &[]);

    let mut group = c.benchmark_group("node");
    group.throughput(Throughput::Elements(1));
    for count in [1_000, 10_000] {
        let nodes = nodes("c", count, &mut SeededRng(1));
        group.bench_with_input(BenchmarkId::from_parameter(count), &nodes, |b, nodes| {
            b.iter(|| place_on_node(black_box(&request), black_box(nodes)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("root");
    group.throughput(Throughput::Elements(1));
    for count in [100, 1_000] {
        let summaries: Vec<ClusterView> =
            federation(count, 20).into_iter().map(|(c, _)| c).collect();
        group.bench_with_input(
            BenchmarkId::from_parameter(count),
            &summaries,
            |b, clusters| b.iter(|| place_on_cluster(black_box(&request), black_box(clusters))),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("two-level");
    group.throughput(Throughput::Elements(1));
    let fed = federation(100, 100);
    let summaries: Vec<ClusterView> = fed.iter().map(|(c, _)| c.clone()).collect();
    group.bench_function("100x100", |b| {
        b.iter(|| {
            let cluster = place_on_cluster(black_box(&request), black_box(&summaries)).ok()?;
            place_on_node(black_box(&request), black_box(&fed[cluster].1)).ok()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);

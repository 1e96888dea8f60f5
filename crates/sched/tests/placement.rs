use canopy_model::{
    Constraint, DirectPlacement, Mebibytes, Millicores, ResourceAmounts, Resources, RuntimeKind,
    ServiceSpec,
};
use canopy_sched::{ClusterView, NodeView, Request, place_on_cluster, place_on_node};
use proptest::prelude::*;

fn spec(cpu: u64, memory: u64) -> ServiceSpec {
    serde_json::from_value::<ServiceSpec>(serde_json::json!({
        "name": "web", "runtime": "process", "command": ["/bin/true"]
    }))
    .map(|mut s| {
        s.resources = Resources {
            cpu: Millicores(cpu),
            memory: Mebibytes(memory),
            ..Resources::default()
        };
        s
    })
    .unwrap()
}

fn amounts(cpu: u64, memory: u64) -> ResourceAmounts {
    ResourceAmounts {
        cpu_millis: cpu,
        memory_mib: memory,
        ..ResourceAmounts::default()
    }
}

fn node(name: &str, capacity: (u64, u64), allocated: (u64, u64)) -> NodeView {
    NodeView {
        name: name.into(),
        ready: true,
        arch: "amd64".into(),
        runtimes: vec![RuntimeKind::Process],
        labels: Default::default(),
        location: None,
        capacity: amounts(capacity.0, capacity.1),
        allocated: amounts(allocated.0, allocated.1),
        ..NodeView::default()
    }
}

fn cluster(name: &str, capacity: (u64, u64), max_node_free: (u64, u64)) -> ClusterView {
    ClusterView {
        name: name.into(),
        ready: true,
        arches: vec!["amd64".into()],
        runtimes: vec![RuntimeKind::Process],
        labels: Default::default(),
        location: None,
        capacity: amounts(capacity.0, capacity.1),
        allocated: amounts(0, 0),
        max_node_free: amounts(max_node_free.0, max_node_free.1),
        ..ClusterView::default()
    }
}

fn place(spec: &ServiceSpec, nodes: &[NodeView]) -> Result<String, String> {
    let request = Request::new(spec, &[]);
    place_on_node(&request, nodes)
        .map(|i| nodes[i].name.clone())
        .map_err(|e| e.to_string())
}

#[test]
fn best_fit_prefers_the_fullest_node_that_still_fits() {
    let nodes = [
        node("empty", (4000, 4096), (0, 0)),
        node("busy", (4000, 4096), (3000, 3000)),
        node("full", (4000, 4096), (3950, 4000)),
    ];
    assert_eq!(place(&spec(500, 512), &nodes), Ok("busy".into()));
}

#[test]
fn an_exact_fit_is_a_fit() {
    let nodes = [node("exact", (1000, 1024), (500, 512))];
    assert_eq!(place(&spec(500, 512), &nodes), Ok("exact".into()));
    assert!(place(&spec(501, 512), &nodes).is_err());
}

#[test]
fn nothing_fits_explains_per_reason() {
    let mut not_ready = node("down", (8000, 8192), (0, 0));
    not_ready.ready = false;
    let mut wasm_only = node("wasm", (8000, 8192), (0, 0));
    wasm_only.runtimes = vec![RuntimeKind::Wasm];
    let nodes = [
        node("small-1", (4000, 256), (0, 0)),
        node("small-2", (4000, 256), (0, 0)),
        node("busy", (4000, 4096), (3900, 0)),
        not_ready,
        wasm_only,
    ];
    assert_eq!(
        place(&spec(500, 512), &nodes),
        Err("0/5 nodes are available: 2 insufficient memory, 1 insufficient cpu, 1 not ready, 1 runtime process not supported".into())
    );
    assert_eq!(
        place(&spec(1, 1), &[]),
        Err("0/0 nodes are available".into())
    );
}

#[test]
fn refused_nodes_are_skipped_and_pinning_is_honoured() {
    let nodes = [
        node("a", (4000, 4096), (0, 0)),
        node("b", (4000, 4096), (0, 0)),
    ];
    let spec_a = spec(100, 64);
    let refused = ["a".to_string()];
    let request = Request::new(&spec_a, &refused);
    assert_eq!(place_on_node(&request, &nodes), Ok(1));

    let mut pinned = spec(100, 64);
    pinned.constraints = vec![Constraint {
        direct: Some(DirectPlacement {
            cluster: None,
            nodes: vec!["b".into()],
        }),
        ..Constraint::default()
    }];
    assert_eq!(place(&pinned, &nodes), Ok("b".into()));
    let mut arm = spec(100, 64);
    arm.constraints = vec![Constraint {
        arch: Some(vec!["arm64".into()]),
        ..Constraint::default()
    }];
    assert_eq!(
        place(&arm, &nodes),
        Err("0/2 nodes are available: 2 architecture mismatch".into())
    );
}

#[test]
fn the_root_refuses_a_cluster_whose_free_space_is_scattered() {
    // 4 cores free in total, but no node has more than 1 free.
    let clusters = [
        cluster("scattered", (4000, 8192), (1000, 2048)),
        cluster("roomy", (4000, 8192), (4000, 8192)),
    ];
    let spec = spec(2000, 512);
    let request = Request::new(&spec, &[]);
    assert_eq!(place_on_cluster(&request, &clusters), Ok(1));
    let explanation = place_on_cluster(&request, &clusters[..1]).unwrap_err();
    assert_eq!(
        explanation.to_string(),
        "0/1 clusters are available: 1 insufficient cpu on any single node"
    );
}

proptest! {
    /// Placing greedily, instance after instance, never overcommits any node.
    #[test]
    fn placements_never_exceed_capacity(
        capacities in prop::collection::vec((100u64..8000, 64u64..16384), 1..20),
        demands in prop::collection::vec((1u64..2000, 1u64..4096), 1..60),
    ) {
        let mut nodes: Vec<NodeView> = capacities
            .iter()
            .enumerate()
            .map(|(i, (cpu, mem))| node(&format!("n{i}"), (*cpu, *mem), (0, 0)))
            .collect();
        for (cpu, mem) in demands {
            let spec = spec(cpu, mem);
            let request = Request::new(&spec, &[]);
            match place_on_node(&request, &nodes) {
                Ok(i) => {
                    nodes[i].allocated.cpu_millis += cpu;
                    nodes[i].allocated.memory_mib += mem;
                }
                Err(_) => prop_assert!(nodes.iter().all(|n| {
                    n.capacity.cpu_millis - n.allocated.cpu_millis < cpu
                        || n.capacity.memory_mib - n.allocated.memory_mib < mem
                }), "refused although a node had room"),
            }
            for n in &nodes {
                prop_assert!(n.allocated.cpu_millis <= n.capacity.cpu_millis);
                prop_assert!(n.allocated.memory_mib <= n.capacity.memory_mib);
            }
        }
    }
}

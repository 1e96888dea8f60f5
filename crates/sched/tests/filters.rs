//! Table tests: one candidate, one request, the expected verdict (Ok or the reason).

mod common;

use canopy_model::{RuntimeKind, ServiceSpec};
use canopy_sched::{
    ClusterView, Coordinate, Endpoint, NodeView, PlacementContext, Request, place_on_cluster,
    place_on_node,
};
use common::*;
use serde_json::json;

fn on_node(spec: &ServiceSpec, n: &NodeView, ctx: Option<&PlacementContext>) -> Result<(), String> {
    let request = Request {
        context: ctx,
        ..Request::new(spec, &[])
    };
    place_on_node(&request, std::slice::from_ref(n))
        .map(|_| ())
        .map_err(|e| {
            let s = e.to_string();
            s.split_once(": 1 ")
                .map(|(_, r)| r.to_string())
                .unwrap_or(s)
        })
}

fn on_cluster(
    spec: &ServiceSpec,
    c: &ClusterView,
    ctx: Option<&PlacementContext>,
) -> Result<(), String> {
    let request = Request {
        context: ctx,
        ..Request::new(spec, &[])
    };
    place_on_cluster(&request, std::slice::from_ref(c))
        .map(|_| ())
        .map_err(|e| {
            let s = e.to_string();
            s.split_once(": 1 ")
                .map(|(_, r)| r.to_string())
                .unwrap_or(s)
        })
}

fn ok() -> Result<(), String> {
    Ok(())
}
fn err(reason: &str) -> Result<(), String> {
    Err(reason.to_string())
}

#[test]
fn resources() {
    let gpu = |n: u32, model: Option<&str>| {
        let mut s = spec(100, 64);
        s.resources.gpus = n;
        s.resources.gpu_model = model.map(str::to_string);
        s
    };
    let mut gpu_node = node("g");
    gpu_node.capacity.gpus = 2;
    gpu_node.gpu_model = Some("nvidia-a100".into());
    let mut labelled = node("l");
    labelled.capacity.gpus = 1;
    labelled
        .labels
        .insert("gpu.model".into(), "nvidia-t4".into());
    let mut storage = node("s");
    storage.capacity.storage_mib = 100;
    let mut big_storage = spec(100, 64);
    big_storage.resources.storage.0 = 101;
    let mut reserved = node("r");
    reserved.allocated = amounts(3900, 0);
    let plain = node("n");
    let cases: Vec<(&str, ServiceSpec, &NodeView, Result<(), String>)> = vec![
        (
            "reserved too big",
            spec(4000, 4096),
            &reserved,
            err("insufficient cpu"),
        ),
        ("exact fit free", spec(4000, 4096), &plain, ok()),
        (
            "one over cpu",
            spec(4001, 64),
            &plain,
            err("insufficient cpu"),
        ),
        (
            "one over memory",
            spec(100, 4097),
            &plain,
            err("insufficient memory"),
        ),
        (
            "reservations count",
            spec(101, 64),
            &reserved,
            err("insufficient cpu"),
        ),
        ("reservation exact", spec(100, 64), &reserved, ok()),
        ("zero gpu on gpu-less node", gpu(0, None), &plain, ok()),
        (
            "zero gpu ignores model",
            gpu(0, Some("nvidia-a100")),
            &plain,
            ok(),
        ),
        (
            "gpu on gpu-less node",
            gpu(1, None),
            &plain,
            err("insufficient gpu"),
        ),
        ("gpu any model", gpu(2, None), &gpu_node, ok()),
        (
            "gpu too many",
            gpu(3, None),
            &gpu_node,
            err("insufficient gpu"),
        ),
        (
            "gpu model match",
            gpu(1, Some("nvidia-a100")),
            &gpu_node,
            ok(),
        ),
        (
            "gpu model mismatch",
            gpu(1, Some("nvidia-t4")),
            &gpu_node,
            err("gpu model mismatch"),
        ),
        (
            "gpu model from label",
            gpu(1, Some("nvidia-t4")),
            &labelled,
            ok(),
        ),
        (
            "storage",
            big_storage,
            &storage,
            err("insufficient storage"),
        ),
    ];
    for (name, s, n, expected) in cases {
        assert_eq!(on_node(&s, n, None), expected, "{name}");
    }
}

#[test]
fn cluster_resources() {
    let mut c = cluster("c");
    c.allocated = amounts(15000, 0);
    assert_eq!(
        on_cluster(&spec(1500, 64), &c, None),
        err("insufficient cpu")
    );
    let mut scattered = cluster("c");
    scattered.max_node_free = amounts(1000, 4096);
    assert_eq!(
        on_cluster(&spec(1500, 64), &scattered, None),
        err("insufficient cpu on any single node")
    );
    let empty = ClusterView {
        capacity: amounts(0, 0),
        max_node_free: amounts(0, 0),
        ..cluster("empty")
    };
    assert_eq!(
        on_cluster(&spec(1, 1), &empty, None),
        err("insufficient cpu")
    );
    let mut g = cluster("g");
    g.capacity.gpus = 4;
    g.max_node_free.gpus = 2;
    g.gpu_models = Some(["nvidia-a100".to_string()].into());
    let mut s = spec(100, 64);
    s.resources.gpus = 1;
    s.resources.gpu_model = Some("nvidia-t4".into());
    assert_eq!(on_cluster(&s, &g, None), err("gpu model mismatch"));
    s.resources.gpu_model = Some("nvidia-a100".into());
    assert_eq!(on_cluster(&s, &g, None), ok());
    // Unknown models: the root does not refuse.
    g.gpu_models = None;
    s.resources.gpu_model = Some("nvidia-t4".into());
    assert_eq!(on_cluster(&s, &g, None), ok());
}

#[test]
fn arch_and_runtime() {
    let arm = with(spec(100, 64), vec![constraint(json!({"arch": ["arm64"]}))]);
    let both = with(
        spec(100, 64),
        vec![constraint(json!({"arch": ["arm64", "amd64"]}))],
    );
    assert_eq!(
        on_node(&arm, &node("n"), None),
        err("architecture mismatch")
    );
    assert_eq!(on_node(&both, &node("n"), None), ok());
    assert_eq!(
        on_cluster(&arm, &cluster("c"), None),
        err("architecture mismatch")
    );
    let mut mixed = cluster("c");
    mixed.arches.push("arm64".into());
    assert_eq!(on_cluster(&arm, &mixed, None), ok());
    let mut wasm = spec(100, 64);
    wasm.runtime = RuntimeKind::Wasm;
    assert_eq!(
        on_node(&wasm, &node("n"), None),
        err("runtime wasm not supported")
    );
    assert_eq!(
        on_cluster(&wasm, &cluster("c"), None),
        err("runtime wasm not supported")
    );
}

#[test]
fn selectors() {
    let mut n = node("n");
    n.labels.insert("zone".into(), "a".into());
    n.labels.insert("ssd".into(), "true".into());
    let sel = |key: &str, op: &str, values: &[&str]| {
        with(
            spec(100, 64),
            vec![constraint(
                json!({"nodeSelector": [{"key": key, "operator": op, "values": values}]}),
            )],
        )
    };
    let miss = err("node(s) didn't match node selector");
    let cases = [
        (sel("zone", "In", &["a", "b"]), ok()),
        (sel("zone", "In", &["b"]), miss.clone()),
        (sel("gpu", "In", &["x"]), miss.clone()),
        (sel("zone", "NotIn", &["b"]), ok()),
        (sel("zone", "NotIn", &["a"]), miss.clone()),
        (sel("gpu", "NotIn", &["a"]), ok()),
        (sel("ssd", "Exists", &[]), ok()),
        (sel("gpu", "Exists", &[]), miss.clone()),
        (sel("gpu", "DoesNotExist", &[]), ok()),
        (sel("ssd", "DoesNotExist", &[]), miss.clone()),
    ];
    for (i, (s, expected)) in cases.iter().enumerate() {
        assert_eq!(on_node(s, &n, None), *expected, "case {i}");
    }
    // Cluster level, node selector on the label union: refuses only the impossible.
    let mut c = cluster("c");
    assert_eq!(
        on_cluster(&sel("zone", "In", &["a"]), &c, None),
        ok(),
        "unknown union"
    );
    c.node_labels = Some([("zone".to_string(), ["a".to_string()].into())].into());
    assert_eq!(on_cluster(&sel("zone", "In", &["a"]), &c, None), ok());
    assert_eq!(
        on_cluster(&sel("zone", "In", &["b"]), &c, None),
        miss.clone()
    );
    assert_eq!(on_cluster(&sel("ssd", "Exists", &[]), &c, None), miss);
    assert_eq!(
        on_cluster(&sel("zone", "DoesNotExist", &[]), &c, None),
        ok()
    );
    // Cluster selector on the cluster's own labels; nodes ignore it.
    let csel = with(
        spec(100, 64),
        vec![constraint(
            json!({"clusterSelector": [{"key": "tier", "values": ["edge"]}]}),
        )],
    );
    assert_eq!(
        on_cluster(&csel, &cluster("c"), None),
        err("cluster(s) didn't match cluster selector")
    );
    let mut edge = cluster("e");
    edge.labels.insert("tier".into(), "edge".into());
    assert_eq!(on_cluster(&csel, &edge, None), ok());
    assert_eq!(on_node(&csel, &node("n"), None), ok());
}

#[test]
fn direct_and_allow_list() {
    let pin = |cluster: Option<&str>, nodes: &[&str]| {
        with(
            spec(100, 64),
            vec![constraint(
                json!({"direct": {"cluster": cluster, "nodes": nodes}}),
            )],
        )
    };
    assert_eq!(on_node(&pin(None, &["n"]), &node("n"), None), ok());
    assert_eq!(
        on_node(&pin(None, &["m"]), &node("n"), None),
        err("not the pinned node")
    );
    assert_eq!(on_node(&pin(Some("c"), &[]), &node("n"), None), ok());
    assert_eq!(
        on_cluster(&pin(Some("c"), &["m"]), &cluster("c"), None),
        ok()
    );
    assert_eq!(
        on_cluster(&pin(Some("d"), &[]), &cluster("c"), None),
        err("not the pinned cluster")
    );
    let allow = with(
        spec(100, 64),
        vec![constraint(json!({"clusters": ["a", "b"]}))],
    );
    assert_eq!(on_cluster(&allow, &cluster("a"), None), ok());
    assert_eq!(
        on_cluster(&allow, &cluster("c"), None),
        err("not in the allowed clusters")
    );
    assert_eq!(on_node(&allow, &node("n"), None), ok());
}

#[test]
fn geo() {
    let near = |lat: f64, lon: f64, km: f64| {
        with(
            spec(100, 64),
            vec![constraint(
                json!({"geo": {"location": {"lat": lat, "lon": lon}, "radiusKm": km}}),
            )],
        )
    };
    let at = |lat, lon| NodeView {
        location: Some(point(lat, lon)),
        ..node("n")
    };
    let cases = [
        // Munich to Garching, ~15 km.
        (near(48.137, 11.575, 20.0), at(48.249, 11.652), ok()),
        (
            near(48.137, 11.575, 10.0),
            at(48.249, 11.652),
            err("outside the geo area"),
        ),
        // Across the antimeridian: 179.9 E to 179.9 W is ~22 km.
        (near(0.0, 179.9, 25.0), at(0.0, -179.9), ok()),
        (
            near(0.0, 179.9, 20.0),
            at(0.0, -179.9),
            err("outside the geo area"),
        ),
        // At the pole every longitude is the same place.
        (near(90.0, 0.0, 1.0), at(90.0, 123.0), ok()),
        (near(-89.9, 0.0, 23.0), at(-89.9, 180.0), ok()),
        (
            near(-89.9, 0.0, 21.0),
            at(-89.9, 180.0),
            err("outside the geo area"),
        ),
        (near(0.0, 0.0, 1e9), node("n"), err("no location")),
    ];
    for (i, (s, n, expected)) in cases.iter().enumerate() {
        assert_eq!(on_node(s, n, None), *expected, "case {i}");
    }
    // Cluster: centre 100 km away, nodes within 50 km of it; a 60 km circle may hold a node.
    let c = ClusterView {
        location: Some(point(0.0, 0.0)),
        location_radius_km: 50.0,
        ..cluster("c")
    };
    let hundred_km_east = 100.0 / 111.195;
    assert_eq!(
        on_cluster(&near(0.0, hundred_km_east, 60.0), &c, None),
        ok()
    );
    assert_eq!(
        on_cluster(&near(0.0, hundred_km_east, 40.0), &c, None),
        err("outside the geo area")
    );
    assert_eq!(
        on_cluster(&near(0.0, 0.0, 10.0), &cluster("c"), None),
        err("no location")
    );
}

#[test]
fn latency() {
    let to_point = |max: f64| {
        with(
            spec(100, 64),
            vec![constraint(
                json!({"latency": {"maxMs": max, "toPoint": {"lat": 0.0, "lon": 0.0}}}),
            )],
        )
    };
    // Great-circle fallback: 1 ms + 2 ms per 100 km; 1 degree of longitude at the equator is
    // ~111 km, ~3.2 ms.
    let located = NodeView {
        location: Some(point(0.0, 1.0)),
        ..node("n")
    };
    assert_eq!(on_node(&to_point(3.3), &located, None), ok());
    assert_eq!(
        on_node(&to_point(3.1), &located, None),
        err("latency too high")
    );
    assert_eq!(
        on_node(&to_point(1000.0), &node("n"), None),
        err("no location or coordinate to estimate latency")
    );
    // Coordinates win over distance when both ends have one.
    let ctx = PlacementContext {
        point_coordinates: vec![(
            point(0.0, 0.0),
            Coordinate {
                x: 0.0,
                y: 0.0,
                height: 1.0,
            },
        )],
        ..Default::default()
    };
    let coordinated = NodeView {
        coordinate: Some(Coordinate {
            x: 30.0,
            y: 40.0,
            height: 2.0,
        }),
        ..located.clone()
    };
    assert_eq!(on_node(&to_point(53.0), &coordinated, Some(&ctx)), ok());
    assert_eq!(
        on_node(&to_point(52.0), &coordinated, Some(&ctx)),
        err("latency too high")
    );
    // Without the target's coordinate, distance again.
    assert_eq!(on_node(&to_point(3.3), &coordinated, None), ok());

    // To a service: the nearest known instance counts; none known holds vacuously.
    let to_db = |max: f64| {
        with(
            spec(100, 64),
            vec![constraint(
                json!({"latency": {"maxMs": max, "toService": "db"}}),
            )],
        )
    };
    assert_eq!(on_node(&to_db(1.0), &coordinated, None), ok());
    let ctx = PlacementContext {
        services: [(
            "db".to_string(),
            vec![
                Endpoint {
                    location: None,
                    coordinate: Some(Coordinate {
                        x: 30.0,
                        y: 0.0,
                        height: 1.0,
                    }),
                },
                Endpoint {
                    location: None,
                    coordinate: Some(Coordinate {
                        x: 30.0,
                        y: 35.0,
                        height: 1.0,
                    }),
                },
            ],
        )]
        .into(),
        ..Default::default()
    };
    assert_eq!(on_node(&to_db(8.0), &coordinated, Some(&ctx)), ok());
    assert_eq!(
        on_node(&to_db(7.9), &coordinated, Some(&ctx)),
        err("latency too high")
    );
    assert_eq!(
        on_node(&to_db(8.0), &node("n"), Some(&ctx)),
        err("no location or coordinate to estimate latency")
    );
    // Cluster: centroid 50 ms away, nodes within 45 ms of it: some node may be within 10 ms.
    let ctx = PlacementContext {
        point_coordinates: vec![(point(0.0, 0.0), Coordinate::default())],
        ..Default::default()
    };
    let c = ClusterView {
        coordinate: Some(Coordinate {
            x: 50.0,
            y: 0.0,
            height: 0.0,
        }),
        coordinate_radius_ms: 45.0,
        ..cluster("c")
    };
    assert_eq!(on_cluster(&to_point(10.0), &c, Some(&ctx)), ok());
    assert_eq!(
        on_cluster(&to_point(4.0), &c, Some(&ctx)),
        err("latency too high")
    );
}

#[test]
fn spread() {
    let s = with(
        spec(100, 64),
        vec![constraint(
            json!({"spread": {"maxPerNode": 2, "maxPerCluster": 3}}),
        )],
    );
    let ctx = |n: u32, c: u32| PlacementContext {
        instances_per_node: [("n".to_string(), n)].into(),
        instances_per_cluster: [("c".to_string(), c)].into(),
        ..Default::default()
    };
    assert_eq!(on_node(&s, &node("n"), None), ok());
    assert_eq!(on_node(&s, &node("n"), Some(&ctx(1, 0))), ok());
    assert_eq!(
        on_node(&s, &node("n"), Some(&ctx(2, 0))),
        err("max instances per node reached")
    );
    assert_eq!(on_cluster(&s, &cluster("c"), Some(&ctx(0, 2))), ok());
    assert_eq!(
        on_cluster(&s, &cluster("c"), Some(&ctx(0, 3))),
        err("max instances per cluster reached")
    );
    let per_node = with(
        spec(100, 64),
        vec![constraint(json!({"spread": {"maxPerNode": 1}}))],
    );
    let one_node = ClusterView {
        node_count: Some(1),
        ..cluster("c")
    };
    assert_eq!(on_cluster(&per_node, &one_node, Some(&ctx(0, 0))), ok());
    assert_eq!(
        on_cluster(&per_node, &one_node, Some(&ctx(0, 1))),
        err("max instances per node reached on every node")
    );
    assert_eq!(
        on_cluster(&per_node, &cluster("c"), Some(&ctx(0, 1))),
        ok(),
        "unknown count"
    );
}

#[test]
fn trust() {
    let s = with(
        spec(100, 64),
        vec![constraint(json!({"trust": {"minScore": 0.8}}))],
    );
    assert_eq!(on_node(&s, &node("n"), None), ok(), "default trust is 1");
    let shaky = NodeView {
        trust: 0.5,
        ..node("n")
    };
    assert_eq!(on_node(&s, &shaky, None), err("trust below the floor"));
    let exact = NodeView {
        trust: 0.8,
        ..node("n")
    };
    assert_eq!(on_node(&s, &exact, None), ok());
    let nan = NodeView {
        trust: f64::NAN,
        ..node("n")
    };
    assert_eq!(on_node(&s, &nan, None), err("trust below the floor"));
    let c = ClusterView {
        trust: 0.7,
        ..cluster("c")
    };
    assert_eq!(on_cluster(&s, &c, None), err("trust below the floor"));
}

#[test]
fn refused_and_not_ready() {
    let s = spec(100, 64);
    let refused = ["n".to_string()];
    let request = Request::new(&s, &refused);
    assert_eq!(
        place_on_node(&request, &[node("n")]).map_err(|e| e.to_string()),
        Err("0/1 nodes are available: 1 refused this instance already".into())
    );
    let down = NodeView {
        ready: false,
        ..node("m")
    };
    assert_eq!(on_node(&s, &down, None), err("not ready"));
}

#[test]
fn explanation_aggregates_kube_style() {
    let s = with(
        spec(1000, 2048),
        vec![constraint(
            json!({"nodeSelector": [{"key": "zone", "values": ["a"]}]}),
        )],
    );
    let small = |name: &str| NodeView {
        capacity: amounts(4000, 1024),
        labels: [("zone".to_string(), "a".to_string())].into(),
        ..node(name)
    };
    let nodes = [small("1"), small("2"), small("3"), node("4"), node("5")];
    let request = Request::new(&s, &[]);
    assert_eq!(
        place_on_node(&request, &nodes).map_err(|e| e.to_string()),
        Err(
            "0/5 nodes are available: 3 insufficient memory, 2 node(s) didn't match node selector"
                .into()
        )
    );
}

#[test]
fn host_ports() {
    use canopy_model::Protocol::{Tcp, Udp};
    let mut web = spec(100, 64);
    web.ports =
        serde_json::from_value(json!([{"name": "http", "port": 80, "hostPort": 8080}])).unwrap();
    let mut n = node("n");
    assert_eq!(on_node(&web, &n, None), ok());
    n.host_ports.insert((8080, Udp));
    assert_eq!(on_node(&web, &n, None), ok(), "udp 8080 is another port");
    n.host_ports.insert((8080, Tcp));
    assert_eq!(on_node(&web, &n, None), err("host port taken"));

    let mut c = cluster("c");
    assert_eq!(on_cluster(&web, &c, None), ok(), "unknown: not filtered");
    c.host_ports_taken_everywhere = Some([(9090, Tcp)].into());
    assert_eq!(on_cluster(&web, &c, None), ok());
    c.host_ports_taken_everywhere = Some([(8080, Tcp)].into());
    assert_eq!(
        on_cluster(&web, &c, None),
        err("host port taken on every node")
    );
    assert_eq!(
        on_cluster(&spec(100, 64), &c, None),
        ok(),
        "no host port asked"
    );
}

//! Scorers, objectives, soft constraints, positive explanations and summaries.

mod common;

use canopy_sched::geo::{centroid, haversine_km, rtt_from_distance_ms};
use canopy_sched::scorers::{BestFit, Energy, Latency, Scorer, Spread, Trust};
use canopy_sched::{
    ClusterView, Coordinate, NodeView, Objective, PlacementContext, Prepared, Request,
    place_on_node, place_on_node_explained, should_replace, summarise,
};
use common::*;
use serde_json::json;

fn score<S: Scorer<NodeView>>(scorer: S, request: &Request, n: &NodeView) -> f64 {
    let s = scorer.score(&Prepared::new(request), n);
    assert!(
        (0.0..=1.0).contains(&s),
        "{} out of range: {s}",
        scorer.name()
    );
    s
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn best_fit_and_spread() {
    let s = spec(1000, 1024);
    let r = Request::new(&s, &[]);
    let empty = node("e");
    let half = NodeView {
        allocated: amounts(1000, 1024),
        ..node("h")
    };
    let exact = NodeView {
        allocated: amounts(3000, 3072),
        ..node("x")
    };
    let zero = NodeView {
        capacity: amounts(0, 0),
        ..node("z")
    };
    let cases = [(&empty, 0.25), (&half, 0.5), (&exact, 1.0), (&zero, 1.0)];
    for (n, expected) in cases {
        assert!(
            close(score(BestFit, &r, n), expected),
            "best fit {}",
            n.name
        );
        assert!(
            close(score(Spread, &r, n), 1.0 - expected),
            "spread {}",
            n.name
        );
    }
    // Spread halves per instance of the service already there.
    let ctx = PlacementContext {
        instances_per_node: [("e".to_string(), 1)].into(),
        ..Default::default()
    };
    let r = Request {
        context: Some(&ctx),
        ..r
    };
    assert!(close(score(Spread, &r, &empty), 0.375));
}

#[test]
fn latency_scorer() {
    let s = with(
        spec(100, 64),
        vec![constraint(
            json!({"latency": {"maxMs": 100, "toPoint": {"lat": 0.0, "lon": 0.0}}}),
        )],
    );
    let r = Request::new(&s, &[]);
    let at = |lon: f64| NodeView {
        location: Some(point(0.0, lon)),
        ..node("n")
    };
    assert!(close(
        score(Latency, &r, &at(0.0)),
        1.0 / (1.0 + 1.0 / 20.0)
    ));
    assert!(score(Latency, &r, &at(0.0)) > score(Latency, &r, &at(1.0)));
    assert!(score(Latency, &r, &at(1.0)) > score(Latency, &r, &at(10.0)));
    assert_eq!(
        score(Latency, &r, &node("n")),
        0.0,
        "unknown location scores 0"
    );
    let plain = spec(100, 64);
    assert_eq!(
        score(Latency, &Request::new(&plain, &[]), &node("n")),
        1.0,
        "no target"
    );
}

#[test]
fn energy_and_trust() {
    let s = spec(100, 64);
    let r = Request::new(&s, &[]);
    assert!(
        close(score(Energy, &r, &node("n")), 0.5),
        "defaults are typical"
    );
    let green = NodeView {
        watts_per_core: Some(5.0),
        carbon_g_per_kwh: Some(50.0),
        ..node("g")
    };
    let coal = NodeView {
        watts_per_core: Some(15.0),
        carbon_g_per_kwh: Some(900.0),
        ..node("c")
    };
    let free_power = NodeView {
        carbon_g_per_kwh: Some(0.0),
        ..node("f")
    };
    assert!(score(Energy, &r, &green) > 0.5 && score(Energy, &r, &coal) < 0.5);
    assert_eq!(score(Energy, &r, &free_power), 1.0);
    let nan = NodeView {
        watts_per_core: Some(f64::NAN),
        ..node("x")
    };
    assert!(close(score(Energy, &r, &nan), 0.5));
    for (trust, expected) in [
        (1.0, 1.0),
        (0.3, 0.3),
        (2.0, 1.0),
        (-1.0, 0.0),
        (f64::NAN, 0.0),
    ] {
        let n = NodeView { trust, ..node("n") };
        assert!(close(score(Trust, &r, &n), expected), "trust {trust}");
    }
}

#[test]
fn objectives_change_the_choice() {
    let s = with(
        spec(500, 512),
        vec![constraint(
            json!({"latency": {"maxMs": 1000, "toPoint": {"lat": 48.1, "lon": 11.6}}}),
        )],
    );
    let busy_far = NodeView {
        allocated: amounts(3000, 3000),
        location: Some(point(52.5, 13.4)),
        ..node("busy-far")
    };
    let empty_near = NodeView {
        location: Some(point(48.1, 11.6)),
        ..node("empty-near")
    };
    let green_far = NodeView {
        location: Some(point(60.0, 10.0)),
        watts_per_core: Some(3.0),
        carbon_g_per_kwh: Some(20.0),
        ..node("green-far")
    };
    let nodes = [busy_far, empty_near, green_far];
    let pick = |objective| {
        let r = Request {
            objective,
            ..Request::new(&s, &[])
        };
        place_on_node(&r, &nodes).map(|i| nodes[i].name.clone())
    };
    assert_eq!(pick(None), Ok("busy-far".into()));
    assert_eq!(pick(Some(Objective::BinPack)), Ok("busy-far".into()));
    assert_eq!(pick(Some(Objective::Latency)), Ok("empty-near".into()));
    assert_eq!(pick(Some(Objective::Energy)), Ok("green-far".into()));
    assert_ne!(pick(Some(Objective::Spread)), Ok("busy-far".into()));
    // The descriptor's own objective applies when the request does not override it.
    let energy = canopy_model::ServiceSpec {
        objective: Some(Objective::Energy),
        ..s.clone()
    };
    let chosen = place_on_node(&Request::new(&energy, &[]), &nodes).map(|i| nodes[i].name.clone());
    assert_eq!(chosen, Ok("green-far".into()));
    let overridden = Request {
        objective: Some(Objective::Latency),
        ..Request::new(&energy, &[])
    };
    assert_eq!(
        place_on_node(&overridden, &nodes).map(|i| nodes[i].name.clone()),
        Ok("empty-near".into())
    );
}

#[test]
fn soft_constraints_prefer_but_never_filter() {
    let soft_geo = constraint(json!({
        "geo": {"location": {"lat": 48.1, "lon": 11.6}, "radiusKm": 50},
        "rigidness": 0.3, "convergenceTime": 600
    }));
    let s = with(spec(500, 512), vec![soft_geo]);
    let busy_far = NodeView {
        allocated: amounts(3000, 3000),
        location: Some(point(52.5, 13.4)),
        ..node("busy-far")
    };
    let empty_near = NodeView {
        location: Some(point(48.2, 11.7)),
        ..node("empty-near")
    };
    let r = Request::new(&s, &[]);
    // Best fit alone would take busy-far; the soft geo constraint tips it.
    let nodes = [busy_far.clone(), empty_near];
    let placed = place_on_node_explained(&r, &nodes).expect("placed");
    assert_eq!(placed.name, "empty-near");
    assert!(placed.violated.is_empty());
    // Only a violating candidate: still placed, and the violation is reported.
    let placed = place_on_node_explained(&r, std::slice::from_ref(&busy_far)).expect("placed");
    assert_eq!(placed.name, "busy-far");
    assert_eq!(placed.violated.len(), 1);
    assert_eq!(
        (placed.violated[0].constraint, placed.violated[0].kind),
        (0, "geo")
    );
    assert!(close(placed.penalty, 0.3));
    let text = placed.to_string();
    assert!(text.starts_with("node busy-far: score "), "{text}");
    assert!(text.contains("violates soft constraint #0 (geo)"), "{text}");
    // A candidate without location violates a soft geo constraint but stays feasible.
    assert!(place_on_node(&r, &[node("nowhere")]).is_ok());
}

#[test]
fn positive_explanation() {
    let s = with(
        spec(500, 512),
        vec![constraint(
            json!({"latency": {"maxMs": 50, "toPoint": {"lat": 48.1, "lon": 11.6}}}),
        )],
    );
    let n2 = NodeView {
        allocated: amounts(2000, 2048),
        location: Some(point(48.1, 14.6)),
        ..node("n2")
    };
    let placed = place_on_node_explained(&Request::new(&s, &[]), &[n2]).expect("placed");
    let text = placed.to_string();
    println!("{text}");
    assert!(text.starts_with("node n2: score 0."), "{text}");
    assert!(text.contains("best fit 0.62"), "{text}");
    assert!(text.contains("ms to 48.1,11.6"), "{text}");
    assert_eq!(placed.reasons[0].0, "best fit");
}

#[test]
fn replacement_after_convergence_time() {
    assert!(!should_replace(10, Some(60), true));
    assert!(should_replace(60, Some(60), true));
    assert!(!should_replace(600, Some(60), false));
    assert!(!should_replace(600, None, true));
    assert!(should_replace(0, Some(0), true));
}

#[test]
fn haversine() {
    let cases = [
        (point(0.0, 179.9), point(0.0, -179.9), 22.239),
        (point(0.0, 0.0), point(0.0, 1.0), 111.195),
        (point(90.0, 0.0), point(90.0, 90.0), 0.0),
        (point(90.0, 0.0), point(-90.0, 0.0), 20015.115),
        (point(0.0, 0.0), point(0.0, 180.0), 20015.115),
        (point(89.0, 0.0), point(89.0, 180.0), 222.390),
        (point(48.137, 11.575), point(52.520, 13.405), 504.4),
    ];
    for (a, b, km) in cases {
        let d = haversine_km(a, b);
        assert!((d - km).abs() < 0.5, "{a:?} {b:?}: {d} vs {km}");
        assert!((haversine_km(b, a) - d).abs() < 1e-9, "symmetric");
    }
    assert!((rtt_from_distance_ms(100.0) - 3.0).abs() < 1e-12);
    // A centroid across the antimeridian stays there.
    let (c, r) = centroid([point(0.0, 179.9), point(0.0, -179.9)].into_iter()).expect("centre");
    assert!(c.lon.abs() > 179.0 && (r - 11.12).abs() < 0.1, "{c:?} {r}");
    assert!(centroid(std::iter::empty()).is_none());
}

#[test]
fn summary_of_nodes() {
    let a = NodeView {
        capacity: amounts(4000, 8192),
        allocated: amounts(1000, 1000),
        location: Some(point(48.0, 11.0)),
        labels: [
            ("zone".to_string(), "a".to_string()),
            ("gpu.model".to_string(), "t4".to_string()),
        ]
        .into(),
        coordinate: Some(Coordinate {
            x: 0.0,
            y: 0.0,
            height: 2.0,
        }),
        trust: 0.6,
        watts_per_core: Some(10.0),
        ..node("a")
    };
    let b = NodeView {
        arch: "arm64".into(),
        capacity: amounts(2000, 2048),
        location: Some(point(48.0, 12.0)),
        labels: [("zone".to_string(), "b".to_string())].into(),
        coordinate: Some(Coordinate {
            x: 10.0,
            y: 0.0,
            height: 1.0,
        }),
        trust: 0.9,
        watts_per_core: Some(20.0),
        ..node("b")
    };
    let down = NodeView {
        ready: false,
        capacity: amounts(64000, 65536),
        ..node("down")
    };
    let c: ClusterView = summarise("c", &[a, b, down]);
    assert!(c.ready);
    assert_eq!(c.capacity, amounts(6000, 10240));
    assert_eq!(c.allocated, amounts(1000, 1000));
    assert_eq!(c.max_node_free, amounts(3000, 7192));
    assert_eq!(c.arches, vec!["amd64".to_string(), "arm64".to_string()]);
    assert_eq!(c.node_count, Some(2));
    let zones = c
        .node_labels
        .as_ref()
        .and_then(|l| l.get("zone"))
        .expect("zones");
    assert_eq!(zones.len(), 2);
    assert!(c.gpu_models.as_ref().is_some_and(|m| m.contains("t4")));
    let centre = c.location.expect("location");
    assert!((centre.lat - 48.0).abs() < 0.01 && (centre.lon - 11.5).abs() < 0.01);
    assert!(
        (c.location_radius_km - 37.2).abs() < 0.5,
        "{}",
        c.location_radius_km
    );
    let coord = c.coordinate.expect("coordinate");
    assert_eq!(
        (coord.x, coord.height, c.coordinate_radius_ms),
        (5.0, 1.0, 5.0)
    );
    assert_eq!(c.trust, 0.9);
    assert_eq!(c.watts_per_core, Some(15.0));
    let empty = summarise("e", &[]);
    assert!(!empty.ready && empty.location.is_none() && empty.node_count == Some(0));
    assert!(place_on_node(&Request::new(&spec(1, 1), &[]), &[]).is_err());
}

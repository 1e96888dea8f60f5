//! Properties over random nodes and requests.

mod common;

use canopy_model::GeoPoint;
use canopy_sched::geo::haversine_km;
use canopy_sched::{NodeView, PlacementContext, Request, place_on_node, place_on_node_explained};
use common::*;
use proptest::prelude::*;
use serde_json::json;

fn arb_node(i: usize) -> impl Strategy<Value = NodeView> {
    (
        (500u64..8000, 256u64..16384),
        (0u64..4000, 0u64..8192),
        prop::bool::ANY,
        0usize..3,
        prop::option::of((-60.0f64..60.0, -180.0f64..180.0)),
        0.0f64..1.0,
    )
        .prop_map(
            move |((cpu, mem), (acpu, amem), arm, zone, loc, trust)| NodeView {
                name: format!("n{i}"),
                arch: if arm { "arm64" } else { "amd64" }.into(),
                capacity: amounts(cpu, mem),
                allocated: amounts(acpu.min(cpu), amem.min(mem)),
                labels: [("zone".to_string(), format!("z{zone}"))].into(),
                location: loc.map(|(lat, lon)| GeoPoint { lat, lon }),
                trust,
                ..node("")
            },
        )
}

fn arb_nodes() -> impl Strategy<Value = Vec<NodeView>> {
    (1usize..25).prop_flat_map(|n| (0..n).map(arb_node).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A placement never overcommits and never breaks a hard constraint.
    #[test]
    fn placements_respect_capacity_and_hard_constraints(
        mut nodes in arb_nodes(),
        demands in prop::collection::vec((1u64..2000, 1u64..4096), 1..30),
        arch in prop::option::of(prop::bool::ANY),
        zone in prop::option::of(0usize..3),
        geo in prop::option::of((-60.0f64..60.0, -180.0f64..180.0, 100.0f64..5000.0)),
        trust in prop::option::of(0.0f64..1.0),
    ) {
        let mut constraints = Vec::new();
        if let Some(arm) = arch {
            constraints.push(constraint(json!({"arch": [if arm { "arm64" } else { "amd64" }]})));
        }
        if let Some(z) = zone {
            constraints.push(constraint(json!({"nodeSelector": [{"key": "zone", "operator": "NotIn", "values": [format!("z{z}")]}]})));
        }
        if let Some((lat, lon, km)) = geo {
            constraints.push(constraint(json!({"geo": {"location": {"lat": lat, "lon": lon}, "radiusKm": km}})));
        }
        if let Some(t) = trust {
            constraints.push(constraint(json!({"trust": {"minScore": t}})));
        }
        let ok_hard = |n: &NodeView| {
            arch.is_none_or(|arm| n.arch == if arm { "arm64" } else { "amd64" })
                && zone.is_none_or(|z| n.labels.get("zone") != Some(&format!("z{z}")))
                && geo.is_none_or(|(lat, lon, km)| {
                    n.location.is_some_and(|l| haversine_km(l, GeoPoint { lat, lon }) <= km)
                })
                && trust.is_none_or(|t| n.trust >= t)
        };
        for (cpu, mem) in demands {
            let s = with(spec(cpu, mem), constraints.clone());
            match place_on_node(&Request::new(&s, &[]), &nodes) {
                Ok(i) => {
                    prop_assert!(ok_hard(&nodes[i]), "hard constraint broken on {}", nodes[i].name);
                    nodes[i].allocated.cpu_millis += cpu;
                    nodes[i].allocated.memory_mib += mem;
                }
                Err(e) => prop_assert!(nodes.iter().all(|n| {
                    !ok_hard(n)
                        || n.capacity.cpu_millis - n.allocated.cpu_millis < cpu
                        || n.capacity.memory_mib - n.allocated.memory_mib < mem
                }), "refused although a node could take it: {e}"),
            }
            for n in &nodes {
                prop_assert!(n.allocated.cpu_millis <= n.capacity.cpu_millis);
                prop_assert!(n.allocated.memory_mib <= n.capacity.memory_mib);
            }
        }
    }

    /// With maxPerNode 1, replicas land on distinct nodes while enough nodes have room.
    #[test]
    fn spread_one_per_node(count in 1usize..20, extra in 0usize..5) {
        let nodes: Vec<NodeView> = (0..count).map(|i| node(&format!("n{i}"))).collect();
        let s = with(spec(100, 64), vec![constraint(json!({"spread": {"maxPerNode": 1}}))]);
        let mut ctx = PlacementContext::default();
        for replica in 0..count + extra {
            let r = Request { context: Some(&ctx), ..Request::new(&s, &[]) };
            match place_on_node(&r, &nodes) {
                Ok(i) => {
                    prop_assert!(replica < count);
                    let seen = ctx.instances_per_node.entry(nodes[i].name.clone()).or_default();
                    prop_assert_eq!(*seen, 0, "two replicas on {}", nodes[i].name);
                    *seen += 1;
                }
                Err(e) => {
                    prop_assert!(replica >= count, "refused replica {replica}: {e}");
                    prop_assert!(e.to_string().contains("max instances per node reached"));
                }
            }
        }
    }

    /// A satisfying feasible candidate beats every violating one, whatever the scores.
    #[test]
    fn soft_constraint_satisfied_when_possible(
        nodes in arb_nodes(),
        (lat, lon, km) in (-60.0f64..60.0, -180.0f64..180.0, 100.0f64..5000.0),
        rigidness in 0.01f64..0.99,
        (cpu, mem) in (1u64..2000, 1u64..4096),
    ) {
        let target = GeoPoint { lat, lon };
        let s = with(spec(cpu, mem), vec![constraint(json!({
            "geo": {"location": {"lat": lat, "lon": lon}, "radiusKm": km},
            "rigidness": rigidness
        }))]);
        let fits = |n: &NodeView| n.capacity.cpu_millis - n.allocated.cpu_millis >= cpu
            && n.capacity.memory_mib - n.allocated.memory_mib >= mem;
        let near = |n: &NodeView| n.location.is_some_and(|l| haversine_km(l, target) <= km);
        let placed = place_on_node_explained(&Request::new(&s, &[]), &nodes);
        if let Ok(p) = placed {
            let chosen = &nodes[p.index];
            prop_assert!(fits(chosen));
            if nodes.iter().any(|n| fits(n) && near(n)) {
                prop_assert!(near(chosen), "chose {} although a near node fits", chosen.name);
                prop_assert!(p.violated.is_empty());
            } else {
                prop_assert_eq!(p.violated.len(), 1);
            }
        } else {
            prop_assert!(!nodes.iter().any(fits));
        }
    }
}

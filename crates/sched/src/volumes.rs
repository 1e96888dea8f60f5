//! Named node-local volumes as a soft preference: a node that holds the volumes the instance
//! uses (as it reported them) is preferred to one that does not, so a replacement finds what
//! the instance before it wrote. Soft, never a filter: when the node holding them is full,
//! cordoned or gone, the instance runs elsewhere and starts with empty volumes there.

use crate::prepare::Prepared;

/// What a node lacking all of the instance's volumes pays (a share for some of them), on
/// the soft constraints' scale: it outweighs every score (as a soft constraint's violation
/// does) and a soft constraint of rigidness above one half.
pub const VOLUME_PENALTY: f64 = 0.5;

/// The penalty of placing on a node holding `held` (sorted volume keys).
pub(crate) fn penalty(p: &Prepared, held: &std::collections::BTreeSet<String>) -> f64 {
    let Some(wanted) = p.request.context.map(|c| &c.volumes) else {
        return 0.0;
    };
    if wanted.is_empty() {
        return 0.0;
    }
    let missing = wanted.iter().filter(|v| !held.contains(*v)).count();
    VOLUME_PENALTY * missing as f64 / wanted.len() as f64
}

#[cfg(test)]
mod tests {
    use crate::{NodeView, PlacementContext, Request, place_on_node};
    use canopy_model::{ResourceAmounts, RuntimeKind, ServiceSpec};

    fn spec(constraints: serde_json::Value) -> ServiceSpec {
        serde_json::from_value(serde_json::json!({
            "name": "db", "runtime": "process", "command": ["/bin/true"],
            "resources": {"cpu": "500m", "memory": "64Mi"}, "constraints": constraints
        }))
        .unwrap()
    }

    fn node(name: &str, cpu_free: u64, volumes: &[&str]) -> NodeView {
        let capacity = ResourceAmounts {
            cpu_millis: 4000,
            memory_mib: 4096,
            ..ResourceAmounts::default()
        };
        NodeView {
            name: name.into(),
            ready: true,
            runtimes: vec![RuntimeKind::Process],
            capacity,
            allocated: ResourceAmounts {
                cpu_millis: 4000 - cpu_free,
                ..ResourceAmounts::default()
            },
            volumes: volumes.iter().map(|v| v.to_string()).collect(),
            ..NodeView::default()
        }
    }

    fn chosen(spec: &ServiceSpec, volumes: &[&str], nodes: &[NodeView]) -> Result<String, String> {
        let context = PlacementContext {
            volumes: volumes.iter().map(|v| v.to_string()).collect(),
            ..PlacementContext::default()
        };
        let mut request = Request::new(spec, &[]);
        request.context = Some(&context);
        place_on_node(&request, nodes)
            .map(|i| nodes[i].name.clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_node_holding_the_volume_wins_over_a_better_fit() {
        let nodes = [
            node("tight", 600, &[]),
            node("holder", 3500, &["team/shop/data"]),
        ];
        let spec = spec(serde_json::json!([]));
        // Without the volume, best fit takes the tight node.
        assert_eq!(chosen(&spec, &[], &nodes).unwrap(), "tight");
        assert_eq!(
            chosen(&spec, &["team/shop/data"], &nodes).unwrap(),
            "holder"
        );
        // Another application's volume of the same name is not this one.
        assert_eq!(chosen(&spec, &["team/blog/data"], &nodes).unwrap(), "tight");
    }

    #[test]
    fn holding_more_of_the_volumes_is_better() {
        let nodes = [
            node("one", 3500, &["t/a/x"]),
            node("both", 3500, &["t/a/x", "t/a/y"]),
            node("none", 600, &[]),
        ];
        let spec = spec(serde_json::json!([]));
        assert_eq!(chosen(&spec, &["t/a/x", "t/a/y"], &nodes).unwrap(), "both");
    }

    #[test]
    fn it_is_soft_a_full_holder_is_passed_over_and_a_hard_constraint_still_rules() {
        let spec = spec(serde_json::json!([]));
        let full = [node("holder", 100, &["t/a/x"]), node("other", 3500, &[])];
        assert_eq!(chosen(&spec, &["t/a/x"], &full).unwrap(), "other");
        let pinned = self::spec(serde_json::json!([{"direct": {"nodes": ["other"]}}]));
        let nodes = [node("holder", 3500, &["t/a/x"]), node("other", 3500, &[])];
        assert_eq!(chosen(&pinned, &["t/a/x"], &nodes).unwrap(), "other");
    }
}

//! Cordon: a node its operator marked unschedulable takes nothing new (what runs there
//! stays). Cluster level needs no filter: a cluster's summary leaves cordoned nodes out.

use super::Reason;
use crate::NodeView;

const CORDONED: Reason = "node(s) were unschedulable";

pub fn node(node: &NodeView) -> Result<(), Reason> {
    if node.unschedulable {
        Err(CORDONED)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Request, place_on_node_explained, summarise};
    use canopy_model::{ResourceAmounts, RuntimeKind, ServiceSpec};

    fn node(name: &str, unschedulable: bool) -> NodeView {
        NodeView {
            name: name.into(),
            ready: true,
            runtimes: vec![RuntimeKind::Process],
            capacity: ResourceAmounts {
                cpu_millis: 4000,
                memory_mib: 4096,
                ..ResourceAmounts::default()
            },
            unschedulable,
            ..NodeView::default()
        }
    }

    fn spec() -> ServiceSpec {
        let spec =
            serde_json::json!({"name": "web", "runtime": "process", "command": ["/bin/true"]});
        serde_json::from_value(spec).expect("a minimal service")
    }

    #[test]
    fn a_cordoned_node_is_ruled_out_and_says_why() {
        assert_eq!(super::node(&node("a", true)), Err(CORDONED));
        assert_eq!(super::node(&node("a", false)), Ok(()));
        let spec = spec();
        let request = Request::new(&spec, &[]);
        let chosen = place_on_node_explained(&request, &[node("a", true), node("b", false)]);
        assert_eq!(chosen.map(|p| p.name).ok(), Some("b".to_string()));
        let none = place_on_node_explained(&request, &[node("a", true)]);
        let text = none.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("1 node(s) were unschedulable"), "{text}");
    }

    #[test]
    fn a_cordoned_node_adds_nothing_to_its_cluster_summary() {
        let summary = summarise("c", &[node("a", true), node("b", false)]);
        assert_eq!(summary.capacity.cpu_millis, 4000);
        assert_eq!(summary.max_node_free.cpu_millis, 4000);
        assert!(summary.ready);
        assert!(
            !summarise("c", &[node("a", true)]).ready,
            "no node can take work"
        );
    }
}

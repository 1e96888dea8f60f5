//! The operator's node settings and measured usage, between the model's types and the wire's.

use crate::pb;
use canopy_model::{OperatorSettings, Usage};
use std::collections::BTreeMap;

/// Settings by node name, as a [`pb::NodeConfig`] (nodes without settings left out).
pub fn node_config_to_pb(settings: &BTreeMap<String, OperatorSettings>) -> pb::NodeConfig {
    pb::NodeConfig {
        nodes: settings
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(name, s)| pb::NodeSettings {
                name: name.clone(),
                unschedulable: s.unschedulable,
                labels: s.labels.clone().into_iter().collect(),
                removed_labels: s.removed_labels.iter().cloned().collect(),
            })
            .collect(),
    }
}

pub fn node_config_from_pb(config: &pb::NodeConfig) -> BTreeMap<String, OperatorSettings> {
    config
        .nodes
        .iter()
        .filter(|n| !n.name.is_empty())
        .map(|n| {
            let settings = OperatorSettings {
                unschedulable: n.unschedulable,
                labels: n.labels.clone().into_iter().collect(),
                removed_labels: n.removed_labels.iter().cloned().collect(),
            };
            (n.name.clone(), settings)
        })
        .collect()
}

pub fn usage_to_pb(usage: Usage) -> pb::Usage {
    pb::Usage {
        cpu_millis: usage.cpu_millis,
        memory_bytes: usage.memory_bytes,
    }
}

pub fn usage_from_pb(usage: Option<&pb::Usage>) -> Usage {
    usage.map_or_else(Usage::default, |u| Usage {
        cpu_millis: u.cpu_millis,
        memory_bytes: u.memory_bytes,
    })
}

pub fn instance_usage_to_pb(usage: &BTreeMap<String, Usage>) -> Vec<pb::InstanceUsage> {
    usage
        .iter()
        .map(|(id, u)| pb::InstanceUsage {
            id: id.clone(),
            usage: Some(usage_to_pb(*u)),
        })
        .collect()
}

pub fn instance_usage_from_pb(usage: &[pb::InstanceUsage]) -> BTreeMap<String, Usage> {
    usage
        .iter()
        .map(|u| (u.id.clone(), usage_from_pb(u.usage.as_ref())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_model::LabelEdit;

    #[test]
    fn node_settings_survive_the_wire() {
        let mut cordoned = OperatorSettings {
            unschedulable: true,
            ..OperatorSettings::default()
        };
        let edits = ["zone=b", "gpu-"].map(|e| LabelEdit::parse(e).unwrap());
        cordoned.edit_labels(&edits);
        let settings = BTreeMap::from([
            ("a".to_string(), cordoned),
            ("b".to_string(), OperatorSettings::default()),
        ]);
        let back = node_config_from_pb(&node_config_to_pb(&settings));
        assert_eq!(back.len(), 1, "a node without settings is left out");
        assert_eq!(back.get("a"), settings.get("a"));
    }

    #[test]
    fn usage_survives_the_wire() {
        let usage = BTreeMap::from([(
            "i".to_string(),
            Usage {
                cpu_millis: 250,
                memory_bytes: 1 << 20,
            },
        )]);
        assert_eq!(instance_usage_from_pb(&instance_usage_to_pb(&usage)), usage);
        assert_eq!(usage_from_pb(None), Usage::default());
    }
}

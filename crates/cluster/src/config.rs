//! The operator's settings of this cluster's nodes (cordon, labels), as the root sends
//! them: the scheduler's views carry them (a cordoned node takes nothing new, operator
//! labels are what node selectors read), and the summary leaves cordoned nodes out.

use crate::effects::Effects;
use crate::state::ClusterState;
use canopy_model::OperatorSettings;
use canopy_sched::NodeView;
use std::collections::BTreeMap;

impl ClusterState {
    /// Takes the whole set of settings from the root; whether anything changed.
    pub fn configure(
        &mut self,
        settings: BTreeMap<String, OperatorSettings>,
        fx: &mut Effects,
    ) -> bool {
        if settings == self.node_settings {
            return false;
        }
        tracing::info!(nodes = settings.len(), "node settings from the root");
        self.node_settings = settings;
        self.views_stale = true;
        fx.membership_changed = true;
        true
    }
}

/// `view` with its operator's settings applied over what its node reported.
pub(crate) fn apply(view: &mut NodeView, settings: Option<&OperatorSettings>) {
    if let Some(settings) = settings {
        view.labels = settings.merged_labels(&view.labels);
        view.unschedulable = settings.unschedulable;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_model::LabelEdit;

    #[test]
    fn settings_overlay_a_view() {
        let mut view = NodeView {
            name: "n".into(),
            labels: [("zone".to_string(), "a".to_string())].into(),
            ..NodeView::default()
        };
        apply(&mut view, None);
        assert!(!view.unschedulable);
        let mut settings = OperatorSettings {
            unschedulable: true,
            ..OperatorSettings::default()
        };
        settings.edit_labels(&[LabelEdit::parse("zone=b").unwrap()]);
        apply(&mut view, Some(&settings));
        assert!(view.unschedulable);
        assert_eq!(view.labels.get("zone").map(String::as_str), Some("b"));
    }
}

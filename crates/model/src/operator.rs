//! What an operator sets on a node or a cluster, over what it reports: cordon and labels
//! (`kubectl cordon`, `kubectl label`). Pure: parsing the edits and merging them.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::ToSchema;

/// The operator's settings of one node or cluster, kept by the root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperatorSettings {
    /// Cordoned: nothing new is placed there (nodes only).
    #[serde(default)]
    pub unschedulable: bool,
    /// Labels set by the operator; they win over the reported ones.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Labels the operator removed: hidden even when reported.
    #[serde(default)]
    pub removed_labels: BTreeSet<String>,
}

impl OperatorSettings {
    pub fn is_empty(&self) -> bool {
        *self == OperatorSettings::default()
    }

    /// Applies `edits` in order; whether anything changed.
    pub fn edit_labels(&mut self, edits: &[LabelEdit]) -> bool {
        let before = self.clone();
        for edit in edits {
            match edit {
                LabelEdit::Set { key, value } => {
                    self.removed_labels.remove(key);
                    self.labels.insert(key.clone(), value.clone());
                }
                LabelEdit::Remove { key } => {
                    self.labels.remove(key);
                    self.removed_labels.insert(key.clone());
                }
            }
        }
        *self != before
    }

    /// The labels as everyone sees them: the reported ones, less the removed, with the
    /// operator's set over them.
    pub fn merged_labels(&self, reported: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut labels: BTreeMap<String, String> = reported
            .iter()
            .filter(|(k, _)| !self.removed_labels.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.extend(self.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels
    }
}

/// One change of `canopy label`: `key=value` sets, `key-` removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", tag = "op")]
pub enum LabelEdit {
    Set { key: String, value: String },
    Remove { key: String },
}

/// Label keys and values as Kubernetes allows them: an optional DNS prefix and `/`, then
/// at most 63 of `[A-Za-z0-9._-]`, starting and ending alphanumeric (values may be empty).
fn valid_name(text: &str) -> bool {
    text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && text
            .chars()
            .next()
            .is_none_or(|c| c.is_ascii_alphanumeric())
        && text
            .chars()
            .last()
            .is_none_or(|c| c.is_ascii_alphanumeric())
}

fn valid_key(key: &str) -> bool {
    let name = match key.split_once('/') {
        Some((prefix, name)) => {
            let prefix_ok = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix
                    .split('.')
                    .all(|part| !part.is_empty() && valid_name(part));
            if !prefix_ok {
                return false;
            }
            name
        }
        None => key,
    };
    !name.is_empty() && valid_name(name)
}

impl LabelEdit {
    /// `key=value` or `key-`, refused with the reason when the key or value is malformed.
    pub fn parse(text: &str) -> Result<LabelEdit, String> {
        let edit = match text.split_once('=') {
            Some((key, value)) => LabelEdit::Set {
                key: key.to_string(),
                value: value.to_string(),
            },
            None => match text.strip_suffix('-') {
                Some(key) => LabelEdit::Remove {
                    key: key.to_string(),
                },
                None => return Err(format!("{text:?}: expected KEY=VALUE or KEY-")),
            },
        };
        edit.validate()?;
        Ok(edit)
    }

    pub fn key(&self) -> &str {
        match self {
            LabelEdit::Set { key, .. } | LabelEdit::Remove { key } => key,
        }
    }

    /// Checks the key (and value) have the form Kubernetes labels have.
    pub fn validate(&self) -> Result<(), String> {
        if !valid_key(self.key()) {
            return Err(format!(
                "label key {:?}: at most 63 of [A-Za-z0-9._-] (starting and ending alphanumeric), with an optional DNS prefix and '/'",
                self.key()
            ));
        }
        if let LabelEdit::Set { value, .. } = self
            && !valid_name(value)
        {
            return Err(format!(
                "label value {value:?}: at most 63 of [A-Za-z0-9._-], starting and ending alphanumeric"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn edits_parse_like_kubectl_label() {
        assert_eq!(
            LabelEdit::parse("zone=a"),
            Ok(LabelEdit::Set {
                key: "zone".into(),
                value: "a".into()
            })
        );
        assert_eq!(
            LabelEdit::parse("canopy.dev/tier-"),
            Ok(LabelEdit::Remove {
                key: "canopy.dev/tier".into()
            })
        );
        assert!(LabelEdit::parse("empty=").is_ok(), "values may be empty");
        for bad in ["zone", "=a", "-bad=a", "zone=a b", "/x=1", "zone=-a"] {
            assert!(LabelEdit::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn operator_labels_win_and_removals_hide_reported_ones() {
        let mut settings = OperatorSettings::default();
        let edits = ["zone=b", "gpu-", "new=1"].map(|e| LabelEdit::parse(e).unwrap());
        assert!(settings.edit_labels(&edits));
        assert!(
            !settings.edit_labels(&edits),
            "the same edits again change nothing"
        );
        let reported = labels(&[("zone", "a"), ("gpu", "t4"), ("arch", "x")]);
        assert_eq!(
            settings.merged_labels(&reported),
            labels(&[("arch", "x"), ("new", "1"), ("zone", "b")])
        );
        // Setting a removed key again brings it back, with the operator's value.
        assert!(settings.edit_labels(&[LabelEdit::parse("gpu=a100").unwrap()]));
        assert_eq!(
            settings
                .merged_labels(&reported)
                .get("gpu")
                .map(String::as_str),
            Some("a100")
        );
        // Removing an operator label that was never reported leaves nothing behind.
        assert!(settings.edit_labels(&[LabelEdit::parse("new-").unwrap()]));
        assert!(!settings.merged_labels(&reported).contains_key("new"));
    }
}

//! The `oakestra.io/<field>` annotations that keep Oakestra fields without a native home.

use super::Mapper;
use serde_json::Value;
use std::collections::BTreeMap;

/// Prefix of the annotations that keep Oakestra fields without a native home.
pub const ANNOTATION_PREFIX: &str = "oakestra.io/";
impl Mapper {
    /// Keeps a field without a native home in `annotations` and says so.
    pub(super) fn keep(
        &mut self,
        annotations: &mut BTreeMap<String, String>,
        path: &str,
        field: &str,
        value: &Value,
        why: &str,
    ) {
        let key = annotation_key(field);
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        annotations.insert(key.clone(), text);
        self.warn(
            path,
            format!("no native equivalent ({why}); kept in annotation {key}"),
        );
    }
}

/// `oakestra.io/<field>`, with characters a label key may not hold replaced by `_`.
pub(super) fn annotation_key(field: &str) -> String {
    let cleaned: String = field
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let name: String = trimmed.chars().take(crate::limits::MAX_NAME_LEN).collect();
    let name = name.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let name = if name.is_empty() { "field" } else { name };
    format!("{ANNOTATION_PREFIX}{name}")
}

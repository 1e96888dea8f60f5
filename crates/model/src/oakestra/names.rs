//! Oakestra names (which may hold capitals) lowercased to native DNS labels.

use super::Mapper;
use super::annotations::annotation_key;
use std::collections::BTreeMap;

impl Mapper {
    /// Oakestra names may hold capitals; native ones are DNS labels. Lowercasing is the only
    /// normalisation (a warning says so): whatever else breaks a DNS label is refused by
    /// validation, with the Oakestra path.
    pub(super) fn name(
        &mut self,
        raw: &str,
        path: &str,
        field: &str,
        annotations: &mut BTreeMap<String, String>,
    ) -> String {
        let name = normalise_name(raw);
        if name != raw && !name.is_empty() {
            let key = annotation_key(field);
            annotations.insert(key.clone(), raw.to_string());
            self.warn(
                path,
                format!("{raw:?} lowercased to {name:?}; the original is kept in annotation {key}"),
            );
        }
        name
    }
}

/// Lowercase: the one normalisation of an Oakestra name (Oakestra itself allows
/// `[a-zA-Z0-9]`, which lowercases onto a DNS label).
pub fn normalise_name(raw: &str) -> String {
    raw.to_ascii_lowercase()
}

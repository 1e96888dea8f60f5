//! Oakestra names (which may hold capitals and `_`) normalised to native DNS labels.

use super::Mapper;
use super::annotations::annotation_key;
use std::collections::BTreeMap;

impl Mapper {
    /// Oakestra names may hold capitals and `_`; native ones are DNS labels.
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
                format!(
                    "{raw:?} normalised to the DNS label {name:?}; the original is kept in annotation {key}"
                ),
            );
        }
        if name.is_empty() && !raw.is_empty() {
            // Nothing usable survived: let validation report the original.
            return raw.to_string();
        }
        name
    }
}

/// Lowercase; `_`, `.`, spaces and other characters outside `[a-z0-9-]` become `-`; no `-` at
/// either end; at most 63 characters.
pub fn normalise_name(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    let cut: String = trimmed.chars().take(crate::limits::MAX_NAME_LEN).collect();
    cut.trim_end_matches('-').to_string()
}

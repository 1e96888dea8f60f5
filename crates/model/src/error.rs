use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One problem in a descriptor: where (`spec.services[1].resources.memory`) and why (`must be > 0`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    pub path: String,
    pub reason: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// Every problem found in a descriptor, not just the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid descriptor: {}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct DescriptorError {
    pub errors: Vec<FieldError>,
}

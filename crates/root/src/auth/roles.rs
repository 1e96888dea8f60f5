//! Roles and grants: what a user holds. A grant gives one role over one namespace or over
//! every namespace; a user holds any number of grants.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// admin: everything; operator: clusters and nodes; developer: applications in the
/// namespaces granted; viewer: reads only.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    Developer,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Developer, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| format!("unknown role {text:?}: admin, operator, developer or viewer"))
    }
}

/// A role over one namespace (`namespace` set) or over all of them (`namespace` absent).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub role: Role,
    /// The one namespace it covers; every namespace when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl Grant {
    pub fn everywhere(role: Role) -> Grant {
        Grant {
            role,
            namespace: None,
        }
    }

    pub fn in_namespace(role: Role, namespace: &str) -> Grant {
        Grant {
            role,
            namespace: Some(namespace.to_string()),
        }
    }

    /// Whether it covers `namespace` (`None`: everything, which only an all-namespaces
    /// grant covers).
    pub fn covers(&self, namespace: Option<&str>) -> bool {
        match (&self.namespace, namespace) {
            (None, _) => true,
            (Some(own), Some(asked)) => own == asked,
            (Some(_), None) => false,
        }
    }
}

impl std::fmt::Display for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} in namespace {namespace:?}", self.role),
            None => write!(f, "{} in all namespaces", self.role),
        }
    }
}

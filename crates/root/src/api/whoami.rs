//! `GET /api/v1/whoami`: the caller, its grants and what they allow, so that a client (the
//! dashboard) offers only what the caller may do. The API still decides every request.

use crate::auth::{Action, Grant, Namespaces, Principal};
use axum::{Extension, Json};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    pub user: String,
    pub grants: Vec<Grant>,
    /// For each namespaced action (`read`, `deploy`, `exec`, `replaceInstance`), the
    /// namespaces where the caller may do it; `["*"]` for every namespace.
    pub namespaced: BTreeMap<String, Vec<String>>,
    /// The installation-wide actions the caller may do (`readInfrastructure`,
    /// `manageInfrastructure`, `manageMembers`, `readAudit`, `manageUsers`).
    pub installation: Vec<String>,
}

/// The action's name in [`WhoAmI`].
fn name(action: Action) -> &'static str {
    match action {
        Action::Read => "read",
        Action::Deploy => "deploy",
        Action::Exec => "exec",
        Action::ReplaceInstance => "replaceInstance",
        Action::ReadInfrastructure => "readInfrastructure",
        Action::ManageInfrastructure => "manageInfrastructure",
        Action::ManageMembers => "manageMembers",
        Action::ReadAudit => "readAudit",
        Action::ManageUsers => "manageUsers",
    }
}

/// What `principal` may do (pure: the grants decide).
pub fn describe(principal: &Principal) -> WhoAmI {
    let mut namespaced = BTreeMap::new();
    let mut installation = Vec::new();
    for action in Action::ALL {
        if action.is_namespaced() {
            let namespaces = match principal.namespaces(action) {
                Namespaces::All => vec!["*".to_string()],
                Namespaces::Only(set) => set.into_iter().collect(),
            };
            namespaced.insert(name(action).to_string(), namespaces);
        } else if principal.may(action, None) {
            installation.push(name(action).to_string());
        }
    }
    WhoAmI {
        user: principal.name.clone(),
        grants: principal.grants.clone(),
        namespaced,
        installation,
    }
}

/// The caller and what its token allows.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "auth",
    responses((status = 200, body = WhoAmI)))]
pub async fn whoami(Extension(principal): Extension<Principal>) -> Json<WhoAmI> {
    Json(describe(&principal))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn principal(grants: Vec<Grant>) -> Principal {
        Principal {
            name: "ada".into(),
            grants,
            token: "t".into(),
        }
    }

    #[test]
    fn a_developer_of_one_namespace_deploys_there_and_reads_the_infrastructure() {
        let who = describe(&principal(vec![Grant::in_namespace(
            Role::Developer,
            "team",
        )]));
        assert_eq!(who.namespaced["deploy"], ["team"]);
        assert_eq!(who.namespaced["exec"], ["team"]);
        assert_eq!(who.installation, ["readInfrastructure"]);
    }

    #[test]
    fn an_admin_may_everything_a_viewer_only_read() {
        let admin = describe(&principal(vec![Grant::everywhere(Role::Admin)]));
        assert!(admin.namespaced.values().all(|n| n == &["*"]));
        assert_eq!(admin.installation.len(), 5);
        let viewer = describe(&principal(vec![Grant::everywhere(Role::Viewer)]));
        assert_eq!(viewer.namespaced["read"], ["*"]);
        assert!(viewer.namespaced["deploy"].is_empty());
        assert_eq!(viewer.installation, ["readInfrastructure"]);
    }
}

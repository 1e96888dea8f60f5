//! The one decision: may a holder of these grants do this action on this namespace (or on
//! something that belongs to no namespace)? Pure: no I/O, no clock.

use super::roles::{Grant, Role};
use std::collections::BTreeSet;

/// What a request does, as far as authorisation cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read applications, services, instances, their logs and events (namespaced).
    Read,
    /// Create, change, scale or delete applications (namespaced).
    Deploy,
    /// Run commands in instances and forward ports to them (namespaced).
    Exec,
    /// Stop an instance so its service replaces it (namespaced).
    ReplaceInstance,
    /// Read clusters and nodes (no namespace: every role may).
    ReadInfrastructure,
    /// Cordon, uncordon, drain and label clusters and nodes.
    ManageInfrastructure,
    /// Join tokens and revoking clusters.
    ManageMembers,
    /// Read the audit log.
    ReadAudit,
    /// Users and their grants.
    ManageUsers,
}

impl Action {
    pub const ALL: [Action; 9] = [
        Action::Read,
        Action::Deploy,
        Action::Exec,
        Action::ReplaceInstance,
        Action::ReadInfrastructure,
        Action::ManageInfrastructure,
        Action::ManageMembers,
        Action::ReadAudit,
        Action::ManageUsers,
    ];

    /// Whether it is done on something of one namespace (else on the whole installation).
    pub fn is_namespaced(self) -> bool {
        matches!(
            self,
            Action::Read | Action::Deploy | Action::Exec | Action::ReplaceInstance
        )
    }
}

/// What each role allows, wherever its grant applies.
pub fn role_allows(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Admin => true,
        Role::Operator => matches!(
            action,
            Read | ReplaceInstance | ReadInfrastructure | ManageInfrastructure
        ),
        Role::Developer => matches!(
            action,
            Read | Deploy | Exec | ReplaceInstance | ReadInfrastructure
        ),
        Role::Viewer => matches!(action, Read | ReadInfrastructure),
    }
}

/// May the holder of `grants` do `action` in `namespace`? A namespaced action needs a grant
/// over that namespace (or all); any other action needs an all-namespaces grant, except
/// reading clusters and nodes, which any grant allows.
pub fn may(grants: &[Grant], action: Action, namespace: Option<&str>) -> bool {
    let target = if action.is_namespaced() {
        namespace
    } else {
        None
    };
    grants.iter().any(|grant| {
        role_allows(grant.role, action)
            && (action == Action::ReadInfrastructure || grant.covers(target))
    })
}

/// May the holder do `action` in at least one namespace? (The coarse check before the
/// handler knows which namespace a request touches.)
pub fn may_somewhere(grants: &[Grant], action: Action) -> bool {
    grants.iter().any(|grant| {
        role_allows(grant.role, action)
            && (action.is_namespaced()
                || action == Action::ReadInfrastructure
                || grant.covers(None))
    })
}

/// The namespaces in which the holder may do `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespaces {
    All,
    Only(BTreeSet<String>),
}

impl Namespaces {
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Namespaces::All => true,
            Namespaces::Only(set) => set.contains(namespace),
        }
    }
}

pub fn namespaces_for(grants: &[Grant], action: Action) -> Namespaces {
    let mut only = BTreeSet::new();
    for grant in grants.iter().filter(|g| role_allows(g.role, action)) {
        match &grant.namespace {
            None => return Namespaces::All,
            Some(namespace) => {
                only.insert(namespace.clone());
            }
        }
    }
    Namespaces::Only(only)
}

/// May the holder hand `wanted` on (as an API token)? Only when it may do everything
/// `wanted` allows, where `wanted` allows it: no token is stronger than its creator.
pub fn may_delegate(grants: &[Grant], wanted: &Grant) -> bool {
    Action::ALL
        .into_iter()
        .filter(|action| role_allows(wanted.role, *action))
        .all(|action| {
            if action.is_namespaced() {
                match &wanted.namespace {
                    Some(namespace) => may(grants, action, Some(namespace)),
                    None => namespaces_for(grants, action) == Namespaces::All,
                }
            } else if wanted.namespace.is_none() || action == Action::ReadInfrastructure {
                may(grants, action, None)
            } else {
                // A namespaced grant never allows installation-wide actions: nothing to check.
                true
            }
        })
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;

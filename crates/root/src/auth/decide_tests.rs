use super::*;

const A: &str = "team-a";
const B: &str = "team-b";

/// Written out by hand, in the order of `Action::ALL`: Read, Deploy, Exec, ReplaceInstance,
/// ReadInfrastructure, ManageInfrastructure, ManageMembers, ReadAudit, ManageUsers.
const ROLE_TABLE: [(Role, [bool; 9]); 4] = [
    (
        Role::Admin,
        [true, true, true, true, true, true, true, true, true],
    ),
    (
        Role::Operator,
        [true, false, false, true, true, true, false, false, false],
    ),
    (
        Role::Developer,
        [true, true, true, true, true, false, false, false, false],
    ),
    (
        Role::Viewer,
        [true, false, false, false, true, false, false, false, false],
    ),
];

fn table(role: Role, action: Action) -> bool {
    let (_, row) = ROLE_TABLE.iter().find(|(r, _)| *r == role).unwrap();
    let column = Action::ALL.iter().position(|a| *a == action).unwrap();
    row[column]
}

#[derive(Clone, Copy)]
enum Kind {
    Namespaced,
    Installation,
    InfrastructureRead,
}

fn kind(action: Action) -> Kind {
    match action {
        Action::Read | Action::Deploy | Action::Exec | Action::ReplaceInstance => Kind::Namespaced,
        Action::ReadInfrastructure => Kind::InfrastructureRead,
        _ => Kind::Installation,
    }
}

/// Whether a grant's scope reaches the target, by hand: (kind, grant over all namespaces?,
/// target) -> reaches. `None` as target means "the whole installation / every namespace".
fn scope_reaches(kind: Kind, all: bool, target: Option<&str>) -> bool {
    match (kind, all, target) {
        (Kind::InfrastructureRead, _, _) => true,
        (_, true, _) => true,
        (Kind::Namespaced, false, Some(ns)) => ns == A,
        (Kind::Namespaced, false, None) => false,
        (Kind::Installation, false, _) => false,
    }
}

#[test]
fn each_role_allows_what_the_table_says() {
    for (role, row) in ROLE_TABLE {
        for (action, expected) in Action::ALL.into_iter().zip(row) {
            assert_eq!(role_allows(role, action), expected, "{role} {action:?}");
        }
    }
}

#[test]
fn every_role_action_scope_and_target() {
    let mut cases = 0;
    for role in Role::ALL {
        for action in Action::ALL {
            for all in [true, false] {
                let grant = if all {
                    Grant::everywhere(role)
                } else {
                    Grant::in_namespace(role, A)
                };
                for target in [None, Some(A), Some(B)] {
                    let expected = table(role, action) && scope_reaches(kind(action), all, target);
                    assert_eq!(
                        may(std::slice::from_ref(&grant), action, target),
                        expected,
                        "{grant} {action:?} on {target:?}"
                    );
                    cases += 1;
                }
            }
        }
    }
    assert_eq!(cases, 4 * 9 * 2 * 3);
}

#[test]
fn no_grant_allows_nothing() {
    for action in Action::ALL {
        for target in [None, Some(A)] {
            assert!(!may(&[], action, target), "{action:?}");
        }
        assert!(!may_somewhere(&[], action));
    }
    assert_eq!(
        namespaces_for(&[], Action::Read),
        Namespaces::Only(BTreeSet::new())
    );
}

#[test]
fn grants_add_up() {
    let grants = [
        Grant::in_namespace(Role::Developer, A),
        Grant::in_namespace(Role::Viewer, B),
    ];
    assert!(may(&grants, Action::Deploy, Some(A)));
    assert!(!may(&grants, Action::Deploy, Some(B)));
    assert!(may(&grants, Action::Read, Some(B)));
    assert!(!may(&grants, Action::Read, None), "not every namespace");
    assert!(!may(&grants, Action::Read, Some("team-c")));
    assert_eq!(
        namespaces_for(&grants, Action::Read),
        Namespaces::Only([A.to_string(), B.to_string()].into())
    );
    assert_eq!(
        namespaces_for(&grants, Action::Deploy),
        Namespaces::Only([A.to_string()].into())
    );
    let wider = [
        Grant::in_namespace(Role::Viewer, A),
        Grant::everywhere(Role::Viewer),
    ];
    assert_eq!(namespaces_for(&wider, Action::Read), Namespaces::All);
}

#[test]
fn somewhere_is_any_namespace_but_installation_actions_need_all() {
    let developer = [Grant::in_namespace(Role::Developer, A)];
    assert!(may_somewhere(&developer, Action::Deploy));
    assert!(may_somewhere(&developer, Action::ReadInfrastructure));
    assert!(!may_somewhere(&developer, Action::ManageInfrastructure));
    let namespaced_admin = [Grant::in_namespace(Role::Admin, A)];
    assert!(may_somewhere(&namespaced_admin, Action::Exec));
    assert!(!may_somewhere(&namespaced_admin, Action::ManageUsers));
    assert!(!may(&namespaced_admin, Action::ReadAudit, None));
    let operator = [Grant::everywhere(Role::Operator)];
    assert!(may_somewhere(&operator, Action::ManageInfrastructure));
    assert!(!may_somewhere(&operator, Action::ManageMembers));
}

#[test]
fn nothing_is_delegated_beyond_what_its_holder_may() {
    let admin = [Grant::everywhere(Role::Admin)];
    for role in Role::ALL {
        assert!(may_delegate(&admin, &Grant::everywhere(role)), "{role}");
        assert!(
            may_delegate(&admin, &Grant::in_namespace(role, B)),
            "{role}"
        );
    }
    let developer = [Grant::in_namespace(Role::Developer, A)];
    assert!(may_delegate(
        &developer,
        &Grant::in_namespace(Role::Developer, A)
    ));
    assert!(may_delegate(
        &developer,
        &Grant::in_namespace(Role::Viewer, A)
    ));
    assert!(!may_delegate(
        &developer,
        &Grant::in_namespace(Role::Developer, B)
    ));
    assert!(!may_delegate(&developer, &Grant::everywhere(Role::Viewer)));
    // An operator grant over one namespace only reads and replaces instances there: the
    // installation-wide part of the role needs an all-namespaces grant.
    assert!(may_delegate(
        &developer,
        &Grant::in_namespace(Role::Operator, A)
    ));
    assert!(!may_delegate(
        &developer,
        &Grant::everywhere(Role::Operator)
    ));
    // Likewise an admin grant over one namespace: there it allows what a developer may.
    assert!(may_delegate(
        &developer,
        &Grant::in_namespace(Role::Admin, A)
    ));
    assert!(!may_delegate(&developer, &Grant::everywhere(Role::Admin)));
    let operator = [Grant::everywhere(Role::Operator)];
    assert!(may_delegate(&operator, &Grant::everywhere(Role::Viewer)));
    assert!(may_delegate(&operator, &Grant::everywhere(Role::Operator)));
    assert!(!may_delegate(
        &operator,
        &Grant::in_namespace(Role::Developer, A)
    ));
    let viewer = [Grant::in_namespace(Role::Viewer, A)];
    assert!(may_delegate(&viewer, &Grant::in_namespace(Role::Viewer, A)));
    assert!(!may_delegate(
        &viewer,
        &Grant::in_namespace(Role::Developer, A)
    ));
    assert!(!may_delegate(&[], &Grant::in_namespace(Role::Viewer, A)));
}

#[test]
fn grants_cover_their_namespace_or_all() {
    assert!(Grant::everywhere(Role::Viewer).covers(None));
    assert!(Grant::everywhere(Role::Viewer).covers(Some(B)));
    assert!(Grant::in_namespace(Role::Viewer, A).covers(Some(A)));
    assert!(!Grant::in_namespace(Role::Viewer, A).covers(Some(B)));
    assert!(!Grant::in_namespace(Role::Viewer, A).covers(None));
    assert_eq!("developer".parse::<Role>(), Ok(Role::Developer));
    assert!("root".parse::<Role>().is_err());
}

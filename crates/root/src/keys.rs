//! Where each kind of record lives in the store. One place, so the layout can be read at a glance.

pub const APPLICATIONS: &str = "/apps/";
pub const INSTANCES: &str = "/instances/";
pub const CLUSTERS: &str = "/clusters/";
pub const NODES: &str = "/nodes/";
/// What the operator set (cordon, labels): kept apart from what clusters report, so a
/// report never overwrites it.
pub const OPERATOR_NODES: &str = "/operator/nodes/";
pub const OPERATOR_CLUSTERS: &str = "/operator/clusters/";
/// Namespaces and whether each is trusted.
pub const NAMESPACES: &str = "/namespaces/";
/// Secrets, values sealed; not in the event stream (see [`kind_of`]).
pub const SECRETS: &str = "/secrets/";

/// NGSI-LD subscriptions (`api::ngsild`), by id; not in the event stream.
pub const NGSILD_SUBSCRIPTIONS: &str = "/ngsild/subscriptions/";

/// Each service's rollout: revision history and pause.
pub const ROLLOUTS: &str = "/rollouts/";

pub fn rollout(namespace: &str, application: &str, service: &str) -> String {
    format!("{ROLLOUTS}{namespace}/{application}/{service}")
}

/// Each job service's jobs: their numbers, starts and ends.
pub const JOBS: &str = "/jobs/";

pub fn job(namespace: &str, application: &str, service: &str) -> String {
    format!("{JOBS}{namespace}/{application}/{service}")
}

/// Each autoscaled service's last scaling and the numbers that drove it (streamed).
pub const AUTOSCALE: &str = "/autoscale/";

pub fn autoscale(namespace: &str, application: &str, service: &str) -> String {
    format!("{AUTOSCALE}{namespace}/{application}/{service}")
}

pub fn application(namespace: &str, name: &str) -> String {
    format!("{APPLICATIONS}{namespace}/{name}")
}

pub fn applications_in(namespace: &str) -> String {
    format!("{APPLICATIONS}{namespace}/")
}

pub fn namespace(name: &str) -> String {
    format!("{NAMESPACES}{name}")
}

pub fn secret(namespace: &str, name: &str) -> String {
    format!("{SECRETS}{namespace}/{name}")
}

pub fn secrets_in(namespace: &str) -> String {
    format!("{SECRETS}{namespace}/")
}

pub fn instance(id: &str) -> String {
    format!("{INSTANCES}{id}")
}

pub fn node(cluster: &str, name: &str) -> String {
    format!("{NODES}{cluster}/{name}")
}

pub fn cluster(name: &str) -> String {
    format!("{CLUSTERS}{name}")
}

pub fn node_settings(cluster: &str, name: &str) -> String {
    format!("{OPERATOR_NODES}{cluster}/{name}")
}

pub fn cluster_settings(name: &str) -> String {
    format!("{OPERATOR_CLUSTERS}{name}")
}

/// What a store key names, for the event stream.
pub fn kind_of(key: &str) -> Option<&'static str> {
    [
        (APPLICATIONS, "application"),
        (INSTANCES, "instance"),
        (CLUSTERS, "cluster"),
        (NODES, "node"),
        (AUTOSCALE, "autoscale"),
    ]
    .into_iter()
    .find(|(prefix, _)| key.starts_with(prefix))
    .map(|(_, kind)| kind)
}

/// Users (name, password hash, grants): never in the event stream (`kind_of` knows them not).
pub const USERS: &str = "/auth/users/";
/// Login sessions and API tokens by id; deleting one revokes every token that names it.
pub const TOKENS: &str = "/auth/tokens/";
/// The root's token-signing key (Ed25519, PKCS#8).
pub const SIGNING_KEY: &str = "/auth/signing-key";

pub fn user(name: &str) -> String {
    format!("{USERS}{name}")
}

pub fn token(id: &str) -> String {
    format!("{TOKENS}{id}")
}

//! Where each kind of record lives in the store. One place, so the layout can be read at a glance.

pub const APPLICATIONS: &str = "/apps/";
pub const INSTANCES: &str = "/instances/";
pub const CLUSTERS: &str = "/clusters/";
pub const NODES: &str = "/nodes/";

pub fn application(namespace: &str, name: &str) -> String {
    format!("{APPLICATIONS}{namespace}/{name}")
}

pub fn applications_in(namespace: &str) -> String {
    format!("{APPLICATIONS}{namespace}/")
}

pub fn instance(id: &str) -> String {
    format!("{INSTANCES}{id}")
}

/// What a store key names, for the event stream.
pub fn kind_of(key: &str) -> Option<&'static str> {
    [
        (APPLICATIONS, "application"),
        (INSTANCES, "instance"),
        (CLUSTERS, "cluster"),
        (NODES, "node"),
    ]
    .into_iter()
    .find(|(prefix, _)| key.starts_with(prefix))
    .map(|(_, kind)| kind)
}

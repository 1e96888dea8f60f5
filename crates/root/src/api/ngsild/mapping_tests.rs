use super::*;
use serde_json::{Value, json};

fn node_info(state: &str, unschedulable: bool) -> NodeInfo {
    serde_json::from_value(json!({
        "name": "n1", "cluster": "edge", "state": state, "arch": "x86_64",
        "runtimes": ["container", "wasm"], "location": {"lat": 48.26, "lon": 11.67},
        "labels": {"zone": "a"},
        "capacity": {"cpuMillis": 4000, "memoryMib": 8192, "gpus": 0, "storageMib": 0},
        "allocated": {"cpuMillis": 1500, "memoryMib": 1024, "gpus": 0, "storageMib": 0},
        "instances": 3, "unschedulable": unschedulable,
        "usage": {"cpuMillis": 1000, "memoryBytes": 536870912u64},
        "joinedAt": "2026-01-01T00:00:00Z", "lastSeen": "2026-01-01T00:00:05Z"
    }))
    .unwrap()
}

fn attribute(scoped: &Scoped, name: &str) -> Value {
    scoped
        .entity
        .attributes
        .get(name)
        .cloned()
        .unwrap_or_else(|| panic!("no attribute {name}: {:?}", scoped.entity))
}

#[test]
fn a_node_is_an_infrastructure_element_of_its_domain() {
    let scoped = node(&node_info("Ready", false));
    assert_eq!(scoped.namespace, None);
    assert_eq!(scoped.entity.kind, "InfrastructureElement");
    assert_eq!(
        scoped.entity.id,
        "urn:ngsi-ld:InfrastructureElement:edge:n1"
    );
    assert_eq!(
        attribute(&scoped, "domain"),
        json!({"type": "Relationship", "object": "urn:ngsi-ld:Domain:edge"})
    );
    let value = |name| scoped.entity.value_of(name).cloned().unwrap();
    assert_eq!(value("cpuArchitecture"), json!("AMD64"));
    assert_eq!(value("cpuCores"), json!(4.0));
    assert_eq!(value("ramCapacity"), json!(8192));
    assert_eq!(value("availableRam"), json!(7168));
    assert_eq!(value("currentCpuUsage"), json!(25.0));
    assert_eq!(value("currentRamUsage"), json!(512));
    assert_eq!(value("infrastructureElementStatus"), json!("Ready"));
    assert_eq!(value("containerTechnology"), json!(["container", "wasm"]));
    assert_eq!(value("trustScore"), json!(1.0));
    assert_eq!(value("labels"), json!({"zone": "a"}));
    assert_eq!(
        attribute(&scoped, "location"),
        json!({"type": "GeoProperty", "value": {"type": "Point", "coordinates": [11.67, 48.26]}})
    );
}

#[test]
fn a_cordoned_node_is_in_maintenance_and_an_unreachable_one_disabled() {
    let cordoned = node(&node_info("Ready", true));
    assert_eq!(
        cordoned.entity.value_of("infrastructureElementStatus"),
        Some(&json!("Maintenance"))
    );
    let gone = node(&node_info("Unreachable", true));
    assert_eq!(
        gone.entity.value_of("infrastructureElementStatus"),
        Some(&json!("Disabled"))
    );
}

#[test]
fn a_cluster_is_a_domain() {
    let info: ClusterInfo = serde_json::from_value(json!({
        "name": "edge", "state": "Unreachable", "nodes": 2,
        "capacity": {"cpuMillis": 2500, "memoryMib": 4096, "gpus": 0, "storageMib": 0},
        "allocated": {"cpuMillis": 500, "memoryMib": 4096, "gpus": 0, "storageMib": 0},
        "joinedAt": "2026-01-01T00:00:00Z", "lastSeen": "2026-01-01T00:00:05Z"
    }))
    .unwrap();
    let scoped = cluster(&info);
    assert_eq!(scoped.entity.id, "urn:ngsi-ld:Domain:edge");
    assert_eq!(
        scoped.entity.value_of("domainStatus"),
        Some(&json!("Unreachable"))
    );
    assert_eq!(scoped.entity.value_of("cpuCores"), Some(&json!(2.5)));
    assert_eq!(scoped.entity.value_of("availableRam"), Some(&json!(0)));
    assert!(!scoped.entity.attributes.contains_key("location"));
    assert!(!scoped.entity.attributes.contains_key("labels"));
}

#[test]
fn an_instance_is_a_service_component_of_its_service_in_its_namespace() {
    let placed: Instance = serde_json::from_value(json!({
        "id": "web-0-abc", "namespace": "team-a", "application": "shop", "service": "web",
        "replica": 0, "generation": 1, "state": "BackOff", "reason": "exited 1",
        "cluster": "edge", "node": "n1", "restarts": 2,
        "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:05Z", "events": []
    }))
    .unwrap();
    let scoped = instance(&placed);
    assert_eq!(scoped.namespace.as_deref(), Some("team-a"));
    assert_eq!(scoped.entity.id, "urn:ngsi-ld:ServiceComponent:web-0-abc");
    assert_eq!(
        scoped.entity.value_of("service"),
        Some(&json!("urn:ngsi-ld:Service:team-a:shop:web"))
    );
    assert_eq!(
        scoped.entity.value_of("infrastructureElement"),
        Some(&json!("urn:ngsi-ld:InfrastructureElement:edge:n1"))
    );
    assert_eq!(
        scoped.entity.value_of("serviceComponentStatus"),
        Some(&json!("CrashLoopBackOff"))
    );
    assert_eq!(scoped.entity.value_of("restarts"), Some(&json!(2)));
    assert_eq!(scoped.entity.value_of("reason"), Some(&json!("exited 1")));

    let pending: Instance = serde_json::from_value(json!({
        "id": "web-1-def", "namespace": "team-a", "application": "shop", "service": "web",
        "replica": 1, "generation": 1, "state": "Pending",
        "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:05Z", "events": []
    }))
    .unwrap();
    let scoped = instance(&pending);
    assert!(
        !scoped
            .entity
            .attributes
            .contains_key("infrastructureElement")
    );
    assert!(!scoped.entity.attributes.contains_key("domain"));
}

#[test]
fn a_service_counts_its_replicas() {
    let view: ServiceView = serde_json::from_value(json!({
        "namespace": "team-a", "application": "shop", "name": "web", "runtime": "container",
        "artifact": "registry/web:1",
        "spec": {"name": "web", "runtime": "container", "image": "registry/web:1"},
        "status": {"name": "web", "desired": 3, "running": 2, "ready": 1, "pending": 1, "other": 0}
    }))
    .unwrap();
    let scoped = service(&view);
    assert_eq!(scoped.entity.id, "urn:ngsi-ld:Service:team-a:shop:web");
    assert_eq!(scoped.namespace.as_deref(), Some("team-a"));
    assert_eq!(scoped.entity.value_of("replicas"), Some(&json!(3)));
    assert_eq!(scoped.entity.value_of("runningReplicas"), Some(&json!(2)));
    assert_eq!(scoped.entity.value_of("readyReplicas"), Some(&json!(1)));
}

#[test]
fn architectures_take_the_data_model_names() {
    assert_eq!(architecture("aarch64"), "ARM64");
    assert_eq!(architecture("amd64"), "AMD64");
    assert_eq!(architecture("sparc"), "SPARC");
}

#[test]
fn every_type_and_attribute_has_a_term_in_canopys_context() {
    let document = crate::api::ngsild::context::document();
    let terms = document["@context"][0].as_object().unwrap();
    let mut entities = vec![node(&node_info("Ready", false))];
    entities.push(instance(
        &serde_json::from_value(json!({
            "id": "i", "namespace": "n", "application": "a", "service": "s", "replica": 0,
            "generation": 1, "state": "Running", "reason": "r", "cluster": "c", "node": "n1",
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:05Z"
        }))
        .unwrap(),
    ));
    for scoped in &entities {
        assert!(terms.contains_key(scoped.entity.kind));
        for name in scoped.entity.attributes.keys() {
            // `location` is the core context's.
            assert!(
                name == "location" || terms.contains_key(name),
                "{name} has no term"
            );
        }
    }
    for kind in TYPES {
        assert!(terms.contains_key(kind), "{kind}");
    }
}

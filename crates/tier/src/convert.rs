//! Between the model's types and the wire's.

use crate::pb;
use canopy_model::{GeoPoint, ResourceAmounts, SecretValues, ServiceSpec};
use canopy_sched::{ClusterView, Coordinate, NodeView};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// What an assignment asks a child to run; travels as JSON inside `Assign`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub namespace: String,
    pub application: String,
    pub service: String,
    pub replica: u32,
    pub spec: ServiceSpec,
}

impl Workload {
    pub fn to_assign(
        &self,
        instance_id: &str,
        generation: u64,
        secrets: &SecretValues,
    ) -> pb::Assign {
        pb::Assign {
            instance_id: instance_id.to_string(),
            generation,
            // Serialising plain data cannot fail; an empty payload would be rejected downstream.
            workload_json: serde_json::to_vec(self).unwrap_or_default(),
            secrets: secrets_to_pb(secrets),
        }
    }

    pub fn from_assign(assign: &pb::Assign) -> Result<Workload, crate::TierError> {
        serde_json::from_slice(&assign.workload_json).map_err(|e| {
            crate::TierError::Malformed(format!("assignment {}: {e}", assign.instance_id))
        })
    }
}

fn secrets_to_pb(secrets: &SecretValues) -> std::collections::HashMap<String, pb::SecretData> {
    secrets
        .iter()
        .map(|(name, data)| {
            let data = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            (name.clone(), pb::SecretData { data })
        })
        .collect()
}

pub fn secrets_from_pb(assign: &pb::Assign) -> SecretValues {
    assign
        .secrets
        .iter()
        .map(|(name, secret)| {
            let data = secret
                .data
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            (name.clone(), data)
        })
        .collect()
}

impl From<ResourceAmounts> for pb::Resources {
    fn from(r: ResourceAmounts) -> Self {
        pb::Resources {
            cpu_millis: r.cpu_millis,
            memory_mib: r.memory_mib,
            gpus: r.gpus,
            storage_mib: r.storage_mib,
        }
    }
}

impl From<pb::Resources> for ResourceAmounts {
    fn from(r: pb::Resources) -> Self {
        ResourceAmounts {
            cpu_millis: r.cpu_millis,
            memory_mib: r.memory_mib,
            gpus: r.gpus,
            storage_mib: r.storage_mib,
        }
    }
}

/// Runtime names as members report them; names this build does not know are skipped.
pub fn runtimes_from_pb(names: &[String]) -> Vec<canopy_model::RuntimeKind> {
    names.iter().filter_map(|name| name.parse().ok()).collect()
}

/// Sandbox names as members report them; names this build does not know are skipped.
pub fn sandboxes_from_pb(names: &[String]) -> Vec<canopy_model::Sandbox> {
    names.iter().filter_map(|name| name.parse().ok()).collect()
}

pub fn sandboxes_to_pb(sandboxes: &[canopy_model::Sandbox]) -> Vec<String> {
    sandboxes.iter().map(|s| s.as_str().to_string()).collect()
}

pub fn resources(r: Option<&pb::Resources>) -> ResourceAmounts {
    r.copied().map(ResourceAmounts::from).unwrap_or_default()
}

pub fn location_to_pb(point: Option<GeoPoint>) -> (Option<pb::GeoPoint>, bool) {
    match point {
        Some(p) => (
            Some(pb::GeoPoint {
                lat: p.lat,
                lon: p.lon,
            }),
            true,
        ),
        None => (None, false),
    }
}

pub fn location_from_pb(member: &pb::Member) -> Option<GeoPoint> {
    member
        .location
        .filter(|_| member.has_location)
        .map(|p| GeoPoint {
            lat: p.lat,
            lon: p.lon,
        })
}

pub fn unix_ms(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_unix_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn coordinate_to_pb(position: Option<(Coordinate, f64)>) -> Option<pb::Coordinate> {
    position.map(|(c, error)| pb::Coordinate {
        x: c.x,
        y: c.y,
        height: c.height,
        error,
    })
}

pub fn coordinate_from_pb(coordinate: Option<&pb::Coordinate>) -> Option<Coordinate> {
    coordinate
        .filter(|c| c.x.is_finite() && c.y.is_finite() && c.height.is_finite())
        .map(|c| Coordinate {
            x: c.x,
            y: c.y,
            height: c.height,
        })
}

fn positive(value: f64) -> Option<f64> {
    (value.is_finite() && value > 0.0).then_some(value)
}

/// A node as its cluster's scheduler sees it, from what the node said in its hello and
/// heartbeats; `allocated` and `ready` are the cluster's own view.
pub fn node_view(member: &pb::Member, ready: bool, allocated: ResourceAmounts) -> NodeView {
    NodeView {
        name: member.name.clone(),
        ready,
        arch: member.arch.clone(),
        runtimes: runtimes_from_pb(&member.runtimes),
        sandboxes: sandboxes_from_pb(&member.sandboxes),
        kvm: member.kvm,
        labels: member.labels.clone().into_iter().collect(),
        location: location_from_pb(member),
        capacity: resources(member.capacity.as_ref()),
        allocated,
        gpu_model: (!member.gpu_model.is_empty()).then(|| member.gpu_model.clone()),
        coordinate: coordinate_from_pb(member.coordinate.as_ref()),
        trust: if member.has_trust { member.trust } else { 1.0 },
        watts_per_core: positive(member.watts_per_core),
        carbon_g_per_kwh: positive(member.carbon_g_per_kwh),
        // What its cluster's placements hold there: filled by the cluster.
        host_ports: Default::default(),
        // The operator's cordon: applied by the cluster.
        unschedulable: false,
        volumes: member.volumes.iter().cloned().collect(),
    }
}

fn host_port_to_pb((port, protocol): &canopy_sched::HostPort) -> String {
    match protocol {
        canopy_model::Protocol::Tcp => format!("{port}/tcp"),
        canopy_model::Protocol::Udp => format!("{port}/udp"),
    }
}

fn host_port_from_pb(text: &str) -> Option<canopy_sched::HostPort> {
    let (port, protocol) = text.split_once('/')?;
    let protocol = match protocol {
        "tcp" => canopy_model::Protocol::Tcp,
        "udp" => canopy_model::Protocol::Udp,
        _ => return None,
    };
    Some((port.parse().ok()?, protocol))
}

/// A cluster summary (from [`canopy_sched::summarise`]) as it travels to the root.
pub fn summary_to_pb(view: &ClusterView) -> pb::Member {
    let (location, has_location) = location_to_pb(view.location);
    pb::Member {
        name: view.name.clone(),
        // A cluster spans architectures; they travel comma-separated.
        arch: view.arches.join(","),
        runtimes: view
            .runtimes
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
        sandboxes: sandboxes_to_pb(&view.sandboxes),
        kvm: view.kvm,
        capacity: Some(view.capacity.into()),
        allocated: Some(view.allocated.into()),
        labels: view.labels.clone().into_iter().collect(),
        location,
        has_location,
        max_node_free: Some(view.max_node_free.into()),
        node_count: view.node_count.unwrap_or(0),
        ready: view.ready,
        coordinate: coordinate_to_pb(view.coordinate.map(|c| (c, 0.0))),
        watts_per_core: view.watts_per_core.unwrap_or(0.0),
        carbon_g_per_kwh: view.carbon_g_per_kwh.unwrap_or(0.0),
        trust: view.trust,
        has_trust: true,
        node_labels: view
            .node_labels
            .iter()
            .flatten()
            .map(|(key, values)| pb::LabelValues {
                key: key.clone(),
                values: values.iter().cloned().collect(),
            })
            .collect(),
        gpu_models: view.gpu_models.iter().flatten().cloned().collect(),
        location_radius_km: view.location_radius_km,
        coordinate_radius_ms: view.coordinate_radius_ms,
        host_ports_taken_everywhere: view
            .host_ports_taken_everywhere
            .iter()
            .flatten()
            .map(host_port_to_pb)
            .collect(),
        ..pb::Member::default()
    }
}

/// The root's view of a cluster from its summary (the inverse of [`summary_to_pb`]).
pub fn summary_from_pb(member: &pb::Member) -> ClusterView {
    ClusterView {
        name: member.name.clone(),
        ready: member.ready,
        arches: member
            .arch
            .split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect(),
        runtimes: runtimes_from_pb(&member.runtimes),
        sandboxes: sandboxes_from_pb(&member.sandboxes),
        kvm: member.kvm,
        labels: member.labels.clone().into_iter().collect(),
        location: location_from_pb(member),
        capacity: resources(member.capacity.as_ref()),
        allocated: resources(member.allocated.as_ref()),
        max_node_free: resources(member.max_node_free.as_ref()),
        location_radius_km: member.location_radius_km,
        node_labels: Some(
            member
                .node_labels
                .iter()
                .map(|l| (l.key.clone(), l.values.iter().cloned().collect()))
                .collect(),
        ),
        gpu_models: Some(member.gpu_models.iter().cloned().collect()),
        node_count: Some(member.node_count),
        coordinate: coordinate_from_pb(member.coordinate.as_ref()),
        coordinate_radius_ms: member.coordinate_radius_ms,
        trust: if member.has_trust { member.trust } else { 1.0 },
        watts_per_core: positive(member.watts_per_core),
        carbon_g_per_kwh: positive(member.carbon_g_per_kwh),
        host_ports_taken_everywhere: Some(
            member
                .host_ports_taken_everywhere
                .iter()
                .filter_map(|p| host_port_from_pb(p))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports_survive_the_wire() {
        use canopy_model::Protocol::{Tcp, Udp};
        let view = ClusterView {
            host_ports_taken_everywhere: Some([(80, Tcp), (53, Udp)].into()),
            ..ClusterView::default()
        };
        let back = summary_from_pb(&summary_to_pb(&view));
        assert_eq!(
            back.host_ports_taken_everywhere,
            view.host_ports_taken_everywhere
        );
        assert_eq!(host_port_from_pb("80/sctp"), None);
    }

    #[test]
    fn runtime_names_parse_and_unknown_ones_are_skipped() {
        use canopy_model::RuntimeKind;
        let names = ["process", "unikernel", "wasm", "container"].map(String::from);
        assert_eq!(
            runtimes_from_pb(&names),
            vec![
                RuntimeKind::Process,
                RuntimeKind::Wasm,
                RuntimeKind::Container
            ]
        );
    }

    #[test]
    fn timestamps_keep_millisecond_precision() {
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap()
            + time::Duration::milliseconds(123);
        assert_eq!(from_unix_ms(unix_ms(at)), at);
    }
}

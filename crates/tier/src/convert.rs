//! Between the model's types and the wire's.

use crate::pb;
use canopy_model::{GeoPoint, InstanceState, ResourceAmounts, ServiceSpec};
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
    pub fn to_assign(&self, instance_id: &str, generation: u64) -> pb::Assign {
        pb::Assign {
            instance_id: instance_id.to_string(),
            generation,
            // Serialising plain data cannot fail; an empty payload would be rejected downstream.
            workload_json: serde_json::to_vec(self).unwrap_or_default(),
        }
    }

    pub fn from_assign(assign: &pb::Assign) -> Result<Workload, crate::TierError> {
        serde_json::from_slice(&assign.workload_json).map_err(|e| {
            crate::TierError::Malformed(format!("assignment {}: {e}", assign.instance_id))
        })
    }
}

pub fn state_to_pb(state: InstanceState) -> pb::State {
    match state {
        InstanceState::Pending => pb::State::Pending,
        InstanceState::ClusterScheduled => pb::State::ClusterScheduled,
        InstanceState::NodeScheduled => pb::State::NodeScheduled,
        InstanceState::Starting => pb::State::Starting,
        InstanceState::Running => pb::State::Running,
        InstanceState::Succeeded => pb::State::Succeeded,
        InstanceState::Failed => pb::State::Failed,
        InstanceState::Lost => pb::State::Lost,
        InstanceState::Terminating => pb::State::Terminating,
        InstanceState::Terminated => pb::State::Terminated,
    }
}

/// `None` for states that are not instance states (unspecified, rejected).
pub fn state_from_pb(state: pb::State) -> Option<InstanceState> {
    Some(match state {
        pb::State::Pending => InstanceState::Pending,
        pb::State::ClusterScheduled => InstanceState::ClusterScheduled,
        pb::State::NodeScheduled => InstanceState::NodeScheduled,
        pb::State::Starting => InstanceState::Starting,
        pb::State::Running => InstanceState::Running,
        pb::State::Succeeded => InstanceState::Succeeded,
        pb::State::Failed => InstanceState::Failed,
        pb::State::Lost => InstanceState::Lost,
        pb::State::Terminating => InstanceState::Terminating,
        pb::State::Terminated => InstanceState::Terminated,
        pb::State::Unspecified | pb::State::Rejected => return None,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_survives_the_wire() {
        use InstanceState::*;
        for state in [
            Pending,
            ClusterScheduled,
            NodeScheduled,
            Starting,
            Running,
            Succeeded,
            Failed,
            Lost,
            Terminating,
            Terminated,
        ] {
            assert_eq!(state_from_pb(state_to_pb(state)), Some(state));
        }
        assert_eq!(state_from_pb(pb::State::Rejected), None);
        assert_eq!(state_from_pb(pb::State::Unspecified), None);
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

//! What the root persists and what its API returns.

use canopy_model::{Application, InstanceState, RuntimeKind};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// An accepted application with the bookkeeping the root adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRecord {
    pub uid: String,
    /// Bumped on every change of the spec.
    pub generation: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub application: Application,
}

/// An application as the API shows it: the descriptor plus its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationView {
    #[serde(flatten)]
    pub application: Application,
    pub status: ApplicationStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    pub uid: String,
    pub generation: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: OffsetDateTime,
    pub services: Vec<ServiceStatus>,
}

/// Replica counts of one service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub name: String,
    pub desired: u32,
    pub running: u32,
    /// Running and passing their readiness probes (where they have one): available.
    #[serde(default)]
    pub ready: u32,
    pub pending: u32,
    /// Instances in any other live state (scheduled, starting, terminating).
    pub other: u32,
    /// A job service's latest job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<crate::desired::JobStatus>,
    /// An autoscaled service's last scaling, with the numbers that drove it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<crate::desired::ScalingEvent>,
}

/// A service as the API shows it, flattened out of its application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    pub namespace: String,
    pub application: String,
    pub name: String,
    pub runtime: RuntimeKind,
    /// Image, module or command, whichever the runtime uses.
    pub artifact: String,
    pub spec: canopy_model::ServiceSpec,
    pub status: ServiceStatus,
}

impl ApplicationView {
    /// As the API answers it. Descriptors hold no secret value (they name secrets), so
    /// nothing is left to hide; kept so every answer passes one place.
    pub fn redacted(self) -> ApplicationView {
        self
    }
}

impl ServiceView {
    /// See [`ApplicationView::redacted`].
    pub fn redacted(self) -> ServiceView {
        self
    }
}

/// What `apply` did to one application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApplyAction {
    Created,
    Configured,
    Unchanged,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedApplication {
    pub namespace: String,
    pub name: String,
    pub action: ApplyAction,
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResult {
    pub applications: Vec<AppliedApplication>,
    /// Things accepted but worth knowing, e.g. imported fields kept as annotations.
    pub warnings: Vec<canopy_model::FieldError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScaleRequest {
    #[serde(deserialize_with = "canopy_model::integer::integral")]
    #[schema(schema_with = scale_replicas)]
    pub replicas: u32,
}

fn scale_replicas() -> utoipa::openapi::schema::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Integer)
        .minimum(Some(0))
        .maximum(Some(canopy_model::limits::MAX_REPLICAS))
        .build()
}

/// Counts instance states into a service status.
pub fn tally(
    name: &str,
    desired: u32,
    states: impl IntoIterator<Item = InstanceState>,
) -> ServiceStatus {
    let mut status = ServiceStatus {
        name: name.to_string(),
        desired,
        ..ServiceStatus::default()
    };
    for state in states {
        match state {
            InstanceState::Running => status.running += 1,
            InstanceState::Pending => status.pending += 1,
            state if state.is_final() => {}
            _ => status.other += 1,
        }
    }
    status
}

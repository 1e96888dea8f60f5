//! The views the API returns: an application or a service with the status of its instances.

use super::jobs::{JobRecords, job_status};
use super::scaling::ScalingEvents;
use crate::keys;
use crate::records::{ApplicationRecord, ApplicationStatus, ApplicationView, ServiceView, tally};
use canopy_model::{Instance, RuntimeKind, ServiceSpec};

pub(super) fn view_of(
    record: ApplicationRecord,
    instances: &[Instance],
    jobs: &JobRecords,
    scaling: &ScalingEvents,
) -> ApplicationView {
    let metadata = &record.application.metadata;
    let services = record
        .application
        .spec
        .services
        .iter()
        .map(|spec| {
            let status = service_status(&metadata.namespace, &metadata.name, spec, instances, jobs);
            with_scaling(status, &metadata.namespace, &metadata.name, spec, scaling)
        })
        .collect();
    ApplicationView {
        status: ApplicationStatus {
            uid: record.uid,
            generation: record.generation,
            created_at: record.created_at,
            updated_at: record.updated_at,
            services,
        },
        application: record.application,
    }
}

fn service_status(
    namespace: &str,
    application: &str,
    spec: &ServiceSpec,
    instances: &[Instance],
    jobs: &JobRecords,
) -> crate::records::ServiceStatus {
    let own: Vec<&Instance> = instances
        .iter()
        .filter(|i| {
            i.namespace == namespace && i.application == application && i.service == spec.name
        })
        .collect();
    let mut status = tally(
        &spec.name,
        spec.replicas,
        own.iter().map(|i| i.shown_state()),
    );
    status.ready = own
        .iter()
        .filter(|i| i.ready && i.shown_state() == canopy_model::InstanceState::Running)
        .count() as u32;
    if let Some(job) = &spec.job {
        let record = jobs.get(&keys::job(namespace, application, &spec.name));
        status.job = Some(job_status(spec, job, record, &own));
        // A job wants its runs, not replicas.
        status.desired = job.completions;
    }
    status
}

/// The autoscaler's last change, for a service that autoscales.
fn with_scaling(
    mut status: crate::records::ServiceStatus,
    namespace: &str,
    application: &str,
    spec: &ServiceSpec,
    scaling: &ScalingEvents,
) -> crate::records::ServiceStatus {
    if spec.autoscale.is_some() {
        let key = keys::autoscale(namespace, application, &spec.name);
        status.autoscale = scaling.get(&key).cloned();
    }
    status
}

pub(super) fn service_view(
    namespace: &str,
    application: &str,
    spec: &ServiceSpec,
    instances: &[Instance],
    jobs: &JobRecords,
    scaling: &ScalingEvents,
) -> ServiceView {
    let artifact = match spec.runtime {
        RuntimeKind::Container => spec.image.clone().unwrap_or_default(),
        RuntimeKind::Wasm => spec.module.clone().unwrap_or_default(),
        RuntimeKind::Process => spec.command.join(" "),
        RuntimeKind::Vm => spec
            .vm
            .as_ref()
            .map(|v| v.kernel.clone())
            .unwrap_or_default(),
    };
    ServiceView {
        namespace: namespace.to_string(),
        application: application.to_string(),
        name: spec.name.clone(),
        runtime: spec.runtime,
        artifact,
        status: with_scaling(
            service_status(namespace, application, spec, instances, jobs),
            namespace,
            application,
            spec,
            scaling,
        ),
        spec: spec.clone(),
    }
}

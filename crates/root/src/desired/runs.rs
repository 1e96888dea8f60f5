//! Jobs started on demand (`canopy run APP/SERVICE -- ARGS`, `POST .../runs`): a new job of
//! a job service whose runs take the given arguments in place of the service's, a function
//! called by an API request.

use super::jobs::JobRecord;
use super::{CAS_ATTEMPTS, Desired, InstanceFilter, RootError, not_found, to_json};
use crate::keys;
use canopy_model::{DescriptorError, Instance, RunRequest};
use canopy_store::{Op, Precondition, StoreError, StoreExt};
use time::OffsetDateTime;

impl Desired {
    /// Starts a job of service `namespace/application/service` with `request`'s arguments;
    /// its first run (index 0), as created.
    pub async fn start_run(
        &self,
        namespace: &str,
        application: &str,
        service: &str,
        request: &RunRequest,
    ) -> Result<Instance, RootError> {
        let errors = canopy_model::validate_words("args", &request.args);
        if !errors.is_empty() {
            return Err(RootError::Invalid(DescriptorError { errors }));
        }
        let (record, _) = self.record(namespace, application).await?;
        let spec = record
            .application
            .spec
            .services
            .iter()
            .find(|s| s.name == service)
            .ok_or_else(|| not_found("service", format!("{namespace}/{application}/{service}")))?;
        if spec.job.is_none() {
            return Err(RootError::Conflict(format!(
                "service {application}/{service} is not a job: only a service with a `job` \
                 section has runs"
            )));
        }
        let hash = spec.template_hash();
        let key = keys::job(namespace, application, service);
        let mut attempt = 0;
        let number = loop {
            attempt += 1;
            let now = OffsetDateTime::now_utc();
            let (mut jobs, precondition) = match self.store.get_json::<JobRecord>(&key).await? {
                Some((stored, revision)) if stored.template_hash == hash => {
                    (stored, Precondition::ModRevision(revision))
                }
                Some((_, revision)) => (
                    JobRecord::new(&hash, now),
                    Precondition::ModRevision(revision),
                ),
                None => (JobRecord::new(&hash, now), Precondition::Absent),
            };
            let number = jobs.begin(now, None, Some(request.args.clone()));
            let put = Op::Put {
                key: key.clone(),
                value: to_json(&jobs)?,
                precondition,
            };
            match self.store.txn(vec![put]).await {
                Ok(_) => break number,
                Err(StoreError::Conflict { .. }) if attempt < CAS_ATTEMPTS => {}
                Err(e) => return Err(e.into()),
            }
        };
        self.reconcile_application(namespace, application).await?;
        self.list_instances(&InstanceFilter {
            namespace: Some(namespace.to_string()),
            application: Some(application.to_string()),
            service: Some(service.to_string()),
            ..InstanceFilter::default()
        })
        .await?
        .into_iter()
        .filter(|i| i.job == Some(number))
        .min_by_key(|i| i.replica)
        .ok_or_else(|| {
            RootError::Conflict(format!(
                "job {number} of {application}/{service} started no run"
            ))
        })
    }
}

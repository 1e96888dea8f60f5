//! Applications and their services as users submitted them: apply, create, replace, delete,
//! scale, and reading them back with their status.

use super::reconcile::random_suffix;
use super::views::{service_view, view_of};
use super::{CAS_ATTEMPTS, Desired, InstanceFilter, RootError, not_found, to_json};
use crate::keys;
use crate::records::{
    ApplicationRecord, ApplicationView, AppliedApplication, ApplyAction, ApplyResult, ServiceView,
};
use canopy_model::{Application, DescriptorError, FieldError};
use canopy_store::{Op, Precondition, StoreError, StoreExt};
use time::OffsetDateTime;

impl Desired {
    /// Creates or updates every application of a descriptor in one transaction (kubectl apply).
    pub async fn apply(
        &self,
        applications: Vec<Application>,
        warnings: Vec<FieldError>,
    ) -> Result<ApplyResult, RootError> {
        let mut attempt = 0;
        let applied = loop {
            attempt += 1;
            let mut ops = Vec::new();
            let mut applied = Vec::new();
            for app in &applications {
                let (op, result) = self.plan_write(app.clone(), WriteMode::Upsert).await?;
                ops.extend(op);
                applied.push(result);
            }
            match self.store.txn(ops).await {
                Ok(_) => break applied,
                Err(StoreError::Conflict { .. }) if attempt < CAS_ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        };
        for app in &applied {
            self.reconcile_application(&app.namespace, &app.name)
                .await?;
        }
        Ok(ApplyResult {
            applications: applied,
            warnings,
        })
    }

    /// What [`Desired::apply`] would do, after every check it makes, writing nothing
    /// (`kubectl apply --dry-run=server`).
    pub async fn apply_dry_run(
        &self,
        applications: Vec<Application>,
        warnings: Vec<FieldError>,
    ) -> Result<ApplyResult, RootError> {
        let mut applied = Vec::new();
        for app in applications {
            let (_, result) = self.plan_write(app, WriteMode::Upsert).await?;
            applied.push(result);
        }
        Ok(ApplyResult {
            applications: applied,
            warnings,
        })
    }

    /// Creates one application; a conflict if it exists.
    pub async fn create(&self, app: Application) -> Result<ApplicationView, RootError> {
        let (namespace, name) = (app.metadata.namespace.clone(), app.metadata.name.clone());
        let (op, _) = self.plan_write(app, WriteMode::CreateOnly).await?;
        match self.store.txn(op.into_iter().collect()).await {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(RootError::Conflict(format!(
                    "application {namespace}/{name} already exists"
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.reconcile_application(&namespace, &name).await?;
        self.get_application(&namespace, &name).await
    }

    /// Creates or replaces one application; says whether it was created.
    pub async fn replace(&self, app: Application) -> Result<(ApplicationView, bool), RootError> {
        let (namespace, name) = (app.metadata.namespace.clone(), app.metadata.name.clone());
        let result = self.apply(vec![app], Vec::new()).await?;
        let created = result
            .applications
            .first()
            .is_some_and(|a| a.action == ApplyAction::Created);
        Ok((self.get_application(&namespace, &name).await?, created))
    }

    async fn plan_write(
        &self,
        application: Application,
        mode: WriteMode,
    ) -> Result<(Option<Op>, AppliedApplication), RootError> {
        let mut application = application;
        let (namespace, name) = (
            application.metadata.namespace.clone(),
            application.metadata.name.clone(),
        );
        let key = keys::application(&namespace, &name);
        let now = OffsetDateTime::now_utc();
        let existing = self.store.get_json::<ApplicationRecord>(&key).await?;
        if let Some((old, _)) = &existing {
            keep_autoscaled_replicas(&old.application, &mut application);
        }
        self.admit(&application).await?;
        let (record, precondition, action) = match existing {
            Some((_, _)) if mode == WriteMode::CreateOnly => {
                return Err(RootError::Conflict(format!(
                    "application {namespace}/{name} already exists"
                )));
            }
            Some((old, _)) if lowercased_onto(&old.application, &application) => {
                let original = original_name(&application).unwrap_or_default();
                return Err(RootError::Conflict(format!(
                    "application {original:?} lowercases to {namespace}/{name}, which is another \
                     application ({:?}): rename one of them",
                    original_name(&old.application).unwrap_or(&old.application.metadata.name)
                )));
            }
            Some((old, _)) if old.application == application => {
                let applied = AppliedApplication {
                    namespace,
                    name,
                    action: ApplyAction::Unchanged,
                    generation: old.generation,
                };
                return Ok((None, applied));
            }
            Some((old, revision)) => (
                ApplicationRecord {
                    generation: old.generation + 1,
                    updated_at: now,
                    application,
                    ..old
                },
                Precondition::ModRevision(revision),
                ApplyAction::Configured,
            ),
            None => (
                ApplicationRecord {
                    uid: random_suffix(12),
                    generation: 1,
                    created_at: now,
                    updated_at: now,
                    application,
                },
                Precondition::Absent,
                ApplyAction::Created,
            ),
        };
        let op = Op::Put {
            key,
            value: to_json(&record)?,
            precondition,
        };
        let applied = AppliedApplication {
            namespace,
            name,
            action,
            generation: record.generation,
        };
        Ok((Some(op), applied))
    }

    pub async fn delete(&self, namespace: &str, name: &str) -> Result<ApplicationView, RootError> {
        let view = self.get_application(namespace, name).await?;
        self.store
            .delete(&keys::application(namespace, name), Precondition::None)
            .await?;
        self.reconcile_application(namespace, name).await?;
        Ok(view)
    }

    /// Sets one service's replica count, keeping the rest of the application as it is.
    pub async fn scale(
        &self,
        namespace: &str,
        application: &str,
        service: &str,
        replicas: u32,
    ) -> Result<ServiceView, RootError> {
        self.scale_from(namespace, application, service, None, replicas)
            .await
    }

    /// [`Desired::scale`], only while the count is still `expected` (when given): the
    /// autoscaler's change never overwrites one made since it decided.
    pub(super) async fn scale_from(
        &self,
        namespace: &str,
        application: &str,
        service: &str,
        expected: Option<u32>,
        replicas: u32,
    ) -> Result<ServiceView, RootError> {
        if replicas > canopy_model::limits::MAX_REPLICAS {
            return Err(RootError::Invalid(DescriptorError {
                errors: vec![FieldError::new(
                    "replicas",
                    format!("must be <= {}", canopy_model::limits::MAX_REPLICAS),
                )],
            }));
        }
        let key = keys::application(namespace, application);
        for _ in 0..CAS_ATTEMPTS {
            let (mut record, revision) = self.record(namespace, application).await?;
            let spec = record
                .application
                .spec
                .services
                .iter_mut()
                .find(|s| s.name == service)
                .ok_or_else(|| {
                    not_found("service", format!("{namespace}/{application}/{service}"))
                })?;
            if let Some(expected) = expected
                && spec.replicas != expected
            {
                return Err(RootError::Conflict(format!(
                    "{namespace}/{application}/{service} has {} replicas now, not {expected}",
                    spec.replicas
                )));
            }
            if spec.replicas != replicas {
                let more = replicas > spec.replicas;
                spec.replicas = replicas;
                // Scaling down is always allowed, even over a quota set later.
                if more {
                    self.admit_quota(&record.application).await?;
                }
                record.generation += 1;
                record.updated_at = OffsetDateTime::now_utc();
                let value = to_json(&record)?;
                match self
                    .store
                    .put(&key, value, Precondition::ModRevision(revision))
                    .await
                {
                    Ok(_) => {}
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            self.reconcile_application(namespace, application).await?;
            return self.get_service(namespace, application, service).await;
        }
        Err(RootError::Conflict(format!(
            "application {namespace}/{application} is being changed concurrently; try again"
        )))
    }

    pub async fn get_application(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<ApplicationView, RootError> {
        let (record, _) = self.record(namespace, name).await?;
        let instances = self
            .list_instances(&InstanceFilter {
                namespace: Some(namespace.to_string()),
                application: Some(name.to_string()),
                ..InstanceFilter::default()
            })
            .await?;
        let jobs = self.job_records().await?;
        let scaling = self.scaling_events().await?;
        Ok(view_of(record, &instances, &jobs, &scaling))
    }

    pub async fn list_applications(
        &self,
        namespace: Option<&str>,
    ) -> Result<Vec<ApplicationView>, RootError> {
        let records = self.records(namespace).await?;
        let instances = self
            .list_instances(&InstanceFilter {
                namespace: namespace.map(str::to_string),
                ..InstanceFilter::default()
            })
            .await?;
        let jobs = self.job_records().await?;
        let scaling = self.scaling_events().await?;
        Ok(records
            .into_iter()
            .map(|record| view_of(record, &instances, &jobs, &scaling))
            .collect())
    }

    pub async fn list_services(
        &self,
        namespace: Option<&str>,
        application: Option<&str>,
    ) -> Result<Vec<ServiceView>, RootError> {
        let records = self.records(namespace).await?;
        let instances = self
            .list_instances(&InstanceFilter {
                namespace: namespace.map(str::to_string),
                application: application.map(str::to_string),
                ..InstanceFilter::default()
            })
            .await?;
        let jobs = self.job_records().await?;
        let scaling = self.scaling_events().await?;
        Ok(records
            .iter()
            .filter(|r| application.is_none_or(|a| a == r.application.metadata.name))
            .flat_map(|record| {
                let metadata = &record.application.metadata;
                record.application.spec.services.iter().map(|spec| {
                    let (namespace, name) = (&metadata.namespace, &metadata.name);
                    service_view(namespace, name, spec, &instances, &jobs, &scaling)
                })
            })
            .collect())
    }

    pub async fn get_service(
        &self,
        namespace: &str,
        application: &str,
        service: &str,
    ) -> Result<ServiceView, RootError> {
        self.list_services(Some(namespace), Some(application))
            .await?
            .into_iter()
            .find(|s| s.name == service)
            .ok_or_else(|| not_found("service", format!("{namespace}/{application}/{service}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteMode {
    CreateOnly,
    Upsert,
}

/// A service that autoscaled before and still does keeps the count its autoscaler set (in
/// the new `min..=max`, or 0 if scaled to 0): `replicas` is only the starting point, so an
/// unchanged descriptor applied again changes nothing.
fn keep_autoscaled_replicas(existing: &Application, incoming: &mut Application) {
    for service in &mut incoming.spec.services {
        let Some(autoscale) = &service.autoscale else {
            continue;
        };
        if let Some(old) = existing
            .spec
            .services
            .iter()
            .find(|s| s.name == service.name && s.autoscale.is_some())
        {
            // Scaled to 0 by hand, it stays off.
            service.replicas = match old.replicas {
                0 => 0,
                replicas => autoscale.clamp(replicas),
            };
        }
    }
}

/// The name an imported application had before it was lowercased, if it was.
fn original_name(application: &Application) -> Option<&str> {
    application
        .metadata
        .annotations
        .get(ORIGINAL_NAME)
        .map(String::as_str)
}

/// Whether `incoming` only took `existing`'s name by being lowercased (`MyApp` over a native
/// `myapp`, or over an imported `MYAPP`): two applications, not one updated.
fn lowercased_onto(existing: &Application, incoming: &Application) -> bool {
    original_name(incoming).is_some() && original_name(existing) != original_name(incoming)
}

/// Where the Oakestra import keeps an application's name as it was given.
const ORIGINAL_NAME: &str = "oakestra.io/application_name";

//! Job services in reconciliation: what the root keeps of each one's jobs (one for a job, one
//! per scheduled start for a cron job), and the store writes that follow the decisions of the
//! job core (`job.rs`) and the cron scheduler (`cron.rs`). A changed spec starts afresh.

use super::cron::{self, JobSeen, Schedule};
use super::job::{self, Finished, Outcome, Run, RunPhase};
use super::{Desired, RootError, reconcile, to_json};
use crate::keys;
use crate::records::ApplicationRecord;
use canopy_model::{Instance, InstanceState, JobSpec, ServiceSpec};
use canopy_store::{Op, Precondition, Revision, StoreExt};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// What the root keeps of one job service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    /// The spec these jobs run; another one starts afresh.
    pub template_hash: String,
    /// When this spec was first seen: a schedule first fires after it.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// The last due time of the schedule that was handled (started or skipped).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_scheduled: Option<OffsetDateTime>,
    /// The number of the newest job; numbers are never reused.
    pub last_number: u64,
    /// Oldest first.
    pub jobs: Vec<JobEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobEntry {
    pub number: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// The due time it was started for (cron jobs).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub scheduled_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Finished>,
    /// Indexes done and failures so far (kept once its runs are removed).
    pub succeeded: u32,
    pub failed: u32,
    /// A job started on demand: its runs' arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
}

impl JobRecord {
    pub(super) fn new(hash: &str, now: OffsetDateTime) -> JobRecord {
        JobRecord {
            template_hash: hash.to_string(),
            since: now,
            last_scheduled: None,
            last_number: 0,
            jobs: Vec::new(),
        }
    }

    pub(super) fn begin(
        &mut self,
        now: OffsetDateTime,
        scheduled_at: Option<OffsetDateTime>,
        args: Option<Vec<String>>,
    ) -> u64 {
        self.last_number += 1;
        self.jobs.push(JobEntry {
            number: self.last_number,
            started_at: now,
            scheduled_at,
            finished: None,
            succeeded: 0,
            failed: 0,
            args,
        });
        self.last_number
    }
}

/// A job service's latest job as the API shows it (`status.job` of a service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    /// The latest job's number (0: none started yet, a schedule not due so far).
    pub number: u64,
    /// `Waiting` (no job yet), `Active`, `Complete` or `Failed`.
    pub phase: String,
    pub completions: u32,
    /// Indexes with a successful run.
    pub succeeded: u32,
    /// Failed runs and restarts in place.
    pub failed: u32,
    /// Runs placed, starting or running.
    pub active: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started_at: Option<OffsetDateTime>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<OffsetDateTime>,
    /// Jobs kept (a cron job's history and the running ones).
    pub jobs: u32,
    /// When the schedule fires next (cron jobs).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_schedule: Option<OffsetDateTime>,
}

/// The status of a job service (`spec`, whose `job` is `job`) from its record (if any, and
/// if of this spec) and its instances.
pub fn job_status(
    spec: &ServiceSpec,
    job: &JobSpec,
    record: Option<&JobRecord>,
    instances: &[&Instance],
) -> JobStatus {
    let hash = spec.template_hash();
    let record = record.filter(|r| r.template_hash == hash);
    let latest = record.and_then(|r| r.jobs.last());
    let runs: Vec<Run> = latest.map_or_else(Vec::new, |entry| {
        instances
            .iter()
            .filter(|i| i.template_hash == hash && i.job == Some(entry.number))
            .map(|i| run_of(i))
            .collect()
    });
    let counts = job::counts(&runs);
    let next_schedule = job.schedule.as_deref().and_then(|text| {
        let schedule = Schedule::parse(text).ok()?;
        let after = record.map(|r| r.last_scheduled.unwrap_or(r.since))?;
        schedule.next_after(after)
    });
    JobStatus {
        number: latest.map_or(0, |e| e.number),
        phase: match latest.map(|e| e.finished.as_ref().map(|f| f.outcome)) {
            None => "Waiting",
            Some(None) => "Active",
            Some(Some(Outcome::Complete)) => "Complete",
            Some(Some(Outcome::Failed)) => "Failed",
        }
        .to_string(),
        completions: job.completions,
        succeeded: latest.map_or(0, |e| e.succeeded.max(counts.succeeded)),
        failed: latest.map_or(0, |e| e.failed.max(counts.failed)),
        active: counts.active,
        reason: latest.and_then(|e| e.finished.as_ref().map(|f| f.reason.clone())),
        started_at: latest.map(|e| e.started_at),
        finished_at: latest.and_then(|e| e.finished.as_ref().map(|f| f.at)),
        jobs: record.map_or(0, |r| u32::try_from(r.jobs.len()).unwrap_or(u32::MAX)),
        next_schedule,
    }
}

/// What a run is to its job.
pub(super) fn run_of(instance: &Instance) -> Run {
    let phase = match instance.shown_state() {
        InstanceState::Succeeded => RunPhase::Succeeded,
        InstanceState::Failed => RunPhase::Failed,
        InstanceState::Terminating | InstanceState::Terminated | InstanceState::Lost => {
            RunPhase::Gone
        }
        _ => RunPhase::Active,
    };
    let ended = matches!(phase, RunPhase::Succeeded | RunPhase::Failed);
    Run {
        index: instance.replica,
        phase,
        restarts: instance.restarts,
        ended_at: ended.then(|| {
            instance
                .last_termination
                .as_ref()
                .map_or(instance.updated_at, |t| t.at)
        }),
    }
}

/// Every job service's record, by its store key ([`keys::job`]).
pub type JobRecords = std::collections::BTreeMap<String, JobRecord>;

impl Desired {
    /// Every job service's record (for the views).
    pub(super) async fn job_records(&self) -> Result<JobRecords, RootError> {
        let (records, _) = self.store.list_json::<JobRecord>(keys::JOBS).await?;
        Ok(records
            .into_iter()
            .map(|(key, record, _)| (key, record))
            .collect())
    }

    /// Reconciles every application with a job whose progress depends on the clock (a
    /// schedule, a deadline, a time to live, a back-off after a failure); the federation
    /// calls it every second.
    pub async fn reconcile_timed_jobs(&self) -> Result<(), RootError> {
        let records = self.job_records().await?;
        // A job still running with failures may be waiting out its back-off.
        let backing_off = |namespace: &str, application: &str, service: &str| {
            records
                .get(&keys::job(namespace, application, service))
                .is_some_and(|r| r.jobs.iter().any(|j| j.finished.is_none() && j.failed > 0))
        };
        let timed: Vec<(String, String)> = self
            .records(None)
            .await?
            .into_iter()
            .filter(|r| {
                let metadata = &r.application.metadata;
                r.application.spec.services.iter().any(|s| {
                    s.job.as_ref().is_some_and(|j| {
                        j.schedule.is_some()
                            || j.active_deadline_seconds.is_some()
                            || j.ttl_seconds_after_finished.is_some()
                            || backing_off(&metadata.namespace, &metadata.name, &s.name)
                    })
                })
            })
            .map(|r| {
                (
                    r.application.metadata.namespace,
                    r.application.metadata.name,
                )
            })
            .collect();
        for (namespace, name) in timed {
            if let Err(e) = self.reconcile_application(&namespace, &name).await {
                tracing::warn!(application = %name, error = %e, "reconciling a timed job failed");
            }
        }
        Ok(())
    }

    /// The store writes that move one job service along: its record, new runs, stops and
    /// removals.
    pub(super) async fn job_ops(
        &self,
        record: &ApplicationRecord,
        spec: &ServiceSpec,
        job: &JobSpec,
        entries: &[&(Instance, Revision)],
        now: OffsetDateTime,
    ) -> Result<Vec<Op>, RootError> {
        let metadata = &record.application.metadata;
        let hash = spec.template_hash();
        let key = keys::job(&metadata.namespace, &metadata.name, &spec.name);
        // A record of another spec is replaced (the job starts afresh), so written.
        let (mut jobs, at, fresh) = match self.store.get_json::<JobRecord>(&key).await? {
            Some((stored, revision)) if stored.template_hash == hash => {
                (stored, Some(revision), false)
            }
            Some((_, revision)) => (JobRecord::new(&hash, now), Some(revision), true),
            None => (JobRecord::new(&hash, now), None, true),
        };
        let before = jobs.clone();
        schedule(&mut jobs, job, now);

        let mut ops = Vec::new();
        let mut claimed = vec![false; entries.len()];
        for entry in &mut jobs.jobs {
            let mine: Vec<usize> = (0..entries.len())
                .filter(|&k| {
                    let instance = &entries[k].0;
                    instance.template_hash == hash && instance.job == Some(entry.number)
                })
                .collect();
            let runs: Vec<Run> = mine.iter().map(|&k| run_of(&entries[k].0)).collect();
            let step = job::step(
                job,
                entry.started_at,
                entry.finished.as_ref(),
                &runs,
                self.job_backoff(),
                now,
            );
            if entry.finished.is_none() {
                let counts = job::counts(&runs);
                entry.succeeded = counts.succeeded;
                entry.failed = counts.failed;
            }
            if let Some(finished) = step.finished {
                entry.finished = Some(finished);
            }
            for &k in &mine {
                claimed[k] = true;
                let (instance, revision) = entries[k];
                let phase = run_of(instance).phase;
                let stop = step.expired || (step.stop_active && phase == RunPhase::Active);
                if let Some(op) = remove(instance, *revision, stop, now)? {
                    ops.push(op);
                }
            }
            for index in step.start {
                let mut instance = reconcile::new_instance(record, spec, index, now);
                instance.job = Some(entry.number);
                instance.args.clone_from(&entry.args);
                ops.push(Op::Put {
                    key: keys::instance(&instance.id),
                    value: to_json(&instance)?,
                    precondition: Precondition::Absent,
                });
            }
        }
        // Runs of an older spec, or of a job no longer kept.
        for (k, (instance, revision)) in entries.iter().map(|e| (&e.0, e.1)).enumerate() {
            if !claimed[k]
                && let Some(op) = remove(instance, revision, true, now)?
            {
                ops.push(op);
            }
        }
        if fresh || jobs != before {
            ops.push(Op::Put {
                key,
                value: to_json(&jobs)?,
                precondition: at.map_or(Precondition::Absent, Precondition::ModRevision),
            });
        }
        Ok(ops)
    }
}

/// Starts the job of a job without a schedule once (none for one on demand), and a cron
/// job's jobs when they are due; drops what the history limits leave out.
fn schedule(jobs: &mut JobRecord, job: &JobSpec, now: OffsetDateTime) {
    let due = match &job.schedule {
        None if job.on_demand => None,
        None => {
            if jobs.last_number == 0 {
                jobs.begin(now, None, None);
            }
            return;
        }
        Some(text) => match Schedule::parse(text) {
            Ok(schedule) => schedule.latest_due(jobs.last_scheduled.unwrap_or(jobs.since), now),
            Err(e) => {
                // Validated on admission; a schedule this build cannot read starts nothing.
                tracing::warn!(error = %e, "job schedule not understood");
                return;
            }
        },
    };
    let seen: Vec<JobSeen> = jobs
        .jobs
        .iter()
        .map(|j| JobSeen {
            number: j.number,
            outcome: j.finished.as_ref().map(|f| f.outcome),
        })
        .collect();
    let step = cron::plan(
        due,
        job.concurrency_policy,
        &seen,
        job.successful_jobs_history_limit,
        job.failed_jobs_history_limit,
    );
    jobs.jobs.retain(|j| !step.forget.contains(&j.number));
    if let Some(scheduled) = step.scheduled {
        jobs.last_scheduled = Some(scheduled);
    }
    if let Some(due) = step.start {
        jobs.begin(now, Some(due), None);
    }
}

/// The write that removes a run: its record once it is confirmed stopped, a stop when
/// `stop` (nothing while one is under way), and a lost one's record at once.
fn remove(
    instance: &Instance,
    revision: Revision,
    stop: bool,
    now: OffsetDateTime,
) -> Result<Option<Op>, RootError> {
    if instance.state == InstanceState::Terminated {
        return Ok(Some(reconcile::delete_instance(instance, revision)));
    }
    if instance.is_stopping() {
        return Ok(None);
    }
    if stop || instance.state == InstanceState::Lost {
        return reconcile::retire(instance.clone(), revision, now).map(Some);
    }
    Ok(None)
}

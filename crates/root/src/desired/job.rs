//! One job's progress, decided without I/O (time passed in): how many runs to start and for
//! which indexes, and when the job is Complete or Failed, as Kubernetes' Job controller
//! decides it for an indexed job. Index `i` in `0..completions` is done once one of its runs
//! succeeded; at most `parallelism` runs are active; more than `backoffLimit` failures (failed
//! runs, and restarts in place) or an `activeDeadlineSeconds` passed fail the job, and a
//! finished job stops what still runs. `ttlSecondsAfterFinished` after it finished its runs
//! are removed. After a failed run no run starts until the back-off has passed: 10 s after
//! the first failure, doubling with each failure since the last success, at most 6 min.

use canopy_model::JobSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;

/// What one run (an instance) of the job is, as far as the job is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunPhase {
    /// Placed, starting, running or backing off.
    Active,
    Succeeded,
    Failed,
    /// Stopping, stopped or lost with its node: counts neither way (a lost run is replaced).
    Gone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// The completion index it works on (its replica ordinal).
    pub index: u32,
    pub phase: RunPhase,
    /// Restarts in place (`restartPolicy: on-failure`): each is a failure.
    pub restarts: u32,
    /// When it ended (a run that succeeded or failed).
    pub ended_at: Option<OffsetDateTime>,
}

/// The delay before the runs that follow a failure, as Kubernetes' Job controller has it:
/// `base` after one failure since the last success, doubling with each more, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::seconds(10),
            max: Duration::minutes(6),
        }
    }
}

impl Backoff {
    /// The delay after `failures` (from 1) failures in a row.
    pub fn delay(&self, failures: u32) -> Duration {
        let mut delay = self.base;
        for _ in 1..failures {
            if delay >= self.max {
                break;
            }
            delay = delay.saturating_mul(2);
        }
        delay.min(self.max)
    }

    /// When runs may start again: the last failure since the last success plus the delay
    /// for that many failures (`None`: no failure to wait for).
    pub fn retry_at(&self, runs: &[Run]) -> Option<OffsetDateTime> {
        let ended = |phase: RunPhase| {
            runs.iter()
                .filter(move |r| r.phase == phase)
                .filter_map(|r| r.ended_at)
        };
        let last_success = ended(RunPhase::Succeeded).max();
        let failures: Vec<OffsetDateTime> = ended(RunPhase::Failed)
            .filter(|at| last_success.is_none_or(|success| *at > success))
            .collect();
        let last = failures.iter().max()?;
        Some(*last + self.delay(count(failures.len())))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Outcome {
    /// `completions` runs succeeded.
    Complete,
    /// Too many failures, or its deadline passed.
    Failed,
}

/// How and when a job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finished {
    pub outcome: Outcome,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What a job's runs add up to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub active: u32,
    /// Indexes with a successful run.
    pub succeeded: u32,
    /// Failed runs plus restarts in place.
    pub failed: u32,
}

pub fn counts(runs: &[Run]) -> Counts {
    let done: BTreeSet<u32> = runs
        .iter()
        .filter(|r| r.phase == RunPhase::Succeeded)
        .map(|r| r.index)
        .collect();
    let failed_runs = runs.iter().filter(|r| r.phase == RunPhase::Failed).count();
    let restarts: u64 = runs.iter().map(|r| u64::from(r.restarts)).sum();
    Counts {
        active: count(runs.iter().filter(|r| r.phase == RunPhase::Active).count()),
        succeeded: count(done.len()),
        failed: u32::try_from(failed_runs as u64 + restarts).unwrap_or(u32::MAX),
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// What to do about one job now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Step {
    /// Indexes to start a run for, lowest first.
    pub start: Vec<u32>,
    /// The job ended at this step (it had not before).
    pub finished: Option<Finished>,
    /// It has ended: its active runs are stopped.
    pub stop_active: bool,
    /// It ended `ttlSecondsAfterFinished` ago: its runs are removed.
    pub expired: bool,
    /// Runs are due but held by the back-off until then: decide again at that time.
    pub retry_at: Option<OffsetDateTime>,
}

/// Decides one job started at `started_at` (and `finished` already, if it has), with `runs`
/// as its runs are now, and `backoff` after failures.
pub fn step(
    spec: &JobSpec,
    started_at: OffsetDateTime,
    finished: Option<&Finished>,
    runs: &[Run],
    backoff: Backoff,
    now: OffsetDateTime,
) -> Step {
    let counts = counts(runs);
    let mut step = Step::default();
    let ended = match finished {
        Some(finished) => Some(finished.clone()),
        None => {
            let ended = ends(spec, started_at, counts, now);
            step.finished = ended.clone();
            ended
        }
    };
    if let Some(ended) = ended {
        step.stop_active = counts.active > 0;
        step.expired = spec
            .ttl_seconds_after_finished
            .is_some_and(|ttl| now >= ended.at + seconds(ttl));
        return step;
    }
    let remaining = spec.completions.saturating_sub(counts.succeeded);
    let room = spec
        .parallelism
        .min(remaining)
        .saturating_sub(counts.active);
    let busy: BTreeSet<u32> = runs
        .iter()
        .filter(|r| matches!(r.phase, RunPhase::Active | RunPhase::Succeeded))
        .map(|r| r.index)
        .collect();
    step.start = (0..spec.completions)
        .filter(|index| !busy.contains(index))
        .take(room as usize)
        .collect();
    if !step.start.is_empty()
        && let Some(at) = backoff.retry_at(runs)
        && now < at
    {
        step.start.clear();
        step.retry_at = Some(at);
    }
    step
}

/// Whether the job ends now, and how: complete first (a last success beats a deadline
/// that passed in the same step), then too many failures, then the deadline.
fn ends(
    spec: &JobSpec,
    started_at: OffsetDateTime,
    counts: Counts,
    now: OffsetDateTime,
) -> Option<Finished> {
    let (outcome, reason) = if counts.succeeded >= spec.completions {
        (
            Outcome::Complete,
            format!(
                "{} of {} runs succeeded",
                counts.succeeded, spec.completions
            ),
        )
    } else if counts.failed > spec.backoff_limit {
        (
            Outcome::Failed,
            format!(
                "BackoffLimitExceeded: {} failures, backoffLimit {}",
                counts.failed, spec.backoff_limit
            ),
        )
    } else if let Some(deadline) = spec.active_deadline_seconds
        && now >= started_at + seconds(deadline)
    {
        (
            Outcome::Failed,
            format!("DeadlineExceeded: still running after activeDeadlineSeconds {deadline}"),
        )
    } else {
        return None;
    };
    Some(Finished {
        outcome,
        reason,
        at: now,
    })
}

fn seconds(value: u64) -> Duration {
    Duration::seconds(i64::try_from(value).unwrap_or(i64::MAX))
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;

//! One job's progress, decided without I/O (time passed in): how many runs to start and for
//! which indexes, and when the job is Complete or Failed, as Kubernetes' Job controller
//! decides it for an indexed job. Index `i` in `0..completions` is done once one of its runs
//! succeeded; at most `parallelism` runs are active; more than `backoffLimit` failures (failed
//! runs, and restarts in place) or an `activeDeadlineSeconds` passed fail the job, and a
//! finished job stops what still runs. `ttlSecondsAfterFinished` after it finished its runs
//! are removed.

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
}

/// Decides one job started at `started_at` (and `finished` already, if it has), with `runs`
/// as its runs are now.
pub fn step(
    spec: &JobSpec,
    started_at: OffsetDateTime,
    finished: Option<&Finished>,
    runs: &[Run],
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
mod tests {
    use super::*;
    use RunPhase::*;

    const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

    fn job(completions: u32, parallelism: u32, backoff_limit: u32) -> JobSpec {
        JobSpec {
            completions,
            parallelism,
            backoff_limit,
            ..JobSpec::default()
        }
    }

    fn run(index: u32, phase: RunPhase) -> Run {
        Run {
            index,
            phase,
            restarts: 0,
        }
    }

    fn at(s: i64) -> OffsetDateTime {
        T0 + Duration::seconds(s)
    }

    #[test]
    fn a_new_job_starts_parallelism_runs_on_the_lowest_indexes() {
        let step = step(&job(5, 2, 6), T0, None, &[], at(0));
        assert_eq!(step.start, [0, 1]);
        assert_eq!(step.finished, None);
        assert!(!step.stop_active && !step.expired);
    }

    #[test]
    fn parallelism_is_never_exceeded_and_the_last_runs_shrink_to_what_remains() {
        let spec = job(5, 2, 6);
        // One active: one more.
        let runs = [run(0, Active), run(1, Succeeded)];
        assert_eq!(step(&spec, T0, None, &runs, at(1)).start, [2]);
        // Two active: none.
        let runs = [run(0, Active), run(2, Active), run(1, Succeeded)];
        assert!(step(&spec, T0, None, &runs, at(1)).start.is_empty());
        // Four done, none active: only the last index, not two runs.
        let done: Vec<Run> = (0..4).map(|i| run(i, Succeeded)).collect();
        assert_eq!(step(&spec, T0, None, &done, at(1)).start, [4]);
    }

    #[test]
    fn parallelism_above_completions_starts_one_per_index() {
        assert_eq!(step(&job(2, 5, 0), T0, None, &[], at(0)).start, [0, 1]);
    }

    #[test]
    fn a_failed_run_is_retried_on_its_index() {
        let runs = [run(0, Failed), run(1, Active)];
        let step = step(&job(2, 2, 3), T0, None, &runs, at(1));
        assert_eq!(step.start, [0]);
        assert_eq!(step.finished, None);
    }

    #[test]
    fn a_lost_or_stopped_run_is_replaced_and_counts_neither_way() {
        let runs = [run(0, Gone)];
        let step = step(&job(1, 1, 0), T0, None, &runs, at(1));
        assert_eq!(step.start, [0]);
        assert_eq!(step.finished, None, "a lost run is no failure");
        assert_eq!(counts(&runs), Counts::default());
    }

    #[test]
    fn completions_successes_complete_it_and_two_successes_of_one_index_count_once() {
        let spec = job(2, 2, 0);
        let twice = [run(0, Succeeded), run(0, Succeeded), run(1, Active)];
        assert_eq!(counts(&twice).succeeded, 1);
        assert_eq!(step(&spec, T0, None, &twice, at(1)).finished, None);
        let both = [run(0, Succeeded), run(1, Succeeded)];
        let step = step(&spec, T0, None, &both, at(2));
        let finished = step.finished.expect("complete");
        assert_eq!(finished.outcome, Outcome::Complete);
        assert_eq!(finished.at, at(2));
        assert_eq!(finished.reason, "2 of 2 runs succeeded");
        assert!(step.start.is_empty() && !step.stop_active);
    }

    #[test]
    fn one_failure_more_than_the_backoff_limit_fails_it_and_stops_the_rest() {
        let spec = job(3, 3, 1);
        let one = [run(0, Failed), run(1, Active), run(2, Active)];
        assert_eq!(step(&spec, T0, None, &one, at(1)).finished, None);
        let two = [
            run(0, Failed),
            run(0, Failed),
            run(1, Active),
            run(2, Active),
        ];
        let step = step(&spec, T0, None, &two, at(2));
        let finished = step.finished.expect("failed");
        assert_eq!(finished.outcome, Outcome::Failed);
        assert!(finished.reason.starts_with("BackoffLimitExceeded"));
        assert!(step.stop_active);
        assert!(step.start.is_empty(), "no retry after the limit");
    }

    #[test]
    fn a_backoff_limit_of_zero_fails_on_the_first_failure() {
        let step = step(&job(1, 1, 0), T0, None, &[run(0, Failed)], at(1));
        assert_eq!(step.finished.map(|f| f.outcome), Some(Outcome::Failed));
        assert!(step.start.is_empty());
    }

    #[test]
    fn restarts_in_place_count_as_failures() {
        let restarting = [Run {
            index: 0,
            phase: Active,
            restarts: 2,
        }];
        assert_eq!(counts(&restarting).failed, 2);
        let step = step(&job(1, 1, 1), T0, None, &restarting, at(1));
        assert_eq!(step.finished.map(|f| f.outcome), Some(Outcome::Failed));
        assert!(step.stop_active);
    }

    #[test]
    fn the_active_deadline_fails_it_from_its_start_not_from_its_runs() {
        let spec = JobSpec {
            active_deadline_seconds: Some(10),
            ..job(1, 1, 6)
        };
        let runs = [run(0, Active)];
        assert_eq!(step(&spec, at(5), None, &runs, at(14)).finished, None);
        let step = step(&spec, at(5), None, &runs, at(15));
        let finished = step.finished.expect("deadline");
        assert_eq!(finished.outcome, Outcome::Failed);
        assert!(finished.reason.starts_with("DeadlineExceeded"));
        assert!(step.stop_active);
    }

    #[test]
    fn a_last_success_wins_over_a_deadline_that_passed_in_the_same_step() {
        let spec = JobSpec {
            active_deadline_seconds: Some(1),
            ..job(1, 1, 0)
        };
        let step = step(&spec, T0, None, &[run(0, Succeeded)], at(5));
        assert_eq!(step.finished.map(|f| f.outcome), Some(Outcome::Complete));
    }

    #[test]
    fn a_finished_job_starts_nothing_reports_no_new_end_and_expires_after_its_ttl() {
        let spec = JobSpec {
            ttl_seconds_after_finished: Some(30),
            ..job(2, 1, 0)
        };
        let finished = Finished {
            outcome: Outcome::Failed,
            reason: "BackoffLimitExceeded".into(),
            at: at(100),
        };
        // Index 1 never ran: still nothing starts once the job ended.
        let runs = [run(0, Failed)];
        let before = step(&spec, T0, Some(&finished), &runs, at(129));
        assert_eq!(before, Step::default());
        let after = step(&spec, T0, Some(&finished), &runs, at(130));
        assert!(after.expired);
        assert_eq!(after.finished, None);
        assert!(after.start.is_empty());
        // Without a TTL it is kept.
        let kept = step(&job(2, 1, 0), T0, Some(&finished), &runs, at(1_000_000));
        assert!(!kept.expired);
    }

    #[test]
    fn a_ttl_of_zero_expires_at_once() {
        let spec = JobSpec {
            ttl_seconds_after_finished: Some(0),
            ..job(1, 1, 0)
        };
        let step = step(&spec, T0, None, &[run(0, Succeeded)], at(3));
        assert!(step.finished.is_some());
        assert!(step.expired, "removed in the step that finished it");
    }

    #[test]
    fn a_finished_job_with_runs_still_active_stops_them() {
        let finished = Finished {
            outcome: Outcome::Complete,
            reason: String::new(),
            at: at(1),
        };
        let runs = [run(0, Succeeded), run(1, Active)];
        let step = step(&job(1, 2, 0), T0, Some(&finished), &runs, at(2));
        assert!(step.stop_active);
    }
}

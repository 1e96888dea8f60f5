//! The job core against Kubernetes' Job rules, with an injected clock.

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
        ended_at: None,
    }
}

/// A run that ended at second `s`.
fn ended(index: u32, phase: RunPhase, s: i64) -> Run {
    Run {
        ended_at: Some(at(s)),
        ..run(index, phase)
    }
}

/// The job core without back-off (its tests are below).
fn step(
    spec: &JobSpec,
    started_at: OffsetDateTime,
    finished: Option<&Finished>,
    runs: &[Run],
    now: OffsetDateTime,
) -> Step {
    super::step(spec, started_at, finished, runs, NO_BACKOFF, now)
}

const NO_BACKOFF: Backoff = Backoff {
    base: Duration::ZERO,
    max: Duration::ZERO,
};

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
        restarts: 2,
        ..run(0, Active)
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

#[test]
fn the_backoff_doubles_from_ten_seconds_and_stops_at_six_minutes() {
    let backoff = Backoff::default();
    let delays: Vec<i64> = (1..=8).map(|n| backoff.delay(n).whole_seconds()).collect();
    assert_eq!(delays, [10, 20, 40, 80, 160, 320, 360, 360]);
    assert_eq!(backoff.delay(u32::MAX), Duration::minutes(6));
    let quick = Backoff {
        base: Duration::milliseconds(100),
        ..Backoff::default()
    };
    assert_eq!(quick.delay(3), Duration::milliseconds(400));
}

#[test]
fn a_failed_run_is_retried_only_after_its_backoff() {
    let spec = job(1, 1, 6);
    let backoff = Backoff::default();
    let runs = [ended(0, Failed, 100)];
    let held = super::step(&spec, T0, None, &runs, backoff, at(109));
    assert!(held.start.is_empty(), "9 s after the first failure");
    assert_eq!(held.retry_at, Some(at(110)));
    assert_eq!(held.finished, None);
    let due = super::step(&spec, T0, None, &runs, backoff, at(110));
    assert_eq!(due.start, [0]);
    assert_eq!(due.retry_at, None);
    // The second failure waits 20 s from its own end, the third 40 s.
    let twice = [ended(0, Failed, 100), ended(0, Failed, 130)];
    let held = super::step(&spec, T0, None, &twice, backoff, at(149));
    assert_eq!((held.start.len(), held.retry_at), (0, Some(at(150))));
    assert_eq!(
        super::step(&spec, T0, None, &twice, backoff, at(150)).start,
        [0]
    );
    let thrice = [
        ended(0, Failed, 100),
        ended(0, Failed, 130),
        ended(0, Failed, 200),
    ];
    let held = super::step(&spec, T0, None, &thrice, backoff, at(239));
    assert_eq!(held.retry_at, Some(at(240)));
}

#[test]
fn the_backoff_holds_every_new_run_and_a_success_resets_it() {
    let spec = job(3, 2, 6);
    let backoff = Backoff::default();
    // Index 0 failed at 50: index 1 (never run) waits too, as Kubernetes does.
    let runs = [ended(0, Failed, 50)];
    let held = super::step(&spec, T0, None, &runs, backoff, at(55));
    assert!(held.start.is_empty());
    assert_eq!(
        super::step(&spec, T0, None, &runs, backoff, at(60)).start,
        [0, 1]
    );
    // Two failures, then a success: the failure after it is the first again (10 s).
    let runs = [
        ended(0, Failed, 10),
        ended(0, Failed, 20),
        ended(1, Succeeded, 30),
        ended(0, Failed, 40),
    ];
    let held = super::step(&spec, T0, None, &runs, backoff, at(45));
    assert_eq!(held.retry_at, Some(at(50)));
    // Nothing to start (all busy): nothing to wait for either.
    let busy = [ended(0, Failed, 40), run(0, Active), run(1, Active)];
    let step = super::step(&spec, T0, None, &busy, backoff, at(41));
    assert_eq!((step.start.len(), step.retry_at), (0, None));
}

#[test]
fn the_backoff_never_keeps_a_job_from_failing_at_its_limit() {
    let spec = job(1, 1, 1);
    let runs = [ended(0, Failed, 10), ended(0, Failed, 20)];
    let step = super::step(&spec, T0, None, &runs, Backoff::default(), at(21));
    assert_eq!(step.finished.map(|f| f.outcome), Some(Outcome::Failed));
    assert_eq!(step.retry_at, None);
}

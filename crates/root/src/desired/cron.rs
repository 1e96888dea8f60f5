//! The scheduler of a cron job's jobs, without I/O (the clock is passed in): when a schedule
//! is due, whether a due start goes ahead (`concurrencyPolicy`), and which finished jobs
//! fall out of the history, as Kubernetes' CronJob controller decides them. A root that was
//! down over several due times starts one job, for the latest of them.

use super::job::Outcome;
use canopy_model::ConcurrencyPolicy;
use std::str::FromStr;
use time::OffsetDateTime;

/// A parsed `schedule:` (five fields, or six with seconds first, in UTC).
#[derive(Debug, Clone)]
pub struct Schedule(croner::Cron);

impl Schedule {
    /// The schedule of a valid descriptor (nicknames spelled out).
    pub fn parse(text: &str) -> Result<Schedule, String> {
        croner::Cron::from_str(canopy_model::job::expand_schedule(text))
            .map(Schedule)
            .map_err(|e| format!("schedule {text:?}: {e}"))
    }

    /// The latest time the schedule fires after `after` and at or before `now`.
    pub fn latest_due(&self, after: OffsetDateTime, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let now = to_chrono(now)?;
        let fired = self.0.find_previous_occurrence(&now, true).ok()?;
        let fired = from_chrono(fired)?;
        (fired > after).then_some(fired)
    }

    /// The first time it fires after `after`.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let after = to_chrono(after)?;
        from_chrono(self.0.find_next_occurrence(&after, false).ok()?)
    }
}

fn to_chrono(at: OffsetDateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(at.unix_timestamp(), at.nanosecond())
}

fn from_chrono(at: chrono::DateTime<chrono::Utc>) -> Option<OffsetDateTime> {
    let nanos =
        i128::from(at.timestamp()) * 1_000_000_000 + i128::from(at.timestamp_subsec_nanos());
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// One job of the schedule as the scheduler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSeen {
    pub number: u64,
    /// How it ended; `None` while it runs.
    pub outcome: Option<Outcome>,
}

/// What to do about a cron job now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CronStep {
    /// Start a new job, for this due time.
    pub start: Option<OffsetDateTime>,
    /// Jobs to drop with their runs: replaced ones (`Replace`) and finished ones beyond the
    /// history limits (oldest first).
    pub forget: Vec<u64>,
    /// The due time handled (started or skipped): the next start is after it.
    pub scheduled: Option<OffsetDateTime>,
}

/// Decides a cron job whose schedule is `due` now (the latest due time since it was last
/// handled, if any), with its `jobs` oldest first.
pub fn plan(
    due: Option<OffsetDateTime>,
    policy: ConcurrencyPolicy,
    jobs: &[JobSeen],
    successful_limit: u32,
    failed_limit: u32,
) -> CronStep {
    let mut step = CronStep {
        scheduled: due,
        ..CronStep::default()
    };
    let running: Vec<u64> = jobs
        .iter()
        .filter(|j| j.outcome.is_none())
        .map(|j| j.number)
        .collect();
    if let Some(due) = due {
        match policy {
            ConcurrencyPolicy::Allow => step.start = Some(due),
            ConcurrencyPolicy::Forbid if running.is_empty() => step.start = Some(due),
            // Skipped: the next due time is the next chance.
            ConcurrencyPolicy::Forbid => {}
            ConcurrencyPolicy::Replace => {
                step.forget.extend(&running);
                step.start = Some(due);
            }
        }
    }
    for (outcome, limit) in [
        (Outcome::Complete, successful_limit),
        (Outcome::Failed, failed_limit),
    ] {
        let ended: Vec<u64> = jobs
            .iter()
            .filter(|j| j.outcome == Some(outcome))
            .map(|j| j.number)
            .collect();
        let surplus = ended.len().saturating_sub(limit as usize);
        step.forget.extend(&ended[..surplus]);
    }
    step.forget.sort_unstable();
    step
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn running(number: u64) -> JobSeen {
        JobSeen {
            number,
            outcome: None,
        }
    }

    fn ended(number: u64, outcome: Outcome) -> JobSeen {
        JobSeen {
            number,
            outcome: Some(outcome),
        }
    }

    #[test]
    fn a_schedule_is_due_at_its_fire_time_and_not_before() {
        let every_five = Schedule::parse("*/5 * * * *").unwrap();
        let created = datetime!(2026-12-01 10:01:30 UTC);
        assert_eq!(
            every_five.latest_due(created, datetime!(2026-12-01 10:04:59 UTC)),
            None
        );
        assert_eq!(
            every_five.latest_due(created, datetime!(2026-12-01 10:05:00 UTC)),
            Some(datetime!(2026-12-01 10:05:00 UTC))
        );
        // Handled at 10:05: not due again until 10:10.
        let handled = datetime!(2026-12-01 10:05:00 UTC);
        assert_eq!(
            every_five.latest_due(handled, datetime!(2026-12-01 10:09:00 UTC)),
            None
        );
        assert_eq!(
            every_five.next_after(handled),
            Some(datetime!(2026-12-01 10:10:00 UTC))
        );
    }

    #[test]
    fn after_a_long_gap_only_the_latest_due_time_fires() {
        let hourly = Schedule::parse("@hourly").unwrap();
        let last = datetime!(2026-12-01 03:00:00 UTC);
        assert_eq!(
            hourly.latest_due(last, datetime!(2026-12-01 09:30:00 UTC)),
            Some(datetime!(2026-12-01 09:00:00 UTC))
        );
    }

    #[test]
    fn fields_mean_what_cron_says_in_utc() {
        let weekdays_at_nine = Schedule::parse("30 9 * * 1,2,3,4,5").unwrap();
        // 2026-12-05 is a Saturday: the next is Monday the 7th.
        assert_eq!(
            weekdays_at_nine.next_after(datetime!(2026-12-04 10:00:00 UTC)),
            Some(datetime!(2026-12-07 09:30:00 UTC))
        );
        let new_year = Schedule::parse("@yearly").unwrap();
        assert_eq!(
            new_year.next_after(datetime!(2026-12-01 00:00:00 UTC)),
            Some(datetime!(2027-01-01 00:00:00 UTC))
        );
    }

    #[test]
    fn a_schedule_with_seconds_first_fires_every_few_seconds() {
        let every_three = Schedule::parse("*/3 * * * * *").unwrap();
        let handled = datetime!(2026-12-01 10:00:00 UTC);
        assert_eq!(
            every_three.latest_due(handled, datetime!(2026-12-01 10:00:02 UTC)),
            None
        );
        assert_eq!(
            every_three.latest_due(handled, datetime!(2026-12-01 10:00:04 UTC)),
            Some(datetime!(2026-12-01 10:00:03 UTC))
        );
        assert_eq!(
            every_three.next_after(datetime!(2026-12-01 10:00:03 UTC)),
            Some(datetime!(2026-12-01 10:00:06 UTC))
        );
        // Five fields still mean minutes: second 0 of each.
        let minutely = Schedule::parse("* * * * *").unwrap();
        assert_eq!(
            minutely.next_after(handled),
            Some(datetime!(2026-12-01 10:01:00 UTC))
        );
    }

    #[test]
    fn every_schedule_the_descriptor_accepts_parses() {
        for text in [
            "*/2 * * * * *",
            "* * * * *",
            "59 23 31 12 6",
            "0,30 */2 1 1,7 0",
            "@weekly",
            "@monthly",
        ] {
            assert_eq!(canopy_model::job::check_schedule(text), Ok(()));
            assert!(Schedule::parse(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn allow_starts_beside_a_running_job() {
        let due = Some(datetime!(2026-12-01 10:05:00 UTC));
        let step = plan(due, ConcurrencyPolicy::Allow, &[running(1)], 3, 1);
        assert_eq!(step.start, due);
        assert!(step.forget.is_empty());
        assert_eq!(step.scheduled, due);
    }

    #[test]
    fn forbid_skips_a_due_start_while_one_runs_and_starts_once_none_does() {
        let due = Some(datetime!(2026-12-01 10:05:00 UTC));
        let skipped = plan(due, ConcurrencyPolicy::Forbid, &[running(1)], 3, 1);
        assert_eq!(skipped.start, None);
        assert_eq!(skipped.scheduled, due, "the skipped time is handled");
        let jobs = [ended(1, Outcome::Complete)];
        let started = plan(due, ConcurrencyPolicy::Forbid, &jobs, 3, 1);
        assert_eq!(started.start, due);
    }

    #[test]
    fn replace_drops_the_running_job_and_starts_anew() {
        let due = Some(datetime!(2026-12-01 10:05:00 UTC));
        let jobs = [ended(1, Outcome::Complete), running(2), running(3)];
        let step = plan(due, ConcurrencyPolicy::Replace, &jobs, 3, 1);
        assert_eq!(step.start, due);
        assert_eq!(step.forget, [2, 3]);
    }

    #[test]
    fn nothing_due_changes_nothing_but_the_history() {
        for policy in [
            ConcurrencyPolicy::Allow,
            ConcurrencyPolicy::Forbid,
            ConcurrencyPolicy::Replace,
        ] {
            let step = plan(None, policy, &[running(4)], 3, 1);
            assert_eq!(step, CronStep::default(), "{policy:?}");
        }
    }

    #[test]
    fn history_limits_keep_the_newest_of_each_outcome() {
        use Outcome::*;
        let jobs = [
            ended(1, Complete),
            ended(2, Failed),
            ended(3, Complete),
            ended(4, Failed),
            ended(5, Complete),
            running(6),
        ];
        let step = plan(None, ConcurrencyPolicy::Allow, &jobs, 2, 1);
        assert_eq!(step.forget, [1, 2]);
        let none_kept = plan(None, ConcurrencyPolicy::Allow, &jobs, 0, 0);
        assert_eq!(
            none_kept.forget,
            [1, 2, 3, 4, 5],
            "a running job is never dropped"
        );
    }

    /// A minute-by-minute walk with an injected clock: the job fires at each due minute,
    /// once, and Forbid skips the minute where the previous job still runs.
    #[test]
    fn a_cron_job_fires_on_schedule_with_an_injected_clock() {
        let every_two = Schedule::parse("*/2 * * * *").unwrap();
        let mut handled = datetime!(2026-12-01 10:00:30 UTC);
        let mut jobs: Vec<JobSeen> = Vec::new();
        let mut starts = Vec::new();
        for tick in 0..(10 * 6) {
            let now = datetime!(2026-12-01 10:00:30 UTC) + time::Duration::seconds(10 * tick);
            // Each job runs for three minutes: it overlaps the next due time.
            for job in jobs.iter_mut().filter(|j| j.outcome.is_none()) {
                let started = starts[(job.number - 1) as usize];
                if now - started >= time::Duration::minutes(3) {
                    job.outcome = Some(Outcome::Complete);
                }
            }
            let due = every_two.latest_due(handled, now);
            let step = plan(due, ConcurrencyPolicy::Forbid, &jobs, 10, 10);
            if let Some(scheduled) = step.scheduled {
                handled = scheduled;
            }
            if let Some(at) = step.start {
                starts.push(at);
                jobs.push(running(starts.len() as u64));
            }
        }
        // Due at :02 :04 :06 :08 :10; :04 and :08 find the previous job still running.
        assert_eq!(
            starts,
            [
                datetime!(2026-12-01 10:02:00 UTC),
                datetime!(2026-12-01 10:06:00 UTC),
                datetime!(2026-12-01 10:10:00 UTC),
            ]
        );
    }
}

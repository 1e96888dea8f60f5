//! A service that runs to completion: its `job:` section, as a Kubernetes Job (and, with a
//! `schedule`, a CronJob) spells it. A job's runs are instances that end: `completions`
//! successful runs finish it, at most `parallelism` run at once, and it fails once more than
//! `backoffLimit` runs failed or `activeDeadlineSeconds` passed. What the root does with
//! them is decided in its job core; this is the descriptor side and its validation.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most completions (and most parallel runs) of one job.
pub const MAX_COMPLETIONS: u32 = crate::limits::MAX_REPLICAS;
/// Largest `backoffLimit`.
pub const MAX_BACKOFF_LIMIT: u32 = 1000;
/// Longest `activeDeadlineSeconds` and `ttlSecondsAfterFinished`: 30 days.
pub const MAX_JOB_SECONDS: u64 = 30 * 24 * 3600;
/// Most finished runs of a cron job kept, of each outcome.
pub const MAX_HISTORY_LIMIT: u32 = 100;

/// How a job runs: present on a service, it makes the service a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSpec {
    /// Successful runs that complete the job; each run has its own index (`CANOPY_REPLICA`),
    /// from 0, and an index is done once one of its runs succeeded.
    #[serde(default = "default_one", deserialize_with = "crate::integer::integral")]
    pub completions: u32,
    /// Runs at most at once.
    #[serde(default = "default_one", deserialize_with = "crate::integer::integral")]
    pub parallelism: u32,
    /// Failed runs (and restarts in place, with `restartPolicy: on-failure`) tolerated: one
    /// more fails the job.
    #[serde(
        default = "default_backoff_limit",
        deserialize_with = "crate::integer::integral"
    )]
    pub backoff_limit: u32,
    /// Seconds a job may run from its start before it fails and its runs are stopped.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integer::optional_integral"
    )]
    pub active_deadline_seconds: Option<u64>,
    /// Seconds after a job finished when its runs (and their logs) are removed; kept when
    /// absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integer::optional_integral"
    )]
    pub ttl_seconds_after_finished: Option<u64>,
    /// Runs the job again and again: a cron schedule (minute hour day-of-month month
    /// day-of-week, in UTC, optionally after a seconds field; `*`, `*/STEP`, numbers and
    /// lists of them, or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`). Once when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// What a scheduled start does while an earlier one still runs.
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// Completed jobs of a schedule kept (their runs and logs).
    #[serde(
        default = "default_successful_history",
        deserialize_with = "crate::integer::integral"
    )]
    pub successful_jobs_history_limit: u32,
    /// Failed jobs of a schedule kept.
    #[serde(default = "default_one", deserialize_with = "crate::integer::integral")]
    pub failed_jobs_history_limit: u32,
    /// Starts no job by itself: each `canopy run` (`POST .../runs`) starts one, with its
    /// own arguments (a function on demand). The history limits apply.
    #[serde(default)]
    pub on_demand: bool,
}

/// One job started on demand (`POST /api/v1/services/{ns}/{app}/{name}/runs`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunRequest {
    /// The runs' arguments, in place of the service's `args`.
    #[serde(default)]
    pub args: Vec<String>,
}

impl Default for JobSpec {
    fn default() -> Self {
        JobSpec {
            completions: 1,
            parallelism: 1,
            backoff_limit: default_backoff_limit(),
            active_deadline_seconds: None,
            ttl_seconds_after_finished: None,
            schedule: None,
            concurrency_policy: ConcurrencyPolicy::default(),
            successful_jobs_history_limit: default_successful_history(),
            failed_jobs_history_limit: 1,
            on_demand: false,
        }
    }
}

/// What a scheduled start does while an earlier job of the schedule still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub enum ConcurrencyPolicy {
    /// Starts beside it.
    #[default]
    Allow,
    /// Skips this start.
    Forbid,
    /// Stops the running one and starts anew.
    Replace,
}

fn default_one() -> u32 {
    1
}
fn default_backoff_limit() -> u32 {
    6
}
fn default_successful_history() -> u32 {
    3
}

/// The nicknames a schedule may be instead of five fields, and what each stands for.
pub const SCHEDULE_NICKNAMES: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// The five fields of a schedule: name, smallest and largest value.
pub const SCHEDULE_FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
];

/// The field a six-field schedule starts with (croner reads it so): every few seconds is
/// `*/5 * * * * *`.
pub const SECONDS_FIELD: (&str, u32, u32) = ("second", 0, 59);

/// Why `schedule` is not a schedule this descriptor accepts (see [`JobSpec::schedule`]),
/// or `Ok`. The same grammar as [`crate::patterns::schedule`].
pub fn check_schedule(schedule: &str) -> Result<(), String> {
    if SCHEDULE_NICKNAMES.iter().any(|(name, _)| *name == schedule) {
        return Ok(());
    }
    let mut fields: Vec<&str> = schedule.split(' ').collect();
    let mut names = SCHEDULE_FIELDS.to_vec();
    if fields.len() == SCHEDULE_FIELDS.len() + 1 {
        names.insert(0, SECONDS_FIELD);
    } else if fields.len() != SCHEDULE_FIELDS.len() {
        fields.clear();
    }
    if fields.contains(&"") {
        fields.clear();
    }
    if fields.is_empty() {
        return Err(format!(
            "must be five fields separated by single spaces (minute hour day-of-month month \
             day-of-week), six with seconds first, or a nickname such as @daily, got \
             {schedule:?}"
        ));
    }
    for (field, (name, low, high)) in fields.iter().zip(names) {
        check_field(field, low, high).map_err(|why| format!("{name} {field:?}: {why}"))?;
    }
    Ok(())
}

fn check_field(field: &str, low: u32, high: u32) -> Result<(), String> {
    if field == "*" {
        return Ok(());
    }
    if let Some(step) = field.strip_prefix("*/") {
        return match canonical(step) {
            Some(step) if (1..=high).contains(&step) => Ok(()),
            _ => Err(format!("a step must be a number from 1 to {high}")),
        };
    }
    for item in field.split(',') {
        match canonical(item) {
            Some(value) if (low..=high).contains(&value) => {}
            _ => {
                return Err(format!(
                    "must be *, */STEP or numbers from {low} to {high} separated by commas"
                ));
            }
        }
    }
    Ok(())
}

/// A number without sign or leading zeros.
fn canonical(text: &str) -> Option<u32> {
    let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits || (text.len() > 1 && text.starts_with('0')) || text.len() > 3 {
        return None;
    }
    text.parse().ok()
}

/// The five-field form of a valid schedule (a nickname spelled out).
pub fn expand_schedule(schedule: &str) -> &str {
    SCHEDULE_NICKNAMES
        .iter()
        .find(|(name, _)| *name == schedule)
        .map_or(schedule, |(_, fields)| fields)
}

/// The problems of a service's `job` section, each with its field path under `p`.
pub(crate) fn job_errors(p: &str, svc: &crate::ServiceSpec) -> Vec<crate::FieldError> {
    let mut errors = Vec::new();
    let Some(job) = &svc.job else {
        return errors;
    };
    let mut err = |field: &str, reason: String| {
        errors.push(crate::FieldError::new(format!("{p}.job.{field}"), reason));
    };
    let counts = [
        ("completions", job.completions, 1, MAX_COMPLETIONS),
        ("parallelism", job.parallelism, 1, MAX_COMPLETIONS),
        ("backoffLimit", job.backoff_limit, 0, MAX_BACKOFF_LIMIT),
        (
            "successfulJobsHistoryLimit",
            job.successful_jobs_history_limit,
            0,
            MAX_HISTORY_LIMIT,
        ),
        (
            "failedJobsHistoryLimit",
            job.failed_jobs_history_limit,
            0,
            MAX_HISTORY_LIMIT,
        ),
    ];
    for (field, value, low, high) in counts {
        if !(low..=high).contains(&value) {
            err(field, format!("must be from {low} to {high}, got {value}"));
        }
    }
    if let Some(seconds) = job.active_deadline_seconds
        && !(1..=MAX_JOB_SECONDS).contains(&seconds)
    {
        err(
            "activeDeadlineSeconds",
            format!("must be from 1 to {MAX_JOB_SECONDS}, got {seconds}"),
        );
    }
    if let Some(seconds) = job.ttl_seconds_after_finished
        && seconds > MAX_JOB_SECONDS
    {
        err(
            "ttlSecondsAfterFinished",
            format!("must be at most {MAX_JOB_SECONDS}, got {seconds}"),
        );
    }
    if let Some(schedule) = &job.schedule
        && let Err(why) = check_schedule(schedule)
    {
        err("schedule", why);
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_of_the_grammar_pass_and_others_say_which_field() {
        for good in [
            "* * * * *",
            "*/5 * * * *",
            "0,15,30,45 9 1 1,6,12 0",
            "59 23 31 12 6",
            "@daily",
            "@hourly",
            "*/2 * * * * *",
            "0,30 0 12 * * 1",
        ] {
            assert_eq!(check_schedule(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("* * * *", "five fields"),
            ("*  * * * *", "five fields"),
            ("60 * * * *", "minute \"60\""),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month"),
            ("* * * * 7", "day of week"),
            ("*/0 * * * *", "a step"),
            ("05 * * * *", "minute"),
            ("1-5 * * * *", "minute"),
            ("@often", "five fields"),
            ("60 * * * * *", "second \"60\""),
            ("*/0 * * * * *", "second"),
            ("* * * * * * *", "six with seconds"),
        ] {
            let why = check_schedule(bad).expect_err(bad);
            assert!(why.contains(says), "{bad}: {why}");
        }
    }

    #[test]
    fn nicknames_expand_to_five_fields() {
        assert_eq!(expand_schedule("@daily"), "0 0 * * *");
        assert_eq!(expand_schedule("*/5 * * * *"), "*/5 * * * *");
        for (_, fields) in SCHEDULE_NICKNAMES {
            assert_eq!(check_schedule(fields), Ok(()));
        }
    }
}

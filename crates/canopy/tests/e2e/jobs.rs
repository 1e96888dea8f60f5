//! Jobs on a real `canopy up` with real processes: `completions` successful runs with at
//! most `parallelism` at once, a failing job that stops at its `backoffLimit` (each retry
//! after its back-off), and one past
//! its deadline, a finished one removed after its time to live, and a function on demand
//! (`canopy run`), and a cron job every two seconds. Every run stamps its start and end in
//! a file of its own, which is what the assertions count.

use crate::support;

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::{KillOnDrop, api_get, canopy_json, canopy_ok, eventually, holds_for};

const SETTLE: Duration = Duration::from_secs(60);

/// An application `jobs` with one job service `name` whose runs run `script` after
/// stamping their start into `stamps/<instance id>` (and their end, when `script` ends).
fn job_yaml(name: &str, stamps: &Path, marker: &str, job: &str, script: &str) -> String {
    format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: jobs}}\nspec:\n  services:\n{}",
        job_service(name, stamps, marker, job, script)
    )
}

fn job_service(name: &str, stamps: &Path, marker: &str, job: &str, script: &str) -> String {
    let s = stamps.display();
    format!(
        "  - name: {name}\n    runtime: process\n    restartPolicy: never\n\
         \x20   resources: {{cpu: 10m, memory: 8Mi}}\n    job: {job}\n\
         \x20   command: [/bin/sh, -c, 'f={s}/$CANOPY_INSTANCE; echo \"start $CANOPY_REPLICA $(date +%s%N)\" >> $f; {script}; code=$?; echo \"end $CANOPY_REPLICA $(date +%s%N)\" >> $f; exit $code', {marker}]\n"
    )
}

/// Each run's (index, start ns, end ns if it ended), from its stamp file.
fn runs(stamps: &Path) -> Vec<(u32, u128, Option<u128>)> {
    let mut runs = Vec::new();
    for entry in std::fs::read_dir(stamps).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        let mut start = None;
        let mut end = None;
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [kind, index, at] = words[..] {
                let stamp = (index.parse::<u32>().unwrap(), at.parse::<u128>().unwrap());
                match kind {
                    "start" => start = Some(stamp),
                    _ => end = Some(stamp.1),
                }
            }
        }
        if let Some((index, at)) = start {
            runs.push((index, at, end));
        }
    }
    runs
}

/// The most runs that were running at one moment.
fn most_at_once(runs: &[(u32, u128, Option<u128>)]) -> usize {
    let mut edges: Vec<(u128, i32)> = Vec::new();
    for (_, start, end) in runs {
        edges.push((*start, 1));
        edges.push((end.unwrap_or(u128::MAX), -1));
    }
    // An end before a start at the same instant: touching runs do not overlap.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

/// `status.job` of `application/service`.
fn job_status(server: &str, application: &str, service: &str) -> Value {
    api_get(
        server,
        &format!("/api/v1/services/default/{application}/{service}"),
    )["status"]["job"]
        .clone()
}

fn instances_of(server: &str, service: &str) -> Vec<Value> {
    canopy_json(server, &["get", "instances"])
        .into_iter()
        .filter(|i| i["service"] == service)
        .collect()
}

fn exit_code(instance: &Value) -> Option<i64> {
    instance["lastTermination"]["exitCode"].as_i64()
}

#[test]
fn a_job_runs_its_completions_with_at_most_parallelism_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let stamps = dir.path().join("stamps");
    std::fs::create_dir_all(&stamps).unwrap();
    let marker = format!("canopy-job-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let daemon = support::up(&dir.path().join("data"));
    let yaml = job_yaml(
        "batch",
        &stamps,
        &marker,
        "{completions: 5, parallelism: 2}",
        "sleep 1",
    );
    support::apply(&daemon.url, dir.path(), &yaml);

    // Sampled while it runs: never more than two active.
    let status = eventually(SETTLE, "the job complete", || {
        let status = job_status(&daemon.url, "jobs", "batch");
        assert!(status["active"].as_u64().unwrap_or(0) <= 2, "{status}");
        (status["phase"] == "Complete").then_some(status)
    });
    assert_eq!(status["succeeded"], 5, "{status}");
    assert_eq!(status["failed"], 0, "{status}");

    let runs = runs(&stamps);
    assert_eq!(runs.len(), 5, "one run per index: {runs:?}");
    let mut indexes: Vec<u32> = runs.iter().map(|r| r.0).collect();
    indexes.sort();
    assert_eq!(indexes, [0, 1, 2, 3, 4]);
    assert!(
        runs.iter().all(|r| r.2.is_some()),
        "every run ended: {runs:?}"
    );
    assert_eq!(most_at_once(&runs), 2, "parallelism 2, used: {runs:?}");

    let instances = instances_of(&daemon.url, "batch");
    assert_eq!(instances.len(), 5, "{instances:?}");
    for instance in &instances {
        assert_eq!(instance["state"], "Succeeded", "{instance}");
        assert_eq!(exit_code(instance), Some(0), "{instance}");
        assert_eq!(instance["job"], 1, "{instance}");
    }
    // Nothing more starts once it is complete.
    holds_for(Duration::from_secs(2), "no run after completion", || {
        support::pids_with(&marker).is_empty() && instances_of(&daemon.url, "batch").len() == 5
    });

    let table = canopy_ok(&daemon.url, &["get", "services"]);
    let row = table.lines().find(|l| l.contains("jobs/batch")).unwrap();
    assert!(row.contains("Complete 5/5"), "{table}");
    let described = canopy_ok(&daemon.url, &["describe", "services", "jobs/batch"]);
    assert!(
        described.contains("Job:         #1 Complete: 5/5 succeeded, 0 failed, 0 active"),
        "{described}"
    );
    canopy_ok(
        &daemon.url,
        &[
            "wait",
            "--for=state=Complete",
            "services",
            "jobs/batch",
            "--timeout",
            "5s",
        ],
    );
}

#[test]
fn a_failing_job_stops_at_its_backoff_limit() {
    let dir = tempfile::tempdir().unwrap();
    let stamps = dir.path().join("stamps");
    std::fs::create_dir_all(&stamps).unwrap();
    let marker = format!("canopy-job-failing-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let daemon = support::up(&dir.path().join("data"));
    let yaml = job_yaml("broken", &stamps, &marker, "{backoffLimit: 2}", "false");
    support::apply(&daemon.url, dir.path(), &yaml);

    let status = eventually(SETTLE, "the job failed", || {
        let status = job_status(&daemon.url, "jobs", "broken");
        (status["phase"] == "Failed").then_some(status)
    });
    let reason = status["reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("BackoffLimitExceeded"), "{status}");
    assert_eq!(
        status["failed"], 3,
        "backoffLimit 2: the third failure ends it"
    );
    // No fourth run, however long one waits.
    holds_for(Duration::from_secs(3), "three runs only", || {
        runs(&stamps).len() == 3 && instances_of(&daemon.url, "broken").len() == 3
    });
    // Each retry waited out the back-off: the base, then twice the base.
    let mut tried = runs(&stamps);
    tried.sort_by_key(|r| r.1);
    for (n, pair) in tried.windows(2).enumerate() {
        let ended = pair[0].2.expect("a failed run ended");
        let waited = Duration::from_nanos((pair[1].1 - ended) as u64);
        let backoff = Duration::from_millis(support::JOB_BACKOFF_MS << n);
        assert!(
            waited >= backoff,
            "retry {} after {waited:?}: {tried:?}",
            n + 1
        );
    }
    for instance in instances_of(&daemon.url, "broken") {
        assert_eq!(instance["state"], "Failed", "{instance}");
        assert_eq!(exit_code(&instance), Some(1), "{instance}");
        assert_eq!(instance["replica"], 0, "every retry is of index 0");
    }
    let id = instances_of(&daemon.url, "broken")[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let described = canopy_ok(&daemon.url, &["describe", "instances", &id]);
    assert!(described.contains("Exit code:   1"), "{described}");
    assert!(described.contains("Job:         1"), "{described}");
    let table = canopy_ok(&daemon.url, &["get", "services"]);
    assert!(table.contains("Failed 0/1"), "{table}");
    let table = canopy_ok(&daemon.url, &["get", "instances"]);
    let row = table.lines().find(|l| l.contains(id.as_str())).unwrap();
    assert!(
        row.contains("Failed") && row.contains("exited with code 1"),
        "{table}"
    );
}

#[test]
fn a_job_past_its_deadline_is_stopped_and_a_finished_one_removed_after_its_time_to_live() {
    let dir = tempfile::tempdir().unwrap();
    let (slow_stamps, quick_stamps) = (dir.path().join("slow"), dir.path().join("quick"));
    std::fs::create_dir_all(&slow_stamps).unwrap();
    std::fs::create_dir_all(&quick_stamps).unwrap();
    let marker = format!("canopy-job-deadline-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let daemon = support::up(&dir.path().join("data"));
    let mut yaml = job_yaml(
        "slow",
        &slow_stamps,
        &marker,
        "{activeDeadlineSeconds: 2}",
        "sleep 600",
    );
    yaml.push_str(&job_service(
        "quick",
        &quick_stamps,
        &marker,
        "{ttlSecondsAfterFinished: 3}",
        "true",
    ));
    support::apply(&daemon.url, dir.path(), &yaml);

    // quick: complete, its run kept (Succeeded) for a while, then removed; the outcome stays.
    eventually(SETTLE, "quick complete with its run", || {
        let complete = job_status(&daemon.url, "jobs", "quick")["phase"] == "Complete";
        let kept = instances_of(&daemon.url, "quick")
            .iter()
            .any(|i| i["state"] == "Succeeded");
        (complete && kept).then_some(())
    });
    eventually(SETTLE, "quick's run removed after its time to live", || {
        instances_of(&daemon.url, "quick").is_empty().then_some(())
    });
    let quick = job_status(&daemon.url, "jobs", "quick");
    assert_eq!(quick["phase"], "Complete", "{quick}");
    assert_eq!(
        quick["succeeded"], 1,
        "counted after its runs went: {quick}"
    );
    assert_eq!(runs(&quick_stamps).len(), 1, "and not run again");

    // slow: failed at its deadline, its run stopped.
    let status = eventually(SETTLE, "slow past its deadline", || {
        let status = job_status(&daemon.url, "jobs", "slow");
        (status["phase"] == "Failed").then_some(status)
    });
    assert!(
        status["reason"]
            .as_str()
            .unwrap_or_default()
            .starts_with("DeadlineExceeded"),
        "{status}"
    );
    let slow = runs(&slow_stamps);
    assert_eq!(slow.len(), 1, "{slow:?}");
    eventually(SETTLE, "slow's run stopped", || {
        support::pids_with(&marker).is_empty().then_some(())
    });
    assert_eq!(
        job_status(&daemon.url, "jobs", "slow")["number"],
        1,
        "no second job"
    );
}

/// A function on demand: nothing runs until `canopy run`, which prints the run's output
/// (made from the arguments it passed) and exits with the run's exit code.
#[test]
fn canopy_run_starts_a_job_with_its_arguments_and_returns_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let marker = format!("canopy-job-run-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let daemon = support::up(&dir.path().join("data"));
    let yaml = format!(
        "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: fn}}\nspec:\n  services:\n\
         \x20 - name: echo\n    runtime: process\n    restartPolicy: never\n\
         \x20   resources: {{cpu: 10m, memory: 8Mi}}\n    job: {{onDemand: true, backoffLimit: 0}}\n\
         \x20   command: [/bin/sh, -c, 'echo \"got $*\"; exit $1', {marker}]\n    args: [\"9\", default]\n\
         \x20 - name: web\n    runtime: process\n    resources: {{cpu: 10m, memory: 8Mi}}\n\
         \x20   command: [/bin/sh, -c, 'exec sleep 600', {marker}]\n"
    );
    support::apply(&daemon.url, dir.path(), &yaml);
    eventually(SETTLE, "web running", || {
        instances_of(&daemon.url, "web")
            .iter()
            .any(|i| i["state"] == "Running")
            .then_some(())
    });
    assert!(
        instances_of(&daemon.url, "echo").is_empty(),
        "an on-demand job starts nothing by itself"
    );
    assert_eq!(
        api_get(&daemon.url, "/api/v1/services/default/fn/echo")["status"]["job"]["phase"],
        "Waiting"
    );

    let out = canopy_ok(
        &daemon.url,
        &["run", "fn/echo", "--", "0", "hello", "world"],
    );
    assert_eq!(out.trim(), "got 0 hello world", "{out}");

    let failed = support::canopy(&daemon.url, &["run", "fn/echo", "--", "3", "bad"]);
    assert_eq!(failed.status.code(), Some(3), "{failed:?}");
    assert_eq!(String::from_utf8_lossy(&failed.stdout).trim(), "got 3 bad");

    let runs = instances_of(&daemon.url, "echo");
    let mut jobs: Vec<(i64, String, Option<i64>)> = runs
        .iter()
        .map(|i| {
            (
                i["job"].as_i64().unwrap(),
                i["state"].as_str().unwrap().to_string(),
                exit_code(i),
            )
        })
        .collect();
    jobs.sort();
    assert_eq!(
        jobs,
        [
            (1, "Succeeded".to_string(), Some(0)),
            (2, "Failed".to_string(), Some(3))
        ]
    );
    let status = job_status(&daemon.url, "fn", "echo");
    assert_eq!(status["number"], 2, "{status}");
    assert_eq!(status["phase"], "Failed", "{status}");

    let not_a_job = support::canopy(&daemon.url, &["run", "fn/web", "--", "x"]);
    assert!(!not_a_job.status.success());
    let said = String::from_utf8_lossy(&not_a_job.stderr);
    assert!(said.contains("is not a job"), "{said}");
}

/// A cron job whose schedule has seconds fires every two seconds; of its finished jobs only
/// the newest `successfulJobsHistoryLimit` are kept, with their runs.
#[test]
fn a_cron_job_fires_on_its_schedule_and_keeps_its_history_limit() {
    let dir = tempfile::tempdir().unwrap();
    let stamps = dir.path().join("stamps");
    std::fs::create_dir_all(&stamps).unwrap();
    let marker = format!("canopy-job-cron-{}", std::process::id());
    let _cleanup = KillOnDrop(marker.clone());
    let daemon = support::up(&dir.path().join("data"));
    let yaml = job_yaml(
        "tick",
        &stamps,
        &marker,
        "{schedule: '*/2 * * * * *', successfulJobsHistoryLimit: 2, concurrencyPolicy: Forbid}",
        "true",
    );
    let applied = std::time::Instant::now();
    support::apply(&daemon.url, dir.path(), &yaml);

    // Sampled all along: two finished jobs kept at most, beside the one running (Forbid:
    // never two at once), and no more starts than the schedule has due times.
    let status = eventually(SETTLE, "a fourth job complete", || {
        let status = job_status(&daemon.url, "jobs", "tick");
        // Runs of a dropped job stop (then go): they are not kept.
        let kept: Vec<Value> = instances_of(&daemon.url, "tick")
            .into_iter()
            .filter(|i| i["desired"] != "Stop")
            .collect();
        assert!(kept.len() <= 3, "history limit 2 and one running: {kept:?}");
        assert!(status["jobs"].as_u64().unwrap_or(0) <= 3, "{status}");
        let due_times = applied.elapsed().as_secs() / 2 + 1;
        assert!(
            runs(&stamps).len() as u64 <= due_times,
            "{} runs in {:?}",
            runs(&stamps).len(),
            applied.elapsed()
        );
        (status["number"].as_u64()? >= 4 && status["phase"] == "Complete").then_some(status)
    });
    assert!(status["nextSchedule"].is_string(), "{status}");
    let started = runs(&stamps).len();
    assert!(started >= 4, "one run per job: {started}");
    // The older jobs' runs are gone: only the newest ones are left.
    let newest = status["number"].as_u64().unwrap();
    let kept: Vec<u64> = instances_of(&daemon.url, "tick")
        .iter()
        .filter(|i| i["desired"] != "Stop")
        .filter_map(|i| i["job"].as_u64())
        .collect();
    assert!(kept.len() < started, "{kept:?} of {started} runs");
    assert!(
        kept.iter().all(|job| *job + 3 > newest),
        "only the newest jobs keep runs: {kept:?}, newest {newest}"
    );
}

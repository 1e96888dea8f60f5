//! The process runtime against real processes and real cgroups (no mocks).
//! Cgroup tests need root and cpu/memory controllers; they print why when they skip.

use canopy_model::ServiceSpec;
use canopy_runtime::{InstanceSpec, ProcessOptions, ProcessRuntime, Runtime, RuntimeError};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

const LONG: Duration = Duration::from_secs(30);

fn id(name: &str) -> String {
    format!("t{}-{name}", std::process::id())
}

fn service(command: &[&str]) -> ServiceSpec {
    serde_json::from_value(serde_json::json!({
        "name": "svc",
        "runtime": "process",
        "command": command,
    }))
    .expect("service spec")
}

fn spec(id: &str, command: &[&str]) -> InstanceSpec {
    InstanceSpec {
        secrets: Default::default(),
        id: id.to_string(),
        generation: 1,
        service: service(command),
        env: BTreeMap::new(),
        prepared: Default::default(),
    }
}

fn runtime(dir: &Path) -> ProcessRuntime {
    ProcessRuntime::new(dir.to_path_buf(), ProcessOptions::default()).expect("runtime")
}

/// Starts `sleep 1000` under a runtime that is then dropped, as when its agent dies.
/// Starts `sleep` as an agent would, then lets that agent go as a dead agent does: its whole
/// Tokio runtime with it, supervisors included (a supervisor left running would record the
/// exit itself, racing the recovery under test).
async fn start_then_drop_runtime(dir: &Path, id: &str) -> u32 {
    let (dir, id) = (dir.to_path_buf(), id.to_string());
    tokio::task::spawn_blocking(move || {
        let agent = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("agent runtime");
        let pid = agent.block_on(async {
            let rt = runtime(&dir);
            rt.start(&spec(&id, &["sleep", "1000"]))
                .await
                .expect("start")
                .pid
                .expect("pid")
        });
        agent.shutdown_background();
        pid
    })
    .await
    .expect("agent thread")
}

/// Cgroup limits are what the process runtime promises, not an optional backend: a test of
/// them fails (saying why) where it cannot rely on them, it never passes without running.
fn require_cgroups(rt: &ProcessRuntime, test: &str) {
    assert!(
        rustix::process::geteuid().is_root(),
        "{test}: needs root for cgroups (CI runs as root)"
    );
    assert!(
        rt.limits_enforced(),
        "{test}: no usable cpu/memory cgroup controllers on this machine"
    );
}

/// Polls `f` every 10 ms until it holds; panics with `what` after `timeout`.
async fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// No such process, or only its zombie.
fn gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// Kills the process group of a long-running workload if the test panics, so a failed
/// test leaves no `sleep 1000` behind.
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(p) = rustix::process::Pid::from_raw(self.0 as i32)
        {
            let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
        }
    }
}

async fn wait(rt: &ProcessRuntime, id: &str) -> canopy_runtime::Exit {
    tokio::time::timeout(LONG, rt.wait(id))
        .await
        .expect("wait timed out")
        .expect("wait")
}

/// The directory of the cgroup of `pid` holding `controller`, from /proc/<pid>/cgroup.
fn cgroup_dir(pid: u32, controller: &str) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if ctls.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            return Some(Path::new("/sys/fs/cgroup").join(rel));
        }
        if ctls.split(',').any(|c| c == controller) {
            for mount in [controller, "cpu,cpuacct", "cpuacct,cpu"] {
                let base = Path::new("/sys/fs/cgroup").join(mount);
                if base.is_dir() {
                    return Some(base.join(rel));
                }
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_code_and_both_streams_are_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let id = id("exit3");
    let started = rt
        .start(&spec(
            &id,
            &["/bin/sh", "-c", "echo out; echo err >&2; exit 3"],
        ))
        .await
        .expect("start");
    assert!(started.pid.is_some());
    let exit = wait(&rt, &id).await;
    assert_eq!(exit.code, Some(3));
    assert_eq!(exit.signal, None);
    assert_eq!(exit.reason, "exited with code 3");
    assert!(!exit.success());
    let logs = rt.logs(&id, 10).await.expect("logs");
    assert_eq!(logs, "out\nerr\n");
    // Waiting again returns the same exit at once.
    assert_eq!(wait(&rt, &id).await, exit);
    assert!(dir.path().join(&id).join("state.json").is_file());
    rt.remove(&id).await.expect("remove");
    assert!(!dir.path().join(&id).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_args_and_working_dir_are_passed_and_agent_env_is_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wd = tempfile::tempdir().expect("working dir");
    let rt = runtime(dir.path());
    let id = id("env");
    let mut s = spec(
        &id,
        &[
            "/bin/sh",
            "-c",
            "echo \"$FOO|$CANOPY_INSTANCE|$0|$1\"; pwd; env",
            "zero",
        ],
    );
    s.service.args = vec!["one".to_string()];
    s.service.env.insert("FOO".into(), "bar".into());
    s.service
        .env
        .insert("CANOPY_INSTANCE".into(), "overridden".into());
    s.service.working_dir = Some(wd.path().display().to_string());
    s.env.insert("CANOPY_INSTANCE".into(), id.clone());
    rt.start(&s).await.expect("start");
    assert!(wait(&rt, &id).await.success());
    let out = rt.logs(&id, 1000).await.expect("logs");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(format!("bar|{id}|zero|one").as_str()));
    let cwd = fs::canonicalize(wd.path()).expect("canonical");
    assert_eq!(lines.next(), Some(cwd.display().to_string().as_str()));
    let env: Vec<&str> = lines.collect();
    assert!(env.iter().any(|l| l.starts_with("PATH=")), "{env:?}");
    // cargo sets CARGO_* for the test process; the workload must not inherit them.
    assert!(std::env::var("CARGO_PKG_NAME").is_ok());
    assert!(!env.iter().any(|l| l.starts_with("CARGO")), "{env:?}");
    rt.remove(&id).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_binary_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let e = rt
        .start(&spec(&id("nope"), &["/bin/nope"]))
        .await
        .expect_err("must fail");
    assert!(matches!(e, RuntimeError::CommandNotFound { .. }), "{e:?}");
    assert_eq!(e.to_string(), "command /bin/nope not found");
    let e = rt
        .start(&spec(&id("nope2"), &["canopy-no-such-program"]))
        .await
        .expect_err("must fail");
    assert!(
        e.to_string()
            .starts_with("command canopy-no-such-program not found in PATH"),
        "{e}"
    );
    let mut s = spec(&id("nowd"), &["/bin/true"]);
    s.service.working_dir = Some("/nonexistent/dir".into());
    let e = rt.start(&s).await.expect_err("must fail");
    assert!(e.to_string().contains("/nonexistent/dir"), "{e}");
    // Nothing was left behind for the failed starts.
    assert!(rt.recover().await.expect("recover").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_sends_sigterm_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let id = id("term");
    let pid = rt
        .start(&spec(&id, &["sleep", "1000"]))
        .await
        .expect("start")
        .pid
        .expect("pid");
    let _guard = KillOnPanic(pid);
    let t0 = Instant::now();
    rt.stop(&id, Duration::from_secs(20)).await.expect("stop");
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "SIGTERM should have sufficed"
    );
    let exit = wait(&rt, &id).await;
    assert_eq!(exit.signal, Some(15));
    assert_eq!(exit.reason, "killed by SIGTERM");
    // Idempotent.
    rt.stop(&id, Duration::from_secs(1))
        .await
        .expect("stop again");
    rt.remove(&id).await.expect("remove");
    rt.remove(&id).await.expect("remove again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_a_term_ignoring_group_after_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wd = tempfile::tempdir().expect("working dir");
    let rt = runtime(dir.path());
    let id = id("kill");
    // The shell ignores TERM (and so does its child, which inherits SIG_IGN).
    let mut s = spec(
        &id,
        &[
            "/bin/sh",
            "-c",
            "trap '' TERM; sleep 1000 & echo $! > child.pid; echo ready; wait; wait",
        ],
    );
    s.service.working_dir = Some(wd.path().display().to_string());
    let leader = rt.start(&s).await.expect("start").pid.expect("pid");
    let _guard = KillOnPanic(leader);
    let pidfile = wd.path().join("child.pid");
    eventually("the grandchild's pid", LONG, || {
        fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
    })
    .await;
    let grandchild: u32 = fs::read_to_string(&pidfile)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert!(!gone(grandchild));
    let grace = Duration::from_millis(300);
    let t0 = Instant::now();
    rt.stop(&id, grace).await.expect("stop");
    assert!(t0.elapsed() >= grace);
    let exit = wait(&rt, &id).await;
    assert_eq!(exit.signal, Some(9), "{exit:?}");
    assert!(gone(leader));
    assert!(gone(grandchild), "the child of the child survived");
    rt.remove(&id).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_oom_kills_and_below_limit_works() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    require_cgroups(&rt, "memory_limit_oom_kills_and_below_limit_works");
    let python = "/usr/bin/python3";
    assert!(
        Path::new(python).exists(),
        "memory_limit_oom_kills_and_below_limit_works: {python} missing (scripts/test installs it)"
    );
    let hog = id("oom");
    let mut s = spec(
        &hog,
        &[python, "-c", "x = b'a' * (200 << 20); print(len(x))"],
    );
    s.service.resources.memory = canopy_model::Mebibytes(32);
    rt.start(&s).await.expect("start");
    let exit = wait(&rt, &hog).await;
    assert!(exit.oom_killed, "{exit:?}");
    assert!(exit.reason.contains("out of memory"), "{exit:?}");
    assert!(!exit.success());

    let ok = id("nooom");
    let mut s = spec(&ok, &[python, "-c", "x = b'a' * (4 << 20); print('fine')"]);
    s.service.resources.memory = canopy_model::Mebibytes(32);
    rt.start(&s).await.expect("start");
    let exit = wait(&rt, &ok).await;
    assert!(exit.success(), "{exit:?}");
    assert_eq!(rt.logs(&ok, 5).await.expect("logs"), "fine\n");
    rt.remove(&hog).await.expect("remove");
    rt.remove(&ok).await.expect("remove");
}

/// Every cgroup hierarchy (v1: one per mounted controller set; v2: the root).
fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir() && !p.is_symlink())
                .collect()
        })
        .unwrap_or_default()
}

/// The groups of instance `id` (parent `canopy`) that exist, in any hierarchy.
fn cgroups_of(id: &str) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .map(|h| h.join("canopy").join(id))
        .filter(|d| d.exists())
        .collect()
}

/// A command that cannot be spawned leaves no cgroup: neither one not found at all nor one
/// the kernel refuses to exec (a script whose interpreter is missing: ENOENT from execve,
/// after the group was made and joined), and neither does a later `remove`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_be_spawned_leaves_no_cgroup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    require_cgroups(&rt, "a_command_that_cannot_be_spawned_leaves_no_cgroup");
    let script = dir.path().join("needs-a-missing-interpreter");
    fs::write(&script, "#!/nonexistent/interpreter\n").expect("script");
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let script = script.display().to_string();
    for (name, command) in [("missing", "/nonexistent/binary"), ("noexec", &script)] {
        let id = id(&format!("spawn-{name}"));
        let err = rt
            .start(&spec(&id, &[command]))
            .await
            .expect_err("cannot be spawned");
        assert!(err.to_string().contains(command), "{err}");
        assert_eq!(
            cgroups_of(&id),
            Vec::<PathBuf>::new(),
            "{name}: after start"
        );
        // A restart fails the same way, and so does a start after a run that worked.
        rt.start(&spec(&id, &[command])).await.expect_err("again");
        assert_eq!(cgroups_of(&id), Vec::<PathBuf>::new(), "{name}: again");
        rt.remove(&id).await.expect("remove");
        assert_eq!(cgroups_of(&id), Vec::<PathBuf>::new(), "{name}: removed");
        assert!(!dir.path().join(&id).exists(), "{name}: state dir left");
    }
    let id = id("spawn-after-run");
    rt.start(&spec(&id, &["/bin/true"])).await.expect("start");
    wait(&rt, &id).await;
    rt.start(&spec(&id, &[&script]))
        .await
        .expect_err("now it cannot");
    rt.remove(&id).await.expect("remove");
    assert_eq!(cgroups_of(&id), Vec::<PathBuf>::new(), "after a run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_in_the_cgroup_before_exec_and_removed_with_the_instance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    require_cgroups(
        &rt,
        "limits_are_in_the_cgroup_before_exec_and_removed_with_the_instance",
    );
    let id = id("quota");
    let mut s = spec(&id, &["sleep", "1000"]);
    s.service.resources.cpu = canopy_model::Millicores(250);
    s.service.resources.memory = canopy_model::Mebibytes(64);
    let pid = rt.start(&s).await.expect("start").pid.expect("pid");
    let _guard = KillOnPanic(pid);
    let cpu = cgroup_dir(pid, "cpu").expect("cpu cgroup");
    let mem = cgroup_dir(pid, "memory").expect("memory cgroup");
    assert!(cpu.ends_with(format!("canopy/{id}")), "{}", cpu.display());
    assert!(mem.ends_with(format!("canopy/{id}")), "{}", mem.display());
    let read = |p: PathBuf| {
        fs::read_to_string(&p)
            .expect("cgroup file")
            .trim()
            .to_string()
    };
    if cpu.join("cpu.max").exists() {
        assert_eq!(read(cpu.join("cpu.max")), "25000 100000");
        assert_eq!(read(mem.join("memory.max")), (64u64 << 20).to_string());
    } else {
        assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "25000");
        assert_eq!(
            read(mem.join("memory.limit_in_bytes")),
            (64u64 << 20).to_string()
        );
    }
    // remove kills it and frees the groups.
    rt.remove(&id).await.expect("remove");
    assert!(gone(pid));
    assert!(!cpu.exists(), "{} left behind", cpu.display());
    assert!(!mem.exists(), "{} left behind", mem.display());
    assert!(!dir.path().join(&id).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_report_memory_and_cpu() {
    // Some CPU too: without cgroups usage comes from /proc in clock ticks (10 ms).
    let script =
        "x = b'a' * (16 << 20)\nsum(range(5_000_000))\nimport time\nwhile True: time.sleep(1)";
    for cgroups in [true, false] {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = ProcessOptions {
            cgroups,
            ..ProcessOptions::default()
        };
        let rt = ProcessRuntime::new(dir.path().to_path_buf(), opts).expect("runtime");
        if cgroups {
            require_cgroups(&rt, "stats_report_memory_and_cpu (cgroup half)");
        }
        let id = id(&format!("stats-{cgroups}"));
        let pid = rt
            .start(&spec(&id, &["/usr/bin/python3", "-c", script]))
            .await
            .expect("start")
            .pid
            .expect("pid");
        let _guard = KillOnPanic(pid);
        let deadline = Instant::now() + LONG;
        let stats = loop {
            let s = rt.stats(&id).await.expect("stats");
            if s.memory_bytes > 16 << 20 && s.cpu_usage_ns > 0 {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "memory never reached 16 MiB: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(stats.cpu_usage_ns > 0, "cgroups={cgroups} {stats:?}");
        rt.remove(&id).await.expect("remove");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runtime_re_adopts_running_instances() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = id("adopt");
    // The runtime is dropped as its agent dies; the checks below show the workload lived on.
    let pid = start_then_drop_runtime(dir.path(), &id).await;
    let _guard = KillOnPanic(pid);
    assert!(!gone(pid), "the workload died with the runtime");

    let rt = runtime(dir.path());
    let found = rt.recover().await.expect("recover");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].id, id);
    assert_eq!(found[0].pid, Some(pid));
    assert_eq!(found[0].generation, 1);
    assert!(found[0].running);
    // Recovering twice does not duplicate anything.
    assert_eq!(rt.recover().await.expect("recover again"), found);
    assert!(rt.stats(&id).await.is_ok());

    let waiter = {
        let id = id.clone();
        let rt = std::sync::Arc::new(rt);
        let rt2 = std::sync::Arc::clone(&rt);
        (rt, tokio::spawn(async move { rt2.wait(&id).await }))
    };
    let (rt, waiter) = waiter;
    rt.stop(&id, Duration::from_secs(10)).await.expect("stop");
    let exit = tokio::time::timeout(LONG, waiter)
        .await
        .expect("wait timed out")
        .expect("join")
        .expect("wait");
    assert!(!exit.success());
    assert!(gone(pid));
    rt.remove(&id).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_died_while_the_agent_was_down_is_reported_exited() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = id("died");
    let pid = start_then_drop_runtime(dir.path(), &id).await;
    let p = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    rustix::process::kill_process(p, rustix::process::Signal::KILL).expect("kill");
    eventually("the workload to die", LONG, || gone(pid)).await;

    let rt = runtime(dir.path());
    let found = rt.recover().await.expect("recover");
    assert_eq!(found.len(), 1);
    assert!(!found[0].running);
    let exit = wait(&rt, &id).await;
    assert_eq!(exit.code, None);
    assert_eq!(exit.reason, "exited while the agent was down; code unknown");
    assert!(!exit.success());
    // Reap the zombie this test process holds.
    let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG);
    rt.remove(&id).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_pid_with_another_start_time_is_not_adopted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let id = id("reuse");
    let pid = start_then_drop_runtime(dir.path(), &id).await;
    let _guard = KillOnPanic(pid);
    // Pretend the recorded process started at another time: the live pid is someone else.
    let path = dir.path().join(&id).join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&fs::read(&path).expect("state")).expect("json");
    let st = state["start_time"].as_u64().expect("start_time");
    state["start_time"] = serde_json::json!(st + 1);
    fs::write(&path, serde_json::to_vec(&state).expect("encode")).expect("write");

    let rt = runtime(dir.path());
    let found = rt.recover().await.expect("recover");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].pid, Some(pid));
    assert!(!found[0].running, "a pid-reused process was adopted");
    assert!(!gone(pid), "recovery must not touch someone else's process");

    let p = rustix::process::Pid::from_raw(pid as i32).expect("pid");
    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::empty());
    rt.remove(&id).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_rotate_by_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ProcessOptions {
        max_log_bytes: 4096,
        // Rotation here is the one triggered by reading the logs.
        log_check_interval: Duration::from_secs(3600),
        ..ProcessOptions::default()
    };
    let rt = ProcessRuntime::new(dir.path().to_path_buf(), opts).expect("runtime");
    let id = id("rotate");
    let script = "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done; sleep 1000";
    let pid = rt
        .start(&spec(&id, &["/bin/sh", "-c", script]))
        .await
        .expect("start")
        .pid
        .expect("pid");
    let _guard = KillOnPanic(pid);
    let paths = rt.log_paths(&id).expect("paths");
    eventually("all lines written", LONG, || {
        fs::read_to_string(&paths.stdout).is_ok_and(|s| s.contains("line-1999\n"))
    })
    .await;
    let before = fs::metadata(&paths.stdout).expect("meta").len();
    assert!(before > 4096);
    let tail = rt.logs(&id, 3).await.expect("logs");
    assert_eq!(tail, "line-1997\nline-1998\nline-1999\n");
    let rotated = paths.stdout.with_file_name("stdout.log.1");
    assert_eq!(fs::metadata(&rotated).expect("rotated file").len(), before);
    assert_eq!(fs::metadata(&paths.stdout).expect("meta").len(), 0);
    rt.stop(&id, Duration::from_secs(5)).await.expect("stop");
    rt.remove(&id).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_process_per_start_and_wait_follows_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let id = id("restart");
    rt.start(&spec(&id, &["/bin/sh", "-c", "exit 1"]))
        .await
        .expect("start");
    assert_eq!(wait(&rt, &id).await.code, Some(1));
    let mut s = spec(&id, &["sleep", "1000"]);
    s.generation = 2;
    let pid = rt.start(&s).await.expect("restart").pid.expect("pid");
    let _guard = KillOnPanic(pid);
    let e = rt.start(&s).await.expect_err("already running");
    assert!(matches!(e, RuntimeError::AlreadyRunning { .. }), "{e:?}");
    let found = rt.recover().await.expect("recover");
    assert_eq!((found[0].generation, found[0].running), (2, true));
    rt.stop(&id, Duration::from_secs(5)).await.expect("stop");
    assert_eq!(wait(&rt, &id).await.signal, Some(15));
    assert!(matches!(
        rt.wait("unknown-id").await,
        Err(RuntimeError::NotFound { .. })
    ));
    rt.remove(&id).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_remove_work_before_recover_without_cgroups_keeping_logs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ProcessOptions {
        cgroups: false,
        keep_logs_on_remove: true,
        ..ProcessOptions::default()
    };
    let id = id("norecover");
    let pid = {
        let rt = ProcessRuntime::new(dir.path().to_path_buf(), opts.clone()).expect("runtime");
        assert!(!rt.limits_enforced());
        let pid = rt
            .start(&spec(
                &id,
                &["/bin/sh", "-c", "echo hello; sleep 1000 & wait"],
            ))
            .await
            .expect("start")
            .pid
            .expect("pid");
        let out = rt.log_paths(&id).expect("paths").stdout;
        eventually("hello", LONG, || {
            fs::read_to_string(&out).is_ok_and(|s| s == "hello\n")
        })
        .await;
        pid
    };
    let _guard = KillOnPanic(pid);
    let rt = ProcessRuntime::new(dir.path().to_path_buf(), opts).expect("runtime");
    // No recover(): stop adopts the instance from its state file.
    rt.stop(&id, Duration::from_secs(5)).await.expect("stop");
    assert!(gone(pid));
    let _ = rustix::process::waitpid(
        rustix::process::Pid::from_raw(pid as i32),
        rustix::process::WaitOptions::NOHANG,
    );
    rt.remove(&id).await.expect("remove");
    assert!(!dir.path().join(&id).join("state.json").exists());
    assert_eq!(rt.logs(&id, 10).await.expect("kept logs"), "hello\n");
    assert!(rt.recover().await.expect("recover").is_empty());
}

/// `securityContext.runAsUser`/`runAsGroup`: the process (and an exec beside it) runs as
/// that uid and gid, and still writes its logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_runs_as_its_configured_user() {
    assert!(
        rustix::process::geteuid().is_root(),
        "a_process_runs_as_its_configured_user: switching users needs root (CI runs as root)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let id = id("as-user");
    let mut instance = spec(
        &id,
        &[
            "/bin/sh",
            "-c",
            "id -u; id -g; echo oops >&2; exec sleep 1000",
        ],
    );
    instance.service.security_context =
        serde_json::from_value(serde_json::json!({"runAsUser": 4242, "runAsGroup": 4343}))
            .expect("security context");
    let pid = rt.start(&instance).await.expect("start").pid.expect("pid");
    let status = || fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    eventually("the logs of the first lines", LONG, || {
        fs::read_to_string(dir.path().join(&id).join("stderr.log"))
            .is_ok_and(|l| l.contains("oops"))
    })
    .await;
    assert!(
        status().contains("Uid:\t4242\t4242\t4242\t4242"),
        "{}",
        status()
    );
    assert!(
        status().contains("Gid:\t4343\t4343\t4343\t4343"),
        "{}",
        status()
    );
    let logs = rt.logs(&id, 10).await.expect("logs");
    assert!(logs.starts_with("4242\n4343\n"), "{logs}");

    let exec = rt
        .exec_command(&id, &["id".to_string(), "-u".to_string()], false)
        .await
        .expect("exec")
        .output()
        .await
        .expect("exec runs");
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "4242\n");
    rt.remove(&id).await.expect("remove");
}

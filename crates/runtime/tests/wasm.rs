//! The wasm runtime against real modules assembled from WAT text (no mocks, no toolchain):
//! output, exit codes, traps, stops, limits, preopened directories, module sources.

use canopy_model::ServiceSpec;
use canopy_runtime::{
    AGENT_RESTARTED, InstanceSpec, PreparedModule, Runtime, RuntimeError, WasmRuntime,
    WasmRuntimeOptions,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

const LONG: Duration = Duration::from_secs(30);

/// WASI preview 1 imports and a page of memory; `body` is `_start`'s.
fn command(body: &str, data: &str) -> String {
    format!(
        r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "{data}")
  ;; Writes len bytes at ptr to fd, through the iovec at 0.
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  ;; NULs to newlines in [ptr, ptr+len).
  (func $lines (param $ptr i32) (param $len i32) (local $i i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (if (i32.eqz (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
        (then (i32.store8 (i32.add (local.get $ptr) (local.get $i)) (i32.const 10))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next))))
  (func (export "_start") {body}))"#
    )
}

fn hello() -> String {
    command(
        "(call $write (i32.const 1) (i32.const 1024) (i32.const 16))
         (call $write (i32.const 2) (i32.const 1040) (i32.const 5))",
        "hello from wasm\\0aoops\\0a",
    )
}

/// Prints its arguments, then its environment, one per line.
fn echo() -> String {
    command(
        "(drop (call $args_sizes_get (i32.const 16) (i32.const 20)))
         (drop (call $args_get (i32.const 4096) (i32.const 8192)))
         (call $lines (i32.const 8192) (i32.load (i32.const 20)))
         (call $write (i32.const 1) (i32.const 8192) (i32.load (i32.const 20)))
         (drop (call $environ_sizes_get (i32.const 16) (i32.const 20)))
         (drop (call $environ_get (i32.const 4096) (i32.const 8192)))
         (call $lines (i32.const 8192) (i32.load (i32.const 20)))
         (call $write (i32.const 1) (i32.const 8192) (i32.load (i32.const 20)))",
        "",
    )
}

fn exits(code: i32) -> String {
    command(&format!("(call $proc_exit (i32.const {code}))"), "")
}

fn endless() -> String {
    command("(loop $forever (br $forever))", "")
}

/// Opens `path` for reading under the first preopened directory (fd 3) and copies it to
/// stdout; exits with the WASI errno when the open fails.
fn cat(path: &str) -> String {
    command(
        &format!(
            "(local $errno i32)
             (local.set $errno (call $path_open (i32.const 3) (i32.const 0) (i32.const 1024)
                (i32.const {len}) (i32.const 0) (i64.const 2) (i64.const 2) (i32.const 0)
                (i32.const 32)))
             (if (local.get $errno) (then (call $proc_exit (local.get $errno))))
             (i32.store (i32.const 40) (i32.const 8192))
             (i32.store (i32.const 44) (i32.const 4096))
             (drop (call $fd_read (i32.load (i32.const 32)) (i32.const 40) (i32.const 1) (i32.const 48)))
             (call $write (i32.const 1) (i32.const 8192) (i32.load (i32.const 48)))",
            len = path.len()
        ),
        path,
    )
}

fn service(module: &str, extra: Value) -> ServiceSpec {
    let mut svc = json!({"name": "mod", "runtime": "wasm", "module": module});
    if let (Some(s), Some(extra)) = (svc.as_object_mut(), extra.as_object()) {
        s.extend(extra.clone());
    }
    serde_json::from_value(svc).expect("service spec")
}

fn spec(id: &str, service: ServiceSpec) -> InstanceSpec {
    InstanceSpec {
        secrets: Default::default(),
        id: id.to_string(),
        generation: 1,
        service,
        env: BTreeMap::from([("CANOPY_INSTANCE".to_string(), id.to_string())]),
        prepared: Default::default(),
    }
}

fn runtime(dir: &Path) -> WasmRuntime {
    WasmRuntime::new(dir.join("state"), WasmRuntimeOptions::default()).expect("runtime")
}

/// Writes `wat` as `<name>.wat` in `dir`; its absolute path is the module location.
fn module_file(dir: &Path, name: &str, wat: &str) -> String {
    let path = dir.join(format!("{name}.wat"));
    std::fs::write(&path, wat).expect("write module");
    path.display().to_string()
}

async fn run_to_end(rt: &WasmRuntime, id: &str, svc: ServiceSpec) -> canopy_runtime::Exit {
    rt.start(&spec(id, svc)).await.expect("start");
    tokio::time::timeout(LONG, rt.wait(id))
        .await
        .expect("ends in time")
        .expect("wait")
}

#[tokio::test]
async fn hello_world_goes_to_the_log_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let m = module_file(dir.path(), "hello", &hello());
    let exit = run_to_end(&rt, "hello", service(&m, json!({}))).await;
    assert!(exit.success(), "{exit:?}");
    assert_eq!(exit.reason, "exited with code 0");
    assert_eq!(
        rt.logs("hello", 10).await.expect("logs"),
        "hello from wasm\noops\n"
    );
    let paths = rt.log_paths("hello").expect("paths");
    assert_eq!(
        std::fs::read_to_string(paths.stderr).expect("stderr"),
        "oops\n"
    );
    // The compiled module is cached on disk for the next start.
    let compiled = std::fs::read_dir(dir.path().join("state/@compiled"))
        .expect("cache dir")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
        .count();
    assert_eq!(compiled, 1);
}

#[tokio::test]
async fn args_and_env_reach_the_module() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let m = module_file(dir.path(), "echo", &echo());
    let svc = service(
        &m,
        json!({"args": ["--threshold", "0.75"], "env": {"MODE": "fast"}}),
    );
    let exit = run_to_end(&rt, "echo", svc).await;
    assert!(exit.success(), "{exit:?}");
    let out = rt.logs("echo", 100).await.expect("logs");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], [m.as_str(), "--threshold", "0.75"], "{out}");
    assert!(lines.contains(&"MODE=fast"), "{out}");
    assert!(lines.contains(&"CANOPY_INSTANCE=echo"), "{out}");
}

#[tokio::test]
async fn a_non_zero_exit_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let m = module_file(dir.path(), "exit3", &exits(3));
    let exit = run_to_end(&rt, "exit3", service(&m, json!({}))).await;
    assert_eq!(
        (exit.code, exit.reason.as_str()),
        (Some(3), "exited with code 3")
    );
    assert!(!exit.success());
}

#[tokio::test]
async fn a_trap_is_reported_with_its_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let m = module_file(dir.path(), "trap", &command("unreachable", ""));
    let exit = run_to_end(&rt, "trap", service(&m, json!({}))).await;
    assert_eq!(exit.code, None);
    assert!(exit.reason.starts_with("trapped: "), "{exit:?}");
    assert!(exit.reason.contains("unreachable"), "{exit:?}");
}

#[tokio::test]
async fn an_endless_loop_is_stopped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let m = module_file(dir.path(), "loop", &endless());
    rt.start(&spec("loop", service(&m, json!({}))))
        .await
        .expect("start");
    // It computes (its CPU clock moves) and the agent's own threads stay free meanwhile.
    let deadline = Instant::now() + LONG;
    while rt.stats("loop").await.expect("stats").cpu_usage_ns < 20_000_000 {
        assert!(Instant::now() < deadline, "the loop never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let asked = Instant::now();
    rt.stop("loop", Duration::from_secs(5)).await.expect("stop");
    let exit = rt.wait("loop").await.expect("wait");
    assert_eq!(exit.reason, "stopped");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );
    assert!(rt.stats("loop").await.is_err(), "no stats once ended");
}

#[tokio::test]
async fn one_shot_work_is_killed_at_its_wall_clock_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let m = module_file(dir.path(), "loop", &endless());
    let svc = service(&m, json!({"wasm": {"timeoutSeconds": 1}}));
    let began = Instant::now();
    let exit = run_to_end(&rt, "timed", svc).await;
    assert_eq!(exit.reason, "killed: ran past its wall-clock limit of 1s");
    assert!(began.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn growing_past_the_memory_cap_traps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    // 1000 pages are 62.5 MiB; the service may have 32.
    let m = module_file(
        dir.path(),
        "grow",
        &command("(drop (memory.grow (i32.const 1000)))", ""),
    );
    let svc = service(&m, json!({"resources": {"memory": "32Mi"}}));
    let exit = run_to_end(&rt, "grow", svc).await;
    assert!(exit.oom_killed, "{exit:?}");
    assert!(
        exit.reason.contains("memory limit exceeded") && exit.reason.contains("limit is 32 MiB"),
        "{exit:?}"
    );
    // Within the cap the same grow succeeds.
    let roomy = service(&m, json!({"resources": {"memory": "128Mi"}}));
    assert!(run_to_end(&rt, "grow-ok", roomy).await.success());
}

#[tokio::test]
async fn only_declared_directories_can_be_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::write(shared.join("note.txt"), "from the host\n").expect("write");
    std::fs::write(dir.path().join("secret.txt"), "not yours\n").expect("write");
    let rt = runtime(dir.path());
    let preopen = json!({"wasm": {"preopens": [
        {"hostPath": shared.display().to_string(), "guestPath": "/data", "readOnly": true}]}});

    let m = module_file(dir.path(), "cat", &cat("note.txt"));
    let exit = run_to_end(&rt, "declared", service(&m, preopen.clone())).await;
    assert!(exit.success(), "{exit:?}");
    assert_eq!(
        rt.logs("declared", 5).await.expect("logs"),
        "from the host\n"
    );

    // Nothing preopened: there is no directory to open anything under (EBADF, 8).
    let exit = run_to_end(&rt, "undeclared", service(&m, json!({}))).await;
    assert_eq!(exit.code, Some(8), "{exit:?}");
    // Out of the preopened directory: refused (ENOTCAPABLE, 76, or EPERM, 63).
    let escape = module_file(dir.path(), "escape", &cat("../secret.txt"));
    let exit = run_to_end(&rt, "escape", service(&escape, preopen)).await;
    assert!(matches!(exit.code, Some(76) | Some(63)), "{exit:?}");
    assert_eq!(rt.logs("escape", 5).await.expect("logs"), "");

    // A declared directory that does not exist fails the start, naming the field.
    let missing =
        json!({"wasm": {"preopens": [{"hostPath": "/nonexistent-dir", "guestPath": "/x"}]}});
    let e = rt
        .start(&spec("missing", service(&m, missing)))
        .await
        .expect_err("no such directory");
    assert!(e.to_string().contains("wasm.preopens"), "{e}");
}

#[tokio::test]
async fn a_cpu_rate_throttles_and_never_kills() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let m = module_file(dir.path(), "loop", &endless());
    rt.start(&spec(
        "slow",
        service(&m, json!({"resources": {"cpu": "100m"}})),
    ))
    .await
    .expect("start");
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let wall = began.elapsed();
    let used = Duration::from_nanos(rt.stats("slow").await.expect("still running").cpu_usage_ns);
    // 100m of 2 s is 200 ms; a tick's overshoot and a burst are allowed, a full core is not.
    assert!(used > Duration::from_millis(50), "it ran: {used:?}");
    assert!(used < wall / 4, "throttled: {used:?} of CPU in {wall:?}");
    rt.stop("slow", Duration::ZERO).await.expect("stop");
    assert_eq!(rt.wait("slow").await.expect("wait").reason, "stopped");
}

#[tokio::test]
async fn instances_do_not_survive_their_runtime_and_say_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let m = module_file(dir.path(), "loop", &endless());
    let done = module_file(dir.path(), "exit0", &exits(0));
    {
        let rt = runtime(dir.path());
        rt.start(&spec("looping", service(&m, json!({}))))
            .await
            .expect("start");
        run_to_end(&rt, "finished", service(&done, json!({}))).await;
    }
    let rt = runtime(dir.path());
    let mut found = rt.recover().await.expect("recover");
    found.sort_by(|a, b| a.id.cmp(&b.id));
    let ids: Vec<(&str, bool)> = found.iter().map(|r| (r.id.as_str(), r.running)).collect();
    assert_eq!(ids, [("finished", false), ("looping", false)]);
    assert_eq!(
        rt.wait("looping").await.expect("wait").reason,
        AGENT_RESTARTED
    );
    assert!(rt.wait("finished").await.expect("wait").success());
    // Started again, it runs (its compiled module comes from the disk cache).
    rt.start(&spec("looping", service(&m, json!({}))))
        .await
        .expect("restart");
    rt.remove("looping").await.expect("remove");
    assert!(!dir.path().join("state/looping").exists());
}

type Body = std::sync::Arc<std::sync::Mutex<Vec<u8>>>;

/// Serves what `body` holds over plain HTTP on loopback to every request; returns the URL.
async fn serve(body: Body) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let body = body.lock().expect("body").clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}/m.wasm")
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn url_modules_are_checked_against_their_digest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let wasm = wat::parse_str(hello()).expect("assemble");
    let url = serve(Body::new(wasm.clone().into())).await;

    let good = service(&url, json!({"wasm": {"sha256": sha256(&wasm)}}));
    assert!(run_to_end(&rt, "url", good).await.success());
    // The last line of stdout, then of stderr.
    assert_eq!(
        rt.logs("url", 1).await.expect("logs"),
        "hello from wasm\noops\n"
    );

    let wrong = service(&url, json!({"wasm": {"sha256": "0".repeat(64)}}));
    let e = rt.start(&spec("wrong", wrong)).await.expect_err("digest");
    assert!(e.to_string().contains("expected 0000"), "{e}");

    let none = service(&url, json!({}));
    let e = rt.start(&spec("none", none)).await.expect_err("no digest");
    assert!(e.to_string().contains("wasm.sha256 is required"), "{e}");
}

#[tokio::test]
async fn a_url_without_digest_pins_its_first_download() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = events.clone();
    rt.set_events(std::sync::Arc::new(move |_id: &str, text: &str| {
        seen.lock().expect("events").push(text.to_string());
    }));
    let first = wat::parse_str(hello()).expect("assemble");
    let body = Body::new(first.clone().into());
    let url = serve(body.clone()).await;
    let pinned = service(&url, json!({"wasm": {"pinFirstFetch": true}}));
    assert!(run_to_end(&rt, "pinned", pinned.clone()).await.success());
    let warned = events.lock().expect("events").clone();
    assert_eq!(warned.len(), 1, "{warned:?}");
    assert!(warned[0].contains(&sha256(&first)), "{warned:?}");
    // Started again, it runs the kept download, with no new warning.
    assert!(run_to_end(&rt, "pinned", pinned.clone()).await.success());
    assert_eq!(events.lock().expect("events").len(), 1);
    // The URL serving something else later is refused against the pin.
    *body.lock().expect("body") = wat::parse_str(exits(0)).expect("assemble");
    let kept = dir
        .path()
        .join(format!("state/@modules/{}.wasm", sha256(&first)));
    std::fs::remove_file(kept).expect("drop the kept download");
    let e = rt.start(&spec("moved", pinned)).await.expect_err("pin");
    assert!(
        e.to_string()
            .contains(&format!("expected {}", sha256(&first))),
        "{e}"
    );
}

#[tokio::test]
async fn starts_fail_clearly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let e = rt
        .start(&spec("oci", service("registry.local/filter:1", json!({}))))
        .await
        .expect_err("oci");
    // The node's image hook pulls OCI references; a runtime without one says so.
    assert!(e.to_string().contains("no image store"), "{e}");
    let bad = module_file(dir.path(), "bad", "(module (func $f (result i32)))");
    let e = rt
        .start(&spec("bad", service(&bad, json!({}))))
        .await
        .expect_err("invalid");
    assert!(matches!(e, RuntimeError::InvalidSpec { .. }), "{e}");
    let e = rt
        .start(&spec("none", service("/nonexistent/m.wasm", json!({}))))
        .await
        .expect_err("missing");
    assert!(e.to_string().contains("/nonexistent/m.wasm"), "{e}");
}

/// What the node's image hook hands over for an OCI reference: an artifact's module is
/// checked against its layer digest, a plain image's file runs as it is.
#[tokio::test]
async fn a_pulled_module_runs_and_an_artifact_must_hash_to_its_layer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = runtime(dir.path());
    let wasm = wat::parse_str(hello()).expect("assemble");
    let path = dir.path().join("blob");
    std::fs::write(&path, &wasm).expect("write module");
    let pulled = |layer: String, file: Option<&str>| {
        let mut s = spec("pulled", service("registry.local/hello:1", json!({})));
        s.prepared.module = Some(PreparedModule {
            path: path.clone(),
            layer,
            file: file.map(str::to_string),
        });
        s
    };
    let wrong = format!("sha256:{}", "0".repeat(64));
    let e = rt
        .start(&pulled(wrong.clone(), None))
        .await
        .expect_err("a layer digest the module does not have");
    assert!(e.to_string().contains(&wrong), "{e}");

    rt.start(&pulled(format!("sha256:{}", sha256(&wasm)), None))
        .await
        .expect("start the artifact's module");
    let exit = tokio::time::timeout(LONG, rt.wait("pulled"))
        .await
        .expect("ends in time")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
    assert!(
        rt.logs("pulled", 10)
            .await
            .expect("logs")
            .contains("hello from wasm"),
        "output of the pulled module"
    );
    // A file of a plain image: its layer is a tar, so only the store checked it.
    rt.start(&pulled(wrong, Some("/app/hello.wasm")))
        .await
        .expect("start the image's module");
}

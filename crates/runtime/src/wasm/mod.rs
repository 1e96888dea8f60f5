//! The `wasm` runtime: WebAssembly modules run by wasmtime with WASI preview 1, inside the
//! node agent. Each instance has its own store and is a task on the runtime's own threads
//! (never the agent's), yielding at every epoch tick, so a looping or trapping module never
//! stalls the agent. Output goes to the same `stdout.log`/`stderr.log` as other runtimes.
//!
//! In-process instances cannot outlive their agent: after an agent restart `recover`
//! reports each one as ended ("the node agent restarted"), and the agent's restart policy
//! starts it again at once, counted as a restart.

mod cache;
mod engine;
mod limits;
mod run;
mod source;

use crate::state::{self, PersistedState};
use crate::supervise::{LogPaths, log_paths, open_logs, read_logs, rotate_logs, validate_id};
use crate::{
    Capabilities, Events, Exit, InstanceSpec, KEPT_LOGS_BUDGET, Recovered, Runtime, RuntimeError,
    Started, Stats,
};
use async_trait::async_trait;
use canopy_model::RuntimeKind;
use run::{Launch, Meters, StoreData};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// Why a recovered instance is not running: it ran inside the previous agent.
pub const AGENT_RESTARTED: &str =
    "stopped when the node agent restarted (wasm instances run inside the agent)";

/// Settings of a [`WasmRuntime`].
#[derive(Debug, Clone)]
pub struct WasmRuntimeOptions {
    /// Threads that run instances (they yield every tick, so a few serve many).
    pub worker_threads: usize,
    /// Compiled modules on disk, all together, past which the least recently used go.
    pub compiled_budget: u64,
    pub max_log_bytes: u64,
    pub keep_logs_on_remove: bool,
    pub kept_logs_budget: u64,
}

impl Default for WasmRuntimeOptions {
    fn default() -> Self {
        WasmRuntimeOptions {
            worker_threads: 2,
            compiled_budget: 512 << 20,
            max_log_bytes: 10 << 20,
            keep_logs_on_remove: false,
            kept_logs_budget: KEPT_LOGS_BUDGET,
        }
    }
}

/// One generation of an instance.
struct Instance {
    dir: PathBuf,
    exit: watch::Receiver<Option<Exit>>,
    task: Option<AbortHandle>,
    meters: Arc<Meters>,
    rotate_lock: Arc<Mutex<()>>,
}

impl Instance {
    fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }
}

/// Runs WebAssembly modules; see the module docs.
pub struct WasmRuntime {
    state_dir: PathBuf,
    opts: WasmRuntimeOptions,
    engine: engine::WasmEngine,
    linker: Arc<wasmtime::Linker<StoreData>>,
    compiled: Arc<cache::Compiled>,
    sources: source::Sources,
    /// Instances run here, not on the agent's runtime: `Option` to shut it down on drop.
    threads: Option<tokio::runtime::Runtime>,
    instances: Mutex<HashMap<String, Arc<Instance>>>,
    starting: tokio::sync::Mutex<()>,
    events: Mutex<Option<Events>>,
}

fn engine_error(what: &'static str, e: wasmtime::Error) -> RuntimeError {
    RuntimeError::io(what, "wasmtime", std::io::Error::other(e.to_string()))
}

impl WasmRuntime {
    /// A runtime keeping instances under `state_dir/<id>`, downloads under
    /// `state_dir/@modules` and compiled modules under `state_dir/@compiled`.
    pub fn new(state_dir: PathBuf, opts: WasmRuntimeOptions) -> Result<Self, RuntimeError> {
        fs::create_dir_all(&state_dir)
            .map_err(|e| RuntimeError::io("create state directory", &state_dir, e))?;
        let engine = engine::WasmEngine::new().map_err(|e| engine_error("start", e))?;
        let linker = run::linker(engine.engine()).map_err(|e| engine_error("link WASI", e))?;
        let compiled = cache::Compiled::new(
            state_dir.join("@compiled"),
            opts.compiled_budget,
            engine.fingerprint(),
        )?;
        let sources = source::Sources::new(state_dir.join("@modules"))?;
        let threads = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.worker_threads.max(1))
            .thread_name("canopy-wasm")
            .enable_all()
            .build()
            .map_err(|e| RuntimeError::io("start threads for", "wasm instances", e))?;
        Ok(WasmRuntime {
            state_dir,
            opts,
            engine,
            linker: Arc::new(linker),
            compiled: Arc::new(compiled),
            sources,
            threads: Some(threads),
            instances: Mutex::new(HashMap::new()),
            starting: tokio::sync::Mutex::new(()),
            events: Mutex::new(None),
        })
    }

    fn handle(&self) -> Result<tokio::runtime::Handle, RuntimeError> {
        self.threads
            .as_ref()
            .map(|t| t.handle().clone())
            .ok_or(RuntimeError::Unsupported {
                what: "starting after shutdown",
            })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Instance>>> {
        self.instances
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, id: &str) -> Result<Arc<Instance>, RuntimeError> {
        validate_id(id)?;
        self.table()
            .get(id)
            .cloned()
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })
    }

    fn tell(&self, id: &str, text: &str) {
        let events = self
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(events) = events {
            events(id, text);
        }
    }

    async fn start_locked(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        let id = spec.id.as_str();
        validate_id(id)?;
        let svc = &spec.service;
        let invalid = |reason: String| RuntimeError::InvalidSpec {
            service: svc.name.clone(),
            reason,
        };
        if svc.runtime != RuntimeKind::Wasm {
            return Err(invalid(format!(
                "it asks for the {} runtime, not wasm",
                svc.runtime.as_str()
            )));
        }
        let Some(module) = svc.module.as_deref() else {
            return Err(invalid("module is required".to_string()));
        };
        if let Some(prev) = self.table().get(id)
            && !prev.exited()
        {
            return Err(RuntimeError::AlreadyRunning {
                id: id.to_string(),
                pid: 0,
            });
        }
        let loaded = self
            .sources
            .load(&svc.name, module, svc.wasm.as_ref())
            .await?;
        if let Some(warning) = &loaded.warning {
            self.tell(id, warning);
        }
        let (compiled, engine, digest) = (
            self.compiled.clone(),
            self.engine.engine().clone(),
            loaded.digest.clone(),
        );
        let module_code = self
            .handle()?
            .spawn_blocking(move || compiled.get(&engine, &digest, &loaded.wasm))
            .await
            .map_err(|e| invalid(format!("compiling module {module}: {e}")))?
            .map_err(|e| invalid(format!("module {module} does not compile: {e}")))?;

        let dir = self.state_dir.join(id);
        fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
        crate::follow::keep_previous_run(&log_paths(&dir));
        let (stdout, stderr) = open_logs(&dir)?;
        let mut env: Vec<(String, String)> = svc.env.clone().into_iter().collect();
        env.retain(|(k, _)| !spec.env.contains_key(k));
        env.extend(spec.env.clone());
        let options = svc.wasm.clone().unwrap_or_default();
        let launch = Launch {
            service: svc.name.clone(),
            program: module.to_string(),
            args: svc.args.clone(),
            env,
            preopens: options.preopens,
            memory_bytes: svc.resources.memory.0.saturating_mul(1 << 20),
            millicores: svc.resources.cpu.0,
            wall_clock_limit: options.timeout_seconds.map(Duration::from_secs),
            stdout,
            stderr,
        };
        let meters = Arc::new(Meters::default());
        let prepared = run::prepare(self.engine.engine(), launch, &meters)?;
        let mut command = vec![module.to_string()];
        command.extend(svc.args.iter().cloned());
        let persisted =
            PersistedState::new(id, spec.generation, 0, 0, command, None, Default::default());
        state::write_atomic(&dir, &persisted)?;

        let handle = self.handle()?;
        let (tx, rx) = watch::channel(None);
        let running = handle.spawn(run::run(
            self.linker.clone(),
            module_code,
            prepared,
            meters.clone(),
        ));
        let abort = running.abort_handle();
        let state_dir = dir.clone();
        handle.spawn(async move {
            let exit = match running.await {
                Ok(exit) => exit,
                Err(e) if e.is_cancelled() => stopped(),
                Err(e) => Exit {
                    code: None,
                    signal: None,
                    oom_killed: false,
                    reason: format!("the runtime failed running it: {e}"),
                },
            };
            let mut persisted = persisted;
            persisted.exit = Some(exit.clone());
            if let Err(e) = state::write_atomic(&state_dir, &persisted) {
                tracing::warn!(error = %e, "cannot record a wasm instance's exit");
            }
            let _ = tx.send(Some(exit));
        });
        self.table().insert(
            id.to_string(),
            Arc::new(Instance {
                dir,
                exit: rx,
                task: Some(abort),
                meters,
                rotate_lock: Arc::new(Mutex::new(())),
            }),
        );
        tracing::info!(id, generation = spec.generation, module, "started");
        Ok(Started { pid: None })
    }

    /// The instance under `dir` as the previous agent left it.
    fn recovered(&self, id: &str, dir: &Path) -> Result<Recovered, RuntimeError> {
        let st = state::read(dir)?;
        let exit = st.exit.unwrap_or_else(|| Exit {
            code: None,
            signal: None,
            oom_killed: false,
            reason: AGENT_RESTARTED.to_string(),
        });
        let (_tx, rx) = watch::channel(Some(exit));
        self.table().insert(
            id.to_string(),
            Arc::new(Instance {
                dir: dir.to_path_buf(),
                exit: rx,
                task: None,
                meters: Arc::new(Meters::default()),
                rotate_lock: Arc::new(Mutex::new(())),
            }),
        );
        Ok(Recovered {
            id: id.to_string(),
            generation: st.generation,
            pid: None,
            running: false,
        })
    }
}

fn stopped() -> Exit {
    Exit {
        code: None,
        signal: None,
        oom_killed: false,
        reason: "stopped".to_string(),
    }
}

impl Drop for WasmRuntime {
    fn drop(&mut self) {
        // Allowed inside async contexts, unlike dropping the runtime.
        if let Some(t) = self.threads.take() {
            t.shutdown_background();
        }
    }
}

#[async_trait]
impl Runtime for WasmRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Wasm
    }

    /// Modules share the agent's process: no ports or namespaces of their own, no exec.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            stats: true,
            logs: true,
            limits: true,
            ..Capabilities::default()
        }
    }

    fn set_events(&self, events: Events) {
        *self.events.lock().unwrap_or_else(PoisonError::into_inner) = Some(events);
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        let _guard = self.starting.lock().await;
        self.start_locked(spec).await
    }

    async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        let mut rx = self.get(id)?.exit.clone();
        let exit = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| RuntimeError::Shutdown { id: id.to_string() })?
            .clone();
        exit.ok_or_else(|| RuntimeError::Shutdown { id: id.to_string() })
    }

    /// Ends the task at its next yield (within a tick while it computes); no grace: a
    /// module has no signal handler to run.
    async fn stop(&self, id: &str, _grace: Duration) -> Result<(), RuntimeError> {
        let inst = self.get(id)?;
        if let Some(task) = &inst.task {
            task.abort();
        }
        let mut rx = inst.exit.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(Option::is_some)).await;
        if inst.exited() {
            Ok(())
        } else {
            Err(RuntimeError::StopTimeout {
                id: id.to_string(),
                waited: Duration::from_secs(10),
            })
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        validate_id(id)?;
        if self.table().contains_key(id) {
            self.stop(id, Duration::ZERO).await?;
            self.table().remove(id);
        }
        let dir = self.state_dir.join(id);
        let res = if self.opts.keep_logs_on_remove {
            let kept = if dir.exists() {
                state::remove(&dir)
            } else {
                Ok(())
            };
            crate::retention::prune(&self.state_dir, self.opts.kept_logs_budget);
            kept
        } else {
            crate::instance::remove_dir_if_exists(&dir)
        };
        tracing::info!(id, "removed");
        res
    }

    async fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        let inst = self.get(id)?;
        if inst.exited() {
            return Err(RuntimeError::NotRunning { id: id.to_string() });
        }
        rotate_logs(&inst.dir, self.opts.max_log_bytes, &inst.rotate_lock);
        Ok(Stats {
            cpu_usage_ns: inst.meters.cpu.latest(),
            memory_bytes: inst.meters.memory_bytes.load(Ordering::Relaxed),
        })
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<String, RuntimeError> {
        validate_id(id)?;
        let dir = match self.table().get(id) {
            Some(inst) => {
                if !inst.exited() {
                    rotate_logs(&inst.dir, self.opts.max_log_bytes, &inst.rotate_lock);
                }
                inst.dir.clone()
            }
            None => self.state_dir.join(id),
        };
        if !dir.is_dir() {
            return Err(RuntimeError::NotFound { id: id.to_string() });
        }
        read_logs(&log_paths(&dir), tail)
    }

    fn log_paths(&self, id: &str) -> Result<LogPaths, RuntimeError> {
        crate::instance::instance_log_paths(&self.state_dir, id)
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        let entries = fs::read_dir(&self.state_dir)
            .map_err(|e| RuntimeError::io("read", &self.state_dir, e))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            // `@modules`, `@compiled`, and kept logs of removed instances are not instances.
            if validate_id(&id).is_err() || !dir.join(state::STATE_FILE).is_file() {
                continue;
            }
            match self.recovered(&id, &dir) {
                Ok(r) => out.push(r),
                Err(e) => tracing::warn!(id, error = %e, "unreadable wasm instance state"),
            }
        }
        Ok(out)
    }
}

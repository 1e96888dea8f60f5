//! The `wasm` runtime: WebAssembly modules run by wasmtime with WASI preview 1, inside the
//! node agent. Each instance has its own store and is a task on the runtime's own threads
//! (never the agent's), yielding at every epoch tick, so a looping or trapping module never
//! stalls the agent. Output goes to the same `stdout.log`/`stderr.log` as other runtimes.
//!
//! A module comes from a file, an http(s) URL or a registry (an OCI reference, pulled by the
//! node's image hook: [`Capabilities::oci_modules`]); see `source.rs`. Starting is `start.rs`,
//! one run `run.rs`.
//!
//! In-process instances cannot outlive their agent: after an agent restart `recover`
//! reports each one as ended ("the node agent restarted"), and the agent's restart policy
//! starts it again at once, counted as a restart (`recover.rs`).

mod cache;
mod engine;
mod limits;
mod recover;
mod run;
mod source;
mod start;

pub use recover::AGENT_RESTARTED;

use crate::state;
use crate::supervise::{LogPaths, log_paths, read_logs, rotate_logs, validate_id};
use crate::{
    Capabilities, Events, Exit, InstanceSpec, KEPT_LOGS_BUDGET, Recovered, Runtime, RuntimeError,
    Started, Stats,
};
use async_trait::async_trait;
use canopy_model::RuntimeKind;
use run::{Meters, StoreData};
use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::AbortHandle;

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
            oci_modules: true,
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
        self.recover_all()
    }
}

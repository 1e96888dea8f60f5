//! Starting one generation of an instance: the module loaded (from its source or what the
//! image hook pulled) and compiled (or found compiled), its store prepared with its limits,
//! and its run spawned on the runtime's threads with a task that records how it ended.

use super::run::{self, Launch, Meters};
use super::{Instance, WasmRuntime};
use crate::state::{self, PersistedState};
use crate::supervise::{log_paths, open_logs, validate_id};
use crate::{Exit, InstanceSpec, RuntimeError, Started};
use canopy_model::RuntimeKind;
use std::fs;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

impl WasmRuntime {
    /// Starts one generation; callers hold `starting`.
    pub(super) async fn start_locked(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
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
            .load(
                &svc.name,
                module,
                svc.wasm.as_ref(),
                spec.prepared.module.as_ref(),
            )
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
        let mut options = svc.wasm.clone().unwrap_or_default();
        // Volumes are preopened directories at their paths, their names in the environment.
        if let Some(volumes) = &spec.prepared.volumes {
            env.extend(volumes.env(false));
            options
                .preopens
                .extend(volumes.volumes.iter().map(|v| canopy_model::Preopen {
                    host_path: v.host.display().to_string(),
                    guest_path: v.path.clone(),
                    read_only: v.read_only,
                }));
        }
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
}

fn stopped() -> Exit {
    Exit {
        code: None,
        signal: None,
        oom_killed: false,
        reason: "stopped".to_string(),
    }
}

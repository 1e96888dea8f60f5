//! What a restarted agent finds: the instances its predecessor ran. They ran inside it, so
//! each is reported ended (its recorded exit, else [`AGENT_RESTARTED`]) and the agent's
//! restart policy starts it again.

use super::run::Meters;
use super::{Instance, WasmRuntime};
use crate::state;
use crate::supervise::validate_id;
use crate::{Exit, Recovered, RuntimeError};
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Why a recovered instance is not running: it ran inside the previous agent.
pub const AGENT_RESTARTED: &str =
    "stopped when the node agent restarted (wasm instances run inside the agent)";

impl WasmRuntime {
    /// Every instance the previous agent left, each reported ended.
    pub(super) fn recover_all(&self) -> Result<Vec<Recovered>, RuntimeError> {
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

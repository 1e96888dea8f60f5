//! Compiled modules: in memory (replicas of one module share its code) and on disk as
//! wasmtime's serialized artifacts named `<module sha256>-<engine fingerprint>.cwasm`, so an
//! agent restart or another replica does not compile again. The disk cache is bounded: past
//! its budget the least recently used artifacts go, as unused images do.

use crate::RuntimeError;
use std::collections::HashMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;
use wasmtime::{Engine, Module};

/// Modules kept compiled in memory at most (each instance also holds its own).
const IN_MEMORY: usize = 64;

pub(crate) struct Compiled {
    dir: PathBuf,
    budget_bytes: u64,
    fingerprint: String,
    memory: Mutex<HashMap<String, (Module, SystemTime)>>,
}

impl Compiled {
    pub(crate) fn new(
        dir: PathBuf,
        budget_bytes: u64,
        fingerprint: &str,
    ) -> Result<Compiled, RuntimeError> {
        fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
        Ok(Compiled {
            dir,
            budget_bytes,
            fingerprint: fingerprint.to_string(),
            memory: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir
            .join(format!("{digest}-{}.cwasm", self.fingerprint))
    }

    /// The compiled module of `wasm` (whose sha256 is `digest`): from memory, from disk, or
    /// compiled now (blocking: call it off the async threads). `Err` is the compile error.
    pub(crate) fn get(
        &self,
        engine: &Engine,
        digest: &str,
        wasm: &[u8],
    ) -> Result<Module, wasmtime::Error> {
        if let Some((m, used)) = self.lock().get_mut(digest) {
            *used = SystemTime::now();
            return Ok(m.clone());
        }
        let path = self.path(digest);
        // SAFETY: artifacts in this directory are written only by `store` below from
        // wasmtime's own `serialize` of this engine configuration (the fingerprint in the
        // name), in the agent's private state directory; wasmtime checks the header again.
        let module = match unsafe { Module::deserialize_file(engine, &path) } {
            Ok(m) => {
                touch(&path);
                m
            }
            Err(_) => {
                let m = Module::new(engine, wasm)?;
                self.store(&m, &path);
                m
            }
        };
        self.remember(digest, &module);
        Ok(module)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Module, SystemTime)>> {
        self.memory.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, digest: &str, module: &Module) {
        let mut memory = self.lock();
        if memory.len() >= IN_MEMORY
            && let Some(oldest) = memory
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(d, _)| d.clone())
        {
            memory.remove(&oldest);
        }
        memory.insert(digest.to_string(), (module.clone(), SystemTime::now()));
    }

    /// A failed write only costs a compile later: logged, not an error.
    fn store(&self, module: &Module, path: &std::path::Path) {
        let written = module
            .serialize()
            .map_err(|e| e.to_string())
            .and_then(|bytes| super::source::write_atomic(path, &bytes).map_err(|e| e.to_string()));
        match written {
            Ok(()) => self.collect(),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "compiled module not cached")
            }
        }
    }

    /// Drops the least recently used artifacts past the budget.
    pub(crate) fn collect(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(PathBuf, u64, SystemTime)> = entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                Some((e.path(), m.len(), m.modified().ok()?))
            })
            .collect();
        files.sort_by_key(|(_, _, modified)| *modified);
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        for (path, len, _) in files {
            if total <= self.budget_bytes {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                tracing::info!(path = %path.display(), "dropped a compiled module past the cache budget");
                total = total.saturating_sub(len);
            }
        }
    }
}

/// Marks an artifact used (its mtime orders the collection).
fn touch(path: &std::path::Path) {
    if let Ok(f) = fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

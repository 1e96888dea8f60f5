//! One wasmtime engine per runtime: Cranelift (compiling on one thread: wasmtime's
//! parallel compilation is not built in), async stores, epoch interruption driven by a
//! ticker thread. The epoch is what lets a looping module be throttled, timed out and
//! stopped: every tick its store's callback runs (see `run.rs`).

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine};

/// How often the epoch advances: the granularity of CPU throttling and of stops.
pub(crate) const TICK: Duration = Duration::from_millis(10);

/// The engine and the thread that advances its epoch (stopped when this is dropped).
pub(crate) struct WasmEngine {
    engine: Engine,
    fingerprint: String,
    ticking: Arc<AtomicBool>,
}

impl WasmEngine {
    pub(crate) fn new() -> Result<WasmEngine, wasmtime::Error> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let ticking = Arc::new(AtomicBool::new(true));
        let weak = engine.weak();
        let running = ticking.clone();
        std::thread::Builder::new()
            .name("canopy-wasm-epoch".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(wasmtime::Error::from)?;
        let fingerprint = fingerprint(&engine);
        Ok(WasmEngine {
            engine,
            fingerprint,
            ticking,
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Names the engine's configuration (and wasmtime's version) in compiled artifacts'
    /// file names: a cached artifact of another configuration is never even opened.
    pub(crate) fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

impl Drop for WasmEngine {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

/// FNV-1a over wasmtime's own compatibility hash: stable for one build of the node.
fn fingerprint(engine: &Engine) -> String {
    struct Fnv(u64);
    impl Hasher for Fnv {
        fn finish(&self) -> u64 {
            self.0
        }
        fn write(&mut self, bytes: &[u8]) {
            for b in bytes {
                self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    engine.precompile_compatibility_hash().hash(&mut h);
    format!("{:016x}", h.finish())
}

//! One run of a module: its store (WASI preview 1 context, limits, epoch callback), its
//! instantiation and its `_start`, and how that ended as an [`Exit`].

use super::limits::{CpuBudget, CpuClock, MemoryCap, Metered};
use crate::{Exit, RuntimeError};
use canopy_model::Preopen;
use std::fs::File;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use wasmtime::{Engine, Linker, Module, Store, UpdateDeadline};
use wasmtime_wasi::cli::OutputFile;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// What a store holds: the module's WASI context and its memory cap.
pub(crate) struct StoreData {
    wasi: WasiP1Ctx,
    limits: MemoryCap,
}

/// The WASI preview 1 imports, once per runtime.
pub(crate) fn linker(engine: &Engine) -> Result<Linker<StoreData>, wasmtime::Error> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |d: &mut StoreData| &mut d.wasi)?;
    Ok(linker)
}

/// Everything one run needs besides the module.
pub(crate) struct Launch {
    pub service: String,
    /// `argv[0]`: the module's location, as a command's is its program.
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub preopens: Vec<Preopen>,
    pub memory_bytes: u64,
    pub millicores: u64,
    pub wall_clock_limit: Option<Duration>,
    pub stdout: File,
    pub stderr: File,
}

/// What the runtime reads of a running instance.
#[derive(Default)]
pub(crate) struct Meters {
    pub cpu: Arc<CpuClock>,
    pub memory_bytes: Arc<AtomicU64>,
}

/// A store ready to run: its WASI context and limits are set up (a missing preopened
/// directory fails here, at start, not in the run).
pub(crate) struct Prepared {
    store: Store<StoreData>,
    exceeded: Arc<AtomicBool>,
    wall_clock_limit: Option<Duration>,
}

pub(crate) fn prepare(
    engine: &Engine,
    launch: Launch,
    meters: &Arc<Meters>,
) -> Result<Prepared, RuntimeError> {
    let mut wasi = WasiCtxBuilder::new();
    wasi.arg(&launch.program)
        .args(&launch.args)
        .envs(&launch.env)
        .stdout(OutputFile::new(launch.stdout))
        .stderr(OutputFile::new(launch.stderr));
    for p in &launch.preopens {
        let perms = if p.read_only {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        wasi.preopened_dir(&p.host_path, &p.guest_path, perms)
            .map_err(|e| RuntimeError::InvalidSpec {
                service: launch.service.clone(),
                reason: format!("wasm.preopens: cannot open {}: {e}", p.host_path),
            })?;
    }
    let exceeded = Arc::new(AtomicBool::new(false));
    let data = StoreData {
        wasi: wasi.build_p1(),
        limits: MemoryCap {
            max_bytes: launch.memory_bytes,
            used: meters.memory_bytes.clone(),
            exceeded: exceeded.clone(),
        },
    };
    let mut store = Store::new(engine, data);
    store.limiter(|d| &mut d.limits);
    // Every tick: a rate check (sleep when ahead of it), else a yield, so the task can be
    // stopped or timed out however long the module computes.
    store.set_epoch_deadline(1);
    let mut budget = CpuBudget::new(launch.millicores, Instant::now());
    let clock = meters.clone();
    store.epoch_deadline_callback(move |_| {
        let used = clock.cpu.used_now();
        Ok(match budget.on_tick(used, Instant::now()) {
            Some(sleep) => UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(sleep))),
            None => UpdateDeadline::Yield(1),
        })
    });
    Ok(Prepared {
        store,
        exceeded,
        wall_clock_limit: launch.wall_clock_limit,
    })
}

/// Runs `_start` to its end (or its wall-clock limit) and says how it ended.
pub(crate) async fn run(
    linker: Arc<Linker<StoreData>>,
    module: Module,
    prepared: Prepared,
    meters: Arc<Meters>,
) -> Exit {
    let Prepared {
        mut store,
        exceeded,
        wall_clock_limit,
    } = prepared;
    let call = async move {
        let instance = linker.instantiate_async(&mut store, &module).await?;
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .map_err(|_| {
                wasmtime::format_err!(
                    "the module exports no _start function (it is not a WASI command)"
                )
            })?;
        start.call_async(&mut store, ()).await
    };
    // One clock: charged per poll here, read mid-poll by the epoch callback and by stats.
    let metered = Metered {
        inner: Box::pin(call),
        clock: meters.cpu.clone(),
    };
    let result = match wall_clock_limit {
        Some(limit) => match tokio::time::timeout(limit, metered).await {
            Ok(r) => r,
            Err(_) => {
                return Exit {
                    code: None,
                    signal: None,
                    oom_killed: false,
                    reason: format!(
                        "killed: ran past its wall-clock limit of {}s",
                        limit.as_secs()
                    ),
                };
            }
        },
        None => metered.await,
    };
    ended(result, exceeded.load(Ordering::Relaxed))
}

fn ended(result: Result<(), wasmtime::Error>, memory_exceeded: bool) -> Exit {
    let e = match result {
        Ok(()) => return crate::supervise::make_exit(Some(0), None, false, ""),
        Err(e) => e,
    };
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return crate::supervise::make_exit(Some(exit.0), None, false, "");
    }
    let what = match e.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("trapped: {trap}"),
        None => format!("trapped: {}", e.root_cause()),
    };
    Exit {
        code: None,
        signal: None,
        oom_killed: memory_exceeded,
        reason: if memory_exceeded {
            format!("out of memory ({what})")
        } else {
            what
        },
    }
}

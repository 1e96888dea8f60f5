//! Node runtimes behind one trait (Nomad's task-driver shape): the `process` runtime
//! (native commands in their own session, logs in files, limits in cgroups v1 or v2), the
//! `container` runtime ([`OciRuntime`]: OCI bundles run by runc or crun, or by gVisor's
//! runsc in a sandbox, [`SandboxedContainers`]) and the `wasm`
//! runtime ([`WasmRuntime`]: WebAssembly modules run by wasmtime inside the agent) and
//! the `vm` runtime ([`VmRuntime`]: guest kernels booted as microVMs by qemu). The native ones keep
//! per-instance state on disk so a restarted agent re-adopts its workloads. What a runtime
//! does not make itself (a container's root filesystem, its network namespace) the node's
//! prestart hooks ([`Prestart`], run as a chain by [`Hooks`]) prepare around it.

mod blocking;
mod cgroup;
mod download;
mod engine;
mod error;
mod exec;
mod files;
mod follow;
mod hooks;
mod identity;
mod instance;
mod log_times;
mod logs;
mod oci;
mod prestart;
mod proc_fs;
mod process;
mod retention;
mod state;
mod supervise;
mod vm;
mod volumes;
mod wasm;

pub use canopy_net::{CniConfig, NetworkHook, PortMapping};
pub use cgroup::CgroupVersion;
pub use engine::{EngineExec, ExecControl, LogRequest};
pub use error::{Fault, RuntimeError};
pub use files::{FilesPrestart, PreparedFiles};
pub use follow::{LogChunks, LogFollower, Output as LogOutput, previous_paths};
pub use hooks::Hooks;
pub use oci::{
    ImageConfig, OciOptions, OciRuntime, SandboxedContainers, end_holders_under, probe_gvisor,
};
pub use prestart::{
    NetworkPrestart, Prepared, PreparedImage, PreparedModule, PreparedNetwork, Prestart, Progress,
};
pub use process::{ProcessOptions, ProcessRuntime};
pub use supervise::{LogPaths, validate_id};
pub use vm::{Acceleration, AccelerationProbe, VmRuntime, VmRuntimeOptions, probe_acceleration};
pub use volumes::{
    NODE_VOLUMES_DIR, PreparedVolume, PreparedVolumes, VolumesPrestart, held_node_volumes,
    remove_node_volumes,
};
pub use wasm::{AGENT_RESTARTED, WasmRuntime, WasmRuntimeOptions};

use async_trait::async_trait;
use canopy_model::{RuntimeKind, Sandbox, ServiceSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Default byte budget for the kept logs of removed instances, per runtime on a node.
pub const KEPT_LOGS_BUDGET: u64 = 64 << 20;

/// What the agent asks a runtime to run: one instance of a service.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceSpec {
    /// Unique on the node; used as a directory and cgroup name (`[A-Za-z0-9._-]`, at most 128 bytes).
    pub id: String,
    pub generation: u64,
    pub service: ServiceSpec,
    /// Extra environment the agent adds (e.g. `CANOPY_INSTANCE`); wins over the service's env.
    pub env: BTreeMap<String, String>,
    /// What the node's prestart hooks made for this start (empty without hooks).
    pub prepared: Prepared,
    /// The values of the secrets the service references (registry credentials for a
    /// hook's pull); never written out by a runtime. `Debug` shows keys only.
    pub secrets: canopy_model::SecretValues,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub pid: Option<u32>,
}

/// How an instance ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// Exit code, when the process exited normally and the code is known.
    pub code: Option<i32>,
    /// Terminating signal, when known.
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the instance (cgroup counters say so).
    #[serde(default)]
    pub oom_killed: bool,
    /// Human text: "exited with code 3", "killed by SIGKILL", "out of memory (killed by SIGKILL)",
    /// "exited while the agent was down; code unknown".
    pub reason: String,
}

impl Exit {
    /// Exit code 0 and no OOM kill. An unknown code is not a success (on-failure restarts it).
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.oom_killed
    }
}

/// Usage of one instance. CPU is cumulative, so callers derive a rate from two samples
/// (see [`Stats::millicores_since`]) and several callers never disturb each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// CPU time used since the instance's cgroup was created (or by its live processes
    /// when cgroups are off), in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory in use now, without inactive page cache (what `docker stats` shows).
    pub memory_bytes: u64,
}

impl Stats {
    /// Average CPU use between `earlier` and `self`, `elapsed` apart, in millicores.
    pub fn millicores_since(&self, earlier: &Stats, elapsed: Duration) -> u64 {
        let used = self.cpu_usage_ns.saturating_sub(earlier.cpu_usage_ns) as u128;
        let elapsed = elapsed.as_nanos();
        if elapsed == 0 {
            return 0;
        }
        u64::try_from(used * 1000 / elapsed).unwrap_or(u64::MAX)
    }
}

/// One instance found on disk by [`Runtime::recover`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub id: String,
    pub generation: u64,
    pub pid: Option<u32>,
    /// Alive and re-adopted; when false, [`Runtime::wait`] returns how it ended (as far as known).
    pub running: bool,
}

/// Receives progress of an instance's start that is worth showing its owner (image pull
/// steps, from the image hook or a runtime), as (instance id, text).
pub type Events = std::sync::Arc<dyn Fn(&str, &str) + Send + Sync>;

/// What a runtime can do, declared as Nomad's task drivers declare theirs, so the agent
/// and validation can tell what a service may ask of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// Publishes `hostPort`s on the node.
    pub ports: bool,
    /// Gives each instance its own network namespace and address.
    pub networking: bool,
    /// Joins a network namespace prepared for it ([`Prepared::network`]), so the node's
    /// network hook can give it one.
    pub netns: bool,
    /// Reports CPU and memory usage per instance.
    pub stats: bool,
    /// Runs a command inside a running instance.
    pub exec: bool,
    /// Keeps stdout and stderr.
    pub logs: bool,
    /// Enforces CPU and memory limits.
    pub limits: bool,
    /// Runs OCI images from a root filesystem prepared for it ([`Prepared::image`]), so the
    /// node's image hook pulls the image and makes it one.
    pub image_rootfs: bool,
    /// Runs wasm modules named by OCI references, pulled for it by the node's image hook
    /// ([`Prepared::module`]).
    pub oci_modules: bool,
}

impl Capabilities {
    /// What either can do: a runtime's own capabilities plus what a hook adds around it.
    pub fn union(self, other: Capabilities) -> Capabilities {
        Capabilities {
            ports: self.ports || other.ports,
            networking: self.networking || other.networking,
            netns: self.netns || other.netns,
            stats: self.stats || other.stats,
            exec: self.exec || other.exec,
            logs: self.logs || other.logs,
            limits: self.limits || other.limits,
            image_rootfs: self.image_rootfs || other.image_rootfs,
            oci_modules: self.oci_modules || other.oci_modules,
        }
    }
}

/// One interface for every runtime (container, wasm, process). Restart policy is the
/// agent's job: a runtime runs one process (or container, or module) per `start`.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    fn kind(&self) -> RuntimeKind;
    fn capabilities(&self) -> Capabilities;
    /// Sandboxes it can run instances in (`sandbox: gvisor`); none by default.
    fn sandboxes(&self) -> Vec<Sandbox> {
        Vec::new()
    }
    /// Runs its guests under KVM (the `vm` runtime, where the probe found KVM working).
    fn kvm(&self) -> bool {
        false
    }
    /// Where to send start progress; runtimes with nothing to say ignore it.
    fn set_events(&self, _events: Events) {}
    /// Starts the instance; its state is on disk before this returns.
    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError>;
    /// Resolves when the instance exits (also for re-adopted instances); returns at once
    /// with the last exit when it already ended; can be called again after a new `start`.
    async fn wait(&self, id: &str) -> Result<Exit, RuntimeError>;
    /// SIGTERM to the whole process group (and cgroup), SIGKILL after `grace`; idempotent.
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError>;
    /// Frees everything the instance holds on the node (kills it first if it still runs).
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;
    async fn stats(&self, id: &str) -> Result<Stats, RuntimeError>;
    /// The last `tail` lines of stdout followed by the last `tail` lines of stderr.
    async fn logs(&self, id: &str, tail: usize) -> Result<String, RuntimeError>;
    /// The instance's log files, for followers; also those `remove` kept.
    fn log_paths(&self, id: &str) -> Result<LogPaths, RuntimeError> {
        Err(RuntimeError::NotFound { id: id.to_string() })
    }
    /// `command` to run inside running instance `id` (with its environment and working
    /// directory, in its cgroup; in a container's namespaces), for the caller to give stdio
    /// and spawn. With `tty` the command expects a terminal on its stdio.
    async fn exec_command(
        &self,
        _id: &str,
        _command: &[String],
        _tty: bool,
    ) -> Result<tokio::process::Command, RuntimeError> {
        Err(RuntimeError::Unsupported { what: "exec" })
    }
    /// After the agent restarts: every instance under the state dir, re-adopted without restarting it.
    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError>;
    /// Whether its engine serves logs and exec itself ([`Runtime::engine_logs`],
    /// [`Runtime::engine_exec`]) instead of log files and commands on the node.
    fn engine_sessions(&self) -> bool {
        false
    }
    /// Sends the logs of `id` to `to` as its engine keeps them, until they end (or, with
    /// `follow`, until the instance ends or `to` is closed).
    async fn engine_logs(
        &self,
        _id: &str,
        _request: LogRequest,
        _to: tokio::sync::mpsc::Sender<(LogOutput, Vec<u8>)>,
    ) -> Result<(), RuntimeError> {
        Err(RuntimeError::Unsupported {
            what: "engine logs",
        })
    }
    /// Starts `command` inside running instance `id` through its engine (on a terminal of
    /// `cols` x `rows` with `tty`).
    async fn engine_exec(
        &self,
        _id: &str,
        _command: &[String],
        _tty: Option<(u16, u16)>,
    ) -> Result<EngineExec, RuntimeError> {
        Err(RuntimeError::Unsupported {
            what: "engine exec",
        })
    }
}

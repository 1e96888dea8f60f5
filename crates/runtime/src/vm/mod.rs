//! The `vm` runtime: a guest kernel (with an optional initramfs and command line) booted
//! as a microVM by qemu (`-M microvm`), with KVM where the node's probe found it working
//! and TCG otherwise ([`accel`]). qemu is supervised as a native process by an inner
//! [`ProcessRuntime`] over the same state dir: its own session and cgroup (CPU quota from
//! `resources.cpu`, memory from `resources.memory` plus qemu's overhead), the serial console
//! on stdout as the instance's log, state on disk so that a restarted agent re-adopts the
//! running qemu. Stop presses the ACPI power button through QMP ([`qmp`]) and waits out the
//! grace period for the guest to power off; then qemu gets SIGTERM, and SIGKILL after a
//! second. Not yet: a network device (a tap on the node's bridge), disk images, OCI
//! artifacts as sources.

mod accel;
mod artifacts;
mod qemu;
mod qmp;

pub use accel::{Acceleration, AccelerationProbe, probe_acceleration};

use crate::supervise::{LogPaths, validate_id};
use crate::{
    Capabilities, Exit, InstanceSpec, ProcessOptions, ProcessRuntime, Recovered, Runtime,
    RuntimeError, Started, Stats,
};
use artifacts::Artifacts;
use async_trait::async_trait;
use canopy_model::{Mebibytes, RuntimeKind};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The longest path a unix socket can have on Linux (`sun_path`, with its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// How long QMP may take to take the button press.
const QMP_TIMEOUT: Duration = Duration::from_secs(5);
/// After the grace period: SIGTERM (qemu exits at once), then SIGKILL after this.
const TERM_GRACE: Duration = Duration::from_secs(1);

/// Settings of a [`VmRuntime`].
#[derive(Debug, Clone)]
pub struct VmRuntimeOptions {
    /// `qemu-system-x86_64` (default): a name in PATH or a path.
    pub qemu_binary: String,
    /// How qemu itself is supervised (cgroups, logs).
    pub process: ProcessOptions,
}

impl Default for VmRuntimeOptions {
    fn default() -> Self {
        VmRuntimeOptions {
            qemu_binary: "qemu-system-x86_64".to_string(),
            process: ProcessOptions::default(),
        }
    }
}

/// Runs microVMs; see the module docs.
pub struct VmRuntime {
    state_dir: PathBuf,
    qemu: PathBuf,
    acceleration: AccelerationProbe,
    inner: ProcessRuntime,
    artifacts: Artifacts,
}

/// FNV-1a of an instance id: socket names short enough for `sun_path`.
fn short_name(id: &str) -> String {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

impl VmRuntime {
    /// A runtime keeping its VMs under `state_dir`; probes qemu and the accelerator first
    /// (an error when qemu is missing or cannot run even an emulated guest).
    pub async fn new(state_dir: PathBuf, opts: VmRuntimeOptions) -> Result<Self, RuntimeError> {
        let qemu = crate::oci::find_binary(&opts.qemu_binary)?;
        std::fs::create_dir_all(&state_dir)
            .map_err(|e| RuntimeError::io("create state directory", &state_dir, e))?;
        let acceleration = probe_acceleration(&qemu, &state_dir.join("@probe")).await?;
        let artifacts = Artifacts::new(state_dir.join("@artifacts"))?;
        let sockets = state_dir.join("@qmp");
        std::fs::create_dir_all(&sockets).map_err(|e| RuntimeError::io("create", &sockets, e))?;
        let inner = ProcessRuntime::new(state_dir.clone(), opts.process)?;
        Ok(VmRuntime {
            state_dir,
            qemu,
            acceleration,
            inner,
            artifacts,
        })
    }

    /// What the node's probe found: KVM or TCG, and why.
    pub fn acceleration(&self) -> &AccelerationProbe {
        &self.acceleration
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Where instance `id`'s qemu answers QMP.
    pub fn qmp_socket(&self, id: &str) -> PathBuf {
        self.state_dir
            .join("@qmp")
            .join(format!("{}.sock", short_name(id)))
    }

    fn remove_socket(&self, id: &str) -> Result<(), RuntimeError> {
        let socket = self.qmp_socket(id);
        match std::fs::remove_file(&socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(RuntimeError::io("remove", socket, e))
            }
            _ => Ok(()),
        }
    }

    /// The process spec that runs this VM's qemu.
    async fn qemu_spec(&self, spec: &InstanceSpec) -> Result<InstanceSpec, RuntimeError> {
        let svc = &spec.service;
        let invalid = |reason: String| RuntimeError::InvalidSpec {
            service: svc.name.clone(),
            reason,
        };
        if svc.runtime != RuntimeKind::Vm {
            return Err(invalid(format!(
                "it asks for the {} runtime, not vm",
                svc.runtime.as_str()
            )));
        }
        let Some(vm) = svc.vm.as_ref() else {
            return Err(invalid("vm.kernel is required for a vm".to_string()));
        };
        if vm.require_kvm && self.acceleration.acceleration != Acceleration::Kvm {
            return Err(invalid(format!(
                "it requires KVM, which this node does not offer ({})",
                self.acceleration.reason
            )));
        }
        let kernel = self
            .artifacts
            .resolve(&svc.name, "kernel", &vm.kernel, vm.kernel_sha256.as_deref())
            .await?;
        let initramfs = match &vm.initramfs {
            Some(location) => Some(
                self.artifacts
                    .resolve(
                        &svc.name,
                        "initramfs",
                        location,
                        vm.initramfs_sha256.as_deref(),
                    )
                    .await?,
            ),
            None => None,
        };
        let socket = self.qmp_socket(&spec.id);
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(RuntimeError::io(
                "use as a QMP socket",
                &socket,
                std::io::Error::other("the path is longer than a unix socket's 107 bytes"),
            ));
        }
        self.remove_socket(&spec.id)?;
        let acceleration = self.acceleration.acceleration;
        let args = qemu::args(&qemu::QemuInput {
            kernel: &kernel,
            initramfs: initramfs.as_deref(),
            cmdline: vm.cmdline.as_deref(),
            resources: &svc.resources,
            acceleration,
            qmp_socket: &socket,
        });
        let mut service = svc.clone();
        service.runtime = RuntimeKind::Process;
        service.vm = None;
        service.command = std::iter::once(self.qemu.display().to_string())
            .chain(args)
            .collect();
        service.args = Vec::new();
        // The guest gets `memory`; qemu's own memory is on top, in the same cgroup.
        service.resources.memory =
            Mebibytes(svc.resources.memory.0 + qemu::memory_overhead_mib(acceleration));
        Ok(InstanceSpec {
            service,
            ..spec.clone()
        })
    }
}

#[async_trait]
impl Runtime for VmRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Vm
    }

    /// A guest has no network device yet (no ports), and nothing to exec into.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            ports: false,
            networking: false,
            netns: false,
            stats: true,
            exec: false,
            logs: true,
            limits: self.inner.capabilities().limits,
            image_rootfs: false,
            oci_modules: false,
        }
    }

    fn kvm(&self) -> bool {
        self.acceleration.acceleration == Acceleration::Kvm
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        validate_id(&spec.id)?;
        let qemu = self.qemu_spec(spec).await?;
        let started = self.inner.start(&qemu).await?;
        tracing::info!(
            id = %spec.id,
            pid = ?started.pid,
            acceleration = self.acceleration.acceleration.as_str(),
            "vm started"
        );
        Ok(started)
    }

    async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        self.inner.wait(id).await
    }

    /// The power button first; qemu exits when the guest powers off. A guest that does not
    /// within `grace` (no ACPI button driver, a hung kernel) is ended by signal.
    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        if !grace.is_zero() {
            match qmp::system_powerdown(&self.qmp_socket(id), QMP_TIMEOUT).await {
                Ok(()) => {
                    if tokio::time::timeout(grace, self.inner.wait(id))
                        .await
                        .is_ok()
                    {
                        return self.inner.stop(id, Duration::ZERO).await;
                    }
                    tracing::info!(id, ?grace, "the guest did not power off: signalling qemu");
                }
                Err(why) => tracing::info!(id, %why, "no ACPI shutdown: signalling qemu"),
            }
        }
        self.inner.stop(id, TERM_GRACE).await
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.remove(id).await?;
        // qemu removes its socket when it exits normally; not when killed.
        self.remove_socket(id)
    }

    async fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        self.inner.stats(id).await
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<String, RuntimeError> {
        self.inner.logs(id, tail).await
    }

    fn log_paths(&self, id: &str) -> Result<LogPaths, RuntimeError> {
        Runtime::log_paths(&self.inner, id)
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        self.inner.recover().await
    }
}

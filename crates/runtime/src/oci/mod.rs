//! The `container` runtime: an OCI bundle per instance (`config.json` from oci-spec) run
//! by runc or crun, or by gVisor's runsc for `sandbox: gvisor` ([`SandboxedContainers`]
//! routes each container to its OCI runtime), limits in the instance's cgroup. It makes neither the root filesystem
//! nor the network: the node's prestart hooks do ([`crate::Prepared`]: the image hook's
//! root filesystem, which `root.path` names, and the network hook's namespace, which the
//! container joins); without a prepared network a container has a namespace with only `lo`.
//!
//! Layout under the state dir: `<id>/` holds the bundle (`config.json`, the bind-mounted
//! `hosts`, `resolv.conf` and `hostname`), the logs and `state.json`; `@<runtime>/` is the
//! OCI runtime's `--root` (private, so agents and tests on one machine never see each
//! other's containers). The `@` cannot start an instance id, so the node's hooks keep their
//! own state beside it (`@cni/`, `@rootfs/`) without collisions.
//!
//! How a runc or crun container starts and is supervised ([`holder`]): the agent spawns, in
//! a session of its own, a holder that runs `create` (the logs are its stdout and stderr,
//! which the container inherits) and then sleeps as the subreaper whose child the
//! container's init becomes. `create` returns once the init is set up and waits for
//! `start`; the agent then writes the service's CPU quota to the container's group (the
//! bundle leaves it out, so `runc init`, which runs in that group and compiles the seccomp
//! filter there, about 25 ms of CPU, is not throttled by a `cpu: 10m` quota for seconds),
//! and only then runs `start`, so the workload never runs without its quota; the memory
//! limit is in the bundle, in force from the first moment. The agent watches the init
//! itself; its exit status is read from its zombie while the holder holds it (also by an
//! agent that restarted meanwhile), recorded in `<id>/exit-code`, and then the holder is
//! ended. Nothing deletes the stopped container until we do, so its cgroup's OOM counters
//! can be read after the exit.
//!
//! runsc reports its workload's exit only to a foreground `run` (its pid file names the
//! sandbox): under a tiny shell shim in a session of its own, `runsc run` waits for the
//! sandbox and the shim writes runsc's exit status (the container's: 128+n when killed by
//! signal n) to `<id>/exit-code`; the agent re-adopts the shim by pid and start time after
//! a restart and reads the file when it ends.

mod bundle;
mod cli;
mod holder;
mod launch;
mod privilege;
mod probe;
mod resolv;
mod sandboxes;
mod seccomp;
mod seccomp_profile;

use crate::KEPT_LOGS_BUDGET;
use crate::cgroup::{Cgroups, OomCounters};
use crate::instance::{self, Instances, LogRotation, remove_dir_if_exists, terminate};
use crate::state::{self, ContainerInfo, PersistedState, ProcessRef};
use crate::supervise::{
    Finish, LogPaths, RawExit, log_paths, make_exit, pid_i32, rotate_logs, validate_id,
};
use crate::{
    Exit, InstanceSpec, PreparedImage, Recovered, Runtime, RuntimeError, Started, Stats, proc_fs,
};
use async_trait::async_trait;
use canopy_model::RuntimeKind;
use cli::Cli;
use rustix::process::{Pid, Signal};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::ErrorKind;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

const CONFIG_FILE: &str = "config.json";
const PID_FILE: &str = "container.pid";
const EXIT_FILE: &str = "exit-code";
/// The OCI runtime's own log (JSON), where its errors are read from.
const RUNTIME_LOG: &str = "runtime.log";
/// Runs the OCI runtime (`"$@"`, runsc's foreground `run`) and records its exit status in
/// `$0` atomically.
const SHIM: &str = r#""$@"; c=$?; echo "$c" > "$0.tmp" && mv -f "$0.tmp" "$0"; exit "$c""#;
const START_POLL: Duration = Duration::from_millis(5);

pub(crate) use cli::find_binary;
pub use holder::end_holders_under;
pub use probe::probe_gvisor;
pub use sandboxes::SandboxedContainers;

/// What an image says about running it (the OCI image config's `config` object).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `KEY=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `uid`, `uid:gid`, `name` or `name:group` (resolved in the root filesystem).
    pub user: Option<String>,
}

/// Settings of an [`OciRuntime`].
#[derive(Debug, Clone)]
pub struct OciOptions {
    /// `runc` (default), `crun` or `runsc` (gVisor): a name looked up in PATH (and the sbin
    /// dirs) or a path.
    pub runtime_binary: String,
    /// Instance groups go to `<hierarchy>/<cgroup_parent>/<id>` (e.g. `canopy/<node>`).
    pub cgroup_parent: String,
    /// A log file larger than this is rotated to `<name>.1`.
    pub max_log_bytes: u64,
    /// How often a running instance's log sizes are checked.
    pub log_check_interval: Duration,
    /// `remove` keeps stdout.log/stderr.log (and their `.1`) and drops the rest.
    pub keep_logs_on_remove: bool,
    /// Kept logs of removed instances, all together, past which the oldest are dropped.
    pub kept_logs_budget: u64,
    /// Deadline of each `runc start|state|kill|delete|list` call.
    pub command_timeout: Duration,
    /// From spawning `runc create` (runsc: `run`) until the container's process exists.
    pub start_timeout: Duration,
    /// How long to wait for the exit after SIGKILL before `stop` fails.
    pub kill_timeout: Duration,
}

impl Default for OciOptions {
    fn default() -> Self {
        OciOptions {
            runtime_binary: "runc".to_string(),
            cgroup_parent: "canopy".to_string(),
            max_log_bytes: 10 << 20,
            log_check_interval: Duration::from_secs(10),
            keep_logs_on_remove: false,
            kept_logs_budget: KEPT_LOGS_BUDGET,
            command_timeout: Duration::from_secs(30),
            start_timeout: Duration::from_secs(60),
            kill_timeout: Duration::from_secs(10),
        }
    }
}

/// One generation of a container as this runtime knows it: `pid` is the container's init
/// process as the host sees it, `extra` its address in the namespace it was given.
type Instance = instance::Instance<Option<IpAddr>>;

/// Runs containers with runc or crun; see the module docs. Dropping it leaves the
/// containers running; a new runtime on the same state dir re-adopts them.
pub struct OciRuntime {
    state_dir: PathBuf,
    opts: OciOptions,
    cli: Cli,
    cgroups: Option<Cgroups>,
    instances: Instances<Option<IpAddr>>,
}

/// The exit of a container from the shim's status (or its file, after a restart) and the
/// cgroup's OOM counters; then the stopped container is deleted (which frees its cgroup).
/// A held container's holder is ended once the status is read (`holder_child`: it is ours).
fn container_finish(cli: Cli, dir: PathBuf, holder_child: Option<Child>) -> Finish {
    Box::new(move |raw: RawExit, st: PersistedState| {
        Box::pin(async move {
            let exit_file = dir.join(EXIT_FILE);
            let recorded = || {
                fs::read_to_string(&exit_file)
                    .ok()
                    .and_then(|s| s.trim().parse::<i32>().ok())
            };
            let held = st.container.as_ref().and_then(|c| {
                let init = ProcessRef {
                    pid: c.pid,
                    start_time: c.start_time,
                };
                c.holder.map(|h| (h, init))
            });
            // Read and recorded before the first await: a watcher aborted later (the agent
            // stopping) leaves the status in the file for the next one.
            let status = match (raw.adopted, raw.code, held) {
                (false, Some(c), _) => Some(c),
                (_, _, Some((_, init))) => match holder::exit_status(init) {
                    Some(c) => {
                        holder::record(&exit_file, c);
                        Some(c)
                    }
                    None => recorded(),
                },
                _ => recorded(),
            };
            // Started by this runtime (a held init is never our child, so reaping it says
            // nothing of that).
            let ours = !raw.adopted || holder_child.is_some();
            if let Some((h, _)) = held {
                holder::release(h, holder_child).await;
            }
            // runc and crun exit with 128+n when the container's init died of signal n.
            let (code, signal) = match status {
                Some(c) if (129..=159).contains(&c) => (None, Some(c - 128)),
                other => (other, None),
            };
            let oom = st
                .cgroup
                .as_ref()
                .is_some_and(|cg| cg.oom_counters().oom_since(&st.oom_base, signal == Some(9)));
            if let Err(e) = cli.delete(&st.id).await {
                tracing::warn!(id = %st.id, error = %e, "could not delete the stopped container");
            }
            let unknown = if !ours {
                "exited after being re-adopted; code unknown"
            } else {
                "exited; code unknown"
            };
            let mut exit = make_exit(code, signal, oom, unknown);
            // What the OCI runtime said when it failed after the container's process
            // existed (runsc looks for the program only once its sandbox runs).
            if !exit.success()
                && let Some(message) = cli::last_log_error(&dir.join(RUNTIME_LOG))
            {
                exit.reason = format!("{}; {}: {message}", exit.reason, cli.name);
            }
            exit
        })
    })
}

fn remove_file_if_exists(path: &Path) -> Result<(), RuntimeError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(RuntimeError::io("remove", path, e)),
        _ => Ok(()),
    }
}

fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Any mount at or below `dir` (something bind-mounted into the bundle, a stray namespace).
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| *m == prefix || m.starts_with(&format!("{prefix}/")))
        .map(str::to_string)
        .collect()
}

impl OciRuntime {
    /// A runtime keeping its containers under `state_dir` (created if missing). Fails when
    /// the OCI runtime binary is missing, saying what to install.
    pub fn new(state_dir: PathBuf, opts: OciOptions) -> Result<Self, RuntimeError> {
        fs::create_dir_all(&state_dir)
            .map_err(|e| RuntimeError::io("create state directory", &state_dir, e))?;
        let name = Path::new(&opts.runtime_binary)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("oci")
            .to_string();
        let cli = Cli::new(
            &opts.runtime_binary,
            state_dir.join(format!("@{name}")),
            opts.command_timeout,
        )?;
        fs::create_dir_all(&cli.root).map_err(|e| RuntimeError::io("create", &cli.root, e))?;
        let cgroups = match Cgroups::detect(&opts.cgroup_parent) {
            Ok(c) => Some(c),
            Err(reason) => {
                tracing::warn!(%reason, "cgroups unavailable: container stats and OOM detection are off");
                None
            }
        };
        Ok(OciRuntime {
            state_dir,
            opts,
            cli,
            cgroups,
            instances: Instances::new(),
        })
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The OCI runtime's `--root` (for `runc --root DIR list`).
    pub fn runtime_root(&self) -> &Path {
        &self.cli.root
    }

    /// The resolved OCI runtime binary.
    pub fn runtime_binary(&self) -> &Path {
        &self.cli.binary
    }

    /// The instance's address in the namespace it was given (None without a network).
    pub fn address(&self, id: &str) -> Option<IpAddr> {
        self.instances.known(id).and_then(|i| i.extra)
    }

    /// The instance's log files (they exist once it started; `remove` may keep them).
    pub fn log_paths(&self, id: &str) -> Result<LogPaths, RuntimeError> {
        instance::instance_log_paths(&self.state_dir, id)
    }

    /// Ids of the containers the OCI runtime holds in this runtime's root.
    pub async fn runtime_containers(&self) -> Result<Vec<String>, RuntimeError> {
        self.cli.list().await
    }

    async fn get_or_adopt(&self, id: &str) -> Result<Option<Arc<Instance>>, RuntimeError> {
        let adopt = |id: String| async move { self.adopt(&id).await };
        self.instances
            .get_or_adopt(&self.state_dir, id, adopt)
            .await
    }

    fn log_rotation(&self) -> LogRotation {
        LogRotation {
            max_bytes: self.opts.max_log_bytes,
            check_every: self.opts.log_check_interval,
        }
    }

    fn finish(&self, dir: &Path) -> Finish {
        container_finish(self.cli.clone(), dir.to_path_buf(), None)
    }

    async fn start_locked(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        let id = spec.id.as_str();
        validate_id(id)?;
        let svc = &spec.service;
        let invalid = |reason: String| RuntimeError::InvalidSpec {
            service: svc.name.clone(),
            reason,
        };
        if svc.runtime != RuntimeKind::Container {
            return Err(invalid(format!(
                "it asks for the {} runtime, not container",
                svc.runtime.as_str()
            )));
        }
        if svc.image.as_deref().is_none_or(str::is_empty) {
            return Err(invalid("image is required for a container".to_string()));
        }
        let Some(image) = spec.prepared.image.as_ref() else {
            return Err(invalid(
                "no root filesystem was prepared for it (the node's image hook makes one)"
                    .to_string(),
            ));
        };
        // The node's network hook, when it ran, made the namespace (ports included).
        let net = spec.prepared.network.as_ref();
        if net.is_none() && svc.ports.iter().any(|p| p.host_port.is_some()) {
            return Err(invalid(
                "it publishes host ports, but this node has no container network (CNI) configured"
                    .to_string(),
            ));
        }
        self.instances.check_not_running(id)?;
        // The node's fault, not the workload's: it would fail every container.
        if !self.cli.binary.is_file() {
            return Err(RuntimeError::RuntimeNotInstalled {
                binary: self.cli.binary.display().to_string(),
                hint: "it was removed after the agent started".to_string(),
            });
        }

        // Whatever a previous generation left: the stopped container, its files.
        self.cli.delete(id).await?;
        let dir = self.state_dir.join(id);
        fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("create", &dir, e))?;
        for f in [EXIT_FILE, PID_FILE, RUNTIME_LOG, CONFIG_FILE] {
            remove_file_if_exists(&dir.join(f))?;
        }
        let net = net.map(|p| (p.netns.as_path(), p.ip));
        let res = self.launch(spec, &dir, image, net).await;
        if res.is_err() {
            if let Err(e) = self.cli.delete(id).await {
                tracing::warn!(id, error = %e, "clean-up after a failed start");
            }
            // The OCI runtime made the group before it failed; nothing runs in it now.
            if let Some(cg) = self.cgroups.as_ref().map(|c| c.instance(id))
                && let Err(e) = cg.remove(Instant::now() + self.opts.kill_timeout).await
            {
                tracing::warn!(id, error = %e, "cgroup of a failed start left");
            }
        }
        res
    }

    /// Writes the bundle and gets the container's process going ([`launch`]), then watches it.
    async fn launch(
        &self,
        spec: &InstanceSpec,
        dir: &Path,
        image: &PreparedImage,
        net: Option<(&Path, Option<IpAddr>)>,
    ) -> Result<Started, RuntimeError> {
        let id = spec.id.as_str();
        let svc = &spec.service;
        // runc resolves a relative root against the bundle: the hook's is elsewhere.
        let rootfs = std::path::absolute(&image.rootfs)
            .map_err(|e| RuntimeError::io("resolve", &image.rootfs, e))?;
        let hostname: String = id.chars().take(63).collect();
        let ip = net.and_then(|(_, ip)| ip);
        let mut hosts =
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string();
        if let Some(ip) = ip {
            hosts.push_str(&format!("{ip}\t{hostname}\n"));
        }
        let files = [
            ("hosts", hosts, "/etc/hosts"),
            (
                "resolv.conf",
                resolv::resolv_conf(
                    &fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
                    net.and_then(|_| spec.env.get("CANOPY_DNS")?.parse().ok()),
                ),
                "/etc/resolv.conf",
            ),
            ("hostname", format!("{hostname}\n"), "/etc/hostname"),
        ];
        let mut binds = Vec::new();
        for (name, content, dest) in files {
            let p = dir.join(name);
            fs::write(&p, content).map_err(|e| RuntimeError::io("write", &p, e))?;
            // World-readable whatever the agent's umask: a non-root workload reads them.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644))
                .map_err(|e| RuntimeError::io("make readable", &p, e))?;
            binds.push((p, dest));
        }
        let cgroup = self.cgroups.as_ref().map(|c| c.instance(id));
        // The quota is ours to set between create and start when we can write the group.
        let defer_cpu =
            self.cli.creates_then_starts() && cgroup.is_some() && svc.resources.cpu.0 > 0;
        let parent = self.opts.cgroup_parent.trim_matches('/');
        let volumes = spec.prepared.volumes.as_ref();
        let mut instance_env = spec.env.clone();
        instance_env.extend(volumes.into_iter().flat_map(|v| v.env(false)));
        let config = bundle::build_spec(&bundle::BundleInput {
            id,
            service: svc,
            instance_env: &instance_env,
            image: &image.config,
            rootfs: &rootfs,
            cgroups_path: format!("/{parent}/{id}"),
            netns: net.map(|(ns, _)| ns),
            files: binds,
            service_files: spec
                .prepared
                .files
                .as_ref()
                .map_or(&[][..], |f| f.mounts.as_slice()),
            volumes: volumes.map_or(&[][..], |v| v.volumes.as_slice()),
            limit_swap: self.cgroups.as_ref().is_some_and(Cgroups::swap_accounting),
            cpu_quota: !defer_cpu,
        })?;
        let config_path = dir.join(CONFIG_FILE);
        let json = serde_json::to_vec_pretty(&config)
            .map_err(|e| RuntimeError::io("encode", &config_path, std::io::Error::other(e)))?;
        fs::write(&config_path, json).map_err(|e| RuntimeError::io("write", &config_path, e))?;

        // runsc deletes at exit the groups it made, and their OOM counters with them; the
        // groups it finds it leaves, so they are made here (and removed by `remove`).
        if self.cli.flavor == cli::Flavor::Runsc
            && let Some(cg) = &cgroup
        {
            cg.create(&svc.resources)?;
        }
        // The group is new (the previous container was deleted): counters start at zero.
        let oom_base = match &cgroup {
            Some(cg) if cg.exists() => cg.oom_counters(),
            _ => OomCounters {
                oom_kill: Some(0),
                failcnt: Some(0),
            },
        };
        let rotate_lock = Arc::new(Mutex::new(()));
        rotate_logs(dir, self.opts.max_log_bytes, &rotate_lock);
        let mut spawned = if self.cli.creates_then_starts() {
            let quota = cgroup
                .as_ref()
                .filter(|_| defer_cpu)
                .map(|cg| (cg, &svc.resources));
            self.create_and_start(id, dir, quota).await?
        } else {
            self.run_in_foreground(id, dir, net.is_some()).await?
        };
        let (watched, init) = (spawned.watched, spawned.init);
        let mut persisted = PersistedState::new(
            id,
            spec.generation,
            watched.pid,
            watched.start_time,
            std::mem::take(&mut spawned.command),
            cgroup.clone(),
            oom_base,
        );
        persisted.container = Some(ContainerInfo {
            pid: init.pid,
            start_time: init.start_time,
            address: ip,
            holder: spawned.holder.as_ref().map(|(h, _)| *h),
        });
        if let Err(e) = state::write_atomic(dir, &persisted) {
            // A container we cannot track must not keep running.
            spawned.abandon(self, id).await;
            return Err(e);
        }

        let launch::Spawned {
            pidfd,
            shim,
            holder,
            ..
        } = spawned;
        let (rx, task) = instance::watch(
            persisted,
            dir,
            shim,
            pidfd,
            self.log_rotation(),
            &rotate_lock,
            container_finish(self.cli.clone(), dir.to_path_buf(), holder.map(|(_, c)| c)),
        );
        let (pid, start_time) = (init.pid, init.start_time);
        let inst = Instance {
            generation: spec.generation,
            pid,
            start_time,
            dir: dir.to_path_buf(),
            cgroup,
            exit: rx,
            rotate_lock,
            task: Some(task),
            extra: ip,
        };
        self.instances.started(id, inst);
        tracing::info!(
            id,
            pid,
            ?ip,
            generation = spec.generation,
            "container started"
        );
        Ok(Started { pid: Some(pid) })
    }

    /// Loads one instance from its state.json and re-adopts it when the process it watches
    /// (the init of a held container, runsc's shim) still lives.
    async fn adopt(&self, id: &str) -> Result<Arc<Instance>, RuntimeError> {
        let dir = self.state_dir.join(id);
        let st = state::read(&dir)?;
        let Some(ci) = st.container.clone() else {
            return Err(RuntimeError::io(
                "adopt",
                dir.join(state::STATE_FILE),
                std::io::Error::other("not a container's state"),
            ));
        };
        let ended = |_same_boot: bool, st: PersistedState| {
            let raw = RawExit {
                code: None,
                signal: None,
                adopted: true,
            };
            self.finish(&dir)(raw, st)
        };
        let a = instance::adopt(&dir, st, self.log_rotation(), self.finish(&dir), ended).await;
        let inst = self.instances.adopted(
            id,
            Instance {
                generation: a.state.generation,
                pid: ci.pid,
                start_time: ci.start_time,
                dir: dir.clone(),
                cgroup: if a.same_boot {
                    a.state.cgroup.clone()
                } else {
                    None
                },
                exit: a.exit,
                rotate_lock: a.rotate_lock,
                task: a.task,
                extra: ci.address,
            },
        );
        tracing::info!(id, pid = ci.pid, running = a.running, "container recovered");
        Ok(inst)
    }

    /// Signals the container through the OCI runtime, or directly when the runtime has
    /// lost it but its init still lives.
    async fn signal(&self, id: &str, inst: &Instance, direct: Signal) {
        let sig = if direct == Signal::KILL {
            "KILL"
        } else {
            "TERM"
        };
        if let Err(e) = self.cli.kill(id, sig).await {
            tracing::warn!(id, error = %e, "signalling through the OCI runtime failed; signalling the process");
            if proc_fs::alive_with_start(pid_i32(inst.pid), inst.start_time)
                && let Some(pid) = Pid::from_raw(pid_i32(inst.pid))
            {
                let _ = rustix::process::kill_process(pid, direct);
            }
        }
    }
}

#[async_trait]
impl Runtime for OciRuntime {
    fn kind(&self) -> RuntimeKind {
        RuntimeKind::Container
    }

    /// Containers join a namespace and run a root filesystem that the node's hooks
    /// prepare; ports and networking are the network hook's (see [`crate::Hooks`]).
    fn capabilities(&self) -> crate::Capabilities {
        crate::Capabilities {
            ports: false,
            networking: false,
            netns: true,
            stats: true,
            exec: true,
            logs: true,
            limits: true,
            image_rootfs: true,
            oci_modules: false,
        }
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        let _guard = self.instances.lock_start(&spec.id).await;
        self.start_locked(spec).await
    }

    async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        self.instances.wait(id).await
    }

    async fn stop(&self, id: &str, grace: Duration) -> Result<(), RuntimeError> {
        let inst = self
            .get_or_adopt(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
        if inst.exited() {
            return Ok(());
        }
        // The watcher has deleted the container by the time the exit is known.
        terminate(
            id,
            grace,
            self.opts.kill_timeout,
            |sig| self.signal(id, &inst, sig),
            |within| inst.wait_exit(within),
        )
        .await
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let inst = self.get_or_adopt(id).await?;
        let dir = self.state_dir.join(id);
        if let Some(inst) = inst {
            if !inst.exited() {
                self.stop(id, Duration::ZERO).await?;
            }
            self.instances.forget(id, &inst);
        }
        self.cli.delete(id).await?;
        if let Some(cg) = self.cgroups.as_ref().map(|c| c.instance(id)) {
            cg.remove(Instant::now() + self.opts.kill_timeout).await?;
        }
        // Never delete through a mount that is still there (the hooks' root filesystem and
        // namespace live outside the bundle; anything mounted into it must go first).
        let mounts = mounts_under(&dir);
        if !mounts.is_empty() {
            return Err(RuntimeError::io(
                "remove",
                &dir,
                std::io::Error::other(format!("still mounted: {}", mounts.join(", "))),
            ));
        }
        let res = if self.opts.keep_logs_on_remove && dir.exists() {
            let current = log_paths(&dir);
            let previous = crate::previous_paths(&current);
            let keep: Vec<PathBuf> = [
                &current.stdout,
                &current.stderr,
                &previous.stdout,
                &previous.stderr,
            ]
            .into_iter()
            .flat_map(|p| [p.clone(), crate::logs::rotated(p)])
            .collect();
            fs::read_dir(&dir)
                .map_err(|e| RuntimeError::io("read", &dir, e))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| !keep.contains(p))
                .try_for_each(|p| {
                    let r = if p.is_dir() {
                        fs::remove_dir_all(&p)
                    } else {
                        fs::remove_file(&p)
                    };
                    r.map_err(|e| RuntimeError::io("remove", &p, e))
                })
        } else {
            remove_dir_if_exists(&dir)
        };
        if self.opts.keep_logs_on_remove {
            crate::retention::prune(&self.state_dir, self.opts.kept_logs_budget);
        }
        tracing::info!(id, "container removed");
        res
    }

    async fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        let inst = self.instances.get(id)?;
        if inst.exited() {
            return Err(RuntimeError::NotRunning { id: id.to_string() });
        }
        inst.rotate_logs(self.opts.max_log_bytes);
        inst.cgroup_stats()
            .ok_or_else(|| RuntimeError::NotRunning { id: id.to_string() })
    }

    async fn logs(&self, id: &str, tail: usize) -> Result<String, RuntimeError> {
        self.instances
            .logs(&self.state_dir, id, tail, self.opts.max_log_bytes)
    }

    async fn exec_command(
        &self,
        id: &str,
        command: &[String],
        tty: bool,
    ) -> Result<tokio::process::Command, RuntimeError> {
        crate::exec::check_command(id, command)?;
        let inst = self
            .get_or_adopt(id)
            .await?
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
        if inst.exited() {
            return Err(RuntimeError::NotRunning { id: id.to_string() });
        }
        self.cli.exec_command(id, command, tty)
    }

    fn log_paths(&self, id: &str) -> Result<LogPaths, RuntimeError> {
        instance::instance_log_paths(&self.state_dir, id)
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        let adopt = |id: String| async move { self.adopt(&id).await };
        self.instances
            .recover(&self.state_dir, "container", adopt)
            .await
    }
}

//! The container runtime against real runc (and crun, where it can run here), real CNI
//! plugins and a real image: a busybox image pushed to a local docker-registry and pulled
//! by an image prestart hook through canopy-image's store, which makes each root filesystem
//! an overlay mount (checked by every test). The runtime makes neither: the tests run it
//! inside the node's hook chain ([`Hooks`]: image, then network), as the agent does. No mocks. Needs root, runc, containernetworking-plugins, busybox-static,
//! docker-registry, umoci, skopeo, iproute2 and iptables; each test says why when it skips.
//!
//! Every test uses its own ids, state dir, registry, image store, bridge, subnet and cgroup
//! parent, so they run in parallel; a guard removes what a failed test leaves behind.

use canopy_model::ServiceSpec;
use canopy_runtime::{
    CniConfig, Exit, Hooks, ImageConfig, InstanceSpec, NetworkHook, NetworkPrestart, OciOptions,
    OciRuntime, Prepared, PreparedImage, Prestart, Runtime, RuntimeError, Started,
};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

const LONG: Duration = Duration::from_secs(60);

#[path = "support/images.rs"]
mod images;
use images::{Registry, RegistryImages};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Why the container tests cannot run here, if they cannot.
fn missing_prerequisite(binary: &str) -> Option<String> {
    if !is_root() {
        return Some("needs root".to_string());
    }
    if let Some(why) = images::missing_tool() {
        return Some(why);
    }
    let found = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"])
        .any(|d| Path::new(d).join(binary).is_file());
    if !found {
        return Some(format!("{binary} missing: apt-get install {binary}"));
    }
    None
}

/// Unique on the machine: the process id, plus a counter for tests sharing a process.
fn unique(name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("t{}-{n}-{name}", std::process::id())
}

/// A /24 in 10.213.0.0/16 that no route on this machine uses yet (derived from the
/// test's name and pid, so parallel tests pick different ones).
fn free_subnet(name: &str) -> String {
    let routes = Command::new("ip")
        .args(["-4", "route"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let seed = name.bytes().fold(u64::from(std::process::id()), |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    (0..250)
        .map(|i| (seed + i) % 250 + 1)
        .map(|x| format!("10.213.{x}.0/24"))
        .find(|s| !routes.contains(&s[..s.len() - 3]))
        .unwrap_or_else(|| "10.213.251.0/24".to_string())
}

#[path = "../../canopy/tests/e2e/support/ports.rs"]
mod ports;
use ports::published_port;

/// One test's runtime, state dir, hooks and network; dropping it removes what is left even
/// when the test failed half-way (containers, root filesystem and netns mounts, bridge,
/// cgroups).
struct Env {
    rt: Option<OciRuntime>,
    dir: tempfile::TempDir,
    binary: String,
    opts: OciOptions,
    images: Arc<RegistryImages>,
    /// The CNI network the network hook gives containers, when the test has one.
    network: Option<(CniConfig, PathBuf)>,
    hooks: Hooks,
    ids: Vec<String>,
    /// Dropped after the containers and mounts (fields drop in order, after `drop`).
    _registry: Registry,
}

impl Env {
    /// A runtime whose images come from a registry of its own through the real store (the
    /// image hook), and with `network` a CNI network from the network hook.
    fn new(binary: &str, name: &str, network: bool) -> Env {
        let registry = Registry::start();
        let images = Arc::new(RegistryImages::new(&registry));
        let dir = tempfile::tempdir().expect("tempdir");
        let tag = unique(name);
        let opts = OciOptions {
            runtime_binary: binary.to_string(),
            cgroup_parent: format!("canopy-test/{tag}"),
            ..OciOptions::default()
        };
        let rt = OciRuntime::new(dir.path().to_path_buf(), opts.clone()).expect("runtime");
        let mut hooks: Vec<Arc<dyn Prestart>> = vec![images.clone()];
        let network = network.then(|| {
            let cfg = CniConfig::new(format!("canopy-{tag}"), free_subnet(&tag));
            let hook = NetworkHook::new(cfg.clone(), &dir.path().join("@cni")).expect("network");
            let lease_dir = hook.lease_dir();
            hooks.push(Arc::new(NetworkPrestart::new(hook)));
            (cfg, lease_dir)
        });
        let hooks = Hooks::wanted_by(&hooks, &rt.capabilities());
        Env {
            rt: Some(rt),
            dir,
            binary: binary.to_string(),
            opts,
            images,
            network,
            hooks,
            ids: Vec::new(),
            _registry: registry,
        }
    }

    fn rt(&self) -> &OciRuntime {
        self.rt.as_ref().expect("runtime")
    }

    /// The agent's start: the hooks prepare, then the runtime starts with what they made.
    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        let progress = |line: &str| eprintln!("{}: {line}", spec.id);
        let (started, _) = self.hooks.start(self.rt(), spec, &progress).await?;
        Ok(started)
    }

    /// The agent's removal: the runtime's, then the hooks release theirs.
    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        self.rt().remove(id).await?;
        self.hooks.release(id).await
    }

    /// A new runtime on the same state dir, as after an agent restart.
    fn restart_runtime(&mut self) {
        drop(self.rt.take());
        self.rt = Some(
            OciRuntime::new(self.dir.path().to_path_buf(), self.opts.clone()).expect("runtime"),
        );
    }

    fn id(&mut self, name: &str) -> String {
        let id = unique(name);
        self.ids.push(id.clone());
        id
    }

    fn runtime_root(&self) -> PathBuf {
        self.rt().runtime_root().to_path_buf()
    }

    fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        hierarchies()
            .into_iter()
            .map(|h| h.join(&self.opts.cgroup_parent).join(id))
            .collect()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let root = self.rt.as_ref().map(|rt| rt.runtime_root().to_path_buf());
        drop(self.rt.take());
        if let Some(root) = root {
            for id in &self.ids {
                let _ = Command::new(&self.binary)
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", id])
                    .output();
            }
        }
        // Holders left by a failed test keep their deleted containers' zombies: ended here.
        canopy_runtime::end_holders_under(self.dir.path());
        // netns and rootfs mounts stay.
        let mut mounts = mounts_under(self.dir.path());
        mounts.extend(mounts_under(self.images.dir()));
        for m in mounts {
            let _ = rustix::mount::unmount(m.as_str(), rustix::mount::UnmountFlags::DETACH);
        }
        if let Some((net, _)) = &self.network {
            drop(NetworkResidue(net.clone()));
        }
        for id in &self.ids {
            for d in self.cgroup_dirs(id) {
                let _ = fs::remove_dir(d);
            }
        }
        // A parent is busy for a moment after its last child went (v1 frees it lazily).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        for h in hierarchies() {
            let parent = h.join(&self.opts.cgroup_parent);
            while parent.exists()
                && fs::remove_dir(&parent).is_err()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Every cgroup hierarchy (v1: one per mounted controller set; v2: the root).
fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    fs::read_dir(root)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&prefix))
        .collect()
}

fn service(command: &[&str], extra: serde_json::Value) -> ServiceSpec {
    let mut v = serde_json::json!({
        "name": "svc",
        "runtime": "container",
        "image": "busybox:test",
        "command": command,
    });
    if let (Some(base), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    serde_json::from_value(v).expect("service spec")
}

fn spec(id: &str, service: ServiceSpec) -> InstanceSpec {
    InstanceSpec {
        secrets: Default::default(),
        id: id.to_string(),
        generation: 1,
        service,
        env: BTreeMap::from([("CANOPY_INSTANCE".to_string(), id.to_string())]),
        prepared: Default::default(),
    }
}

async fn wait(rt: &OciRuntime, id: &str) -> Exit {
    tokio::time::timeout(LONG, rt.wait(id))
        .await
        .expect("wait timed out")
        .expect("wait")
}

async fn eventually<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, r)| !r.trim_start().starts_with(['Z', 'X']))
        })
        .unwrap_or(false)
}

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The container's root filesystem is the image store's overlay of the pulled image: the
/// bundle's `rootfs` is an overlay mount on the host and, while `pid` runs, the container's
/// own `/` is that overlay.
fn assert_overlay_root(env: &Env, id: &str, pid: Option<u32>) {
    let rootfs = env.images.instance_dir(id).join("rootfs");
    let host = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mount = images::mount_at(&host, &rootfs.display().to_string());
    let Some((fstype, options)) = mount else {
        panic!("{} is not a mount point: {host}", rootfs.display());
    };
    assert_eq!(
        fstype,
        "overlay",
        "{} is not an overlay mount",
        rootfs.display()
    );
    assert!(options.contains("lowerdir="), "{options}");
    // gVisor's sandbox process is not the workload: its kernel serves the workload's / from
    // that mount through the gofer, so the host sees no overlay as the sandbox's root.
    if let Some(pid) = pid.filter(|_| env.binary != "runsc") {
        let inside =
            fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("container mountinfo");
        assert_eq!(
            images::mount_at(&inside, "/"),
            Some(("overlay".to_string(), options)),
            "the container's / is not the image's overlay: {inside}"
        );
    }
}

/// No cgroup of `id` in any hierarchy.
fn assert_no_cgroup(env: &Env, id: &str) {
    for d in env.cgroup_dirs(id) {
        assert!(!d.exists(), "cgroup {} left", d.display());
    }
}

/// Checks that nothing of `id` is left on the machine.
async fn assert_no_residue(env: &Env, id: &str, ip: Option<IpAddr>) {
    let root = env.runtime_root();
    let listed = command_output(
        &env.binary,
        &["--root", &root.display().to_string(), "list", "--quiet"],
    );
    assert!(
        !listed.lines().any(|l| l.trim() == id),
        "{} still lists {id}: {listed}",
        env.binary
    );
    assert_eq!(
        mounts_under(env.dir.path()),
        Vec::<String>::new(),
        "mounts left under the state dir"
    );
    assert_eq!(
        mounts_under(env.images.dir()),
        Vec::<String>::new(),
        "root filesystems left mounted"
    );
    assert_no_cgroup(env, id);
    assert!(!env.dir.path().join(id).exists(), "state dir of {id} left");
    assert!(
        !env.images.instance_dir(id).exists(),
        "root filesystem directory of {id} left"
    );
    if let Some((net, lease_dir)) = &env.network {
        let slaves = command_output("ip", &["-o", "link", "show", "master", &net.bridge_name()]);
        assert!(
            slaves.trim().is_empty(),
            "veth left on the bridge: {slaves}"
        );
        if let Some(ip) = ip {
            assert!(
                !lease_dir.join(ip.to_string()).exists(),
                "lease of {ip} left in {}",
                lease_dir.display()
            );
        }
        let leases: Vec<String> = fs::read_dir(lease_dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str().map(str::to_string))
                    .filter(|n| n.parse::<IpAddr>().is_ok())
                    .collect()
            })
            .unwrap_or_default();
        assert!(leases.is_empty(), "leases left: {leases:?}");
        let rules = command_output("iptables-save", &[]);
        let ip_text = ip.map(|i| format!("{i}/")).unwrap_or_default();
        let offending: Vec<&str> = rules
            .lines()
            .filter(|l| l.contains(id) || (!ip_text.is_empty() && l.contains(&ip_text)))
            .collect();
        assert!(offending.is_empty(), "iptables rules left: {offending:?}");
    }
}

// ---------------------------------------------------------------------------------------
// The suite, run once per OCI runtime binary.

/// What ends a container's PID 1 that has no SIGTERM handler when `stop` gives it a short
/// grace: Linux ignores the signal for a namespace's init, so the grace ends in SIGKILL;
/// gVisor's kernel applies SIGTERM's default action, so it ends at once.
fn pid_one_stop_signal(binary: &str) -> i32 {
    if binary == "runsc" { 15 } else { 9 }
}

async fn exit_codes_and_logs(binary: &str) {
    let mut env = Env::new(binary, "exit", false);
    let id = env.id("exit3");
    let rt = env.rt();
    let started = env
        .start(&spec(
            &id,
            service(
                &[
                    "sh",
                    "-c",
                    "echo out $CANOPY_INSTANCE; echo err >&2; exit 3",
                ],
                serde_json::json!({}),
            ),
        ))
        .await
        .expect("start");
    assert!(started.pid.is_some());
    assert_overlay_root(&env, &id, None);
    let exit = wait(rt, &id).await;
    assert_eq!(exit.code, Some(3), "{exit:?}");
    assert!(!exit.oom_killed);
    let logs = rt.logs(&id, 10).await.expect("logs");
    assert_eq!(logs, format!("out {id}\nerr\n"));
    // The stopped container is deleted as soon as its exit is known.
    assert!(rt.runtime_containers().await.expect("list").is_empty());

    // A second start of the same id runs a fresh container; exit 0 is a success.
    env.start(&spec(
        &id,
        service(&["echo", "hello"], serde_json::json!({})),
    ))
    .await
    .expect("restart");
    assert_overlay_root(&env, &id, None);
    let exit = wait(rt, &id).await;
    assert!(exit.success(), "{exit:?}");
    assert!(rt.logs(&id, 1).await.expect("logs").contains("hello"));
    env.remove(&id).await.expect("remove");
    assert_no_residue(&env, &id, None).await;
}

/// One `Key:\tvalue` line of a /proc/PID/status the workload printed.
fn status_field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

/// The /proc/self/status of a container of `security` that printed it.
async fn status_in(env: &mut Env, name: &str, security: serde_json::Value) -> String {
    let id = env.id(name);
    env.start(&spec(
        &id,
        service(
            &["cat", "/proc/self/status"],
            serde_json::json!({"securityContext": security}),
        ),
    ))
    .await
    .expect("start");
    let exit = wait(env.rt(), &id).await;
    assert!(exit.success(), "{exit:?}");
    let status = env.rt().logs(&id, 100).await.expect("logs");
    env.remove(&id).await.expect("remove");
    status
}

/// Docker's default capability set as a /proc status mask.
const DOCKER_CAPS: &str = "00000000a80425fb";

/// What a container is, seen from inside (its own /proc/self/status): by default not root,
/// Docker's capabilities as its bounding set (none effective for a non-root user, as under
/// Docker), the seccomp filter on and no new privileges; as root it holds Docker's set;
/// privileged, every capability and no filter.
async fn a_container_is_unprivileged_unless_asked(binary: &str) {
    let mut env = Env::new(binary, "privilege", false);
    let default = status_in(&mut env, "default", serde_json::json!({})).await;
    assert_eq!(status_field(&default, "Uid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(&default, "Gid"), "65534\t65534\t65534\t65534");
    assert_eq!(status_field(&default, "CapBnd"), DOCKER_CAPS);
    assert_eq!(status_field(&default, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&default, "Seccomp"), "2");
    assert_eq!(status_field(&default, "NoNewPrivs"), "1");

    let user = status_in(
        &mut env,
        "user",
        serde_json::json!({"runAsUser": 1000, "runAsGroup": 1000}),
    )
    .await;
    assert_eq!(status_field(&user, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&user, "Gid"), "1000\t1000\t1000\t1000");

    let root = status_in(
        &mut env,
        "root",
        serde_json::json!({"runAsUser": 0, "capabilities": {"add": ["NET_ADMIN"]}}),
    )
    .await;
    assert_eq!(status_field(&root, "Uid"), "0\t0\t0\t0");
    // Docker's set plus CAP_NET_ADMIN (bit 12).
    assert_eq!(status_field(&root, "CapEff"), "00000000a80435fb");
    assert_eq!(status_field(&root, "Seccomp"), "2");

    let privileged = status_in(
        &mut env,
        "privileged",
        serde_json::json!({"runAsUser": 0, "privileged": true}),
    )
    .await;
    let caps = u64::from_str_radix(status_field(&privileged, "CapEff"), 16).expect("hex");
    assert_ne!(caps & (1 << 21), 0, "CAP_SYS_ADMIN in {caps:x}");
    assert_eq!(status_field(&privileged, "Seccomp"), "0");
    assert_eq!(status_field(&privileged, "NoNewPrivs"), "0");
}

async fn start_failures_are_clear(binary: &str) {
    let mut env = Env::new(binary, "fail", false);
    let id = env.id("nope");
    let rt = env.rt();
    let text = match env
        .start(&spec(
            &id,
            service(&["no-such-program"], serde_json::json!({})),
        ))
        .await
    {
        Err(err) => err.to_string(),
        // gVisor looks for the program once its sandbox runs: the failure is the exit's,
        // with runsc's own words.
        Ok(_) if binary == "runsc" => {
            let exit = wait(rt, &id).await;
            assert!(!exit.success(), "{exit:?}");
            env.remove(&id).await.expect("remove");
            exit.reason
        }
        Ok(started) => panic!("cannot start: {started:?}"),
    };
    assert!(
        text.contains("no-such-program") && text.contains(binary),
        "{text}"
    );
    // A container that failed to start leaves no cgroup (runc made them before it failed).
    assert_no_cgroup(&env, &id);
    // The failed start released what the image hook made for it: no root filesystem left.
    assert!(
        !env.images.instance_dir(&id).exists(),
        "the root filesystem outlived the failed start"
    );
    // Without an image, or without the image hook's root filesystem: refused before
    // anything runs.
    let mut svc = service(&["true"], serde_json::json!({}));
    svc.image = None;
    let err = rt.start(&spec(&id, svc)).await.expect_err("no image");
    assert!(err.to_string().contains("image is required"), "{err}");
    let err = rt
        .start(&spec(&id, service(&["true"], serde_json::json!({}))))
        .await
        .expect_err("no root filesystem");
    assert!(
        matches!(err, RuntimeError::InvalidSpec { .. })
            && err.to_string().contains("no root filesystem was prepared"),
        "{err}"
    );
    env.remove(&id).await.expect("remove");
    assert_no_residue(&env, &id, None).await;
}

async fn memory_limit_is_enforced(binary: &str) {
    let mut env = Env::new(binary, "oom", false);
    let id = env.id("oom");
    let rt = env.rt();
    // Command substitution makes the shell hold all 200 MB in memory; the limit is 32 MiB.
    env.start(&spec(
        &id,
        service(
            &[
                "sh",
                "-c",
                "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived ${#x}",
            ],
            serde_json::json!({"resources": {"memory": "32Mi", "cpu": "500m"}}),
        ),
    ))
    .await
    .expect("start");
    assert_overlay_root(&env, &id, None);
    let exit = wait(rt, &id).await;
    assert!(exit.oom_killed, "{exit:?}");
    assert!(exit.reason.starts_with("out of memory"), "{exit:?}");
    assert!(!rt.logs(&id, 5).await.expect("logs").contains("survived"));
    env.remove(&id).await.expect("remove");
    assert_no_residue(&env, &id, None).await;
}

/// A `cpu: 10m` container: its workload runs under the quota from its first instruction
/// (it prints its own group's quota), while the OCI runtime's setup in that group (runc init
/// compiling the seccomp filter, ≈ 25 ms of CPU, 25 periods' worth of a 1 ms quota) ran
/// without it: the group had been throttled at most a few times (the workload's own exec)
/// by the time the workload read it.
/// The memory limit holds as well.
async fn cpu_quota_binds_the_workload_not_the_runtimes_setup(binary: &str) {
    let mut env = Env::new(binary, "quota", false);
    let id = env.id("quota");
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    // One process (no shell): nothing of the workload's runs before it reads the files.
    let files: &[&str] = if v2 {
        &[
            "/sys/fs/cgroup/cpu.max",
            "/sys/fs/cgroup/memory.max",
            "/sys/fs/cgroup/cpu.stat",
        ]
    } else {
        &[
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
            "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/cpu/cpu.stat",
        ]
    };
    let mut command = vec!["cat"];
    command.extend(files);
    let t0 = Instant::now();
    env.start(&spec(
        &id,
        service(
            &command,
            serde_json::json!({"resources": {"cpu": "10m", "memory": "32Mi"}}),
        ),
    ))
    .await
    .expect("start");
    let started_in = t0.elapsed();
    let exit = wait(env.rt(), &id).await;
    let out = env.rt().logs(&id, 50).await.expect("logs");
    assert!(exit.success(), "{exit:?}: {out}");
    let lines: Vec<&str> = out.lines().collect();
    let limits = if v2 {
        vec!["1000 100000", "33554432"]
    } else {
        vec!["1000", "100000", "33554432"]
    };
    assert_eq!(
        lines[..limits.len()],
        limits[..],
        "the workload's own group: {out}"
    );
    let throttled: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .unwrap_or_else(|| panic!("no nr_throttled in {out}"))
        .trim()
        .parse()
        .expect("a count");
    // The runtime's setup under the quota would be throttled about 25 times; the workload's
    // own exec of `cat` (page-faulting a cold binary on a loaded machine) may take a few
    // periods past its millisecond.
    assert!(
        throttled <= 5,
        "the group was throttled {throttled} times before its workload read cpu.stat: the \
         runtime's setup ran under the quota ({started_in:?} from start() to running)"
    );
    eprintln!(
        "{binary}: cpu 10m container running {started_in:?} after start(), throttled {throttled} \
         times before its workload read cpu.stat"
    );
    env.remove(&id).await.expect("remove");
    assert_no_residue(&env, &id, None).await;
}

async fn published_port_answers_and_teardown_is_clean(binary: &str) {
    let mut env = Env::new(binary, "http", true);
    let id = env.id("web");
    let host_port = published_port();
    let rt = env.rt();
    let started = env
        .start(&spec(
            &id,
            service(
                &["httpd", "-f", "-p", "8080", "-h", "/www"],
                serde_json::json!({
                    "image": "web:canopy",
                    "ports": [{"port": 8080, "hostPort": host_port}],
                    "resources": {"cpu": "250m", "memory": "64Mi"},
                }),
            ),
        ))
        .await
        .expect("start");
    let pid = started.pid.expect("pid");
    assert_overlay_root(&env, &id, Some(pid));
    let ip = rt.address(&id).expect("container address");
    let direct = SocketAddr::new(ip, 8080);
    let body = eventually("httpd on the container address", LONG, || {
        http_get(direct, "/index.html")
    })
    .await;
    assert!(body.contains("hello from canopy"), "{body}");
    let published = SocketAddr::from(([127, 0, 0, 1], host_port));
    let body = eventually("httpd on the published loopback port", LONG, || {
        http_get(published, "/index.html")
    })
    .await;
    assert!(body.contains("hello from canopy"), "{body}");
    let stats = rt.stats(&id).await.expect("stats");
    assert!(stats.memory_bytes > 0, "{stats:?}");
    // The workload's /etc/hosts names it.
    let hosts = fs::read_to_string(env.dir.path().join(&id).join("hosts")).expect("hosts");
    assert!(hosts.contains(&format!("{ip}\t{id}")), "{hosts}");

    // httpd as PID 1 ignores SIGTERM: the grace period ends in SIGKILL.
    rt.stop(&id, Duration::from_millis(200))
        .await
        .expect("stop");
    let exit = wait(rt, &id).await;
    assert_eq!(exit.signal, Some(pid_one_stop_signal(binary)), "{exit:?}");
    assert!(!alive(pid));
    rt.stop(&id, Duration::ZERO).await.expect("stop again");
    env.remove(&id).await.expect("remove");
    env.remove(&id).await.expect("remove again");
    assert!(http_get(published, "/index.html").is_none());
    assert_no_residue(&env, &id, Some(ip)).await;
}

async fn recovery_readopts_a_running_container(binary: &str) {
    let mut env = Env::new(binary, "recover", true);
    let id = env.id("sleeper");
    let ended = env.id("ended");
    let pid = env
        .start(&spec(
            &id,
            service(&["sleep", "1000"], serde_json::json!({})),
        ))
        .await
        .expect("start")
        .pid
        .expect("pid");
    env.start(&spec(
        &ended,
        service(&["sh", "-c", "exit 7"], serde_json::json!({})),
    ))
    .await
    .expect("start");
    let ip = env.rt().address(&id);
    assert!(ip.is_some());
    assert_overlay_root(&env, &id, Some(pid));
    assert_overlay_root(&env, &ended, None);

    // The agent "dies" while `ended` is still running or just finishing.
    env.restart_runtime();
    let rt = env.rt();
    assert!(alive(pid), "the container must outlive its runtime");
    let recovered = rt.recover().await.expect("recover");
    let mine = recovered.iter().find(|r| r.id == id).expect("recovered");
    assert_eq!(mine.pid, Some(pid));
    assert!(mine.running);
    assert_overlay_root(&env, &id, Some(pid));
    assert_eq!(rt.address(&id), ip);
    let other = wait(rt, &ended).await;
    assert_eq!(other.code, Some(7), "{other:?}");

    rt.stop(&id, Duration::from_millis(100))
        .await
        .expect("stop");
    let exit = wait(rt, &id).await;
    assert_eq!(exit.signal, Some(pid_one_stop_signal(binary)), "{exit:?}");
    assert!(!alive(pid));
    env.remove(&id).await.expect("remove");
    env.remove(&ended).await.expect("remove");
    assert_no_residue(&env, &ended, None).await;
    assert_no_residue(&env, &id, ip).await;
}

/// Time from `start()` to the container's process running, median of five.
async fn start_latency(binary: &str) -> Duration {
    let mut env = Env::new(binary, "latency", false);
    let mut times = Vec::new();
    for i in 0..5 {
        let id = env.id(&format!("lat{i}"));
        let rt = env.rt();
        let t0 = Instant::now();
        env.start(&spec(&id, service(&["true"], serde_json::json!({}))))
            .await
            .expect("start");
        times.push(t0.elapsed());
        assert_overlay_root(&env, &id, None);
        wait(rt, &id).await;
        env.remove(&id).await.expect("remove");
    }
    times.sort();
    times[times.len() / 2]
}

// ---------------------------------------------------------------------------------------
/// Deletes a test network's bridge and iptables rules even when the test fails half-way (a
/// DNAT rule left behind would capture its host port for later tests' listeners).
struct NetworkResidue(CniConfig);

impl Drop for NetworkResidue {
    fn drop(&mut self) {
        let _ = Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/remove-cni-rules"
        ))
        .arg(&self.0.name)
        .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.0.bridge_name()])
            .output();
    }
}

/// The hooks one by one: the runtime joins the namespace the network hook prepared (and
/// runs the image hook's root filesystem); releasing the network hook after `remove`, even
/// from a new hook as after an agent restart, leaves no namespace, lease or rule.
async fn network_hook_prepares_what_the_container_joins(binary: &str) {
    let mut env = Env::new(binary, "hook", false);
    let id = env.id("web");
    let tag = unique("hook");
    let cfg = CniConfig::new(format!("canopy-{tag}"), free_subnet(&tag));
    let _residue = NetworkResidue(cfg.clone());
    let base = env.dir.path().join("@cni");
    let hook = NetworkHook::new(cfg.clone(), &base).expect("network hook");
    let lease_dir = hook.lease_dir();
    let hook = NetworkPrestart::new(hook);
    let host_port = published_port();
    let mut spec = spec(
        &id,
        service(
            &["httpd", "-f", "-p", "8080", "-h", "/www"],
            serde_json::json!({
                "image": "web:hook",
                "ports": [{"port": 8080, "hostPort": host_port}],
            }),
        ),
    );
    let mut prepared = Prepared::default();
    let quiet = |_: &str| {};
    env.images
        .prepare(&spec, &mut prepared, &quiet)
        .await
        .expect("prepare the image");
    hook.prepare(&spec, &mut prepared, &quiet)
        .await
        .expect("prepare");
    // Preparing again (a restart) replaces the namespace rather than failing.
    hook.prepare(&spec, &mut prepared, &quiet)
        .await
        .expect("prepare again");
    let net = prepared.network.clone().expect("a prepared network");
    let ip = net.ip.expect("an address");
    spec.prepared = prepared;
    let rt = env.rt();
    let pid = rt.start(&spec).await.expect("start").pid.expect("pid");
    assert_overlay_root(&env, &id, Some(pid));
    let body = eventually("httpd on the prepared address", LONG, || {
        http_get(SocketAddr::new(ip, 8080), "/index.html")
    })
    .await;
    assert!(body.contains("hello from a hook"), "{body}");
    let published = SocketAddr::from(([127, 0, 0, 1], host_port));
    eventually("httpd on the published port", LONG, || {
        http_get(published, "/index.html")
    })
    .await;
    let hosts = fs::read_to_string(env.dir.path().join(&id).join("hosts")).expect("hosts");
    assert!(hosts.contains(&format!("{ip}\t{id}")), "{hosts}");
    // Re-adopted by a new runtime: its address is known without a network.json of its own.
    env.restart_runtime();
    let rt = env.rt();
    rt.recover().await.expect("recover");
    assert_eq!(rt.address(&id), Some(ip));

    rt.stop(&id, Duration::from_millis(200))
        .await
        .expect("stop");
    env.remove(&id).await.expect("remove");
    // Released by a new hook, as after an agent restart: the state on disk is enough.
    let restarted = NetworkPrestart::new(NetworkHook::new(cfg, &base).expect("network hook"));
    restarted.release(&id).await.expect("release");
    restarted.release(&id).await.expect("release again");
    assert!(
        !net.netns.exists(),
        "namespace {} left",
        net.netns.display()
    );
    assert!(http_get(published, "/index.html").is_none());
    assert!(
        !lease_dir.join(ip.to_string()).exists(),
        "lease of {ip} left"
    );
    let rules = command_output("iptables-save", &[]);
    let left: Vec<&str> = rules
        .lines()
        .filter(|l| l.contains(&id) || l.contains(&format!("{ip}/")))
        .collect();
    assert!(left.is_empty(), "iptables rules left: {left:?}");
    assert_no_residue(&env, &id, None).await;
}

// runc

macro_rules! runc_test {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            // runc is not optional: without it (or root) the test fails, it never passes.
            if let Some(why) = super::missing_prerequisite("runc") {
                panic!("{}: {why}", stringify!($name));
            }
            super::$name("runc").await;
        }
    };
}

mod runc {
    runc_test!(exit_codes_and_logs);
    runc_test!(start_failures_are_clear);
    runc_test!(memory_limit_is_enforced);
    runc_test!(published_port_answers_and_teardown_is_clean);
    runc_test!(network_hook_prepares_what_the_container_joins);
    runc_test!(recovery_readopts_a_running_container);
    runc_test!(a_container_is_unprivileged_unless_asked);
    runc_test!(cpu_quota_binds_the_workload_not_the_runtimes_setup);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn start_latency() {
        if let Some(why) = super::missing_prerequisite("runc") {
            panic!("start_latency: {why}");
        }
        let median = super::start_latency("runc").await;
        eprintln!("runc: start() until the container runs, median of 5: {median:?}");
        assert!(median < Duration::from_secs(10));
    }

    use std::time::Duration;
}

// ---------------------------------------------------------------------------------------
// crun: the same suite where crun can run a container on this machine.

/// crun 1.8 refuses hosts with cgroups v1 and v2 mounted side by side; Canopy can do nothing
/// about it. The only crun failure the crun suite skips on.
const CRUN_HYBRID_REFUSAL: &str = "cgroups in hybrid mode not supported";

/// Why the crun suite cannot run here: a missing prerequisite, or crun's known refusal of
/// this host. Any other failure to run a trivial container fails the calling test, since it
/// may be Canopy's bug with crun.
async fn crun_unusable() -> Option<String> {
    if let Some(why) = missing_prerequisite("crun") {
        return Some(why);
    }
    let mut env = Env::new("crun", "probe", false);
    let id = env.id("probe");
    let rt = env.rt();
    let failure = match env
        .start(&spec(&id, service(&["true"], serde_json::json!({}))))
        .await
    {
        Err(e) => Some(e.to_string()),
        Ok(_) => {
            let exit = wait(rt, &id).await;
            (!exit.success()).then(|| format!("the trivial container failed: {}", exit.reason))
        }
    };
    let _ = env.remove(&id).await;
    let failure = failure?;
    assert!(
        failure.contains(CRUN_HYBRID_REFUSAL),
        "crun cannot run a trivial container, and not for its known refusal of this host: \
         {failure}"
    );
    Some(format!(
        "crun refuses this host ({CRUN_HYBRID_REFUSAL:?}): {failure}"
    ))
}

/// crun is an optional backend: its suite is ignored by default and `scripts/test` runs it
/// where crun starts a container (then every test must pass, nothing is skipped).
macro_rules! crun_test {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = "optional backend: crun (crun 1.8 refuses hybrid cgroup hosts); scripts/test runs it where crun starts a container"]
        async fn $name() {
            if let Some(why) = super::crun_unusable().await {
                panic!("crun::{}: {why}", stringify!($name));
            }
            super::$name("crun").await;
        }
    };
}

mod crun {
    /// Runs on every host: Canopy's crun path starts a trivial container, and where crun
    /// fails it is for its known refusal of the host and nothing else.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn starts_a_container_or_meets_only_the_known_refusal() {
        if let Some(why) = super::crun_unusable().await {
            println!("crun is not usable here: {why}");
        }
    }

    crun_test!(exit_codes_and_logs);
    crun_test!(start_failures_are_clear);
    crun_test!(memory_limit_is_enforced);
    crun_test!(cpu_quota_binds_the_workload_not_the_runtimes_setup);
    crun_test!(published_port_answers_and_teardown_is_clean);
    crun_test!(recovery_readopts_a_running_container);

    #[tokio::test]
    async fn command_line_and_bundle() {
        super::command_line_and_bundle("crun").await;
    }
}

mod runc_cli {
    #[tokio::test]
    async fn command_line_and_bundle() {
        super::command_line_and_bundle("runc").await;
    }
}

// ---------------------------------------------------------------------------------------
// runsc: gVisor's OCI runtime (`sandbox: gvisor`), the same suite; it runs on this machine,
// so it is not optional: without it (or root) these tests fail.

macro_rules! runsc_test {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            if let Some(why) = super::missing_prerequisite("runsc") {
                panic!("runsc::{}: {why}", stringify!($name));
            }
            super::$name("runsc").await;
        }
    };
}

mod runsc {
    runsc_test!(exit_codes_and_logs);
    runsc_test!(start_failures_are_clear);
    runsc_test!(memory_limit_is_enforced);
    runsc_test!(published_port_answers_and_teardown_is_clean);
    runsc_test!(recovery_readopts_a_running_container);

    #[tokio::test]
    async fn command_line_and_bundle() {
        super::command_line_and_bundle("runsc").await;
    }

    /// The node offers gVisor only where its probe sandbox starts: here it does; a binary
    /// that is not runsc fails the probe with a clear error.
    #[tokio::test]
    async fn the_probe_sandbox_starts_here() {
        if let Some(why) = super::missing_prerequisite("runsc") {
            panic!("runsc::the_probe_sandbox_starts_here: {why}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let scratch = dir.path().join("probe");
        let path = canopy_runtime::probe_gvisor("runsc", &scratch, super::LONG)
            .await
            .expect("the probe sandbox starts");
        assert!(path.ends_with("runsc"), "{}", path.display());
        assert!(!scratch.exists(), "the probe's state is removed");
        let err = canopy_runtime::probe_gvisor("/bin/false", &scratch, super::LONG)
            .await
            .expect_err("false is no sandbox");
        assert!(err.to_string().contains("runsc do"), "{err}");
    }
}

/// What an image hook hands the runtime for an image with nothing but the directories the
/// bundle binds files into.
fn empty_image(dir: &Path) -> PreparedImage {
    let rootfs = dir.join("rootfs");
    fs::create_dir_all(rootfs.join("etc")).expect("create rootfs/etc");
    PreparedImage {
        rootfs,
        config: ImageConfig {
            env: vec!["PATH=/bin".to_string()],
            ..ImageConfig::default()
        },
        digest: "sha256:empty".to_string(),
    }
}

/// A stand-in for runc or crun, named like it (Canopy picks flags by the binary's name): it
/// records each command line and, on `run` or `create`, the bundle's config.json, then
/// refuses the way a runtime does, with an error in its JSON log and exit 1.
fn fake_runtime(dir: &Path, name: &str) -> PathBuf {
    let bin = dir.join(name);
    let script = format!(
        r#"#!/bin/sh
here=$(dirname "$0")
{{ for a in "$@"; do printf '%s\n' "$a"; done; echo '--end--'; }} >> "$here/calls"
prev= cmd= bundle= log=
for a in "$@"; do
  case "$prev" in --bundle) bundle=$a ;; --log) log=$a ;; --root) ;; *)
    case "$a" in run|create|start|state|delete|kill|list) [ -z "$cmd" ] && cmd=$a ;; esac ;;
  esac
  prev=$a
done
case "$cmd" in
  run|create)
    cp "$bundle/config.json" "$here/config.json"
    echo '{{"level":"error","msg":"fake {name}: refused on purpose"}}' >> "$log"
    exit 1 ;;
  state) exit 1 ;;
  *) exit 0 ;;
esac
"#
    );
    fs::write(&bin, script).expect("write fake runtime");
    fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod fake runtime");
    bin
}

/// What Canopy hands runc or crun for a start, through the real start path, without either
/// having to run a container here: the exact `create` (runsc: `run`) command line and the
/// bundle config.
async fn command_line_and_bundle(name: &str) {
    let bins = tempfile::tempdir().expect("tempdir");
    let binary = fake_runtime(bins.path(), name);
    let state = tempfile::tempdir().expect("tempdir");
    let parent = format!("canopy-test/{}", unique("cli"));
    let opts = OciOptions {
        runtime_binary: binary.display().to_string(),
        cgroup_parent: parent.clone(),
        ..OciOptions::default()
    };
    let rt = OciRuntime::new(state.path().to_path_buf(), opts).expect("runtime");
    let image = tempfile::tempdir().expect("tempdir");
    let id = unique("cli");
    let svc = service(
        &["/bin/app", "--flag"],
        serde_json::json!({
            "args": ["x y"],
            "env": { "MODE": "test" },
            "workingDir": "/work",
            "resources": { "cpu": "250m", "memory": "32Mi" },
        }),
    );
    let mut spec = spec(&id, svc);
    let prepared = empty_image(image.path());
    let rootfs = prepared.rootfs.display().to_string();
    spec.prepared.image = Some(prepared);
    // runsc runs in the foreground; runc and crun create, then start (see the runtime's docs).
    let verb = if name == "runsc" { "run" } else { "create" };
    let err = rt.start(&spec).await.expect_err("the fake refuses");
    match &err {
        RuntimeError::Oci {
            runtime,
            op,
            id: failed,
            message,
        } => {
            assert_eq!(runtime, name, "{err}");
            assert_eq!(*op, verb, "{err}");
            assert_eq!(failed, &id, "{err}");
            assert_eq!(message, &format!("fake {name}: refused on purpose"));
        }
        other => panic!("expected the runtime's own error, got {other:?}"),
    }

    let calls = fs::read_to_string(bins.path().join("calls")).expect("the fake was called");
    let calls: Vec<Vec<&str>> = calls
        .split("--end--\n")
        .filter(|c| !c.is_empty())
        .map(|c| c.lines().collect())
        .collect();
    let root = rt.runtime_root().display().to_string();
    let dir = state.path().join(&id).display().to_string();
    let log = format!("{dir}/runtime.log");
    let pid_file = format!("{dir}/container.pid");
    let mut want = vec!["--root", &root, "--log", &log, "--log-format", "json"];
    // gVisor joins no namespace of its own making: without the node's it has no network.
    if name == "runsc" {
        want.push("--network=none");
    }
    want.push(verb);
    want.extend(["--bundle", &dir, "--pid-file", &pid_file, &id]);
    let runs: Vec<&Vec<&str>> = calls
        .iter()
        .filter(|c| c.contains(&"run") || c.contains(&"create"))
        .collect();
    assert_eq!(runs, vec![&want], "every call: {calls:#?}");
    // A container that was never created is never started.
    assert!(!calls.iter().any(|c| c.contains(&"start")), "{calls:#?}");
    // Every other call is on the same private root.
    for call in &calls {
        assert_eq!(call[..2], ["--root", root.as_str()], "{call:?}");
    }

    let config: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(bins.path().join("config.json")).expect("bundle config recorded"),
    )
    .expect("config.json is JSON");
    let process = &config["process"];
    assert_eq!(
        process["args"],
        serde_json::json!(["/bin/app", "--flag", "x y"])
    );
    let env: Vec<&str> = process["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for want in ["PATH=/bin", "MODE=test", &format!("CANOPY_INSTANCE={id}")] {
        assert!(env.contains(&want), "{want} missing from {env:?}");
    }
    assert_eq!(process["cwd"], "/work");
    assert_eq!(process["noNewPrivileges"], true);
    // The image hook's root filesystem, outside the bundle, by its absolute path.
    assert_eq!(config["root"]["path"], rootfs.as_str());
    let linux = &config["linux"];
    assert_eq!(linux["cgroupsPath"], format!("/{parent}/{id}"));
    assert_eq!(linux["resources"]["memory"]["limit"], 32 << 20);
    if name == "runsc" {
        assert_eq!(linux["resources"]["cpu"]["quota"], 25_000);
        assert_eq!(linux["resources"]["cpu"]["period"], 100_000);
    } else {
        // Set on the group between create and start, so runc's own setup runs without it.
        assert!(linux["resources"]["cpu"].is_null(), "{linux}");
    }
    let namespaces: Vec<&str> = linux["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    for ns in ["pid", "ipc", "uts", "mount", "network"] {
        assert!(
            namespaces.contains(&ns),
            "{ns} namespace missing: {namespaces:?}"
        );
    }
    let binds: Vec<&str> = config["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter(|m| m["type"] == "bind")
        .filter_map(|m| m["destination"].as_str())
        .collect();
    assert_eq!(binds, ["/etc/hosts", "/etc/resolv.conf", "/etc/hostname"]);
}

// ---------------------------------------------------------------------------------------

#[test]
fn missing_runtime_says_how_to_install() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = OciOptions {
        runtime_binary: "/nonexistent/bin/runc".to_string(),
        ..OciOptions::default()
    };
    let err = OciRuntime::new(dir.path().to_path_buf(), opts)
        .err()
        .expect("missing runtime");
    assert_eq!(
        err.to_string(),
        "runc is not installed: apt-get install runc"
    );
    // The network is the hook's: it is the one that needs the CNI plugins.
    let cfg = CniConfig {
        plugin_dir: PathBuf::from("/nonexistent/cni"),
        ..CniConfig::new("n", "10.213.0.0/24")
    };
    let err = NetworkHook::new(cfg, &dir.path().join("@cni")).expect_err("missing plugins");
    assert!(
        err.to_string()
            .contains("apt-get install containernetworking-plugins"),
        "{err}"
    );
}

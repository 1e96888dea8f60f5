//! A rootful Podman service of the test's own (Debian's podman 4.3, `podman system service`
//! as a child of the test): its own storage, run and temp roots, events file, network (its
//! own bridge and /24) and registries.conf, all in a temp dir named by environment
//! variables, so the machine's podman configuration is neither read nor touched. The docker
//! CLI speaks to it as to an engine. Stopped and cleaned up on drop.

use super::engine::{
    docker_at, docker_ok_at, remove_all_containers, unmount_under, wait_until_answering,
};
use super::registry::{free_subnet_in, require_root_and};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub struct Podman {
    child: Option<Child>,
    dir: tempfile::TempDir,
    bridge: String,
}

/// containers.conf for the test's service. runc and cgroupfs: Debian's podman picks crun,
/// which refuses these machines' hybrid cgroups. Events in a file: there is no journald.
/// Ulimits: rootful podman raises every container's nofile and nproc to 1048576 and
/// 4194304 unless told otherwise, which needs CAP_SYS_RESOURCE (CI's sandbox lacks it, and
/// runc then fails with "error setting rlimit type 7"); lowering them is always allowed.
fn containers_conf(dir: &Path, network: &str) -> String {
    let at = |name: &str| dir.join(name).display().to_string();
    format!(
        r#"[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
log_driver = "k8s-file"
[network]
network_backend = "netavark"
network_config_dir = "{networks}"
default_network = "{network}"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{events}"
tmp_dir = "{tmp}"
static_dir = "{static_dir}"
volume_path = "{volumes}"
"#,
        networks = at("networks"),
        events = at("events.log"),
        tmp = at("tmp"),
        static_dir = at("static"),
        volumes = at("volumes"),
    )
}

impl Podman {
    /// Starts the service, pulling from `registry_port` on loopback over plain HTTP, or
    /// fails the test saying why it cannot start here.
    pub fn start(registry_port: u16) -> Podman {
        require_root_and(
            "podman driver",
            &["podman", "conmon", "runc", "docker", "ip"],
            "scripts/test installs podman and docker.io",
        );
        // Short paths: the service's socket and conmon's attach sockets live under them.
        let dir = tempfile::Builder::new()
            .prefix("pm")
            .tempdir_in("/tmp")
            .expect("a temp dir for podman");
        let tag = std::process::id() % 100_000;
        let bridge = format!("cnppm{tag}");
        let network = format!("canopy-pm-{tag}");
        let write = |name: &str, text: String| {
            std::fs::write(dir.path().join(name), text).expect("podman's config files");
        };
        write("containers.conf", containers_conf(dir.path(), &network));
        write(
            "storage.conf",
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
                dir.path().join("graph").display(),
                dir.path().join("run").display()
            ),
        );
        write(
            "registries.conf",
            format!(
                "unqualified-search-registries = []\n[[registry]]\nlocation = \"127.0.0.1:{registry_port}\"\ninsecure = true\n"
            ),
        );
        let podman = Podman {
            child: None,
            dir,
            bridge,
        };
        // Written rather than `podman network create`d: podman 4.3 cannot name the bridge.
        let subnet = free_subnet_in(94);
        let network_file = serde_json::json!({
            "name": network,
            "id": format!("{:064x}", u128::from(std::process::id())),
            "driver": "bridge",
            "network_interface": podman.bridge,
            "created": "2026-01-01T00:00:00Z",
            "subnets": [{"subnet": subnet, "gateway": subnet.replace(".0/24", ".1")}],
            "ipv6_enabled": false,
            "internal": false,
            "dns_enabled": false,
            "ipam_options": {"driver": "host-local"}
        });
        let networks = podman.path("networks");
        std::fs::create_dir_all(&networks).expect("podman's network dir");
        std::fs::write(
            networks.join(format!("{network}.json")),
            network_file.to_string(),
        )
        .expect("podman's network");
        podman.launch()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The podman CLI with the service's configuration (not through the service).
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("CONTAINERS_CONF", self.path("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.path("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", self.path("registries.conf"));
        command
    }

    /// `unix:///.../podman.sock`, for `--endpoint`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.path("podman.sock").display())
    }

    fn launch(mut self) -> Podman {
        let log = std::fs::File::create(self.path("podman.log")).expect("the service's log");
        let child = self
            .command("podman")
            .args(["system", "service", "--time=0", &self.endpoint()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log again"))
            .stderr(log)
            .spawn()
            .expect("podman system service starts");
        let endpoint = self.endpoint();
        let socket = self.path("podman.sock");
        let log = self.path("podman.log");
        self.child = Some(child);
        let child = self.child.as_mut().expect("just started");
        wait_until_answering(child, "podman driver: podman system service", &log, || {
            socket.exists() && docker_at(&endpoint, &["info"]).status.success()
        });
        self
    }

    /// The docker CLI against the service (Podman's Docker-compatible API).
    pub fn docker(&self, args: &[&str]) -> Output {
        docker_at(&self.endpoint(), args)
    }

    /// `docker ARGS` against the service that must succeed: its trimmed stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        docker_ok_at(&self.endpoint(), args)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Through the service: it stops their conmon monitors and their firewall rules.
        remove_all_containers(&self.endpoint());
        let _ = child.kill();
        let _ = child.wait();
        unmount_under(self.dir.path());
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

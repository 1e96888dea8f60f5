use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7700";

#[derive(Debug, Parser)]
#[command(
    name = "canopy",
    version,
    about = "Hierarchical orchestration for the cloud-edge-IoT continuum"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every tier in one process with an embedded store: the quickest way to try Canopy.
    Up(UpArgs),
    /// Run the root orchestrator: desired state, public API, placement over clusters.
    Root(DaemonArgs),
    /// Run a cluster orchestrator: links up to the root, accepts its nodes' links.
    Cluster(ClusterArgs),
    /// Run a node agent: links up to its cluster, runs the instances placed on this machine.
    Node(NodeArgs),
    /// Run N hollow node agents in this process: real agents and links, no workloads, for
    /// testing the control plane at scale on one machine.
    Sim(SimArgs),
    /// Create or update applications from descriptor files (native YAML/JSON or Oakestra SLA).
    Apply {
        #[command(flatten)]
        client: ClientArgs,
        /// Descriptor file, or `-` for standard input. May be given several times.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Run every check the root makes and report what would be created, configured or
        /// left unchanged, without changing anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Show what `apply -f` would change, as a unified diff. Exits 0 when nothing would
    /// change, 1 when something would, more than 1 on an error (as `kubectl diff`).
    Diff {
        #[command(flatten)]
        client: ClientArgs,
        /// Descriptor file, or `-` for standard input. May be given several times.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
    },
    /// List resources.
    Get {
        #[command(flatten)]
        client: ClientArgs,
        /// What to list.
        kind: Kind,
        /// Only the resource with this name (`app`, `app/service`, an instance id, a cluster or node name).
        name: Option<String>,
        #[command(flatten)]
        scope: Scope,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
        /// Only resources whose labels match: `key=value`, `key!=value`, `key`, `!key`,
        /// comma-separated, all must hold. Services and instances carry their application's
        /// labels under their service's own.
        #[arg(short = 'l', long = "selector", value_parser = parse_selector)]
        selector: Option<canopy_model::Selector>,
        /// After the list, print a line for each change, until interrupted.
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// List recent events (instances' state changes); `-w` follows every change as it happens.
    Events(crate::events::EventsArgs),
    /// Wait until a resource reaches a state, or is deleted.
    Wait(crate::wait::WaitArgs),
    /// Print the client's version and the server's.
    Version(crate::version::VersionArgs),
    /// Contexts of the client config file: which root to talk to, and with which credentials.
    Config {
        #[command(subcommand)]
        command: crate::config_verbs::ConfigCommand,
    },
    /// Show one resource in detail, with its instances and recent events.
    Describe {
        #[command(flatten)]
        client: ClientArgs,
        /// What to describe.
        kind: Kind,
        /// Its name (`app`, `app/service`, an instance id, a cluster or node name).
        name: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// Delete applications by name or by the descriptor that created them, or an instance
    /// (its service replaces it); `delete cluster NAME` revokes a cluster's certificates,
    /// `delete node CLUSTER/NAME` a node's (its cluster forgets it).
    Delete {
        #[command(flatten)]
        client: ClientArgs,
        /// `application` (the only kind that can be deleted) when naming it.
        kind: Option<Kind>,
        /// The application's name.
        name: Option<String>,
        /// Delete the applications this descriptor file defines (`-` for standard input).
        #[arg(short = 'f', long = "filename")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        scope: Scope,
    },
    /// Mark a node unschedulable: what runs there stays, nothing new is placed there.
    Cordon(crate::operations::NodeArgs),
    /// Make a cordoned node schedulable again.
    Uncordon(crate::operations::NodeArgs),
    /// Cordon a node and move its instances elsewhere (each replaced as it stops).
    Drain(crate::operations::NodeArgs),
    /// Add, overwrite (`KEY=VALUE`) or remove (`KEY-`) labels of a node or cluster.
    Label(crate::operations::LabelArgs),
    /// Show the CPU and memory nodes or instances use.
    Top(crate::operations::TopArgs),
    /// Set the replica count of a service (`app/service`).
    Scale {
        #[command(flatten)]
        client: ClientArgs,
        /// The service, as `APPLICATION/SERVICE`.
        service: String,
        /// How many instances it should have.
        #[arg(long)]
        replicas: u32,
        #[command(flatten)]
        scope: Scope,
    },
    /// Follow, pause, resume or undo a service's rolling update (`APP/SERVICE`).
    Rollout(crate::rollout::RolloutArgs),
    /// Start a job of a job service with these arguments (`canopy run APP/SERVICE -- ARGS`),
    /// print its output and exit with its exit code: a function on demand.
    Run(crate::run::RunArgs),
    /// Print an instance's output (`INSTANCE`), or that of every instance of a service
    /// (`APP/SERVICE`, each line prefixed with `[instance]`), streamed from its node.
    Logs(crate::streams::LogsArgs),
    /// Run a command inside a running instance (`canopy exec INSTANCE -- CMD...`); exits
    /// with the command's exit code.
    Exec(crate::exec::ExecArgs),
    /// Relay local connections to a port of an instance (`LOCAL:REMOTE`), until Ctrl-C.
    PortForward(crate::forward::ForwardArgs),
    /// Join tokens (`--join cluster`) and API tokens (`--role R`): create, list, revoke.
    Token(crate::tokens::TokenArgs),
    /// Log in to a root: its tokens go to a context of the client config (the current one).
    Login(crate::login::LoginArgs),
    /// Create a user (`canopy create user NAME`), a namespace (`create namespace NAME
    /// [--trusted]`) or a secret (`create secret NAME --from-literal KEY=VALUE`).
    Create(crate::create::CreateArgs),
    /// Give a user a role over a namespace or all of them.
    Grant(crate::users::GrantArgs),
    /// Take a role a user holds away.
    Revoke(crate::users::GrantArgs),
}

impl Command {
    /// The tiers' daemons, as opposed to the client verbs.
    pub fn is_daemon(&self) -> bool {
        matches!(
            self,
            Command::Up(_)
                | Command::Root(_)
                | Command::Cluster(_)
                | Command::Node(_)
                | Command::Sim(_)
        )
    }
}

/// `canopy up`: the root's flags, plus how its node runs containers.
#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    #[command(flatten)]
    pub containers: ContainerArgs,
    /// Let `hostPath` volumes use this directory and what is under it (none by default);
    /// repeat for several.
    #[arg(long = "allow-host-path", value_name = "PREFIX", value_parser = host_path_prefix)]
    pub allowed_host_paths: Vec<String>,
}

/// An `--allow-host-path` prefix: absolute and normal (`/` allows every directory).
fn host_path_prefix(prefix: &str) -> Result<String, String> {
    let normal = prefix == "/"
        || (prefix.starts_with('/')
            && prefix[1..]
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != ".."));
    match normal {
        true => Ok(prefix.to_string()),
        false => Err("must be an absolute path without '.', '..' or empty parts".to_string()),
    }
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Address of the public API.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Address of the tier listener clusters join and link to, over TLS (`root`: default
    /// 127.0.0.1:7710; `up`: a random loopback port).
    #[arg(long)]
    pub tier_listen: Option<SocketAddr>,
    /// Directory for the state (created if missing).
    #[arg(long, default_value = "canopy-data")]
    pub data: PathBuf,
    /// Where the root keeps its state: `redb` (a file in --data) or
    /// `etcd://HOST:PORT[,HOST:PORT...]` (an etcd cluster that several roots can share; they
    /// elect a leader, the only one that schedules).
    #[arg(long, value_name = "URL", default_value = "redb")]
    pub store: String,
    /// The leader lease's time to live with an etcd store: how long a dead leader is waited for.
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0)]
    pub leader_ttl: f64,
    /// Mark this namespace trusted at every start (created if missing), so its applications
    /// may run as root, privileged or with the process runtime; repeat for several.
    /// `canopy up` always trusts `default`.
    #[arg(long = "trusted-namespace", value_name = "NAME")]
    pub trusted_namespaces: Vec<String>,
    /// How long a job waits after a failed run before the next, in milliseconds; doubled
    /// with each failure since the last success, up to six minutes (Kubernetes' back-off).
    #[arg(
        long,
        env = "CANOPY_JOB_BACKOFF_MS",
        value_name = "MS",
        default_value_t = 10_000
    )]
    pub job_backoff_ms: u64,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub timing: TimingArgs,
}

/// How the public API guards itself.
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// Serve the API over TLS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A host name the API answers to besides IP addresses and localhost (DNS-rebinding
    /// guard); repeat for several.
    #[arg(long = "allowed-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// Requests per second one client may make (bursts of twice as many).
    #[arg(long, default_value_t = 200.0)]
    pub rate_limit: f64,
    /// Mutating requests (POST, PUT, PATCH, DELETE) per second one client may make (bursts of
    /// twice as many).
    #[arg(long, default_value_t = 20.0)]
    pub write_rate_limit: f64,
}

#[derive(Debug, Args, Clone, Copy)]
pub struct TimingArgs {
    /// How often children report, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub heartbeat_ms: u64,
    /// How long a silent child (node, or cluster at the root) has before it is unreachable and its instances are replaced, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pub deadline_ms: u64,
}

impl TimingArgs {
    pub fn timing(&self) -> canopy_tier::Timing {
        canopy_tier::Timing {
            heartbeat: std::time::Duration::from_millis(self.heartbeat_ms.max(10)),
            deadline: std::time::Duration::from_millis(self.deadline_ms.max(30)),
        }
    }
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The root's tier listener (`https://host:port`, its `--tier-listen`).
    #[arg(long)]
    pub root: String,
    /// Address of the node listener (TLS only): nodes join and link here.
    #[arg(long, default_value = "127.0.0.1:7701")]
    pub listen: SocketAddr,
    /// Directory for the cluster's state (created if missing).
    #[arg(long, default_value = "canopy-cluster-data")]
    pub data: PathBuf,
    /// The cluster's name, unique under its root.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// One-time join token (`canopy token create --join cluster`), needed on the first start
    /// only: the certificate it gets is kept in the data directory.
    #[arg(long, env = "CANOPY_TOKEN", default_value = "", hide_env_values = true)]
    pub token: String,
    /// The root CA's hash the token came with (`sha256:...`): the root is trusted only if
    /// its CA matches.
    #[arg(long, env = "CANOPY_CA_HASH")]
    pub ca_hash: Option<String>,
    #[command(flatten)]
    pub timing: TimingArgs,
    #[command(flatten)]
    pub probe: ProbeArgs,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (plain HTTP, no token: bind it
    /// where only your scrapers reach). Off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Who runs the cluster's instances: `canopy` (node agents that join it), `docker` (the
    /// Docker Engine at --endpoint, as the cluster's one member), `podman` (Podman's
    /// Docker-compatible service at --endpoint, likewise) or `swarm` (the Docker Swarm whose
    /// manager answers at --endpoint, its nodes as members); see docs/drivers.md.
    #[arg(long, default_value = "canopy", value_parser = parse_driver)]
    pub driver: canopy_cluster::DriverKind,
    /// The foreign orchestrator's API, for --driver docker, podman or swarm:
    /// `unix:///path/docker.sock` [default: unix:///var/run/docker.sock; for podman
    /// unix:///run/podman/podman.sock].
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
}

fn parse_driver(text: &str) -> Result<canopy_cluster::DriverKind, String> {
    text.parse()
        .map_err(|e: canopy_cluster::DriverError| e.to_string())
}

#[derive(Debug, Args)]
pub struct NodeArgs {
    /// The cluster's node listener (`https://host:port`).
    #[arg(long)]
    pub cluster: String,
    /// Directory for the node's state and its workloads' files (created if missing).
    #[arg(long, default_value = "canopy-node-data")]
    pub data: PathBuf,
    /// The node's name, unique in its cluster.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// CPU to offer, in millicores (default: all of this machine's).
    #[arg(long)]
    pub cpu: Option<u64>,
    /// Memory to offer, in MiB (default: all of this machine's).
    #[arg(long)]
    pub memory: Option<u64>,
    /// Power draw per core in watts, for energy-aware placement.
    #[arg(long)]
    pub watts_per_core: Option<f64>,
    #[command(flatten)]
    pub containers: ContainerArgs,
    #[command(flatten)]
    pub join: NodeJoinArgs,
    #[command(flatten)]
    pub probe: ProbeArgs,
    #[command(flatten)]
    pub overlay: crate::overlay::OverlayArgs,
    /// Serve Prometheus metrics at `http://ADDR/metrics` (plain HTTP, no token: bind it
    /// where only your scrapers reach). Off by default.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Let `hostPath` volumes use this directory and what is under it (none by default:
    /// the node refuses them, saying so); repeat for several.
    #[arg(long = "allow-host-path", value_name = "PREFIX", value_parser = host_path_prefix)]
    pub allowed_host_paths: Vec<String>,
}

/// How a node joins its cluster the first time (`canopy token create --join node`).
#[derive(Debug, Args, Clone, Default)]
pub struct NodeJoinArgs {
    /// One-time node token, needed on the first start only: the certificate it gets is
    /// kept in the data directory.
    #[arg(long, env = "CANOPY_TOKEN", default_value = "", hide_env_values = true)]
    pub token: String,
    /// The cluster CA's hash the token came with (`sha256:...`): the cluster is trusted
    /// only if its CA matches.
    #[arg(long, env = "CANOPY_CA_HASH")]
    pub ca_hash: Option<String>,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// The cluster's node listener (`https://host:port`).
    #[arg(long)]
    pub cluster: String,
    /// How many hollow nodes to run.
    #[arg(long)]
    pub nodes: usize,
    /// Seed of the generated capacities, arches, labels, locations and latencies.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Node names are `PREFIX-00000`, `PREFIX-00001`, ...
    #[arg(long, default_value = "hollow")]
    pub prefix: String,
    /// Directory for the hollow agents' state (default: a temporary one, removed at exit).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A node token for as many nodes (`canopy token create --join node --uses N`) and its
    /// CA hash: each hollow node joins with it on its first start.
    #[command(flatten)]
    pub join: NodeJoinArgs,
}

#[derive(Debug, Args, Clone)]
pub struct ContainerArgs {
    /// OCI runtime for containers: `runc` or `crun` (a name in PATH, or a path).
    #[arg(long, default_value = "runc")]
    pub oci_runtime: String,
    /// gVisor's runsc, for services with `sandbox: gvisor`: offered when a probe sandbox
    /// starts at the node's start; `none` turns it off.
    #[arg(long, default_value = "runsc")]
    pub gvisor_runtime: String,
    /// qemu for microVMs (`runtime: vm`): offered when a probe guest runs at the node's
    /// start (under KVM where it is fast enough, else TCG); `none` turns them off.
    #[arg(long, default_value = "qemu-system-x86_64")]
    pub qemu: String,
    /// Registry (`host:port`) reached over plain HTTP instead of HTTPS. May be repeated.
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// JSON file of registry credentials: `{"host:port": {"username": "...", "password": "..."}}`.
    #[arg(long)]
    pub registry_credentials: Option<PathBuf>,
    /// Subnet containers on this node get their addresses from (CNI bridge + host-local).
    #[arg(long, default_value = "10.88.0.0/24")]
    pub container_subnet: String,
}

impl Default for ContainerArgs {
    fn default() -> Self {
        ContainerArgs {
            oci_runtime: "runc".into(),
            gvisor_runtime: "runsc".into(),
            qemu: "qemu-system-x86_64".into(),
            insecure_registries: Vec::new(),
            registry_credentials: None,
            container_subnet: "10.88.0.0/24".into(),
        }
    }
}

#[derive(Debug, Args, Clone)]
pub struct ProbeArgs {
    /// Seconds between latency-probe rounds (Vivaldi coordinates); 0 turns probing off.
    #[arg(long, default_value_t = 5.0)]
    pub probe_interval: f64,
}

impl Default for ProbeArgs {
    fn default() -> Self {
        ProbeArgs {
            probe_interval: 5.0,
        }
    }
}

#[derive(Debug, Args, Clone, Default)]
pub struct PlacementArgs {
    /// Where this is, as `LAT,LON` in degrees.
    #[arg(long, value_parser = parse_location)]
    pub location: Option<canopy_model::GeoPoint>,
    /// Labels as `key=value,key=value`.
    #[arg(long, value_parser = parse_labels, default_value = "")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Grid carbon intensity here, gCO2/kWh (a cluster's applies to nodes without their own).
    #[arg(long)]
    pub carbon_intensity: Option<f64>,
}

fn parse_location(text: &str) -> Result<canopy_model::GeoPoint, String> {
    let (lat, lon) = text
        .split_once(',')
        .ok_or_else(|| format!("expected LAT,LON, got {text:?}"))?;
    let lat: f64 = lat
        .trim()
        .parse()
        .map_err(|_| format!("bad latitude {lat:?}"))?;
    let lon: f64 = lon
        .trim()
        .parse()
        .map_err(|_| format!("bad longitude {lon:?}"))?;
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(format!(
            "{text:?} is not on Earth: latitude in [-90, 90], longitude in [-180, 180]"
        ));
    }
    Ok(canopy_model::GeoPoint { lat, lon })
}

fn parse_selector(text: &str) -> Result<canopy_model::Selector, String> {
    canopy_model::Selector::parse(text).map_err(|e| e.to_string())
}

fn parse_labels(text: &str) -> Result<std::collections::BTreeMap<String, String>, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("expected key=value, got {pair:?}"))
        })
        .collect()
}

/// Which root a client verb talks to: `--server` (or `CANOPY_SERVER`), else `--context`,
/// else the client config's current context, else [`DEFAULT_SERVER`]; see `config_verbs`.
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// The root's API (`http://host:port`); overrides the context's server [default: the
    /// current context's, else http://127.0.0.1:7700].
    #[arg(long, env = "CANOPY_SERVER", global = true)]
    pub server: Option<String>,
    /// Use this context of the client config file instead of the current one.
    #[arg(long, env = "CANOPY_CONTEXT", global = true)]
    pub context: Option<String>,
    /// A bearer token (an API token) instead of the context's.
    #[arg(long, env = "CANOPY_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<crate::config::BearerToken>,
}

#[derive(Debug, Args, Clone)]
pub struct Scope {
    /// Namespace.
    #[arg(short, long, default_value = canopy_model::DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    #[value(alias = "applications", alias = "app", alias = "apps")]
    Application,
    #[value(alias = "services", alias = "svc")]
    Service,
    #[value(alias = "instances", alias = "inst")]
    Instance,
    #[value(alias = "clusters")]
    Cluster,
    #[value(alias = "nodes", alias = "no")]
    Node,
    #[value(alias = "users")]
    User,
    #[value(alias = "namespaces", alias = "ns")]
    Namespace,
    #[value(alias = "secrets")]
    Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns.
    Table,
    /// More columns.
    Wide,
    Json,
    Yaml,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of every subcommand, with the path of subcommands that leads to it.
    fn arguments(command: &clap::Command, path: String, out: &mut Vec<(String, clap::Arg)>) {
        for arg in command.get_arguments() {
            out.push((path.clone(), arg.clone()));
        }
        for sub in command.get_subcommands() {
            arguments(sub, format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn every_argument_has_help_text() {
        let mut all = Vec::new();
        arguments(&Cli::command(), "canopy".into(), &mut all);
        assert!(all.len() > 50, "found only {} arguments", all.len());
        let missing: Vec<String> = all
            .iter()
            .filter(|(_, arg)| {
                arg.get_help()
                    .is_none_or(|h| h.to_string().trim().is_empty())
            })
            .map(|(path, arg)| format!("{path} {}", arg.get_id()))
            .collect();
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    fn flags(subcommand: &str) -> Vec<String> {
        let cli = Cli::command();
        let command = cli.find_subcommand(subcommand).expect("a subcommand");
        command
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect()
    }

    #[test]
    fn each_daemon_shows_only_its_own_flags() {
        let root = flags("root");
        assert!(root.contains(&"listen".to_string()), "{root:?}");
        for foreign in [
            "oci-runtime",
            "insecure-registry",
            "container-subnet",
            "cluster",
            "root",
        ] {
            assert!(!root.contains(&foreign.to_string()), "root has --{foreign}");
        }
        let up = flags("up");
        assert!(up.contains(&"oci-runtime".to_string()), "{up:?}");
        let cluster = flags("cluster");
        assert!(!cluster.contains(&"oci-runtime".to_string()), "{cluster:?}");
        for daemon in ["up", "root", "cluster", "node", "sim"] {
            for client in ["server", "context", "selector"] {
                assert!(
                    !flags(daemon).contains(&client.to_string()),
                    "{daemon} has the client flag --{client}"
                );
            }
        }
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}

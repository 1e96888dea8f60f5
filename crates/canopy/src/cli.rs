use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7700";

#[derive(Debug, Parser)]
#[command(name = "canopy", version, about = "Hierarchical orchestration for the cloud-edge-IoT continuum")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every tier in one process with an embedded store: the quickest way to try Canopy.
    Up(DaemonArgs),
    /// Run the root orchestrator: desired state, public API, placement over clusters.
    Root(DaemonArgs),
    /// Create or update applications from descriptor files (native YAML/JSON or Oakestra SLA).
    Apply {
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
        kind: Kind,
        /// Only the resource with this name (`app`, `app/service`, an instance id, a cluster or node name).
        name: Option<String>,
        #[command(flatten)]
        scope: Scope,
        #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Show one resource in detail, with its instances and recent events.
    Describe {
        #[command(flatten)]
        client: ClientArgs,
        kind: Kind,
        name: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// Delete applications by name or by the descriptor that created them.
    Delete {
        #[command(flatten)]
        client: ClientArgs,
        /// `application` (the only kind that can be deleted) when naming it.
        kind: Option<Kind>,
        name: Option<String>,
        #[arg(short = 'f', long = "filename")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        scope: Scope,
    },
    /// Set the replica count of a service (`app/service`).
    Scale {
        #[command(flatten)]
        client: ClientArgs,
        service: String,
        #[arg(long)]
        replicas: u32,
        #[command(flatten)]
        scope: Scope,
    },
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Address of the public API.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Directory for the state (created if missing).
    #[arg(long, default_value = "canopy-data")]
    pub data: PathBuf,
}

#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// The root's API.
    #[arg(long, env = "CANOPY_SERVER", default_value = DEFAULT_SERVER, global = true)]
    pub server: String,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Wide,
    Json,
    Yaml,
}

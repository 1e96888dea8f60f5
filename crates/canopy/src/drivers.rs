//! `canopy cluster --driver docker|podman|swarm`: the cluster runs as with Canopy nodes, and
//! the foreign orchestrator's nodes are its members: each one a node agent in this process,
//! joined and linked over the cluster's own node listener as any node is (`canopy up`'s node
//! joins the same way), whose runtime is the orchestrator, and linked only while the
//! orchestrator answers (docs/drivers.md).

use crate::cli::ClusterArgs;
use anyhow::Context;
use canopy_cluster::docker::DockerDriver;
use canopy_cluster::swarm::SwarmDriver;
use canopy_cluster::{Cluster, ClusterDriver, DriverKind};
use canopy_node::{Agent, NodeConfig};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Where the Docker Engine (or a swarm's manager) answers unless `--endpoint` says otherwise.
const DEFAULT_DOCKER_ENDPOINT: &str = "unix:///var/run/docker.sock";
/// Where rootful Podman's service answers unless `--endpoint` says otherwise.
const DEFAULT_PODMAN_ENDPOINT: &str = "unix:///run/podman/podman.sock";
/// How often the orchestrator is asked whether it answers.
const REACHABILITY_PERIOD: Duration = Duration::from_millis(500);
/// How long a member's instance has to stop before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// The driver `--driver` names, connected; none for `canopy` (its nodes join by themselves).
pub async fn connect(args: &ClusterArgs) -> anyhow::Result<Option<Arc<dyn ClusterDriver>>> {
    match args.driver {
        DriverKind::Canopy => {
            if let Some(endpoint) = &args.endpoint {
                anyhow::bail!(
                    "--endpoint {endpoint} is for a foreign driver (--driver docker, podman or swarm); a canopy cluster's nodes join it"
                );
            }
            Ok(None)
        }
        kind @ (DriverKind::Docker | DriverKind::Podman) => {
            let default = match kind {
                DriverKind::Podman => DEFAULT_PODMAN_ENDPOINT,
                _ => DEFAULT_DOCKER_ENDPOINT,
            };
            let endpoint = args.endpoint.as_deref().unwrap_or(default);
            let labels = args.placement.labels.clone();
            let driver = DockerDriver::connect(kind, endpoint, &args.name, labels)
                .await
                .with_context(|| format!("starting the {} driver", kind.as_str()))?;
            Ok(Some(Arc::new(driver)))
        }
        DriverKind::Swarm => {
            let endpoint = args.endpoint.as_deref().unwrap_or(DEFAULT_DOCKER_ENDPOINT);
            let labels = args.placement.labels.clone();
            let driver = SwarmDriver::connect(endpoint, &args.name, labels)
                .await
                .context("starting the swarm driver")?;
            Ok(Some(Arc::new(driver)))
        }
    }
}

/// The address the members dial: the node listener's, on loopback when it listens on all.
fn members_url(listening: SocketAddr) -> String {
    let ip = match listening.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("https://{}", SocketAddr::new(ip, listening.port()))
}

/// Serves the cluster and runs the driver's members until `stop`.
pub async fn run(
    cluster: Arc<Cluster>,
    listener: TcpListener,
    driver: Arc<dyn ClusterDriver>,
    args: &ClusterArgs,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let url = members_url(listener.local_addr().context("reading the bound address")?);
    // Serving before its members join it.
    let serving = tokio::spawn(crate::daemon::run_cluster(
        cluster.clone(),
        listener,
        stop.clone(),
    ));
    let members = driver
        .members()
        .await
        .context("asking the orchestrator for its nodes")?;
    let mut linked = Vec::new();
    for member in members {
        let dir = args.data.join("members").join(&member.name);
        let credentials =
            crate::local_join::local_node_credentials(&cluster, &url, &dir, &member.name)
                .await
                .with_context(|| format!("joining member {} to the cluster", member.name))?;
        let config = NodeConfig {
            name: member.name.clone(),
            cluster: url.clone(),
            credentials,
            data: dir,
            labels: member.labels,
            location: args.placement.location,
            capacity: member.capacity,
            arch: member.arch,
            stop_grace: STOP_GRACE,
            watts_per_core: None,
            carbon_g_per_kwh: args.placement.carbon_intensity,
            coordinate: None,
            allowed_host_paths: Vec::new(),
        };
        // Re-adopts what the orchestrator still runs for it (by the containers' labels).
        let agent = Agent::open(config, vec![member.runtime])
            .await
            .with_context(|| format!("recovering member {}", member.name))?;
        println!(
            "canopy cluster {}: member {} runs its instances through the {} driver",
            args.name,
            member.name,
            driver.kind().as_str()
        );
        let reachable = driver.reachability(REACHABILITY_PERIOD);
        linked.push(tokio::spawn(agent.run_while(reachable, stop.clone())));
    }
    serving.await.context("cluster task")??;
    for member in linked {
        member
            .await
            .context("member task")?
            .context("running a member")?;
    }
    Ok(())
}

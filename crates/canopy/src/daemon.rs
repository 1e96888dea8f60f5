//! The long-running tiers, alone (`root`, `cluster`, `node`) or together (`up`).

use crate::cli::{ClusterArgs, DaemonArgs, NodeArgs, PlacementArgs};
use anyhow::Context;
use canopy_cluster::{Cluster, ClusterConfig};
use canopy_node::{Agent, NodeConfig, detect_arch, detect_capacity};
use canopy_root::Root;
use canopy_runtime::{ProcessOptions, ProcessRuntime, Runtime};
use canopy_store::RedbStore;
use canopy_tier::Timing;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub async fn root(args: DaemonArgs) -> anyhow::Result<()> {
    let stop = stop_on_signal();
    let (root, listener) = open_root(&args).await?;
    announce("API", &listener)?;
    serve_root(root, listener, stop).await
}

pub async fn cluster(args: ClusterArgs) -> anyhow::Result<()> {
    let stop = stop_on_signal();
    let listener = bind(args.listen).await?;
    announce("cluster", &listener)?;
    let cluster = open_cluster(
        &args.data,
        &args.name,
        Some(args.root.clone()),
        args.token.clone(),
        &args.placement,
        args.timing.timing(),
    )
    .await?;
    run_cluster(cluster, listener, stop).await
}

pub async fn node(args: NodeArgs) -> anyhow::Result<()> {
    let stop = stop_on_signal();
    let agent = open_node(&args).await?;
    println!("canopy node {} linking to {}", args.name, args.cluster);
    agent.run(stop).await.context("running the node agent")?;
    Ok(())
}

/// Root, one cluster and one node in this process, linked over loopback exactly as separate
/// processes would be.
pub async fn up(args: DaemonArgs) -> anyhow::Result<()> {
    let stop = stop_on_signal();
    let (root, listener) = open_root(&args).await?;
    let root_url = format!("http://{}", listener.local_addr()?);
    let cluster_listener = bind("127.0.0.1:0".parse()?).await?;
    let cluster_url = format!("http://{}", cluster_listener.local_addr()?);
    let cluster = open_cluster(
        &args.data.join("cluster"),
        "local",
        Some(root_url.clone()),
        String::new(),
        &PlacementArgs {
            location: None,
            labels: Default::default(),
        },
        args.timing.timing(),
    )
    .await?;
    let node_name = hostname();
    let agent = open_node(&NodeArgs {
        cluster: cluster_url,
        data: args.data.join("node"),
        name: node_name.clone(),
        placement: PlacementArgs {
            location: None,
            labels: Default::default(),
        },
        cpu: None,
        memory: None,
        token: String::new(),
    })
    .await?;
    announce("API", &listener)?;
    println!("  API docs:  {root_url}/docs");
    println!("  cluster \"local\" with node {node_name:?}");
    println!("  try:       canopy apply -f examples/hello-process.yaml && canopy get instances");
    let cluster_task = tokio::spawn(run_cluster(cluster, cluster_listener, stop.clone()));
    let node_task = tokio::spawn({
        let stop = stop.clone();
        async move { agent.run(stop).await }
    });
    serve_root(root, listener, stop).await?;
    cluster_task.await.context("cluster task")??;
    node_task.await.context("node task")??;
    println!("stopped; instances keep running and are re-adopted by the next `canopy up`");
    Ok(())
}

async fn open_root(args: &DaemonArgs) -> anyhow::Result<(Root, TcpListener)> {
    let store = open_store(&args.data, "root.redb")?;
    let root = Root::open(Arc::new(store), args.timing.timing())
        .await
        .context("recovering the desired state")?;
    let listener = bind(args.listen).await?;
    tracing::info!(address = %listener.local_addr()?, data = %args.data.display(), "root orchestrator serving");
    Ok((root, listener))
}

async fn serve_root(
    root: Root,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut stop = stop;
    root.serve(
        listener,
        async move { canopy_tier::stopped(&mut stop).await },
    )
    .await
    .context("serving the API")
}

async fn open_cluster(
    data: &Path,
    name: &str,
    root: Option<String>,
    token: String,
    placement: &PlacementArgs,
    node_timing: Timing,
) -> anyhow::Result<Arc<Cluster>> {
    let store = open_store(data, "cluster.redb")?;
    let config = ClusterConfig {
        name: name.to_string(),
        root,
        token,
        labels: placement.labels.clone(),
        location: placement.location,
        node_timing,
    };
    Cluster::open(config, Arc::new(store))
        .await
        .context("recovering the cluster's state")
}

async fn run_cluster(
    cluster: Arc<Cluster>,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let router = cluster.router();
    let serve_stop = {
        let mut stop = stop.clone();
        async move { canopy_tier::stopped(&mut stop).await }
    };
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(serve_stop)
            .await
    });
    cluster.run(stop).await.context("running the cluster")?;
    server
        .await
        .context("cluster server task")?
        .context("serving nodes")?;
    Ok(())
}

async fn open_node(args: &NodeArgs) -> anyhow::Result<Arc<Agent>> {
    let detected = detect_capacity();
    let mut capacity = detected;
    capacity.cpu_millis = args.cpu.unwrap_or(detected.cpu_millis);
    capacity.memory_mib = args.memory.unwrap_or(detected.memory_mib);
    // Cgroups are named per agent: several agents on one machine (tests, simulations, edge
    // emulation) must never share an instance's group, since stopping one clears its group.
    let options = ProcessOptions {
        cgroup_parent: format!("canopy/{}", args.name),
        ..ProcessOptions::default()
    };
    let process = ProcessRuntime::new(args.data.join("process"), options)
        .context("starting the process runtime")?;
    let runtimes: Vec<Arc<dyn Runtime>> = vec![Arc::new(process)];
    let config = NodeConfig {
        name: args.name.clone(),
        cluster: args.cluster.clone(),
        token: args.token.clone(),
        data: args.data.clone(),
        labels: args.placement.labels.clone(),
        location: args.placement.location,
        capacity,
        arch: detect_arch(),
        stop_grace: Duration::from_secs(5),
    };
    Agent::open(config, runtimes)
        .await
        .context("recovering the node's instances")
}

fn open_store(dir: &Path, file: &str) -> anyhow::Result<RedbStore> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    let path = dir.join(file);
    RedbStore::open(&path).with_context(|| format!("opening the state store {}", path.display()))
}

async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address}"))
}

/// Scripts and tests wait for this line to learn the (possibly random) port.
fn announce(what: &str, listener: &TcpListener) -> anyhow::Result<()> {
    let address = listener.local_addr().context("reading the bound address")?;
    println!("canopy {what} listening on http://{address}");
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_lowercase())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local-node".to_string())
}

/// A flag that turns true on Ctrl-C or SIGTERM.
fn stop_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let interrupt = tokio::signal::ctrl_c();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; Ctrl-C only");
                let _ = interrupt.await;
            }
        }
        let _ = tx.send(true);
    });
    rx
}

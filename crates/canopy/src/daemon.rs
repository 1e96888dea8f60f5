//! The long-running tiers, alone (`root`, `cluster`, `node`) or together (`up`).

use crate::cli::{
    ApiArgs, ClusterArgs, ContainerArgs, DaemonArgs, NodeArgs, NodeJoinArgs, PlacementArgs,
    ProbeArgs, UpArgs,
};
use crate::files::create_private_dir;
use anyhow::Context;
use canopy_cluster::{Cluster, ClusterConfig, NODE_TRUST_PREFIX};
use canopy_image::{Credentials, ImageStore, ImageStoreConfig};
use canopy_node::images::{NodeCredentials, RegistryImages};
use canopy_node::{Agent, NodeConfig, detect_arch, detect_capacity};
use canopy_root::Root;
use canopy_root::api::ApiConfig;
use canopy_root::api::guard::AllowedHosts;
use canopy_root::api::rate_limit::{Rate, RateLimits};
use canopy_runtime::{
    CniConfig, FilesPrestart, NetworkHook, NetworkPrestart, OciOptions, OciRuntime, Prestart,
    ProcessOptions, ProcessRuntime, Runtime, SandboxedContainers, VmRuntime, VmRuntimeOptions,
    VolumesPrestart, WasmRuntime, WasmRuntimeOptions,
};
use canopy_store::RedbStore;
use canopy_tier::Timing;
use canopy_tier::child::Credentials as TierCredentials;
use canopy_tier::probe::Prober;
use canopy_tier::trust::{Enrolment, Role};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub async fn root(args: DaemonArgs) -> anyhow::Result<()> {
    let stop = stop_on_signal();
    let (root, listener) = open_root(&args).await?;
    let tls = api_tls(&args.api)?;
    let tier = bind(args.tier_listen.unwrap_or(DEFAULT_TIER_LISTEN.parse()?)).await?;
    announce_api(&listener, tls.is_some())?;
    announce_tier(&tier)?;
    let tier = spawn_tier(&root, tier, &stop)?;
    serve_root(root, listener, tls, stop).await?;
    tier.await
        .context("tier listener task")?
        .context("serving the tier listener")
}

pub async fn cluster(args: ClusterArgs) -> anyhow::Result<()> {
    let stop = stop_on_signal();
    // Joined first: a refused token ends the process before it announces anything.
    let credentials = credentials(
        &args.root,
        &args.data,
        &args.name,
        Role::Cluster,
        &args.token,
        args.ca_hash.as_deref(),
    )
    .await?;
    // Reached before anything is announced: an engine that does not answer ends the start.
    let driver = crate::drivers::connect(&args).await?;
    let listener = bind(args.listen).await?;
    announce_nodes(&listener)?;
    let cluster = open_cluster(
        &args.data,
        &args.name,
        Some(args.root.clone()),
        credentials,
        &args.placement,
        args.timing.timing(),
    )
    .await?;
    start_cluster_probing(
        &cluster,
        args.listen.ip(),
        Some(&args.root),
        &args.probe,
        &stop,
    )
    .await?;
    serve_metrics(args.metrics_listen, Arc::new(cluster.exposition()), &stop).await?;
    match driver {
        Some(driver) => crate::drivers::run(cluster, listener, driver, &args, stop).await,
        None => run_cluster(cluster, listener, stop).await,
    }
}

pub async fn node(args: NodeArgs) -> anyhow::Result<()> {
    let stop = stop_on_signal();
    let credentials = credentials(
        &args.cluster,
        &args.data,
        &args.name,
        Role::Node,
        &args.join.token,
        args.join.ca_hash.as_deref(),
    )
    .await?;
    let agent = open_node(&args, credentials).await?;
    let range = crate::overlay::attach(&agent, &args.overlay, &args.name, &args.cluster).await;
    start_node_probing(&agent, &args, &stop).await?;
    serve_metrics(args.metrics_listen, Arc::new(agent.exposition()), &stop).await?;
    println!("canopy node {} linking to {}", args.name, args.cluster);
    let ran = agent
        .clone()
        .run(stop)
        .await
        .context("running the node agent");
    crate::overlay::detach(&agent, range).await;
    ran
}

/// Root, one cluster and one node in this process, linked over loopback exactly as separate
/// processes would be.
pub async fn up(up: UpArgs) -> anyhow::Result<()> {
    let UpArgs {
        daemon: args,
        containers,
        allowed_host_paths,
    } = up;
    let stop = stop_on_signal();
    let (root, listener) = open_root(&args).await?;
    // One user's own machine: its examples run processes in `default`.
    root.trust_namespace(canopy_model::DEFAULT_NAMESPACE)
        .await
        .context("marking namespace default trusted")?;
    let tls = api_tls(&args.api)?;
    let api_url = format!(
        "{}://{}",
        if tls.is_some() { "https" } else { "http" },
        listener.local_addr()?
    );
    let tier = bind(
        args.tier_listen
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
    )
    .await?;
    let tier_url = format!("https://{}", tier.local_addr()?);
    let tier_task = spawn_tier(&root, tier, &stop)?;
    let cluster_listener = bind("127.0.0.1:0".parse()?).await?;
    let cluster_url = format!("https://{}", cluster_listener.local_addr()?);
    let cluster_dir = args.data.join("cluster");
    let credentials = local_cluster_credentials(&root, &tier_url, &cluster_dir).await?;
    let cluster = open_cluster(
        &cluster_dir,
        "local",
        Some(tier_url.clone()),
        credentials,
        &PlacementArgs::default(),
        args.timing.timing(),
    )
    .await?;
    // Serving before its node joins it.
    let cluster_task = tokio::spawn(run_cluster(cluster.clone(), cluster_listener, stop.clone()));
    let node_name = hostname();
    let node_args = NodeArgs {
        cluster: cluster_url,
        data: args.data.join("node"),
        name: node_name.clone(),
        placement: PlacementArgs::default(),
        cpu: None,
        memory: None,
        watts_per_core: None,
        containers,
        join: NodeJoinArgs::default(),
        probe: ProbeArgs::default(),
        overlay: Default::default(),
        metrics_listen: None,
        allowed_host_paths,
    };
    let node_credentials = crate::local_join::local_node_credentials(
        &cluster,
        &node_args.cluster,
        &node_args.data,
        &node_name,
    )
    .await?;
    let agent = open_node(&node_args, node_credentials).await?;
    crate::overlay::attach(&agent, &node_args.overlay, &node_name, &node_args.cluster).await;
    start_cluster_probing(
        &cluster,
        Ipv4Addr::LOCALHOST.into(),
        None,
        &node_args.probe,
        &stop,
    )
    .await?;
    start_node_probing(&agent, &node_args, &stop).await?;
    // One scrape target for the three tiers: the API's `/metrics` serves them all.
    let root = root
        .with_more_metrics(Arc::new(cluster.exposition()))
        .with_more_metrics(Arc::new(agent.exposition()));
    // Before the address is announced: whoever waits for it can use the CLI at once.
    let logged_in = crate::first_admin::log_in_locally(&root, &api_url).await;
    announce_api(&listener, tls.is_some())?;
    match logged_in {
        Ok(path) => println!(
            "  CLI:       logged in as the admin (context \"{}\" in {})",
            crate::first_admin::LOCAL_CONTEXT,
            path.display()
        ),
        Err(e) => eprintln!("canopy up: the CLI is not logged in ({e:#}); use `canopy login`"),
    }
    println!("  tier:      {tier_url} (the local cluster joined with a token it made)");
    println!("  API docs:  {api_url}/docs");
    println!("  cluster \"local\" with node {node_name:?}");
    println!("  try:       canopy apply -f examples/hello-process.yaml && canopy get instances");
    let node_task = tokio::spawn({
        let stop = stop.clone();
        async move {
            let ran = agent.clone().run(stop).await;
            crate::overlay::detach(&agent, None).await;
            ran
        }
    });
    serve_root(root, listener, tls, stop).await?;
    tier_task.await.context("tier listener task")??;
    cluster_task.await.context("cluster task")??;
    node_task.await.context("node task")??;
    println!("stopped; instances keep running and are re-adopted by the next `canopy up`");
    Ok(())
}

async fn open_root(args: &DaemonArgs) -> anyhow::Result<(Root, TcpListener)> {
    let store = crate::root_store::open(args).await?;
    let sealing = canopy_tier::sealing::SealingKey::load_or_create(&args.data)
        .context("loading the root's secret key")?;
    let root = Root::open_sealed(store.store.clone(), args.timing.timing(), sealing)
        .await
        .context("recovering the desired state")?
        .with_api_config(api_config(&args.api)?)
        .with_job_backoff(Duration::from_millis(args.job_backoff_ms));
    crate::first_admin::announce_password(&root, &args.data)?;
    for namespace in &args.trusted_namespaces {
        root.trust_namespace(namespace)
            .await
            .with_context(|| format!("marking namespace {namespace} trusted"))?;
    }
    let listener = bind(args.listen).await?;
    let root = crate::root_store::elect(root, &store, args, &listener)?;
    tracing::info!(address = %listener.local_addr()?, data = %args.data.display(), "root orchestrator serving");
    Ok((root, listener))
}

async fn serve_root(
    root: Root,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut stop = stop;
    let shutdown = async move { canopy_tier::stopped(&mut stop).await };
    match tls {
        Some(config) => {
            let listener = canopy_root::tls::TlsListener::new(listener, config)
                .context("serving the API over TLS")?;
            root.serve(listener, shutdown).await
        }
        None => root.serve(listener, shutdown).await,
    }
    .context("serving the API")
}

/// The API's TLS configuration, when `--tls-cert` and `--tls-key` are given.
fn api_tls(args: &ApiArgs) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
    match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(
            canopy_root::tls::server_config(cert, key).context("loading the API's certificate")?,
        )),
        (None, None) => Ok(None),
        _ => anyhow::bail!("--tls-cert and --tls-key go together"),
    }
}

fn api_config(args: &ApiArgs) -> anyhow::Result<ApiConfig> {
    let rate = |per_second: f64, flag: &str| {
        if per_second.is_finite() && per_second > 0.0 {
            Ok(Rate {
                per_second,
                burst: (per_second * 2.0).ceil().min(f64::from(u32::MAX)) as u32,
            })
        } else {
            Err(anyhow::anyhow!(
                "{flag} must be a positive number of requests per second"
            ))
        }
    };
    Ok(ApiConfig {
        allowed_hosts: AllowedHosts(args.allowed_hosts.clone()),
        rate_limits: RateLimits {
            requests: rate(args.rate_limit, "--rate-limit")?,
            mutations: rate(args.write_rate_limit, "--write-rate-limit")?,
        },
    })
}

/// Where `canopy root` listens for its clusters unless told (`--tier-listen`).
const DEFAULT_TIER_LISTEN: &str = "127.0.0.1:7710";
/// How long the token `canopy up` makes for its own cluster lives: it is spent at once.
const LOCAL_TOKEN_TTL: Duration = Duration::from_secs(600);

/// Serves the root's tier listener (TLS: joins, and links with member certificates).
fn spawn_tier(
    root: &Root,
    listener: TcpListener,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let mut stop = stop.clone();
    let serving = root
        .serve_tier(
            listener,
            async move { canopy_tier::stopped(&mut stop).await },
        )
        .context("starting the tier listener")?;
    Ok(tokio::spawn(serving))
}

/// A child's credentials for `parent`: for an `https://` parent the certificate saved in
/// `data`, or one got by joining with `token` (then saved); nothing for `http://`.
pub(crate) async fn credentials(
    parent: &str,
    data: &Path,
    name: &str,
    role: Role,
    token: &str,
    ca_hash: Option<&str>,
) -> anyhow::Result<TierCredentials> {
    if role == Role::Node && !parent.starts_with("https://") {
        anyhow::bail!(
            "a cluster's node listener speaks TLS only: give its https:// address, not {parent}"
        );
    }
    if !parent.starts_with("https://") {
        if !token.is_empty() {
            anyhow::bail!(
                "a join token is presented over TLS only: give the parent's https:// tier address"
            );
        }
        return Ok(TierCredentials::Cleartext);
    }
    create_private_dir(data)?;
    let identity = canopy_tier::trust::enrol(parent, data, name, role, Some(token), ca_hash)
        .await
        .with_context(|| format!("joining {parent} as {name:?}"))?;
    Ok(TierCredentials::Certificate {
        identity,
        dir: data.to_path_buf(),
    })
}

/// `canopy up` joins its own cluster as a user would, with a token it makes itself; a
/// cluster whose certificate is gone (its data removed) is revoked and joins afresh.
async fn local_cluster_credentials(
    root: &Root,
    tier_url: &str,
    dir: &Path,
) -> anyhow::Result<TierCredentials> {
    let joined = canopy_tier::trust::Identity::load(dir)
        .context("reading the local cluster's certificate")?
        .is_some()
        && canopy_tier::trust::member_authority(dir)
            .context("reading the local cluster's CA")?
            .is_some();
    if joined {
        return credentials(tier_url, dir, "local", Role::Cluster, "", None).await;
    }
    let enrolment = root.federation().enrolment();
    enrolment
        .revoke("local")
        .await
        .context("revoking the old local cluster")?;
    let token = enrolment
        .create_token(
            Some("local".to_string()),
            Some(LOCAL_TOKEN_TTL),
            time::OffsetDateTime::now_utc(),
        )
        .await
        .context("creating the local cluster's join token")?;
    credentials(
        tier_url,
        dir,
        "local",
        Role::Cluster,
        &token.token,
        Some(&token.ca_hash),
    )
    .await
}

async fn open_cluster(
    data: &Path,
    name: &str,
    root: Option<String>,
    credentials: TierCredentials,
    placement: &PlacementArgs,
    node_timing: Timing,
) -> anyhow::Result<Arc<Cluster>> {
    let store = open_store(data, "cluster.redb")?;
    let config = ClusterConfig {
        name: name.to_string(),
        root,
        credentials,
        labels: placement.labels.clone(),
        location: placement.location,
        node_timing,
        carbon_g_per_kwh: placement.carbon_intensity,
    };
    let sealing = canopy_tier::sealing::SealingKey::load_or_create(data)
        .context("loading the cluster's secret key")?;
    let store: Arc<dyn canopy_store::Store> = Arc::new(store);
    let cluster = Cluster::open_sealed(config, store.clone(), sealing)
        .await
        .context("recovering the cluster's state")?;
    // Its intermediate CA came with its join: nodes join and link under it.
    if let Some(authority) =
        canopy_tier::trust::member_authority(data).context("reading the cluster's node CA")?
    {
        let enrolment = Enrolment::open_under(store, NODE_TRUST_PREFIX, authority, Role::Node)
            .await
            .context("opening the cluster's node members")?;
        cluster.admit_nodes(enrolment);
    }
    Ok(cluster)
}

pub(crate) async fn run_cluster(
    cluster: Arc<Cluster>,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let serve_stop = {
        let mut stop = stop.clone();
        async move { canopy_tier::stopped(&mut stop).await }
    };
    // TLS only: a cluster without its node CA (never joined a root) serves no nodes.
    let serving = cluster
        .serve_nodes(listener, serve_stop)
        .context("starting the node listener")?;
    let server = tokio::spawn(serving);
    cluster.run(stop).await.context("running the cluster")?;
    server
        .await
        .context("cluster server task")?
        .context("serving nodes")?;
    Ok(())
}

async fn open_node(args: &NodeArgs, credentials: TierCredentials) -> anyhow::Result<Arc<Agent>> {
    let detected = detect_capacity();
    let mut capacity = detected;
    capacity.cpu_millis = args.cpu.unwrap_or(detected.cpu_millis);
    capacity.memory_mib = args.memory.unwrap_or(detected.memory_mib);
    // Cgroups are named per agent: several agents on one machine (tests, simulations, edge
    // emulation) must never share an instance's group, since stopping one clears its group.
    // Logs of removed instances stay readable (`canopy logs`) within the kept-logs budget.
    let options = ProcessOptions {
        cgroup_parent: format!("canopy/{}", args.name),
        keep_logs_on_remove: true,
        ..ProcessOptions::default()
    };
    let process = ProcessRuntime::new(args.data.join("process"), options)
        .context("starting the process runtime")?;
    let mut runtimes: Vec<Arc<dyn Runtime>> = vec![Arc::new(process)];
    // Modules run inside the agent: nothing to install, any architecture.
    let wasm = WasmRuntimeOptions {
        keep_logs_on_remove: true,
        ..WasmRuntimeOptions::default()
    };
    match WasmRuntime::new(args.data.join("wasm"), wasm) {
        Ok(wasm) => runtimes.push(Arc::new(wasm)),
        Err(e) => tracing::warn!("wasm is not available on this node: {e}"),
    }
    if let Some(vm) = vm_runtime(args).await {
        runtimes.push(Arc::new(vm));
    }
    // Last, so a start that fails earlier (a pull) writes no secret to disk.
    let files: Arc<dyn Prestart> = Arc::new(FilesPrestart::new(args.data.join("@files")));
    let volumes = VolumesPrestart::new(&args.data, args.allowed_host_paths.clone());
    let mut hooks: Vec<Arc<dyn Prestart>> = Vec::new();
    let metrics = Arc::new(canopy_node::metrics::NodeMetrics::new(&args.name, capacity));
    // The pull first: a namespace and lease are not held while an image downloads. Wasm
    // modules from registries need it too, with or without containers.
    match registry_images(args, metrics.pulls()) {
        Ok(images) => hooks.push(images),
        Err(e) => tracing::warn!("no image store on this node: {e:#}"),
    }
    match container_runtime(args).await {
        Ok((containers, network)) => {
            runtimes.push(Arc::new(containers));
            hooks.push(Arc::new(network));
        }
        // A node without runc still runs processes; the cluster then sends it no containers.
        Err(e) => {
            tracing::warn!("containers are not available on this node: {e:#}");
            eprintln!("canopy node {}: containers not available: {e:#}", args.name);
        }
    }
    hooks.push(Arc::new(volumes));
    hooks.push(files);
    let config = NodeConfig {
        name: args.name.clone(),
        cluster: args.cluster.clone(),
        credentials,
        data: args.data.clone(),
        labels: args.placement.labels.clone(),
        location: args.placement.location,
        capacity,
        arch: detect_arch(),
        stop_grace: Duration::from_secs(5),
        watts_per_core: args.watts_per_core,
        carbon_g_per_kwh: args.placement.carbon_intensity,
        coordinate: None,
        allowed_host_paths: args.allowed_host_paths.clone(),
    };
    Agent::open_observed(config, runtimes, hooks, metrics)
        .await
        .context("recovering the node's instances")
}

/// Serves `source` on `--metrics-listen` until `stop`, when one is given.
async fn serve_metrics(
    address: Option<SocketAddr>,
    source: Arc<dyn canopy_tier::metrics::Exposition>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let Some(address) = address else {
        return Ok(());
    };
    let listener = bind(address).await?;
    // Not "listening on": scripts read that phrase as the tier's own address.
    println!(
        "canopy metrics served at http://{}/metrics",
        listener.local_addr().context("reading the bound address")?
    );
    let mut stop = stop.clone();
    let serving = canopy_tier::metrics::serve(listener, source, async move {
        canopy_tier::stopped(&mut stop).await
    });
    tokio::spawn(async move {
        if let Err(e) = serving.await {
            tracing::error!(error = %e, "serving metrics failed");
        }
    });
    Ok(())
}

/// How often a node drops cached images that no instance uses.
const IMAGE_GC_PERIOD: Duration = Duration::from_secs(600);

/// The node's image store as the image hook (root filesystems, wasm modules from registries),
/// collected now and then.
fn registry_images(
    args: &NodeArgs,
    pulls: canopy_node::metrics::PullMetrics,
) -> anyhow::Result<Arc<RegistryImages>> {
    let containers: &ContainerArgs = &args.containers;
    let mut config = ImageStoreConfig::new(args.data.join("images"));
    config.insecure_registries = containers.insecure_registries.clone();
    let store = ImageStore::open(config).context("opening the image store")?;
    let credentials = match &containers.registry_credentials {
        Some(path) => read_credentials(path)?,
        None => NodeCredentials::new(),
    };
    let images = Arc::new(
        RegistryImages::new(store, credentials, &args.data.join("containers/@rootfs"))
            .context("opening the root filesystems' directory")?
            .observed_by(pulls),
    );
    let collector = images.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(IMAGE_GC_PERIOD);
        every.tick().await;
        loop {
            every.tick().await;
            collector.collect_garbage().await;
        }
    });
    Ok(images)
}

/// The OCI runtime (runc or crun, and runsc for `sandbox: gvisor` where its probe starts),
/// and the network hook the agent runs around it (CNI).
async fn container_runtime(
    args: &NodeArgs,
) -> anyhow::Result<(SandboxedContainers, NetworkPrestart)> {
    let containers: &ContainerArgs = &args.containers;
    let options = OciOptions {
        runtime_binary: containers.oci_runtime.clone(),
        cgroup_parent: format!("canopy/{}", args.name),
        keep_logs_on_remove: true,
        ..OciOptions::default()
    };
    let state = args.data.join("containers");
    let network = NetworkHook::new(
        CniConfig::new(
            format!("canopy-{}", args.name),
            containers.container_subnet.clone(),
        ),
        &state.join("@cni"),
    )
    .context("starting the container network")?;
    let gvisor = gvisor_runtime(&containers.gvisor_runtime, &state, &options).await;
    let runtime = OciRuntime::new(state, options).context("starting the container runtime")?;
    let mut runtime = SandboxedContainers::new(runtime);
    if let Some(gvisor) = gvisor {
        runtime = runtime.with_gvisor(gvisor);
    }
    Ok((runtime, NetworkPrestart::new(network)))
}

/// MicroVMs under qemu when it is installed and runs a probe guest (KVM where the probe
/// found it working, TCG otherwise); `--qemu none` turns them off.
async fn vm_runtime(args: &NodeArgs) -> Option<VmRuntime> {
    let qemu = &args.containers.qemu;
    if qemu.is_empty() || qemu == "none" {
        return None;
    }
    let options = VmRuntimeOptions {
        qemu_binary: qemu.clone(),
        process: ProcessOptions {
            cgroup_parent: format!("canopy/{}", args.name),
            keep_logs_on_remove: true,
            ..ProcessOptions::default()
        },
    };
    match VmRuntime::new(args.data.join("vm"), options).await {
        Ok(vm) => {
            let probe = vm.acceleration();
            tracing::info!(
                acceleration = probe.acceleration.as_str(),
                "microVMs offered: {}",
                probe.reason
            );
            Some(vm)
        }
        Err(e) => {
            tracing::info!("microVMs not offered: {e}");
            None
        }
    }
}

/// How long the gVisor probe sandbox may take to start and exit (it takes ≈ 0.2 s).
const GVISOR_PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// runsc as a second OCI runtime (state under `<containers>/@gvisor`) when a probe sandbox
/// starts; otherwise the node offers no gVisor sandbox and says why.
async fn gvisor_runtime(binary: &str, state: &Path, shared: &OciOptions) -> Option<OciRuntime> {
    if binary.is_empty() || binary == "none" {
        return None;
    }
    let dir = state.join("@gvisor");
    let probe = canopy_runtime::probe_gvisor(binary, &dir.join("@probe"), GVISOR_PROBE_TIMEOUT)
        .await
        .and_then(|path| {
            let options = OciOptions {
                runtime_binary: path.display().to_string(),
                ..shared.clone()
            };
            OciRuntime::new(dir, options)
        });
    match probe {
        Ok(runtime) => {
            tracing::info!("gVisor sandbox offered (runsc probe started)");
            Some(runtime)
        }
        Err(e) => {
            tracing::info!("gVisor sandbox not offered: {e}");
            None
        }
    }
}

/// `{"host:port": {"username": ..., "password": ...}}`, the descriptor's own credentials shape.
fn read_credentials(path: &Path) -> anyhow::Result<NodeCredentials> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading registry credentials {}", path.display()))?;
    let entries: std::collections::BTreeMap<String, canopy_model::RegistryCredentials> =
        serde_json::from_str(&text)
            .with_context(|| format!("parsing registry credentials {}", path.display()))?;
    Ok(entries
        .into_iter()
        .map(|(registry, e)| (registry, Credentials::new(e.username, e.password)))
        .collect())
}

/// Probes per round: a few peers is enough for Vivaldi to converge (the paper uses 3–8).
const PROBES_PER_ROUND: usize = 4;

fn probe_period(args: &ProbeArgs) -> Option<Duration> {
    (args.probe_interval.is_finite() && args.probe_interval > 0.0)
        .then(|| Duration::from_secs_f64(args.probe_interval))
}

async fn start_cluster_probing(
    cluster: &Arc<Cluster>,
    ip: IpAddr,
    root: Option<&str>,
    args: &ProbeArgs,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (Some(lan), Some(wan)) = (
        start_prober(ip, args, stop).await?,
        start_prober(ip, args, stop).await?,
    ) else {
        return Ok(());
    };
    // Listening on every address: other clusters reach it where this host reaches the root.
    let advertised_ip = match (ip.is_unspecified(), root) {
        (true, Some(root)) => local_ip_towards(root).await.unwrap_or(ip),
        _ => ip,
    };
    let port = wan
        .local_addr()
        .context("reading the probe address")?
        .port();
    let advertised = SocketAddr::new(advertised_ip, port).to_string();
    cluster.attach_probers(lan, wan, advertised);
    Ok(())
}

async fn start_node_probing(
    agent: &Arc<Agent>,
    args: &NodeArgs,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // The address this machine reaches its cluster from is the one peers can reach it at.
    let ip = local_ip_towards(&args.cluster)
        .await
        .unwrap_or(Ipv4Addr::LOCALHOST.into());
    if let Some(prober) = start_prober(ip, &args.probe, stop).await? {
        agent.attach_prober(prober);
    }
    Ok(())
}

/// Binds a latency prober on `ip` and runs its loop until `stop`; none when probing is off.
async fn start_prober(
    ip: IpAddr,
    args: &ProbeArgs,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Option<Arc<Prober>>> {
    let Some(period) = probe_period(args) else {
        return Ok(None);
    };
    let prober = Prober::bind(SocketAddr::new(ip, 0), rand::random())
        .await
        .context("binding the latency-probe socket")?;
    tokio::spawn(prober.clone().run(period, PROBES_PER_ROUND, stop.clone()));
    Ok(Some(prober))
}

/// The local address the kernel routes `url`'s host from (a UDP connect sends nothing).
async fn local_ip_towards(url: &str) -> Option<IpAddr> {
    let authority = url.split("://").nth(1).unwrap_or(url).split('/').next()?;
    let target = tokio::net::lookup_host(authority).await.ok()?.next()?;
    let unspecified: IpAddr = if target.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = tokio::net::UdpSocket::bind(SocketAddr::new(unspecified, 0))
        .await
        .ok()?;
    socket.connect(target).await.ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

pub(crate) fn open_store(dir: &Path, file: &str) -> anyhow::Result<RedbStore> {
    create_private_dir(dir)?;
    let path = dir.join(file);
    let store = RedbStore::open(&path)
        .with_context(|| format!("opening the state store {}", path.display()))?;
    crate::files::make_private(&path)?;
    Ok(store)
}

async fn bind(address: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address}"))
}

/// As [`announce`], with the scheme the API is served with.
fn announce_api(listener: &TcpListener, tls: bool) -> anyhow::Result<()> {
    let address = listener.local_addr().context("reading the bound address")?;
    let scheme = if tls { "https" } else { "http" };
    println!("canopy API listening on {scheme}://{address}");
    Ok(())
}

/// Scripts and tests wait for this line to learn the (possibly random) port.
fn announce_nodes(listener: &TcpListener) -> anyhow::Result<()> {
    let address = listener.local_addr().context("reading the bound address")?;
    println!("canopy cluster listening on https://{address}");
    Ok(())
}

/// Printed after the API's line: clusters join and link here.
fn announce_tier(listener: &TcpListener) -> anyhow::Result<()> {
    let address = listener.local_addr().context("reading the bound address")?;
    println!("canopy tier listening on https://{address}");
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
pub(crate) fn stop_on_signal() -> watch::Receiver<bool> {
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

//! The node agent: admits or refuses what its cluster assigns, runs it through the runtime
//! for its kind, restarts it by its restart policy, and reports status up. It keeps running
//! (and restarting) its instances while its cluster is away, and a restarted agent re-adopts
//! the processes it had started instead of starting them again.
//!
//! A pure core with a thin shell: [`admission`] decides what fits, [`restart`] what to do
//! when a run ends, `lifecycle` which state changes are legal, `report` what goes up;
//! this file and `runner` do the I/O (runtimes, the state file, the link) around them.

pub mod admission;
mod assign;
mod callers;
mod details;
mod engine_sessions;
mod exec;
mod forward;
mod gated;
mod health;
pub mod hollow;
mod host_paths;
pub mod images;
mod lifecycle;
pub mod metrics;
mod overlay;
mod prestart;
mod probing;
mod proxy_metrics;
mod pty;
mod report;
#[cfg(test)]
mod residue;
pub mod restart;
mod runner;
mod statefile;
mod streams;
mod traffic;
mod usage;
mod volumes;
mod wasm_modules;

use admission::NodeFacts;
use canopy_model::{GeoPoint, IllegalTransition, NetworkCoordinate, ResourceAmounts, RuntimeKind};
pub use canopy_net::overlay::{claim_range, release_range};
use canopy_runtime::{Prestart, Runtime};
use canopy_sched::demand;
use canopy_tier::child::{self, Child, Outbox, Uplink};
use canopy_tier::pb;
use canopy_tier::probe::Prober;
use canopy_tier::{Assignment, Hello, Revocation, Timing, location_to_pb, unix_ms};
use lifecycle::Local;
pub use overlay::OverlaySettings;
use statefile::StateFile;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{Mutex, watch};

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    /// The cluster's tier endpoint (`https://host:port`; `http://` for in-process clusters
    /// without a node CA, as in tests).
    pub cluster: String,
    /// How it proves who it is to its cluster: a certificate (joined with a node token)
    /// for an `https://` cluster.
    pub credentials: child::Credentials,
    pub data: PathBuf,
    pub labels: BTreeMap<String, String>,
    pub location: Option<GeoPoint>,
    pub capacity: ResourceAmounts,
    pub arch: String,
    /// How long an instance has to stop after SIGTERM before SIGKILL.
    pub stop_grace: Duration,
    /// Power draw per core (W) and grid carbon intensity (gCO2/kWh), for energy-aware placement.
    pub watts_per_core: Option<f64>,
    pub carbon_g_per_kwh: Option<f64>,
    /// A fixed network coordinate, for nodes that do not probe (hollow nodes in `canopy sim`).
    pub coordinate: Option<NetworkCoordinate>,
    /// Prefixes `hostPath` volumes may be under (`--allow-host-path`); none when empty.
    pub allowed_host_paths: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("state file {path}: {source}")]
    StateFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("runtime: {0}")]
    Runtime(#[from] canopy_runtime::RuntimeError),
    #[error("link to the cluster: {0}")]
    Tier(#[from] canopy_tier::TierError),
}

/// `amd64`, `arm64`, ... as OCI names architectures.
pub fn detect_arch() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
    .to_string()
}

/// This machine's CPUs and memory.
pub fn detect_capacity() -> ResourceAmounts {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
        })
        .unwrap_or(0);
    ResourceAmounts {
        cpu_millis: cpus * 1000,
        memory_mib: memory_kib / 1024,
        gpus: 0,
        storage_mib: 0,
    }
}

pub struct Agent {
    config: NodeConfig,
    /// What admission reads of this node (name, runtimes, capacity, labels).
    facts: NodeFacts,
    runtimes: BTreeMap<RuntimeKind, Arc<dyn Runtime>>,
    /// The prestart hooks each runtime wants (by its capabilities), and what it can do
    /// with them around it.
    prestart: BTreeMap<RuntimeKind, prestart::RuntimeHooks>,
    /// Where start progress (image pulls) goes: the instance's events.
    events: canopy_runtime::Events,
    instances: Mutex<BTreeMap<String, Local>>,
    statefile: StateFile,
    uplink: Uplink,
    outbox: std::sync::Mutex<Option<Outbox>>,
    probing: probing::Probing,
    /// Usage sampling: what was last sent up, and a sample not sent yet.
    usage: std::sync::Mutex<UsageReports>,
    /// Service names, DNS and proxy, once attached.
    overlay: std::sync::OnceLock<overlay::Attached>,
    /// The calls its proxy carried, per caller and callee, for the heartbeats.
    traffic: Arc<traffic::Edges>,
    metrics: Arc<metrics::NodeMetrics>,
    /// The named volumes it last told its cluster it holds.
    volumes_sent: std::sync::Mutex<Option<std::collections::BTreeSet<String>>>,
    /// A start with volumes or a removal may have changed them since they were last listed:
    /// the volumes directory is read again only then, not on every heartbeat.
    volumes_dirty: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct UsageReports {
    sampler: usage::Sampler,
    sent: Option<BTreeMap<String, canopy_model::Usage>>,
    pending: Option<BTreeMap<String, canopy_model::Usage>>,
    /// The cluster's heartbeat, which the sampling period follows.
    heartbeat: Option<std::time::Duration>,
}

fn now_ms() -> i64 {
    unix_ms(OffsetDateTime::now_utc())
}

impl Agent {
    /// Opens the agent: loads its assignments and re-adopts what still runs.
    pub async fn open(
        config: NodeConfig,
        runtimes: Vec<Arc<dyn Runtime>>,
    ) -> Result<Arc<Agent>, NodeError> {
        Agent::open_with_hooks(config, runtimes, Vec::new()).await
    }

    /// [`Agent::open`] with prestart hooks (the image, the network), run in the order
    /// given around each runtime whose capabilities want them.
    pub async fn open_with_hooks(
        config: NodeConfig,
        runtimes: Vec<Arc<dyn Runtime>>,
        hooks: Vec<Arc<dyn Prestart>>,
    ) -> Result<Arc<Agent>, NodeError> {
        let metrics = Arc::new(metrics::NodeMetrics::new(&config.name, config.capacity));
        Agent::open_observed(config, runtimes, hooks, metrics).await
    }

    /// [`Agent::open_with_hooks`] counting into `metrics` (made first, so that the image
    /// hook can count its pulls there too).
    pub async fn open_observed(
        config: NodeConfig,
        runtimes: Vec<Arc<dyn Runtime>>,
        hooks: Vec<Arc<dyn Prestart>>,
        metrics: Arc<metrics::NodeMetrics>,
    ) -> Result<Arc<Agent>, NodeError> {
        std::fs::create_dir_all(&config.data).map_err(|source| NodeError::StateFile {
            path: config.data.clone(),
            source,
        })?;
        let sealing =
            canopy_tier::sealing::SealingKey::load_or_create(&config.data).map_err(|e| {
                NodeError::StateFile {
                    path: config.data.join(canopy_tier::sealing::KEY_FILE),
                    source: std::io::Error::other(e),
                }
            })?;
        let statefile = StateFile::new(&config.data, sealing);
        let records = statefile.load().map_err(|source| NodeError::StateFile {
            path: config.data.join("assignments.json"),
            source,
        })?;
        let runtimes: BTreeMap<RuntimeKind, Arc<dyn Runtime>> =
            runtimes.into_iter().map(|r| (r.kind(), r)).collect();
        let prestart = prestart::hooks_for(&runtimes, &hooks);
        let mut recovered = BTreeMap::new();
        for runtime in runtimes.values() {
            for instance in runtime.recover().await? {
                recovered.insert(instance.id.clone(), (runtime.clone(), instance));
            }
        }
        let (uplink, outbox) = child::uplink();
        let now = now_ms();
        let mut instances = BTreeMap::new();
        let mut supervise = Vec::new();
        for (id, record) in records {
            let found = recovered
                .get(&id)
                .map(|(_, r)| r)
                .filter(|r| r.generation == record.generation);
            supervise.push((id.clone(), record.generation, found.is_some()));
            let local = match found {
                Some(r) if r.running => Local::readopted(record, r.pid, now),
                _ => Local::recovering(record, now),
            };
            instances.insert(id, local);
        }
        // Instances the runtime knows but no assignment names were revoked mid-way: finish.
        for (id, (runtime, _)) in &recovered {
            if !instances.contains_key(id) {
                let _ = runtime.remove(id).await;
                if let Some(h) = prestart.get(&runtime.kind()) {
                    let _ = h.hooks.release(id).await;
                }
            }
        }
        let facts = NodeFacts {
            name: config.name.clone(),
            runtimes: runtimes.keys().copied().collect(),
            capabilities: prestart
                .iter()
                .map(|(kind, h)| (*kind, h.capabilities))
                .collect(),
            sandboxes: runtimes.values().flat_map(|r| r.sandboxes()).collect(),
            kvm: runtimes.values().any(|r| r.kvm()),
            capacity: config.capacity,
            labels: config.labels.clone(),
            allowed_host_paths: config.allowed_host_paths.clone(),
        };
        let (events, progress) = runner::event_channel();
        let agent = Arc::new(Agent {
            probing: probing::Probing::new(&config.cluster, config.coordinate),
            config,
            facts,
            runtimes,
            prestart,
            events,
            instances: Mutex::new(instances),
            statefile,
            uplink,
            outbox: std::sync::Mutex::new(Some(outbox)),
            usage: Default::default(),
            overlay: Default::default(),
            traffic: Default::default(),
            metrics,
            volumes_sent: Default::default(),
            volumes_dirty: std::sync::atomic::AtomicBool::new(true),
        });
        for (id, generation, adopted) in supervise {
            tokio::spawn(agent.clone().supervise(id, generation, adopted));
        }
        agent.forward_runtime_events(progress);
        tokio::spawn(sample_usage(Arc::downgrade(&agent)));
        Ok(agent)
    }

    /// This node's series (`--metrics-listen`, or the root's `/metrics` under `canopy up`).
    pub fn exposition(self: &Arc<Self>) -> metrics::NodeExposition {
        metrics::NodeExposition(self.clone())
    }

    /// Takes part in latency probing with `prober` (whose loop the caller runs): its address
    /// and coordinate go to the cluster, and the peers the cluster names are probed.
    pub fn attach_prober(&self, prober: Arc<Prober>) {
        self.probing.attach(prober);
    }

    /// Keeps the link to the cluster up until `stop` turns true. Instances keep running when
    /// it returns: stopping the agent is not stopping its workloads.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> Result<(), NodeError> {
        let Some(outbox) = self.outbox.lock().ok().and_then(|mut o| o.take()) else {
            return Ok(());
        };
        let cluster = self.config.cluster.clone();
        child::run(
            cluster,
            self.config.credentials.clone(),
            Arc::new(ClusterSide(self)),
            outbox,
            stop,
        )
        .await?;
        Ok(())
    }

    fn save(&self, instances: &BTreeMap<String, Local>) {
        let records = instances.iter().map(|(id, local)| (id, &local.record));
        if let Err(e) = self.statefile.save(records) {
            tracing::error!(error = %e, "cannot save the agent's state file");
        }
    }

    /// Applies `change` to instance `id` if it is still at `generation` and the lifecycle
    /// allows it, reports where it now stands, and saves the state file when `persist`.
    /// False when it is gone, replaced, or the change was refused (it is being stopped).
    async fn update(
        &self,
        id: &str,
        generation: u64,
        persist: bool,
        change: impl FnOnce(&mut Local, i64) -> Result<(), IllegalTransition>,
    ) -> bool {
        let mut instances = self.instances.lock().await;
        let Some(local) = instances
            .get_mut(id)
            .filter(|l| l.generation() == generation)
        else {
            return false;
        };
        if let Err(e) = change(local, now_ms()) {
            tracing::debug!(instance = id, error = %e, "change not applied");
            return false;
        }
        self.uplink
            .report(&report::of(&self.config.name, id, local));
        if persist {
            self.save(&instances);
        }
        true
    }

    fn member(&self, instances: &BTreeMap<String, Local>) -> pb::Member {
        let mut allocated = ResourceAmounts::default();
        for local in instances.values().filter(|l| l.holds_resources()) {
            allocated.add(&demand(&local.record.workload.spec));
        }
        let (location, has_location) = location_to_pb(self.config.location);
        pb::Member {
            name: self.config.name.clone(),
            arch: self.config.arch.clone(),
            runtimes: self
                .runtimes
                .keys()
                .map(|k| k.as_str().to_string())
                .collect(),
            sandboxes: canopy_tier::sandboxes_to_pb(&self.facts.sandboxes),
            kvm: self.facts.kvm,
            capacity: Some(self.config.capacity.into()),
            allocated: Some(allocated.into()),
            labels: self.config.labels.clone().into_iter().collect(),
            location,
            has_location,
            ready: true,
            instance_count: instances.len() as u32,
            coordinate: self.probing.coordinate(),
            probe_address: self.probing.address(),
            watts_per_core: self.config.watts_per_core.unwrap_or(0.0),
            carbon_g_per_kwh: self.config.carbon_g_per_kwh.unwrap_or(0.0),
            volumes: self.volumes_for_hello(),
            ..pb::Member::default()
        }
    }
}

pub(crate) struct ClusterSide(pub(crate) Arc<Agent>);

impl Child for ClusterSide {
    async fn hello(&self) -> Hello {
        let agent = &self.0;
        let instances = agent.instances.lock().await;
        Hello {
            member: agent.member(&instances),
            token: String::new(),
            // Ones being stopped are left out: their cluster has let go of them already.
            instances: instances
                .iter()
                .filter(|(_, l)| !l.is_stopping())
                .map(|(id, l)| report::of(&agent.config.name, id, l))
                .collect(),
            nodes: Vec::new(),
        }
    }

    async fn on_assigns(&self, assigns: Vec<Assignment>) {
        self.0.on_assigns(assigns).await;
    }

    async fn on_revoke(&self, revoke: Revocation) {
        self.0.on_revoke(revoke).await;
    }

    async fn heartbeat(&self) -> pb::Heartbeat {
        let usage = self
            .0
            .usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pending
            .take();
        let volumes = self.0.volumes_changed();
        let traffic = self.0.traffic.report();
        pb::Heartbeat {
            allocated: None,
            coordinate: self.0.probing.coordinate_update(),
            has_usage: usage.is_some(),
            usage: usage
                .map(|u| canopy_tier::instance_usage_to_pb(&u))
                .unwrap_or_default(),
            has_volumes: volumes.is_some(),
            volumes: volumes.unwrap_or_default(),
            has_traffic: traffic.is_some(),
            traffic: traffic.unwrap_or_default(),
        }
    }

    async fn on_peers(&self, peers: pb::Peers) {
        self.0.probing.on_peers(peers).await;
    }

    async fn on_stream(&self, open: pb::OpenStream, pipe: canopy_tier::streams::Pipe) {
        self.0.clone().serve_stream(open, pipe).await;
    }

    async fn on_routes(&self, routes: pb::Routes) {
        self.0.on_overlay_routes(routes);
    }

    fn link_counters(&self) -> canopy_tier::metrics::LinkCounters {
        let cluster = &self.0.config.cluster;
        (self.0.metrics.links).counters(cluster, canopy_tier::metrics::PeerTier::cluster)
    }

    async fn on_link(&self, up: Option<Timing>) {
        if let Some(timing) = up {
            self.0.on_overlay_link();
            let mut usage = self.0.usage.lock().unwrap_or_else(|p| p.into_inner());
            // A cluster that restarted knows nothing of the use: the next sample goes up.
            usage.sent = None;
            usage.heartbeat = Some(timing.heartbeat);
            drop(usage);
            self.0.traffic.resend();
        }
        match up {
            Some(_) => tracing::info!(node = %self.0.config.name, "linked to the cluster"),
            None => {
                tracing::warn!(node = %self.0.config.name, "link to the cluster down; instances keep running")
            }
        }
    }
}

/// Samples what each running instance uses every [`usage::sample_period`] of its cluster's
/// heartbeat (every second until the first link says it), until the agent is gone; a
/// noticeable change waits for the next heartbeat.
async fn sample_usage(agent: std::sync::Weak<Agent>) {
    loop {
        let Some(strong) = agent.upgrade() else {
            return;
        };
        let heartbeat = sample_once(&strong).await;
        drop(strong);
        let period = heartbeat.map_or(std::time::Duration::from_secs(1), usage::sample_period);
        tokio::time::sleep(period).await;
    }
}

/// One sample of every running instance; the cluster's heartbeat, if known.
async fn sample_once(agent: &Agent) -> Option<std::time::Duration> {
    let running: Vec<(String, Arc<dyn Runtime>, String)> = {
        let instances = agent.instances.lock().await;
        instances
            .iter()
            .filter(|(_, l)| l.state() == canopy_model::InstanceState::Running)
            .filter_map(|(id, l)| {
                let workload = &l.record.workload;
                let runtime = agent.runtimes.get(&workload.spec.runtime)?;
                let service = format!(
                    "{}/{}/{}",
                    workload.namespace, workload.application, workload.service
                );
                runtime
                    .capabilities()
                    .stats
                    .then(|| (id.clone(), runtime.clone(), service))
            })
            .collect()
    };
    let mut stats = BTreeMap::new();
    let mut services = BTreeMap::new();
    for (id, runtime, service) in running {
        if let Ok(sample) = runtime.stats(&id).await {
            services.insert(id.clone(), service);
            stats.insert(id, sample);
        }
    }
    let mut reports = agent.usage.lock().unwrap_or_else(|p| p.into_inner());
    let now = reports.sampler.sample(stats, std::time::Instant::now());
    let sampled: Vec<metrics::Sampled<'_>> = now
        .iter()
        .map(|(id, usage)| metrics::Sampled {
            id,
            service: services.remove(id).unwrap_or_default(),
            usage: *usage,
        })
        .collect();
    agent.metrics.sampled(&sampled);
    if usage::noticeably_changed(reports.sent.as_ref(), &now) {
        reports.sent = Some(now.clone());
        reports.pending = Some(now);
    }
    reports.heartbeat
}

//! The node agent: admits or refuses what its cluster assigns, runs it through the runtime
//! for its kind, restarts it by its restart policy, and reports status up. It keeps running
//! (and restarting) its instances while its cluster is away, and a restarted agent re-adopts
//! the processes it had started instead of starting them again.

pub mod hollow;
pub mod images;
mod statefile;

use canopy_model::{
    GeoPoint, InstanceState, NetworkCoordinate, ResourceAmounts, RestartPolicy, RuntimeKind,
};
use canopy_runtime::{Exit, InstanceSpec, Runtime};
use canopy_sched::demand;
use canopy_tier::child::{self, Child, Outbox, Uplink};
use canopy_tier::pb;
use canopy_tier::probe::{Position, Prober};
use canopy_tier::{
    Hello, Reported, Revocation, StatusReport, Timing, Workload, coordinate_to_pb, location_to_pb,
    unix_ms,
};
use statefile::{Assignment, StateFile};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    /// The cluster's tier endpoint (`http://host:port`).
    pub cluster: String,
    pub token: String,
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

struct Local {
    assignment: Assignment,
    state: InstanceState,
    reason: String,
    pid: Option<u32>,
    exit_code: Option<i32>,
    at_ms: i64,
    stopping: bool,
}

impl Local {
    fn status(&self, id: &str, node: &str) -> StatusReport {
        StatusReport {
            pid: self.pid,
            restarts: self.assignment.restarts,
            ready: self.state == InstanceState::Running,
            ..StatusReport::new(
                id,
                self.assignment.generation,
                Reported::State(self.state),
                self.reason.clone(),
            )
            .on_node(node)
            .at(self.at_ms)
        }
    }
}

pub struct Agent {
    config: NodeConfig,
    runtimes: BTreeMap<RuntimeKind, Arc<dyn Runtime>>,
    instances: Mutex<BTreeMap<String, Local>>,
    statefile: StateFile,
    uplink: Uplink,
    outbox: std::sync::Mutex<Option<Outbox>>,
    /// Latency probing (Vivaldi), when the daemon turned it on.
    prober: OnceLock<Arc<Prober>>,
    /// The coordinate the cluster last heard, so heartbeats carry it only when it moved.
    coordinate_sent: std::sync::Mutex<Option<Position>>,
}

/// A coordinate is worth reporting once it moved this far (ms) or its error this much.
const COORDINATE_MOVE_MS: f64 = 0.5;
const COORDINATE_ERROR_STEP: f64 = 0.1;

const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run that lasted this long was healthy: the next failure restarts without delay growth.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

impl Agent {
    /// Opens the agent: loads its assignments and re-adopts what still runs.
    pub async fn open(
        config: NodeConfig,
        runtimes: Vec<Arc<dyn Runtime>>,
    ) -> Result<Arc<Agent>, NodeError> {
        std::fs::create_dir_all(&config.data).map_err(|source| NodeError::StateFile {
            path: config.data.clone(),
            source,
        })?;
        let statefile = StateFile::new(&config.data);
        let assignments = statefile.load().map_err(|source| NodeError::StateFile {
            path: config.data.join("assignments.json"),
            source,
        })?;
        let runtimes: BTreeMap<RuntimeKind, Arc<dyn Runtime>> =
            runtimes.into_iter().map(|r| (r.kind(), r)).collect();
        let mut recovered = BTreeMap::new();
        for runtime in runtimes.values() {
            for instance in runtime.recover().await? {
                recovered.insert(instance.id.clone(), (runtime.clone(), instance));
            }
        }
        let (uplink, outbox) = child::uplink();
        let now = unix_ms(OffsetDateTime::now_utc());
        let mut instances = BTreeMap::new();
        let mut supervise = Vec::new();
        for (id, assignment) in assignments {
            let adopted = recovered
                .get(&id)
                .is_some_and(|(_, r)| r.generation == assignment.generation);
            let (state, reason, pid) = match recovered.get(&id) {
                Some((_, r)) if adopted && r.running => (
                    InstanceState::Running,
                    "re-adopted after agent restart".to_string(),
                    r.pid,
                ),
                _ => (
                    InstanceState::Starting,
                    "recovering after agent restart".to_string(),
                    None,
                ),
            };
            supervise.push((id.clone(), assignment.generation, adopted));
            instances.insert(
                id,
                Local {
                    assignment,
                    state,
                    reason,
                    pid,
                    exit_code: None,
                    at_ms: now,
                    stopping: false,
                },
            );
        }
        // Instances the runtime knows but no assignment names were revoked mid-way: finish.
        for (id, (runtime, _)) in &recovered {
            if !instances.contains_key(id) {
                let _ = runtime.remove(id).await;
            }
        }
        let agent = Arc::new(Agent {
            config,
            runtimes,
            instances: Mutex::new(instances),
            statefile,
            uplink,
            outbox: std::sync::Mutex::new(Some(outbox)),
            prober: OnceLock::new(),
            coordinate_sent: std::sync::Mutex::new(None),
        });
        for (id, generation, adopted) in supervise {
            tokio::spawn(agent.clone().supervise(id, generation, adopted));
        }
        agent.forward_runtime_events();
        Ok(agent)
    }

    /// Start progress from the runtimes (image pulls) becomes the reason of a Starting
    /// instance, so `canopy describe` shows it as an event.
    fn forward_runtime_events(self: &Arc<Self>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
        let events: canopy_runtime::Events = Arc::new(move |id: &str, text: &str| {
            let _ = tx.send((id.to_string(), text.to_string()));
        });
        for runtime in self.runtimes.values() {
            runtime.set_events(events.clone());
        }
        let agent = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some((id, text)) = rx.recv().await {
                let Some(agent) = agent.upgrade() else { return };
                let generation = {
                    let instances = agent.instances.lock().await;
                    match instances.get(&id) {
                        Some(l) if l.state == InstanceState::Starting => l.assignment.generation,
                        _ => continue,
                    }
                };
                agent
                    .set(&id, generation, InstanceState::Starting, text, None, None)
                    .await;
            }
        });
    }

    /// Takes part in latency probing with `prober` (whose loop the caller runs): its address
    /// and coordinate go to the cluster, and the peers the cluster names are probed.
    pub fn attach_prober(&self, prober: Arc<Prober>) {
        let _ = self.prober.set(prober);
    }

    fn position(&self) -> Option<Position> {
        match (self.prober.get(), self.config.coordinate) {
            (Some(prober), _) => Some(prober.position()),
            (None, Some(c)) => Some(Position {
                coordinate: canopy_sched::Coordinate {
                    x: c.x,
                    y: c.y,
                    height: c.height,
                },
                error: c.error,
            }),
            (None, None) => None,
        }
    }

    /// The coordinate, if it moved enough since the cluster last heard it.
    fn coordinate_update(&self) -> Option<pb::Coordinate> {
        let now = self.position()?;
        let mut sent = self
            .coordinate_sent
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let moved = sent.is_none_or(|before| {
            before.coordinate.planar_distance(&now.coordinate) > COORDINATE_MOVE_MS
                || (before.coordinate.height - now.coordinate.height).abs() > COORDINATE_MOVE_MS
                || (before.error - now.error).abs() > COORDINATE_ERROR_STEP
        });
        if !moved {
            return None;
        }
        *sent = Some(now);
        coordinate_to_pb(Some((now.coordinate, now.error)))
    }

    /// Peers named by the cluster: `host:port`, or `:port` for the cluster's own host.
    async fn on_peers(&self, peers: pb::Peers) {
        let Some(prober) = self.prober.get() else {
            return;
        };
        let cluster_host = self
            .config
            .cluster
            .parse::<tonic::codegen::http::Uri>()
            .ok()
            .and_then(|uri| uri.host().map(|h| h.trim_matches(['[', ']']).to_string()));
        let mut addresses: Vec<SocketAddr> = Vec::new();
        for peer in peers.peers {
            let address = match (peer.address.strip_prefix(':'), &cluster_host) {
                (Some(port), Some(host)) => format!("{host}:{port}"),
                (Some(_), None) => continue,
                (None, _) => peer.address,
            };
            match tokio::net::lookup_host(address.as_str()).await {
                Ok(mut found) => addresses.extend(found.next()),
                Err(e) => {
                    tracing::debug!(peer = %peer.name, %address, error = %e, "cannot resolve a probe peer")
                }
            }
        }
        prober.set_peers(addresses);
    }

    /// Keeps the link to the cluster up until `stop` turns true. Instances keep running when
    /// it returns: stopping the agent is not stopping its workloads.
    pub async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) -> Result<(), NodeError> {
        let Some(outbox) = self.outbox.lock().ok().and_then(|mut o| o.take()) else {
            return Ok(());
        };
        let cluster = self.config.cluster.clone();
        let token = self.config.token.clone();
        child::run(cluster, token, Arc::new(ClusterSide(self)), outbox, stop).await?;
        Ok(())
    }

    fn spec_of(&self, id: &str, assignment: &Assignment) -> InstanceSpec {
        let workload = &assignment.workload;
        let env = BTreeMap::from([
            ("CANOPY_INSTANCE".to_string(), id.to_string()),
            ("CANOPY_NAMESPACE".to_string(), workload.namespace.clone()),
            (
                "CANOPY_APPLICATION".to_string(),
                workload.application.clone(),
            ),
            ("CANOPY_SERVICE".to_string(), workload.service.clone()),
            ("CANOPY_REPLICA".to_string(), workload.replica.to_string()),
            ("CANOPY_NODE".to_string(), self.config.name.clone()),
        ]);
        InstanceSpec {
            id: id.to_string(),
            generation: assignment.generation,
            service: workload.spec.clone(),
            env,
        }
    }

    fn save(&self, instances: &BTreeMap<String, Local>) {
        let assignments: BTreeMap<String, Assignment> = instances
            .iter()
            .map(|(id, local)| (id.clone(), local.assignment.clone()))
            .collect();
        if let Err(e) = self.statefile.save(&assignments) {
            tracing::error!(error = %e, "cannot save the agent's state file");
        }
    }

    /// Records a transition of instance `id` (if still at `generation`) and reports it.
    async fn set(
        &self,
        id: &str,
        generation: u64,
        state: InstanceState,
        reason: String,
        pid: Option<u32>,
        exit_code: Option<i32>,
    ) -> bool {
        let mut instances = self.instances.lock().await;
        let Some(local) = instances.get_mut(id) else {
            return false;
        };
        if local.assignment.generation != generation || local.stopping {
            return false;
        }
        local.state = state;
        local.reason = reason;
        local.pid = pid;
        local.exit_code = exit_code;
        local.at_ms = unix_ms(OffsetDateTime::now_utc());
        self.uplink.report(&local.status(id, &self.config.name));
        true
    }

    /// Runs one instance for as long as it is assigned here: start, wait, restart by policy.
    async fn supervise(self: Arc<Self>, id: String, generation: u64, adopted: bool) {
        let mut backoff = MIN_BACKOFF;
        let mut start = !adopted;
        loop {
            let (runtime, spec, policy) = {
                let instances = self.instances.lock().await;
                let Some(local) = instances.get(&id) else {
                    return;
                };
                if local.assignment.generation != generation || local.stopping {
                    return;
                }
                let kind = local.assignment.workload.spec.runtime;
                let Some(runtime) = self.runtimes.get(&kind).cloned() else {
                    return;
                };
                (
                    runtime,
                    self.spec_of(&id, &local.assignment),
                    local.assignment.workload.spec.restart_policy,
                )
            };
            let began = Instant::now();
            let mut exit = None;
            if start {
                match runtime.start(&spec).await {
                    Ok(started) => {
                        self.set(
                            &id,
                            generation,
                            InstanceState::Running,
                            "started".into(),
                            started.pid,
                            None,
                        )
                        .await;
                    }
                    Err(e) => {
                        exit = Some(Exit {
                            code: None,
                            signal: None,
                            oom_killed: false,
                            reason: format!("could not start: {e}"),
                        })
                    }
                }
            }
            let exit = match exit {
                Some(exit) => exit,
                None => match runtime.wait(&id).await {
                    Ok(exit) => exit,
                    Err(e) => Exit {
                        code: None,
                        signal: None,
                        oom_killed: false,
                        reason: format!("lost track of the instance: {e}"),
                    },
                },
            };
            let restart = match policy {
                RestartPolicy::Always => true,
                RestartPolicy::OnFailure => !exit.success(),
                RestartPolicy::Never => false,
            };
            if !restart {
                let state = if exit.success() {
                    InstanceState::Succeeded
                } else {
                    InstanceState::Failed
                };
                self.set(&id, generation, state, exit.reason, None, exit.code)
                    .await;
                return;
            }
            if began.elapsed() > HEALTHY_RUN {
                backoff = MIN_BACKOFF;
            }
            {
                let mut instances = self.instances.lock().await;
                match instances.get_mut(&id) {
                    Some(local) if local.assignment.generation == generation && !local.stopping => {
                        local.assignment.restarts += 1;
                    }
                    _ => return,
                }
                self.save(&instances);
            }
            let reason = format!("restarting in {} ms: {}", backoff.as_millis(), exit.reason);
            if !self
                .set(
                    &id,
                    generation,
                    InstanceState::Starting,
                    reason,
                    None,
                    exit.code,
                )
                .await
            {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            start = true;
        }
    }

    async fn on_assign(self: &Arc<Self>, assign: canopy_tier::Assignment) {
        let workload = assign.workload;
        let id = assign.id.clone();
        let older = {
            let instances = self.instances.lock().await;
            match instances.get(&id) {
                Some(local) if local.assignment.generation >= assign.generation => {
                    // A repeat: say where it stands.
                    self.uplink.report(&local.status(&id, &self.config.name));
                    return;
                }
                Some(local) => Some(local.assignment.generation),
                None => None,
            }
        };
        if let Some(generation) = older {
            self.stop_instance(&id, generation, "replaced by a newer assignment")
                .await;
        }
        let mut instances = self.instances.lock().await;
        if self.admit_new(&mut instances, id.clone(), assign.generation, workload) {
            // On disk before anything runs, so a crash right after start is recoverable.
            self.save(&instances);
            drop(instances);
            tokio::spawn(self.clone().supervise(id, assign.generation, false));
        }
    }

    /// Assignments that arrived together: the new ones are admitted under one lock and saved
    /// with one state-file write (not one per instance); repeats and replacements go through
    /// [`Agent::on_assign`] after them.
    async fn on_assigns(self: &Arc<Self>, assigns: Vec<canopy_tier::Assignment>) {
        let mut admitted = Vec::new();
        let mut others = Vec::new();
        let mut instances = self.instances.lock().await;
        for assign in assigns {
            if instances.contains_key(&assign.id) {
                others.push(assign);
                continue;
            }
            let id = assign.id;
            if self.admit_new(
                &mut instances,
                id.clone(),
                assign.generation,
                assign.workload,
            ) {
                admitted.push((id, assign.generation));
            }
        }
        if !admitted.is_empty() {
            self.save(&instances);
        }
        drop(instances);
        for (id, generation) in admitted {
            tokio::spawn(self.clone().supervise(id, generation, false));
        }
        for assign in others {
            self.on_assign(assign).await;
        }
    }

    /// Admits instance `id` (not known here yet) or rejects it with the reason, telling the
    /// cluster either way. True when admitted: the caller saves the state file, then starts it.
    fn admit_new(
        &self,
        instances: &mut BTreeMap<String, Local>,
        id: String,
        generation: u64,
        workload: Workload,
    ) -> bool {
        if let Err(reason) = self.admit(instances, &workload) {
            let status = StatusReport::new(&id, generation, Reported::Refused, reason)
                .on_node(&self.config.name)
                .at(unix_ms(OffsetDateTime::now_utc()));
            self.uplink.report(&status);
            return false;
        }
        let local = Local {
            assignment: Assignment {
                generation,
                workload,
                restarts: 0,
            },
            state: InstanceState::Starting,
            reason: "admitted".into(),
            pid: None,
            exit_code: None,
            at_ms: unix_ms(OffsetDateTime::now_utc()),
            stopping: false,
        };
        self.uplink.report(&local.status(&id, &self.config.name));
        instances.insert(id, local);
        true
    }

    /// The node's own admission check: its view of its capacity is the exact one.
    fn admit(
        &self,
        instances: &BTreeMap<String, Local>,
        workload: &Workload,
    ) -> Result<(), String> {
        if !self.runtimes.contains_key(&workload.spec.runtime) {
            return Err(format!(
                "runtime {} is not available on node {}",
                workload.spec.runtime.as_str(),
                self.config.name
            ));
        }
        for port in workload.spec.ports.iter().filter(|p| p.host_port.is_some()) {
            let taken = instances
                .values()
                .filter(|l| !l.state.is_final())
                .flat_map(|l| &l.assignment.workload.spec.ports)
                .any(|p| p.host_port == port.host_port && p.protocol == port.protocol);
            if taken {
                let protocol = match port.protocol {
                    canopy_model::Protocol::Tcp => "tcp",
                    canopy_model::Protocol::Udp => "udp",
                };
                return Err(format!(
                    "host port {}/{protocol} is already published on node {}",
                    port.host_port.unwrap_or(0),
                    self.config.name
                ));
            }
        }
        let used = self.allocated_in(instances);
        let need = demand(&workload.spec);
        let capacity = &self.config.capacity;
        if used.cpu_millis + need.cpu_millis > capacity.cpu_millis {
            return Err(format!("insufficient cpu on node {}", self.config.name));
        }
        if used.memory_mib + need.memory_mib > capacity.memory_mib {
            return Err(format!("insufficient memory on node {}", self.config.name));
        }
        if used.gpus + need.gpus > capacity.gpus {
            return Err(format!("insufficient gpu on node {}", self.config.name));
        }
        Ok(())
    }

    fn allocated_in(&self, instances: &BTreeMap<String, Local>) -> ResourceAmounts {
        let mut total = ResourceAmounts::default();
        for local in instances.values().filter(|l| !l.state.is_final()) {
            total.add(&demand(&local.assignment.workload.spec));
        }
        total
    }

    async fn on_revoke(self: &Arc<Self>, revoke: Revocation) {
        let known = {
            let instances = self.instances.lock().await;
            instances.get(&revoke.id).map(|l| l.assignment.generation)
        };
        match known {
            Some(generation) if generation <= revoke.generation => {
                let agent = self.clone();
                // Stopping takes up to the grace period: do not hold up the link meanwhile.
                tokio::spawn(async move {
                    agent
                        .stop_instance(&revoke.id, generation, &revoke.reason)
                        .await;
                });
            }
            Some(_) => {}
            None => self.uplink.report(
                &StatusReport::new(
                    &revoke.id,
                    revoke.generation,
                    Reported::State(InstanceState::Terminated),
                    "not on this node",
                )
                .on_node(&self.config.name)
                .at(unix_ms(OffsetDateTime::now_utc())),
            ),
        }
    }

    async fn stop_instance(&self, id: &str, generation: u64, reason: &str) {
        let runtime = {
            let mut instances = self.instances.lock().await;
            let Some(local) = instances.get_mut(id) else {
                return;
            };
            if local.assignment.generation != generation {
                return;
            }
            local.stopping = true;
            self.runtimes
                .get(&local.assignment.workload.spec.runtime)
                .cloned()
        };
        if let Some(runtime) = runtime {
            if let Err(e) = runtime.stop(id, self.config.stop_grace).await {
                tracing::warn!(instance = id, error = %e, "stop failed");
            }
            if let Err(e) = runtime.remove(id).await {
                tracing::warn!(instance = id, error = %e, "cleanup failed");
            }
        }
        let mut instances = self.instances.lock().await;
        instances.remove(id);
        self.save(&instances);
        drop(instances);
        self.uplink.report(
            &StatusReport::new(
                id,
                generation,
                Reported::State(InstanceState::Terminated),
                format!("stopped: {reason}"),
            )
            .on_node(&self.config.name)
            .at(unix_ms(OffsetDateTime::now_utc())),
        );
    }

    async fn member(&self) -> pb::Member {
        let instances = self.instances.lock().await;
        let (location, has_location) = location_to_pb(self.config.location);
        pb::Member {
            name: self.config.name.clone(),
            arch: self.config.arch.clone(),
            runtimes: self
                .runtimes
                .keys()
                .map(|k| k.as_str().to_string())
                .collect(),
            capacity: Some(self.config.capacity.into()),
            allocated: Some(self.allocated_in(&instances).into()),
            labels: self.config.labels.clone().into_iter().collect(),
            location,
            has_location,
            ready: true,
            instance_count: instances.len() as u32,
            coordinate: self
                .position()
                .and_then(|p| coordinate_to_pb(Some((p.coordinate, p.error)))),
            probe_address: self
                .prober
                .get()
                .and_then(|p| p.local_addr().ok())
                .map(|a| a.to_string())
                .unwrap_or_default(),
            watts_per_core: self.config.watts_per_core.unwrap_or(0.0),
            carbon_g_per_kwh: self.config.carbon_g_per_kwh.unwrap_or(0.0),
            ..pb::Member::default()
        }
    }
}

struct ClusterSide(Arc<Agent>);

impl Child for ClusterSide {
    async fn hello(&self) -> Hello {
        let member = self.0.member().await;
        let instances = self.0.instances.lock().await;
        Hello {
            member,
            token: String::new(),
            instances: instances
                .iter()
                .filter(|(_, l)| !l.stopping)
                .map(|(id, l)| l.status(id, &self.0.config.name))
                .collect(),
            nodes: Vec::new(),
        }
    }

    async fn on_assigns(&self, assigns: Vec<canopy_tier::Assignment>) {
        self.0.on_assigns(assigns).await;
    }

    async fn on_revoke(&self, revoke: Revocation) {
        self.0.on_revoke(revoke).await;
    }

    async fn heartbeat(&self) -> pb::Heartbeat {
        pb::Heartbeat {
            allocated: None,
            coordinate: self.0.coordinate_update(),
        }
    }

    async fn on_peers(&self, peers: pb::Peers) {
        self.0.on_peers(peers).await;
    }

    async fn on_link(&self, up: Option<Timing>) {
        match up {
            Some(_) => tracing::info!(node = %self.0.config.name, "linked to the cluster"),
            None => {
                tracing::warn!(node = %self.0.config.name, "link to the cluster down; instances keep running")
            }
        }
    }
}

//! `canopy sim`: many hollow node agents in one process. Each is the real agent (admission,
//! supervision, status reports, its own link) over [`HollowRuntime`], so a cluster under
//! test sees exactly what real nodes would send, without running their workloads.

use crate::cli::SimArgs;
use anyhow::Context;
use canopy_model::{GeoPoint, NetworkCoordinate, ResourceAmounts, RuntimeKind};
use canopy_node::hollow::HollowRuntime;
use canopy_node::{Agent, NodeConfig};
use canopy_runtime::Runtime;
use futures::{StreamExt, TryStreamExt};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Nodes started per step, and the pause between steps: a gentle ramp, like a fleet
/// booting, rather than thousands of hellos in the same millisecond.
const RAMP_STEP: usize = 100;
/// Joins in flight at once.
const JOINS_AT_ONCE: usize = 32;
const RAMP_PAUSE: Duration = Duration::from_millis(20);

/// A hollow node's identity is kept in memory only: five thousand of them writing their keys
/// to one disk, three fsyncs each, measured that disk rather than the joins (a real fleet
/// writes each key to its own). Without a token or over cleartext, the agent's own path
/// says what is missing.
async fn hollow_credentials(
    args: &SimArgs,
    config: &NodeConfig,
) -> anyhow::Result<canopy_tier::child::Credentials> {
    let role = canopy_tier::trust::Role::Node;
    let token = args.join.token.as_str();
    match args.join.ca_hash.as_deref() {
        Some(ca_hash) if args.cluster.starts_with("https://") && !token.is_empty() => {
            let identity = canopy_tier::trust::join(
                &args.cluster,
                token,
                ca_hash,
                &config.name,
                role,
                &config.data,
            )
            .await?;
            Ok(canopy_tier::child::Credentials::Certificate {
                identity,
                dir: config.data.clone(),
            })
        }
        _ => {
            let (parent, data, name) = (&args.cluster, &config.data, &config.name);
            crate::daemon::credentials(
                parent,
                data,
                name,
                role,
                token,
                args.join.ca_hash.as_deref(),
            )
            .await
        }
    }
}

pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let stop = crate::daemon::stop_on_signal();
    let (data, temporary) = match &args.data {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("canopy-sim-{}", std::process::id())),
            true,
        ),
    };
    let mut rng = StdRng::seed_from_u64(args.seed);
    // Every node joins first, many at a time (each join spends a use of the same token), so
    // that the agents then start together, as a fleet booting would.
    let nodes: Vec<NodeConfig> = (0..args.nodes)
        .map(|index| hollow_node(&args, &data, index, &mut rng))
        .collect();
    let joins = nodes.into_iter().enumerate().map(|(index, mut config)| {
        let args = &args;
        async move {
            config.credentials = hollow_credentials(args, &config)
                .await
                .with_context(|| format!("joining hollow node {index}"))?;
            anyhow::Ok(config)
        }
    });
    let configs: Vec<NodeConfig> = futures::stream::iter(joins)
        .buffered(JOINS_AT_ONCE)
        .try_collect()
        .await?;
    let mut tasks = Vec::with_capacity(args.nodes);
    for (index, config) in configs.into_iter().enumerate() {
        let runtimes: Vec<Arc<dyn Runtime>> = [
            RuntimeKind::Process,
            RuntimeKind::Container,
            RuntimeKind::Wasm,
        ]
        .into_iter()
        .map(|kind| Arc::new(HollowRuntime::new(kind)) as Arc<dyn Runtime>)
        .collect();
        let agent = Agent::open(config, runtimes)
            .await
            .with_context(|| format!("opening hollow node {index}"))?;
        tasks.push(tokio::spawn(agent.run(stop.clone())));
        if (index + 1) % RAMP_STEP == 0 {
            tokio::time::sleep(RAMP_PAUSE).await;
        }
    }
    println!(
        "canopy sim: {} hollow nodes linking to {} (seed {})",
        args.nodes, args.cluster, args.seed
    );
    for task in tasks {
        if let Err(e) = task.await.context("hollow node task")? {
            tracing::warn!(error = %e, "a hollow node stopped with an error");
        }
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&data);
    }
    Ok(())
}

/// A varied but reproducible node: the mix of a continuum, cloud machines down to gateways.
fn hollow_node(
    args: &SimArgs,
    data: &std::path::Path,
    index: usize,
    rng: &mut StdRng,
) -> NodeConfig {
    let name = format!("{}-{index:05}", args.prefix);
    let (tier, cpu_millis, memory_mib, height_ms, watts) = match rng.random_range(0..10) {
        0 => ("cloud", 16_000, 65_536, 0.5, 8.0),
        1..=3 => ("fog", 4_000, 8_192, 2.0, 12.0),
        _ => (
            "edge",
            1_000 * rng.random_range(1..=2),
            1_024 * rng.random_range(1..=4),
            5.0 + rng.random_range(0.0..15.0),
            5.0,
        ),
    };
    let arch = if rng.random_bool(0.7) {
        "amd64"
    } else {
        "arm64"
    };
    let gpus = if tier != "edge" && rng.random_bool(0.1) {
        rng.random_range(1..=2)
    } else {
        0
    };
    let zone = rng.random_range(0..10);
    let mut labels = BTreeMap::from([
        ("tier".to_string(), tier.to_string()),
        ("zone".to_string(), format!("z{zone}")),
    ]);
    if gpus > 0 {
        labels.insert(
            "gpu.model".into(),
            if rng.random_bool(0.5) {
                "nvidia-t4"
            } else {
                "nvidia-a100"
            }
            .into(),
        );
    }
    // Europe, roughly: Lisbon to Helsinki.
    let location = GeoPoint {
        lat: rng.random_range(38.0..61.0),
        lon: rng.random_range(-9.0..25.0),
    };
    // Latency space: about 1 ms of round trip per 100 km of fibre, plus the access link.
    let coordinate = NetworkCoordinate {
        x: (location.lon - 10.0) * 111.0 * location.lat.to_radians().cos() / 100.0,
        y: (location.lat - 50.0) * 111.0 / 100.0,
        height: height_ms,
        error: 0.2,
    };
    NodeConfig {
        name: name.clone(),
        cluster: args.cluster.clone(),
        credentials: canopy_tier::child::Credentials::Cleartext,
        data: PathBuf::from(data).join(&name),
        labels,
        location: Some(location),
        capacity: ResourceAmounts {
            cpu_millis,
            memory_mib,
            gpus,
            storage_mib: 0,
        },
        arch: arch.to_string(),
        stop_grace: Duration::ZERO,
        watts_per_core: Some(watts),
        carbon_g_per_kwh: Some(50.0 + 60.0 * f64::from(zone)),
        coordinate: Some(coordinate),
        allowed_host_paths: Vec::new(),
    }
}

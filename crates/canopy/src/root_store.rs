//! The root's state store, chosen by `--store`: the data dir's redb file, or (built with the
//! `etcd` feature) an etcd cluster shared by several roots, which then elect the one that
//! schedules.

use std::sync::Arc;
#[cfg(feature = "etcd")]
use std::time::Duration;

#[cfg(feature = "etcd")]
use anyhow::Context;
use canopy_root::Root;
use canopy_store::Store;
#[cfg(feature = "etcd")]
use canopy_store::election::{Election, ElectionConfig};
#[cfg(feature = "etcd")]
use canopy_store::{EtcdOptions, EtcdStore};
use tokio::net::TcpListener;
#[cfg(feature = "etcd")]
use tokio::sync::watch;

use crate::cli::DaemonArgs;

pub struct RootStore {
    pub store: Arc<dyn Store>,
    #[cfg(feature = "etcd")]
    etcd: Option<EtcdStore>,
}

pub async fn open(args: &DaemonArgs) -> anyhow::Result<RootStore> {
    if args.store == "redb" {
        let store = crate::daemon::open_store(&args.data, "root.redb")?;
        return Ok(RootStore {
            store: Arc::new(store),
            #[cfg(feature = "etcd")]
            etcd: None,
        });
    }
    open_etcd(args).await
}

#[cfg(not(feature = "etcd"))]
async fn open_etcd(args: &DaemonArgs) -> anyhow::Result<RootStore> {
    anyhow::bail!(
        "--store {}: this canopy was built without etcd support; build it with \
         `cargo build --release -p canopy --features etcd` (needs protoc: Debian's \
         protobuf-compiler and libprotobuf-dev)",
        args.store
    )
}

#[cfg(feature = "etcd")]
async fn open_etcd(args: &DaemonArgs) -> anyhow::Result<RootStore> {
    let options = EtcdOptions::from_url(&args.store).context("--store")?;
    // The data dir still holds this replica's own files (its secret key, the first password).
    crate::files::create_private_dir(&args.data)?;
    let etcd = EtcdStore::connect(options)
        .await
        .with_context(|| format!("connecting to the state store {}", args.store))?;
    tracing::info!(store = %args.store, "state on etcd");
    Ok(RootStore {
        store: Arc::new(etcd.clone()),
        etcd: Some(etcd),
    })
}

/// Without etcd support a root is alone: it always schedules.
#[cfg(not(feature = "etcd"))]
pub fn elect(
    root: Root,
    _store: &RootStore,
    _args: &DaemonArgs,
    _listener: &TcpListener,
) -> anyhow::Result<Root> {
    Ok(root)
}

/// With an etcd store, joins the election under this replica's API address and lets the root
/// schedule only while it leads.
#[cfg(feature = "etcd")]
pub fn elect(
    root: Root,
    store: &RootStore,
    args: &DaemonArgs,
    listener: &TcpListener,
) -> anyhow::Result<Root> {
    let Some(etcd) = &store.etcd else {
        return Ok(root);
    };
    if !(args.leader_ttl.is_finite() && args.leader_ttl >= 1.0) {
        anyhow::bail!("--leader-ttl must be at least 1 second");
    }
    let address = listener.local_addr().context("reading the bound address")?;
    let config = ElectionConfig::new(format!("http://{address}"))
        .ttl(Duration::from_secs_f64(args.leader_ttl));
    let election = Election::start(etcd.clone(), config);
    let (leading, leader) = watch::channel(false);
    let mut role = election.role();
    tokio::spawn(async move {
        // Owns the election: it resigns when the root no longer listens.
        let _election = election;
        loop {
            let now = role.borrow_and_update().clone();
            if now.is_leader() != *leading.borrow() {
                // One line per change, for operators and tests.
                println!(
                    "canopy root: {}",
                    if now.is_leader() {
                        "leader"
                    } else {
                        "follower"
                    }
                );
            }
            if leading.send(now.is_leader()).is_err() {
                return;
            }
            tokio::select! {
                changed = role.changed() => if changed.is_err() { return },
                _ = leading.closed() => return,
            }
        }
    });
    Ok(root.with_leadership(leader))
}

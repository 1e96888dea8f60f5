//! The membership debounce end to end: 300 hollow nodes (`canopy sim`) join a real `canopy
//! cluster` at once, and the root hears of them in a handful of membership reports, the
//! last of which leaves every node listed. The root runs in this process over a redb store
//! whose watch counts the reports: each one is a single write of `/clusters/NAME`.

use crate::support;

use canopy_model::{MemberState, NodeInfo};
use canopy_root::{Root, Timing};
use canopy_store::{RedbStore, Store, StoreExt, WatchEvent};
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Daemon, eventually, fast_timing, holds_for, strings};

const NODES: usize = 300;
/// Far fewer than one report per join.
const MOST_REPORTS: usize = 20;

struct InProcessRoot {
    /// The tier listener (`https://`).
    url: String,
    /// The API (`http://`), where the hollow nodes' token is made.
    api: String,
    /// A join token for `c0` and the CA hash it pins.
    token: (String, String),
    store: Arc<RedbStore>,
    /// When each write of `/clusters/c0` (one per membership report, the hello's included)
    /// was seen.
    reports: Arc<Mutex<Vec<Instant>>>,
    runtime: tokio::runtime::Runtime,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl InProcessRoot {
    fn start(dir: &std::path::Path) -> InProcessRoot {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let store = Arc::new(RedbStore::open(dir.join("root.redb")).unwrap());
        let reports = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (url, api, token) = runtime.block_on(async {
            let mut watch = store.watch("/clusters/", 0).await.unwrap();
            let seen = reports.clone();
            tokio::spawn(async move {
                while let Some(event) = watch.next().await {
                    if let Ok(WatchEvent::Put { entry }) = event
                        && entry.key == "/clusters/c0"
                    {
                        seen.lock().unwrap().push(Instant::now());
                    }
                }
            });
            let root = Root::open(store.clone() as Arc<dyn Store>, Timing::default())
                .await
                .unwrap();
            // As `canopy root` does at its first start: the CLI logs in with it below.
            let password = root.initial_admin_password().unwrap().to_string();
            std::fs::write(dir.join("admin-password"), password).unwrap();
            let created = root
                .federation()
                .enrolment()
                .create_token(Some("c0".into()), None, time::OffsetDateTime::now_utc())
                .await
                .unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let api = format!("http://{}", listener.local_addr().unwrap());
            let tier = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("https://{}", tier.local_addr().unwrap());
            let (tier_stop, tier_stopped) = tokio::sync::oneshot::channel::<()>();
            let tier = root
                .serve_tier(tier, async {
                    let _ = tier_stopped.await;
                })
                .unwrap();
            tokio::spawn(tier);
            tokio::spawn(async move {
                root.serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
                let _ = tier_stop.send(());
            });
            (url, api, (created.token, created.ca_hash))
        });
        support::log_in(&api, dir);
        InProcessRoot {
            url,
            api,
            token,
            store,
            reports,
            runtime,
            stop: Some(stop),
        }
    }

    fn nodes(&self) -> Vec<NodeInfo> {
        self.runtime.block_on(async {
            let (nodes, _) = self
                .store
                .list_json::<NodeInfo>("/nodes/c0/")
                .await
                .unwrap();
            nodes.into_iter().map(|(_, n, _)| n).collect()
        })
    }

    fn reports(&self) -> Vec<Instant> {
        self.reports.lock().unwrap().clone()
    }
}

impl Drop for InProcessRoot {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[test]
fn three_hundred_joins_make_a_handful_of_membership_reports() {
    let dir = tempfile::tempdir().unwrap();
    let root = InProcessRoot::start(dir.path());
    let mut args = strings(&[
        "cluster",
        "--root",
        &root.url,
        "--data",
        &dir.path().join("c0").display().to_string(),
        "--name",
        "c0",
        "--listen",
        "127.0.0.1:0",
        "--token",
        &root.token.0,
        "--ca-hash",
        &root.token.1,
    ]);
    args.extend(fast_timing());
    let mut cluster = Daemon::start(&args, true);
    cluster.name = "c0".into();
    cluster.root_api = root.api.clone();
    eventually(
        Duration::from_secs(30),
        "the cluster's hello at the root",
        || (!root.reports().is_empty()).then_some(()),
    );
    // The hollow nodes join one by one first, then link together.
    let (token, ca_hash) = support::node_token_for(&cluster, None, Some(NODES));
    let before = root.reports().len();

    let _sim = Daemon::start(
        &strings(&[
            "sim",
            "--cluster",
            &cluster.url,
            "--nodes",
            &NODES.to_string(),
            "--data",
            &dir.path().join("hollow").display().to_string(),
            "--token",
            &token,
            "--ca-hash",
            &ca_hash,
        ]),
        false,
    );
    let started = Instant::now();
    eventually(
        Duration::from_secs(60),
        "300 ready nodes at the root",
        || {
            let nodes = root.nodes();
            (nodes.len() == NODES && nodes.iter().all(|n| n.state == MemberState::Ready))
                .then_some(())
        },
    );
    let joined_in = started.elapsed();
    // Complete, and it stays so: no node is lost or left out by a later report.
    holds_for(Duration::from_secs(1), "all 300 nodes listed", || {
        root.nodes().len() == NODES
    });
    let reports = root.reports();
    let during = reports.len() - before;
    println!("{NODES} joins in {joined_in:?} made {during} membership reports");
    assert!(during >= 1, "the root heard of no join");
    // One report per debounce period while nodes join, a couple more for the periodic
    // comparison (every 2 s) and the last joins; never more than MOST_REPORTS.
    let allowed = (joined_in.as_millis() / 250 + 3).min(MOST_REPORTS as u128) as usize;
    assert!(
        during <= allowed,
        "{NODES} joins in {joined_in:?} made {during} membership reports (at most {allowed} expected)"
    );
    // Reports triggered by joins are at least the debounce apart (the hello aside); allow
    // scheduling slack.
    let gaps: Vec<Duration> = reports[before..]
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(150)),
        "reports closer than the 250 ms debounce: {gaps:?}"
    );
}

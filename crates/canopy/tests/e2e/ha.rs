//! Several `canopy root` processes on one real etcd (3 members on loopback): they elect one
//! leader; when it is killed with SIGKILL another takes over within 5 s, and the state written
//! through any replica is still there.

#[path = "../../../store/tests/support/etcd.rs"]
mod etcd_cluster;
use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use canopy_store::{EtcdOptions, EtcdStore, Store};
use etcd_cluster::EtcdCluster;
use support::{Daemon, canopy_json, canopy_ok, eventually, examples, fast_timing, strings};

/// The roots' lease: a dead leader is replaced at most this long after its death, plus
/// the time etcd takes to notice (its lease checks run twice a second).
const LEADER_TTL: &str = "2";
const TAKEOVER: Duration = Duration::from_secs(5);

/// A root replica named `name` on `etcd`. Replicas share their first admin, whose password
/// only the first one's start wrote: the others get a copy, so that the test logs in to each.
fn start_replica(dir: &Path, name: &str, etcd: &EtcdCluster, first: Option<&Path>) -> Daemon {
    let data = dir.join(name);
    if let Some(first) = first {
        std::fs::create_dir_all(&data).unwrap();
        std::fs::copy(first.join("admin-password"), data.join("admin-password")).unwrap();
    }
    let mut args = strings(&[
        "root",
        "--listen",
        "127.0.0.1:0",
        "--tier-listen",
        "127.0.0.1:0",
        "--data",
        &data.display().to_string(),
        "--store",
        &etcd.url(),
        "--leader-ttl",
        LEADER_TTL,
        "--trusted-namespace",
        "default",
    ]);
    args.extend(fast_timing());
    Daemon::start(&args, true)
}

/// The API URL of the current leader, as the leader key in etcd names it.
fn leader(etcd: &EtcdCluster) -> Option<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = EtcdOptions::new(etcd.endpoints()).request_timeout(Duration::from_secs(2));
        let store = EtcdStore::connect(options).await.ok()?;
        let entry = store.get("/ha/leader").await.ok()??;
        String::from_utf8(entry.value).ok()
    })
}

fn application_names(root: &Daemon) -> Vec<String> {
    let mut names: Vec<String> = canopy_json(&root.url, &["get", "applications"])
        .iter()
        .filter_map(|app| app["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

fn write_app(dir: &Path, name: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: canopy.dev/v1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n  services:\n    - name: s\n      runtime: process\n      command: [/bin/sleep, '600']\n      resources: {{cpu: 10m, memory: 8Mi}}\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn a_killed_leader_root_is_replaced_within_5_s_and_the_state_stays() {
    let mut etcd = EtcdCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let first = start_replica(dir.path(), "a", &etcd, None);
    // Alone, the first replica wins.
    eventually(TAKEOVER, "replica a leading", || {
        (leader(&etcd).as_deref() == Some(first.url.as_str())).then_some(())
    });
    let mut roots = vec![
        first,
        start_replica(dir.path(), "b", &etcd, Some(&dir.path().join("a"))),
        start_replica(dir.path(), "c", &etcd, Some(&dir.path().join("a"))),
    ];

    // Writes through a follower land in the shared store; every replica reads them.
    let hello = examples().join("hello-process.yaml");
    canopy_ok(&roots[1].url, &["apply", "-f", hello.to_str().unwrap()]);
    for root in &roots {
        assert_eq!(
            application_names(root),
            ["hello"],
            "as {} sees it",
            root.url
        );
    }
    assert_eq!(leader(&etcd).as_deref(), Some(roots[0].url.as_str()));

    roots[0].kill();
    let killed = Instant::now();
    let next = eventually(TAKEOVER + Duration::from_secs(1), "a new leader", || {
        leader(&etcd).filter(|url| *url != roots[0].url)
    });
    let took = killed.elapsed();
    assert!(took < TAKEOVER, "a new leader after {took:?}");
    let next = roots
        .iter()
        .position(|r| r.url == next)
        .expect("the new leader is one of the surviving replicas");
    assert!(next > 0);

    // The state written before is still there, and a write after succeeds.
    assert_eq!(application_names(&roots[next]), ["hello"]);
    let second = write_app(dir.path(), "second");
    canopy_ok(&roots[next].url, &["apply", "-f", &second]);
    let other = 3 - next;
    assert_eq!(application_names(&roots[other]), ["hello", "second"]);

    // One etcd member of three dies: the replicas keep serving reads and writes.
    etcd.kill(2);
    let third = write_app(dir.path(), "third");
    eventually(
        Duration::from_secs(10),
        "a write with one etcd member dead",
        || {
            support::canopy(&roots[other].url, &["apply", "-f", &third])
                .status
                .success()
                .then_some(())
        },
    );
    assert_eq!(
        application_names(&roots[next]),
        ["hello", "second", "third"]
    );
    eprintln!("leader replaced after {took:?}");
}

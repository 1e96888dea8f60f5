//! Acknowledged writes survive a SIGKILL of the writing process.
//!
//! The test re-runs its own binary, filtered to itself, as the writer: with the environment
//! variable naming a store file, the same test function writes until it is killed instead of
//! checking. There is no separate helper test, so no pass is counted for a process that only
//! writes.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use canopy_store::{Durability, Op, Precondition, RedbStore, Store};

const CHILD_ENV: &str = "CANOPY_STORE_CRASH_CHILD";
const WRITERS: u64 = 4;
const ACKS_BEFORE_KILL: usize = 300;

fn value_for(writer: u64, i: u64) -> Vec<u8> {
    format!("{writer}:{i};")
        .repeat(1 + (i % 40) as usize)
        .into_bytes()
}

/// The child's part: writes until killed (or, if the parent is gone, for a bounded while).
fn run_writer(path: std::ffi::OsString) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Arc::new(RedbStore::open(path).unwrap());
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                // Bounded, in case the parent is gone and never kills us.
                for i in 0..100_000u64 {
                    let ops = vec![
                        Op::Put {
                            key: format!("/crash/{writer}/{i:06}"),
                            value: value_for(writer, i),
                            precondition: Precondition::Absent,
                        },
                        Op::Put {
                            key: format!("/counter/{writer}"),
                            value: i.to_string().into_bytes(),
                            precondition: Precondition::None,
                        },
                    ];
                    let revision = store.txn(ops).await.unwrap();
                    // One write per line; "END" marks a complete line.
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ACK {writer} {i} {revision} END").unwrap();
                    out.flush().unwrap();
                }
            }));
        }
        // Deferred writes interleave with the others: they may be lost, but must never cost
        // an acknowledged immediate write or leave the file unreadable.
        let deferred = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100_000u64 {
                let op = Op::Put {
                    key: format!("/deferred/{i:06}"),
                    value: value_for(99, i),
                    precondition: Precondition::None,
                };
                deferred
                    .txn_with(vec![op], Durability::Deferred)
                    .await
                    .unwrap();
            }
        }));
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        run_writer(path);
        // A child that finished its bounded run must not pass for one that was killed.
        panic!("writer child was not killed");
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(check_after_sigkill());
}

async fn check_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash::acknowledged_writes_survive_sigkill",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();

    let (acks, killed) = tokio::task::spawn_blocking(move || {
        let mut acks: Vec<(u64, u64, u64)> = Vec::new();
        let mut killed = false;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            let fields: Vec<&str> = line.split_whitespace().collect();
            if let ["ACK", writer, i, revision, "END"] = fields[..] {
                acks.push((
                    writer.parse().unwrap(),
                    i.parse().unwrap(),
                    revision.parse().unwrap(),
                ));
            }
            if !killed && acks.len() >= ACKS_BEFORE_KILL {
                // SIGKILL while the writers are busy; lines already in the pipe are still read
                // below, and those writes were acknowledged too.
                child.kill().unwrap();
                killed = true;
            }
        }
        let status = child.wait().unwrap();
        assert!(
            killed,
            "writer exited on its own ({status}) after {} acks",
            acks.len()
        );
        (acks, killed)
    })
    .await
    .unwrap();
    assert!(killed && acks.len() >= ACKS_BEFORE_KILL);
    eprintln!("checking {} acknowledged writes after SIGKILL", acks.len());

    let store = RedbStore::open(&path).unwrap();
    let mut newest: BTreeMap<u64, u64> = BTreeMap::new();
    let mut max_revision = 0;
    for &(writer, i, revision) in &acks {
        let entry = store
            .get(&format!("/crash/{writer}/{i:06}"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged write {writer}/{i} lost"));
        assert_eq!(entry.value, value_for(writer, i));
        assert_eq!(entry.mod_revision, revision);
        let n = newest.entry(writer).or_default();
        *n = (*n).max(i);
        max_revision = max_revision.max(revision);
    }
    for (writer, i) in newest {
        let counter = store
            .get(&format!("/counter/{writer}"))
            .await
            .unwrap()
            .unwrap();
        let counter: u64 = String::from_utf8(counter.value).unwrap().parse().unwrap();
        assert!(
            counter >= i,
            "counter {writer} went back from {i} to {counter}"
        );
    }
    assert!(store.revision().await.unwrap() >= max_revision);
    // The store is usable after the crash.
    let next = store
        .put("/after-crash", vec![1], Precondition::Absent)
        .await
        .unwrap();
    assert!(next > max_revision);
}

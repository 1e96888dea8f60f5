use std::sync::Arc;

use canopy_store::{Entry, Op, Precondition, RedbStore, Store, StoreError, StoreExt};
use serde::{Deserialize, Serialize};

use crate::{Backend, next_event};

fn put(key: &str, value: &[u8], precondition: Precondition) -> Op {
    Op::Put {
        key: key.into(),
        value: value.to_vec(),
        precondition,
    }
}

fn delete(key: &str, precondition: Precondition) -> Op {
    Op::Delete {
        key: key.into(),
        precondition,
    }
}

fn keys(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.key.as_str()).collect()
}

async fn revisions_versions_and_create_revision(backend: Backend) {
    let (_dir, store) = backend.open().await;
    assert_eq!(store.revision().await.unwrap(), 0);
    assert_eq!(store.get("/a").await.unwrap(), None);

    assert_eq!(
        store
            .put("/a", b"1".to_vec(), Precondition::None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.get("/a").await.unwrap().unwrap(),
        Entry {
            key: "/a".into(),
            value: b"1".to_vec(),
            create_revision: 1,
            mod_revision: 1,
            version: 1,
        }
    );
    assert_eq!(
        store
            .put("/b", b"x".to_vec(), Precondition::None)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .put("/a", b"2".to_vec(), Precondition::None)
            .await
            .unwrap(),
        3
    );
    let a = store.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (
            a.value.as_slice(),
            a.create_revision,
            a.mod_revision,
            a.version
        ),
        (&b"2"[..], 1, 3, 2)
    );

    assert_eq!(
        store.delete("/a", Precondition::None).await.unwrap(),
        Some(4)
    );
    assert_eq!(store.get("/a").await.unwrap(), None);
    // Re-creating starts a new life: new create_revision, version back to 1.
    assert_eq!(
        store
            .put("/a", b"3".to_vec(), Precondition::None)
            .await
            .unwrap(),
        5
    );
    let a = store.get("/a").await.unwrap().unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (5, 5, 1));
    assert_eq!(store.revision().await.unwrap(), 5);

    // Deleting an absent key changes nothing, not even the revision.
    assert_eq!(
        store.delete("/nope", Precondition::None).await.unwrap(),
        None
    );
    assert_eq!(store.revision().await.unwrap(), 5);
}

async fn list_is_a_plain_string_prefix_in_key_order(backend: Backend) {
    let (_dir, store) = backend.open().await;
    for key in [
        "/apps/b",
        "/apps/ab",
        "/apps/a/x",
        "/apps/a",
        "/app",
        "/apps",
        "/z",
        "/apps/a0",
    ] {
        store
            .put(key, key.as_bytes().to_vec(), Precondition::None)
            .await
            .unwrap();
    }
    let (entries, revision) = store.list("/apps/a").await.unwrap();
    assert_eq!(
        keys(&entries),
        ["/apps/a", "/apps/a/x", "/apps/a0", "/apps/ab"]
    );
    assert_eq!(revision, 8);
    assert!(entries.iter().all(|e| e.value == e.key.as_bytes()));

    let (entries, _) = store.list("/apps/a/").await.unwrap();
    assert_eq!(keys(&entries), ["/apps/a/x"]);
    let (entries, _) = store.list("/apps/").await.unwrap();
    assert_eq!(
        keys(&entries),
        ["/apps/a", "/apps/a/x", "/apps/a0", "/apps/ab", "/apps/b"]
    );
    let (entries, _) = store.list("").await.unwrap();
    assert_eq!(entries.len(), 8);
    let (entries, revision) = store.list("/nothing/").await.unwrap();
    assert!(entries.is_empty());
    assert_eq!(revision, 8);

    store.delete("/apps/a0", Precondition::None).await.unwrap();
    let (entries, revision) = store.list("/apps/a").await.unwrap();
    assert_eq!(keys(&entries), ["/apps/a", "/apps/a/x", "/apps/ab"]);
    assert_eq!(revision, 9);
}

async fn compare_and_swap(backend: Backend) {
    let (_dir, store) = backend.open().await;
    let r1 = store
        .put("/k", b"1".to_vec(), Precondition::Absent)
        .await
        .unwrap();

    let err = store
        .put("/k", b"x".to_vec(), Precondition::Absent)
        .await
        .unwrap_err();
    match &err {
        StoreError::Conflict {
            key,
            expected,
            found,
        } => {
            assert_eq!(key, "/k");
            assert_eq!(*expected, Precondition::Absent);
            assert_eq!(*found, Some(r1));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "conflict on key \"/k\": expected absent, found mod_revision 1"
    );

    let r2 = store
        .put("/k", b"2".to_vec(), Precondition::ModRevision(r1))
        .await
        .unwrap();
    assert!(r2 > r1);
    // The old revision is stale now.
    let err = store
        .put("/k", b"3".to_vec(), Precondition::ModRevision(r1))
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert_eq!(store.get("/k").await.unwrap().unwrap().value, b"2");

    let err = store
        .put("/other", b"x".to_vec(), Precondition::ModRevision(r2))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { found: None, .. }));
    assert_eq!(store.get("/other").await.unwrap(), None);

    let err = store
        .delete("/k", Precondition::ModRevision(r1))
        .await
        .unwrap_err();
    assert!(err.is_conflict());
    assert!(store.get("/k").await.unwrap().is_some());
    assert!(
        store
            .delete("/k", Precondition::Absent)
            .await
            .unwrap_err()
            .is_conflict()
    );
    assert_eq!(
        store
            .delete("/k", Precondition::ModRevision(r2))
            .await
            .unwrap(),
        Some(r2 + 1)
    );
    assert_eq!(
        store.delete("/k", Precondition::Absent).await.unwrap(),
        None
    );
    assert!(
        store
            .delete("/k", Precondition::ModRevision(r2))
            .await
            .unwrap_err()
            .is_conflict()
    );
    // Failed writes do not bump the revision.
    assert_eq!(store.revision().await.unwrap(), r2 + 1);
}

async fn txn_is_all_or_nothing_with_one_revision(backend: Backend) {
    let (_dir, store) = backend.open().await;
    store
        .put("/y", b"y".to_vec(), Precondition::None)
        .await
        .unwrap();
    store
        .put("/gone", b"g".to_vec(), Precondition::None)
        .await
        .unwrap();
    let before = store.revision().await.unwrap();

    // The failing precondition is last: the earlier ops must not have been written.
    let err = store
        .txn(vec![
            put("/x", b"x", Precondition::None),
            delete("/gone", Precondition::None),
            put("/y", b"y2", Precondition::Absent),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { key, .. } if key == "/y"),
        "{err:?}"
    );
    assert_eq!(store.get("/x").await.unwrap(), None);
    assert!(store.get("/gone").await.unwrap().is_some());
    assert_eq!(store.get("/y").await.unwrap().unwrap().value, b"y");
    assert_eq!(store.revision().await.unwrap(), before);

    let mut watch = store.watch("", before).await.unwrap();
    let y_rev = store.get("/y").await.unwrap().unwrap().mod_revision;
    let rev = store
        .txn(vec![
            put("/x", b"x", Precondition::Absent),
            delete("/gone", Precondition::None),
            delete("/never", Precondition::None),
            put("/y", b"y2", Precondition::ModRevision(y_rev)),
        ])
        .await
        .unwrap();
    assert_eq!(rev, before + 1);
    assert_eq!(store.get("/x").await.unwrap().unwrap().mod_revision, rev);
    assert_eq!(store.get("/y").await.unwrap().unwrap().mod_revision, rev);
    assert_eq!(store.get("/y").await.unwrap().unwrap().version, 2);
    assert_eq!(store.get("/gone").await.unwrap(), None);

    // One event per effective op, in op order, all with the txn's revision.
    let events = [
        next_event(&mut watch).await,
        next_event(&mut watch).await,
        next_event(&mut watch).await,
    ];
    let seen: Vec<(&str, u64)> = events.iter().map(|e| (e.key(), e.revision())).collect();
    assert_eq!(seen, [("/x", rev), ("/gone", rev), ("/y", rev)]);
    crate::assert_drained(&store, &mut watch, "/sentinel").await;
}

async fn invalid_requests_are_rejected_before_writing(backend: Backend) {
    let (_dir, store) = backend.open().await;
    let err = store
        .txn(vec![
            put("/a", b"1", Precondition::None),
            delete("/a", Precondition::None),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err:?}");
    let err = store
        .put("", b"1".to_vec(), Precondition::None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument(_)), "{err:?}");
    assert_eq!(store.revision().await.unwrap(), 0);
    assert_eq!(store.get("/a").await.unwrap(), None);

    // An empty txn changes nothing and answers the current revision.
    assert_eq!(store.txn(vec![]).await.unwrap(), 0);
    store
        .put("/a", b"1".to_vec(), Precondition::None)
        .await
        .unwrap();
    assert_eq!(
        store
            .txn(vec![delete("/absent", Precondition::None)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.revision().await.unwrap(), 1);
}

#[tokio::test]
async fn reopen_keeps_entries_revision_and_history() {
    let dir = tempfile::tempdir().unwrap();
    // Parent directories are created on open.
    let path = dir.path().join("nested/deeper/store.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        store
            .put("/a", b"1".to_vec(), Precondition::None)
            .await
            .unwrap();
        store
            .put("/a", b"2".to_vec(), Precondition::None)
            .await
            .unwrap();
        store
            .put("/b", b"b".to_vec(), Precondition::None)
            .await
            .unwrap();
        store.delete("/b", Precondition::None).await.unwrap();
        store
            .txn(vec![
                put("/c", b"c", Precondition::None),
                put("/d", b"d", Precondition::None),
            ])
            .await
            .unwrap();
        assert_eq!(store.revision().await.unwrap(), 5);
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.revision().await.unwrap(), 5);
    let a = store.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (
            a.value.as_slice(),
            a.create_revision,
            a.mod_revision,
            a.version
        ),
        (&b"2"[..], 1, 2, 2)
    );
    assert_eq!(store.get("/b").await.unwrap(), None);
    let (entries, revision) = store.list("/").await.unwrap();
    assert_eq!(keys(&entries), ["/a", "/c", "/d"]);
    assert_eq!(revision, 5);

    assert_eq!(
        store
            .put("/e", b"e".to_vec(), Precondition::None)
            .await
            .unwrap(),
        6
    );
    // The watch history survives too.
    let mut watch = store.watch("/", 3).await.unwrap();
    let got: Vec<(String, u64)> = [
        next_event(&mut watch).await,
        next_event(&mut watch).await,
        next_event(&mut watch).await,
        next_event(&mut watch).await,
    ]
    .iter()
    .map(|e| (e.key().to_owned(), e.revision()))
    .collect();
    assert_eq!(
        got,
        [
            ("/b".to_owned(), 4),
            ("/c".to_owned(), 5),
            ("/d".to_owned(), 5),
            ("/e".to_owned(), 6)
        ]
    );
}

async fn concurrent_writers_get_distinct_consecutive_revisions(backend: Backend) {
    let (_dir, store) = backend.open().await;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for task in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for i in 0..20 {
                let key = format!("/t/{task}/{i}");
                revisions.push(
                    store
                        .put(&key, vec![task as u8], Precondition::Absent)
                        .await
                        .unwrap(),
                );
            }
            revisions
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let revisions = task.await.unwrap();
        assert!(revisions.windows(2).all(|w| w[0] < w[1]));
        all.extend(revisions);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=320).collect::<Vec<u64>>());
    assert_eq!(store.revision().await.unwrap(), 320);
    assert_eq!(store.list("/t/").await.unwrap().0.len(), 320);
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct App {
    name: String,
    replicas: u32,
}

async fn json_helpers_work_through_dyn_store(backend: Backend) {
    let (_dir, store) = backend.open().await;
    let store: Arc<dyn Store> = Arc::new(store);
    let app = App {
        name: "web".into(),
        replicas: 3,
    };
    let r1 = store
        .put_json("/apps/web", &app, Precondition::Absent)
        .await
        .unwrap();
    let (got, revision) = store.get_json::<App>("/apps/web").await.unwrap().unwrap();
    assert_eq!((got, revision), (app, r1));
    assert!(store.get_json::<App>("/apps/none").await.unwrap().is_none());

    let by_ref: &dyn Store = store.as_ref();
    let db = App {
        name: "db".into(),
        replicas: 1,
    };
    let r2 = by_ref
        .put_json("/apps/db", &db, Precondition::None)
        .await
        .unwrap();
    let (items, revision) = by_ref.list_json::<App>("/apps/").await.unwrap();
    assert_eq!(revision, r2);
    assert_eq!(
        items
            .iter()
            .map(|(k, v, r)| (k.as_str(), v.name.as_str(), *r))
            .collect::<Vec<_>>(),
        [("/apps/db", "db", r2), ("/apps/web", "web", r1)]
    );

    // Works where a generic `S: Store` is wanted, and across tasks.
    fn takes_store<S: Store>(s: S) -> S {
        s
    }
    let store = takes_store(store);
    let handle = tokio::spawn({
        let store = store.clone();
        async move { store.get_json::<App>("/apps/db").await }
    });
    assert_eq!(handle.await.unwrap().unwrap().unwrap().1, r2);

    store
        .put("/apps/bad", b"not json".to_vec(), Precondition::None)
        .await
        .unwrap();
    let err = store.get_json::<App>("/apps/bad").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Codec { key, .. } if key == "/apps/bad"),
        "{err:?}"
    );
    assert!(matches!(
        store.list_json::<App>("/apps/").await,
        Err(StoreError::Codec { .. })
    ));
}

#[tokio::test]
async fn deferred_writes_are_seen_at_once_and_kept_across_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deferred.redb");
    {
        let store = RedbStore::open(&path).unwrap();
        let mut watch = store.watch("/d/", 0).await.unwrap();
        let revision = store
            .txn_with(
                vec![put("/d/a", b"1", Precondition::Absent)],
                canopy_store::Durability::Deferred,
            )
            .await
            .unwrap();
        assert_eq!(store.get("/d/a").await.unwrap().unwrap().value, b"1");
        assert_eq!(next_event(&mut watch).await.revision(), revision);
        // Compare-and-swap sees the deferred write like any other.
        let conflict = store
            .txn(vec![put("/d/a", b"2", Precondition::Absent)])
            .await;
        assert!(conflict.unwrap_err().is_conflict());
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.get("/d/a").await.unwrap().unwrap().value, b"1");
}

crate::conformance!(
    revisions_versions_and_create_revision,
    list_is_a_plain_string_prefix_in_key_order,
    compare_and_swap,
    txn_is_all_or_nothing_with_one_revision,
    invalid_requests_are_rejected_before_writing,
    concurrent_writers_get_distinct_consecutive_revisions,
    json_helpers_work_through_dyn_store,
);

use std::sync::Arc;

use canopy_store::{Op, Precondition, RedbOptions, Store, StoreError, WatchEvent};

use crate::{
    Backend, assert_all_drained, assert_drained, next_event, next_item, temp_store, temp_store_with,
};

async fn put(store: &impl Store, key: &str, value: &str) -> u64 {
    store
        .put(key, value.as_bytes().to_vec(), Precondition::None)
        .await
        .unwrap()
}

async fn replays_history_then_follows_live_writes(backend: Backend) {
    let (_dir, store) = backend.open().await;
    for i in 1..=5 {
        put(&store, &format!("/k/{i}"), "v").await;
    }
    let mut watch = store.watch("/k/", 2).await.unwrap();
    for expected in 3..=5 {
        let event = next_event(&mut watch).await;
        assert_eq!(event.revision(), expected);
        assert_eq!(event.key(), format!("/k/{expected}"));
    }
    let r = put(&store, "/k/1", "updated").await;
    match next_event(&mut watch).await {
        WatchEvent::Put { entry } => {
            assert_eq!(
                (entry.key.as_str(), entry.value.as_slice()),
                ("/k/1", &b"updated"[..])
            );
            assert_eq!(
                (entry.create_revision, entry.mod_revision, entry.version),
                (1, r, 2)
            );
        }
        other => panic!("{other:?}"),
    }
    let r = store
        .delete("/k/2", Precondition::None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        next_event(&mut watch).await,
        WatchEvent::Delete {
            key: "/k/2".into(),
            revision: r
        }
    );
    assert_drained(&store, &mut watch, "/k/sentinel").await;
}

/// Watchers start while a writer is busy: each must see exactly the revisions after its start,
/// across the history/live boundary, once each and in order.
async fn no_gap_while_writing(store: Arc<dyn Store>) {
    const WRITES: u64 = 300;
    let writer = tokio::spawn({
        let store = store.clone();
        async move {
            for i in 1..=WRITES {
                put(&store, &format!("/w/{i}"), "v").await;
            }
        }
    });
    let mut watchers = Vec::new();
    while watchers.len() < 12 {
        let after = store
            .revision()
            .await
            .unwrap()
            .saturating_sub(watchers.len() as u64 % 3);
        watchers.push((after, store.watch("/w/", after).await.unwrap()));
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    for (after, watch) in &mut watchers {
        for expected in *after + 1..=WRITES {
            let event = next_event(watch).await;
            assert_eq!(event.revision(), expected, "watcher from {after}");
            assert_eq!(event.key(), format!("/w/{expected}"));
        }
    }
    let mut streams: Vec<_> = watchers.iter_mut().map(|(_, w)| w).collect();
    assert_all_drained(&store, &mut streams, &["/w/sentinel"]).await;
}

async fn no_gap_or_duplicate_between_history_and_live(backend: Backend) {
    let (_dir, store) = backend.open().await;
    no_gap_while_writing(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_gap_when_watchers_lag_behind_the_broadcast() {
    // A tiny broadcast buffer and small history pages force the re-read path constantly.
    let (_dir, store) =
        temp_store_with(RedbOptions::default().broadcast_capacity(1).page_events(7));
    no_gap_while_writing(Arc::new(store)).await;
}

#[tokio::test]
async fn lagging_watcher_recovers_from_the_log() {
    let (_dir, store) =
        temp_store_with(RedbOptions::default().broadcast_capacity(2).page_events(5));
    let mut watch = store.watch("", 0).await.unwrap();
    // Not polled while 50 revisions are published: it lags far behind the buffer.
    for i in 1..=50u64 {
        if i % 10 == 0 {
            let ops = (0..3)
                .map(|j| Op::Put {
                    key: format!("/txn/{i}/{j}"),
                    value: vec![],
                    precondition: Precondition::None,
                })
                .collect();
            store.txn(ops).await.unwrap();
        } else {
            put(&store, &format!("/p/{i}"), "v").await;
        }
    }
    let mut seen = Vec::new();
    for _ in 0..(45 + 5 * 3) {
        let event = next_event(&mut watch).await;
        seen.push((event.revision(), event.key().to_owned()));
    }
    let mut expected = Vec::new();
    for i in 1..=50u64 {
        if i % 10 == 0 {
            expected.extend((0..3).map(|j| (i, format!("/txn/{i}/{j}"))));
        } else {
            expected.push((i, format!("/p/{i}")));
        }
    }
    assert_eq!(seen, expected);
    assert_drained(&store, &mut watch, "/sentinel").await;
}

#[tokio::test]
async fn history_older_than_retained_is_compacted() {
    let (_dir, store) = temp_store_with(RedbOptions::default().history_limit(5));
    for i in 1..=20 {
        put(&store, &format!("/c/{i}"), "v").await;
    }
    for after in [0, 10, 14] {
        match store.watch("/c/", after).await {
            Err(StoreError::Compacted { requested, oldest }) => {
                assert_eq!((requested, oldest), (after, 15))
            }
            Err(other) => panic!("expected Compacted, got {other:?}"),
            Ok(_) => panic!("expected Compacted for {after}"),
        }
    }
    let mut watch = store.watch("/c/", 15).await.unwrap();
    for expected in 16..=20 {
        assert_eq!(next_event(&mut watch).await.revision(), expected);
    }
    assert_drained(&store, &mut watch, "/c/sentinel").await;

    // A txn is compacted as a whole, never cut in half.
    let ops = (0..4)
        .map(|j| Op::Put {
            key: format!("/t/{j}"),
            value: vec![],
            precondition: Precondition::None,
        })
        .collect();
    let txn_rev = store.txn(ops).await.unwrap();
    put(&store, "/c/after", "v").await;
    put(&store, "/c/after", "v").await;
    // 5 events retained at most: the txn's 4 events do not fit beside 2 more.
    assert!(
        store
            .watch("", txn_rev - 1)
            .await
            .err()
            .is_some_and(|e| e.is_compacted())
    );
    let mut watch = store.watch("", txn_rev).await.unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), txn_rev + 1);
}

#[tokio::test]
async fn huge_txn_keeps_the_newest_revision_whole() {
    let (_dir, store) = temp_store_with(RedbOptions::default().history_limit(2));
    put(&store, "/a", "v").await;
    let ops = (0..10)
        .map(|j| Op::Put {
            key: format!("/t/{j:02}"),
            value: vec![],
            precondition: Precondition::None,
        })
        .collect();
    let rev = store.txn(ops).await.unwrap();
    let mut watch = store.watch("/t/", rev - 1).await.unwrap();
    for j in 0..10 {
        let event = next_event(&mut watch).await;
        assert_eq!(
            (event.key(), event.revision()),
            (format!("/t/{j:02}").as_str(), rev)
        );
    }
}

#[tokio::test]
async fn watcher_that_falls_behind_compaction_ends_with_compacted() {
    let (_dir, store) = temp_store_with(
        RedbOptions::default()
            .history_limit(5)
            .broadcast_capacity(1),
    );
    let mut watch = store.watch("", 0).await.unwrap();
    for i in 1..=20 {
        put(&store, &format!("/k/{i}"), "v").await;
    }
    match next_item(&mut watch).await {
        Some(Err(StoreError::Compacted {
            requested: 0,
            oldest: 15,
        })) => {}
        other => panic!("expected Compacted, got {other:?}"),
    }
    assert!(next_item(&mut watch).await.is_none());
}

async fn watchers_filter_by_prefix_independently(backend: Backend) {
    let (_dir, store) = backend.open().await;
    let mut apps = store.watch("/apps/", 0).await.unwrap();
    let mut apps_a = store.watch("/apps/a", 0).await.unwrap();
    let mut nodes = store.watch("/nodes/", 0).await.unwrap();
    let mut all = store.watch("", 0).await.unwrap();

    let r1 = put(&store, "/apps/a", "1").await;
    let r2 = put(&store, "/nodes/n1", "1").await;
    let r3 = put(&store, "/apps/ab", "1").await;
    let r4 = put(&store, "/apps/b", "1").await;
    let r5 = store
        .txn(vec![
            Op::Delete {
                key: "/apps/a".into(),
                precondition: Precondition::None,
            },
            Op::Put {
                key: "/nodes/n2".into(),
                value: vec![],
                precondition: Precondition::Absent,
            },
        ])
        .await
        .unwrap();

    let collect = |n: usize, stream: &mut canopy_store::WatchStream| {
        let mut stream = std::mem::replace(stream, Box::pin(futures::stream::empty()));
        async move {
            let mut got = Vec::new();
            for _ in 0..n {
                let e = next_event(&mut stream).await;
                got.push((e.key().to_owned(), e.revision()));
            }
            (got, stream)
        }
    };
    let s = |k: &str, r: u64| (k.to_owned(), r);
    let (got, mut apps) = collect(4, &mut apps).await;
    assert_eq!(
        got,
        [
            s("/apps/a", r1),
            s("/apps/ab", r3),
            s("/apps/b", r4),
            s("/apps/a", r5)
        ]
    );
    let (got, mut apps_a) = collect(3, &mut apps_a).await;
    assert_eq!(got, [s("/apps/a", r1), s("/apps/ab", r3), s("/apps/a", r5)]);
    let (got, mut nodes) = collect(2, &mut nodes).await;
    assert_eq!(got, [s("/nodes/n1", r2), s("/nodes/n2", r5)]);
    let (got, mut all) = collect(6, &mut all).await;
    assert_eq!(got.len(), 6);
    assert!(got.windows(2).all(|w| w[0].1 <= w[1].1));

    assert_all_drained(
        &store,
        &mut [&mut apps, &mut apps_a, &mut nodes, &mut all],
        &["/apps/az", "/nodes/z"],
    )
    .await;
}

async fn watch_after_a_future_revision_skips_until_then(backend: Backend) {
    let (_dir, store) = backend.open().await;
    put(&store, "/a", "1").await;
    let mut watch = store.watch("", 3).await.unwrap();
    put(&store, "/a", "2").await;
    put(&store, "/a", "3").await;
    let r = put(&store, "/a", "4").await;
    assert_eq!(r, 4);
    assert_eq!(next_event(&mut watch).await.revision(), 4);
}

#[tokio::test]
async fn watch_ends_with_closed_when_the_store_is_dropped() {
    let (_dir, store) = temp_store();
    let mut watch = store.watch("", 0).await.unwrap();
    put(&store, "/a", "1").await;
    drop(store);
    assert_eq!(next_event(&mut watch).await.key(), "/a");
    assert!(matches!(
        next_item(&mut watch).await,
        Some(Err(StoreError::Closed))
    ));
    assert!(next_item(&mut watch).await.is_none());
}

crate::conformance!(
    replays_history_then_follows_live_writes,
    no_gap_or_duplicate_between_history_and_live,
    watchers_filter_by_prefix_independently,
    watch_after_a_future_revision_skips_until_then,
);

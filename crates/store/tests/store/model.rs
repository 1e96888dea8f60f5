//! The store against a plain BTreeMap model: same answers, same state, same watch events.

use std::collections::BTreeMap;

use canopy_store::{Entry, Op, Precondition, Revision, Store, StoreError, WatchEvent};
use proptest::prelude::*;

use crate::{Backend, assert_all_drained, next_event};

const KEYS: [&str; 5] = ["/a", "/a/b", "/ab", "/b", "/b/c"];

/// A precondition, resolved against the model's state when the op runs.
#[derive(Debug, Clone)]
enum Pre {
    None,
    Absent,
    /// The key's current mod_revision (a conflict if absent).
    Current,
    Fixed(Revision),
}

#[derive(Debug, Clone)]
enum Step {
    Put(usize, Vec<u8>, Pre),
    Delete(usize, Pre),
    Txn(Vec<(bool, usize, Vec<u8>, Pre)>),
}

fn pre() -> impl Strategy<Value = Pre> {
    prop_oneof![
        3 => Just(Pre::None),
        2 => Just(Pre::Absent),
        3 => Just(Pre::Current),
        1 => (0u64..12).prop_map(Pre::Fixed),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let key = 0..KEYS.len();
    let value = proptest::collection::vec(any::<u8>(), 0..8);
    prop_oneof![
        4 => (key.clone(), value.clone(), pre()).prop_map(|(k, v, p)| Step::Put(k, v, p)),
        2 => (key.clone(), pre()).prop_map(|(k, p)| Step::Delete(k, p)),
        2 => proptest::collection::vec((any::<bool>(), key, value, pre()), 0..4).prop_map(Step::Txn),
    ]
}

/// What a request answered, comparable between model and store.
#[derive(Debug, PartialEq)]
enum Answer {
    Revision(Revision),
    Deleted(Option<Revision>),
    Conflict(String, Precondition, Option<Revision>),
    Invalid,
    Other(String),
}

fn answer(result: Result<Answer, StoreError>) -> Answer {
    match result {
        Ok(a) => a,
        Err(StoreError::Conflict {
            key,
            expected,
            found,
        }) => Answer::Conflict(key, expected, found),
        Err(StoreError::InvalidArgument(_)) => Answer::Invalid,
        Err(e) => Answer::Other(e.to_string()),
    }
}

#[derive(Default)]
struct Model {
    entries: BTreeMap<String, Entry>,
    revision: Revision,
    events: Vec<WatchEvent>,
}

impl Model {
    fn resolve(&self, key: &str, pre: &Pre) -> Precondition {
        match pre {
            Pre::None => Precondition::None,
            Pre::Absent => Precondition::Absent,
            Pre::Current => {
                Precondition::ModRevision(self.entries.get(key).map_or(999, |e| e.mod_revision))
            }
            Pre::Fixed(r) => Precondition::ModRevision(*r),
        }
    }

    /// Ok(Some(rev)) if something changed, Ok(None) if nothing did.
    fn apply(&mut self, ops: &[Op]) -> Result<Option<Revision>, Answer> {
        let mut seen = std::collections::BTreeSet::new();
        if ops.iter().any(|op| !seen.insert(op.key())) {
            return Err(Answer::Invalid);
        }
        for op in ops {
            let found = self.entries.get(op.key()).map(|e| e.mod_revision);
            let ok = match op.precondition() {
                Precondition::None => true,
                Precondition::Absent => found.is_none(),
                Precondition::ModRevision(r) => found == Some(r),
            };
            if !ok {
                return Err(Answer::Conflict(
                    op.key().to_owned(),
                    op.precondition(),
                    found,
                ));
            }
        }
        let revision = self.revision + 1;
        let mut changed = false;
        for op in ops {
            match op {
                Op::Put { key, value, .. } => {
                    let entry = match self.entries.get(key) {
                        Some(old) => Entry {
                            value: value.clone(),
                            mod_revision: revision,
                            version: old.version + 1,
                            ..old.clone()
                        },
                        None => Entry {
                            key: key.clone(),
                            value: value.clone(),
                            create_revision: revision,
                            mod_revision: revision,
                            version: 1,
                        },
                    };
                    self.entries.insert(key.clone(), entry.clone());
                    self.events.push(WatchEvent::Put { entry });
                    changed = true;
                }
                Op::Delete { key, .. } => {
                    if self.entries.remove(key).is_some() {
                        self.events.push(WatchEvent::Delete {
                            key: key.clone(),
                            revision,
                        });
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.revision = revision;
            Ok(Some(revision))
        } else {
            Ok(None)
        }
    }
}

async fn run(backend: Backend, steps: Vec<Step>, watch_from: f64) -> Result<(), TestCaseError> {
    let (_guard, store) = backend.open().await;
    let mut model = Model::default();
    // Opened before any write: sees everything live.
    let mut live = store.watch("", 0).await.unwrap();

    for step in steps {
        let (expected, got) = match step {
            Step::Put(k, value, pre) => {
                let key = KEYS[k];
                let precondition = model.resolve(key, &pre);
                let expected = match model.apply(&[Op::Put {
                    key: key.into(),
                    value: value.clone(),
                    precondition,
                }]) {
                    Ok(r) => Answer::Revision(r.expect("a put always changes")),
                    Err(a) => a,
                };
                (
                    expected,
                    answer(
                        store
                            .put(key, value, precondition)
                            .await
                            .map(Answer::Revision),
                    ),
                )
            }
            Step::Delete(k, pre) => {
                let key = KEYS[k];
                let precondition = model.resolve(key, &pre);
                let expected = match model.apply(&[Op::Delete {
                    key: key.into(),
                    precondition,
                }]) {
                    Ok(r) => Answer::Deleted(r),
                    Err(a) => a,
                };
                (
                    expected,
                    answer(store.delete(key, precondition).await.map(Answer::Deleted)),
                )
            }
            Step::Txn(parts) => {
                let ops: Vec<Op> = parts
                    .iter()
                    .map(|(is_put, k, value, pre)| {
                        let key = KEYS[*k].to_owned();
                        let precondition = model.resolve(&key, pre);
                        if *is_put {
                            Op::Put {
                                key,
                                value: value.clone(),
                                precondition,
                            }
                        } else {
                            Op::Delete { key, precondition }
                        }
                    })
                    .collect();
                let current = model.revision;
                let expected = match model.apply(&ops) {
                    Ok(r) => Answer::Revision(r.unwrap_or(current)),
                    Err(a) => a,
                };
                (expected, answer(store.txn(ops).await.map(Answer::Revision)))
            }
        };
        prop_assert_eq!(expected, got);
    }

    let (entries, revision) = store.list("").await.unwrap();
    prop_assert_eq!(revision, model.revision);
    prop_assert_eq!(store.revision().await.unwrap(), model.revision);
    prop_assert_eq!(entries, model.entries.values().cloned().collect::<Vec<_>>());
    for key in KEYS {
        prop_assert_eq!(
            store.get(key).await.unwrap(),
            model.entries.get(key).cloned()
        );
    }

    for event in &model.events {
        prop_assert_eq!(&next_event(&mut live).await, event);
    }

    // Replay from a point in the history, on the whole space and on prefixes.
    let after = (model.revision as f64 * watch_from) as Revision;
    let prefixes = ["", "/a", "/b/"];
    let mut replays = Vec::new();
    for prefix in prefixes {
        let mut watch = store.watch(prefix, after).await.unwrap();
        for event in model
            .events
            .iter()
            .filter(|e| e.revision() > after && e.key().starts_with(prefix))
        {
            prop_assert_eq!(&next_event(&mut watch).await, event);
        }
        replays.push(watch);
    }
    let mut streams: Vec<&mut canopy_store::WatchStream> = replays.iter_mut().collect();
    streams.push(&mut live);
    assert_all_drained(&store, &mut streams, &["/a-sentinel", "/b/sentinel"]).await;
    Ok(())
}

fn run_on(backend: Backend, steps: Vec<Step>, watch_from: f64) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(backend, steps, watch_from))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn redb_store_matches_model(steps in proptest::collection::vec(step(), 0..40), watch_from in 0.0f64..=1.0) {
        run_on(Backend::Redb, steps, watch_from)?;
    }
}

proptest! {
    // A fresh etcd process per case: fewer cases, the same generator.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn etcd_store_matches_model(steps in proptest::collection::vec(step(), 0..40), watch_from in 0.0f64..=1.0) {
        run_on(Backend::Etcd, steps, watch_from)?;
    }
}

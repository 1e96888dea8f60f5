//! The prestart hooks the agent runs around a runtime (the network today): which hooks a
//! runtime gets follows from its capabilities; they run in order before `start` and are
//! released in reverse after `remove` (or after a failed start).

use crate::Agent;
use canopy_model::RuntimeKind;
use canopy_runtime::{InstanceSpec, Prepared, Prestart, Runtime, RuntimeError, Started};
use std::collections::BTreeMap;
use std::sync::Arc;

pub(crate) type Hooks = BTreeMap<RuntimeKind, Vec<Arc<dyn Prestart>>>;

/// For each runtime, the hooks it wants, in the order given.
pub(crate) fn hooks_for(
    runtimes: &BTreeMap<RuntimeKind, Arc<dyn Runtime>>,
    hooks: &[Arc<dyn Prestart>],
) -> Hooks {
    runtimes
        .iter()
        .map(|(kind, runtime)| {
            let caps = runtime.capabilities();
            let wanted = hooks.iter().filter(|h| h.wanted_by(&caps)).cloned();
            (*kind, wanted.collect())
        })
        .filter(|(_, hooks): &(RuntimeKind, Vec<_>)| !hooks.is_empty())
        .collect()
}

async fn release_all(hooks: &[Arc<dyn Prestart>], id: &str) {
    for hook in hooks.iter().rev() {
        if let Err(e) = hook.release(id).await {
            tracing::warn!(instance = id, hook = hook.name(), error = %e, "prestart release failed");
        }
    }
}

impl Agent {
    pub(crate) fn hooks(&self, kind: RuntimeKind) -> &[Arc<dyn Prestart>] {
        self.prestart.get(&kind).map_or(&[], Vec::as_slice)
    }

    /// Runs the runtime's hooks, then starts the instance with what they prepared (which it
    /// returns too: the instance's address and ports).
    pub(crate) async fn start_prepared(
        &self,
        runtime: &dyn Runtime,
        spec: &InstanceSpec,
    ) -> Result<(Started, Prepared), RuntimeError> {
        start_with(self.hooks(runtime.kind()), runtime, spec).await
    }

    /// Frees what the hooks of `kind` hold for `id` (after the runtime removed it).
    pub(crate) async fn release_prepared(&self, kind: RuntimeKind, id: &str) {
        release_all(self.hooks(kind), id).await;
    }
}

/// Runs `hooks` in order, then starts the instance with what they prepared; a failure of
/// either frees what the hooks made and is the start's error.
async fn start_with(
    hooks: &[Arc<dyn Prestart>],
    runtime: &dyn Runtime,
    spec: &InstanceSpec,
) -> Result<(Started, Prepared), RuntimeError> {
    if hooks.is_empty() {
        return Ok((runtime.start(spec).await?, Prepared::default()));
    }
    let mut prepared = Prepared::default();
    for (i, hook) in hooks.iter().enumerate() {
        if let Err(e) = hook.prepare(spec, &mut prepared).await {
            release_all(&hooks[..=i], &spec.id).await;
            return Err(e);
        }
    }
    let spec = InstanceSpec {
        prepared,
        ..spec.clone()
    };
    match runtime.start(&spec).await {
        Ok(started) => Ok((started, spec.prepared)),
        Err(e) => {
            release_all(hooks, &spec.id).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use canopy_runtime::{Capabilities, Exit, PreparedNetwork, Recovered, RuntimeError, Stats};
    use std::sync::Mutex;
    use std::time::Duration;

    type Log = Arc<Mutex<Vec<String>>>;

    fn push(log: &Log, entry: String) {
        log.lock().unwrap().push(entry);
    }

    struct Hook {
        name: &'static str,
        fail: bool,
        log: Log,
    }

    #[async_trait]
    impl Prestart for Hook {
        fn name(&self) -> &str {
            self.name
        }
        fn wanted_by(&self, caps: &Capabilities) -> bool {
            caps.netns
        }
        async fn prepare(&self, _: &InstanceSpec, p: &mut Prepared) -> Result<(), RuntimeError> {
            push(&self.log, format!("prepare {}", self.name));
            if self.fail {
                return Err(RuntimeError::Image {
                    image: "img".into(),
                    reason: "registry X unreachable".into(),
                });
            }
            p.network = Some(PreparedNetwork {
                netns: format!("/ns/{}", self.name).into(),
                ip: None,
                ports: Vec::new(),
            });
            Ok(())
        }
        async fn release(&self, id: &str) -> Result<(), RuntimeError> {
            push(&self.log, format!("release {} {id}", self.name));
            Ok(())
        }
    }

    struct Fake {
        netns: bool,
        fail: bool,
        log: Log,
    }

    #[async_trait]
    impl Runtime for Fake {
        fn kind(&self) -> RuntimeKind {
            RuntimeKind::Container
        }
        fn capabilities(&self) -> Capabilities {
            Capabilities {
                netns: self.netns,
                ..Capabilities::default()
            }
        }
        async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
            let ns = spec.prepared.network.as_ref().map(|n| n.netns.clone());
            push(&self.log, format!("start {ns:?}"));
            if self.fail {
                return Err(RuntimeError::NotFound {
                    id: spec.id.clone(),
                });
            }
            Ok(Started { pid: None })
        }
        async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
            Err(RuntimeError::NotFound { id: id.into() })
        }
        async fn stop(&self, _: &str, _: Duration) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn remove(&self, _: &str) -> Result<(), RuntimeError> {
            Ok(())
        }
        async fn stats(&self, _: &str) -> Result<Stats, RuntimeError> {
            Ok(Stats::default())
        }
        async fn logs(&self, _: &str, _: usize) -> Result<String, RuntimeError> {
            Ok(String::new())
        }
        async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
            Ok(Vec::new())
        }
    }

    fn spec() -> InstanceSpec {
        let service = serde_json::from_value(serde_json::json!({
            "name": "s", "runtime": "container", "image": "img"
        }))
        .unwrap();
        InstanceSpec {
            id: "i".into(),
            generation: 1,
            service,
            env: Default::default(),
            prepared: Default::default(),
        }
    }

    fn hooks(log: &Log, fail_second: bool) -> Vec<Arc<dyn Prestart>> {
        vec![
            Arc::new(Hook {
                name: "a",
                fail: false,
                log: log.clone(),
            }),
            Arc::new(Hook {
                name: "b",
                fail: fail_second,
                log: log.clone(),
            }),
        ]
    }

    #[test]
    fn a_runtime_gets_the_hooks_its_capabilities_want() {
        let log = Log::default();
        let with = |netns| {
            let rt: Arc<dyn Runtime> = Arc::new(Fake {
                netns,
                fail: false,
                log: log.clone(),
            });
            BTreeMap::from([(RuntimeKind::Container, rt)])
        };
        assert_eq!(
            hooks_for(&with(true), &hooks(&log, false))[&RuntimeKind::Container].len(),
            2
        );
        assert!(hooks_for(&with(false), &hooks(&log, false)).is_empty());
    }

    #[tokio::test]
    async fn the_runtime_starts_with_what_the_hooks_prepared() {
        let log = Log::default();
        let rt = Fake {
            netns: true,
            fail: false,
            log: log.clone(),
        };
        start_with(&hooks(&log, false), &rt, &spec()).await.unwrap();
        let want = ["prepare a", "prepare b", "start Some(\"/ns/b\")"];
        assert_eq!(*log.lock().unwrap(), want);
    }

    #[tokio::test]
    async fn a_failed_hook_fails_the_start_and_releases_what_ran() {
        let log = Log::default();
        let rt = Fake {
            netns: true,
            fail: false,
            log: log.clone(),
        };
        let err = start_with(&hooks(&log, true), &rt, &spec())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("registry X unreachable"), "{err}");
        let want = ["prepare a", "prepare b", "release b i", "release a i"];
        assert_eq!(*log.lock().unwrap(), want);
    }

    #[tokio::test]
    async fn a_failed_start_releases_the_hooks() {
        let log = Log::default();
        let rt = Fake {
            netns: true,
            fail: true,
            log: log.clone(),
        };
        start_with(&hooks(&log, false), &rt, &spec())
            .await
            .unwrap_err();
        let log = log.lock().unwrap();
        assert_eq!(log[log.len() - 2..], ["release b i", "release a i"]);
    }
}

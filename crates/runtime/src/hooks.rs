//! The prestart chain around one runtime: which hooks it gets follows from its own
//! capabilities; they prepare in order before `start` and are released in reverse after
//! `remove` (or after a failed start). The node runs it; the runtime's tests run the same.

use crate::prestart::{Prepared, Prestart, Progress};
use crate::{Capabilities, InstanceSpec, Runtime, RuntimeError, Started};
use std::sync::Arc;

/// The hooks one runtime wants, in the order they run.
#[derive(Clone, Default)]
pub struct Hooks {
    hooks: Vec<Arc<dyn Prestart>>,
}

impl Hooks {
    /// Exactly these hooks, in this order.
    pub fn new(hooks: Vec<Arc<dyn Prestart>>) -> Hooks {
        Hooks { hooks }
    }

    /// Those of `all` a runtime with capabilities `caps` wants, in the order given.
    pub fn wanted_by(all: &[Arc<dyn Prestart>], caps: &Capabilities) -> Hooks {
        Hooks::new(all.iter().filter(|h| h.wanted_by(caps)).cloned().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// The instance's address, from the first hook that gave it one.
    pub fn address(&self, id: &str) -> Option<std::net::IpAddr> {
        self.hooks.iter().find_map(|h| h.address(id))
    }

    /// Their names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.hooks.iter().map(|h| h.name()).collect()
    }

    /// What the runtime can do with these hooks around it: its own capabilities plus
    /// what each hook provides. The one view the node reports and validates against.
    pub fn capabilities(&self, runtime: Capabilities) -> Capabilities {
        self.hooks
            .iter()
            .fold(runtime, |caps, h| caps.union(h.provides()))
    }

    /// Runs the hooks in order, then starts the instance with what they prepared; a
    /// failure of either frees what the hooks made and is the start's error. Returns what
    /// was prepared too (the image digest, the address).
    pub async fn start(
        &self,
        runtime: &dyn Runtime,
        spec: &InstanceSpec,
        progress: Progress<'_>,
    ) -> Result<(Started, Prepared), RuntimeError> {
        let mut prepared = Prepared::default();
        for (i, hook) in self.hooks.iter().enumerate() {
            if let Err(e) = hook.prepare(spec, &mut prepared, progress).await {
                // Logged there; the start's error is what counts.
                let _ = release_all(&self.hooks[..=i], &spec.id).await;
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
                let _ = release_all(&self.hooks, &spec.id).await;
                Err(e)
            }
        }
    }

    /// Frees what the hooks hold for `id`, in reverse order, each tried even when an
    /// earlier one failed (a namespace or lease left behind outlives the instance).
    pub async fn release(&self, id: &str) -> Result<(), RuntimeError> {
        release_all(&self.hooks, id).await
    }
}

/// Releases in reverse; the first error is returned after all were tried.
async fn release_all(hooks: &[Arc<dyn Prestart>], id: &str) -> Result<(), RuntimeError> {
    let mut first = None;
    for hook in hooks.iter().rev() {
        if let Err(e) = hook.release(id).await {
            tracing::warn!(instance = id, hook = hook.name(), error = %e, "prestart release failed");
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Exit, PreparedNetwork, Recovered, Stats};
    use async_trait::async_trait;
    use canopy_model::RuntimeKind;
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
        fn provides(&self) -> Capabilities {
            Capabilities {
                ports: self.name == "b",
                ..Capabilities::default()
            }
        }
        async fn prepare(
            &self,
            _: &InstanceSpec,
            p: &mut Prepared,
            progress: Progress<'_>,
        ) -> Result<(), RuntimeError> {
            push(&self.log, format!("prepare {}", self.name));
            progress(&format!("{} prepared", self.name));
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
            secrets: Default::default(),
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

    fn fake(log: &Log, fail: bool) -> Fake {
        Fake {
            netns: true,
            fail,
            log: log.clone(),
        }
    }

    fn quiet(_: &str) {}

    #[test]
    fn a_runtime_gets_the_hooks_its_capabilities_want_and_what_they_provide() {
        let log = Log::default();
        let caps = fake(&log, false).capabilities();
        let wanted = Hooks::wanted_by(&hooks(&log, false), &caps);
        assert_eq!(wanted.names(), ["a", "b"]);
        let view = wanted.capabilities(caps);
        assert!(view.ports && view.netns && !view.networking, "{view:?}");
        let none = Hooks::wanted_by(&hooks(&log, false), &Capabilities::default());
        assert!(none.is_empty());
        assert_eq!(
            none.capabilities(Capabilities::default()),
            Capabilities::default()
        );
    }

    #[tokio::test]
    async fn the_runtime_starts_with_what_the_hooks_prepared() {
        let log = Log::default();
        let said = Mutex::new(Vec::new());
        let progress = |text: &str| said.lock().unwrap().push(text.to_string());
        let (_, prepared) = Hooks::new(hooks(&log, false))
            .start(&fake(&log, false), &spec(), &progress)
            .await
            .unwrap();
        let want = ["prepare a", "prepare b", "start Some(\"/ns/b\")"];
        assert_eq!(*log.lock().unwrap(), want);
        assert_eq!(*said.lock().unwrap(), ["a prepared", "b prepared"]);
        let netns = prepared.network.map(|n| n.netns);
        assert_eq!(netns, Some("/ns/b".into()));
    }

    #[tokio::test]
    async fn a_failed_hook_fails_the_start_and_releases_what_ran() {
        let log = Log::default();
        let err = Hooks::new(hooks(&log, true))
            .start(&fake(&log, false), &spec(), &quiet)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("registry X unreachable"), "{err}");
        let want = ["prepare a", "prepare b", "release b i", "release a i"];
        assert_eq!(*log.lock().unwrap(), want);
    }

    #[tokio::test]
    async fn a_failed_start_releases_the_hooks() {
        let log = Log::default();
        Hooks::new(hooks(&log, false))
            .start(&fake(&log, true), &spec(), &quiet)
            .await
            .unwrap_err();
        let log = log.lock().unwrap();
        assert_eq!(log[log.len() - 2..], ["release b i", "release a i"]);
    }

    #[tokio::test]
    async fn without_hooks_the_runtime_starts_alone() {
        let log = Log::default();
        let (_, prepared) = Hooks::default()
            .start(&fake(&log, false), &spec(), &quiet)
            .await
            .unwrap();
        assert_eq!(*log.lock().unwrap(), ["start None"]);
        assert_eq!(prepared, Prepared::default());
    }
}

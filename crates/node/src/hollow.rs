//! A runtime that runs nothing, for hollow nodes (`canopy sim`): the agent above it is the
//! real one (admission, supervision, status, the link), so simulated nodes load the control
//! plane exactly as real ones do, thousands to a process. Not for tests of the runtime path.

use async_trait::async_trait;
use canopy_model::RuntimeKind;
use canopy_runtime::{Exit, InstanceSpec, Recovered, Runtime, RuntimeError, Started, Stats};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

/// "Runs" instances of one kind until they are stopped; they never fail on their own.
pub struct HollowRuntime {
    kind: RuntimeKind,
    /// Per instance: `None` while it "runs", then how it ended.
    instances: Mutex<HashMap<String, watch::Sender<Option<Exit>>>>,
}

impl HollowRuntime {
    pub fn new(kind: RuntimeKind) -> HollowRuntime {
        HollowRuntime {
            kind,
            instances: Mutex::new(HashMap::new()),
        }
    }

    fn instances(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<Option<Exit>>>> {
        self.instances.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Runtime for HollowRuntime {
    fn kind(&self) -> RuntimeKind {
        self.kind
    }

    /// It runs nothing, so it offers nothing beyond keeping instances "running".
    fn capabilities(&self) -> canopy_runtime::Capabilities {
        canopy_runtime::Capabilities::default()
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        let (running, _) = watch::channel(None);
        self.instances().insert(spec.id.clone(), running);
        Ok(Started { pid: None })
    }

    async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        let mut ended = self
            .instances()
            .get(id)
            .map(|s| s.subscribe())
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })?;
        let exit = ended
            .wait_for(Option::is_some)
            .await
            .map_err(|_| RuntimeError::NotFound { id: id.to_string() })?;
        Ok(exit.clone().unwrap_or_else(stopped))
    }

    async fn stop(&self, id: &str, _grace: Duration) -> Result<(), RuntimeError> {
        if let Some(running) = self.instances().get(id) {
            running.send_if_modified(|exit| exit.is_none() && exit.replace(stopped()).is_none());
        }
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        if let Some(running) = self.instances().remove(id) {
            running.send_if_modified(|exit| exit.is_none() && exit.replace(stopped()).is_none());
        }
        Ok(())
    }

    async fn stats(&self, _id: &str) -> Result<Stats, RuntimeError> {
        Ok(Stats::default())
    }

    async fn logs(&self, _id: &str, _tail: usize) -> Result<String, RuntimeError> {
        Ok(String::new())
    }

    async fn recover(&self) -> Result<Vec<Recovered>, RuntimeError> {
        Ok(Vec::new())
    }
}

fn stopped() -> Exit {
    Exit {
        code: None,
        signal: Some(15),
        oom_killed: false,
        reason: "stopped".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str) -> InstanceSpec {
        let service = serde_json::from_value(serde_json::json!({
            "name": "s", "runtime": "process", "command": ["/bin/true"]
        }))
        .unwrap();
        InstanceSpec {
            secrets: Default::default(),
            id: id.into(),
            generation: 1,
            service,
            env: Default::default(),
            prepared: Default::default(),
        }
    }

    #[tokio::test]
    async fn an_instance_runs_until_stopped_and_then_reports_how_it_ended() {
        let runtime = std::sync::Arc::new(HollowRuntime::new(RuntimeKind::Process));
        runtime.start(&spec("a")).await.unwrap();
        let waiter = tokio::spawn({
            let runtime = runtime.clone();
            async move { runtime.wait("a").await }
        });
        tokio::task::yield_now().await;
        assert!(
            !waiter.is_finished(),
            "a hollow instance runs until stopped"
        );
        runtime.stop("a", Duration::ZERO).await.unwrap();
        let exit = waiter.await.unwrap().unwrap();
        assert_eq!(exit.signal, Some(15));
        assert!(!exit.success());
        // Waiting again after the end answers at once; removal forgets it.
        assert_eq!(runtime.wait("a").await.unwrap(), exit);
        runtime.remove("a").await.unwrap();
        assert!(runtime.wait("a").await.is_err());
    }
}

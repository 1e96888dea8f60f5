//! The `docker` driver: one Docker Engine, over its API on a unix socket (bollard, with the
//! API version negotiated down to the engine's), presented as the cluster's one member.
//! Its capacity and architecture are the engine's info; its instances are containers the
//! engine runs ([`DockerRuntime`]); it is reachable while the engine answers a ping.

mod events;
mod runtime;
mod sessions;
pub mod spec;

use crate::driver::{ClusterDriver, DriverError, DriverKind, ForeignMember};
use async_trait::async_trait;
use bollard::{API_DEFAULT_VERSION, Docker};
use canopy_model::ResourceAmounts;
pub use runtime::DockerRuntime;
use spec::Owner;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

/// How long one request to the engine may take before it counts as unanswered.
const REQUEST_TIMEOUT_SECS: u64 = 30;
/// How long a ping may take: an engine slower than this is not answering.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

pub struct DockerDriver {
    endpoint: String,
    docker: Docker,
    cluster: String,
    labels: BTreeMap<String, String>,
}

/// The socket path of `unix:///path` (unix sockets only).
fn socket_path(endpoint: &str) -> Result<&str, DriverError> {
    endpoint
        .strip_prefix("unix://")
        .filter(|path| path.starts_with('/'))
        .ok_or_else(|| DriverError::Endpoint {
            endpoint: endpoint.to_string(),
            reason:
                "the docker driver speaks to an engine's unix socket: give unix:///path/docker.sock"
                    .to_string(),
        })
}

/// `amd64`, `arm64`, ... from the engine's `uname -m` style architecture.
fn oci_arch(engine: &str) -> String {
    match engine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "armv7l" | "armv6l" => "arm",
        "i686" | "i386" => "386",
        other => other,
    }
    .to_string()
}

/// A member name from the engine's host name: what node names may hold.
fn member_name(engine: &str) -> String {
    let cleaned: String = engine
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches('-');
    if cleaned.is_empty() {
        "docker-engine".to_string()
    } else {
        format!("docker-{cleaned}")
    }
}

impl DockerDriver {
    /// Connects to the engine at `endpoint` and agrees on the API version it speaks; the
    /// containers it makes belong to `cluster` (their labels say so).
    pub async fn connect(
        endpoint: &str,
        cluster: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<DockerDriver, DriverError> {
        let path = socket_path(endpoint)?;
        let unreachable = |reason: String| DriverError::Unreachable {
            driver: "Docker Engine",
            endpoint: endpoint.to_string(),
            reason,
        };
        let docker = Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
            .map_err(|e| unreachable(e.to_string()))?
            .negotiate_version()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(DockerDriver {
            endpoint: endpoint.to_string(),
            docker,
            cluster: cluster.to_string(),
            labels,
        })
    }
}

#[async_trait]
impl ClusterDriver for DockerDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Docker
    }

    async fn members(&self) -> Result<Vec<ForeignMember>, DriverError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| DriverError::Unreachable {
                driver: "Docker Engine",
                endpoint: self.endpoint.clone(),
                reason: e.to_string(),
            })?;
        let name = member_name(info.name.as_deref().unwrap_or_default());
        let cpus = info.ncpu.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        let memory = info
            .mem_total
            .and_then(|m| u64::try_from(m).ok())
            .unwrap_or(0);
        let mut labels = self.labels.clone();
        labels.insert("canopy.driver".to_string(), "docker".to_string());
        if let Some(version) = info.server_version {
            labels.insert("docker.version".to_string(), version);
        }
        let owner = Owner {
            cluster: self.cluster.clone(),
            member: name.clone(),
        };
        Ok(vec![ForeignMember {
            name,
            capacity: ResourceAmounts {
                cpu_millis: cpus * 1000,
                memory_mib: memory / (1024 * 1024),
                gpus: 0,
                storage_mib: 0,
            },
            arch: oci_arch(info.architecture.as_deref().unwrap_or_default()),
            labels,
            runtime: DockerRuntime::new(self.docker.clone(), owner),
        }])
    }

    fn reachability(&self, every: Duration) -> watch::Receiver<bool> {
        let (tx, rx) = watch::channel(true);
        let docker = self.docker.clone();
        let endpoint = self.endpoint.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = tx.closed() => return,
                }
                let answered = matches!(
                    tokio::time::timeout(PING_TIMEOUT, docker.ping()).await,
                    Ok(Ok(_))
                );
                tx.send_if_modified(|up| {
                    if *up == answered {
                        return false;
                    }
                    match answered {
                        true => tracing::info!(%endpoint, "the Docker Engine answers again"),
                        false => tracing::warn!(%endpoint, "the Docker Engine does not answer"),
                    }
                    *up = answered;
                    true
                });
            }
        });
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_unix_sockets() {
        assert_eq!(
            socket_path("unix:///run/d/docker.sock").ok(),
            Some("/run/d/docker.sock")
        );
        for bad in [
            "tcp://127.0.0.1:2375",
            "unix://relative",
            "/run/docker.sock",
        ] {
            let error = socket_path(bad).expect_err(bad).to_string();
            assert!(error.contains("unix:///path"), "{error}");
        }
    }

    #[test]
    fn the_member_is_named_and_described_from_the_engine() {
        assert_eq!(member_name("Build_Host.local"), "docker-build-host-local");
        assert_eq!(member_name(""), "docker-engine");
        assert_eq!(oci_arch("x86_64"), "amd64");
        assert_eq!(oci_arch("aarch64"), "arm64");
    }
}

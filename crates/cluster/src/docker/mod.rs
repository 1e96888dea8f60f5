//! The `docker` driver: one Docker Engine, over its API on a unix socket (bollard, with the
//! API version negotiated down to the engine's), presented as the cluster's one member.
//! Its capacity and architecture are the engine's info; its instances are containers the
//! engine runs ([`DockerRuntime`]); it is reachable while the engine answers a ping.
//! The `podman` driver is the same code against Podman's Docker-compatible service, which
//! speaks the same API (1.41) with a few differences in its events (`events.rs`).

mod compat;
mod events;
pub(crate) mod runtime;
pub(crate) mod sessions;
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
    /// `Docker` or `Podman`: the same API, told apart in names and labels.
    kind: DriverKind,
    endpoint: String,
    docker: Docker,
    cluster: String,
    labels: BTreeMap<String, String>,
}

/// The socket path of `unix:///path` (unix sockets only).
fn socket_path(endpoint: &str, kind: DriverKind) -> Result<&str, DriverError> {
    endpoint
        .strip_prefix("unix://")
        .filter(|path| path.starts_with('/'))
        .ok_or_else(|| DriverError::Endpoint {
            endpoint: endpoint.to_string(),
            reason: format!(
                "the {} driver speaks to an engine's unix socket: give unix:///path/{}.sock",
                kind.as_str(),
                if kind == DriverKind::Podman {
                    "podman"
                } else {
                    "docker"
                }
            ),
        })
}

/// What the driver's orchestrator is called in messages.
pub(crate) fn engine_name(kind: DriverKind) -> &'static str {
    match kind {
        DriverKind::Podman => "Podman service",
        DriverKind::Swarm => "Docker Swarm manager",
        DriverKind::Docker | DriverKind::Canopy => "Docker Engine",
    }
}

/// A client of the engine at `endpoint`, on the API version it speaks (bollard's is newer
/// than Debian's docker.io and podman, both 1.41).
pub(crate) async fn connect_engine(
    kind: DriverKind,
    endpoint: &str,
) -> Result<Docker, DriverError> {
    let path = socket_path(endpoint, kind)?;
    let unreachable = |reason: String| DriverError::Unreachable {
        driver: engine_name(kind),
        endpoint: endpoint.to_string(),
        reason,
    };
    Docker::connect_with_unix(path, REQUEST_TIMEOUT_SECS, API_DEFAULT_VERSION)
        .map_err(|e| unreachable(e.to_string()))?
        .negotiate_version()
        .await
        .map_err(|e| unreachable(e.to_string()))
}

/// True while the engine answers a ping (asked every `every`), until the receiver is gone.
pub(crate) fn reachability(
    docker: Docker,
    endpoint: String,
    kind: DriverKind,
    every: Duration,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(true);
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
                let engine = engine_name(kind);
                match answered {
                    true => tracing::info!(%endpoint, "the {engine} answers again"),
                    false => tracing::warn!(%endpoint, "the {engine} does not answer"),
                }
                *up = answered;
                true
            });
        }
    });
    rx
}

/// `amd64`, `arm64`, ... from the engine's `uname -m` style architecture.
pub(crate) fn oci_arch(engine: &str) -> String {
    match engine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "armv7l" | "armv6l" => "arm",
        "i686" | "i386" => "386",
        other => other,
    }
    .to_string()
}

/// A member name from the engine's host name (`PREFIX-host`): what node names may hold.
pub(crate) fn member_name(prefix: &str, engine: &str) -> String {
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
        format!("{prefix}-engine")
    } else {
        format!("{prefix}-{cleaned}")
    }
}

impl DockerDriver {
    /// Connects to the engine at `endpoint` (a Docker Engine for `kind` Docker, a Podman
    /// service for Podman) and agrees on the API version it speaks; the containers it makes
    /// belong to `cluster` (their labels say so).
    pub async fn connect(
        kind: DriverKind,
        endpoint: &str,
        cluster: &str,
        labels: BTreeMap<String, String>,
    ) -> Result<DockerDriver, DriverError> {
        let docker = connect_engine(kind, endpoint).await?;
        Ok(DockerDriver {
            kind,
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
        self.kind
    }

    async fn members(&self) -> Result<Vec<ForeignMember>, DriverError> {
        let info = self
            .docker
            .info()
            .await
            .map_err(|e| DriverError::Unreachable {
                driver: engine_name(self.kind),
                endpoint: self.endpoint.clone(),
                reason: e.to_string(),
            })?;
        let driver = self.kind.as_str();
        let name = member_name(driver, info.name.as_deref().unwrap_or_default());
        let cpus = info.ncpu.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        let memory = info
            .mem_total
            .and_then(|m| u64::try_from(m).ok())
            .unwrap_or(0);
        let mut labels = self.labels.clone();
        labels.insert("canopy.driver".to_string(), driver.to_string());
        if let Some(version) = info.server_version {
            labels.insert(format!("{driver}.version"), version);
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
        reachability(self.docker.clone(), self.endpoint.clone(), self.kind, every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_unix_sockets() {
        assert_eq!(
            socket_path("unix:///run/d/docker.sock", DriverKind::Docker).ok(),
            Some("/run/d/docker.sock")
        );
        for bad in [
            "tcp://127.0.0.1:2375",
            "unix://relative",
            "/run/docker.sock",
        ] {
            let error = socket_path(bad, DriverKind::Docker)
                .expect_err(bad)
                .to_string();
            assert!(error.contains("unix:///path/docker.sock"), "{error}");
        }
    }

    #[test]
    fn the_member_is_named_and_described_from_the_engine() {
        assert_eq!(
            member_name("docker", "Build_Host.local"),
            "docker-build-host-local"
        );
        assert_eq!(member_name("docker", ""), "docker-engine");
        assert_eq!(member_name("podman", "vm"), "podman-vm");
        let podman = socket_path("tcp://h:1", DriverKind::Podman).expect_err("tcp");
        assert!(podman.to_string().contains("podman driver"), "{podman}");
        assert_eq!(oci_arch("x86_64"), "amd64");
        assert_eq!(oci_arch("aarch64"), "arm64");
    }
}

//! An instance as a Swarm service (pure): one service of one replica per Canopy instance,
//! pinned to the member's node (Canopy places, Swarm only runs), with Canopy's image,
//! command, environment, limits, user and labels (the docker driver's), `dnsrr` endpoints
//! and host-mode published ports (no IPVS, hence no virtual IPs or routing mesh, on the
//! machines this is tested on), and Swarm's own restart policy `none`: the member's agent
//! restarts by Canopy's policy, as on any node, by forcing a new task.

use crate::docker::spec::{self, Owner};
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, EndpointSpecModeEnum, Limit, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use canopy_model::Protocol;
use canopy_runtime::{InstanceSpec, RuntimeError};
use std::time::Duration;

/// The longest service name Swarm takes (a DNS label).
const NAME_MAX: usize = 63;

/// The service's name: `canopy-<cluster>-<instance id>`, or, when that is longer than a DNS
/// label, its first part and a hash of the whole (the labels say which instance it is).
pub fn service_name(owner: &Owner, id: &str) -> String {
    let full = format!("canopy-{}-{id}", owner.cluster);
    if full.len() <= NAME_MAX {
        return full;
    }
    // FNV-1a: stable across builds, so a restarted cluster finds the same names.
    let hash = full.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let hash = format!("{hash:016x}");
    let keep = full
        .char_indices()
        .take_while(|(at, _)| *at < NAME_MAX - hash.len() - 1)
        .map(|(_, c)| c)
        .collect::<String>();
    format!("{}-{hash}", keep.trim_end_matches('-'))
}

/// What Canopy asks that Swarm cannot do, as the reason it is refused.
fn refuse(spec: &InstanceSpec) -> Result<(), RuntimeError> {
    let service = &spec.service;
    if service.security_context.privileged {
        return Err(RuntimeError::InvalidSpec {
            service: service.name.clone(),
            reason: "privileged containers are not supported by Swarm services".to_string(),
        });
    }
    Ok(())
}

/// The service for `spec` on node `node` (Swarm's node id), run as `user`, owned by `owner`,
/// stopping within `grace`; a port without a `hostPort` is not published.
pub fn service_spec(
    spec: &InstanceSpec,
    owner: &Owner,
    node: &str,
    user: String,
    grace: Duration,
) -> Result<ServiceSpec, RuntimeError> {
    let service = &spec.service;
    let image = spec::image_of(spec, "swarm")?;
    refuse(spec)?;
    let labels = spec::labels_of(spec, owner, spec::names_of(spec));
    let ports = service
        .ports
        .iter()
        .filter_map(|port| {
            Some(EndpointPortConfig {
                name: None,
                protocol: Some(match port.protocol {
                    Protocol::Tcp => EndpointPortConfigProtocolEnum::TCP,
                    Protocol::Udp => EndpointPortConfigProtocolEnum::UDP,
                }),
                target_port: Some(i64::from(port.port)),
                published_port: Some(i64::from(port.host_port?)),
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            })
        })
        .collect::<Vec<_>>();
    let security = &service.security_context;
    let container = TaskSpecContainerSpec {
        image: Some(image),
        labels: Some(labels.clone()),
        command: (!service.command.is_empty()).then(|| service.command.clone()),
        args: (!service.args.is_empty()).then(|| service.args.clone()),
        env: Some(spec::env_of(spec)),
        dir: service.working_dir.clone(),
        user: Some(user),
        stop_grace_period: i64::try_from(grace.as_nanos()).ok(),
        capability_add: (!security.capabilities.add.is_empty())
            .then(|| security.capabilities.add.clone()),
        ..TaskSpecContainerSpec::default()
    };
    let limits = Limit {
        nano_cpus: i64::try_from(service.resources.cpu.0.saturating_mul(1_000_000)).ok(),
        memory_bytes: i64::try_from(service.resources.memory.0.saturating_mul(1024 * 1024)).ok(),
        pids: None,
    };
    Ok(ServiceSpec {
        name: Some(service_name(owner, &spec.id)),
        labels: Some(labels),
        task_template: Some(TaskSpec {
            container_spec: Some(container),
            resources: Some(TaskSpecResources {
                limits: Some(limits),
                ..TaskSpecResources::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..TaskSpecRestartPolicy::default()
            }),
            placement: Some(TaskSpecPlacement {
                constraints: Some(vec![format!("node.id=={node}")]),
                ..TaskSpecPlacement::default()
            }),
            force_update: Some(0),
            ..TaskSpec::default()
        }),
        mode: Some(replicas(1)),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports: (!ports.is_empty()).then_some(ports),
        }),
        ..ServiceSpec::default()
    })
}

/// Replicated mode with `count` replicas.
pub fn replicas(count: i64) -> ServiceSpecMode {
    ServiceSpecMode {
        replicated: Some(ServiceSpecModeReplicated {
            replicas: Some(count),
        }),
        ..ServiceSpecMode::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(service: serde_json::Value) -> InstanceSpec {
        InstanceSpec {
            id: "web-0-abc".into(),
            generation: 2,
            service: serde_json::from_value(service).expect("a service"),
            env: [("CANOPY_SERVICE".to_string(), "web".to_string())].into(),
            prepared: Default::default(),
            secrets: Default::default(),
        }
    }

    fn owner() -> Owner {
        Owner {
            cluster: "sw".into(),
            member: "swarm-vm".into(),
        }
    }

    #[test]
    fn an_instance_is_a_pinned_service_of_one_replica_with_host_ports() {
        let spec = spec(serde_json::json!({
            "name": "web", "runtime": "container", "image": "busybox:1",
            "command": ["httpd"], "args": ["-f"],
            "resources": {"cpu": "250m", "memory": "64Mi"},
            "ports": [{"port": 8080, "hostPort": 18080}]
        }));
        let service = service_spec(
            &spec,
            &owner(),
            "n1",
            "65534:65534".into(),
            Duration::from_secs(5),
        )
        .expect("a service");
        assert_eq!(service.name.as_deref(), Some("canopy-sw-web-0-abc"));
        let endpoint = service.endpoint_spec.expect("endpoint");
        assert_eq!(endpoint.mode, Some(EndpointSpecModeEnum::DNSRR));
        let port = &endpoint.ports.expect("ports")[0];
        assert_eq!(
            port.publish_mode,
            Some(EndpointPortConfigPublishModeEnum::HOST)
        );
        assert_eq!(
            (port.target_port, port.published_port),
            (Some(8080), Some(18080))
        );
        assert_eq!(
            service
                .mode
                .and_then(|m| m.replicated)
                .and_then(|r| r.replicas),
            Some(1)
        );
        let task = service.task_template.expect("task");
        assert_eq!(
            task.placement.and_then(|p| p.constraints),
            Some(vec!["node.id==n1".to_string()])
        );
        assert_eq!(
            task.restart_policy.and_then(|p| p.condition),
            Some(TaskSpecRestartPolicyConditionEnum::NONE)
        );
        let limits = task.resources.and_then(|r| r.limits).expect("limits");
        assert_eq!(limits.nano_cpus, Some(250_000_000));
        assert_eq!(limits.memory_bytes, Some(64 << 20));
        let container = task.container_spec.expect("container");
        assert_eq!(
            container.labels.expect("labels")[spec::INSTANCE],
            "web-0-abc"
        );
        assert_eq!(container.stop_grace_period, Some(5_000_000_000));
        assert_eq!(service.labels.expect("labels")[spec::GENERATION], "2");
    }

    #[test]
    fn what_swarm_cannot_do_is_refused_with_the_reason() {
        let privileged = spec(serde_json::json!({
            "name": "w", "runtime": "container", "image": "i",
            "securityContext": {"privileged": true}
        }));
        let error = service_spec(&privileged, &owner(), "n1", String::new(), Duration::ZERO)
            .expect_err("privileged");
        assert!(error.to_string().contains("privileged"), "{error}");
        let files = spec(serde_json::json!({
            "name": "w", "runtime": "container", "image": "i",
            "files": [{"path": "/etc/a", "content": "x"}]
        }));
        let error =
            service_spec(&files, &owner(), "n1", String::new(), Duration::ZERO).expect_err("files");
        assert!(error.to_string().contains("swarm driver"), "{error}");
    }

    #[test]
    fn long_names_fit_a_dns_label_and_stay_apart() {
        let long = "a".repeat(80);
        let one = service_name(&owner(), &format!("{long}-1"));
        let two = service_name(&owner(), &format!("{long}-2"));
        assert!(
            one.len() <= NAME_MAX && two.len() <= NAME_MAX,
            "{one} {two}"
        );
        assert_ne!(one, two);
    }
}

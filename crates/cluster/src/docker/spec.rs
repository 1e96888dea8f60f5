//! An instance as the Docker Engine creates it (pure): Canopy's image, command, environment,
//! limits, ports, user and labels in the engine's terms. The engine's own restart policy
//! stays `no`: the member's agent restarts by Canopy's policy, as on any node.

use bollard::models::{
    ContainerCreateBody, HostConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
};
use canopy_model::Protocol;
use canopy_runtime::{InstanceSpec, RuntimeError};
use std::collections::HashMap;

/// Labels every container of a docker-driver cluster carries: re-adoption and the event
/// stream find the cluster's containers by them.
pub const INSTANCE: &str = "canopy.instance";
pub const GENERATION: &str = "canopy.generation";
pub const CLUSTER: &str = "canopy.cluster";
pub const MEMBER: &str = "canopy.member";
pub const NAMESPACE: &str = "canopy.namespace";
pub const APPLICATION: &str = "canopy.application";
pub const SERVICE: &str = "canopy.service";

/// The unprivileged user a container runs as when neither its descriptor nor its image
/// names one other than root (as on Canopy's own nodes).
const NOBODY: &str = "65534:65534";

/// Who is creating: the cluster and member the container belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub cluster: String,
    pub member: String,
}

/// The container's name on the engine: one per instance, so two starts of one instance can
/// never leave two containers behind.
pub fn container_name(owner: &Owner, id: &str) -> String {
    format!("canopy-{}-{id}", owner.cluster)
}

/// Whether the image's configured user is root (or unset, which is root).
fn is_root(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or_default();
    name.is_empty() || name == "0" || name == "root"
}

/// `--user` for the container: the descriptor's uid (and gid), else the image's user when
/// it is not root, else 65534.
pub fn user_of(spec: &InstanceSpec, image_user: Option<&str>) -> String {
    let security = &spec.service.security_context;
    match (security.run_as_user, security.run_as_group) {
        (Some(uid), Some(gid)) => format!("{uid}:{gid}"),
        (Some(uid), None) => uid.to_string(),
        (None, group) => {
            let base = match image_user {
                Some(user) if !is_root(user) => user.to_string(),
                _ => return group.map_or(NOBODY.to_string(), |g| format!("65534:{g}")),
            };
            match group {
                Some(gid) => format!("{}:{gid}", base.split(':').next().unwrap_or(&base)),
                None => base,
            }
        }
    }
}

pub(crate) fn port_key(port: u16, protocol: Protocol) -> String {
    let protocol = match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    };
    format!("{port}/{protocol}")
}

/// The names the root gave the instance: (namespace, application, service).
pub fn names_of(spec: &InstanceSpec) -> (&str, &str, &str) {
    let name = |var: &str| spec.env.get(var).map_or("", String::as_str);
    (
        name("CANOPY_NAMESPACE"),
        name("CANOPY_APPLICATION"),
        name("CANOPY_SERVICE"),
    )
}

/// The image of a container instance, refusing what the engine drivers cannot do.
pub fn image_of(spec: &InstanceSpec, driver: &str) -> Result<String, RuntimeError> {
    let service = &spec.service;
    if !service.files.is_empty() {
        return Err(RuntimeError::InvalidSpec {
            service: service.name.clone(),
            reason: format!("files are not supported by the {driver} driver"),
        });
    }
    if !service.volumes.is_empty() {
        return Err(RuntimeError::InvalidSpec {
            service: service.name.clone(),
            reason: format!("volumes are not supported by the {driver} driver"),
        });
    }
    service
        .image
        .clone()
        .ok_or_else(|| RuntimeError::InvalidSpec {
            service: service.name.clone(),
            reason: "a container needs an image".to_string(),
        })
}

/// `VAR=value` for the container, sorted: the service's, with Canopy's own winning.
pub fn env_of(spec: &InstanceSpec) -> Vec<String> {
    let mut env: Vec<String> = spec
        .service
        .env
        .iter()
        .filter(|(var, _)| !spec.env.contains_key(*var))
        .chain(spec.env.iter())
        .map(|(var, value)| format!("{var}={value}"))
        .collect();
    env.sort();
    env
}

/// The service's labels and Canopy's, which re-adoption and the event stream go by.
pub fn labels_of(
    spec: &InstanceSpec,
    owner: &Owner,
    namespace: (&str, &str, &str),
) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = spec.service.labels.clone().into_iter().collect();
    let (ns, application, name) = namespace;
    for (key, value) in [
        (INSTANCE, spec.id.clone()),
        (GENERATION, spec.generation.to_string()),
        (CLUSTER, owner.cluster.clone()),
        (MEMBER, owner.member.clone()),
        (NAMESPACE, ns.to_string()),
        (APPLICATION, application.to_string()),
        (SERVICE, name.to_string()),
    ] {
        labels.insert(key.to_string(), value);
    }
    labels
}

/// The instance (id and generation) a container or service is, by its labels.
pub fn instance_of(labels: &HashMap<String, String>) -> Option<(String, u64)> {
    let id = labels.get(INSTANCE)?.clone();
    let generation = labels
        .get(GENERATION)
        .and_then(|g| g.parse().ok())
        .unwrap_or(0);
    Some((id, generation))
}

/// The create request for `spec`, run as `user`, owned by `owner`.
pub fn create_body(
    spec: &InstanceSpec,
    owner: &Owner,
    user: String,
    namespace: (&str, &str, &str),
) -> Result<ContainerCreateBody, RuntimeError> {
    let service = &spec.service;
    let image = image_of(spec, "docker")?;
    let env = env_of(spec);
    let labels = labels_of(spec, owner, namespace);
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &service.ports {
        let key = port_key(port.port, port.protocol);
        exposed.push(key.clone());
        if let Some(host_port) = port.host_port {
            bindings
                .entry(key)
                .or_default()
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: None,
                    host_port: Some(host_port.to_string()),
                });
        }
    }
    let memory = i64::try_from(service.resources.memory.0.saturating_mul(1024 * 1024)).ok();
    let nano_cpus = i64::try_from(service.resources.cpu.0.saturating_mul(1_000_000)).ok();
    let security = &service.security_context;
    let host_config = HostConfig {
        nano_cpus,
        memory,
        // No swap beyond the limit: the limit is what the instance has, as on Canopy's nodes.
        memory_swap: memory,
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: None,
        }),
        privileged: security.privileged.then_some(true),
        cap_add: (!security.capabilities.add.is_empty()).then(|| security.capabilities.add.clone()),
        ..HostConfig::default()
    };
    Ok(ContainerCreateBody {
        image: Some(image),
        entrypoint: (!service.command.is_empty()).then(|| service.command.clone()),
        cmd: (!service.args.is_empty()).then(|| service.args.clone()),
        env: Some(env),
        working_dir: service.working_dir.clone(),
        user: Some(user),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        host_config: Some(host_config),
        ..ContainerCreateBody::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(service: serde_json::Value) -> InstanceSpec {
        InstanceSpec {
            id: "web-0-abc".into(),
            generation: 3,
            service: serde_json::from_value(service).expect("a service"),
            env: [("CANOPY_INSTANCE".to_string(), "web-0-abc".to_string())].into(),
            prepared: Default::default(),
            secrets: Default::default(),
        }
    }

    fn owner() -> Owner {
        Owner {
            cluster: "edge".into(),
            member: "engine".into(),
        }
    }

    #[test]
    fn limits_ports_env_and_labels_are_the_engines_terms() {
        let spec = spec(serde_json::json!({
            "name": "web", "runtime": "container", "image": "busybox:1",
            "command": ["httpd"], "args": ["-f"],
            "env": {"A": "1", "CANOPY_INSTANCE": "theirs"},
            "resources": {"cpu": "250m", "memory": "64Mi"},
            "ports": [{"port": 8080, "hostPort": 18080}, {"port": 53, "protocol": "udp"}],
            "labels": {"team": "a"}
        }));
        let body = create_body(&spec, &owner(), "65534:65534".into(), ("ns", "app", "web"))
            .expect("a body");
        let host = body.host_config.expect("host config");
        assert_eq!(host.nano_cpus, Some(250_000_000));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.memory_swap, Some(64 << 20));
        let bindings = host.port_bindings.expect("bindings");
        let web = bindings["8080/tcp"].as_ref().expect("8080 bound");
        assert_eq!(web[0].host_port.as_deref(), Some("18080"));
        assert!(!bindings.contains_key("53/udp"), "no hostPort, no binding");
        assert_eq!(
            body.exposed_ports,
            Some(vec!["8080/tcp".to_string(), "53/udp".to_string()])
        );
        assert_eq!(
            host.restart_policy.and_then(|p| p.name),
            Some(RestartPolicyNameEnum::NO)
        );
        // Canopy's own variables win over the service's.
        assert_eq!(
            body.env,
            Some(vec![
                "A=1".to_string(),
                "CANOPY_INSTANCE=web-0-abc".to_string()
            ])
        );
        assert_eq!(body.entrypoint, Some(vec!["httpd".to_string()]));
        assert_eq!(body.cmd, Some(vec!["-f".to_string()]));
        let labels = body.labels.expect("labels");
        assert_eq!(labels[INSTANCE], "web-0-abc");
        assert_eq!(labels[GENERATION], "3");
        assert_eq!(labels[CLUSTER], "edge");
        assert_eq!(labels[SERVICE], "web");
        assert_eq!(labels["team"], "a");
        assert_eq!(container_name(&owner(), &spec.id), "canopy-edge-web-0-abc");
    }

    #[test]
    fn the_user_is_the_descriptors_else_the_images_unless_root() {
        let plain = spec(serde_json::json!({"name": "w", "runtime": "container", "image": "i"}));
        assert_eq!(user_of(&plain, None), "65534:65534");
        assert_eq!(user_of(&plain, Some("root")), "65534:65534");
        assert_eq!(user_of(&plain, Some("0:0")), "65534:65534");
        assert_eq!(user_of(&plain, Some("www")), "www");
        let asked = spec(
            serde_json::json!({"name": "w", "runtime": "container", "image": "i",
            "securityContext": {"runAsUser": 1000, "runAsGroup": 7}}),
        );
        assert_eq!(user_of(&asked, Some("www")), "1000:7");
        let uid_only = spec(
            serde_json::json!({"name": "w", "runtime": "container", "image": "i",
            "securityContext": {"runAsUser": 0}}),
        );
        assert_eq!(user_of(&uid_only, None), "0");
    }

    #[test]
    fn a_container_without_an_image_is_refused_with_the_reason() {
        let spec = spec(serde_json::json!({"name": "w", "runtime": "container"}));
        let error =
            create_body(&spec, &owner(), String::new(), ("n", "a", "w")).expect_err("no image");
        assert!(error.to_string().contains("needs an image"), "{error}");
    }
}

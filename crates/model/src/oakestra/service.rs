//! One Oakestra microservice mapped onto a native [`ServiceSpec`]: runtime, code, resources,
//! ports, environment and restart policy; its constraints are mapped in [`super::constraints`].

use super::Mapper;
use super::constraints::Target;
use super::origin::ServiceOrigin;
use super::values::{has_value, kind};
use crate::Sandbox;
use crate::descriptor::{PortSpec, Protocol, Resources, RestartPolicy, RuntimeKind, ServiceSpec};
use crate::quantity::{Mebibytes, Millicores};
use serde_json::Value;
use std::collections::BTreeMap;

const SERVICE_FIELDS: &[&str] = &[
    "microserviceID",
    "microservice_name",
    "microservice_namespace",
    "virtualization",
    "cmd",
    "args",
    "memory",
    "vcpus",
    "vcpu",
    "vgpus",
    "vgpu",
    "vtpus",
    "bandwidth_in",
    "bandwidth_out",
    "storage",
    "code",
    "state",
    "port",
    "addresses",
    "added_files",
    "environment",
    "one_shot",
    "privileged",
    "constraints",
    "connectivity",
    "sla_violation_strategy",
    "target_node",
];

/// Fields kept in an annotation, each with why it has no native home.
const KEPT_SERVICE_FIELDS: &[(&str, &str)] = &[
    ("microserviceID", "Canopy identifies services by name"),
    (
        "microservice_namespace",
        "Canopy names services <service>.<app>.<namespace>.canopy, without a service namespace",
    ),
    ("vtpus", "Canopy does not schedule TPUs"),
    ("bandwidth_in", "Canopy does not schedule bandwidth"),
    ("bandwidth_out", "Canopy does not schedule bandwidth"),
    ("state", "Canopy does not restore state files"),
    (
        "addresses",
        "the overlay honours rr_ip, closest_ip and instances[].instance_ip as virtual addresses on the nodes of the application's workloads",
    ),
    ("added_files", "Canopy does not fetch added files"),
    (
        "privileged",
        "Canopy does not grant privileges from descriptors; not granted",
    ),
    (
        "sla_violation_strategy",
        "Canopy re-places soft-constraint violations after convergenceTime",
    ),
    (
        "target_node",
        "deprecated in Oakestra; use a direct constraint",
    ),
];

impl Mapper {
    pub(super) fn service(
        &mut self,
        value: &Value,
        path: &str,
        targets: &[Target],
    ) -> Option<(ServiceSpec, ServiceOrigin)> {
        let obj = self.object(value, path)?;
        let mut annotations = BTreeMap::new();
        let mut origin = ServiceOrigin {
            path: path.to_string(),
            env: BTreeMap::new(),
            ports: Vec::new(),
            constraints: Vec::new(),
        };

        let raw_name = self
            .string(obj, "microservice_name", path)
            .unwrap_or_default();
        let name = self.name(
            &raw_name,
            &format!("{path}.microservice_name"),
            "microservice_name",
            &mut annotations,
        );

        let virtualization = self.string(obj, "virtualization", path);
        // Oakestra's gVisor runtime is `runsc`: a container in Canopy's gVisor sandbox.
        let sandbox = (virtualization.as_deref() == Some("runsc")).then_some(Sandbox::Gvisor);
        let runtime = match virtualization.as_deref() {
            Some("container") | Some("docker") | Some("runsc") => Some(RuntimeKind::Container),
            Some("wasm") => Some(RuntimeKind::Wasm),
            Some(other) => {
                self.error(
                    format!("{path}.virtualization"),
                    format!(
                        "unsupported virtualization {other:?}: Canopy runs \"container\", \"runsc\" and \"wasm\" workloads from Oakestra SLAs"
                    ),
                );
                None
            }
            None => {
                if !obj.contains_key("virtualization") {
                    self.error(
                        format!("{path}.virtualization"),
                        "is required: \"container\", \"runsc\" or \"wasm\"",
                    );
                }
                None
            }
        };

        // A missing code is reported by native validation (image or module "is required").
        let code = self.string(obj, "code", path).filter(|c| !c.is_empty());
        let cmd = self.strings(obj, "cmd", path).unwrap_or_default();
        let mut args = self.strings(obj, "args", path).unwrap_or_default();
        let (image, module, command) = match runtime {
            Some(RuntimeKind::Wasm) => {
                if !cmd.is_empty() {
                    self.warn(
                        format!("{path}.cmd"),
                        "a wasm module has no entrypoint to override; cmd is passed as its arguments",
                    );
                    args = cmd.into_iter().chain(args).collect();
                }
                if code.as_deref().is_some_and(crate::is_url_module) {
                    self.warn(
                        format!("{path}.code"),
                        "has no sha256: the node pins the digest of its first download",
                    );
                }
                (None, code, Vec::new())
            }
            _ => (code, None, cmd),
        };

        let cpu = match self.number(obj, &["vcpus", "vcpu"], path) {
            None => Millicores(1000),
            Some((field, v)) if v < 0.0 => {
                self.error(format!("{path}.{field}"), format!("must be >= 0, got {v}"));
                Millicores(1000)
            }
            Some((field, 0.0)) => {
                let default = Resources::default().cpu;
                self.warn(
                    format!("{path}.{field}"),
                    format!("0 means no CPU reservation in Oakestra; Canopy needs one and uses {default}"),
                );
                default
            }
            // Rounding up keeps a tiny fractional request from becoming 0.
            Some((_, v)) => Millicores((v * 1000.0).ceil().min(u64::MAX as f64) as u64),
        };
        let memory = match self.number(obj, &["memory"], path) {
            Some((_, v)) if v > 0.0 => Mebibytes(v.ceil().min(u64::MAX as f64) as u64),
            Some((field, v)) if v < 0.0 => {
                self.error(format!("{path}.{field}"), format!("must be >= 0, got {v}"));
                Resources::default().memory
            }
            found => {
                let default = Resources::default().memory;
                let what = if found.is_some() { "0" } else { "missing" };
                self.warn(
                    format!("{path}.memory"),
                    format!("{what}; Canopy needs a memory reservation and uses {default}"),
                );
                default
            }
        };
        let gpus = self.count(obj, &["vgpus", "vgpu"], path);
        let storage = Mebibytes(u64::from(self.count(obj, &["storage"], path)));

        let ports = match obj.get("port") {
            Some(Value::String(spec)) => self.ports(spec, &format!("{path}.port"), &mut origin),
            Some(Value::Number(n)) => {
                self.ports(&n.to_string(), &format!("{path}.port"), &mut origin)
            }
            Some(Value::Null) | None => Vec::new(),
            Some(other) => {
                self.error(
                    format!("{path}.port"),
                    format!(
                        "expected a string such as \"8080:80;53/udp\", found {}",
                        kind(other)
                    ),
                );
                Vec::new()
            }
        };

        let mut env = BTreeMap::new();
        for (k, entry) in self
            .strings(obj, "environment", path)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let p = format!("{path}.environment[{k}]");
            match entry.split_once('=') {
                Some((key, value)) if !key.is_empty() => {
                    if origin.env.insert(key.to_string(), k).is_some() {
                        self.error(&p, format!("variable {key:?} is set twice"));
                    }
                    env.insert(key.to_string(), value.to_string());
                }
                _ => self.error(&p, format!("expected \"NAME=value\", got {entry:?}")),
            }
        }

        let restart_policy = match obj.get("one_shot") {
            Some(Value::Bool(true)) => RestartPolicy::Never,
            Some(Value::Bool(false)) | Some(Value::Null) | None => RestartPolicy::Always,
            Some(other) => {
                self.error(
                    format!("{path}.one_shot"),
                    format!("expected a boolean, found {}", kind(other)),
                );
                RestartPolicy::Always
            }
        };

        let mut constraints = Vec::new();
        match obj.get("constraints") {
            Some(Value::Array(list)) => {
                for (k, c) in list.iter().enumerate() {
                    let cp = format!("{path}.constraints[{k}]");
                    if let Some(native) = self.constraint(c, &cp, k, &mut annotations) {
                        constraints.push(native);
                        origin.constraints.push(cp);
                    }
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => self.error(
                format!("{path}.constraints"),
                format!("expected an array, found {}", kind(other)),
            ),
        }
        match obj.get("connectivity") {
            Some(Value::Array(list)) => {
                for (a, link) in list.iter().enumerate() {
                    let lp = format!("{path}.connectivity[{a}]");
                    for (native, cp) in self.connectivity(link, &lp, a, targets, &mut annotations) {
                        constraints.push(native);
                        origin.constraints.push(cp);
                    }
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => self.error(
                format!("{path}.connectivity"),
                format!("expected an array, found {}", kind(other)),
            ),
        }

        for (field, why) in KEPT_SERVICE_FIELDS {
            if let Some(value) = obj.get(*field).filter(|v| has_value(v)) {
                self.keep(
                    &mut annotations,
                    &format!("{path}.{field}"),
                    field,
                    value,
                    why,
                );
            }
        }
        for (key, value) in obj {
            if !SERVICE_FIELDS.contains(&key.as_str()) && has_value(value) {
                self.keep(
                    &mut annotations,
                    &format!("{path}.{key}"),
                    key,
                    value,
                    "not an Oakestra SLA v2 field",
                );
            }
        }

        let svc = ServiceSpec {
            name,
            runtime: runtime.unwrap_or(RuntimeKind::Container),
            image,
            sandbox,
            // Its `code` URL has no digest: the node pins the first download's.
            wasm: module
                .as_deref()
                .is_some_and(crate::is_url_module)
                .then(|| crate::WasmOptions {
                    pin_first_fetch: true,
                    ..Default::default()
                }),
            module,
            vm: None,
            command,
            args,
            env,
            working_dir: None,
            resources: Resources {
                cpu,
                memory,
                gpus,
                gpu_model: None,
                storage,
            },
            replicas: 1,
            ports,
            restart_policy,
            // A one-shot service runs once, and a failed run is not retried: a job of one
            // run with no retry (its `restartPolicy: never` kept, as before jobs existed).
            job: (restart_policy == RestartPolicy::Never).then(|| crate::JobSpec {
                backoff_limit: 0,
                ..Default::default()
            }),
            liveness_probe: None,
            readiness_probe: None,
            startup_probe: None,
            strategy: None,
            // An SLA has no autoscaling.
            autoscale: None,
            constraints,
            objective: None,
            image_pull_secret: None,
            // Oakestra's SLA has no privilege settings: its workloads get Canopy's defaults.
            security_context: Default::default(),
            secret_env: Default::default(),
            files: Vec::new(),
            volumes: Vec::new(),
            labels: BTreeMap::new(),
            annotations,
        };
        Some((svc, origin))
    }

    /// `"host[:container][/tcp|/udp]"`, several separated by `;` (Oakestra's net manager syntax).
    fn ports(&mut self, spec: &str, path: &str, origin: &mut ServiceOrigin) -> Vec<PortSpec> {
        let mut ports = Vec::new();
        for entry in spec.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (mapping, protocol) = match entry.rsplit_once('/') {
                None => (entry, Some(Protocol::Tcp)),
                Some((m, p)) if p.eq_ignore_ascii_case("tcp") => (m, Some(Protocol::Tcp)),
                Some((m, p)) if p.eq_ignore_ascii_case("udp") => (m, Some(Protocol::Udp)),
                Some((m, _)) => (m, None),
            };
            let Some(protocol) = protocol else {
                self.error(
                    path,
                    format!("entry {entry:?}: the protocol must be tcp or udp"),
                );
                continue;
            };
            let (host, container) = mapping.split_once(':').unwrap_or((mapping, mapping));
            match (parse_port(host), parse_port(container)) {
                (Some(host), Some(port)) => {
                    origin.ports.push(entry.to_string());
                    ports.push(PortSpec {
                        name: None,
                        port,
                        protocol,
                        host_port: Some(host),
                    });
                }
                _ => self.error(
                    path,
                    format!(
                        "entry {entry:?}: expected hostPort[:containerPort][/tcp|/udp] with ports 1-65535"
                    ),
                ),
            }
        }
        ports
    }
}

fn parse_port(text: &str) -> Option<u16> {
    text.trim().parse::<u16>().ok().filter(|p| *p > 0)
}

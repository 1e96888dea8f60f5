//! Oakestra SLA (v2) descriptors, accepted as Oakestra users write them and mapped onto the
//! native model.
//!
//! # Mapping
//!
//! | Oakestra | native |
//! |---|---|
//! | `application_name`, `application_namespace` | `metadata.name`, `metadata.namespace` (normalised to DNS labels: lowercase, `_`/`.`/space → `-`; the original is kept in annotation `oakestra.io/application_name`, with a warning) |
//! | `application_desc` | annotation `description` |
//! | `microservice_name` | service `name` (normalised likewise; original in `oakestra.io/microservice_name`) |
//! | `virtualization` `container` (or `docker`), `wasm` | `runtime` `container`, `wasm`; anything else (`unikernel`, `vm`) is an error |
//! | `code` | `image` (container) or `module` (wasm) |
//! | `cmd` | `command` (container; it replaces the image's entrypoint as in Oakestra), `args` (wasm) |
//! | `args` | `args` |
//! | `vcpus` (or `vcpu`), cores | `resources.cpu`, ×1000 millicores; absent = 1 core (Oakestra's default), 0 = Canopy's default 100m with a warning |
//! | `memory`, MiB | `resources.memory`; absent or 0 = Canopy's default 64Mi with a warning |
//! | `vgpus` (or `vgpu`) | `resources.gpus` |
//! | `storage`, MiB | `resources.storage` |
//! | `port` `"host[:container][/tcp\|/udp]"`, `;`-separated | `ports` (a lone number is both the host and the container port, as in Oakestra's net manager) |
//! | `environment` `["K=V"]` | `env` |
//! | `one_shot: true` | `restartPolicy: never` |
//! | constraint `direct` (`node` as `"n1;n2"`, `cluster`) | `direct` |
//! | constraint `geo` (`location` `"lat,lon"`, `threshold` km) | `geo` |
//! | constraint `latency` (`location`, `threshold` ms) | `latency.toPoint` |
//! | constraint `clusters` (`allowed`) | `clusters` |
//! | `connectivity[].con_constraints[]` of type `latency` | `latency.toService` (target by `microserviceID` or `microservice_name`) |
//! | `rigidness`, `convergence_time` | `rigidness`, `convergenceTime` |
//!
//! Every other field with a value (`customerID`, `applicationID`, `microserviceID`,
//! `microservice_namespace`, `vtpus`, `bandwidth_in`/`bandwidth_out`, `state`, `addresses`,
//! `added_files`, `privileged`, `sla_violation_strategy`, `target_node`, constraints of type
//! `addons`, `bandwidth` connectivity constraints, and fields Oakestra's schema does not know)
//! is **kept** in an annotation `oakestra.io/<field>` (JSON text unless it is a string) and
//! **reported** as a warning at its Oakestra path; nothing is dropped silently. Fields that
//! hold Oakestra's documented default (`0`, `""`, `[]`, `false`, `{}`) carry no information
//! and are accepted without annotation.
//!
//! Errors and warnings use Oakestra's paths: `applications[0].microservices[1].virtualization`.
//! Errors found by native validation after mapping are translated back to the Oakestra field
//! where there is one (`...microservices[1].memory` for `resources.memory`), and otherwise to
//! the microservice (or application) with the native field named in the reason.

use crate::descriptor::{
    API_VERSION, Application, ApplicationSpec, Constraint, DEFAULT_NAMESPACE, DirectPlacement,
    GeoConstraint, GeoPoint, KIND_APPLICATION, LatencyConstraint, Metadata, PortSpec, Protocol,
    Resources, RestartPolicy, RuntimeKind, ServiceSpec,
};
use crate::error::{DescriptorError, FieldError};
use crate::parse::{DescriptorFormat, ParsedDescriptor, duplicate_applications};
use crate::quantity::{Mebibytes, Millicores};
use crate::validate::validate_application;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Prefix of the annotations that keep Oakestra fields without a native home.
pub const ANNOTATION_PREFIX: &str = "oakestra.io/";

/// Whether `value` looks like an Oakestra SLA: an object with `sla_version` or `applications`.
pub fn is_oakestra_sla(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|m| m.contains_key("sla_version") || m.contains_key("applications"))
}

/// Maps an Oakestra SLA onto native applications and validates them; see the [module docs](self).
pub fn parse_oakestra(sla: &Value) -> Result<ParsedDescriptor, DescriptorError> {
    let mut m = Mapper::default();
    let mapped = m.sla(sla);
    // The mapper's own error on a field is more precise than what validation says about the
    // value it could not map, so validation errors at the same path are left out.
    let reported: std::collections::HashSet<String> =
        m.errors.iter().map(|e| e.path.clone()).collect();
    for (app, origin) in &mapped {
        for e in validate_application(app) {
            let e = origin.translate(e);
            if !reported.contains(&e.path) {
                m.errors.push(e);
            }
        }
    }
    let apps: Vec<&Application> = mapped.iter().map(|(app, _)| app).collect();
    let errors =
        duplicate_applications(&apps, |k| format!("{}.application_name", mapped[k].1.path));
    m.errors.extend(errors);
    if !m.errors.is_empty() {
        return Err(DescriptorError { errors: m.errors });
    }
    Ok(ParsedDescriptor {
        applications: mapped.into_iter().map(|(app, _)| app).collect(),
        warnings: m.warnings,
        format: DescriptorFormat::Oakestra,
    })
}

/// Where the parts of one mapped application came from, to point native errors back.
struct AppOrigin {
    path: String,
    services: Vec<ServiceOrigin>,
}

struct ServiceOrigin {
    path: String,
    /// Native env key → index in `environment`.
    env: BTreeMap<String, usize>,
    /// Per native port: the Oakestra `port` entry it came from.
    ports: Vec<String>,
    /// Per native constraint: the Oakestra path it came from.
    constraints: Vec<String>,
}

impl AppOrigin {
    /// A native validation error, re-addressed to the Oakestra field it stems from.
    fn translate(&self, e: FieldError) -> FieldError {
        let native = e.path.as_str();
        let app = &self.path;
        match native {
            "metadata.name" => return FieldError::new(format!("{app}.application_name"), e.reason),
            "metadata.namespace" => {
                return FieldError::new(format!("{app}.application_namespace"), e.reason);
            }
            "spec.services" => return FieldError::new(format!("{app}.microservices"), e.reason),
            _ => {}
        }
        let Some((index, rest)) = native
            .strip_prefix("spec.services[")
            .and_then(|s| s.split_once(']'))
            .and_then(|(i, rest)| Some((i.parse::<usize>().ok()?, rest)))
        else {
            return FieldError::new(app.clone(), format!("{native}: {}", e.reason));
        };
        let Some(svc) = self.services.get(index) else {
            return FieldError::new(app.clone(), format!("{native}: {}", e.reason));
        };
        svc.translate(rest, e.reason)
    }
}

impl ServiceOrigin {
    fn translate(&self, rest: &str, reason: String) -> FieldError {
        let p = &self.path;
        let direct = |field: &str| FieldError::new(format!("{p}.{field}"), reason.clone());
        match rest {
            ".name" => return direct("microservice_name"),
            ".image" | ".module" => return direct("code"),
            ".resources.cpu" => return direct("vcpus"),
            ".resources.memory" => return direct("memory"),
            ".resources.gpus" => return direct("vgpus"),
            ".resources.storage" => return direct("storage"),
            _ => {}
        }
        if let Some(tail) = rest.strip_prefix(".command") {
            return FieldError::new(format!("{p}.cmd{tail}"), reason);
        }
        if let Some(tail) = rest.strip_prefix(".args") {
            return FieldError::new(format!("{p}.args{tail}"), reason);
        }
        if rest.starts_with(".env") {
            // Validation renders env keys with key_path; render ours the same way to match.
            let index = self
                .env
                .iter()
                .find(|(key, _)| crate::validate::key_path(".env", key) == rest)
                .map(|(_, i)| *i);
            return match index {
                Some(i) => FieldError::new(format!("{p}.environment[{i}]"), reason),
                None => FieldError::new(format!("{p}.environment"), reason),
            };
        }
        if let Some((k, _)) = bracket_index(rest, ".ports") {
            let entry = self.ports.get(k).map(String::as_str).unwrap_or("?");
            return FieldError::new(format!("{p}.port"), format!("entry {entry:?}: {reason}"));
        }
        if let Some((k, tail)) = bracket_index(rest, ".constraints")
            && let Some(origin) = self.constraints.get(k)
        {
            let field = match tail {
                ".rigidness" => Some("rigidness"),
                ".convergenceTime" => Some("convergence_time"),
                ".geo.radiusKm" | ".latency.maxMs" => Some("threshold"),
                ".latency.toService" => Some("target_microservice_id"),
                ".direct.cluster" => Some("cluster"),
                ".clusters" => Some("allowed"),
                t if t.starts_with(".direct.nodes") || t == ".direct" => Some("node"),
                t if t.starts_with(".geo.location") || t.starts_with(".latency.toPoint") => {
                    Some("location")
                }
                t if t.starts_with(".clusters[") => Some("allowed"),
                _ => None,
            };
            return match field {
                // A connectivity latency's target lives beside con_constraints, not in it.
                Some("target_microservice_id") => {
                    let target = origin
                        .split_once(".con_constraints")
                        .map(|(c, _)| format!("{c}.target_microservice_id"))
                        .unwrap_or_else(|| origin.clone());
                    FieldError::new(target, reason)
                }
                Some(f) => FieldError::new(format!("{origin}.{f}"), reason),
                None if tail.is_empty() => FieldError::new(origin.clone(), reason),
                None => FieldError::new(origin.clone(), format!("{}: {reason}", &tail[1..])),
            };
        }
        let native = rest.strip_prefix('.').unwrap_or(rest);
        FieldError::new(p.clone(), format!("{native}: {reason}"))
    }
}

/// `(k, tail)` for `rest` = `{field}[k]{tail}`.
fn bracket_index<'a>(rest: &'a str, field: &str) -> Option<(usize, &'a str)> {
    let (index, tail) = rest
        .strip_prefix(field)?
        .strip_prefix('[')?
        .split_once(']')?;
    Some((index.parse().ok()?, tail))
}

#[derive(Default)]
struct Mapper {
    errors: Vec<FieldError>,
    warnings: Vec<FieldError>,
}

const TOP_FIELDS: &[&str] = &["sla_version", "customerID", "applications", "args"];
const APP_FIELDS: &[&str] = &[
    "applicationID",
    "application_name",
    "application_namespace",
    "application_desc",
    "microservices",
    "args",
];
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
        "Canopy addresses services by name (<service>.<app>.<namespace>.canopy), not by fixed IPs",
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
    fn error(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(path, reason));
    }

    fn warn(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.warnings.push(FieldError::new(path, reason));
    }

    /// Keeps a field without a native home in `annotations` and says so.
    fn keep(
        &mut self,
        annotations: &mut BTreeMap<String, String>,
        path: &str,
        field: &str,
        value: &Value,
        why: &str,
    ) {
        let key = annotation_key(field);
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        annotations.insert(key.clone(), text);
        self.warn(
            path,
            format!("no native equivalent ({why}); kept in annotation {key}"),
        );
    }

    fn sla(&mut self, sla: &Value) -> Vec<(Application, AppOrigin)> {
        let Some(root) = self.object(sla, "") else {
            return Vec::new();
        };
        match root.get("sla_version") {
            None => self.warn("sla_version", "missing; read as an Oakestra SLA v2"),
            Some(Value::String(v)) if v.starts_with("v2") || v.starts_with('2') => {}
            Some(Value::String(v)) => self.error(
                "sla_version",
                format!("unsupported SLA version {v:?}: Canopy reads Oakestra SLA v2 (\"v2.0\")"),
            ),
            Some(other) => self.error(
                "sla_version",
                format!("expected a string such as \"v2.0\", found {}", kind(other)),
            ),
        }
        // Fields of the whole SLA go to every application.
        let mut shared = BTreeMap::new();
        if let Some(customer) = root.get("customerID").filter(|v| has_value(v)) {
            self.keep(
                &mut shared,
                "customerID",
                "customerID",
                customer,
                "Canopy's tenants are namespaces; set on every application",
            );
        }
        for (key, value) in root {
            if TOP_FIELDS.contains(&key.as_str()) && key != "args" {
                continue;
            }
            if has_value(value) {
                let why = if key == "args" {
                    "free-form SLA arguments; set on every application"
                } else {
                    "not an Oakestra SLA v2 field; set on every application"
                };
                self.keep(&mut shared, key, key, value, why);
            }
        }
        let apps = match root.get("applications") {
            None => {
                self.error("applications", "is required: the list of applications");
                return Vec::new();
            }
            Some(Value::Array(apps)) if apps.is_empty() => {
                self.error("applications", "must list at least one application");
                return Vec::new();
            }
            Some(Value::Array(apps)) => apps,
            Some(other) => {
                self.error(
                    "applications",
                    format!("expected an array, found {}", kind(other)),
                );
                return Vec::new();
            }
        };
        if apps.len() > crate::limits::MAX_APPLICATIONS_PER_DESCRIPTOR {
            self.error(
                "applications",
                format!(
                    "must list at most {} applications, got {}",
                    crate::limits::MAX_APPLICATIONS_PER_DESCRIPTOR,
                    apps.len()
                ),
            );
            return Vec::new();
        }
        apps.iter()
            .enumerate()
            .filter_map(|(i, app)| self.application(app, &format!("applications[{i}]"), &shared))
            .collect()
    }

    fn application(
        &mut self,
        value: &Value,
        path: &str,
        shared: &BTreeMap<String, String>,
    ) -> Option<(Application, AppOrigin)> {
        let obj = self.object(value, path)?;
        let mut annotations = shared.clone();

        // A missing name is reported by native validation ("must not be empty").
        let raw_name = self
            .string(obj, "application_name", path)
            .unwrap_or_default();
        let name = self.name(
            &raw_name,
            &format!("{path}.application_name"),
            "application_name",
            &mut annotations,
        );
        let raw_ns = self
            .string(obj, "application_namespace", path)
            .unwrap_or_default();
        let namespace = if raw_ns.is_empty() {
            self.warn(
                format!("{path}.application_namespace"),
                format!("missing or empty; using namespace {DEFAULT_NAMESPACE:?}"),
            );
            DEFAULT_NAMESPACE.to_string()
        } else {
            self.name(
                &raw_ns,
                &format!("{path}.application_namespace"),
                "application_namespace",
                &mut annotations,
            )
        };
        if let Some(desc) = self.string(obj, "application_desc", path)
            && !desc.is_empty()
        {
            annotations.insert("description".into(), desc);
        }
        for (key, value) in obj {
            if !has_value(value)
                || (APP_FIELDS.contains(&key.as_str()) && key != "applicationID" && key != "args")
            {
                continue;
            }
            let why = match key.as_str() {
                "applicationID" => "Canopy identifies applications by namespace/name",
                "args" => "free-form application arguments",
                _ => "not an Oakestra SLA v2 field",
            };
            self.keep(&mut annotations, &format!("{path}.{key}"), key, value, why);
        }

        let services_path = format!("{path}.microservices");
        let micro = match obj.get("microservices") {
            Some(Value::Array(list)) => list.as_slice(),
            None => {
                self.error(&services_path, "is required: the list of microservices");
                &[]
            }
            Some(other) => {
                self.error(
                    &services_path,
                    format!("expected an array, found {}", kind(other)),
                );
                &[]
            }
        };
        // Connectivity names its target by id or name: collect both before mapping.
        let targets: Vec<Target> = micro
            .iter()
            .map(|m| Target {
                id: m
                    .get("microserviceID")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                raw_name: m
                    .get("microservice_name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                name: normalise_name(
                    m.get("microservice_name")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                ),
            })
            .collect();
        let mut services = Vec::new();
        let mut origins = Vec::new();
        for (j, m) in micro.iter().enumerate() {
            let sp = format!("{services_path}[{j}]");
            if let Some((svc, origin)) = self.service(m, &sp, &targets) {
                services.push(svc);
                origins.push(origin);
            }
        }
        let app = Application {
            api_version: API_VERSION.to_string(),
            kind: KIND_APPLICATION.to_string(),
            metadata: Metadata {
                name,
                namespace,
                labels: BTreeMap::new(),
                annotations,
            },
            spec: ApplicationSpec { services },
        };
        Some((
            app,
            AppOrigin {
                path: path.to_string(),
                services: origins,
            },
        ))
    }

    fn service(
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

        let runtime = match self.string(obj, "virtualization", path).as_deref() {
            Some("container") | Some("docker") => Some(RuntimeKind::Container),
            Some("wasm") => Some(RuntimeKind::Wasm),
            Some(other) => {
                self.error(
                    format!("{path}.virtualization"),
                    format!(
                        "unsupported virtualization {other:?}: Canopy runs \"container\" and \"wasm\" workloads from Oakestra SLAs"
                    ),
                );
                None
            }
            None => {
                if !obj.contains_key("virtualization") {
                    self.error(
                        format!("{path}.virtualization"),
                        "is required: \"container\" or \"wasm\"",
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
            module,
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
            constraints,
            objective: None,
            image_pull_secret: None,
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

    fn constraint(
        &mut self,
        value: &Value,
        path: &str,
        index: usize,
        annotations: &mut BTreeMap<String, String>,
    ) -> Option<Constraint> {
        let obj = self.object(value, path)?;
        let kind = match obj.get("type") {
            Some(Value::String(t)) => t.as_str(),
            None => {
                self.error(
                    format!("{path}.type"),
                    "is required: direct, geo, latency, clusters or addons",
                );
                return None;
            }
            Some(other) => {
                self.error(
                    format!("{path}.type"),
                    format!("expected a string, found {}", kind(other)),
                );
                return None;
            }
        };
        let mut c = Constraint {
            rigidness: self.number(obj, &["rigidness"], path).map(|(_, v)| v),
            convergence_time: self.seconds(obj, "convergence_time", path),
            ..Constraint::default()
        };
        let used: &[&str] = match kind {
            "direct" => {
                let nodes = self
                    .string(obj, "node", path)
                    .map(|n| {
                        n.split(';')
                            .map(str::trim)
                            .filter(|n| !n.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                let cluster = self.string(obj, "cluster", path).filter(|c| !c.is_empty());
                c.direct = Some(DirectPlacement { cluster, nodes });
                &["node", "cluster"]
            }
            "geo" => {
                let location = self.location(obj, path);
                let radius = self.threshold(obj, path, "km");
                if let (Some(location), Some(radius_km)) = (location, radius) {
                    c.geo = Some(GeoConstraint {
                        location,
                        radius_km,
                    });
                }
                &["location", "threshold"]
            }
            "latency" => {
                let max_ms = self.threshold(obj, path, "ms");
                if obj.contains_key("location") {
                    let location = self.location(obj, path);
                    if let (Some(pt), Some(max_ms)) = (location, max_ms) {
                        c.latency = Some(LatencyConstraint {
                            max_ms,
                            to_point: Some(pt),
                            to_service: None,
                        });
                    }
                } else if obj.contains_key("area") {
                    self.error(
                        format!("{path}.area"),
                        "named areas are not supported; give location as \"lat,lon\"",
                    );
                } else {
                    self.error(
                        format!("{path}.location"),
                        "is required: the point (\"lat,lon\") latency is measured to",
                    );
                }
                &["location", "threshold", "area"]
            }
            "clusters" => {
                c.clusters = Some(self.strings(obj, "allowed", path).unwrap_or_default());
                &["allowed"]
            }
            "addons" => {
                let key = format!("constraints.{index}");
                self.keep(
                    annotations,
                    path,
                    &key,
                    value,
                    "Canopy has no addon registry; not enforced",
                );
                return None;
            }
            other => {
                self.error(
                    format!("{path}.type"),
                    format!(
                        "unsupported constraint type {other:?}: expected direct, geo, latency, clusters or addons"
                    ),
                );
                return None;
            }
        };
        if (kind == "geo" || kind == "latency") && c.kinds().is_empty() {
            // Already reported at the Oakestra field; a kind-less constraint would add noise.
            return None;
        }
        // Fields this type does not read are kept, with the whole constraint for context.
        let unused: Vec<&String> = obj
            .iter()
            .filter(|(k, v)| {
                !used.contains(&k.as_str())
                    && !matches!(k.as_str(), "type" | "rigidness" | "convergence_time")
                    && has_value(v)
            })
            .map(|(k, _)| k)
            .collect();
        if !unused.is_empty() {
            let key = format!("constraints.{index}");
            let fields: Vec<String> = unused.iter().map(|k| format!("{k:?}")).collect();
            let why = format!("{} not used by a {kind} constraint", fields.join(", "));
            self.keep(annotations, path, &key, value, &why);
        }
        Some(c)
    }

    /// Latency constraints between microservices become `latency.toService`.
    fn connectivity(
        &mut self,
        value: &Value,
        path: &str,
        index: usize,
        targets: &[Target],
        annotations: &mut BTreeMap<String, String>,
    ) -> Vec<(Constraint, String)> {
        let Some(obj) = self.object(value, path) else {
            return Vec::new();
        };
        let target_path = format!("{path}.target_microservice_id");
        let target = match self.string(obj, "target_microservice_id", path) {
            Some(t) if !t.is_empty() => {
                let found = targets
                    .iter()
                    .find(|m| (!m.id.is_empty() && m.id == t) || m.raw_name == t || m.name == t);
                match found {
                    Some(m) => Some(m.name.clone()),
                    None => {
                        self.error(
                            &target_path,
                            format!("no microservice of this application has microserviceID or microservice_name {t:?}"),
                        );
                        None
                    }
                }
            }
            _ => {
                self.error(&target_path, "is required");
                None
            }
        };
        let list = match obj.get("con_constraints") {
            Some(Value::Array(list)) => list.as_slice(),
            Some(Value::Null) | None => &[],
            Some(other) => {
                self.error(
                    format!("{path}.con_constraints"),
                    format!("expected an array, found {}", kind(other)),
                );
                &[]
            }
        };
        let mut out = Vec::new();
        for (b, cc) in list.iter().enumerate() {
            let cp = format!("{path}.con_constraints[{b}]");
            let Some(cobj) = self.object(cc, &cp) else {
                continue;
            };
            match cobj.get("type").and_then(Value::as_str) {
                Some("latency") => {
                    let max_ms = self.threshold(cobj, &cp, "ms");
                    if let (Some(max_ms), Some(target)) = (max_ms, &target) {
                        let c = Constraint {
                            latency: Some(LatencyConstraint {
                                max_ms,
                                to_point: None,
                                to_service: Some(target.clone()),
                            }),
                            rigidness: self.number(cobj, &["rigidness"], &cp).map(|(_, v)| v),
                            convergence_time: self.seconds(cobj, "convergence_time", &cp),
                            ..Constraint::default()
                        };
                        out.push((c, cp));
                    }
                }
                Some("bandwidth") => {
                    let key = format!("connectivity.{index}.con_constraints.{b}");
                    self.keep(
                        annotations,
                        &cp,
                        &key,
                        cc,
                        "Canopy does not schedule bandwidth between services",
                    );
                }
                Some(other) => self.error(
                    format!("{cp}.type"),
                    format!("unsupported connectivity constraint type {other:?}: expected latency or bandwidth"),
                ),
                None => self.error(format!("{cp}.type"), "is required: latency or bandwidth"),
            }
        }
        out
    }

    /// Oakestra names may hold capitals and `_`; native ones are DNS labels.
    fn name(
        &mut self,
        raw: &str,
        path: &str,
        field: &str,
        annotations: &mut BTreeMap<String, String>,
    ) -> String {
        let name = normalise_name(raw);
        if name != raw && !name.is_empty() {
            let key = annotation_key(field);
            annotations.insert(key.clone(), raw.to_string());
            self.warn(
                path,
                format!(
                    "{raw:?} normalised to the DNS label {name:?}; the original is kept in annotation {key}"
                ),
            );
        }
        if name.is_empty() && !raw.is_empty() {
            // Nothing usable survived: let validation report the original.
            return raw.to_string();
        }
        name
    }

    fn object<'a>(&mut self, value: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.error(path, format!("expected an object, found {}", kind(other)));
                None
            }
        }
    }

    /// A string field: `None` when absent or null; an error when of another type.
    fn string(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        match obj.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => {
                self.error(
                    format!("{path}.{key}"),
                    format!("expected a string, found {}", kind(other)),
                );
                None
            }
        }
    }

    fn strings(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<Vec<String>> {
        match obj.get(key) {
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s.clone()),
                        other => self.error(
                            format!("{path}.{key}[{i}]"),
                            format!("expected a string, found {}", kind(other)),
                        ),
                    }
                }
                Some(out)
            }
            Some(Value::Null) | None => None,
            Some(other) => {
                self.error(
                    format!("{path}.{key}"),
                    format!("expected an array of strings, found {}", kind(other)),
                );
                None
            }
        }
    }

    /// The first of `keys` present, as a finite number (Oakestra writes `vcpus` and `vcpu`).
    fn number<'k>(
        &mut self,
        obj: &Map<String, Value>,
        keys: &[&'k str],
        path: &str,
    ) -> Option<(&'k str, f64)> {
        let (key, value) = keys
            .iter()
            .find_map(|k| obj.get(*k).filter(|v| !v.is_null()).map(|v| (*k, v)))?;
        match value.as_f64() {
            Some(v) if v.is_finite() => Some((key, v)),
            _ => {
                self.error(
                    format!("{path}.{key}"),
                    format!("expected a number, found {}", kind(value)),
                );
                None
            }
        }
    }

    /// A non-negative whole count (GPUs, MiB of storage).
    fn count(&mut self, obj: &Map<String, Value>, keys: &[&str], path: &str) -> u32 {
        match self.number(obj, keys, path) {
            None => 0,
            Some((_, v)) if v >= 0.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX) => v as u32,
            Some((key, v)) => {
                self.error(
                    format!("{path}.{key}"),
                    format!("must be a whole number >= 0, got {v}"),
                );
                0
            }
        }
    }

    fn seconds(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<u64> {
        let (key, v) = self.number(obj, &[key], path)?;
        if v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
            Some(v as u64)
        } else {
            self.error(
                format!("{path}.{key}"),
                format!("must be a whole number of seconds >= 0, got {v}"),
            );
            None
        }
    }

    fn threshold(&mut self, obj: &Map<String, Value>, path: &str, unit: &str) -> Option<f64> {
        if !obj.contains_key("threshold") {
            self.error(format!("{path}.threshold"), format!("is required ({unit})"));
            return None;
        }
        self.number(obj, &["threshold"], path).map(|(_, v)| v)
    }

    /// `"lat,lon"` in degrees.
    fn location(&mut self, obj: &Map<String, Value>, path: &str) -> Option<GeoPoint> {
        let p = format!("{path}.location");
        let Some(text) = self.string(obj, "location", path) else {
            if !obj.contains_key("location") {
                self.error(&p, "is required: \"lat,lon\" in degrees");
            }
            return None;
        };
        let parsed = text.split_once(',').and_then(|(lat, lon)| {
            Some(GeoPoint {
                lat: lat.trim().parse().ok()?,
                lon: lon.trim().parse().ok()?,
            })
        });
        if parsed.is_none() {
            self.error(
                &p,
                format!("expected \"lat,lon\" in degrees (e.g. \"48.26,11.67\"), got {text:?}"),
            );
        }
        parsed
    }
}

/// A microservice a connectivity entry may name.
struct Target {
    id: String,
    raw_name: String,
    name: String,
}

/// Lowercase; `_`, `.`, spaces and other characters outside `[a-z0-9-]` become `-`; no `-` at
/// either end; at most 63 characters.
pub fn normalise_name(raw: &str) -> String {
    let mapped: String = raw
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches('-');
    let cut: String = trimmed.chars().take(crate::limits::MAX_NAME_LEN).collect();
    cut.trim_end_matches('-').to_string()
}

/// `oakestra.io/<field>`, with characters a label key may not hold replaced by `_`.
fn annotation_key(field: &str) -> String {
    let cleaned: String = field
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let name: String = trimmed.chars().take(crate::limits::MAX_NAME_LEN).collect();
    let name = name.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let name = if name.is_empty() { "field" } else { name };
    format!("{ANNOTATION_PREFIX}{name}")
}

fn parse_port(text: &str) -> Option<u16> {
    text.trim().parse::<u16>().ok().filter(|p| *p > 0)
}

/// Whether a value says anything beyond Oakestra's defaults (`null`, `0`, `""`, `[]`, `{}`, `false`).
fn has_value(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

//! Oakestra SLA (v2) descriptors, accepted as Oakestra users write them and mapped onto the
//! native model.
//!
//! # Mapping
//!
//! | Oakestra | native |
//! |---|---|
//! | `application_name`, `application_namespace` | `metadata.name`, `metadata.namespace` (lowercased, the one normalisation; the original is kept in annotation `oakestra.io/application_name`, with a warning; whatever is still no DNS label, such as `../../etc` or 300 characters, is refused with its SLA path) |
//! | `application_desc` | annotation `description` |
//! | `microservice_name` | service `name` (normalised likewise; original in `oakestra.io/microservice_name`) |
//! | `virtualization` `container` (or `docker`), `runsc`, `wasm` | `runtime` `container`; `container` with `sandbox: gvisor`; `wasm`; anything else (`unikernel`, `vm`) is an error |
//! | `code` | `image` (container) or `module` (wasm) |
//! | `cmd` | `command` (container; it replaces the image's entrypoint as in Oakestra), `args` (wasm) |
//! | `args` | `args` |
//! | `vcpus` (or `vcpu`), cores | `resources.cpu`, ×1000 millicores; absent = 1 core (Oakestra's default), 0 = Canopy's default 100m with a warning |
//! | `memory`, MiB | `resources.memory`; absent or 0 = Canopy's default 64Mi with a warning |
//! | `vgpus` (or `vgpu`) | `resources.gpus` |
//! | `storage`, MiB | `resources.storage` |
//! | `port` `"host[:container][/tcp\|/udp]"`, `;`-separated | `ports` (a lone number is both the host and the container port, as in Oakestra's net manager) |
//! | `environment` `["K=V"]` | `env` |
//! | `one_shot: true` | `restartPolicy: never` and `job: {backoffLimit: 0}` (one run, not retried) |
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
//! The kept `addresses` (`rr_ip`, `closest_ip`, `instances[].instance_ip`) are read back
//! by the overlay ([`fixed_addresses`]) as virtual addresses with their policies.
//!
//! Errors and warnings use Oakestra's paths: `applications[0].microservices[1].virtualization`.
//! Errors found by native validation after mapping are translated back to the Oakestra field
//! where there is one (`...microservices[1].memory` for `resources.memory`), and otherwise to
//! the microservice (or application) with the native field named in the reason.

mod addresses;
mod annotations;
mod constraints;
mod names;
mod origin;
mod service;
mod values;

pub use addresses::{ADDRESSES_ANNOTATION, AddressPolicy, fixed_addresses};
pub use annotations::ANNOTATION_PREFIX;
pub use names::normalise_name;

use crate::descriptor::{
    API_VERSION, Application, ApplicationSpec, DEFAULT_NAMESPACE, KIND_APPLICATION, Metadata,
};
use crate::error::{DescriptorError, FieldError};
use crate::parse::{DescriptorFormat, ParsedDescriptor, duplicate_applications};
use crate::validate::validate_application;
use constraints::Target;
use origin::AppOrigin;
use serde_json::Value;
use std::collections::BTreeMap;
use values::{has_value, kind};

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

impl Mapper {
    fn error(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(path, reason));
    }

    fn warn(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.warnings.push(FieldError::new(path, reason));
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
}

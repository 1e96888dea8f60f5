//! Eclipse aeriOS service descriptors: the TOSCA (Simple Profile 1.3) documents the aeriOS
//! HLO front end accepts (`eclipse-aerios/hlo-fe`, `src/app/app_models/tosca_models.py`
//! and its examples under `tosca_yamls/`), mapped onto the native model as Oakestra SLAs
//! are ([`crate::oakestra`]): what has a native home is mapped, everything else is **kept**
//! in an annotation `aerios.eu/<field>` and **reported** as a warning at its TOSCA path.
//!
//! # Mapping
//!
//! | aeriOS TOSCA | native |
//! |---|---|
//! | the document | one application; `metadata.template_name` its name (else its node templates' names joined, with a warning), `metadata.namespace` its namespace (else `default`, with a warning) |
//! | `description` | annotation `description` |
//! | `node_templates.<name>` (type `tosca.nodes.Container.Application`) | a container service `<name>`, lowercased with `_` as `-` (the original in annotation `aerios.eu/node_template`) |
//! | the artifact `interfaces.Standard.create.implementation` names (type `tosca.artifacts.Deployment.Image.Container.Docker`): `file`, `repository` | `image`: `file`, prefixed by `repository` unless that is `docker_hub`, empty, or already in `file` |
//! | `...create.inputs.envVars` (`[{K: V}]`) | `env` |
//! | `...create.inputs.cliArgs` (`[{-a: v}]`) | `args` (`-a`, `v`; an empty value adds the key alone) |
//! | `requirements[].host.node_filter.properties.id` (`urn:ngsi-ld:InfrastructureElement:[<domain>:]<node>`) | constraint `direct` (cluster, node) |
//! | `...capabilities[].host.properties.cpu_arch.equal` (`x86_64`, `arm64`, `arm32`) | constraint `arch` (`amd64`, `arm64`, `arm`) |
//! | `...mem_size.greater_or_equal` (`4096 MB`; the data model counts MB) | `resources.memory` (MiB): what a node must have free |
//! | `...domain_id.equal` (`urn:ngsi-ld:Domain:<d>`) | constraint `clusters: [<d>]` |
//! | `...area.coordinates` (a polygon, `[lon, lat]` points) | constraint `geo`: the circle around the polygon (a warning says it is approximated) |
//! | `requirements[].network.properties.ports.<name>` (`protocol: [tcp, udp]`, `source`) | `ports`, one per protocol; `exposePorts: true` also publishes each on its node (`hostPort`) |
//! | `isJob: true` | `restartPolicy: never` |
//!
//! Kept with a warning: `cpu_usage`, `realtime`, `energy_efficiency`, `green`,
//! `serviceOverlay`, `isPrivate` (name the registry's secret in `imagePullSecret`),
//! and any field the front end's schema does not know. Refused: another node or artifact
//! type, and registry credentials in the descriptor (`username`, `password`: Canopy keeps
//! them only in secrets).

mod host;
mod node;

use crate::descriptor::{API_VERSION, Application, DEFAULT_NAMESPACE, KIND_APPLICATION};
use crate::error::{DescriptorError, FieldError};
use crate::parse::{DescriptorFormat, ParsedDescriptor};
use crate::validate::validate_application;
use serde_json::{Map, Value, json};

/// Prefix of the annotations that keep aeriOS fields without a native home.
pub const ANNOTATION_PREFIX: &str = "aerios.eu/";

/// Whether `value` looks like an aeriOS TOSCA descriptor.
pub fn is_tosca(value: &Value) -> bool {
    value.as_object().is_some_and(|m| {
        m.contains_key("tosca_definitions_version") || m.contains_key("node_templates")
    })
}

/// Maps an aeriOS TOSCA descriptor onto one native application and validates it; see the
/// [module docs](self).
pub fn parse_tosca(document: &Value) -> Result<ParsedDescriptor, DescriptorError> {
    let mut m = Mapper::default();
    let mapped = m.document(document);
    if let Some((app, templates)) = &mapped {
        for error in validate_application(app) {
            m.errors.push(translate(error, templates));
        }
    }
    match mapped {
        Some((app, _)) if m.errors.is_empty() => Ok(ParsedDescriptor {
            applications: vec![app],
            warnings: m.warnings,
            format: DescriptorFormat::Tosca,
        }),
        _ => Err(DescriptorError { errors: m.errors }),
    }
}

/// A native error at `spec.services[i]...` said at the node template it came from.
fn translate(error: FieldError, templates: &[String]) -> FieldError {
    let path = error.path.as_str();
    if let Some(rest) = path.strip_prefix("spec.services[")
        && let Some((index, field)) = rest.split_once(']')
        && let Some(template) = index.parse::<usize>().ok().and_then(|i| templates.get(i))
    {
        let field = field.trim_start_matches('.');
        let reason = if field.is_empty() {
            error.reason.clone()
        } else {
            format!("{field}: {}", error.reason)
        };
        return FieldError::new(format!("node_templates.{template}"), reason);
    }
    match path {
        "metadata.name" => FieldError::new("metadata.template_name", error.reason),
        _ => error,
    }
}

#[derive(Default)]
struct Mapper {
    errors: Vec<FieldError>,
    warnings: Vec<FieldError>,
}

/// A TOSCA name as a DNS label: lowercased, `_` as `-` (what is still no label is refused
/// by validation).
pub fn normalise_name(raw: &str) -> String {
    raw.to_ascii_lowercase().replace('_', "-")
}

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A scalar as text (`22` → `"22"`, `false` → `"false"`); `None` for arrays and objects.
pub(crate) fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Null => Some(String::new()),
        Value::Bool(_) | Value::Number(_) => Some(value.to_string()),
        _ => None,
    }
}

/// A boolean, also as YAML 1.1 and Python spell it (`True`, `false`).
pub(crate) fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// `aerios.eu/<field>`, with characters a key may not hold replaced by `_`.
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
    let name: String = cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(crate::limits::MAX_NAME_LEN)
        .collect();
    let name = name.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    let name = if name.is_empty() { "field" } else { name };
    format!("{ANNOTATION_PREFIX}{name}")
}

const TOP_FIELDS: &[&str] = &[
    "tosca_definitions_version",
    "description",
    "metadata",
    "node_templates",
];

impl Mapper {
    fn error(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(path, reason));
    }

    fn warn(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.warnings.push(FieldError::new(path, reason));
    }

    /// Keeps `value` (found at `path`) in `annotations` under `aerios.eu/<field>`, and says so.
    fn keep(
        &mut self,
        annotations: &mut Map<String, Value>,
        path: &str,
        field: &str,
        value: &Value,
        why: &str,
    ) {
        let key = annotation_key(field);
        let kept = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        annotations.insert(key.clone(), Value::String(kept));
        self.warn(
            path,
            format!("no native equivalent ({why}); kept in annotation {key}"),
        );
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

    /// The application and the node template of each of its services, in order.
    fn document(&mut self, document: &Value) -> Option<(Application, Vec<String>)> {
        let root = self.object(document, "")?;
        match root.get("tosca_definitions_version") {
            None => self.warn(
                "tosca_definitions_version",
                "missing; read as tosca_simple_yaml_1_3, as the aeriOS front end does",
            ),
            Some(Value::String(v)) if v.starts_with("tosca_simple_yaml_1_") => {}
            Some(other) => self.error(
                "tosca_definitions_version",
                format!("expected tosca_simple_yaml_1_3, found {other}"),
            ),
        }
        let mut annotations = Map::new();
        if let Some(description) = root.get("description") {
            match description {
                Value::String(d) if !d.trim().is_empty() => {
                    annotations.insert("description".into(), Value::String(d.trim().to_string()));
                }
                Value::String(_) | Value::Null => {}
                other => self.error(
                    "description",
                    format!("expected a string, found {}", kind(other)),
                ),
            }
        }
        for (key, value) in root {
            if !TOP_FIELDS.contains(&key.as_str()) && !value.is_null() {
                self.keep(&mut annotations, key, key, value, "not mapped by Canopy");
            }
        }
        let templates = match root.get("node_templates") {
            Some(Value::Object(t)) if !t.is_empty() => t,
            Some(Value::Object(_)) => {
                self.error("node_templates", "must hold at least one node template");
                return None;
            }
            None => {
                self.error("node_templates", "is required: the service's components");
                return None;
            }
            Some(other) => {
                self.error(
                    "node_templates",
                    format!("expected an object, found {}", kind(other)),
                );
                return None;
            }
        };
        let (name, namespace) = self.names(root.get("metadata"), templates, &mut annotations);
        let mut services = Vec::new();
        let mut origins = Vec::new();
        for (template, value) in templates {
            if let Some(service) = self.node(template, value) {
                services.push(service);
                origins.push(template.clone());
            }
        }
        let app = json!({
            "apiVersion": API_VERSION,
            "kind": KIND_APPLICATION,
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"services": services},
        });
        match serde_path_to_error::deserialize::<_, Application>(app) {
            Ok(app) => Some((app, origins)),
            Err(e) => {
                // A value the mapping passed on as it was, of a type the native field refuses.
                let error = translate(
                    FieldError::new(e.path().to_string(), e.inner().to_string()),
                    &origins,
                );
                self.errors.push(error);
                None
            }
        }
    }

    /// The application's name and namespace, from `metadata` or the node templates.
    fn names(
        &mut self,
        metadata: Option<&Value>,
        templates: &Map<String, Value>,
        annotations: &mut Map<String, Value>,
    ) -> (String, String) {
        let mut name = None;
        let mut namespace = None;
        if let Some(metadata) = metadata.filter(|m| !m.is_null())
            && let Some(metadata) = self.object(metadata, "metadata")
        {
            for (key, value) in metadata {
                let path = format!("metadata.{key}");
                match (key.as_str(), value) {
                    ("template_name", Value::String(v)) => name = Some(v.clone()),
                    ("namespace", Value::String(v)) => namespace = Some(v.clone()),
                    ("template_name" | "namespace", other) => {
                        self.error(path, format!("expected a string, found {}", kind(other)));
                    }
                    _ => self.keep(annotations, &path, &path, value, "template metadata"),
                }
            }
        }
        let name = match name {
            Some(raw) => {
                let name = normalise_name(&raw);
                if name != raw {
                    annotations.insert(annotation_key("template_name"), Value::String(raw.clone()));
                    self.warn(
                        "metadata.template_name",
                        format!("{raw:?} read as {name:?}"),
                    );
                }
                name
            }
            None => {
                let joined: Vec<String> = templates.keys().map(|t| normalise_name(t)).collect();
                let joined = joined.join("-");
                let name: String = joined.chars().take(crate::limits::MAX_NAME_LEN).collect();
                let name = name.trim_end_matches('-').to_string();
                self.warn(
                    "metadata.template_name",
                    format!("missing (the aeriOS front end takes the name from its URL); the application is named {name:?} after its node templates"),
                );
                name
            }
        };
        let namespace = namespace.unwrap_or_else(|| {
            self.warn(
                "metadata.namespace",
                format!("missing; using namespace {DEFAULT_NAMESPACE:?}"),
            );
            DEFAULT_NAMESPACE.to_string()
        });
        (name, namespace)
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

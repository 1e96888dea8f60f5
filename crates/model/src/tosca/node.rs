//! One node template (`tosca.nodes.Container.Application`) as one native container service.

use super::{Mapper, annotation_key, boolean, kind, normalise_name, text};
use serde_json::{Map, Value, json};

const NODE_TYPE: &str = "tosca.nodes.Container.Application";
const IMAGE_TYPE: &str = "tosca.artifacts.Deployment.Image.Container.Docker";
/// A `repository` that names no registry: the image is Docker Hub's, as `file` spells it.
const DOCKER_HUB: &str = "docker_hub";
const NODE_FIELDS: &[&str] = &["type", "requirements", "artifacts", "interfaces", "isJob"];

/// What a node template's pieces give the service.
#[derive(Default)]
pub(super) struct Service {
    pub spec: Map<String, Value>,
    pub annotations: Map<String, Value>,
    pub constraints: Vec<Value>,
    pub ports: Vec<Value>,
}

impl Mapper {
    pub(super) fn node(&mut self, template: &str, value: &Value) -> Option<Value> {
        let path = format!("node_templates.{template}");
        let obj = self.object(value, &path)?;
        let mut s = Service::default();
        let name = normalise_name(template);
        if name != template {
            s.annotations.insert(
                annotation_key("node_template"),
                Value::String(template.to_string()),
            );
        }
        match obj.get("type") {
            Some(Value::String(t)) if t == NODE_TYPE => {}
            Some(other) => self.error(
                format!("{path}.type"),
                format!("Canopy maps {NODE_TYPE} node templates only, found {other}"),
            ),
            None => self.error(format!("{path}.type"), format!("is required: {NODE_TYPE}")),
        }
        let implementation = obj
            .get("interfaces")
            .and_then(|i| i.pointer("/Standard/create/implementation"))
            .and_then(Value::as_str)
            .map(str::to_string);
        self.artifact(
            obj.get("artifacts"),
            implementation.as_deref(),
            &path,
            &mut s,
        );
        if let Some(interfaces) = obj.get("interfaces") {
            self.interfaces(interfaces, &format!("{path}.interfaces"), &mut s);
        }
        match obj.get("requirements") {
            Some(Value::Array(list)) => {
                for (i, requirement) in list.iter().enumerate() {
                    self.requirement(requirement, &format!("{path}.requirements[{i}]"), &mut s);
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => self.error(
                format!("{path}.requirements"),
                format!("expected an array, found {}", kind(other)),
            ),
        }
        match obj.get("isJob") {
            Some(Value::Null) | None => {}
            Some(value) => match boolean(value) {
                Some(true) => {
                    s.spec.insert("restartPolicy".into(), json!("never"));
                }
                Some(false) => {}
                None => self.error(
                    format!("{path}.isJob"),
                    format!("expected a boolean, found {}", kind(value)),
                ),
            },
        }
        for (key, value) in obj {
            if !NODE_FIELDS.contains(&key.as_str()) && !value.is_null() {
                self.keep(
                    &mut s.annotations,
                    &format!("{path}.{key}"),
                    key,
                    value,
                    "not an aeriOS node template field",
                );
            }
        }
        s.spec.insert("name".into(), Value::String(name));
        s.spec.insert("runtime".into(), json!("container"));
        if !s.constraints.is_empty() {
            s.spec
                .insert("constraints".into(), Value::Array(s.constraints));
        }
        if !s.ports.is_empty() {
            s.spec.insert("ports".into(), Value::Array(s.ports));
        }
        if !s.annotations.is_empty() {
            s.spec
                .insert("annotations".into(), Value::Object(s.annotations));
        }
        Some(Value::Object(s.spec))
    }

    fn artifact(
        &mut self,
        artifacts: Option<&Value>,
        implementation: Option<&str>,
        path: &str,
        s: &mut Service,
    ) {
        let path = format!("{path}.artifacts");
        let Some(artifacts) = artifacts else {
            self.error(&path, "is required: the container image");
            return;
        };
        let Some(artifacts) = self.object(artifacts, &path) else {
            return;
        };
        let chosen = match implementation {
            Some(name) if artifacts.contains_key(name) => name.to_string(),
            Some(name) => {
                self.error(&path, format!("interfaces.Standard.create.implementation names {name:?}, which is not an artifact here"));
                return;
            }
            None if artifacts.len() == 1 => artifacts.keys().next().cloned().unwrap_or_default(),
            None => {
                self.error(&path, "several artifacts and no interfaces.Standard.create.implementation to choose one");
                return;
            }
        };
        for (name, value) in artifacts {
            if *name != chosen {
                self.keep(
                    &mut s.annotations,
                    &format!("{path}.{name}"),
                    &format!("artifacts.{name}"),
                    value,
                    "not the implementation",
                );
            }
        }
        let path = format!("{path}.{chosen}");
        let Some(artifact) = artifacts.get(&chosen).and_then(|a| self.object(a, &path)) else {
            return;
        };
        match artifact.get("type") {
            Some(Value::String(t)) if t == IMAGE_TYPE => {}
            other => self.error(
                format!("{path}.type"),
                format!(
                    "Canopy runs {IMAGE_TYPE} artifacts only, found {}",
                    other.map_or("nothing".to_string(), Value::to_string)
                ),
            ),
        }
        let file = match artifact.get("file") {
            Some(Value::String(f)) if !f.is_empty() => f.clone(),
            _ => {
                self.error(format!("{path}.file"), "is required: the image");
                return;
            }
        };
        let repository = artifact
            .get("repository")
            .and_then(Value::as_str)
            .unwrap_or("");
        let image = if repository.is_empty()
            || repository == DOCKER_HUB
            || file
                .to_ascii_lowercase()
                .starts_with(&repository.to_ascii_lowercase())
        {
            file
        } else {
            format!("{repository}/{file}")
        };
        let lowered = lowercase_repository(&image);
        if lowered != image {
            self.warn(
                format!("{path}.file"),
                format!("image references are lowercase: {image:?} read as {lowered:?}"),
            );
        }
        s.spec.insert("image".into(), Value::String(lowered));
        for credential in ["username", "password"] {
            if artifact
                .get(credential)
                .and_then(Value::as_str)
                .is_some_and(|v| !v.is_empty())
            {
                self.error(
                    format!("{path}.{credential}"),
                    "registry credentials are not accepted in a descriptor: create a secret and name it in the service's imagePullSecret",
                );
            }
        }
        for (key, value) in artifact {
            match key.as_str() {
                "type" | "file" | "repository" | "username" | "password" => {}
                "isPrivate" if boolean(value) == Some(false) => {}
                "isPrivate" => self.keep(
                    &mut s.annotations,
                    &format!("{path}.isPrivate"),
                    "isPrivate",
                    value,
                    "name the registry's secret in imagePullSecret",
                ),
                _ if value.is_null() => {}
                _ => self.keep(
                    &mut s.annotations,
                    &format!("{path}.{key}"),
                    &format!("artifact.{key}"),
                    value,
                    "not an aeriOS artifact field",
                ),
            }
        }
    }

    fn interfaces(&mut self, interfaces: &Value, path: &str, s: &mut Service) {
        let Some(interfaces) = self.object(interfaces, path) else {
            return;
        };
        for (name, value) in interfaces {
            if name != "Standard" {
                self.keep(
                    &mut s.annotations,
                    &format!("{path}.{name}"),
                    &format!("interfaces.{name}"),
                    value,
                    "only Standard.create is run",
                );
                continue;
            }
            let Some(operations) = self.object(value, &format!("{path}.Standard")) else {
                continue;
            };
            for (operation, value) in operations {
                let op_path = format!("{path}.Standard.{operation}");
                if operation != "create" {
                    self.keep(
                        &mut s.annotations,
                        &op_path,
                        &format!("interfaces.Standard.{operation}"),
                        value,
                        "only create is run",
                    );
                    continue;
                }
                let Some(create) = self.object(value, &op_path) else {
                    continue;
                };
                for (key, value) in create {
                    match key.as_str() {
                        "implementation" => {}
                        "inputs" => self.inputs(value, &format!("{op_path}.inputs"), s),
                        _ => self.keep(
                            &mut s.annotations,
                            &format!("{op_path}.{key}"),
                            &format!("create.{key}"),
                            value,
                            "not an aeriOS create field",
                        ),
                    }
                }
            }
        }
    }

    fn inputs(&mut self, inputs: &Value, path: &str, s: &mut Service) {
        let Some(inputs) = self.object(inputs, path) else {
            return;
        };
        for (key, value) in inputs {
            let list_path = format!("{path}.{key}");
            match key.as_str() {
                "envVars" => {
                    let mut env = Map::new();
                    for (name, value) in self.pairs(value, &list_path) {
                        env.insert(name, Value::String(value));
                    }
                    s.spec.insert("env".into(), Value::Object(env));
                }
                "cliArgs" => {
                    let mut args = Vec::new();
                    for (name, value) in self.pairs(value, &list_path) {
                        args.push(Value::String(name));
                        if !value.is_empty() {
                            args.push(Value::String(value));
                        }
                    }
                    s.spec.insert("args".into(), Value::Array(args));
                }
                _ if value.is_null() => {}
                _ => self.keep(
                    &mut s.annotations,
                    &list_path,
                    &format!("inputs.{key}"),
                    value,
                    "not an aeriOS input",
                ),
            }
        }
    }

    /// `[{K: V}, ...]` as `(K, V)` pairs, scalars as text.
    fn pairs(&mut self, value: &Value, path: &str) -> Vec<(String, String)> {
        let items = match value {
            Value::Array(items) => items,
            Value::Null => return Vec::new(),
            other => {
                self.error(
                    path,
                    format!("expected a list of {{NAME: VALUE}}, found {}", kind(other)),
                );
                return Vec::new();
            }
        };
        let mut pairs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item_path = format!("{path}[{i}]");
            let Some(map) = item.as_object().filter(|m| m.len() == 1) else {
                self.error(&item_path, "expected one {NAME: VALUE}");
                continue;
            };
            for (name, value) in map {
                match text(value) {
                    Some(value) => pairs.push((name.clone(), value)),
                    None => self.error(
                        format!("{item_path}.{name}"),
                        format!("expected a scalar, found {}", kind(value)),
                    ),
                }
            }
        }
        pairs
    }
}

/// The reference with its registry and repository lowercased (a tag keeps its case):
/// registries lowercase repository paths, and a reference may not hold capitals there.
fn lowercase_repository(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name[last_slash..].rfind(':') {
        Some(i) => name.split_at(last_slash + i),
        None => (name, ""),
    };
    let mut out = repository.to_ascii_lowercase();
    out.push_str(tag);
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest);
    }
    out
}

//! Descriptor text → validated applications.
//!
//! # Accepted input
//!
//! * **Native**, in JSON or YAML: one `Application` object, an array of them (a JSON array,
//!   or a YAML sequence as the only document), or several YAML documents separated by `---`
//!   (empty documents are skipped).
//! * **Oakestra SLA** (v2), in JSON (or YAML): recognised by a top-level `sla_version` or
//!   `applications` key, mapped to native applications by [`crate::oakestra`]. An SLA must be
//!   the only document of its input.
//! * **aeriOS TOSCA** (Simple Profile 1.3), in YAML (or JSON): recognised by a top-level
//!   `tosca_definitions_version` or `node_templates` key, mapped to one native application
//!   by [`crate::tosca`]; the only document of its input too.
//!
//! Text whose first non-blank character is `{` or `[` is read as JSON (with serde_json, for
//! exact JSON errors); anything else as YAML. Input above [`MAX_DESCRIPTOR_BYTES`] is refused
//! before it is read; YAML deeper than [`crate::limits::MAX_YAML_FLOW_DEPTH`] or whose aliases
//! would expand it past [`crate::limits::MAX_YAML_EXPANDED_BYTES`] is refused before the YAML
//! parser sees it (see [`crate::check_yaml_bounds`]). JSON nesting is bounded by serde_json
//! (128 levels).
//!
//! # Error paths
//!
//! Every error is reported, each with a [`FieldError`] path in the wire's names:
//!
//! * Native, one document: `spec.services[1].replicas`.
//! * Native, several documents (multi-document YAML or a JSON array of more than one element):
//!   **every** path is prefixed with `documents[N].`, N counting documents from 0 in input
//!   order (skipped empty YAML documents keep their number), e.g.
//!   `documents[1].spec.services[0].image`. A path of the whole input is empty.
//! * Map keys render as `.key` for plain words and `["key"]` otherwise.
//! * Oakestra: paths in the SLA's own field names, e.g.
//!   `applications[0].microservices[1].virtualization` (see [`crate::oakestra`]).
//! * aeriOS TOSCA: paths in the TOSCA document's names, e.g.
//!   `node_templates.web.artifacts.image.type` (see [`crate::tosca`]).
//!
//! Type and shape errors (including unknown fields, which the native types deny) carry the
//! path of the offending field and, where the parser knows it, the line and column.

use crate::descriptor::Application;
use crate::error::{DescriptorError, FieldError};
use crate::limits::{MAX_APPLICATIONS_PER_DESCRIPTOR, MAX_DESCRIPTOR_BYTES};
use crate::oakestra;
use crate::tosca;
use crate::validate::{key_path, validate_application};
use crate::yaml_bounds::check_yaml_bounds;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Where the applications of a descriptor came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DescriptorFormat {
    /// Canopy's own `apiVersion: canopy.dev/v1` descriptor.
    Native,
    /// An Oakestra SLA (v2), mapped onto the native model.
    Oakestra,
    /// An Eclipse aeriOS TOSCA service descriptor, mapped onto the native model.
    Tosca,
}

/// A descriptor that parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedDescriptor {
    pub applications: Vec<Application>,
    /// Things accepted but worth telling: Oakestra fields kept only in annotations, names
    /// normalised to DNS labels, and the like.
    pub warnings: Vec<FieldError>,
    pub format: DescriptorFormat,
}

/// Parses and validates a descriptor; see the [module docs](self) for formats and error paths.
pub fn parse_descriptor(text: &str) -> Result<ParsedDescriptor, DescriptorError> {
    if text.len() > MAX_DESCRIPTOR_BYTES {
        return Err(single(
            "",
            format!(
                "descriptor is {} bytes; the limit is {MAX_DESCRIPTOR_BYTES} bytes (1 MiB)",
                text.len()
            ),
        ));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let start = text.trim_start();
    if start.is_empty() {
        return Err(single("", "descriptor is empty"));
    }
    if start.starts_with('{') || start.starts_with('[') {
        parse_json(text)
    } else {
        parse_yaml(text)
    }
}

/// The application as pretty JSON (the API's wire form).
pub fn to_json(app: &Application) -> String {
    // Plain structs with string map keys: serialization cannot fail.
    serde_json::to_string_pretty(app)
        .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()))
}

/// The application as a YAML document (what `canopy get -o yaml` prints).
pub fn to_yaml(app: &Application) -> String {
    // As for JSON: nothing in these types can fail to serialize.
    yaml_serde::to_string(app).unwrap_or_else(|e| format!("# error: {e}\n"))
}

fn single(path: impl Into<String>, reason: impl Into<String>) -> DescriptorError {
    DescriptorError {
        errors: vec![FieldError::new(path, reason)],
    }
}

/// One native document that deserialized: its number in the input and the application.
type Doc = (usize, Application);

fn parse_json(text: &str) -> Result<ParsedDescriptor, DescriptorError> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| single("", format!("invalid JSON: {e}")))?;
    let mut errors = Vec::new();
    let mut docs: Vec<Doc> = Vec::new();
    let multi;
    match &value {
        serde_json::Value::Object(_) if oakestra::is_oakestra_sla(&value) => {
            return oakestra::parse_oakestra(&value);
        }
        serde_json::Value::Object(_) if tosca::is_tosca(&value) => {
            return tosca::parse_tosca(&value);
        }
        serde_json::Value::Object(_) => {
            multi = false;
            // Straight from the text, so errors also carry line and column.
            let mut de = serde_json::Deserializer::from_str(text);
            match serde_path_to_error::deserialize::<_, Application>(&mut de) {
                Ok(app) => docs.push((0, app)),
                Err(e) => errors.push(shape_error("", e.path(), &e.inner().to_string())),
            }
        }
        serde_json::Value::Array(items) => {
            if items.is_empty() {
                return Err(single("", "descriptor is an empty array: no application"));
            }
            too_many(items.len())?;
            multi = items.len() > 1;
            for (i, item) in items.iter().enumerate() {
                let prefix = doc_prefix(multi, i);
                if oakestra::is_oakestra_sla(item) {
                    errors.push(FieldError::new(
                        prefix.trim_end_matches('.'),
                        "an Oakestra SLA must be submitted alone, not inside an array",
                    ));
                    continue;
                }
                if !item.is_object() {
                    errors.push(FieldError::new(
                        prefix.trim_end_matches('.'),
                        format!("expected an Application object, found {}", json_kind(item)),
                    ));
                    continue;
                }
                match serde_path_to_error::deserialize::<_, Application>(item) {
                    Ok(app) => docs.push((i, app)),
                    Err(e) => errors.push(shape_error(&prefix, e.path(), &e.inner().to_string())),
                }
            }
        }
        other => {
            return Err(single(
                "",
                format!(
                    "expected an Application object or an array of them, found {}",
                    json_kind(other)
                ),
            ));
        }
    }
    finish_native(docs, multi, errors)
}

fn parse_yaml(text: &str) -> Result<ParsedDescriptor, DescriptorError> {
    check_yaml_bounds(text).map_err(|e| single("", e.to_string()))?;
    // First pass: syntax, document count, and whether this is an Oakestra SLA.
    let mut values: Vec<(usize, yaml_serde::Value)> = Vec::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        match yaml_serde::Value::deserialize(doc) {
            Ok(yaml_serde::Value::Null) => {}
            Ok(value) => {
                values.push((i, value));
                too_many(values.len())?;
            }
            Err(e) => {
                let path = if i == 0 {
                    String::new()
                } else {
                    format!("documents[{i}]")
                };
                return Err(single(path, format!("invalid YAML: {e}")));
            }
        }
    }
    if values.is_empty() {
        return Err(single("", "descriptor is empty: no YAML document"));
    }
    // One sequence of applications: the JSON array, spelt in YAML.
    if let [(_, value @ yaml_serde::Value::Sequence(_))] = values.as_slice() {
        let json = serde_json::to_value(value)
            .map_err(|e| single("", format!("cannot read the sequence as JSON: {e}")))?;
        return parse_json(&json.to_string());
    }
    let multi = values.len() > 1;
    let mut errors = Vec::new();
    for (i, value) in &values {
        let path = doc_prefix(multi, *i).trim_end_matches('.').to_string();
        if yaml_is_tosca(value) {
            if multi {
                errors.push(FieldError::new(
                    path,
                    "an aeriOS TOSCA descriptor must be the only document of its input",
                ));
            } else {
                let json = serde_json::to_value(value)
                    .map_err(|e| single("", format!("cannot read the TOSCA descriptor: {e}")))?;
                return tosca::parse_tosca(&json);
            }
        } else if yaml_is_oakestra(value) {
            if multi {
                errors.push(FieldError::new(
                    path,
                    "an Oakestra SLA must be the only document of its input",
                ));
            } else {
                // Oakestra SLAs are JSON trees; YAML is just another spelling of one.
                let json = serde_json::to_value(value)
                    .map_err(|e| single("", format!("cannot read the Oakestra SLA: {e}")))?;
                return oakestra::parse_oakestra(&json);
            }
        } else if !value.is_mapping() {
            errors.push(FieldError::new(
                path,
                format!(
                    "expected an Application mapping, found {}",
                    yaml_kind(value)
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(DescriptorError { errors });
    }

    // Second pass: read each document as the JSON tree it spells, where `null`, `true` or `1`
    // are not strings and `null` is not an empty list (the YAML deserializer, reading the
    // text, takes a plain `null` as the string "null" and as an empty sequence). A document
    // that does not fit is read again from the text, so that its error carries line and
    // column, unless only the JSON reading refuses it.
    let mut docs: Vec<Doc> = Vec::new();
    for (i, value) in values {
        let typed = serde_json::to_value(&value)
            .map_err(|e| (String::new(), e.to_string()))
            .and_then(|json| {
                serde_path_to_error::deserialize::<_, Application>(json)
                    .map_err(|e| (e.path().to_string(), e.inner().to_string()))
            });
        let typed_error = match typed {
            Ok(app) => {
                docs.push((i, app));
                continue;
            }
            Err(e) => e,
        };
        let positioned = yaml_serde::Deserializer::from_str(text)
            .nth(i)
            .map(serde_path_to_error::deserialize::<_, Application>);
        match positioned {
            Some(Err(e)) => errors.push(shape_error(
                &doc_prefix(multi, i),
                e.path(),
                &e.inner().to_string(),
            )),
            _ => errors.push(typed_shape_error(&doc_prefix(multi, i), &typed_error)),
        }
    }
    finish_native(docs, multi, errors)
}

fn too_many(count: usize) -> Result<(), DescriptorError> {
    if count > MAX_APPLICATIONS_PER_DESCRIPTOR {
        return Err(single(
            "",
            format!(
                "descriptor holds more than {MAX_APPLICATIONS_PER_DESCRIPTOR} applications; split it"
            ),
        ));
    }
    Ok(())
}

fn doc_prefix(multi: bool, index: usize) -> String {
    if multi {
        format!("documents[{index}].")
    } else {
        String::new()
    }
}

/// Validation and cross-document checks on native documents that deserialized.
fn finish_native(
    docs: Vec<Doc>,
    multi: bool,
    mut errors: Vec<FieldError>,
) -> Result<ParsedDescriptor, DescriptorError> {
    for (i, app) in &docs {
        let prefix = doc_prefix(multi, *i);
        errors.extend(
            validate_application(app)
                .into_iter()
                .map(|e| FieldError::new(format!("{prefix}{}", e.path), e.reason)),
        );
    }
    let apps: Vec<&Application> = docs.iter().map(|(_, app)| app).collect();
    errors.extend(duplicate_applications(&apps, |k| {
        format!("{}metadata.name", doc_prefix(multi, docs[k].0))
    }));
    if !errors.is_empty() {
        return Err(DescriptorError { errors });
    }
    Ok(ParsedDescriptor {
        applications: docs.into_iter().map(|(_, app)| app).collect(),
        warnings: Vec::new(),
        format: DescriptorFormat::Native,
    })
}

/// One error per application whose namespace/name an earlier one in the same input already has.
/// `name_path(k)` is the path of the name of the k-th application.
pub(crate) fn duplicate_applications(
    apps: &[&Application],
    name_path: impl Fn(usize) -> String,
) -> Vec<FieldError> {
    let mut first: HashMap<(&str, &str), usize> = HashMap::new();
    let mut errors = Vec::new();
    for (k, app) in apps.iter().enumerate() {
        let key = (app.metadata.namespace.as_str(), app.metadata.name.as_str());
        if let Some(&j) = first.get(&key) {
            errors.push(FieldError::new(
                name_path(k),
                format!(
                    "duplicate application {}/{} in one descriptor (also {})",
                    key.0,
                    key.1,
                    name_path(j)
                ),
            ));
        } else {
            first.insert(key, k);
        }
    }
    errors
}

/// A deserialization error as a [`FieldError`]: the path rendered in wire names, and serde's
/// message made to name the field it is about.
fn shape_error(prefix: &str, path: &serde_path_to_error::Path, message: &str) -> FieldError {
    let mut rendered = prefix.trim_end_matches('.').to_string();
    for segment in path.iter() {
        use serde_path_to_error::Segment;
        match segment {
            Segment::Seq { index } => rendered.push_str(&format!("[{index}]")),
            Segment::Map { key } => rendered = key_path(&rendered, key),
            Segment::Enum { variant } => rendered = key_path(&rendered, variant),
            Segment::Unknown => rendered = key_path(&rendered, "?"),
        }
    }
    // yaml_serde puts its own path ("spec.services[0]: ...") in front of the message; ours is
    // in the FieldError's path already.
    let own = path.to_string();
    let message = match message.split_once(": ") {
        Some((lead, rest))
            if !lead.is_empty() && !lead.contains(char::is_whitespace) && own.starts_with(lead) =>
        {
            rest
        }
        _ => message,
    };
    // Keep the parser's position ("at line 3 column 5") at the end of the new reason.
    let (body, position) = match message.rfind(" at line ") {
        Some(at) => (&message[..at], &message[at..]),
        None => (message, ""),
    };
    if let Some(field) = backticked_after(body, "missing field ") {
        return FieldError::new(key_path(&rendered, field), format!("is required{position}"));
    }
    if let Some(field) = backticked_after(body, "unknown field ") {
        // serde_path_to_error may or may not have pushed the unknown key already.
        let path = if rendered.ends_with(&format!(".{field}"))
            || rendered.ends_with(&format!("[{field:?}]"))
            || rendered == field
        {
            rendered
        } else {
            key_path(&rendered, field)
        };
        let expected = body
            .split_once(", ")
            .map(|(_, rest)| rest)
            .unwrap_or("there are no fields");
        let hint = suggestion(field, expected)
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return FieldError::new(
            path,
            format!("unknown field `{field}`{hint}; {expected}{position}"),
        );
    }
    FieldError::new(rendered, format!("{body}{position}"))
}

/// [`shape_error`] for an error whose path is already rendered (serde_path_to_error's
/// `a.b[0].c` form, `.` when it is the whole document).
fn typed_shape_error(prefix: &str, (path, message): &(String, String)) -> FieldError {
    let mut rendered = prefix.trim_end_matches('.').to_string();
    if path != "." && !path.is_empty() {
        if !rendered.is_empty() && !path.starts_with('[') {
            rendered.push('.');
        }
        rendered.push_str(path);
    }
    if let Some(field) = backticked_after(message, "missing field ") {
        return FieldError::new(key_path(&rendered, field), "is required");
    }
    FieldError::new(rendered, message.clone())
}

/// `x` in "<lead>`x`...".
fn backticked_after<'a>(message: &'a str, lead: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(lead)?.strip_prefix('`')?;
    rest.split_once('`').map(|(field, _)| field)
}

/// The closest expected field name to a misspelt one, when it is close enough to be a typo.
fn suggestion<'a>(field: &str, expected: &'a str) -> Option<&'a str> {
    let lower = field.to_ascii_lowercase();
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|candidate| {
            (
                edit_distance(&lower, &candidate.to_ascii_lowercase()),
                candidate,
            )
        })
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn yaml_kind(value: &yaml_serde::Value) -> &'static str {
    match value {
        yaml_serde::Value::Null => "null",
        yaml_serde::Value::Bool(_) => "a boolean",
        yaml_serde::Value::Number(_) => "a number",
        yaml_serde::Value::String(_) => "a string",
        yaml_serde::Value::Sequence(_) => "a sequence",
        yaml_serde::Value::Mapping(_) => "a mapping",
        yaml_serde::Value::Tagged(_) => "a tagged value",
    }
}

fn yaml_is_oakestra(value: &yaml_serde::Value) -> bool {
    value
        .as_mapping()
        .is_some_and(|m| m.contains_key("sla_version") || m.contains_key("applications"))
}

fn yaml_is_tosca(value: &yaml_serde::Value) -> bool {
    value.as_mapping().is_some_and(|m| {
        m.contains_key("tosca_definitions_version") || m.contains_key("node_templates")
    })
}

//! Reading typed values out of an SLA's JSON, with an error at the Oakestra path of each
//! value of the wrong type.

use super::Mapper;
use serde_json::{Map, Value};

impl Mapper {
    pub(super) fn object<'a>(
        &mut self,
        value: &'a Value,
        path: &str,
    ) -> Option<&'a Map<String, Value>> {
        match value {
            Value::Object(map) => Some(map),
            other => {
                self.error(path, format!("expected an object, found {}", kind(other)));
                None
            }
        }
    }

    /// A string field: `None` when absent or null; an error when of another type.
    pub(super) fn string(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<String> {
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

    pub(super) fn strings(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<Vec<String>> {
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
    pub(super) fn number<'k>(
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
    pub(super) fn count(&mut self, obj: &Map<String, Value>, keys: &[&str], path: &str) -> u32 {
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

    pub(super) fn seconds(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<u64> {
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
}

/// Whether a value says anything beyond Oakestra's defaults (`null`, `0`, `""`, `[]`, `{}`, `false`).
pub(super) fn has_value(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

//! Resource quantities in the units the scheduler counts: CPU in millicores, memory in MiB.
//! Descriptors may write them Kubernetes-style (`500m`, `0.5`, `2`; `128Mi`, `1Gi`, `512`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// CPU in thousandths of a core. Accepts `250m`, `0.25`, `2` (cores) or an integer of millicores via `{millis}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millicores(pub u64);

/// Memory or storage in mebibytes. Accepts `128Mi`, `1Gi`, `1Ti`, `100M`, `1G`, or a bare integer of MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Mebibytes(pub u64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QuantityError(pub String);

impl Millicores {
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let text = text.trim();
        let bad = || {
            QuantityError(format!(
                "invalid CPU quantity {text:?}: expected cores (\"0.5\", \"2\") or millicores (\"500m\")"
            ))
        };
        if let Some(millis) = text.strip_suffix('m') {
            return millis.parse::<u64>().map(Millicores).map_err(|_| bad());
        }
        let cores: f64 = text.parse().map_err(|_| bad())?;
        cores_to_millis(cores).ok_or_else(bad)
    }
}

fn cores_to_millis(cores: f64) -> Option<Millicores> {
    if !cores.is_finite() || !(0.0..=1.0e9).contains(&cores) {
        return None;
    }
    // Nearest millicore, but a request for some CPU never becomes a request for none.
    let millis = (cores * 1000.0).round() as u64;
    Some(Millicores(if cores > 0.0 { millis.max(1) } else { millis }))
}

impl Mebibytes {
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let text = text.trim();
        let bad = || {
            QuantityError(format!(
                "invalid size {text:?}: expected MiB as an integer or a value with a unit (Ki, Mi, Gi, Ti, K, M, G, T)"
            ))
        };
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: f64 = number.parse().map_err(|_| bad())?;
        const MIB: f64 = 1024.0 * 1024.0;
        let bytes_per_unit = match unit {
            "" | "Mi" => MIB,
            "Ki" => 1024.0,
            "Gi" => 1024.0 * MIB,
            "Ti" => 1024.0 * 1024.0 * MIB,
            "K" | "k" => 1e3,
            "M" => 1e6,
            "G" => 1e9,
            "T" => 1e12,
            _ => return Err(bad()),
        };
        let mib = value * bytes_per_unit / MIB;
        if !mib.is_finite() || !(0.0..=1.0e12).contains(&mib) {
            return Err(bad());
        }
        Ok(Mebibytes(mib.ceil() as u64))
    }
}

impl fmt::Display for Millicores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}m", self.0)
    }
}

impl fmt::Display for Mebibytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}Mi", self.0)
    }
}

/// Reads a quantity written as a number or a string. A visitor rather than an untagged enum,
/// so a wrong type says what was expected instead of "did not match any variant".
struct QuantityVisitor<T> {
    expecting: &'static str,
    from_u64: fn(u64) -> Result<T, String>,
    from_f64: fn(f64) -> Result<T, String>,
    from_str: fn(&str) -> Result<T, QuantityError>,
}

impl<T> serde::de::Visitor<'_> for QuantityVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        (self.from_u64)(v).map_err(E::custom)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        match u64::try_from(v) {
            Ok(v) => (self.from_u64)(v).map_err(E::custom),
            Err(_) => Err(E::custom(format!("quantity must not be negative, got {v}"))),
        }
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
        (self.from_f64)(v).map_err(E::custom)
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        (self.from_str)(v).map_err(|e| E::custom(e.0))
    }
}

impl Serialize for Millicores {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Millicores {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(QuantityVisitor {
            expecting: "a CPU quantity: cores (0.5, 2, \"0.5\") or millicores (\"500m\")",
            // A bare number is cores, as in Kubernetes.
            from_u64: |cores| {
                cores
                    .checked_mul(1000)
                    .map(Millicores)
                    .ok_or_else(|| "CPU quantity too large".to_string())
            },
            from_f64: |cores| {
                cores_to_millis(cores).ok_or_else(|| format!("invalid CPU quantity {cores}"))
            },
            from_str: Millicores::parse,
        })
    }
}

impl Serialize for Mebibytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mebibytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(QuantityVisitor {
            expecting: "a size: MiB as an integer, or with a unit (\"128Mi\", \"1Gi\")",
            from_u64: |mib| Ok(Mebibytes(mib)),
            from_f64: |mib| {
                if mib.is_finite() && (0.0..=1.0e12).contains(&mib) {
                    Ok(Mebibytes(mib.ceil() as u64))
                } else {
                    Err(format!("invalid size {mib}"))
                }
            },
            from_str: Mebibytes::parse,
        })
    }
}

impl utoipa::PartialSchema for Millicores {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::Type(
                utoipa::openapi::schema::Type::String,
            ))
            .description(Some("CPU: cores (\"0.5\", 2) or millicores (\"500m\")"))
            .examples([serde_json::json!("500m")])
            .into()
    }
}
impl utoipa::ToSchema for Millicores {}

impl utoipa::PartialSchema for Mebibytes {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::Type(
                utoipa::openapi::schema::Type::String,
            ))
            .description(Some(
                "Size: MiB as an integer, or with a unit (\"128Mi\", \"1Gi\")",
            ))
            .examples([serde_json::json!("128Mi")])
            .into()
    }
}
impl utoipa::ToSchema for Mebibytes {}

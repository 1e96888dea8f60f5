//! Oakestra constraints (`direct`, `geo`, `latency`, `clusters`, `addons`) and connectivity
//! latency constraints mapped onto native [`Constraint`]s.

use super::Mapper;
use super::values::{has_value, kind};
use crate::descriptor::{Constraint, DirectPlacement, GeoConstraint, GeoPoint, LatencyConstraint};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A microservice a connectivity entry may name.
pub(super) struct Target {
    pub(super) id: String,
    pub(super) raw_name: String,
    pub(super) name: String,
}

impl Mapper {
    pub(super) fn constraint(
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
    pub(super) fn connectivity(
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

//! A node template's `requirements`: where it may run (`host.node_filter`) and what it
//! listens on (`network.properties.ports`).

use super::node::Service;
use super::{Mapper, boolean, kind, normalise_name};
use serde_json::{Map, Value, json};

const ELEMENT_URN: &str = "urn:ngsi-ld:InfrastructureElement:";
const DOMAIN_URN: &str = "urn:ngsi-ld:Domain:";
const EARTH_RADIUS_KM: f64 = 6371.0;

/// The aeriOS data model's architecture names as Canopy's.
fn architecture(aerios: &str) -> Option<&'static str> {
    match aerios.to_ascii_lowercase().as_str() {
        "x86_64" | "x64" | "amd64" => Some("amd64"),
        "arm64" | "aarch64" => Some("arm64"),
        "arm32" | "arm" => Some("arm"),
        "risc-v" | "riscv64" => Some("riscv64"),
        "ppc64le" => Some("ppc64le"),
        "s390x" => Some("s390x"),
        _ => None,
    }
}

/// `4096 MB`, `"1"` or `4096`: MiB (the data model counts MB).
fn mebibytes(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_f64().filter(|v| *v >= 0.0).map(|v| v.ceil() as u64),
        Value::String(s) => {
            let s = s.trim();
            let digits = s
                .strip_suffix("MB")
                .or_else(|| s.strip_suffix("Mi"))
                .unwrap_or(s)
                .trim();
            digits
                .parse::<f64>()
                .ok()
                .filter(|v| *v >= 0.0)
                .map(|v| v.ceil() as u64)
        }
        _ => None,
    }
}

/// The centre of `[lon, lat]` points and the distance (km) to the farthest one.
fn enclosing_circle(points: &[(f64, f64)]) -> ((f64, f64), f64) {
    let n = points.len() as f64;
    let lon = points.iter().map(|p| p.0).sum::<f64>() / n;
    let lat = points.iter().map(|p| p.1).sum::<f64>() / n;
    let radius = points
        .iter()
        .map(|p| haversine_km((lat, lon), (p.1, p.0)))
        .fold(0.0, f64::max);
    ((lat, lon), radius)
}

fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lat2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().asin()
}

impl Mapper {
    pub(super) fn requirement(&mut self, value: &Value, path: &str, s: &mut Service) {
        let Some(requirement) = self.object(value, path) else {
            return;
        };
        for (key, value) in requirement {
            match key.as_str() {
                "host" => self.host(value, &format!("{path}.host"), s),
                "network" => self.network(value, &format!("{path}.network"), s),
                _ if value.is_null() => {}
                _ => self.keep(
                    &mut s.annotations,
                    &format!("{path}.{key}"),
                    &format!("requirements.{key}"),
                    value,
                    "not an aeriOS requirement",
                ),
            }
        }
    }

    fn host(&mut self, value: &Value, path: &str, s: &mut Service) {
        let Some(filter) = value.get("node_filter") else {
            if !value.is_null() {
                self.keep(
                    &mut s.annotations,
                    path,
                    "requirements.host",
                    value,
                    "no node_filter",
                );
            }
            return;
        };
        let path = format!("{path}.node_filter");
        let Some(filter) = self.object(filter, &path) else {
            return;
        };
        if let Some(properties) = filter.get("properties").filter(|p| !p.is_null()) {
            self.element(properties, &format!("{path}.properties"), s);
        }
        match filter.get("capabilities") {
            Some(Value::Array(list)) => {
                for (i, capability) in list.iter().enumerate() {
                    let cap_path = format!("{path}.capabilities[{i}].host.properties");
                    match capability.pointer("/host/properties") {
                        Some(Value::Object(properties)) => {
                            self.capabilities(properties, &cap_path, s)
                        }
                        _ => self.error(
                            format!("{path}.capabilities[{i}]"),
                            "expected {host: {properties: {...}}}",
                        ),
                    }
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => self.error(
                format!("{path}.capabilities"),
                format!("expected an array, found {}", kind(other)),
            ),
        }
    }

    /// `properties: {id: urn:ngsi-ld:InfrastructureElement:[<domain>:]<node>}`: that node.
    fn element(&mut self, properties: &Value, path: &str, s: &mut Service) {
        let Some(properties) = self.object(properties, path) else {
            return;
        };
        for (key, value) in properties {
            let field = format!("{path}.{key}");
            if key != "id" {
                self.keep(
                    &mut s.annotations,
                    &field,
                    &format!("node_filter.{key}"),
                    value,
                    "not an aeriOS node filter",
                );
                continue;
            }
            let Some(element) = value.as_str().and_then(|v| v.strip_prefix(ELEMENT_URN)) else {
                self.error(
                    field,
                    format!("expected {ELEMENT_URN}[<domain>:]<node>, found {value}"),
                );
                continue;
            };
            let direct = match element.rsplit_once(':') {
                Some((domain, node)) => {
                    json!({"cluster": normalise_name(domain), "nodes": [normalise_name(node)]})
                }
                None => json!({"nodes": [normalise_name(element)]}),
            };
            s.constraints.push(json!({"direct": direct}));
        }
    }

    fn capabilities(&mut self, properties: &Map<String, Value>, path: &str, s: &mut Service) {
        for (key, value) in properties {
            let field = format!("{path}.{key}");
            match key.as_str() {
                "cpu_arch" => match value.get("equal").and_then(Value::as_str) {
                    Some(arch) => match architecture(arch) {
                        Some(native) => s.constraints.push(json!({"arch": [native]})),
                        None => self.error(
                            format!("{field}.equal"),
                            format!("unknown architecture {arch:?}: x86_64, arm64 or arm32"),
                        ),
                    },
                    None => self.error(field, "expected {equal: ARCH}"),
                },
                "mem_size" => match value.get("greater_or_equal").and_then(mebibytes) {
                    Some(mib) => {
                        s.spec
                            .insert("resources".into(), json!({"memory": format!("{mib}Mi")}));
                    }
                    None => self.error(field, "expected {greater_or_equal: \"<n> MB\"}"),
                },
                "domain_id" => match value
                    .get("equal")
                    .and_then(Value::as_str)
                    .and_then(|d| d.strip_prefix(DOMAIN_URN))
                {
                    Some(domain) => s
                        .constraints
                        .push(json!({"clusters": [normalise_name(domain)]})),
                    None => self.error(field, format!("expected {{equal: {DOMAIN_URN}<domain>}}")),
                },
                "area" => self.area(value, &field, s),
                _ if value.is_null() => {}
                _ => self.keep(
                    &mut s.annotations,
                    &field,
                    &format!("host.{key}"),
                    value,
                    "Canopy does not place by it",
                ),
            }
        }
    }

    fn area(&mut self, value: &Value, path: &str, s: &mut Service) {
        let points: Option<Vec<(f64, f64)>> = value
            .get("coordinates")
            .and_then(Value::as_array)
            .map(|points| {
                points
                    .iter()
                    .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                    .collect()
            });
        let Some(points) = points.filter(|p: &Vec<(f64, f64)>| !p.is_empty()) else {
            self.error(
                format!("{path}.coordinates"),
                "expected a list of [longitude, latitude] points",
            );
            return;
        };
        let ((lat, lon), radius) = enclosing_circle(&points);
        // A polygon of one point (or of repeated ones) still needs room for a node there.
        let radius = (radius * 1000.0).ceil() / 1000.0;
        let radius = radius.max(0.001);
        s.constraints
            .push(json!({"geo": {"location": {"lat": lat, "lon": lon}, "radiusKm": radius}}));
        self.warn(path, format!("the polygon is approximated by the circle around it ({radius} km around {lat:.5}, {lon:.5})"));
    }

    fn network(&mut self, value: &Value, path: &str, s: &mut Service) {
        let Some(properties) = value.get("properties").and_then(Value::as_object) else {
            self.error(format!("{path}.properties"), "expected {ports: {...}}");
            return;
        };
        let expose = properties
            .get("exposePorts")
            .and_then(boolean)
            .unwrap_or(false);
        for (key, value) in properties {
            match key.as_str() {
                "ports" | "exposePorts" => {}
                _ => self.keep(
                    &mut s.annotations,
                    &format!("{path}.properties.{key}"),
                    &format!("network.{key}"),
                    value,
                    "not an aeriOS network field",
                ),
            }
        }
        let Some(ports) = properties.get("ports").and_then(Value::as_object) else {
            self.error(
                format!("{path}.properties.ports"),
                "expected an object of named ports",
            );
            return;
        };
        for (name, port) in ports {
            let port_path = format!("{path}.properties.ports.{name}");
            // The front end's own examples write both `{properties: {...}}` and the bare form.
            let spec = port.get("properties").unwrap_or(port);
            let number = spec
                .get("source")
                .and_then(Value::as_u64)
                .filter(|p| (1..=65535).contains(p));
            let Some(number) = number else {
                self.error(
                    format!("{port_path}.source"),
                    "expected a port number from 1 to 65535",
                );
                continue;
            };
            let protocols: Vec<&str> = match spec.get("protocol") {
                Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
                Some(Value::String(p)) => vec![p.as_str()],
                _ => vec!["tcp"],
            };
            for protocol in &protocols {
                let protocol = protocol.to_ascii_lowercase();
                if protocol != "tcp" && protocol != "udp" {
                    self.error(
                        format!("{port_path}.protocol"),
                        format!("expected tcp or udp, found {protocol:?}"),
                    );
                    continue;
                }
                let port_name = if protocols.len() == 1 {
                    normalise_name(name)
                } else {
                    normalise_name(&format!("{name}-{protocol}"))
                };
                let mut entry = json!({"name": port_name, "port": number, "protocol": protocol});
                if expose {
                    entry["hostPort"] = json!(number);
                }
                s.ports.push(entry);
            }
        }
    }
}

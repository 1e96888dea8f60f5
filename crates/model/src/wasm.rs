//! What only the wasm runtime reads from a service: the module's digest, the host
//! directories it may open, and a wall-clock limit for one-shot work.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Settings of a `wasm` service beyond its `module`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmOptions {
    /// Hex SHA-256 of the module; required when `module` is an http(s) URL, checked
    /// for every source when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// An http(s) module without `sha256` is accepted and the node pins the digest of its
    /// first download (what an imported Oakestra SLA gets: its `code` URL has no digest).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pin_first_fetch: bool,
    /// Host directories the module may open (WASI preopens); it can open nothing else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preopens: Vec<Preopen>,
    /// One-shot work: the instance is killed and reported after this many seconds.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integer::optional_integral"
    )]
    pub timeout_seconds: Option<u64>,
}

impl WasmOptions {
    pub fn is_empty(&self) -> bool {
        self == &WasmOptions::default()
    }
}

/// One host directory given to a module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preopen {
    /// Absolute path of the directory on the node.
    pub host_path: String,
    /// Where the module sees it (e.g. `/data`).
    pub guest_path: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
}

/// Whether a module location is downloaded over http(s).
pub fn is_url_module(module: &str) -> bool {
    module.starts_with("http://") || module.starts_with("https://")
}

/// Whether a module location names an OCI artifact or image in a registry: anything that is
/// neither a URL (`scheme://`), an absolute path, nor a relative `*.wasm`/`*.wat` file.
pub fn is_oci_module(module: &str) -> bool {
    !(module.contains("://")
        || module.starts_with('/')
        || module.ends_with(".wasm")
        || module.ends_with(".wat"))
}

/// Why a wasm service cannot declare ports or socket probes: wasmtime-wasi's preview 1, the
/// API modules get, has no sockets (only preview 2 components have them, and the node does
/// not run components yet).
pub(crate) const NO_SOCKETS: &str = "does not apply to runtime wasm: modules get no sockets \
     (WASI preview 1 has none; components with WASI sockets are not run yet), so nothing of \
     theirs listens";

/// Validation errors of `options` as (path under `wasm`, reason), for a service whose
/// module is `module`; each rule is also in the schema (`schema.rs`).
pub(crate) fn errors(module: &str, options: Option<&WasmOptions>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut err = |path: &str, reason: &str| out.push((path.to_string(), reason.to_string()));
    let default = WasmOptions::default();
    let o = options.unwrap_or(&default);
    match &o.sha256 {
        Some(d) if d.len() != 64 || !d.bytes().all(|b| b.is_ascii_hexdigit()) => {
            err("sha256", "must be 64 hexadecimal digits (a SHA-256)")
        }
        None if is_url_module(module) && !o.pin_first_fetch => err(
            "sha256",
            "is required when module is an http(s) URL (the node checks the download against it)",
        ),
        _ => {}
    }
    if o.preopens.len() > MAX_PREOPENS {
        err("preopens", "must list at most 32 directories");
    }
    for (i, p) in o.preopens.iter().enumerate() {
        if !p.host_path.starts_with('/') {
            err(
                &format!("preopens[{i}].hostPath"),
                "must be an absolute path",
            );
        }
        if p.guest_path.is_empty() || p.guest_path.chars().any(|c| c <= '\u{1f}' || c == '\u{7f}') {
            err(
                &format!("preopens[{i}].guestPath"),
                "must be a non-empty path without control characters",
            );
        }
    }
    if o.timeout_seconds == Some(0) {
        err("timeoutSeconds", "must be at least 1");
    }
    out
}

/// At most this many preopened directories per service.
pub const MAX_PREOPENS: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(module: &str, o: &WasmOptions) -> Vec<String> {
        errors(module, Some(o))
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    #[test]
    fn url_modules_need_a_digest_or_pinning() {
        let none = WasmOptions::default();
        assert_eq!(paths("https://x.org/m.wasm", &none), ["sha256"]);
        assert!(paths("/opt/m.wasm", &none).is_empty());
        assert_eq!(errors("https://x.org/m.wasm", None).len(), 1);
        let pinned = WasmOptions {
            pin_first_fetch: true,
            ..WasmOptions::default()
        };
        assert!(paths("https://x.org/m.wasm", &pinned).is_empty());
        let bad = WasmOptions {
            sha256: Some("abc".into()),
            ..WasmOptions::default()
        };
        assert_eq!(paths("https://x.org/m.wasm", &bad), ["sha256"]);
    }

    #[test]
    fn oci_modules_are_what_is_neither_a_url_nor_a_file() {
        for oci in [
            "registry.local:5000/filter:1",
            "ghcr.io/o/m@sha256:ab",
            "filter",
        ] {
            assert!(is_oci_module(oci), "{oci}");
        }
        for not in [
            "https://x/m.wasm",
            "file:///m.wasm",
            "/opt/m",
            "m.wasm",
            "d/m.wat",
        ] {
            assert!(!is_oci_module(not), "{not}");
        }
    }

    #[test]
    fn preopens_are_absolute_and_named() {
        let p = |h: &str, g: &str| Preopen {
            host_path: h.into(),
            guest_path: g.into(),
            read_only: false,
        };
        let o = WasmOptions {
            preopens: vec![p("/data", "/data"), p("rel", "/d2"), p("/x", "")],
            timeout_seconds: Some(0),
            ..WasmOptions::default()
        };
        assert_eq!(
            paths("/m.wasm", &o),
            [
                "preopens[1].hostPath",
                "preopens[2].guestPath",
                "timeoutSeconds"
            ]
        );
    }
}

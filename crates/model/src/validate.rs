//! Semantic checks on a native [`Application`]: everything serde's types cannot say.
//!
//! Every problem is reported, not just the first, each with the path of the offending field
//! in the wire's camelCase names (`spec.services[1].resources.memory`). Map entries are
//! addressed as `.key` when the key is a plain word and as `["key"]` otherwise
//! (`metadata.labels["app.kubernetes.io/name"]`).

use crate::descriptor::{
    API_VERSION, Application, Constraint, ConstraintKind, DirectPlacement, GeoConstraint, GeoPoint,
    KIND_APPLICATION, LabelOperator, LabelRequirement, LatencyConstraint, PortSpec, Protocol,
    RuntimeKind, ServiceSpec, SpreadConstraint, TrustConstraint,
};
use crate::error::FieldError;
use crate::limits::*;
use std::collections::{BTreeMap, HashMap};

/// Checks `app` and returns every problem found (empty when it is valid).
pub fn validate_application(app: &Application) -> Vec<FieldError> {
    let mut v = Validator::default();
    v.application(app);
    v.errors
}

/// The problems of a list of command words (`args` of a run) at `path`, as a service's
/// `args` are checked.
pub fn validate_words(path: &str, words: &[String]) -> Vec<FieldError> {
    let mut v = Validator::default();
    v.words(path, words);
    v.errors
}

/// Why `value` is not a DNS label (RFC 1035: lowercase `a-z`, `0-9` and `-`, starting with
/// a letter, ending with a letter or digit, at most 63 characters), or `Ok` if it is one.
pub fn validate_dns_label(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.len() > MAX_NAME_LEN {
        return Err(format!(
            "must be at most {MAX_NAME_LEN} characters (DNS label), got {}",
            value.chars().count()
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "must be a DNS label: lowercase letters, digits and '-' only, found {bad:?}"
        ));
    }
    if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("must be a DNS label: must start with a lowercase letter".into());
    }
    if value.ends_with('-') {
        return Err("must be a DNS label: must end with a letter or digit".into());
    }
    Ok(())
}

/// Renders `base` + map key: `.key` for plain words, `["key"]` otherwise.
pub(crate) fn key_path(base: &str, key: &str) -> String {
    let plain = key.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let sep = if base.is_empty() { "" } else { "." };
    if plain {
        format!("{base}{sep}{key}")
    } else {
        format!("{base}[{key:?}]")
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn err(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(path, reason));
    }

    fn application(&mut self, app: &Application) {
        if app.api_version != API_VERSION {
            self.err(
                "apiVersion",
                format!("must be {API_VERSION:?}, got {:?}", app.api_version),
            );
        }
        if app.kind != KIND_APPLICATION {
            self.err(
                "kind",
                format!("must be {KIND_APPLICATION:?}, got {:?}", app.kind),
            );
        }
        self.dns_label("metadata.name", &app.metadata.name);
        self.dns_label("metadata.namespace", &app.metadata.namespace);
        self.labels("metadata.labels", &app.metadata.labels);
        self.annotations("metadata.annotations", &app.metadata.annotations);

        // An application may exist with no services yet (Oakestra's CLI ships one).
        let services = &app.spec.services;
        if services.len() > MAX_SERVICES_PER_APPLICATION {
            self.err(
                "spec.services",
                format!(
                    "must list at most {MAX_SERVICES_PER_APPLICATION} services, got {}",
                    services.len()
                ),
            );
        }
        let mut first_by_name: HashMap<&str, usize> = HashMap::new();
        for (i, svc) in services.iter().enumerate() {
            if let Some(first) = first_by_name.get(svc.name.as_str()) {
                self.err(
                    format!("spec.services[{i}].name"),
                    format!(
                        "duplicate service name {:?} (also spec.services[{first}].name)",
                        svc.name
                    ),
                );
            } else {
                first_by_name.insert(&svc.name, i);
            }
        }
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        for (i, svc) in services.iter().enumerate() {
            self.service(&format!("spec.services[{i}]"), svc, &names);
        }
    }

    fn service(&mut self, p: &str, svc: &ServiceSpec, siblings: &[&str]) {
        self.dns_label(&format!("{p}.name"), &svc.name);
        self.artifact(p, svc);
        self.words(&format!("{p}.command"), &svc.command);
        self.words(&format!("{p}.args"), &svc.args);
        if let Some(dir) = &svc.working_dir {
            self.text(&format!("{p}.workingDir"), dir, true);
        }
        self.env(&format!("{p}.env"), &svc.env);
        self.errors
            .extend(crate::security::validate_security(p, svc));
        self.errors.extend(crate::probe::probe_errors(p, svc));
        self.errors.extend(crate::strategy::strategy_errors(p, svc));
        self.errors.extend(crate::job::job_errors(p, svc));
        self.errors
            .extend(crate::autoscale::autoscale_errors(p, svc));
        if svc.replicas > MAX_REPLICAS {
            self.err(
                format!("{p}.replicas"),
                format!("must be at most {MAX_REPLICAS}, got {}", svc.replicas),
            );
        }
        self.resources(&format!("{p}.resources"), svc);
        self.ports(&format!("{p}.ports"), &svc.ports);
        if svc.constraints.len() > MAX_CONSTRAINTS {
            self.err(
                format!("{p}.constraints"),
                format!(
                    "must list at most {MAX_CONSTRAINTS} constraints, got {}",
                    svc.constraints.len()
                ),
            );
        }
        for (i, c) in svc.constraints.iter().enumerate() {
            self.constraint(&format!("{p}.constraints[{i}]"), c, &svc.name, siblings);
        }
        self.labels(&format!("{p}.labels"), &svc.labels);
        self.annotations(&format!("{p}.annotations"), &svc.annotations);
    }

    /// The runtime decides which artifact field is required and which are foreign.
    fn artifact(&mut self, p: &str, svc: &ServiceSpec) {
        let runtime = svc.runtime.as_str();
        match svc.runtime {
            RuntimeKind::Container => match &svc.image {
                None => self.err(format!("{p}.image"), "is required for runtime container"),
                Some(image) => self.reference(&format!("{p}.image"), image),
            },
            RuntimeKind::Wasm => match &svc.module {
                None => self.err(format!("{p}.module"), "is required for runtime wasm"),
                Some(module) => {
                    self.reference(&format!("{p}.module"), module);
                    for (path, reason) in crate::wasm::errors(module, svc.wasm.as_ref()) {
                        self.err(format!("{p}.wasm.{path}"), reason);
                    }
                    for i in 0..svc.ports.len() {
                        self.err(format!("{p}.ports[{i}]"), crate::wasm::NO_SOCKETS);
                    }
                }
            },
            // The kernel and what a guest cannot have: `vm_errors`.
            RuntimeKind::Vm => {}
            RuntimeKind::Process => {
                if svc.command.is_empty() {
                    self.err(
                        format!("{p}.command"),
                        "is required for runtime process (program and its first arguments)",
                    );
                }
            }
        }
        if svc.runtime != RuntimeKind::Container && svc.image.is_some() {
            self.err(
                format!("{p}.image"),
                format!("only applies to runtime container, not {runtime}"),
            );
        }
        self.errors
            .extend(crate::secret_refs::check_references(p, svc));
        self.errors.extend(crate::files::check_files(p, svc));
        self.errors.extend(crate::volume::check_volumes(p, svc));
        self.errors.extend(crate::sandbox::sandbox_errors(p, svc));
        self.errors.extend(crate::vm::vm_errors(p, svc));
        if svc.runtime != RuntimeKind::Wasm && svc.wasm.is_some() {
            self.err(
                format!("{p}.wasm"),
                format!("only applies to runtime wasm, not {runtime}"),
            );
        }
        if svc.runtime != RuntimeKind::Wasm && svc.module.is_some() {
            self.err(
                format!("{p}.module"),
                format!("only applies to runtime wasm, not {runtime}"),
            );
        }
        // `command` is the program for `process` and overrides the entrypoint for `container`;
        // a wasm module has no entrypoint to override.
        if svc.runtime == RuntimeKind::Wasm && !svc.command.is_empty() {
            self.err(
                format!("{p}.command"),
                "does not apply to runtime wasm (use args for the module's arguments)",
            );
        }
        if let Some(first) = svc.command.first()
            && first.trim().is_empty()
        {
            self.err(format!("{p}.command[0]"), "program must not be empty");
        }
    }

    /// An image reference or module location: one non-empty word.
    fn reference(&mut self, path: &str, value: &str) {
        if value.trim().is_empty() {
            self.err(path, "must not be empty");
        } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.err(path, "must not contain whitespace or control characters");
        } else {
            self.text(path, value, false);
        }
    }

    fn words(&mut self, path: &str, words: &[String]) {
        if words.len() > MAX_COMMAND_WORDS {
            self.err(
                path,
                format!(
                    "must have at most {MAX_COMMAND_WORDS} entries, got {}",
                    words.len()
                ),
            );
        }
        for (i, w) in words.iter().enumerate() {
            self.text(&format!("{path}[{i}]"), w, false);
        }
    }

    /// Length and NUL (which cannot cross exec or most APIs); optionally non-empty.
    fn text(&mut self, path: &str, value: &str, non_empty: bool) {
        if non_empty && value.is_empty() {
            self.err(path, "must not be empty");
        }
        // Characters, as JSON Schema's maxLength counts them.
        let length = value.chars().count();
        if length > MAX_STRING_LEN {
            self.err(
                path,
                format!("must be at most {MAX_STRING_LEN} characters, got {length}"),
            );
        }
        if value.contains('\0') {
            self.err(path, "must not contain NUL characters");
        }
    }

    fn dns_label(&mut self, path: &str, value: &str) {
        if let Err(reason) = validate_dns_label(value) {
            self.err(path, reason);
        }
    }

    fn env(&mut self, path: &str, env: &BTreeMap<String, String>) {
        if env.len() > MAX_ENV_VARS {
            self.err(
                path,
                format!(
                    "must have at most {MAX_ENV_VARS} variables, got {}",
                    env.len()
                ),
            );
        }
        for (key, value) in env {
            let p = key_path(path, key);
            if key.is_empty() {
                self.err(&p, "variable name must not be empty");
            } else if key.contains('=') {
                self.err(&p, "variable name must not contain '='");
            } else if key.contains('\0') {
                self.err(&p, "variable name must not contain NUL characters");
            } else if key.chars().count() > MAX_STRING_LEN {
                self.err(
                    &p,
                    format!("variable name must be at most {MAX_STRING_LEN} characters"),
                );
            }
            self.text(&p, value, false);
        }
    }

    fn resources(&mut self, p: &str, svc: &ServiceSpec) {
        let r = &svc.resources;
        if r.cpu.0 == 0 {
            self.err(format!("{p}.cpu"), "must be > 0");
        } else if r.cpu.0 > MAX_CPU_MILLICORES {
            self.err(
                format!("{p}.cpu"),
                format!("must be at most {MAX_CPU_MILLICORES}m, got {}", r.cpu),
            );
        }
        if r.memory.0 == 0 {
            self.err(format!("{p}.memory"), "must be > 0");
        } else if r.memory.0 > MAX_MEMORY_MIB {
            self.err(
                format!("{p}.memory"),
                format!("must be at most {MAX_MEMORY_MIB}Mi, got {}", r.memory),
            );
        }
        if r.gpus > MAX_GPUS {
            self.err(
                format!("{p}.gpus"),
                format!("must be at most {MAX_GPUS}, got {}", r.gpus),
            );
        }
        if let Some(model) = &r.gpu_model {
            if r.gpus == 0 {
                self.err(format!("{p}.gpuModel"), "requires gpus > 0");
            }
            self.label_value(&format!("{p}.gpuModel"), model, true);
        }
        if r.storage.0 > MAX_STORAGE_MIB {
            self.err(
                format!("{p}.storage"),
                format!("must be at most {MAX_STORAGE_MIB}Mi, got {}", r.storage),
            );
        }
    }

    fn ports(&mut self, path: &str, ports: &[PortSpec]) {
        if ports.len() > MAX_PORTS {
            self.err(
                path,
                format!("must list at most {MAX_PORTS} ports, got {}", ports.len()),
            );
        }
        let mut seen: HashMap<(u16, &'static str), usize> = HashMap::new();
        let mut seen_host: HashMap<(u16, &'static str), usize> = HashMap::new();
        let mut seen_name: HashMap<&str, usize> = HashMap::new();
        for (i, port) in ports.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let proto = protocol_name(port.protocol);
            if let Some(name) = &port.name {
                self.dns_label(&format!("{p}.name"), name);
                if let Some(first) = first_seen(&mut seen_name, name.as_str(), i) {
                    self.err(
                        format!("{p}.name"),
                        format!("duplicate port name {name:?} (also {path}[{first}])"),
                    );
                }
            }
            if port.port == 0 {
                self.err(format!("{p}.port"), "must be >= 1");
            } else if let Some(first) = first_seen(&mut seen, (port.port, proto), i) {
                self.err(
                    format!("{p}.port"),
                    format!(
                        "duplicate port {}/{proto} (also {path}[{first}])",
                        port.port
                    ),
                );
            }
            if let Some(host) = port.host_port {
                if host == 0 {
                    self.err(format!("{p}.hostPort"), "must be >= 1");
                } else if let Some(first) = first_seen(&mut seen_host, (host, proto), i) {
                    self.err(
                        format!("{p}.hostPort"),
                        format!("duplicate host port {host}/{proto} (also {path}[{first}])"),
                    );
                }
            }
        }
    }

    fn constraint(&mut self, p: &str, c: &Constraint, own_name: &str, siblings: &[&str]) {
        let kinds = c.kinds();
        match kinds.as_slice() {
            [] => self.err(
                p,
                format!(
                    "must set exactly one of {}; none is set",
                    CONSTRAINT_KINDS.join(", ")
                ),
            ),
            [kind] => self.constraint_kind(p, *kind, own_name, siblings),
            several => {
                let names: Vec<&str> = several.iter().map(|k| kind_name(*k)).collect();
                self.err(
                    p,
                    format!(
                        "must set exactly one kind, but sets {}: split it into one constraint per kind",
                        names.join(", ")
                    ),
                );
            }
        }
        if let Some(r) = c.rigidness
            && !(r.is_finite() && (0.0..=1.0).contains(&r))
        {
            self.err(
                format!("{p}.rigidness"),
                format!("must be a number in [0, 1], got {r}"),
            );
        }
        if let Some(t) = c.convergence_time {
            if t == 0 {
                self.err(format!("{p}.convergenceTime"), "must be > 0 seconds");
            } else if t > MAX_CONVERGENCE_TIME_SECS {
                self.err(
                    format!("{p}.convergenceTime"),
                    format!("must be at most {MAX_CONVERGENCE_TIME_SECS} seconds, got {t}"),
                );
            }
        }
    }

    fn constraint_kind(
        &mut self,
        p: &str,
        kind: ConstraintKind<'_>,
        own_name: &str,
        siblings: &[&str],
    ) {
        match kind {
            ConstraintKind::Arch(archs) => self.arch(&format!("{p}.arch"), archs),
            ConstraintKind::NodeSelector(reqs) => self.selector(&format!("{p}.nodeSelector"), reqs),
            ConstraintKind::ClusterSelector(reqs) => {
                self.selector(&format!("{p}.clusterSelector"), reqs)
            }
            ConstraintKind::Direct(d) => self.direct(&format!("{p}.direct"), d),
            ConstraintKind::Clusters(list) => {
                let path = format!("{p}.clusters");
                if list.is_empty() {
                    self.err(&path, "must list at least one cluster");
                }
                self.host_names(&path, list);
            }
            ConstraintKind::Geo(g) => self.geo(&format!("{p}.geo"), g),
            ConstraintKind::Latency(l) => {
                self.latency(&format!("{p}.latency"), l, own_name, siblings)
            }
            ConstraintKind::Spread(s) => self.spread(&format!("{p}.spread"), s),
            ConstraintKind::Trust(t) => self.trust(&format!("{p}.trust"), t),
        }
    }

    fn arch(&mut self, path: &str, archs: &[String]) {
        if archs.is_empty() {
            self.err(path, "must list at least one architecture");
        }
        self.max_items(path, archs.len());
        for (i, a) in archs.iter().enumerate() {
            if !ARCHITECTURES.contains(&a.as_str()) {
                self.err(
                    format!("{path}[{i}]"),
                    format!(
                        "unknown architecture {a:?}: expected one of {}",
                        ARCHITECTURES.join(", ")
                    ),
                );
            }
        }
    }

    fn selector(&mut self, path: &str, reqs: &[LabelRequirement]) {
        if reqs.is_empty() {
            self.err(path, "must list at least one label requirement");
        }
        self.max_items(path, reqs.len());
        for (i, req) in reqs.iter().enumerate() {
            let p = format!("{path}[{i}]");
            if req.key.is_empty() {
                self.err(format!("{p}.key"), "must not be empty");
            } else if let Err(reason) = label_key(&req.key) {
                self.err(format!("{p}.key"), reason);
            }
            match req.operator {
                LabelOperator::In | LabelOperator::NotIn => {
                    if req.values.is_empty() {
                        self.err(
                            format!("{p}.values"),
                            format!("operator {:?} needs at least one value", req.operator),
                        );
                    }
                }
                LabelOperator::Exists | LabelOperator::DoesNotExist => {
                    if !req.values.is_empty() {
                        self.err(
                            format!("{p}.values"),
                            format!("operator {:?} takes no values", req.operator),
                        );
                    }
                }
            }
            self.max_items(&format!("{p}.values"), req.values.len());
            for (j, value) in req.values.iter().enumerate() {
                self.label_value(&format!("{p}.values[{j}]"), value, false);
            }
        }
    }

    fn direct(&mut self, path: &str, d: &DirectPlacement) {
        if d.cluster.is_none() && d.nodes.is_empty() {
            self.err(path, "must name a cluster or at least one node");
        }
        if let Some(cluster) = &d.cluster {
            self.host_name(&format!("{path}.cluster"), cluster);
        }
        self.host_names(&format!("{path}.nodes"), &d.nodes);
    }

    fn host_names(&mut self, path: &str, names: &[String]) {
        self.max_items(path, names.len());
        for (i, name) in names.iter().enumerate() {
            self.host_name(&format!("{path}[{i}]"), name);
        }
    }

    /// Cluster and node names: not DNS labels necessarily, but one printable word.
    fn host_name(&mut self, path: &str, name: &str) {
        if name.is_empty() {
            self.err(path, "must not be empty");
        } else if name.chars().count() > MAX_HOST_NAME_LEN {
            self.err(
                path,
                format!("must be at most {MAX_HOST_NAME_LEN} characters"),
            );
        } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.err(path, "must not contain whitespace or control characters");
        }
    }

    fn geo(&mut self, path: &str, g: &GeoConstraint) {
        self.point(&format!("{path}.location"), &g.location);
        if !(g.radius_km.is_finite() && g.radius_km > 0.0) {
            self.err(
                format!("{path}.radiusKm"),
                format!("must be a finite number > 0, got {}", g.radius_km),
            );
        } else if g.radius_km > MAX_RADIUS_KM {
            self.err(
                format!("{path}.radiusKm"),
                format!("must be at most {MAX_RADIUS_KM} km, got {}", g.radius_km),
            );
        }
    }

    fn point(&mut self, path: &str, pt: &GeoPoint) {
        if !(pt.lat.is_finite() && (-90.0..=90.0).contains(&pt.lat)) {
            self.err(
                format!("{path}.lat"),
                format!("must be a latitude in [-90, 90], got {}", pt.lat),
            );
        }
        if !(pt.lon.is_finite() && (-180.0..=180.0).contains(&pt.lon)) {
            self.err(
                format!("{path}.lon"),
                format!("must be a longitude in [-180, 180], got {}", pt.lon),
            );
        }
    }

    fn latency(&mut self, path: &str, l: &LatencyConstraint, own_name: &str, siblings: &[&str]) {
        if !(l.max_ms.is_finite() && l.max_ms > 0.0) {
            self.err(
                format!("{path}.maxMs"),
                format!("must be a finite number > 0, got {}", l.max_ms),
            );
        } else if l.max_ms > MAX_LATENCY_MS {
            self.err(
                format!("{path}.maxMs"),
                format!("must be at most {MAX_LATENCY_MS} ms, got {}", l.max_ms),
            );
        }
        match (&l.to_point, &l.to_service) {
            (None, None) => self.err(
                path,
                "must set exactly one of toPoint, toService; none is set",
            ),
            (Some(_), Some(_)) => self.err(
                path,
                "must set exactly one of toPoint, toService; both are set",
            ),
            (Some(pt), None) => self.point(&format!("{path}.toPoint"), pt),
            (None, Some(target)) => {
                let p = format!("{path}.toService");
                if target == own_name {
                    self.err(
                        p,
                        "must name another service of the application, not itself",
                    );
                } else if !siblings.contains(&target.as_str()) {
                    let others: Vec<&str> = siblings
                        .iter()
                        .copied()
                        .filter(|s| *s != own_name)
                        .collect();
                    let hint = if others.is_empty() {
                        "the application has no other service".to_string()
                    } else {
                        format!("expected one of {}", others.join(", "))
                    };
                    self.err(
                        p,
                        format!("no service named {target:?} in this application: {hint}"),
                    );
                }
            }
        }
    }

    fn spread(&mut self, path: &str, s: &SpreadConstraint) {
        if s.max_per_node.is_none() && s.max_per_cluster.is_none() {
            self.err(path, "must set at least one of maxPerNode, maxPerCluster");
        }
        if s.max_per_node == Some(0) {
            self.err(format!("{path}.maxPerNode"), "must be >= 1");
        }
        if s.max_per_cluster == Some(0) {
            self.err(format!("{path}.maxPerCluster"), "must be >= 1");
        }
    }

    fn trust(&mut self, path: &str, t: &TrustConstraint) {
        if !(t.min_score.is_finite() && (0.0..=1.0).contains(&t.min_score)) {
            self.err(
                format!("{path}.minScore"),
                format!("must be a number in [0, 1], got {}", t.min_score),
            );
        }
    }

    fn max_items(&mut self, path: &str, len: usize) {
        if len > MAX_CONSTRAINT_ITEMS {
            self.err(
                path,
                format!("must list at most {MAX_CONSTRAINT_ITEMS} entries, got {len}"),
            );
        }
    }

    fn labels(&mut self, path: &str, labels: &BTreeMap<String, String>) {
        if labels.len() > MAX_LABELS {
            self.err(
                path,
                format!(
                    "must have at most {MAX_LABELS} labels, got {}",
                    labels.len()
                ),
            );
        }
        for (key, value) in labels {
            let p = key_path(path, key);
            if let Err(reason) = label_key(key) {
                self.err(&p, reason);
            }
            self.label_value(&p, value, false);
        }
    }

    fn annotations(&mut self, path: &str, annotations: &BTreeMap<String, String>) {
        if annotations.len() > MAX_ANNOTATIONS {
            self.err(
                path,
                format!(
                    "must have at most {MAX_ANNOTATIONS} annotations, got {}",
                    annotations.len()
                ),
            );
        }
        for (key, value) in annotations {
            let p = key_path(path, key);
            if let Err(reason) = label_key(key) {
                self.err(&p, reason);
            }
            let length = value.chars().count();
            if length > MAX_ANNOTATION_VALUE_LEN {
                self.err(
                    &p,
                    format!(
                        "value must be at most {MAX_ANNOTATION_VALUE_LEN} characters, got {length}"
                    ),
                );
            }
            if value.contains('\0') {
                self.err(&p, "value must not contain NUL characters");
            }
        }
    }

    /// Label values (and GPU models): at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
    fn label_value(&mut self, path: &str, value: &str, non_empty: bool) {
        if value.is_empty() {
            if non_empty {
                self.err(path, "must not be empty");
            }
            return;
        }
        if let Err(reason) = label_name(value, MAX_LABEL_VALUE_LEN) {
            self.err(path, format!("invalid value {value:?}: {reason}"));
        }
    }
}

pub(crate) const CONSTRAINT_KINDS: &[&str] = &[
    "arch",
    "nodeSelector",
    "clusterSelector",
    "direct",
    "clusters",
    "geo",
    "latency",
    "spread",
    "trust",
];

fn kind_name(kind: ConstraintKind<'_>) -> &'static str {
    match kind {
        ConstraintKind::Arch(_) => "arch",
        ConstraintKind::NodeSelector(_) => "nodeSelector",
        ConstraintKind::ClusterSelector(_) => "clusterSelector",
        ConstraintKind::Direct(_) => "direct",
        ConstraintKind::Clusters(_) => "clusters",
        ConstraintKind::Geo(_) => "geo",
        ConstraintKind::Latency(_) => "latency",
        ConstraintKind::Spread(_) => "spread",
        ConstraintKind::Trust(_) => "trust",
    }
}

/// The index where `key` was first seen, recording `index` if it is new.
fn first_seen<K: std::hash::Hash + Eq>(
    seen: &mut HashMap<K, usize>,
    key: K,
    index: usize,
) -> Option<usize> {
    match seen.entry(key) {
        std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(index);
            None
        }
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// A label or annotation key, Kubernetes style: `[prefix/]name`, where the prefix is a DNS
/// subdomain and the name is at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
pub(crate) fn label_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("key must not be empty".into());
    }
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() || prefix.len() > MAX_LABEL_PREFIX_LEN {
            return Err(format!(
                "invalid key {key:?}: the prefix before '/' must be a DNS subdomain of 1 to {MAX_LABEL_PREFIX_LEN} characters"
            ));
        }
        let ok = prefix.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
        if !ok {
            return Err(format!(
                "invalid key {key:?}: the prefix before '/' must be a DNS subdomain (lowercase letters, digits, '-' and '.')"
            ));
        }
    }
    label_name(name, MAX_NAME_LEN).map_err(|reason| format!("invalid key {key:?}: {reason}"))
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9._-]`, alphanumeric at both ends.
pub(crate) fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    label_name(value, MAX_LABEL_VALUE_LEN)
}

fn label_name(name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name must not be empty".into());
    }
    if name.len() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("only letters, digits, '-', '_' and '.' are allowed".into());
    }
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    if !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        return Err("must start and end with a letter or digit".into());
    }
    Ok(())
}

//! The descriptor's OpenAPI schema carries the validator's rules (`validate.rs`), from the same
//! constants, so that whatever the schema allows the validator accepts and the other way
//! round. Each function is a `#[(schema_with = ...)]` of one field; the rules that tie
//! fields together (an artifact per runtime, one kind per constraint) are `oneOf` branches
//! that exclude each other, so a generator can build from any one of them.
//!
//! Not said here, because JSON Schema cannot: names unique within a list (services, ports,
//! applications of one descriptor) and `latency.toService` naming a sibling service.

use crate::limits::*;
use crate::patterns;
use crate::validate::CONSTRAINT_KINDS;
use serde_json::{Value, json};

fn nullable(inner: Value) -> Value {
    json!({"oneOf": [{"type": "null"}, inner]})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn api_version() -> Value {
    json!({"type": "string", "const": crate::API_VERSION, "default": crate::API_VERSION})
}

fn kind() -> Value {
    json!({"type": "string", "const": crate::KIND_APPLICATION, "default": crate::KIND_APPLICATION})
}

fn dns_label_value() -> Value {
    json!({"type": "string", "pattern": patterns::dns_label(), "maxLength": MAX_NAME_LEN,
        "description": "DNS label: lowercase letters, digits and '-', starting with a letter, at most 63 characters"})
}

fn dns_label() -> Value {
    dns_label_value()
}

fn optional_dns_label() -> Value {
    nullable(dns_label_value())
}

fn namespace() -> Value {
    let mut value = dns_label_value();
    value["default"] = json!(crate::DEFAULT_NAMESPACE);
    value
}

fn labels() -> Value {
    json!({"type": "object", "maxProperties": MAX_LABELS,
        "propertyNames": {"pattern": patterns::label_key()},
        "additionalProperties": {"type": "string", "pattern": patterns::label_value()}})
}

fn annotations() -> Value {
    json!({"type": "object", "maxProperties": MAX_ANNOTATIONS,
        "propertyNames": {"pattern": patterns::label_key()},
        "additionalProperties": {"type": "string", "pattern": patterns::text(), "maxLength": MAX_ANNOTATION_VALUE_LEN}})
}

fn env() -> Value {
    json!({"type": "object", "maxProperties": MAX_ENV_VARS,
        "propertyNames": {"pattern": patterns::env_name(), "maxLength": MAX_STRING_LEN},
        "additionalProperties": {"type": "string", "pattern": patterns::text(), "maxLength": MAX_STRING_LEN}})
}

fn secret_env() -> Value {
    json!({"type": "object", "maxProperties": MAX_ENV_VARS,
        "propertyNames": {"pattern": patterns::env_name(), "maxLength": MAX_STRING_LEN},
        "additionalProperties": {"$ref": "#/components/schemas/SecretKeyRef"}})
}

/// Exactly one of `content` and `secret` is set (not null) in each file.
fn files() -> Value {
    let one = |set: &str, unset: &str| {
        json!({"properties": {set: {"not": {"type": "null"}}, unset: {"type": "null"}},
            "required": [set]})
    };
    json!({"type": "array", "maxItems": crate::files::MAX_FILES,
        "items": {"allOf": [reference("FileSpec"),
            {"oneOf": [one("content", "secret"), one("secret", "content")]}]}})
}

/// One volume: `hostPath` set exactly when the kind is `hostPath` (`node` when absent).
fn volumes() -> Value {
    let host = json!({"properties": {"kind": {"const": "hostPath"}, "hostPath": {"type": "string"}},
        "required": ["kind", "hostPath"]});
    let other = json!({"properties": {"kind": {"enum": ["node", "emptyDir"]}, "hostPath": {"type": "null"}}});
    json!({"type": "array", "maxItems": crate::volume::MAX_VOLUMES,
        "items": {"allOf": [reference("VolumeSpec"), {"oneOf": [host, other]}]}})
}

/// Absolute and normal, anywhere on the node (its prefixes are the node's business).
fn normal_path() -> Value {
    json!({"type": "string", "maxLength": 1024, "pattern": r"^(/[^/\x00]+)+$",
        "not": {"pattern": r"/\.\.?(/|$)"}})
}

/// Absolute and normal; the reserved prefixes are left to validation.
fn file_path() -> Value {
    json!({"type": "string", "maxLength": 1024, "pattern": r"^(/[^/\x00]+)+$",
        "not": {"anyOf": [{"pattern": r"/\.\.?(/|$)"},
            {"pattern": r"^/(proc|sys|dev|etc/resolv\.conf)(/|$)"}]}})
}

fn file_content() -> Value {
    nullable(json!({"type": "string", "maxLength": crate::files::MAX_FILE_CONTENT}))
}

/// A secret's keys and values, as `SecretInput::validate` checks them (the values' total
/// size aside).
fn secret_data() -> Value {
    json!({"type": "object", "minProperties": 1, "maxProperties": crate::MAX_SECRET_KEYS,
        "propertyNames": {"pattern": r"^[A-Za-z0-9._-]+$", "maxLength": 253,
            "not": {"enum": [".", ".."]}},
        "additionalProperties": {"type": "string"}})
}

fn secret_labels() -> Value {
    json!({"type": "object", "propertyNames": {"pattern": patterns::dns_label()},
        "additionalProperties": {"type": "string", "maxLength": crate::MAX_LABEL_VALUE_LEN}})
}

fn secret_key() -> Value {
    json!({"type": "string", "pattern": r"^[A-Za-z0-9._-]+$", "maxLength": 253})
}

fn words() -> Value {
    json!({"type": "array", "maxItems": MAX_COMMAND_WORDS,
        "items": {"type": "string", "pattern": patterns::text(), "maxLength": MAX_STRING_LEN}})
}

fn command() -> Value {
    let mut value = words();
    value["description"] = json!(
        "Program and its first arguments, for `process`; overrides the entrypoint for `container`"
    );
    value
}

fn args() -> Value {
    words()
}

fn optional_reference() -> Value {
    nullable(json!({"type": "string", "pattern": patterns::word(), "maxLength": MAX_STRING_LEN}))
}

fn working_dir() -> Value {
    nullable(
        json!({"type": "string", "pattern": patterns::non_empty_text(), "maxLength": MAX_STRING_LEN}),
    )
}

fn replicas() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": MAX_REPLICAS, "default": 1})
}

/// The artifact each runtime needs, and the fields it must not have (a `sandbox` wraps a
/// container only).
fn runtime_branches() -> Value {
    let program = json!({"prefixItems": [{"pattern": patterns::non_blank()}]});
    let absent = json!({"type": "null"});
    // Privileged mode and capabilities are containers' own; a module has no user either.
    let no_container_privilege = json!({"properties": {"privileged": {"const": false},
        "capabilities": {"properties": {"add": {"maxItems": 0}}}}});
    // A module has nothing to exec in, and no socket to probe (WASI preview 1 has none).
    let module_probe =
        json!({"properties": {"exec": absent, "httpGet": absent, "tcpSocket": absent}});
    let mut no_user = no_container_privilege.clone();
    no_user["properties"]["runAsUser"] = absent.clone();
    no_user["properties"]["runAsGroup"] = absent.clone();
    json!({"oneOf": [
        {"properties": {"runtime": {"const": "container"}, "image": {"type": "string"},
            "module": absent, "wasm": absent, "vm": absent, "command": program},
         "required": ["runtime", "image"]},
        {"if": {"properties": {"module": {"type": "string", "pattern": "^https?://"}}, "required": ["module"]},
         "then": {"required": ["wasm"], "properties": {"wasm": wasm_digest_rule()}},
         "properties": {"runtime": {"const": "wasm"}, "module": {"type": "string"},
            "image": absent, "sandbox": absent, "vm": absent, "command": {"maxItems": 0}, "securityContext": no_user,
            "files": {"maxItems": 0}, "ports": {"maxItems": 0},
            "livenessProbe": module_probe, "readinessProbe": module_probe, "startupProbe": module_probe},
         "required": ["runtime", "module"]},
        {"properties": {"runtime": {"const": "process"}, "image": absent, "sandbox": absent, "vm": absent, "module": absent, "wasm": absent,
            "imagePullSecret": absent, "command": {"minItems": 1, "prefixItems": [{"pattern": patterns::non_blank()}]},
            "securityContext": no_container_privilege},
         // A process's files are in the node's private data dir: not for another user.
         "anyOf": [{"properties": {"files": {"maxItems": 0}, "volumes": {"maxItems": 0}}},
            {"properties": {"securityContext": {"properties": {"runAsUser": absent}}}}],
         "required": ["runtime", "command"]},
        vm_branch(&absent, &no_user),
    ]})
}

/// A microVM: a kernel and nothing that needs a host process or a guest network (yet);
/// an http(s) kernel or initramfs names its digest.
fn vm_branch(absent: &Value, no_user: &Value) -> Value {
    let url = json!({"type": "string", "pattern": "^https?://"});
    let digest_rule = |field: &str| {
        json!({"if": {"properties": {field: url}, "required": [field]},
               "then": {"required": [format!("{field}Sha256")]}})
    };
    let vm = json!({"type": "object",
        "allOf": [digest_rule("kernel"), digest_rule("initramfs"),
            {"if": {"properties": {"initramfs": absent}}, "then": {"properties": {"initramfsSha256": absent}}}]});
    json!({"properties": {"runtime": {"const": "vm"}, "vm": vm,
            "image": absent, "module": absent, "wasm": absent, "sandbox": absent,
            "command": {"maxItems": 0}, "args": {"maxItems": 0}, "workingDir": absent,
            "env": {"maxProperties": 0}, "secretEnv": {"maxProperties": 0},
            "files": {"maxItems": 0}, "volumes": {"maxItems": 0}, "ports": {"maxItems": 0}, "imagePullSecret": absent,
            "securityContext": no_user,
            "livenessProbe": absent, "readinessProbe": absent, "startupProbe": absent},
        "required": ["runtime", "vm"]})
}

fn vm_location() -> Value {
    json!({"type": "string", "pattern": "^(/|https?://)", "maxLength": MAX_STRING_LEN})
}

fn optional_vm_location() -> Value {
    nullable(vm_location())
}

fn vm_cmdline() -> Value {
    nullable(json!({"type": "string", "maxLength": crate::MAX_VM_CMDLINE,
        "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}))
}

/// A URL module's `wasm` names its digest or asks for the first download's to be pinned.
/// An object (not null: `required` holds for anything else) with a digest or a pin.
fn wasm_digest_rule() -> Value {
    json!({"type": "object", "anyOf": [
        {"required": ["sha256"], "properties": {"sha256": {"type": "string"}}},
        {"required": ["pinFirstFetch"], "properties": {"pinFirstFetch": {"const": true}}},
    ]})
}

fn sha256() -> Value {
    nullable(json!({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}))
}

fn timeout_seconds() -> Value {
    nullable(json!({"type": "integer", "minimum": 1}))
}

fn preopens() -> Value {
    json!({"type": "array", "maxItems": crate::wasm::MAX_PREOPENS,
        "items": reference("Preopen")})
}

fn host_path() -> Value {
    json!({"type": "string", "pattern": "^/"})
}

fn guest_path() -> Value {
    json!({"type": "string", "minLength": 1, "pattern": "^[^\\u0000-\\u001f\\u007f]+$"})
}

fn capabilities() -> Value {
    let names: Vec<String> = crate::security::LINUX_CAPABILITIES
        .iter()
        .flat_map(|c| [c.to_string(), format!("CAP_{c}")])
        .collect();
    json!({"type": "array", "items": {"type": "string", "enum": names}})
}

fn services() -> Value {
    // A job's runs are not autoscaled.
    let not_both = json!({"not": {"required": ["job", "autoscale"],
        "properties": {"job": {"type": "object"}, "autoscale": {"type": "object"}}}});
    json!({"type": "array", "maxItems": MAX_SERVICES_PER_APPLICATION,
        "items": {"allOf": [reference("ServiceSpec"), runtime_branches(), not_both]}})
}

fn resources() -> Value {
    // A GPU model only with GPUs.
    json!({"allOf": [reference("Resources"), {"anyOf": [
        {"properties": {"gpuModel": {"type": "null"}}},
        {"properties": {"gpus": {"minimum": 1}}, "required": ["gpus"]},
    ]}]})
}

fn gpus() -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": MAX_GPUS, "default": 0})
}

fn gpu_model() -> Value {
    nullable(json!({"type": "string", "pattern": patterns::gpu_model(),
        "description": "GPU model the instance needs (e.g. `nvidia-a100`); any model when absent"}))
}

fn cpu() -> Value {
    let cores = MAX_CPU_MILLICORES / 1000;
    json!({"description": "CPU: cores (0.5, 2, \"0.5\") or millicores (\"500m\"); more than 0",
    "default": "100m", "examples": ["500m"],
    "oneOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": cores},
        {"type": "string", "pattern": patterns::cpu()},
    ]})
}

fn size(max_mib: u64, zero: bool, default: &str) -> Value {
    let number = if zero {
        json!({"type": "number", "minimum": 0, "maximum": max_mib})
    } else {
        json!({"type": "number", "exclusiveMinimum": 0, "maximum": max_mib})
    };
    json!({"description": "Size: MiB as a number, or with a unit (\"128Mi\", \"1Gi\", \"1G\")",
        "default": default, "examples": ["128Mi"],
        "oneOf": [number, {"type": "string", "pattern": patterns::size(max_mib, zero)}]})
}

fn memory() -> Value {
    size(MAX_MEMORY_MIB, false, "64Mi")
}

fn storage() -> Value {
    size(MAX_STORAGE_MIB, true, "0Mi")
}

fn ports() -> Value {
    json!({"type": "array", "maxItems": MAX_PORTS, "items": reference("PortSpec")})
}

fn port() -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": u16::MAX})
}

fn host_port() -> Value {
    nullable(json!({"type": "integer", "minimum": 1, "maximum": u16::MAX}))
}

/// Exactly one kind: in each branch one kind is set and every other is absent or null.
fn constraints() -> Value {
    let branches: Vec<Value> = CONSTRAINT_KINDS
        .iter()
        .map(|kind| {
            let mut properties = serde_json::Map::new();
            for other in CONSTRAINT_KINDS {
                let rule = if other == kind {
                    json!({"not": {"type": "null"}})
                } else {
                    json!({"type": "null"})
                };
                properties.insert(other.to_string(), rule);
            }
            json!({"properties": properties, "required": [kind]})
        })
        .collect();
    json!({"type": "array", "maxItems": MAX_CONSTRAINTS,
        "items": {"allOf": [reference("Constraint"), {"oneOf": branches}]}})
}

fn arch() -> Value {
    nullable(
        json!({"type": "array", "minItems": 1, "maxItems": MAX_CONSTRAINT_ITEMS,
        "items": {"type": "string", "enum": ARCHITECTURES}}),
    )
}

/// `In` and `NotIn` need values, `Exists` and `DoesNotExist` take none.
fn selector() -> Value {
    let requirement = json!({"allOf": [reference("LabelRequirement"), {"oneOf": [
        {"properties": {"operator": {"enum": ["In", "NotIn"]}, "values": {"minItems": 1}}, "required": ["values"]},
        {"properties": {"operator": {"enum": ["Exists", "DoesNotExist"]}, "values": {"maxItems": 0}}, "required": ["operator"]},
    ]}]});
    nullable(
        json!({"type": "array", "minItems": 1, "maxItems": MAX_CONSTRAINT_ITEMS, "items": requirement}),
    )
}

fn label_key() -> Value {
    json!({"type": "string", "pattern": patterns::label_key()})
}

fn label_values() -> Value {
    json!({"type": "array", "maxItems": MAX_CONSTRAINT_ITEMS,
        "items": {"type": "string", "pattern": patterns::label_value()}})
}

fn host_name_value() -> Value {
    json!({"type": "string", "pattern": patterns::word(), "maxLength": MAX_HOST_NAME_LEN})
}

fn optional_host_name() -> Value {
    nullable(host_name_value())
}

fn host_names() -> Value {
    json!({"type": "array", "maxItems": MAX_CONSTRAINT_ITEMS, "items": host_name_value()})
}

fn clusters() -> Value {
    nullable(
        json!({"type": "array", "minItems": 1, "maxItems": MAX_CONSTRAINT_ITEMS,
        "items": host_name_value(), "description": "Allow-list of clusters"}),
    )
}

/// A cluster, or at least one node.
fn direct() -> Value {
    nullable(json!({"allOf": [reference("DirectPlacement"), {"anyOf": [
        {"properties": {"cluster": {"type": "string"}}, "required": ["cluster"]},
        {"properties": {"nodes": {"minItems": 1}}, "required": ["nodes"]},
    ]}]}))
}

/// Exactly one of `toPoint` and `toService`.
fn latency() -> Value {
    nullable(json!({"allOf": [reference("LatencyConstraint"), {"oneOf": [
        {"properties": {"toPoint": {"not": {"type": "null"}}, "toService": {"type": "null"}}, "required": ["toPoint"]},
        {"properties": {"toService": {"not": {"type": "null"}}, "toPoint": {"type": "null"}}, "required": ["toService"]},
    ]}]}))
}

/// At least one of `maxPerNode` and `maxPerCluster`.
fn spread() -> Value {
    nullable(json!({"allOf": [reference("SpreadConstraint"), {"anyOf": [
        {"properties": {"maxPerNode": {"type": "integer"}}, "required": ["maxPerNode"]},
        {"properties": {"maxPerCluster": {"type": "integer"}}, "required": ["maxPerCluster"]},
    ]}]}))
}

fn at_least_one() -> Value {
    nullable(json!({"type": "integer", "minimum": 1, "maximum": u32::MAX}))
}

fn rigidness() -> Value {
    nullable(json!({"type": "number", "minimum": 0, "maximum": 1,
        "description": "1 (default) = hard; in [0, 1) = soft with this weight"}))
}

fn convergence_time() -> Value {
    nullable(
        json!({"type": "integer", "minimum": 1, "maximum": MAX_CONVERGENCE_TIME_SECS,
        "description": "Seconds a soft violation may persist before the instance is re-placed"}),
    )
}

fn latitude() -> Value {
    json!({"type": "number", "minimum": -90, "maximum": 90})
}

fn longitude() -> Value {
    json!({"type": "number", "minimum": -180, "maximum": 180})
}

fn radius_km() -> Value {
    json!({"type": "number", "exclusiveMinimum": 0, "maximum": MAX_RADIUS_KM})
}

fn max_ms() -> Value {
    json!({"type": "number", "exclusiveMinimum": 0, "maximum": MAX_LATENCY_MS})
}

fn score() -> Value {
    json!({"type": "number", "minimum": 0, "maximum": 1})
}

fn geo_point() -> Value {
    nullable(reference("GeoPoint"))
}

fn to_service() -> Value {
    optional_dns_label()
}

/// Exactly one handler; liveness and startup probes pass on one success.
fn probe(single_success: bool) -> Value {
    let handlers = ["exec", "httpGet", "tcpSocket"];
    let branches: Vec<Value> = handlers
        .iter()
        .map(|handler| {
            let mut properties = serde_json::Map::new();
            for other in handlers {
                let rule = if other == *handler {
                    json!({"not": {"type": "null"}})
                } else {
                    json!({"type": "null"})
                };
                properties.insert(other.to_string(), rule);
            }
            json!({"properties": properties, "required": [handler]})
        })
        .collect();
    let mut rules = vec![reference("Probe"), json!({"oneOf": branches})];
    if single_success {
        rules.push(json!({"properties": {"successThreshold": {"const": 1}}}));
    }
    nullable(json!({"allOf": rules}))
}

fn probe_seconds(min: u32, default: u32) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": crate::MAX_PROBE_SECONDS, "default": default})
}

fn probe_threshold(default: u32) -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": crate::MAX_PROBE_THRESHOLD, "default": default})
}

fn probe_command() -> Value {
    json!({"type": "array", "minItems": 1, "maxItems": MAX_COMMAND_WORDS,
        "items": {"type": "string", "pattern": patterns::text(), "maxLength": MAX_STRING_LEN}})
}

fn probe_path() -> Value {
    json!({"type": "string", "pattern": patterns::http_path(), "maxLength": MAX_STRING_LEN, "default": "/"})
}

fn optional_reference_to(name: &str) -> Value {
    nullable(reference(name))
}

/// A count, or a percentage from 0 % to 100 %.
fn share() -> Value {
    nullable(json!({"oneOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_REPLICAS},
        {"type": "string", "pattern": "^(100|[1-9]?[0-9])%$"},
    ]}))
}

/// `rollingUpdate` only with `type: RollingUpdate`; not both shares zero.
fn strategy() -> Value {
    let zero = json!({"enum": [0, "0%"]});
    nullable(json!({"allOf": [reference("RolloutStrategy"),
        {"not": {"properties": {"type": {"const": "Recreate"}, "rollingUpdate": {"type": "object"}},
            "required": ["type", "rollingUpdate"]}},
        {"not": {"properties": {"rollingUpdate": {"properties": {"maxSurge": zero, "maxUnavailable": zero},
            "required": ["maxSurge", "maxUnavailable"]}}, "required": ["rollingUpdate"]}},
    ]}))
}

fn job_count(min: u32, max: u32, default: u32) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max, "default": default})
}

fn job_seconds(min: u64) -> Value {
    nullable(json!({"type": "integer", "minimum": min, "maximum": crate::job::MAX_JOB_SECONDS}))
}

/// At least one target. `min <= max` is left to validation (JSON Schema cannot compare
/// two fields; the API test's hooks keep generated bodies to it).
fn autoscale() -> Value {
    let set =
        |target: &str| json!({"required": [target], "properties": {target: {"type": "integer"}}});
    nullable(json!({"allOf": [reference("AutoscaleSpec"),
        {"anyOf": [set("targetCPU"), set("targetMemory")]}]}))
}

fn autoscale_replicas(default: Option<u32>) -> Value {
    let mut value = json!({"type": "integer", "minimum": 1, "maximum": MAX_REPLICAS});
    if let Some(default) = default {
        value["default"] = json!(default);
    }
    value
}

fn autoscale_target() -> Value {
    nullable(
        json!({"type": "integer", "minimum": 1, "maximum": crate::autoscale::MAX_TARGET_PERCENT}),
    )
}

fn stabilization(default: u32) -> Value {
    json!({"type": "integer", "minimum": 0,
        "maximum": crate::autoscale::MAX_STABILIZATION_SECONDS, "default": default})
}

fn schedule() -> Value {
    nullable(json!({"type": "string", "pattern": patterns::schedule()}))
}

/// Every refined field: (component, property, schema).
fn refinements() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        ("Application", "apiVersion", api_version()),
        ("Application", "kind", kind()),
        ("Metadata", "name", dns_label()),
        ("Metadata", "namespace", namespace()),
        ("Metadata", "labels", labels()),
        ("Metadata", "annotations", annotations()),
        ("ApplicationSpec", "services", services()),
        ("ServiceSpec", "name", dns_label()),
        ("ServiceSpec", "image", optional_reference()),
        ("ServiceSpec", "module", optional_reference()),
        ("ServiceSpec", "command", command()),
        ("ServiceSpec", "args", args()),
        ("ServiceSpec", "env", env()),
        ("ServiceSpec", "workingDir", working_dir()),
        ("ServiceSpec", "resources", resources()),
        ("ServiceSpec", "replicas", replicas()),
        ("ServiceSpec", "ports", ports()),
        ("ServiceSpec", "constraints", constraints()),
        ("ServiceSpec", "labels", labels()),
        ("ServiceSpec", "livenessProbe", probe(true)),
        ("ServiceSpec", "readinessProbe", probe(false)),
        ("ServiceSpec", "startupProbe", probe(true)),
        ("ServiceSpec", "strategy", strategy()),
        ("ServiceSpec", "autoscale", autoscale()),
        ("AutoscaleSpec", "min", autoscale_replicas(Some(1))),
        ("AutoscaleSpec", "max", autoscale_replicas(None)),
        ("AutoscaleSpec", "targetCPU", autoscale_target()),
        ("AutoscaleSpec", "targetMemory", autoscale_target()),
        (
            "AutoscaleSpec",
            "scaleUpStabilizationSeconds",
            stabilization(0),
        ),
        (
            "AutoscaleSpec",
            "scaleDownStabilizationSeconds",
            stabilization(crate::autoscale::DEFAULT_SCALE_DOWN_SECONDS),
        ),
        (
            "JobSpec",
            "completions",
            job_count(1, crate::job::MAX_COMPLETIONS, 1),
        ),
        (
            "JobSpec",
            "parallelism",
            job_count(1, crate::job::MAX_COMPLETIONS, 1),
        ),
        (
            "JobSpec",
            "backoffLimit",
            job_count(0, crate::job::MAX_BACKOFF_LIMIT, 6),
        ),
        (
            "JobSpec",
            "successfulJobsHistoryLimit",
            job_count(0, crate::job::MAX_HISTORY_LIMIT, 3),
        ),
        (
            "JobSpec",
            "failedJobsHistoryLimit",
            job_count(0, crate::job::MAX_HISTORY_LIMIT, 1),
        ),
        ("JobSpec", "activeDeadlineSeconds", job_seconds(1)),
        ("JobSpec", "ttlSecondsAfterFinished", job_seconds(0)),
        ("JobSpec", "schedule", schedule()),
        ("RunRequest", "args", args()),
        ("Quota", "cpu", nullable(cpu())),
        ("Quota", "memory", nullable(memory())),
        (
            "Quota",
            "instances",
            nullable(
                json!({"type": "integer", "minimum": 0, "maximum": crate::quota::MAX_QUOTA_INSTANCES}),
            ),
        ),
        ("Probe", "exec", optional_reference_to("ExecAction")),
        ("Probe", "httpGet", optional_reference_to("HttpGetAction")),
        (
            "Probe",
            "tcpSocket",
            optional_reference_to("TcpSocketAction"),
        ),
        ("Probe", "initialDelaySeconds", probe_seconds(0, 0)),
        ("Probe", "periodSeconds", probe_seconds(1, 10)),
        ("Probe", "timeoutSeconds", probe_seconds(1, 1)),
        ("Probe", "successThreshold", probe_threshold(1)),
        ("Probe", "failureThreshold", probe_threshold(3)),
        ("ExecAction", "command", probe_command()),
        ("HttpGetAction", "path", probe_path()),
        ("HttpGetAction", "port", port()),
        ("TcpSocketAction", "port", port()),
        ("RollingUpdate", "maxSurge", share()),
        ("RollingUpdate", "maxUnavailable", share()),
        ("ServiceSpec", "annotations", annotations()),
        ("Capabilities", "add", capabilities()),
        ("Resources", "cpu", cpu()),
        ("Resources", "memory", memory()),
        ("Resources", "gpus", gpus()),
        ("Resources", "gpuModel", gpu_model()),
        ("Resources", "storage", storage()),
        ("PortSpec", "name", optional_dns_label()),
        ("PortSpec", "port", port()),
        ("PortSpec", "hostPort", host_port()),
        ("ServiceSpec", "imagePullSecret", optional_dns_label()),
        ("ServiceSpec", "secretEnv", secret_env()),
        ("ServiceSpec", "files", files()),
        ("FileSpec", "path", file_path()),
        ("FileSpec", "content", file_content()),
        ("ServiceSpec", "volumes", volumes()),
        ("VolumeSpec", "name", dns_label()),
        ("VolumeSpec", "path", file_path()),
        ("VolumeSpec", "hostPath", nullable(normal_path())),
        ("SecretKeyRef", "name", dns_label()),
        ("SecretKeyRef", "key", secret_key()),
        ("SecretInput", "data", secret_data()),
        ("SecretInput", "labels", secret_labels()),
        ("Constraint", "arch", arch()),
        ("Constraint", "nodeSelector", selector()),
        ("Constraint", "clusterSelector", selector()),
        ("Constraint", "direct", direct()),
        ("Constraint", "clusters", clusters()),
        ("Constraint", "latency", latency()),
        ("Constraint", "spread", spread()),
        ("Constraint", "rigidness", rigidness()),
        ("Constraint", "convergenceTime", convergence_time()),
        ("LabelRequirement", "key", label_key()),
        ("LabelRequirement", "values", label_values()),
        ("DirectPlacement", "cluster", optional_host_name()),
        ("DirectPlacement", "nodes", host_names()),
        ("GeoPoint", "lat", latitude()),
        ("GeoPoint", "lon", longitude()),
        ("GeoConstraint", "radiusKm", radius_km()),
        ("LatencyConstraint", "maxMs", max_ms()),
        ("LatencyConstraint", "toPoint", geo_point()),
        ("LatencyConstraint", "toService", to_service()),
        ("SpreadConstraint", "maxPerNode", at_least_one()),
        ("SpreadConstraint", "maxPerCluster", at_least_one()),
        ("TrustConstraint", "minScore", score()),
        ("WasmOptions", "sha256", sha256()),
        ("VmOptions", "kernel", vm_location()),
        ("VmOptions", "kernelSha256", sha256()),
        ("VmOptions", "initramfs", optional_vm_location()),
        ("VmOptions", "initramfsSha256", sha256()),
        ("VmOptions", "cmdline", vm_cmdline()),
        ("WasmOptions", "timeoutSeconds", timeout_seconds()),
        ("WasmOptions", "preopens", preopens()),
        ("Preopen", "hostPath", host_path()),
        ("Preopen", "guestPath", guest_path()),
    ]
}

/// Replaces the schema of every refined field in `schemas` (an OpenAPI document's
/// `components.schemas`), keeping the field's description. Returns the refinements that found
/// no such component or property: none, unless a type and this file went apart.
pub fn refine(schemas: &mut serde_json::Map<String, Value>) -> Vec<String> {
    let mut missing = Vec::new();
    for (component, property, mut rules) in refinements() {
        let Some(slot) = schemas
            .get_mut(component)
            .and_then(|c| c.get_mut("properties"))
            .and_then(|p| p.get_mut(property))
        else {
            missing.push(format!("{component}.{property}"));
            continue;
        };
        if let (Some(description), Some(object)) = (slot.get("description"), rules.as_object_mut())
        {
            object
                .entry("description")
                .or_insert_with(|| description.clone());
        }
        *slot = rules;
    }
    missing
}

/// The schema of a path segment that names a namespace, an application or a service.
pub fn name_parameter() -> Value {
    dns_label()
}

//! The native descriptor: `apiVersion`, `kind`, `metadata`, `spec`, Kubernetes-like in spirit.

use crate::quantity::{Mebibytes, Millicores};
use crate::security::SecurityContext;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

pub const API_VERSION: &str = "canopy.dev/v1";
pub const KIND_APPLICATION: &str = "Application";
pub const DEFAULT_NAMESPACE: &str = "default";

/// An application: a named group of services owned by a namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Application {
    #[serde(default = "default_api_version")]
    pub api_version: String,
    #[serde(default = "default_kind")]
    pub kind: String,
    pub metadata: Metadata,
    pub spec: ApplicationSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metadata {
    /// DNS label: lowercase letters, digits and '-', at most 63 characters.
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub labels: BTreeMap<String, String>,
    /// Free-form notes; also where fields of imported formats without a native home are kept.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationSpec {
    pub services: Vec<ServiceSpec>,
}

/// How a service's workload is run on a node.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// An OCI image run by runc or crun.
    Container,
    /// A WebAssembly module run in-process by wasmtime.
    Wasm,
    /// A native command.
    Process,
    /// A guest kernel booted as a microVM under qemu (`vm`).
    Vm,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Container => "container",
            RuntimeKind::Wasm => "wasm",
            RuntimeKind::Process => "process",
            RuntimeKind::Vm => "vm",
        }
    }
}

impl std::str::FromStr for RuntimeKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "container" => Ok(RuntimeKind::Container),
            "wasm" => Ok(RuntimeKind::Wasm),
            "process" => Ok(RuntimeKind::Process),
            "vm" => Ok(RuntimeKind::Vm),
            other => Err(format!("unknown runtime {other:?}")),
        }
    }
}

/// A workload spec. The artifact is `image` (container), `module` (wasm) or `command` (process).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    pub runtime: RuntimeKind,
    /// OCI image reference, for `container`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Runs the container in a sandbox (`gvisor`) instead of on the node's shared kernel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<crate::Sandbox>,
    /// Module path, URL or OCI reference, for `wasm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// The module's digest, preopened directories and time limit, for `wasm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<crate::WasmOptions>,
    /// The guest's kernel, initramfs and command line, for `vm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<crate::VmOptions>,
    /// Program and its first arguments, for `process`; overrides the entrypoint for `container`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub resources: Resources,
    #[serde(
        default = "default_replicas",
        deserialize_with = "crate::integer::integral"
    )]
    pub replicas: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// Makes the service a job: runs that end, `completions` of them successful, optionally
    /// on a cron `schedule`. `replicas`, `strategy` and `restartPolicy: always` do not apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<crate::JobSpec>,
    /// Restarts the instance (by `restartPolicy`) when it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<crate::Probe>,
    /// Ready (given traffic, counted as available) only while it passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<crate::Probe>,
    /// Holds the other probes off until it passes once; restarts when it keeps failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<crate::Probe>,
    /// How a changed spec replaces the instances; a rolling update when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<crate::RolloutStrategy>,
    /// Moves `replicas` between `min` and `max` by the instances' measured use (as
    /// Kubernetes' HorizontalPodAutoscaler); `replicas` is the starting point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<crate::AutoscaleSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// What placement optimises for this service; `binPack` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objective: Option<Objective>,
    /// The name of a Secret of the namespace with registry credentials for `image` (keys
    /// `username` and `password`); the node's own credentials for the registry are used
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret: Option<String>,
    /// Environment variables whose values come from a key of a Secret of the namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, crate::SecretKeyRef>,
    /// Read-only files the instances see: inline content or a key of a Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<crate::FileSpec>,
    /// Directories the instances read and write: `node` (named, kept on the node),
    /// `emptyDir` (per instance) or `hostPath` (a directory of the node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<crate::VolumeSpec>,
    /// The user the workload runs as, privileged mode, added capabilities.
    #[serde(default, skip_serializing_if = "SecurityContext::is_empty")]
    pub security_context: SecurityContext,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub annotations: BTreeMap<String, String>,
}

impl ServiceSpec {
    /// The restart policy its node runs it with: a job's runs end, so `always` (the
    /// default) means `never` there.
    pub fn run_restart_policy(&self) -> RestartPolicy {
        match (self.restart_policy, &self.job) {
            (RestartPolicy::Always, Some(_)) => RestartPolicy::Never,
            (policy, _) => policy,
        }
    }

    pub fn is_job(&self) -> bool {
        self.job.is_some()
    }

    /// A fingerprint of everything that shapes one instance (all but `replicas`): instances
    /// made from an older spec have another hash and are replaced, as Kubernetes does with
    /// its pod-template hash. FNV-1a over the canonical JSON: stable across runs and builds.
    /// The `strategy` says how to roll and `autoscale` how many run, not what runs: both
    /// are left out too.
    pub fn template_hash(&self) -> String {
        let template = ServiceSpec {
            replicas: 0,
            strategy: None,
            autoscale: None,
            ..self.clone()
        };
        let bytes = serde_json::to_vec(&template).unwrap_or_default();
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        format!("{hash:016x}")
    }
}

/// What one instance of a service requests from its node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    #[serde(default = "default_cpu")]
    pub cpu: Millicores,
    #[serde(default = "default_memory")]
    pub memory: Mebibytes,
    #[serde(default, deserialize_with = "crate::integer::integral")]
    pub gpus: u32,
    /// GPU model the instance needs (e.g. `nvidia-a100`); any model when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_model: Option<String>,
    #[serde(default)]
    pub storage: Mebibytes,
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cpu: default_cpu(),
            memory: default_memory(),
            gpus: 0,
            gpu_model: None,
            storage: Mebibytes(0),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port the workload listens on.
    #[serde(deserialize_with = "crate::integer::integral")]
    pub port: u16,
    #[serde(default)]
    pub protocol: Protocol,
    /// Port published on the node, if any.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integer::optional_integral"
    )]
    pub host_port: Option<u16>,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

/// What placement optimises: the weights of the scheduler's scorers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum Objective {
    /// Fill nodes up (best fit), keeping big holes for big instances.
    #[default]
    BinPack,
    /// Least loaded nodes first, fewest instances of the service first.
    Spread,
    /// Closest to the service's latency and geo targets first.
    Latency,
    /// Lowest power draw × grid carbon intensity first.
    Energy,
}

/// A map whose keys must be unique: a key given twice is an error (naming it), not a silent
/// "last one wins".
fn unique_keys<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Unique;
    impl<'de> serde::de::Visitor<'de> for Unique {
        type Value = BTreeMap<String, String>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of strings")
        }

        fn visit_map<M: serde::de::MapAccess<'de>>(
            self,
            mut map: M,
        ) -> Result<Self::Value, M::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, String>()? {
                if out.contains_key(&key) {
                    return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
                }
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    deserializer.deserialize_map(Unique)
}

/// What Canopy shows instead of a secret's value: secrets are write-only.
pub const REDACTED: &str = "<redacted>";

/// Username and password (or token) for a registry, as a node's own credentials file holds
/// them. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One placement constraint: exactly one of the kind fields is set. Hard by default;
/// `rigidness` below 1 makes it a preference of that weight, and `convergenceTime`
/// bounds how long a soft violation may last before re-placement (Oakestra SLA semantics).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Constraint {
    /// Allowed CPU architectures, from [`crate::limits::ARCHITECTURES`] (`amd64`, `arm64`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<Vec<LabelRequirement>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_selector: Option<Vec<LabelRequirement>>,
    /// Pin to a cluster and/or to a list of nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<DirectPlacement>,
    /// Allow-list of clusters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<GeoConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<SpreadConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<TrustConstraint>,
    /// 1 (default) = hard; in [0, 1) = soft with this weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rigidness: Option<f64>,
    /// Seconds a soft violation may persist before the instance is re-placed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integer::optional_integral"
    )]
    pub convergence_time: Option<u64>,
}

/// The kind of a constraint, borrowed from the one field that is set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConstraintKind<'a> {
    Arch(&'a [String]),
    NodeSelector(&'a [LabelRequirement]),
    ClusterSelector(&'a [LabelRequirement]),
    Direct(&'a DirectPlacement),
    Clusters(&'a [String]),
    Geo(&'a GeoConstraint),
    Latency(&'a LatencyConstraint),
    Spread(&'a SpreadConstraint),
    Trust(&'a TrustConstraint),
}

impl Constraint {
    /// Every kind field that is set (a valid constraint has exactly one).
    pub fn kinds(&self) -> Vec<ConstraintKind<'_>> {
        let mut kinds = Vec::with_capacity(1);
        if let Some(v) = &self.arch {
            kinds.push(ConstraintKind::Arch(v));
        }
        if let Some(v) = &self.node_selector {
            kinds.push(ConstraintKind::NodeSelector(v));
        }
        if let Some(v) = &self.cluster_selector {
            kinds.push(ConstraintKind::ClusterSelector(v));
        }
        if let Some(v) = &self.direct {
            kinds.push(ConstraintKind::Direct(v));
        }
        if let Some(v) = &self.clusters {
            kinds.push(ConstraintKind::Clusters(v));
        }
        if let Some(v) = &self.geo {
            kinds.push(ConstraintKind::Geo(v));
        }
        if let Some(v) = &self.latency {
            kinds.push(ConstraintKind::Latency(v));
        }
        if let Some(v) = &self.spread {
            kinds.push(ConstraintKind::Spread(v));
        }
        if let Some(v) = &self.trust {
            kinds.push(ConstraintKind::Trust(v));
        }
        kinds
    }

    /// The single kind of a valid constraint.
    pub fn kind(&self) -> Option<ConstraintKind<'_>> {
        let kinds = self.kinds();
        (kinds.len() == 1).then(|| kinds[0])
    }

    pub fn rigidness(&self) -> f64 {
        self.rigidness.unwrap_or(1.0)
    }

    pub fn is_hard(&self) -> bool {
        self.rigidness() >= 1.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelRequirement {
    pub key: String,
    #[serde(default)]
    pub operator: LabelOperator,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub enum LabelOperator {
    #[default]
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectPlacement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GeoPoint {
    /// Degrees north, in [-90, 90].
    pub lat: f64,
    /// Degrees east, in [-180, 180].
    pub lon: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GeoConstraint {
    pub location: GeoPoint,
    pub radius_km: f64,
}

/// At most `maxMs` round-trip to a point (`toPoint`) or to the instances of another service of the same application (`toService`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyConstraint {
    pub max_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_point: Option<GeoPoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_service: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpreadConstraint {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integer::optional_integral"
    )]
    pub max_per_node: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::integer::optional_integral"
    )]
    pub max_per_cluster: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustConstraint {
    /// Minimum trust score of a node, in [0, 1].
    pub min_score: f64,
}

fn default_api_version() -> String {
    API_VERSION.to_string()
}
fn default_kind() -> String {
    KIND_APPLICATION.to_string()
}
fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_string()
}
fn default_replicas() -> u32 {
    1
}
fn default_cpu() -> Millicores {
    Millicores(100)
}
fn default_memory() -> Mebibytes {
    Mebibytes(64)
}

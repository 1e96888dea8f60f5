//! Size and count limits on descriptors. They bound the work and memory one request can cost
//! the root (and, through it, every cluster and node), and keep sums in the scheduler far from
//! overflow. `validate_application` and `parse_descriptor` enforce them.

/// Largest descriptor text accepted, in bytes (1 MiB).
pub const MAX_DESCRIPTOR_BYTES: usize = 1024 * 1024;
/// Deepest YAML flow nesting (`[` and `{`) accepted; deeper is refused before parsing, since
/// the parser's work grows with the square of it.
pub const MAX_YAML_FLOW_DEPTH: usize = 64;
/// Most YAML aliases (`*name`) in one descriptor, and most anchors (`&name`).
pub const MAX_YAML_ALIASES: usize = 1024;
/// Largest size a YAML descriptor may reach with every alias replaced by its node (4 MiB).
pub const MAX_YAML_EXPANDED_BYTES: usize = 4 * 1024 * 1024;
/// Most applications in one descriptor (documents of a multi-document input).
pub const MAX_APPLICATIONS_PER_DESCRIPTOR: usize = 64;
/// Most services in one application.
pub const MAX_SERVICES_PER_APPLICATION: usize = 64;
/// Most replicas of one service.
pub const MAX_REPLICAS: u32 = 1000;
/// Longest name: a DNS label (RFC 1035), since names form `<service>.<app>.<namespace>.canopy`.
pub const MAX_NAME_LEN: usize = 63;
/// Most labels on one object.
pub const MAX_LABELS: usize = 64;
/// Most annotations on one object.
pub const MAX_ANNOTATIONS: usize = 64;
/// Longest annotation value, in characters (annotations may hold whole fields of imported formats).
pub const MAX_ANNOTATION_VALUE_LEN: usize = 16 * 1024;
/// Longest label value (as in Kubernetes).
pub const MAX_LABEL_VALUE_LEN: usize = 63;
/// Longest label or annotation key prefix (a DNS subdomain, before the `/`).
pub const MAX_LABEL_PREFIX_LEN: usize = 253;
/// Most environment variables of one service.
pub const MAX_ENV_VARS: usize = 256;
/// Most constraints on one service.
pub const MAX_CONSTRAINTS: usize = 32;
/// Longest string anywhere else, in characters (image, module, command words, env values...).
pub const MAX_STRING_LEN: usize = 4096;
/// Most words in `command`, and most in `args`.
pub const MAX_COMMAND_WORDS: usize = 256;
/// Most ports of one service.
pub const MAX_PORTS: usize = 64;
/// Most entries in any list inside a constraint (architectures, selector terms, values, nodes, clusters).
pub const MAX_CONSTRAINT_ITEMS: usize = 64;
/// Longest cluster or node name (a DNS name).
pub const MAX_HOST_NAME_LEN: usize = 253;
/// Most CPU one instance may request: 1024 cores.
pub const MAX_CPU_MILLICORES: u64 = 1024 * 1000;
/// Most memory one instance may request: 16 TiB.
pub const MAX_MEMORY_MIB: u64 = 16 * 1024 * 1024;
/// Most storage one instance may request: 1 PiB.
pub const MAX_STORAGE_MIB: u64 = 1024 * 1024 * 1024;
/// Most GPUs one instance may request.
pub const MAX_GPUS: u32 = 64;
/// Longest `convergenceTime`: 30 days, in seconds.
pub const MAX_CONVERGENCE_TIME_SECS: u64 = 30 * 24 * 3600;
/// Largest latency bound, in milliseconds (one minute; anything above means "no constraint").
pub const MAX_LATENCY_MS: f64 = 60_000.0;
/// Largest geo radius, in km (half the Earth's circumference covers every point).
pub const MAX_RADIUS_KM: f64 = 20_038.0;

/// CPU architectures a node may report and a constraint may name (Go/OCI spelling).
pub const ARCHITECTURES: &[&str] = &[
    "amd64", "arm64", "arm", "riscv64", "386", "ppc64le", "s390x",
];

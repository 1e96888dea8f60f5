//! Canopy's domain model: descriptors (native and Oakestra SLA), their validation, and the
//! observed state of instances, clusters and nodes. Pure data and functions; no I/O.

pub mod autoscale;
mod descriptor;
mod error;
pub mod files;
pub mod integer;
pub mod job;
mod lifecycle;
pub mod limits;
pub mod oakestra;
mod operator;
mod parse;
pub mod patterns;
pub mod privilege;
mod probe;
pub mod quantity;
pub mod quota;
mod sandbox;
pub mod schema;
mod secret;
mod secret_refs;
pub mod security;
mod selector;
mod status;
mod strategy;
pub mod tosca;
mod usage;
mod validate;
mod vm;
pub mod volume;
mod wasm;
mod yaml_bounds;

pub use autoscale::AutoscaleSpec;
pub use descriptor::*;
pub use error::{DescriptorError, FieldError};
pub use files::{FILES_ENV, FileSpec};
pub use job::{ConcurrencyPolicy, JobSpec, RunRequest};
pub use lifecycle::*;
pub use limits::*;
pub use oakestra::{is_oakestra_sla, parse_oakestra};
pub use operator::{LabelEdit, OperatorSettings};
pub use parse::{DescriptorFormat, ParsedDescriptor, parse_descriptor, to_json, to_yaml};
pub use privilege::privilege_errors;
pub use probe::{
    ExecAction, HttpGetAction, MAX_PROBE_SECONDS, MAX_PROBE_THRESHOLD, Probe, ProbeHandler,
    TcpSocketAction,
};
pub use quantity::{Mebibytes, Millicores, QuantityError};
pub use quota::Quota;
pub use sandbox::Sandbox;
pub use secret::{
    KIND_SECRET, MAX_SECRET_BYTES, MAX_SECRET_KEYS, SecretInfo, SecretInput, SecretValues,
    validate_secret_key,
};
pub use secret_refs::{
    PULL_PASSWORD, PULL_USERNAME, SecretKeyRef, SecretReference, UnresolvedSecret,
};
pub use security::{Capabilities, SecurityContext};
pub use selector::{Requirement, Selector, SelectorError, service_labels};
pub use status::*;
pub use strategy::{IntOrPercent, RollingUpdate, RolloutStrategy, StrategyKind};
pub use usage::{InstanceDetails, Usage};
pub use validate::{validate_application, validate_dns_label, validate_words};
pub use vm::{MAX_VM_CMDLINE, VmOptions};
pub use volume::{APPLICATION_DELETED, VolumeKind, VolumeSpec, volume_key};
pub use wasm::{Preopen, WasmOptions, is_oci_module, is_url_module};
pub use yaml_bounds::{YamlBoundError, check_yaml_bounds};

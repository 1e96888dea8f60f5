//! Canopy end to end: every test starts real `canopy` processes (tiers, workloads, registries,
//! browsers, Prometheus, etcd) through `support`. One test binary rather than one per file: each
//! binary links the whole workspace, so one link instead of dozens saves minutes of CI and
//! gigabytes of disk; nextest still runs every test in a process of its own.

mod support;

mod api_hardening;
mod auth;
mod autoscale;
mod cli;
mod containers;
mod dashboard;
mod docker_driver;
mod faults;
#[cfg(feature = "etcd")]
mod ha;
mod hierarchy;
mod jobs;
mod joins;
mod lifecycle;
mod membership;
mod metrics;
mod netns;
mod ngsild;
mod nodejoins;
mod operations;
mod overlay;
mod overlay_containers;
mod podman_driver;
mod private_files;
mod probes;
mod refusals;
mod rollout;
mod sandboxes;
mod scheduling;
mod secrets;
mod streams;
mod swarm_driver;
mod traffic;
mod verbs;
mod vms;
mod volumes;
mod wasm;

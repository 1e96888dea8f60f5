#![allow(dead_code)]

use canopy_model::{
    Constraint, GeoPoint, Mebibytes, Millicores, ResourceAmounts, Resources, RuntimeKind,
    ServiceSpec,
};
use canopy_sched::{ClusterView, NodeView};

pub fn spec(cpu: u64, memory: u64) -> ServiceSpec {
    let mut s: ServiceSpec = serde_json::from_value(serde_json::json!({
        "name": "web", "runtime": "process", "command": ["/bin/true"]
    }))
    .expect("valid spec");
    s.resources = Resources {
        cpu: Millicores(cpu),
        memory: Mebibytes(memory),
        ..Resources::default()
    };
    s
}

pub fn with(mut s: ServiceSpec, constraints: Vec<Constraint>) -> ServiceSpec {
    s.constraints = constraints;
    s
}

pub fn constraint(json: serde_json::Value) -> Constraint {
    serde_json::from_value(json).expect("valid constraint")
}

pub fn amounts(cpu: u64, memory: u64) -> ResourceAmounts {
    ResourceAmounts {
        cpu_millis: cpu,
        memory_mib: memory,
        ..ResourceAmounts::default()
    }
}

pub fn point(lat: f64, lon: f64) -> GeoPoint {
    GeoPoint { lat, lon }
}

pub fn node(name: &str) -> NodeView {
    NodeView {
        name: name.into(),
        ready: true,
        arch: "amd64".into(),
        runtimes: vec![RuntimeKind::Process],
        capacity: amounts(4000, 4096),
        ..NodeView::default()
    }
}

pub fn cluster(name: &str) -> ClusterView {
    ClusterView {
        name: name.into(),
        ready: true,
        arches: vec!["amd64".into()],
        runtimes: vec![RuntimeKind::Process],
        capacity: amounts(16000, 16384),
        max_node_free: amounts(4000, 4096),
        ..ClusterView::default()
    }
}

/// SplitMix64: a seeded, dependency-free random source for tests.
pub struct SeededRng(pub u64);

impl SeededRng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

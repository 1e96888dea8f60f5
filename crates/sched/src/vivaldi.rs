//! Vivaldi network coordinates (Dabek, Cox, Kaashoek, Morris, SIGCOMM 2004): 2-D Euclidean
//! plus a height (the access-link delay), with the adaptive timestep. The update follows
//! the paper's Figure 3 with heights as in §5.4 (and as HashiCorp Serf applies them).

/// Constant fraction of the error-weighted move (paper: cc = 0.25).
pub const CC: f64 = 0.25;
/// Weight of a new sample in the error estimate (paper: ce = 0.25).
pub const CE: f64 = 0.25;
/// Starting and largest relative error.
pub const MAX_ERROR: f64 = 1.5;
/// Heights never drop below this, ms (a zero height could never grow back from a push).
pub const MIN_HEIGHT_MS: f64 = 0.01;

/// A point in the latency space, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Coordinate {
    pub x: f64,
    pub y: f64,
    pub height: f64,
}

impl Coordinate {
    /// Planar distance, without heights.
    pub fn planar_distance(&self, other: &Coordinate) -> f64 {
        (self.x - other.x).hypot(self.y - other.y)
    }

    /// Estimated round-trip time to `other`, ms.
    pub fn estimate_rtt(&self, other: &Coordinate) -> f64 {
        self.planar_distance(other) + self.height + other.height
    }
}

/// One participant's coordinate, its error estimate and a deterministic random source.
#[derive(Debug, Clone, PartialEq)]
pub struct Vivaldi {
    pub coordinate: Coordinate,
    pub error: f64,
    rng: u64,
}

impl Vivaldi {
    /// At the origin with the largest error; `seed` drives the random direction used to
    /// separate coincident coordinates.
    pub fn new(seed: u64) -> Self {
        Vivaldi {
            coordinate: Coordinate {
                x: 0.0,
                y: 0.0,
                height: MIN_HEIGHT_MS,
            },
            error: MAX_ERROR,
            rng: seed,
        }
    }

    pub fn estimate_rtt(&self, other: &Coordinate) -> f64 {
        self.coordinate.estimate_rtt(other)
    }

    /// One sample: `rtt_ms` measured to a peer at `remote` with error `remote_error`.
    /// Non-finite or non-positive samples are ignored.
    pub fn update(&mut self, rtt_ms: f64, remote: &Coordinate, remote_error: f64) {
        if !(rtt_ms.is_finite() && rtt_ms > 0.0) {
            return;
        }
        let remote_error = if remote_error.is_finite() {
            remote_error.clamp(0.0, MAX_ERROR)
        } else {
            MAX_ERROR
        };
        let distance = self.coordinate.estimate_rtt(remote);
        // Sample weight: trust our view in proportion to our confidence against theirs.
        let total = self.error + remote_error;
        let weight = if total > 0.0 { self.error / total } else { 0.5 };
        let relative = (distance - rtt_ms).abs() / rtt_ms;
        self.error = (relative * CE * weight + self.error * (1.0 - CE * weight)).min(MAX_ERROR);
        let force = CC * weight * (rtt_ms - distance);
        self.apply_force(force, remote);
    }

    fn apply_force(&mut self, force: f64, remote: &Coordinate) {
        let (mut dx, mut dy) = (self.coordinate.x - remote.x, self.coordinate.y - remote.y);
        let mut planar = dx.hypot(dy);
        if planar < 1e-9 {
            // Coincident: push apart along a random direction.
            let angle = self.next_unit() * std::f64::consts::TAU;
            (dx, dy) = (angle.cos(), angle.sin());
            planar = 1.0;
        }
        let magnitude = planar + self.coordinate.height + remote.height;
        self.coordinate.x += dx / magnitude * force;
        self.coordinate.y += dy / magnitude * force;
        // The height component of the unit vector is (h_i + h_j) / |x_i - x_j|.
        let height =
            self.coordinate.height + (self.coordinate.height + remote.height) / magnitude * force;
        self.coordinate.height = height.max(MIN_HEIGHT_MS);
    }

    /// SplitMix64, in [0, 1).
    fn next_unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

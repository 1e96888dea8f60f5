//! What a service optimises: the weights of the scorers.

/// Per-service objective (the descriptor's `objective`); [`Objective::BinPack`] by default.
pub use canopy_model::Objective;

/// Scorer weights; the score is the weighted mean of the scorers, so it stays in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    pub best_fit: f64,
    pub spread: f64,
    pub latency: f64,
    pub energy: f64,
    pub trust: f64,
}

impl Weights {
    /// Defaults: the named scorer weighs 1, latency 0.1–0.2 (constant when the service has no
    /// latency or geo target), energy and trust 0.05–0.1 as tie-breakers.
    pub fn of(objective: Objective) -> Weights {
        match objective {
            Objective::BinPack => Weights {
                best_fit: 1.0,
                spread: 0.0,
                latency: 0.1,
                energy: 0.05,
                trust: 0.05,
            },
            Objective::Spread => Weights {
                best_fit: 0.0,
                spread: 1.0,
                latency: 0.1,
                energy: 0.05,
                trust: 0.05,
            },
            Objective::Latency => Weights {
                best_fit: 0.2,
                spread: 0.0,
                latency: 1.0,
                energy: 0.05,
                trust: 0.05,
            },
            Objective::Energy => Weights {
                best_fit: 0.2,
                spread: 0.0,
                latency: 0.1,
                energy: 1.0,
                trust: 0.05,
            },
        }
    }

    pub(crate) fn total(&self) -> f64 {
        self.best_fit + self.spread + self.latency + self.energy + self.trust
    }
}

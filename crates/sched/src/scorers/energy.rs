//! Energy / carbon: lower grams of CO2 per core-hour is better, from the power draw per core
//! (watts; 10 W when unknown) times the grid carbon intensity (gCO2/kWh; 400 when unknown).
//! Scores `1 / (1 + g / 4)`: the typical 4 g per core-hour scores 0.5.

use super::Scorer;
use crate::Candidate;
use crate::prepare::Prepared;

pub const DEFAULT_WATTS_PER_CORE: f64 = 10.0;
pub const DEFAULT_CARBON_G_PER_KWH: f64 = 400.0;
const TYPICAL_G_PER_CORE_HOUR: f64 = DEFAULT_WATTS_PER_CORE * DEFAULT_CARBON_G_PER_KWH / 1000.0;

pub struct Energy;

impl<C: Candidate> Scorer<C> for Energy {
    fn name(&self) -> &'static str {
        "energy"
    }

    fn score(&self, _: &Prepared, candidate: &C) -> f64 {
        let watts = candidate
            .watts_per_core()
            .filter(|w| w.is_finite())
            .unwrap_or(DEFAULT_WATTS_PER_CORE)
            .max(0.0);
        let carbon = candidate
            .carbon_g_per_kwh()
            .filter(|c| c.is_finite())
            .unwrap_or(DEFAULT_CARBON_G_PER_KWH)
            .max(0.0);
        let grams = watts * carbon / 1000.0;
        1.0 / (1.0 + grams / TYPICAL_G_PER_CORE_HOUR)
    }
}

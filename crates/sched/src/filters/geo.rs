//! Geography: within `radiusKm` of a point (haversine). A candidate without a location fails;
//! a cluster passes when its location hull (centre + radius) reaches into the circle.

use super::Reason;
use crate::Candidate;
use crate::geo::{EARTH_RADIUS_KM, haversine_km_cos, rtt_from_distance_ms};

const OUTSIDE: Reason = "outside the geo area";
use canopy_model::GeoConstraint;

/// The verdict, and the distance-based round trip to the area's centre for the latency
/// scorer (NaN: not measured, infinite: no location), with at most one haversine.
pub fn measure<C: Candidate>(
    geo: &GeoConstraint,
    cos_lat: f64,
    candidate: &C,
) -> (Result<(), Reason>, f64) {
    // A non-finite coordinate is no location (NaN would otherwise compare as inside).
    let Some(location) = candidate
        .location()
        .filter(|l| l.lat.is_finite() && l.lon.is_finite())
    else {
        return (Err("no location"), f64::INFINITY);
    };
    let slack = geo.radius_km + candidate.location_radius_km();
    // The latitude difference alone is a lower bound of the great-circle distance: most far
    // candidates are ruled out without trigonometry.
    let lat_km = (location.lat - geo.location.lat).abs().to_radians() * EARTH_RADIUS_KM;
    if lat_km > slack {
        return (Err(OUTSIDE), f64::NAN);
    }
    let nearest =
        haversine_km_cos(location, geo.location, cos_lat) - candidate.location_radius_km();
    if nearest.is_nan() {
        return (Err(OUTSIDE), f64::INFINITY);
    }
    let nearest = nearest.max(0.0);
    let verdict = if nearest <= geo.radius_km {
        Ok(())
    } else {
        Err(OUTSIDE)
    };
    (verdict, rtt_from_distance_ms(nearest))
}

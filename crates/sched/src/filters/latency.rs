//! Latency (round trip, ms) to a point or to another service's instances, at most `maxMs`.
//!
//! Estimate: Vivaldi coordinates when both ends have one; else great-circle distance with
//! [`crate::geo::rtt_from_distance_ms`] (1 ms + 2 ms per 100 km); else unknown, and a
//! candidate whose latency is unknown fails. To a service, the nearest known instance counts
//! (clients are routed to the closest); a service with no known instance holds the
//! constraint vacuously. Clusters are estimated optimistically from their hull (centre
//! minus radius), so the root never refuses a cluster that has a node close enough.

use super::Reason;
use crate::Candidate;
use crate::geo::{haversine_km, haversine_km_cos, rtt_from_distance_ms};
use crate::prepare::Target;
use crate::vivaldi::Coordinate;
use canopy_model::GeoPoint;

fn to<C: Candidate>(
    candidate: &C,
    location: Option<GeoPoint>,
    coordinate: Option<&Coordinate>,
    cos_lat: Option<f64>,
) -> Option<f64> {
    if let (Some(mine), Some(theirs)) = (candidate.coordinate(), coordinate) {
        let ms = mine.estimate_rtt(theirs) - candidate.coordinate_radius_ms();
        // NaN coordinates estimate nothing (NaN.max(0) would read as next door).
        return (!ms.is_nan()).then(|| ms.max(0.0));
    }
    let finite = |p: &GeoPoint| p.lat.is_finite() && p.lon.is_finite();
    let (mine, theirs) = (
        candidate.location().filter(finite)?,
        location.filter(finite)?,
    );
    let km = match cos_lat {
        Some(cos) => haversine_km_cos(mine, theirs, cos),
        None => haversine_km(mine, theirs),
    };
    let km = km - candidate.location_radius_km();
    if km.is_nan() {
        return None;
    }
    let km = km.max(0.0);
    Some(rtt_from_distance_ms(km))
}

/// Estimated round trip from `candidate` to `target`, ms; `None` when it cannot be told.
pub(crate) fn estimate<C: Candidate>(candidate: &C, target: &Target) -> Option<f64> {
    match target {
        Target::Point {
            point,
            coordinate,
            cos_lat,
        } => to(candidate, Some(*point), coordinate.as_ref(), Some(*cos_lat)),
        Target::Service { endpoints, .. } => endpoints
            .iter()
            .filter_map(|e| to(candidate, e.location, e.coordinate.as_ref(), None))
            .reduce(f64::min),
    }
}

pub(crate) fn check<C: Candidate>(
    max_ms: f64,
    target: &Target,
    candidate: &C,
) -> Result<(), Reason> {
    verdict(max_ms, target, estimate(candidate, target))
}

/// The verdict on an estimate already made.
pub(crate) fn verdict(max_ms: f64, target: &Target, estimate: Option<f64>) -> Result<(), Reason> {
    if let Target::Service { endpoints: [], .. } = target {
        return Ok(());
    }
    match estimate {
        None => Err("no location or coordinate to estimate latency"),
        Some(ms) if ms <= max_ms => Ok(()),
        Some(_) => Err("latency too high"),
    }
}

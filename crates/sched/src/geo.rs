//! Great-circle geometry and the distance-based latency fallback.

use canopy_model::GeoPoint;

/// Mean Earth radius, km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Great-circle distance in km (haversine; exact at the poles and across the antimeridian).
pub fn haversine_km(a: GeoPoint, b: GeoPoint) -> f64 {
    haversine_km_cos(a, b, b.lat.to_radians().cos())
}

/// [`haversine_km`] with `cos(b.lat)` computed once by the caller (the request's target).
pub(crate) fn haversine_km_cos(a: GeoPoint, b: GeoPoint, cos_b_lat: f64) -> f64 {
    let lat1 = a.lat.to_radians();
    let dlat = b.lat.to_radians() - lat1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * cos_b_lat * (dlon / 2.0).sin().powi(2);
    // Clamp: rounding can push h a hair above 1 for antipodal points.
    2.0 * EARTH_RADIUS_KM * h.clamp(0.0, 1.0).sqrt().asin()
}

/// Round-trip time estimated from distance when no network coordinates are available:
/// 1 ms of fixed cost plus 2 ms per 100 km (light in fibre covers ~100 km/0.5 ms one way,
/// doubled for the round trip, doubled again for indirect routes).
pub fn rtt_from_distance_ms(km: f64) -> f64 {
    1.0 + 2.0 * km / 100.0
}

/// Centre of points on the sphere (mean of unit vectors, so it works across the
/// antimeridian) and the largest distance from it to a point, km.
pub fn centroid(points: impl Iterator<Item = GeoPoint> + Clone) -> Option<(GeoPoint, f64)> {
    let (mut x, mut y, mut z, mut n) = (0.0, 0.0, 0.0, 0usize);
    for p in points.clone() {
        let (lat, lon) = (p.lat.to_radians(), p.lon.to_radians());
        x += lat.cos() * lon.cos();
        y += lat.cos() * lon.sin();
        z += lat.sin();
        n += 1;
    }
    if n == 0 {
        return None;
    }
    let first = points.clone().next()?;
    let norm = (x * x + y * y + z * z).sqrt();
    // Points spread evenly over the globe have no centre: take one of them.
    let centre = if norm < 1e-9 {
        first
    } else {
        GeoPoint {
            lat: (z / norm).asin().to_degrees(),
            lon: y.atan2(x).to_degrees(),
        }
    };
    let radius = points.map(|p| haversine_km(centre, p)).fold(0.0, f64::max);
    Some((centre, radius))
}

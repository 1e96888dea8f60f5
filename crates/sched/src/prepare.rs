//! Everything about a request that does not depend on the candidate, computed once.

use crate::vivaldi::Coordinate;
use crate::{Endpoint, Objective, Request, Weights, demand};
use canopy_model::{
    ConstraintKind, DirectPlacement, GeoConstraint, GeoPoint, LabelRequirement, ResourceAmounts,
    RuntimeKind, SpreadConstraint,
};

/// A request compiled for the hot loop.
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    pub request: Request<'a>,
    pub need: ResourceAmounts,
    pub gpu_model: Option<&'a str>,
    pub weights: Weights,
    pub(crate) weight_total: f64,
    pub(crate) runtime_reason: &'static str,
    pub(crate) checks: Vec<Check<'a>>,
    /// Latency and geo targets, for the latency scorer.
    pub(crate) targets: Vec<Target<'a>>,
}

/// One constraint kind of the spec, with its strictness.
#[derive(Debug, Clone)]
pub(crate) struct Check<'a> {
    /// Index of the constraint in `spec.constraints`.
    pub index: usize,
    pub hard: bool,
    pub rigidness: f64,
    pub kind: Kind<'a>,
    /// Index in `targets` of what this check measures latency to (geo, latency).
    pub target: Option<usize>,
}

#[derive(Debug, Clone)]
pub(crate) enum Kind<'a> {
    Arch(&'a [String]),
    NodeSelector(&'a [LabelRequirement]),
    ClusterSelector(&'a [LabelRequirement]),
    Direct(&'a DirectPlacement),
    Clusters(&'a [String]),
    /// With the cosine of the centre's latitude, computed once.
    Geo(&'a GeoConstraint, f64),
    Latency {
        max_ms: f64,
        target: Target<'a>,
    },
    Spread(&'a SpreadConstraint),
    Trust(f64),
}

impl Kind<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Arch(_) => "arch",
            Kind::NodeSelector(_) => "nodeSelector",
            Kind::ClusterSelector(_) => "clusterSelector",
            Kind::Direct(_) => "direct",
            Kind::Clusters(_) => "clusters",
            Kind::Geo(..) => "geo",
            Kind::Latency { .. } => "latency",
            Kind::Spread(_) => "spread",
            Kind::Trust(_) => "trust",
        }
    }
}

/// Something a latency is measured to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    Point {
        point: GeoPoint,
        coordinate: Option<Coordinate>,
        /// cos(point.lat), computed once.
        cos_lat: f64,
    },
    /// Instances of another service; empty when none is known (the constraint then holds).
    Service {
        name: &'a str,
        endpoints: &'a [Endpoint],
    },
}

impl Target<'_> {
    fn point(point: GeoPoint, coordinate: Option<Coordinate>) -> Self {
        Target::Point {
            point,
            coordinate,
            cos_lat: point.lat.to_radians().cos(),
        }
    }
}

impl<'a> Prepared<'a> {
    pub fn new(request: &Request<'a>) -> Self {
        let spec = request.spec;
        let weights = Weights::of(request.objective());
        let mut checks = Vec::new();
        let mut targets = Vec::new();
        for (index, constraint) in spec.constraints.iter().enumerate() {
            // NaN rigidness is treated as hard: never loosen a constraint by accident.
            let rigidness = constraint.rigidness();
            let hard = rigidness.is_nan() || rigidness >= 1.0;
            let rigidness = if hard { 1.0 } else { rigidness.max(0.0) };
            for kind in constraint.kinds() {
                let kind = match kind {
                    ConstraintKind::Arch(a) => Kind::Arch(a),
                    ConstraintKind::NodeSelector(s) => Kind::NodeSelector(s),
                    ConstraintKind::ClusterSelector(s) => Kind::ClusterSelector(s),
                    ConstraintKind::Direct(d) => Kind::Direct(d),
                    ConstraintKind::Clusters(c) => Kind::Clusters(c),
                    ConstraintKind::Geo(g) => {
                        targets.push(Target::point(g.location, None));
                        Kind::Geo(g, g.location.lat.to_radians().cos())
                    }
                    ConstraintKind::Latency(l) => {
                        let target = if let Some(point) = l.to_point {
                            let coordinate = request.context.and_then(|c| {
                                c.point_coordinates
                                    .iter()
                                    .find(|(p, _)| *p == point)
                                    .map(|(_, coord)| *coord)
                            });
                            Target::point(point, coordinate)
                        } else {
                            let name = l.to_service.as_deref().unwrap_or("");
                            let endpoints = request
                                .context
                                .and_then(|c| c.services.get(name))
                                .map(Vec::as_slice)
                                .unwrap_or(&[]);
                            Target::Service { name, endpoints }
                        };
                        targets.push(target);
                        Kind::Latency {
                            max_ms: l.max_ms,
                            target,
                        }
                    }
                    ConstraintKind::Spread(s) => Kind::Spread(s),
                    ConstraintKind::Trust(t) => Kind::Trust(t.min_score),
                };
                let target =
                    matches!(kind, Kind::Geo(..) | Kind::Latency { .. }).then(|| targets.len() - 1);
                checks.push(Check {
                    index,
                    hard,
                    rigidness,
                    kind,
                    target,
                });
            }
        }
        // Hard checks first: a candidate ruled out costs no soft evaluation.
        checks.sort_by_key(|c| !c.hard);
        Prepared {
            request: *request,
            need: demand(spec),
            gpu_model: spec.resources.gpu_model.as_deref(),
            weight_total: weights.total(),
            weights,
            runtime_reason: runtime_reason(spec.runtime),
            checks,
            targets,
        }
    }

    pub fn objective(&self) -> Objective {
        self.request.objective()
    }
}

fn runtime_reason(runtime: RuntimeKind) -> &'static str {
    match runtime {
        RuntimeKind::Container => "runtime container not supported",
        RuntimeKind::Wasm => "runtime wasm not supported",
        RuntimeKind::Process => "runtime process not supported",
        RuntimeKind::Vm => "runtime vm not supported",
    }
}

//! How a changed service replaces its instances, as a Kubernetes Deployment's `strategy`:
//! `RollingUpdate` (the default) with `maxSurge` / `maxUnavailable` as a count or a
//! percentage of the replicas, or `Recreate` (stop all, then start the new ones).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutStrategy {
    #[serde(default, rename = "type")]
    pub kind: StrategyKind,
    /// Only with `type: RollingUpdate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
pub enum StrategyKind {
    #[default]
    RollingUpdate,
    Recreate,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdate {
    /// Instances above `replicas` a rollout may start: a count or a percentage ("25%",
    /// rounded up); 25 % when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub max_surge: Option<IntOrPercent>,
    /// Instances below `replicas` a rollout may leave unavailable: a count or a percentage
    /// (rounded down); 25 % when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub max_unavailable: Option<IntOrPercent>,
}

/// A count, or a percentage of the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    Count(u32),
    Percent(u32),
}

impl IntOrPercent {
    /// Its value for `replicas`: a percentage rounded up (`round_up`) or down.
    pub fn of(self, replicas: u32, round_up: bool) -> u32 {
        match self {
            IntOrPercent::Count(n) => n,
            IntOrPercent::Percent(p) => {
                let scaled = u64::from(replicas) * u64::from(p);
                let value = if round_up {
                    scaled.div_ceil(100)
                } else {
                    scaled / 100
                };
                u32::try_from(value).unwrap_or(u32::MAX)
            }
        }
    }
}

const DEFAULT_SHARE: IntOrPercent = IntOrPercent::Percent(25);

impl RolloutStrategy {
    /// (surge, unavailable) for `replicas` instances. Recreate is (0, all); a rolling update
    /// that would resolve to (0, 0) gets one unavailable, as Kubernetes does, so it moves.
    pub fn bounds(&self, replicas: u32) -> (u32, u32) {
        if self.kind == StrategyKind::Recreate {
            return (0, replicas.max(1));
        }
        let rolling = self.rolling_update.clone().unwrap_or_default();
        let surge = rolling
            .max_surge
            .unwrap_or(DEFAULT_SHARE)
            .of(replicas, true);
        let unavailable = rolling
            .max_unavailable
            .unwrap_or(DEFAULT_SHARE)
            .of(replicas, false);
        if surge == 0 && unavailable == 0 {
            (0, 1)
        } else {
            (surge, unavailable)
        }
    }
}

impl Serialize for IntOrPercent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrPercent::Count(n) => serializer.serialize_u32(*n),
            IntOrPercent::Percent(p) => serializer.serialize_str(&format!("{p}%")),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrPercent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = IntOrPercent;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a non-negative integer or a percentage such as \"25%\"")
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<IntOrPercent, E> {
                u32::try_from(value)
                    .map(IntOrPercent::Count)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(value), &self))
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<IntOrPercent, E> {
                u64::try_from(value)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(value), &self))
                    .and_then(|v| self.visit_u64(v))
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<IntOrPercent, E> {
                if value >= 0.0 && value.fract() == 0.0 && value <= f64::from(u32::MAX) {
                    Ok(IntOrPercent::Count(value as u32))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Float(value), &self))
                }
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<IntOrPercent, E> {
                value
                    .strip_suffix('%')
                    .filter(|digits| !digits.is_empty() && digits.len() <= 3)
                    .filter(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
                    // Canonical numbers only, as the schema's pattern has them.
                    .filter(|digits| *digits == "0" || !digits.starts_with('0'))
                    .and_then(|digits| digits.parse::<u32>().ok())
                    .filter(|p| *p <= 100)
                    .map(IntOrPercent::Percent)
                    .ok_or_else(|| E::invalid_value(serde::de::Unexpected::Str(value), &self))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Every problem with the strategy of `svc` (at `p`, the service's path).
pub(crate) fn strategy_errors(p: &str, svc: &crate::ServiceSpec) -> Vec<crate::FieldError> {
    let mut errors = Vec::new();
    let Some(strategy) = &svc.strategy else {
        return errors;
    };
    let Some(rolling) = &strategy.rolling_update else {
        return errors;
    };
    if strategy.kind == StrategyKind::Recreate {
        errors.push(crate::FieldError::new(
            format!("{p}.strategy.rollingUpdate"),
            "only applies to type RollingUpdate",
        ));
    }
    let zero = |share: Option<IntOrPercent>| {
        matches!(
            share,
            Some(IntOrPercent::Count(0)) | Some(IntOrPercent::Percent(0))
        )
    };
    if zero(rolling.max_surge) && zero(rolling.max_unavailable) {
        errors.push(crate::FieldError::new(
            format!("{p}.strategy.rollingUpdate.maxUnavailable"),
            "must not be 0 when maxSurge is 0",
        ));
    }
    if let Some(IntOrPercent::Count(n)) = rolling.max_surge
        && n > crate::limits::MAX_REPLICAS
    {
        errors.push(crate::FieldError::new(
            format!("{p}.strategy.rollingUpdate.maxSurge"),
            format!("must be at most {}", crate::limits::MAX_REPLICAS),
        ));
    }
    if let Some(IntOrPercent::Count(n)) = rolling.max_unavailable
        && n > crate::limits::MAX_REPLICAS
    {
        errors.push(crate::FieldError::new(
            format!("{p}.strategy.rollingUpdate.maxUnavailable"),
            format!("must be at most {}", crate::limits::MAX_REPLICAS),
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolling(surge: &str, unavailable: &str) -> RolloutStrategy {
        serde_json::from_value(serde_json::json!({
            "rollingUpdate": {
                "maxSurge": serde_json::from_str::<serde_json::Value>(surge).unwrap(),
                "maxUnavailable": serde_json::from_str::<serde_json::Value>(unavailable).unwrap(),
            }
        }))
        .unwrap()
    }

    #[test]
    fn defaults_are_a_quarter_up_and_a_quarter_down() {
        let default = RolloutStrategy::default();
        assert_eq!(default.bounds(4), (1, 1));
        assert_eq!(default.bounds(10), (3, 2));
        // One replica: surge rounds up to 1, unavailable down to 0.
        assert_eq!(default.bounds(1), (1, 0));
    }

    #[test]
    fn counts_and_percentages_resolve_and_zero_zero_moves_one_at_a_time() {
        assert_eq!(rolling("2", "\"50%\"").bounds(5), (2, 2));
        assert_eq!(rolling("\"0%\"", "0").bounds(5), (0, 1));
        assert_eq!(rolling("\"100%\"", "\"100%\"").bounds(3), (3, 3));
        let recreate: RolloutStrategy =
            serde_json::from_value(serde_json::json!({"type": "Recreate"})).unwrap();
        assert_eq!(recreate.bounds(4), (0, 4));
    }

    #[test]
    fn bad_shares_are_refused_and_good_ones_round_trip() {
        for bad in [
            "\"25\"", "\"101%\"", "\"-1%\"", "-1", "1.5", "\"%\"", "\"05%\"",
        ] {
            let value: serde_json::Value = serde_json::from_str(bad).unwrap();
            assert!(
                serde_json::from_value::<IntOrPercent>(value).is_err(),
                "{bad}"
            );
        }
        for good in [IntOrPercent::Count(3), IntOrPercent::Percent(25)] {
            let json = serde_json::to_value(good).unwrap();
            assert_eq!(serde_json::from_value::<IntOrPercent>(json).unwrap(), good);
        }
    }
}

//! Measured usage: each node's heartbeats carry what its instances use (when it changed
//! noticeably); the cluster keeps the latest per node and reports the node's total and each
//! instance's up with the node (changes only, like the rest of membership).

use canopy_model::Usage;
use std::collections::BTreeMap;

/// A node's use: the sum of its instances'.
pub(crate) fn total(instances: &BTreeMap<String, Usage>) -> Usage {
    let mut sum = Usage::default();
    for usage in instances.values() {
        sum.add(usage);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nodes_usage_is_the_sum_of_its_instances() {
        let use_of = |cpu_millis, memory_bytes| Usage {
            cpu_millis,
            memory_bytes,
        };
        let instances = BTreeMap::from([
            ("a".to_string(), use_of(120, 1 << 20)),
            ("b".to_string(), use_of(30, 3 << 20)),
        ]);
        assert_eq!(total(&instances), use_of(150, 4 << 20));
        assert_eq!(total(&BTreeMap::new()), Usage::default());
    }
}

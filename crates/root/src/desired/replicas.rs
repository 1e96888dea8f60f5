//! Which instances of a service stay, which go and which replica ordinals are missing: the
//! pure part of reconciliation. Scaling down retires, in order, what is not placed yet, then
//! what is placed but not started, then what is starting, and running instances last (the
//! youngest first), as Kubernetes' ReplicaSet does; a kept instance whose ordinal is beyond
//! the new count takes a free one below it.

use canopy_model::{Instance, InstanceState};
use std::collections::BTreeSet;

/// What reconciling one service's instances does, by index into the instances it was given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Kept, with the ordinal it is to have (a change when it differs from its own).
    pub keep: Vec<(usize, u32)>,
    /// No longer wanted: stopped (or forgotten if never placed).
    pub retire: Vec<usize>,
    /// Confirmed stopped: their records go.
    pub delete: Vec<usize>,
    /// Ordinals without an instance: new ones are made.
    pub create: Vec<u32>,
}

/// How much an instance is worth keeping: higher is kept first.
fn worth(instance: &Instance) -> u8 {
    match instance.state {
        InstanceState::Running if instance.ready => 6,
        InstanceState::Running => 5,
        InstanceState::Starting | InstanceState::BackOff => 4,
        InstanceState::NodeScheduled => 3,
        InstanceState::ClusterScheduled => 2,
        _ => 1,
    }
}

/// Plans one service: `replicas` wanted, made from the spec whose hash is `template` (none
/// when the service is gone).
pub fn plan(instances: &[&Instance], replicas: u32, template: Option<&str>) -> Plan {
    let mut plan = Plan::default();
    let mut candidates = Vec::new();
    let mut ended = Vec::new();
    for (index, instance) in instances.iter().enumerate() {
        match instance.state {
            InstanceState::Terminated => plan.delete.push(index),
            // Being stopped: its cluster confirms, then its record goes.
            _ if instance.shown_state() == InstanceState::Terminating => {}
            state => {
                let current = template == Some(instance.template_hash.as_str());
                // Lost with its node: the cluster that reported it places it again under the
                // same id (or refuses it back to the root), so it keeps its place here.
                if current && (!state.is_final() || state == InstanceState::Lost) {
                    candidates.push(index);
                } else if current
                    && matches!(state, InstanceState::Succeeded | InstanceState::Failed)
                {
                    // Ended as its restart policy says (a one-shot run): its ordinal is
                    // done, not missing, until the spec changes or the replicas go down.
                    ended.push(index);
                } else {
                    // An old spec's.
                    plan.retire.push(index);
                }
            }
        }
    }
    // The most worth keeping first; among equals the oldest, then the lowest ordinal.
    candidates.sort_by(|&a, &b| {
        let (a, b) = (instances[a], instances[b]);
        worth(b)
            .cmp(&worth(a))
            .then(a.created_at.cmp(&b.created_at))
            .then(a.replica.cmp(&b.replica))
    });
    // Ended ones are worth the least: kept only where no live instance has their place.
    ended.sort_by_key(|&i| (instances[i].created_at, instances[i].replica));
    candidates.extend(ended);
    let kept: Vec<usize> = candidates.iter().copied().take(replicas as usize).collect();
    plan.retire
        .extend(candidates.iter().copied().skip(replicas as usize));
    // Kept instances keep their ordinal where it is free and in range; the others take the
    // lowest free ones.
    let mut taken = BTreeSet::new();
    let mut renumber = Vec::new();
    for &index in &kept {
        let ordinal = instances[index].replica;
        if ordinal < replicas && taken.insert(ordinal) {
            plan.keep.push((index, ordinal));
        } else {
            renumber.push(index);
        }
    }
    let mut free = (0..replicas).filter(|o| !taken.contains(o));
    for index in renumber {
        if let Some(ordinal) = free.next() {
            plan.keep.push((index, ordinal));
        }
    }
    plan.create = free.collect();
    plan.keep.sort();
    plan.retire.sort();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_model::Desired;
    use time::{Duration, OffsetDateTime};

    fn instance(replica: u32, state: InstanceState, age_s: i64) -> Instance {
        let created = OffsetDateTime::UNIX_EPOCH + Duration::hours(1) - Duration::seconds(age_s);
        Instance {
            id: format!("i{replica}"),
            namespace: "ns".into(),
            application: "app".into(),
            service: "web".into(),
            replica,
            generation: 1,
            template_hash: "t".into(),
            job: None,
            args: None,
            desired: Desired::Run,
            state,
            reason: None,
            cluster: None,
            node: None,
            pid: None,
            restarts: 0,
            last_termination: None,
            ready: state == InstanceState::Running,
            details: Default::default(),
            usage: None,
            created_at: created,
            updated_at: created,
            events: Vec::new(),
        }
    }

    fn planned(instances: &[Instance], replicas: u32) -> Plan {
        let refs: Vec<&Instance> = instances.iter().collect();
        plan(&refs, replicas, Some("t"))
    }

    #[test]
    fn scaling_down_keeps_the_running_one_and_gives_it_a_free_ordinal() {
        use InstanceState::*;
        // Replica 0 pending, replica 1 running: down to 1 keeps the running one, as 0.
        let instances = [instance(0, Pending, 5), instance(1, Running, 10)];
        let plan = planned(&instances, 1);
        assert_eq!(plan.keep, [(1, 0)]);
        assert_eq!(plan.retire, [0]);
        assert!(plan.create.is_empty());
    }

    #[test]
    fn scaling_down_retires_unplaced_then_starting_then_the_youngest_running() {
        use InstanceState::*;
        let instances = [
            instance(0, Running, 100),
            instance(1, Running, 10),
            instance(2, Starting, 50),
            instance(3, ClusterScheduled, 50),
            instance(4, Pending, 50),
            instance(5, Running, 50),
        ];
        let retired = |n| {
            let mut retire = planned(&instances, n).retire;
            retire.sort();
            retire
        };
        assert_eq!(retired(5), [4]);
        assert_eq!(retired(4), [3, 4]);
        assert_eq!(retired(3), [2, 3, 4]);
        assert_eq!(retired(2), [1, 2, 3, 4], "the youngest running goes first");
        assert_eq!(retired(1), [1, 2, 3, 4, 5]);
        assert_eq!(planned(&instances, 1).keep, [(0, 0)]);
    }

    #[test]
    fn scaling_up_makes_the_missing_ordinals_and_keeps_everyone() {
        use InstanceState::*;
        let instances = [instance(0, Running, 10), instance(2, Starting, 10)];
        let plan = planned(&instances, 4);
        assert_eq!(plan.keep, [(0, 0), (1, 2)]);
        assert_eq!(plan.create, [1, 3]);
        assert!(plan.retire.is_empty());
    }

    #[test]
    fn old_specs_ended_and_stopped_instances_are_handled_apart() {
        use InstanceState::*;
        let mut old = instance(0, Running, 100);
        old.template_hash = "old".into();
        let mut asked_to_stop = instance(1, Running, 10);
        asked_to_stop.desired = Desired::Stop;
        let instances = [
            old,
            instance(0, Failed, 10),
            instance(1, Terminating, 10),
            instance(1, Terminated, 10),
            asked_to_stop,
        ];
        let plan = planned(&instances, 2);
        assert_eq!(plan.retire, [0]);
        assert_eq!(plan.delete, [3]);
        assert_eq!(plan.keep, [(1, 0)], "a failed run holds its ordinal");
        assert_eq!(plan.create, [1]);
    }

    #[test]
    fn ended_runs_and_lost_ones_hold_their_ordinals() {
        use InstanceState::*;
        // Lost with its node: its cluster places it again under the same id; a second copy
        // from the root would race it.
        let instances = [
            instance(0, Succeeded, 10),
            instance(1, Lost, 10),
            instance(2, Failed, 10),
        ];
        let plan = planned(&instances, 3);
        assert_eq!(plan.keep, [(0, 0), (1, 1), (2, 2)]);
        assert!(plan.retire.is_empty());
        assert!(plan.create.is_empty());
        // Scaled down, an ended run goes before a live one.
        let live = [instance(0, Succeeded, 10), instance(1, Running, 10)];
        let plan = planned(&live, 1);
        assert_eq!(plan.retire, [0]);
        assert_eq!(plan.keep, [(1, 0)]);
    }

    #[test]
    fn two_copies_of_one_ordinal_keep_the_better_one() {
        use InstanceState::*;
        let instances = [instance(0, Pending, 1), instance(0, Running, 10)];
        let plan = planned(&instances, 1);
        assert_eq!(plan.keep, [(1, 0)]);
        assert_eq!(plan.retire, [0]);
    }
}

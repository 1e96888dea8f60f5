//! One step of a rolling update, decided without I/O: given a service's live instances (of
//! the current spec or an older one, ready or not, stopping or not) and the strategy's
//! bounds, which old instances to stop now and how many new ones to start.
//!
//! Availability never drops below `replicas - maxUnavailable` by a step's own doing: ready
//! old instances are stopped only while enough others are ready; old instances that are
//! not ready count for nothing and go first. New ones start while the live total stays
//! within `replicas + maxSurge`. Where instances hold a host port (or the strategy is
//! `Recreate`), stopping ones still count, so a new one starts only once an old one has
//! gone: stop-then-start, the gap bounded by the stop.

/// One live instance of the service as a rollout sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Made from the current spec.
    pub current: bool,
    /// Running and passing its readiness probe.
    pub ready: bool,
    /// Being stopped.
    pub stopping: bool,
    /// Placed somewhere: stopped when retired, where one never placed is simply forgotten.
    pub placed: bool,
}

/// What the step does, by index into the instances it was given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Old instances to stop now.
    pub retire: Vec<usize>,
    /// How many of the missing new instances to create now.
    pub create: usize,
}

/// The bounds of a rollout and how it proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub replicas: u32,
    pub surge: u32,
    pub unavailable: u32,
    /// Stopping instances count toward the total (host ports, `Recreate`).
    pub hold_stopping: bool,
    /// Paused: old instances stay and no new ones start while old ones remain.
    pub paused: bool,
}

/// The step for `instances` (in the order old ones are to be stopped in) when `missing`
/// new instances are wanted.
pub fn step(instances: &[Seen], bounds: Bounds, missing: usize) -> Step {
    let old: Vec<usize> = (0..instances.len())
        .filter(|&i| !instances[i].current && !instances[i].stopping)
        .collect();
    if bounds.paused && !old.is_empty() {
        return Step::default();
    }
    let ready = instances.iter().filter(|s| s.ready && !s.stopping).count();
    let min_available = bounds.replicas.saturating_sub(bounds.unavailable) as usize;
    let mut losable = ready.saturating_sub(min_available);
    let mut retire = Vec::new();
    // Not ready: stopping them costs no availability.
    retire.extend(old.iter().copied().filter(|&i| !instances[i].ready));
    for &i in old.iter().filter(|&&i| instances[i].ready) {
        if losable == 0 {
            break;
        }
        losable -= 1;
        retire.push(i);
    }
    let live = instances
        .iter()
        .filter(|s| !s.stopping || bounds.hold_stopping)
        .count();
    // Those retired now stop counting at once, unless stopping ones are held (and these
    // stop first: only what was never placed is gone at once).
    let gone = retire
        .iter()
        .filter(|&&i| !bounds.hold_stopping || !instances[i].placed)
        .count();
    let total = live - gone;
    let ceiling = (bounds.replicas + bounds.surge) as usize;
    let create = missing.min(ceiling.saturating_sub(total));
    retire.sort_unstable();
    Step { retire, create }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_READY: Seen = Seen {
        current: false,
        ready: true,
        stopping: false,
        placed: true,
    };
    const OLD_UNREADY: Seen = Seen {
        ready: false,
        ..OLD_READY
    };
    const NEW_READY: Seen = Seen {
        current: true,
        ..OLD_READY
    };
    const NEW_STARTING: Seen = Seen {
        current: true,
        ready: false,
        stopping: false,
        placed: true,
    };
    const STOPPING: Seen = Seen {
        current: false,
        ready: false,
        stopping: true,
        placed: true,
    };
    const OLD_UNPLACED: Seen = Seen {
        ready: false,
        placed: false,
        ..OLD_READY
    };

    fn rolling(replicas: u32, surge: u32, unavailable: u32) -> Bounds {
        Bounds {
            replicas,
            surge,
            unavailable,
            hold_stopping: false,
            paused: false,
        }
    }

    fn ready_of(instances: &[Seen]) -> usize {
        instances.iter().filter(|s| s.ready && !s.stopping).count()
    }

    /// Runs a rollout to its end, making every new instance ready one step after it
    /// starts and every stopping one gone one step after it stops; returns the fewest
    /// ready instances seen and the most live ones.
    fn simulate(replicas: u32, bounds: Bounds) -> (usize, usize, usize) {
        let mut instances = vec![OLD_READY; replicas as usize];
        let (mut fewest_ready, mut most_live, mut steps) = (usize::MAX, 0, 0);
        while instances.iter().any(|s| !s.current) || instances.len() < replicas as usize {
            steps += 1;
            assert!(steps < 100, "the rollout does not finish: {instances:?}");
            // Last step's stopping ones are gone; last step's new ones are ready.
            instances.retain(|s| !s.stopping);
            for s in instances.iter_mut().filter(|s| s.current) {
                s.ready = true;
            }
            let current = instances.iter().filter(|s| s.current).count();
            let step = step(&instances, bounds, replicas as usize - current);
            for &i in &step.retire {
                instances[i] = STOPPING;
            }
            instances.extend(std::iter::repeat_n(NEW_STARTING, step.create));
            fewest_ready = fewest_ready.min(ready_of(&instances));
            let counted = instances
                .iter()
                .filter(|s| !s.stopping || bounds.hold_stopping)
                .count();
            most_live = most_live.max(counted);
        }
        (fewest_ready, most_live, steps)
    }

    #[test]
    fn a_rollout_of_four_keeps_three_ready_and_at_most_five_live() {
        let (fewest, most, steps) = simulate(4, rolling(4, 1, 1));
        assert_eq!((fewest, most), (3, 5));
        assert!(steps <= 5, "{steps} steps");
    }

    #[test]
    fn rollouts_respect_their_bounds_whatever_the_shares() {
        for replicas in [1, 2, 3, 4, 10] {
            for surge in 0..3 {
                for unavailable in 0..3 {
                    if surge == 0 && unavailable == 0 {
                        continue;
                    }
                    let bounds = rolling(replicas, surge, unavailable);
                    let (fewest, most, _) = simulate(replicas, bounds);
                    let floor = replicas.saturating_sub(unavailable) as usize;
                    assert!(fewest >= floor, "{bounds:?}: {fewest} ready");
                    assert!(
                        most <= (replicas + surge) as usize,
                        "{bounds:?}: {most} live"
                    );
                }
            }
        }
    }

    #[test]
    fn the_first_step_surges_and_stops_what_availability_allows() {
        let instances = [OLD_READY; 4];
        let step = step(&instances, rolling(4, 1, 1), 4);
        assert_eq!(step.retire, [0]);
        assert_eq!(step.create, 2, "one surge plus the one stopped");
    }

    #[test]
    fn unready_old_instances_go_first_and_cost_nothing() {
        let instances = [OLD_READY, OLD_UNREADY, OLD_READY, OLD_UNREADY];
        // No unavailability allowed: only the unready ones go.
        let step = step(&instances, rolling(4, 1, 0), 4);
        assert_eq!(step.retire, [1, 3]);
        assert_eq!(step.create, 3);
    }

    #[test]
    fn a_new_instance_that_never_gets_ready_holds_the_rollout() {
        let instances = [OLD_READY, OLD_READY, OLD_READY, NEW_STARTING, NEW_STARTING];
        let step = step(&instances, rolling(4, 1, 1), 2);
        assert_eq!(step, Step::default());
    }

    #[test]
    fn host_ports_stop_then_start_one_at_a_time() {
        let bounds = Bounds {
            hold_stopping: true,
            ..rolling(1, 0, 1)
        };
        // First the old one stops; nothing new while it is still stopping.
        assert_eq!(
            step(&[OLD_READY], bounds, 1),
            Step {
                retire: vec![0],
                create: 0
            }
        );
        assert_eq!(step(&[STOPPING], bounds, 1).create, 0);
        // Gone: the new one starts.
        assert_eq!(step(&[], bounds, 1).create, 1);
        let (fewest, most, _) = simulate(
            3,
            Bounds {
                hold_stopping: true,
                ..rolling(3, 0, 1)
            },
        );
        assert_eq!((fewest, most), (2, 3));
    }

    #[test]
    fn old_instances_never_placed_are_replaced_at_once() {
        let held = Bounds {
            hold_stopping: true,
            ..rolling(3, 1, 0)
        };
        let step = step(&[OLD_UNPLACED; 3], held, 3);
        assert_eq!(step.retire, [0, 1, 2]);
        assert_eq!(step.create, 3);
    }

    #[test]
    fn a_paused_rollout_stands_still_but_plain_scaling_goes_on() {
        let paused = Bounds {
            paused: true,
            ..rolling(4, 1, 1)
        };
        let instances = [OLD_READY, OLD_READY, NEW_READY];
        assert_eq!(step(&instances, paused, 2), Step::default());
        // No old instance left: a missing one is made even while paused.
        assert_eq!(step(&[NEW_READY], paused, 3).create, 3);
    }

    #[test]
    fn without_a_rollout_every_missing_replica_is_created_at_once() {
        assert_eq!(step(&[], rolling(10, 0, 1), 10).create, 10);
        // A stopping one does not hold a replacement back, unless host ports say so.
        assert_eq!(step(&[STOPPING, NEW_READY], rolling(2, 0, 1), 1).create, 1);
        let held = Bounds {
            hold_stopping: true,
            ..rolling(2, 0, 1)
        };
        assert_eq!(step(&[STOPPING, NEW_READY], held, 1).create, 0);
    }
}

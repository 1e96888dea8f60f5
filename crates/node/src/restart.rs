//! The restart policy as a pure tracker, in the manner of Nomad's task runner
//! (`client/allocrunner/taskrunner/restarts`): told how each run ended and how long it ran,
//! it answers "restart after this delay" or "give up, in this final state". It never reads a
//! clock, so every rule is tested with plain values.

use canopy_model::{InstanceState, RestartPolicy, Termination};
use std::time::Duration;

/// The first restart delay, and the one after a healthy run.
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// The delay stops doubling here.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A run that lasted this long was healthy: the next delay starts again from the minimum.
pub const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// What to do after a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Start it again once `after` has passed.
    Restart { after: Duration },
    /// The policy gives up: the instance ends in this state (`Succeeded` or `Failed`).
    GiveUp(InstanceState),
}

/// One instance's restart state: its policy, the next delay and how often it restarted.
#[derive(Debug, Clone)]
pub struct Tracker {
    policy: RestartPolicy,
    next_delay: Duration,
    restarts: u32,
}

impl Tracker {
    /// `restarts` carries the count over an agent restart; the delay starts afresh.
    pub fn new(policy: RestartPolicy, restarts: u32) -> Tracker {
        Tracker {
            policy,
            next_delay: MIN_BACKOFF,
            restarts,
        }
    }

    /// How often the instance was restarted so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// A run ended as `ended` after running for `ran_for` (zero when it could not start).
    pub fn on_end(&mut self, ended: &Termination, ran_for: Duration) -> Decision {
        let success = ended.success();
        let restart = match self.policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Never => false,
        };
        if !restart {
            return Decision::GiveUp(if success {
                InstanceState::Succeeded
            } else {
                InstanceState::Failed
            });
        }
        // A crash loop backs off; a crash after a long healthy run is not part of one.
        if ran_for >= HEALTHY_RUN {
            self.next_delay = MIN_BACKOFF;
        }
        let after = self.next_delay;
        self.next_delay = (self.next_delay * 2).min(MAX_BACKOFF);
        self.restarts = self.restarts.saturating_add(1);
        Decision::Restart { after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceState::{Failed, Succeeded};
    use RestartPolicy::{Always, Never, OnFailure};
    use time::OffsetDateTime;

    fn exited(code: i32) -> Termination {
        Termination {
            exit_code: Some(code),
            signal: None,
            reason: format!("exited with code {code}"),
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn killed(signal: i32) -> Termination {
        Termination {
            exit_code: None,
            signal: Some(signal),
            reason: format!("killed by signal {signal}"),
            at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    const SHORT: Duration = Duration::from_millis(50);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn each_policy_on_success_and_failure() {
        let first = Decision::Restart { after: MIN_BACKOFF };
        let cases = [
            (Always, exited(0), first),
            (Always, exited(1), first),
            (Always, killed(9), first),
            (OnFailure, exited(0), Decision::GiveUp(Succeeded)),
            (OnFailure, exited(1), first),
            (OnFailure, killed(9), first),
            (Never, exited(0), Decision::GiveUp(Succeeded)),
            (Never, exited(1), Decision::GiveUp(Failed)),
            (Never, killed(9), Decision::GiveUp(Failed)),
        ];
        for (policy, ended, expected) in cases {
            let mut tracker = Tracker::new(policy, 0);
            assert_eq!(
                tracker.on_end(&ended, SHORT),
                expected,
                "{policy:?} after {}",
                ended.reason
            );
        }
    }

    #[test]
    fn an_unknown_ending_is_a_failure() {
        let unknown = Termination {
            exit_code: None,
            signal: None,
            reason: "could not start".into(),
            at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(
            Tracker::new(Never, 0).on_end(&unknown, Duration::ZERO),
            Decision::GiveUp(Failed)
        );
        assert_eq!(
            Tracker::new(OnFailure, 0).on_end(&unknown, Duration::ZERO),
            Decision::Restart { after: MIN_BACKOFF }
        );
    }

    #[test]
    fn the_delay_doubles_from_200_ms_up_to_30_s() {
        let mut tracker = Tracker::new(Always, 0);
        let delays: Vec<Duration> = (0..12)
            .map(|_| match tracker.on_end(&exited(1), SHORT) {
                Decision::Restart { after } => after,
                other => panic!("expected a restart, got {other:?}"),
            })
            .collect();
        let expected = [
            ms(200),
            ms(400),
            ms(800),
            ms(1_600),
            ms(3_200),
            ms(6_400),
            ms(12_800),
            ms(25_600),
            MAX_BACKOFF,
            MAX_BACKOFF,
            MAX_BACKOFF,
            MAX_BACKOFF,
        ];
        assert_eq!(delays, expected);
    }

    #[test]
    fn a_healthy_run_resets_the_delay_and_a_short_one_does_not() {
        let mut tracker = Tracker::new(OnFailure, 0);
        for _ in 0..5 {
            tracker.on_end(&exited(1), SHORT);
        }
        // Just short of healthy: still in the crash loop.
        assert_eq!(
            tracker.on_end(&exited(1), HEALTHY_RUN - ms(1)),
            Decision::Restart { after: ms(6_400) }
        );
        // Exactly healthy: back to the minimum, then doubling again from there.
        assert_eq!(
            tracker.on_end(&exited(1), HEALTHY_RUN),
            Decision::Restart { after: MIN_BACKOFF }
        );
        assert_eq!(
            tracker.on_end(&exited(1), SHORT),
            Decision::Restart { after: ms(400) }
        );
    }

    #[test]
    fn restarts_are_counted_from_where_they_were_and_giving_up_is_not_one() {
        let mut tracker = Tracker::new(OnFailure, 7);
        assert_eq!(tracker.restarts(), 7);
        tracker.on_end(&exited(1), SHORT);
        tracker.on_end(&killed(9), SHORT);
        assert_eq!(tracker.restarts(), 9);
        assert_eq!(
            tracker.on_end(&exited(0), SHORT),
            Decision::GiveUp(Succeeded)
        );
        assert_eq!(tracker.restarts(), 9);
    }

    #[test]
    fn a_tracker_made_after_an_agent_restart_starts_from_the_minimum_delay() {
        let mut tracker = Tracker::new(Always, 40);
        assert_eq!(
            tracker.on_end(&exited(1), SHORT),
            Decision::Restart { after: MIN_BACKOFF }
        );
        assert_eq!(tracker.restarts(), 41);
    }
}

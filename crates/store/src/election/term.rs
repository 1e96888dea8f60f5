//! When a replica may act as the leader: the pure decision, time passed in.
//!
//! A term starts when the replica created the leader key under its lease. The lease lives on
//! etcd until at least `sent + ttl`, `sent` being when the replica sent the request that granted
//! or renewed it (etcd restarts the countdown when it receives the request, which is later).
//! The replica acts only until `sent + ttl - margin`, so it has stopped before etcd can expire
//! the lease and another replica can win; clocks that run at slightly different rates are
//! what the margin absorbs. What a paused process cannot check, fencing covers: its writes
//! require the leader key it created, which is gone once the lease expired.

use std::time::{Duration, Instant};

use crate::Fence;

/// What the I/O shell must do after an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Act as the leader, fencing every write with this fence.
    StartActing(Fence),
    /// Stop scheduling, reconciling and holding links at once; then campaign again.
    StopActing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    NotLeader,
    Leading { fence: Fence, valid_until: Instant },
}

/// The leadership of one replica.
#[derive(Debug, Clone)]
pub struct Term {
    ttl: Duration,
    margin: Duration,
    state: State,
}

impl Term {
    /// `ttl`: the lease's time to live. The margin is a tenth of it, at least 100 ms.
    pub fn new(ttl: Duration) -> Term {
        Term {
            ttl,
            margin: (ttl / 10).max(Duration::from_millis(100)).min(ttl / 2),
            state: State::NotLeader,
        }
    }

    /// How often the shell renews the lease: three chances before the term runs out.
    pub fn renew_every(&self) -> Duration {
        (self.ttl - self.margin) / 3
    }

    /// The replica created the leader key under a lease granted or renewed by a request sent
    /// at `sent`.
    pub fn won(&mut self, fence: Fence, sent: Instant) -> Option<Action> {
        let valid_until = sent + self.ttl - self.margin;
        self.state = State::Leading {
            fence: fence.clone(),
            valid_until,
        };
        Some(Action::StartActing(fence))
    }

    /// etcd answered a renewal sent at `sent` with `ttl` left (`None`: the lease is gone).
    pub fn renewed(
        &mut self,
        sent: Instant,
        ttl: Option<Duration>,
        now: Instant,
    ) -> Option<Action> {
        match (&mut self.state, ttl) {
            (State::Leading { valid_until, .. }, Some(ttl)) if !ttl.is_zero() => {
                // The answer may report less than the configured TTL; trust the smaller one.
                let until = sent + ttl.min(self.ttl) - self.margin;
                *valid_until = (*valid_until).max(until);
                self.tick(now)
            }
            (State::Leading { .. }, _) => self.stop(),
            (State::NotLeader, _) => None,
        }
    }

    /// The leader key was deleted or now belongs to another replica.
    pub fn key_lost(&mut self) -> Option<Action> {
        match self.state {
            State::Leading { .. } => self.stop(),
            State::NotLeader => None,
        }
    }

    /// Time passed: a term whose validity ran out ends, whether or not etcd was reachable.
    pub fn tick(&mut self, now: Instant) -> Option<Action> {
        match &self.state {
            State::Leading { valid_until, .. } if now >= *valid_until => self.stop(),
            _ => None,
        }
    }

    /// Whether the replica may act as the leader at `now`.
    pub fn acting(&self, now: Instant) -> bool {
        matches!(&self.state, State::Leading { valid_until, .. } if now < *valid_until)
    }

    /// When the current term runs out unless renewed.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Leading { valid_until, .. } => Some(*valid_until),
            State::NotLeader => None,
        }
    }

    fn stop(&mut self) -> Option<Action> {
        self.state = State::NotLeader;
        Some(Action::StopActing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fence() -> Fence {
        Fence {
            key: "/ha/leader".into(),
            create_revision: 7,
        }
    }

    const TTL: Duration = Duration::from_secs(3);
    const MARGIN: Duration = Duration::from_millis(300);

    #[test]
    fn a_won_term_acts_until_its_lease_could_expire_minus_the_margin() {
        let t0 = Instant::now();
        let mut term = Term::new(TTL);
        assert!(!term.acting(t0));
        assert_eq!(term.won(fence(), t0), Some(Action::StartActing(fence())));
        assert!(term.acting(t0 + TTL - MARGIN - Duration::from_millis(1)));
        assert!(!term.acting(t0 + TTL - MARGIN));
        assert_eq!(term.tick(t0 + Duration::from_secs(1)), None);
        assert_eq!(term.tick(t0 + TTL - MARGIN), Some(Action::StopActing));
        assert_eq!(term.tick(t0 + TTL), None, "stops once");
        assert_eq!(term.deadline(), None);
    }

    #[test]
    fn renewals_extend_from_when_they_were_sent() {
        let t0 = Instant::now();
        let mut term = Term::new(TTL);
        term.won(fence(), t0);
        let sent = t0 + Duration::from_secs(1);
        // The answer arrives late: validity still counts from the send.
        let now = sent + Duration::from_millis(800);
        assert_eq!(term.renewed(sent, Some(TTL), now), None);
        assert_eq!(term.deadline(), Some(sent + TTL - MARGIN));
        // A stale answer never shortens the term.
        assert_eq!(term.renewed(t0, Some(TTL), now), None);
        assert_eq!(term.deadline(), Some(sent + TTL - MARGIN));
        // etcd granting less than asked shortens what a renewal buys.
        let later = sent + Duration::from_secs(2);
        term.renewed(later, Some(Duration::from_secs(1)), later);
        assert_eq!(term.deadline(), Some(sent + TTL - MARGIN));
    }

    #[test]
    fn a_renewal_that_comes_too_late_does_not_revive_the_term() {
        let t0 = Instant::now();
        let mut term = Term::new(TTL);
        term.won(fence(), t0);
        // Paused past the term: the answer to a renewal sent long ago ends it.
        let now = t0 + Duration::from_secs(10);
        assert_eq!(
            term.renewed(t0 + Duration::from_millis(100), Some(TTL), now),
            Some(Action::StopActing)
        );
        assert!(!term.acting(now));
    }

    #[test]
    fn losing_the_lease_or_the_key_stops_at_once() {
        let t0 = Instant::now();
        let mut term = Term::new(TTL);
        term.won(fence(), t0);
        assert_eq!(term.renewed(t0, None, t0), Some(Action::StopActing));
        assert!(!term.acting(t0));

        term.won(fence(), t0);
        assert_eq!(
            term.renewed(t0, Some(Duration::ZERO), t0),
            Some(Action::StopActing)
        );

        term.won(fence(), t0);
        assert_eq!(term.key_lost(), Some(Action::StopActing));
        assert_eq!(term.key_lost(), None);
        assert_eq!(term.renewed(t0, Some(TTL), t0), None, "not leading");
    }

    #[test]
    fn renewals_leave_room_for_three_attempts() {
        let term = Term::new(TTL);
        assert_eq!(term.renew_every(), Duration::from_millis(900));
        // A tiny TTL keeps a margin below half of it.
        let term = Term::new(Duration::from_millis(150));
        assert_eq!(term.renew_every(), Duration::from_millis(25));
    }
}

//! What a service's probes say about one run of an instance, as Kubernetes' kubelet decides
//! it: the pure core (time passed in as the time since the run began, results passed in)
//! and, in `check`/`watch`, the thin shell that runs the probes.
//!
//! - A startup probe holds the other two off until it passes once; failing
//!   `failureThreshold` times in a row restarts the instance.
//! - A liveness probe counts as passing until it fails `failureThreshold` times in a row,
//!   which restarts the instance (by its restart policy).
//! - A readiness probe counts as failing until it passes `successThreshold` times in a
//!   row; the instance is ready while it passes (and, without one, once started).

pub(crate) mod check;
pub(crate) mod watch;

use canopy_model::{Probe, ServiceSpec};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Startup => "startup",
            Kind::Liveness => "liveness",
            Kind::Readiness => "readiness",
        }
    }
}

/// What a recorded result asks of the shell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Keep probing.
    Healthy,
    /// Stop this run: the restart policy decides what follows.
    Restart(String),
}

/// One probe's counters.
#[derive(Debug, Clone)]
struct Track {
    probe: Probe,
    successes: u32,
    failures: u32,
    passing: bool,
    /// When it runs next, as time since the run began.
    next: Duration,
}

impl Track {
    fn new(probe: &Probe, passing: bool) -> Track {
        Track {
            probe: probe.clone(),
            successes: 0,
            failures: 0,
            passing,
            next: seconds(probe.initial_delay_seconds),
        }
    }

    fn record(&mut self, passed: bool, at: Duration) {
        if passed {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
            if self.successes >= self.probe.success_threshold {
                self.passing = true;
            }
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
            if self.failures >= self.probe.failure_threshold {
                self.passing = false;
            }
        }
        self.next = at + seconds(self.probe.period_seconds.max(1));
    }
}

/// The probes of one run of one instance.
#[derive(Debug, Clone)]
pub(crate) struct Health {
    startup: Option<Track>,
    liveness: Option<Track>,
    readiness: Option<Track>,
    /// The startup probe passed (or there is none).
    started: bool,
}

impl Health {
    /// The probes of `spec`; `None` when it has none (nothing to watch).
    pub fn of(spec: &ServiceSpec) -> Option<Health> {
        if spec.startup_probe.is_none()
            && spec.liveness_probe.is_none()
            && spec.readiness_probe.is_none()
        {
            return None;
        }
        Some(Health {
            startup: spec.startup_probe.as_ref().map(|p| Track::new(p, false)),
            liveness: spec.liveness_probe.as_ref().map(|p| Track::new(p, true)),
            readiness: spec.readiness_probe.as_ref().map(|p| Track::new(p, false)),
            started: spec.startup_probe.is_none(),
        })
    }

    /// Whether the instance is ready (to be given traffic, counted as available).
    pub fn ready(&self) -> bool {
        self.started && self.readiness.as_ref().is_none_or(|r| r.passing)
    }

    /// The probe of `kind`, to run.
    pub fn probe(&self, kind: Kind) -> Option<&Probe> {
        self.track(kind).map(|t| &t.probe)
    }

    fn track(&self, kind: Kind) -> Option<&Track> {
        match kind {
            Kind::Startup => self.startup.as_ref(),
            Kind::Liveness => self.liveness.as_ref(),
            Kind::Readiness => self.readiness.as_ref(),
        }
    }

    fn track_mut(&mut self, kind: Kind) -> Option<&mut Track> {
        match kind {
            Kind::Startup => self.startup.as_mut(),
            Kind::Liveness => self.liveness.as_mut(),
            Kind::Readiness => self.readiness.as_mut(),
        }
    }

    /// The probes that run now: the startup probe alone until it passed, then the others.
    fn active(&self) -> Vec<Kind> {
        if !self.started {
            return vec![Kind::Startup];
        }
        [Kind::Liveness, Kind::Readiness]
            .into_iter()
            .filter(|k| self.track(*k).is_some())
            .collect()
    }

    /// The probes due at `at` (time since the run began).
    pub fn due(&self, at: Duration) -> Vec<Kind> {
        self.active()
            .into_iter()
            .filter(|k| self.track(*k).is_some_and(|t| t.next <= at))
            .collect()
    }

    /// When the next probe is due (time since the run began).
    pub fn next_due(&self) -> Option<Duration> {
        self.active()
            .into_iter()
            .filter_map(|k| self.track(k).map(|t| t.next))
            .min()
    }

    /// One result of the probe of `kind` at `at`; `outcome` says why it failed.
    pub fn record(&mut self, kind: Kind, outcome: Result<(), String>, at: Duration) -> Verdict {
        let Some(track) = self.track_mut(kind) else {
            return Verdict::Healthy;
        };
        track.record(outcome.is_ok(), at);
        let (passing, failures) = (track.passing, track.failures);
        let given_up = failures >= track.probe.failure_threshold;
        match kind {
            Kind::Startup if passing => {
                self.started = true;
                // The others begin now, or after their own initial delay if that is later.
                for other in [Kind::Liveness, Kind::Readiness] {
                    if let Some(t) = self.track_mut(other) {
                        t.next = t.next.max(at);
                    }
                }
                Verdict::Healthy
            }
            Kind::Startup | Kind::Liveness if given_up => Verdict::Restart(format!(
                "{} probe failed {failures} times: {}",
                kind.name(),
                outcome.err().unwrap_or_default()
            )),
            _ => Verdict::Healthy,
        }
    }
}

fn seconds(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}

#[cfg(test)]
mod tests;

//! Usage sampling: every ten heartbeats of its cluster (at most [`SAMPLE_PERIOD`]) the node
//! asks its runtimes what each running instance uses; CPU becomes millicores from two
//! samples. The use goes up in a heartbeat
//! only when it changed noticeably since the node last said, so an idle node stays within its
//! traffic budget (a few dozen bytes per instance, at most once per period).

use canopy_model::Usage;
use canopy_runtime::Stats;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub(crate) const SAMPLE_PERIOD: Duration = Duration::from_secs(10);

/// The sampling period under a cluster that heartbeats every `heartbeat`: ten of them,
/// from one second to [`SAMPLE_PERIOD`] (10 s at the default heartbeat; tiers run faster in
/// tests, and the autoscaler decides on what is sampled).
pub(crate) fn sample_period(heartbeat: Duration) -> Duration {
    (heartbeat * 10).clamp(Duration::from_secs(1), SAMPLE_PERIOD)
}

/// Least change of an instance's CPU worth a report: 20% or 50 millicores, whichever is more.
const CPU_STEP_MILLIS: u64 = 50;
/// Least change of an instance's memory worth a report: 10% or 4 MiB, whichever is more.
const MEMORY_STEP_BYTES: u64 = 4 << 20;

/// Turns cumulative samples into rates, per instance.
#[derive(Default)]
pub(crate) struct Sampler {
    previous: BTreeMap<String, (Stats, Instant)>,
}

impl Sampler {
    /// The use of each instance sampled at `at` (CPU is 0 for one seen the first time);
    /// instances not in `stats` are forgotten.
    pub fn sample(
        &mut self,
        stats: BTreeMap<String, Stats>,
        at: Instant,
    ) -> BTreeMap<String, Usage> {
        let mut usage = BTreeMap::new();
        let mut next = BTreeMap::new();
        for (id, now) in stats {
            let cpu_millis = match self.previous.get(&id) {
                Some((before, when)) => {
                    now.millicores_since(before, at.saturating_duration_since(*when))
                }
                None => 0,
            };
            usage.insert(
                id.clone(),
                Usage {
                    cpu_millis,
                    memory_bytes: now.memory_bytes,
                },
            );
            next.insert(id, (now, at));
        }
        self.previous = next;
        usage
    }
}

fn moved(before: u64, now: u64, step: u64, percent: u64) -> bool {
    before.abs_diff(now) > step.max(before * percent / 100)
}

/// Whether `now` differs enough from what was last sent to be worth sending.
pub(crate) fn noticeably_changed(
    sent: Option<&BTreeMap<String, Usage>>,
    now: &BTreeMap<String, Usage>,
) -> bool {
    let Some(sent) = sent else {
        return true;
    };
    if !sent.keys().eq(now.keys()) {
        return true;
    }
    sent.values().zip(now.values()).any(|(before, now)| {
        moved(before.cpu_millis, now.cpu_millis, CPU_STEP_MILLIS, 20)
            || moved(before.memory_bytes, now.memory_bytes, MEMORY_STEP_BYTES, 10)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(cpu_ms: u64, memory_mib: u64) -> Stats {
        Stats {
            cpu_usage_ns: cpu_ms * 1_000_000,
            memory_bytes: memory_mib << 20,
        }
    }

    #[test]
    fn cpu_is_a_rate_between_two_samples() {
        let mut sampler = Sampler::default();
        let start = Instant::now();
        let first = sampler.sample([("a".to_string(), stats(0, 10))].into(), start);
        assert_eq!(first["a"].cpu_millis, 0, "one sample has no rate");
        assert_eq!(first["a"].memory_bytes, 10 << 20);
        // 5 s of CPU over 10 s: half a core.
        let later = start + Duration::from_secs(10);
        let second = sampler.sample([("a".to_string(), stats(5000, 12))].into(), later);
        assert_eq!(second["a"].cpu_millis, 500);
        let gone = sampler.sample(BTreeMap::new(), later + Duration::from_secs(10));
        assert!(gone.is_empty());
    }

    #[test]
    fn only_noticeable_changes_are_sent() {
        let use_of = |cpu_millis, memory_mib: u64| {
            BTreeMap::from([(
                "a".to_string(),
                Usage {
                    cpu_millis,
                    memory_bytes: memory_mib << 20,
                },
            )])
        };
        assert!(
            noticeably_changed(None, &use_of(0, 0)),
            "the first sample goes"
        );
        let sent = use_of(500, 100);
        assert!(
            !noticeably_changed(Some(&sent), &use_of(540, 102)),
            "jitter"
        );
        assert!(
            noticeably_changed(Some(&sent), &use_of(700, 100)),
            "CPU moved 40%"
        );
        assert!(
            noticeably_changed(Some(&sent), &use_of(500, 120)),
            "memory moved 20%"
        );
        assert!(
            noticeably_changed(Some(&sent), &BTreeMap::new()),
            "an instance left"
        );
        // Small values: the absolute step decides, not the percentage.
        assert!(!noticeably_changed(Some(&use_of(0, 1)), &use_of(30, 3)));
    }

    #[test]
    fn the_period_is_ten_heartbeats_from_one_to_ten_seconds() {
        let ms = Duration::from_millis;
        assert_eq!(sample_period(ms(1000)), SAMPLE_PERIOD);
        assert_eq!(sample_period(ms(200)), ms(2000));
        assert_eq!(sample_period(ms(10)), ms(1000));
        assert_eq!(sample_period(ms(5000)), SAMPLE_PERIOD);
    }
}

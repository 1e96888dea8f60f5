//! An instance's limits. Memory: a cap on linear memories and tables, enforced by
//! wasmtime's `ResourceLimiter` (a grow past it traps with the reason). CPU: a rate, never a
//! kill; the time the instance's task spends on a CPU is measured per poll (the thread's CPU
//! clock, so host calls count too), and a token bucket refilled at the rate on every epoch
//! tick decides how long it sleeps when it ran ahead.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;

/// Table elements a module may have (each is a pointer: 8 MiB at most).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The memory cap of one store; `used` is what its memories hold now (for stats).
pub(crate) struct MemoryCap {
    pub max_bytes: u64,
    pub used: Arc<AtomicU64>,
    /// Set when a grow was refused, so the run's end is reported as out of memory.
    pub exceeded: Arc<std::sync::atomic::AtomicBool>,
}

impl wasmtime::ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Past the module's own maximum the grow fails anyway (-1), and is not counted.
        if maximum.is_some_and(|m| desired > m) {
            return Ok(false);
        }
        let grow = desired.saturating_sub(current) as u64;
        let total = self.used.load(Ordering::Relaxed).saturating_add(grow);
        if total > self.max_bytes {
            self.exceeded.store(true, Ordering::Relaxed);
            // An error (not a refusal) traps: the module cannot mistake it for a full heap.
            return Err(wasmtime::format_err!(
                "memory limit exceeded: the module asked for {} MiB, its limit is {} MiB",
                total.div_ceil(1 << 20),
                self.max_bytes >> 20
            ));
        }
        self.used.store(total, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(wasmtime::format_err!(
                "table limit exceeded: {desired} elements asked, at most {MAX_TABLE_ELEMENTS}"
            ));
        }
        Ok(true)
    }
}

/// The token bucket of a CPU rate. Pure: times and CPU use are passed in.
#[derive(Debug, Clone)]
pub(crate) struct CpuBudget {
    /// CPU nanoseconds allowed per wall-clock second (millicores × 10⁶); 0: no limit.
    ns_per_sec: u64,
    /// Nanoseconds of CPU the instance may still use before it sleeps (negative: owed).
    tokens: i128,
    last_refill: Instant,
    last_used: u64,
}

/// At most this much unused CPU time is saved up for a burst.
const BURST: Duration = Duration::from_millis(100);

impl CpuBudget {
    pub(crate) fn new(millicores: u64, now: Instant) -> CpuBudget {
        let ns_per_sec = millicores.saturating_mul(1_000_000);
        CpuBudget {
            ns_per_sec,
            tokens: 0,
            last_refill: now,
            last_used: 0,
        }
    }

    fn burst(&self) -> i128 {
        i128::from(self.ns_per_sec) * BURST.as_nanos() as i128 / 1_000_000_000
    }

    /// At a tick: the instance used `used_ns` CPU in all so far. Returns how long it must
    /// sleep so that its use stays at the rate (None: keep running).
    pub(crate) fn on_tick(&mut self, used_ns: u64, now: Instant) -> Option<Duration> {
        if self.ns_per_sec == 0 {
            return None;
        }
        let elapsed = now.saturating_duration_since(self.last_refill).as_nanos() as i128;
        self.last_refill = now;
        let refill = elapsed * i128::from(self.ns_per_sec) / 1_000_000_000;
        self.tokens = (self.tokens + refill).min(self.burst());
        self.tokens -= i128::from(used_ns.saturating_sub(self.last_used));
        self.last_used = used_ns.max(self.last_used);
        if self.tokens >= 0 {
            return None;
        }
        let owed = -self.tokens;
        let sleep_ns = owed * 1_000_000_000 / i128::from(self.ns_per_sec);
        Some(Duration::from_nanos(
            u64::try_from(sleep_ns).unwrap_or(u64::MAX),
        ))
    }
}

/// CPU time of one instance's task: summed over its polls, and readable mid-poll from the
/// epoch callback (which runs inside the poll, on the polling thread).
#[derive(Debug, Default)]
pub(crate) struct CpuClock {
    finished_polls: AtomicU64,
    poll_started_at: AtomicU64,
    /// The latest total seen (at a poll's end or a tick), for stats from other threads.
    latest: AtomicU64,
}

fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(t.tv_nsec).unwrap_or(0))
}

impl CpuClock {
    /// Total CPU time so far; only meaningful on the thread polling the instance.
    pub(crate) fn used_now(&self) -> u64 {
        let running = thread_cpu_ns().saturating_sub(self.poll_started_at.load(Ordering::Relaxed));
        let total = self
            .finished_polls
            .load(Ordering::Relaxed)
            .saturating_add(running);
        self.latest.store(total, Ordering::Relaxed);
        total
    }

    /// The last total seen, from any thread.
    pub(crate) fn latest(&self) -> u64 {
        self.latest.load(Ordering::Relaxed)
    }
}

/// Wraps an instance's future, charging each poll's CPU time to its clock.
pub(crate) struct Metered<F> {
    pub inner: Pin<Box<F>>,
    pub clock: Arc<CpuClock>,
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let start = thread_cpu_ns();
        self.clock.poll_started_at.store(start, Ordering::Relaxed);
        let out = self.inner.as_mut().poll(cx);
        let spent = thread_cpu_ns().saturating_sub(start);
        let total = self
            .clock
            .finished_polls
            .fetch_add(spent, Ordering::Relaxed)
            .saturating_add(spent);
        self.clock.latest.store(total, Ordering::Relaxed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_rate_throttles_by_what_ran_ahead() {
        let t0 = Instant::now();
        // 100m: 1 ms of CPU per 10 ms.
        let mut b = CpuBudget::new(100, t0);
        // 10 ms of CPU in the first 10 ms: 9 ms ahead, i.e. 90 ms of sleep.
        assert_eq!(b.on_tick(10_000_000, t0 + ms(10)), Some(ms(90)));
        // After sleeping that off and using nothing more, it runs again.
        assert_eq!(b.on_tick(10_000_000, t0 + ms(100)), None);
    }

    #[test]
    fn idle_time_saves_up_only_a_burst() {
        let t0 = Instant::now();
        let mut b = CpuBudget::new(1000, t0);
        // Idle for 10 s at one core: at most BURST is saved.
        assert_eq!(b.on_tick(0, t0 + Duration::from_secs(10)), None);
        assert_eq!(b.on_tick(100_000_000, t0 + Duration::from_secs(10)), None);
        assert_eq!(
            b.on_tick(110_000_000, t0 + Duration::from_secs(10)),
            Some(ms(10))
        );
    }

    #[test]
    fn no_rate_no_throttle() {
        let t0 = Instant::now();
        let mut b = CpuBudget::new(0, t0);
        assert_eq!(b.on_tick(u64::MAX, t0), None);
    }
}

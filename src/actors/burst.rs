//! How the thread-actor arbiters share the cores with the acks during a burst.
//!
//! The arbiters run below the HTTP workers' priority (`nice`), so an ack never waits behind a
//! turn. But what a lower priority leaves the answers is whatever the acks do not use, and under
//! a closed-loop burst that swung by half from run to run (BENCHMARKS.md, "Bursts and memory").
//! So the arbiters run only somewhat below the workers, enough to get more than their share, and
//! while messages arrive at burst rates each arbiter pauses once it has used more than
//! [`Yielding::burst_share`] of a core: the answers keep that share, the acks get the rest.
//! At the rates of normal use nothing is capped.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages dispatched per second from which the cap applies. Slack sends a workspace at most
/// 30,000 events an hour (about 8 a second), so only a burst (or many workspaces at once) gets
/// here.
pub const BURST_ARRIVALS_PER_SEC: f64 = 2_000.0;
/// How often an arbiter compares its CPU time with its share.
const WINDOW: Duration = Duration::from_millis(20);
/// The longest single pause (a window's CPU at a small share would otherwise ask for seconds).
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// How the actor arbiters yield the cores to the acks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Yielding {
    /// Scheduling priority of the arbiters' threads (0 = like every other thread).
    pub nice: i32,
    /// While messages arrive at [`BURST_ARRIVALS_PER_SEC`] or more, the share of a core each
    /// arbiter may use (`None`: no cap).
    pub burst_share: Option<f64>,
}

impl Yielding {
    /// Arbiters like every other thread, never paused.
    pub const NONE: Self = Self {
        nice: 0,
        burst_share: None,
    };
}

/// Messages dispatched so far: the arbiters' governors read the arrival rate from it.
#[derive(Debug, Default)]
pub(super) struct Arrivals(AtomicU64);

impl Arrivals {
    pub(super) fn count(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// How long an arbiter pauses after a window of `elapsed` in which it used `used` of CPU and
/// `arrived` messages were dispatched: long enough that its use over the window and the pause
/// comes down to `share`, when the arrivals were at burst rate; else not at all.
fn pause_after(used: Duration, elapsed: Duration, arrived: u64, share: f64) -> Option<Duration> {
    let burst = arrived as f64 >= BURST_ARRIVALS_PER_SEC * elapsed.as_secs_f64();
    if !burst || share <= 0.0 || share >= 1.0 {
        return None;
    }
    // used / (elapsed + pause) = share
    let pause = used.div_f64(share).checked_sub(elapsed)?;
    Some(pause.min(MAX_PAUSE)).filter(|pause| !pause.is_zero())
}

/// Runs on an arbiter for as long as it lives: every [`WINDOW`], pauses the arbiter's thread
/// (every actor on it) as [`pause_after`] says. A blocking sleep on purpose: the point is that
/// this thread leaves the core.
pub(super) async fn govern(arrivals: Arc<Arrivals>, share: f64) {
    let Some(mut cpu) = thread_cpu_time() else {
        return tracing::warn!("No per-thread CPU clock here: answers are not capped during bursts");
    };
    let mut every = tokio::time::interval(WINDOW);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut since, mut arrived) = (Instant::now(), arrivals.total());
    loop {
        every.tick().await;
        let (now, used, total) = (Instant::now(), thread_cpu_time().unwrap_or(cpu), arrivals.total());
        if let Some(pause) = pause_after(used.saturating_sub(cpu), now - since, total - arrived, share) {
            std::thread::sleep(pause);
        }
        (since, arrived, cpu) = (Instant::now(), arrivals.total(), thread_cpu_time().unwrap_or(used));
    }
}

/// CPU time of the calling thread.
fn thread_cpu_time() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime writes into the timespec we own and reads nothing else.
        let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
        (result == 0).then(|| Duration::new(time.tv_sec as u64, time.tv_nsec as u32))
    }
    #[cfg(not(target_os = "linux"))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn an_arbiter_over_its_share_during_a_burst_pauses_down_to_it() {
        // 20 ms window, 100 arrivals (5,000/s), 10 ms of CPU at a share of 0.25: pause 20 ms.
        assert_eq!(pause_after(10 * MS, 20 * MS, 100, 0.25), Some(20 * MS));
        // Within its share: no pause.
        assert_eq!(pause_after(5 * MS, 20 * MS, 100, 0.25), None);
        assert_eq!(pause_after(4 * MS, 20 * MS, 100, 0.25), None);
    }

    #[test]
    fn outside_a_burst_nothing_is_capped() {
        // 39 arrivals in 20 ms is 1,950/s, under the burst rate.
        assert_eq!(pause_after(20 * MS, 20 * MS, 39, 0.25), None);
        assert!(pause_after(20 * MS, 20 * MS, 40, 0.25).is_some());
    }

    #[test]
    fn a_pause_is_bounded_and_a_share_outside_zero_to_one_caps_nothing() {
        assert_eq!(pause_after(20 * MS, 20 * MS, 1_000, 0.01), Some(MAX_PAUSE));
        assert_eq!(pause_after(20 * MS, 20 * MS, 1_000, 1.0), None);
        assert_eq!(pause_after(20 * MS, 20 * MS, 1_000, 0.0), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_thread_cpu_clock_counts_this_threads_work_only() {
        let before = thread_cpu_time().unwrap_or_default();
        let started = Instant::now();
        while started.elapsed() < 20 * MS {
            std::hint::black_box(started.elapsed());
        }
        let busy = thread_cpu_time().unwrap_or_default() - before;
        let wall = started.elapsed();
        std::thread::sleep(20 * MS);
        let asleep = thread_cpu_time().unwrap_or_default() - before - busy;
        assert!(!busy.is_zero() && busy <= wall, "{busy:?} of CPU in {wall:?}");
        assert!(asleep < 5 * MS, "{asleep:?} of CPU while asleep");
    }
}

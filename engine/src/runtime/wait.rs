//! Wait strategies: what a stage thread does when it has nothing to do, or when the ring it feeds
//! is full.
//!
//! As in the LMAX Disruptor, the choice trades latency for the CPU left to other threads:
//!
//! | strategy | on each empty turn | wake-up latency | costs |
//! | --- | --- | --- | --- |
//! | [`WaitStrategy::BusySpin`] | one `spin_loop` hint | tens of ns | a whole core, always |
//! | [`WaitStrategy::SpinYield`] | spin [`SPIN_TURNS`] times, then `yield_now` | ~µs once yielding | a core unless others want it |
//! | [`WaitStrategy::BackoffPark`] | exponential spin, then yields, then `park_timeout(`[`PARK`]`)` | up to [`PARK`] | almost nothing when idle |
//!
//! A thread parked by `BackoffPark` wakes on its own after [`PARK`], or at once when the pipeline
//! is stopped (the handle unparks every thread).

use core::fmt;
use std::time::Duration;

use crossbeam_utils::Backoff;

/// Spins before [`WaitStrategy::SpinYield`] starts yielding.
pub const SPIN_TURNS: u32 = 1_000;

/// Longest sleep of [`WaitStrategy::BackoffPark`] once its back-off is exhausted.
pub const PARK: Duration = Duration::from_micros(100);

/// How a stage thread waits for work or for room downstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitStrategy {
    /// Spin on the ring with a CPU hint; lowest latency, burns its core. For dedicated cores.
    BusySpin,
    /// Spin for a while, then yield the CPU on every further empty turn. For cores shared with a
    /// few other threads.
    SpinYield,
    /// Exponential back-off (spin, then yield), then sleep up to [`PARK`]. For shared machines, CI,
    /// and single-core runs.
    BackoffPark,
}

impl WaitStrategy {
    /// Every strategy, for tests and command-line choices.
    pub const ALL: [WaitStrategy; 3] = [
        WaitStrategy::BusySpin,
        WaitStrategy::SpinYield,
        WaitStrategy::BackoffPark,
    ];
}

impl fmt::Display for WaitStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WaitStrategy::BusySpin => "busy-spin",
            WaitStrategy::SpinYield => "spin-then-yield",
            WaitStrategy::BackoffPark => "back-off/park",
        })
    }
}

/// The running state of one [`WaitStrategy`]: how long the current wait has lasted.
#[derive(Debug)]
pub(crate) struct Waiter {
    strategy: WaitStrategy,
    /// Empty turns since the last [`Waiter::reset`] (saturating), for `SpinYield`.
    spins: u32,
    /// Back-off state, for `BackoffPark`.
    backoff: Backoff,
}

impl Waiter {
    pub(crate) fn new(strategy: WaitStrategy) -> Self {
        Self {
            strategy,
            spins: 0,
            backoff: Backoff::new(),
        }
    }

    /// Work arrived: the next wait starts from the cheapest step again.
    #[inline(always)]
    pub(crate) fn reset(&mut self) {
        match self.strategy {
            WaitStrategy::BusySpin => {}
            WaitStrategy::SpinYield => self.spins = 0,
            WaitStrategy::BackoffPark => self.backoff.reset(),
        }
    }

    /// One empty turn.
    #[inline]
    pub(crate) fn wait(&mut self) {
        match self.strategy {
            WaitStrategy::BusySpin => core::hint::spin_loop(),
            WaitStrategy::SpinYield => {
                if self.spins < SPIN_TURNS {
                    self.spins += 1;
                    core::hint::spin_loop();
                } else {
                    std::thread::yield_now();
                }
            }
            WaitStrategy::BackoffPark => {
                if self.backoff.is_completed() {
                    std::thread::park_timeout(PARK);
                } else {
                    self.backoff.snooze();
                }
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn spin_yield_counts_its_spins_and_resets() {
        let mut w = Waiter::new(WaitStrategy::SpinYield);
        for _ in 0..SPIN_TURNS + 5 {
            w.wait();
        }
        assert_eq!(w.spins, SPIN_TURNS);
        w.reset();
        assert_eq!(w.spins, 0);
    }

    #[test]
    fn backoff_reaches_its_park_phase() {
        let mut w = Waiter::new(WaitStrategy::BackoffPark);
        for _ in 0..64 {
            w.wait();
        }
        assert!(w.backoff.is_completed());
        w.reset();
        assert!(!w.backoff.is_completed());
    }

    #[test]
    fn names_are_distinct() {
        let names: std::collections::HashSet<String> =
            WaitStrategy::ALL.iter().map(|w| w.to_string()).collect();
        assert_eq!(names.len(), 3);
    }
}

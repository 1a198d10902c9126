//! Timestamps for latency measurement: CLOCK_MONOTONIC in nanoseconds.
//!
//! CLOCK_MONOTONIC is one system-wide clock, so a stamp taken by the publisher process is comparable
//! with one taken by the engine process. It is read through the vDSO (no system call). Stamps are
//! `u64` nanoseconds since boot; `0` is never a valid stamp and means "not stamped".

use rustix::time::{ClockId, clock_gettime};

/// Nanoseconds on CLOCK_MONOTONIC (system-wide, comparable across processes).
#[inline]
pub fn now_ns() -> u64 {
    let ts = clock_gettime(ClockId::Monotonic);
    // Both fields are non-negative for CLOCK_MONOTONIC; the product fits in u64 for 584 years.
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// Nanoseconds since the Unix epoch on CLOCK_REALTIME, for wall-clock fields such as a file's
/// creation time. Not for latency: it can step.
pub fn wall_ns() -> u64 {
    let ts = clock_gettime(ClockId::Realtime);
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_never_goes_back() {
        let mut last = now_ns();
        assert!(last > 0);
        for _ in 0..10_000 {
            let t = now_ns();
            assert!(t >= last, "{t} < {last}");
            last = t;
        }
    }

    #[test]
    fn wall_clock_is_after_2020() {
        // 2020-01-01T00:00:00Z in ns.
        assert!(wall_ns() > 1_577_836_800_000_000_000);
    }
}

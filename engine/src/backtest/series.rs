//! The price path, liquidations and insurance fund of a backtest, sampled into a bounded number
//! of buckets whatever the file's length.
//!
//! Each bucket covers `stride` consecutive ticks and keeps their first time, low, high and last
//! mark, the liquidation orders they caused (sells and buys) and the fund after the last of
//! them. When `2 × points` buckets are full, neighbours are merged pairwise and the stride
//! doubles, so between `points` and `2 × points` buckets remain and each covers the same number
//! of ticks (the last one possibly fewer). Merging depends only on the tick count: the series is
//! as deterministic as the input.

use crate::margin::Money;
use crate::shm::Side;

/// A run of consecutive ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Time of the first tick, Unix ns.
    pub ts_ns: u64,
    /// Lowest mark, price units.
    pub low_px: i64,
    /// Highest mark.
    pub high_px: i64,
    /// Last mark.
    pub close_px: i64,
    /// Sell liquidation orders (closing longs) caused by these ticks.
    pub sells: u64,
    /// Buy liquidation orders (closing shorts).
    pub buys: u64,
    /// The insurance fund after the last tick.
    pub fund: Money,
    /// Ticks in the bucket.
    pub ticks: u64,
}

impl Bucket {
    fn merge(self, next: Bucket) -> Bucket {
        Bucket {
            ts_ns: self.ts_ns,
            low_px: self.low_px.min(next.low_px),
            high_px: self.high_px.max(next.high_px),
            close_px: next.close_px,
            sells: self.sells + next.sells,
            buys: self.buys + next.buys,
            fund: next.fund,
            ticks: self.ticks + next.ticks,
        }
    }
}

/// The sampled series; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    buckets: Vec<Bucket>,
    /// Ticks per full bucket; a power of two.
    stride: u64,
    points: usize,
    /// Liquidations seen since the last tick was recorded (they belong to the next one).
    pending: (u64, u64),
}

impl Series {
    /// A series keeping between `points` and `2 × points` buckets (at least 1).
    pub fn new(points: usize) -> Series {
        let points = points.max(1);
        Series {
            buckets: Vec::with_capacity(2 * points),
            stride: 1,
            points,
            pending: (0, 0),
        }
    }

    /// Notes a liquidation order of the tick being applied.
    pub fn liquidation(&mut self, side: Side) {
        match side {
            Side::Sell => self.pending.0 += 1,
            Side::Buy => self.pending.1 += 1,
        }
    }

    /// Records a tick at `ts_ns` with mark `mark_px`, and the fund after it.
    pub fn tick(&mut self, ts_ns: u64, mark_px: i64, fund: Money) {
        let b = Bucket {
            ts_ns,
            low_px: mark_px,
            high_px: mark_px,
            close_px: mark_px,
            sells: self.pending.0,
            buys: self.pending.1,
            fund,
            ticks: 1,
        };
        self.pending = (0, 0);
        if let Some(last) = self.buckets.last_mut()
            && last.ticks < self.stride
        {
            *last = last.merge(b);
            return;
        }
        if self.buckets.len() >= 2 * self.points {
            // Every bucket is full here (the last one too), and there is an even number of
            // them: the merged ones are full at the doubled stride.
            let merged: Vec<Bucket> = self
                .buckets
                .chunks(2)
                .filter_map(|pair| pair.iter().copied().reduce(Bucket::merge))
                .collect();
            self.buckets = merged;
            self.stride *= 2;
        }
        self.buckets.push(b);
    }

    /// The buckets, oldest first.
    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }

    /// Ticks per full bucket.
    pub fn stride(&self) -> u64 {
        self.stride
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_bounded_and_keeps_extremes_counts_and_the_last_fund() {
        let mut s = Series::new(4);
        let mut liquidations = 0;
        for k in 0..1_000u64 {
            if k % 7 == 0 {
                s.liquidation(Side::Sell);
                liquidations += 1;
            }
            // A dip to 1 at tick 613; otherwise 100 + k % 10.
            let px = if k == 613 { 1 } else { 100 + (k % 10) as i64 };
            s.tick(k * 10, px, Money::from_int(k as i64));
        }
        let b = s.buckets();
        assert!(b.len() >= 4 && b.len() <= 8, "{}", b.len());
        assert_eq!(b.iter().map(|x| x.ticks).sum::<u64>(), 1_000);
        assert_eq!(b.iter().map(|x| x.sells).sum::<u64>(), liquidations);
        assert_eq!(b.iter().map(|x| x.low_px).min(), Some(1));
        assert_eq!(b.iter().map(|x| x.high_px).max(), Some(109));
        assert_eq!(b[0].ts_ns, 0);
        assert_eq!(b.last().map(|x| x.fund), Some(Money::from_int(999)));
        assert!(b.windows(2).all(|w| w[0].ts_ns < w[1].ts_ns));
        // Every bucket but the last holds exactly `stride` ticks.
        assert!(b[..b.len() - 1].iter().all(|x| x.ticks == s.stride()));
    }
}

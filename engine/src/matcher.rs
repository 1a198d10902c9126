//! A built-in matcher for tests, demos and backtests.
//!
//! It stands in for a venue: it watches the ticks (their best levels) and answers each
//! [`Output::Liquidation`] with a [`shm::Fill`] input carrying the order's id, which the caller
//! feeds back to the risk stage like any real fill. A sell is filled at the best bid less a
//! random slippage of up to `max_slippage_bps`, a buy at the best ask plus one, and never beyond
//! the order's limit: a book already through the limit fills nothing (the IOC is cancelled and
//! the engine's deadline and ADL take over). The quantity is at most the order's and, when the
//! book shows a size, at most that size; with probability `partial` it is a random part of it,
//! with probability `no_fill` nothing fills at all.
//!
//! ADL records are not answered: the engine books those closes itself at the record's price,
//! so a fill for them would count them twice.
//!
//! Randomness comes from a SplitMix64 stream seeded by `seed`, so a run is reproducible.

use crate::shm::{self, Output, Side};

/// Behaviour of the matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatcherConfig {
    /// Largest adverse slippage from the best level, basis points. Default 0.
    pub max_slippage_bps: u32,
    /// Chance of a partial fill, per mille. Default 0.
    pub partial_per_mille: u32,
    /// Chance of no fill at all, per mille. Default 0.
    pub no_fill_per_mille: u32,
    /// Seed of the random stream.
    pub seed: u64,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        MatcherConfig {
            max_slippage_bps: 0,
            partial_per_mille: 0,
            no_fill_per_mille: 0,
            seed: 1,
        }
    }
}

/// Best levels of one instrument.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Top {
    bid_px: i64,
    ask_px: i64,
    bid_qty: u32,
    ask_qty: u32,
}

/// The matcher's state: the latest best levels per instrument and the random stream.
#[derive(Debug, Clone)]
pub struct Matcher {
    config: MatcherConfig,
    books: Vec<Top>,
    state: u64,
}

impl Matcher {
    /// A matcher for `instruments` instruments.
    pub fn new(config: MatcherConfig, instruments: usize) -> Matcher {
        Matcher {
            config,
            books: vec![Top::default(); instruments],
            state: config.seed,
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw in `0..=max`.
    fn upto(&mut self, max: u64) -> u64 {
        if max == 0 { 0 } else { self.next() % (max + 1) }
    }

    /// Records a tick's best levels (ticks of unknown instruments are ignored).
    pub fn on_tick(&mut self, tick: &shm::Tick) {
        if let Some(b) = self.books.get_mut(tick.instrument as usize) {
            *b = Top {
                bid_px: tick.bid_px,
                ask_px: tick.ask_px,
                bid_qty: tick.bid_qty,
                ask_qty: tick.ask_qty,
            };
        }
    }

    /// The fill answering an output record, if any (see the module docs).
    pub fn on_output(&mut self, output: &Output) -> Option<shm::Fill> {
        let Output::Liquidation(order) = output else {
            return None;
        };
        let top = *self.books.get(order.instrument as usize)?;
        if order.qty <= 0 {
            return None;
        }
        if self.upto(999) < u64::from(self.config.no_fill_per_mille) {
            return None;
        }
        let slip_bps = self.upto(u64::from(self.config.max_slippage_bps)) as i128;
        let (best, shown) = match order.side {
            Side::Sell => (top.bid_px, top.bid_qty),
            Side::Buy => (top.ask_px, top.ask_qty),
        };
        if best <= 0 {
            return None;
        }
        let slip = (i128::from(best) * slip_bps / 10_000) as i64;
        let price = match order.side {
            Side::Sell if best < order.limit_px => return None,
            Side::Buy if best > order.limit_px => return None,
            Side::Sell => (best - slip).max(order.limit_px),
            Side::Buy => (best + slip).min(order.limit_px),
        };
        let mut qty = order.qty;
        if shown > 0 {
            qty = qty.min(i64::from(shown));
        }
        if self.upto(999) < u64::from(self.config.partial_per_mille) {
            qty = 1 + self.upto(qty as u64 - 1) as i64;
        }
        Some(shm::Fill {
            account: order.account,
            instrument: order.instrument,
            qty: if order.side == Side::Sell { -qty } else { qty },
            price_px: price,
            fee_money: 0,
            liquidation_order_id: order.order_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(bid: i64, ask: i64, bid_qty: u32, ask_qty: u32) -> shm::Tick {
        shm::Tick {
            instrument: 0,
            mark_px: (bid + ask) / 2,
            index_px: 0,
            bid_px: bid,
            ask_px: ask,
            bid_qty,
            ask_qty,
        }
    }

    fn order(side: Side, qty: i64, limit_px: i64) -> Output {
        Output::Liquidation(shm::Liquidation {
            order_id: 42,
            account: 7,
            instrument: 0,
            side,
            qty,
            limit_px,
            input_seq: 1,
        })
    }

    #[test]
    fn fills_at_the_best_level_capped_by_size_and_never_beyond_the_limit() {
        let mut m = Matcher::new(MatcherConfig::default(), 1);
        m.on_tick(&tick(13_765, 13_775, 2_000, 9_000));
        // A sell of 2,500 against 2,000 at the bid 137.65, limit 135.00: 2,000 at 137.65.
        let f = m.on_output(&order(Side::Sell, 2_500, 13_500)).unwrap();
        assert_eq!(
            (f.qty, f.price_px, f.liquidation_order_id),
            (-2_000, 13_765, 42)
        );
        // A buy limited at 137.70 below the ask: nothing.
        assert_eq!(m.on_output(&order(Side::Buy, 100, 13_770)), None);
        // A buy limited at 138.00: 100 at the ask 137.75.
        let f = m.on_output(&order(Side::Buy, 100, 13_800)).unwrap();
        assert_eq!((f.qty, f.price_px), (100, 13_775));
        // ADL records are booked by the engine: no fill.
        let adl = Output::Adl(shm::Adl {
            order_id: 1,
            account: 8,
            instrument: 0,
            side: Side::Buy,
            qty: 1,
            price_px: 13_500,
            bankrupt_account: 7,
        });
        assert_eq!(m.on_output(&adl), None);
    }

    #[test]
    fn slippage_and_partials_are_reproducible_and_bounded_by_the_limit() {
        let config = MatcherConfig {
            max_slippage_bps: 300,
            partial_per_mille: 500,
            no_fill_per_mille: 100,
            seed: 9,
        };
        let run = |config| {
            let mut m = Matcher::new(config, 1);
            m.on_tick(&tick(10_000, 10_010, 0, 0));
            (0..500)
                .map(|_| m.on_output(&order(Side::Sell, 1_000, 9_800)))
                .collect::<Vec<_>>()
        };
        let a = run(config);
        assert_eq!(a, run(config));
        let fills: Vec<shm::Fill> = a.iter().flatten().copied().collect();
        assert!(fills.len() < 500 && fills.len() > 300);
        assert!(
            fills
                .iter()
                .all(|f| f.price_px >= 9_800 && f.price_px <= 10_000)
        );
        assert!(fills.iter().any(|f| f.price_px == 9_800));
        assert!(fills.iter().all(|f| (-1_000..0).contains(&f.qty)));
        assert!(fills.iter().any(|f| f.qty > -1_000));
    }
}

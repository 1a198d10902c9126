//! A seeded synthetic market: geometric Brownian motion with Poisson jumps over N instruments.
//!
//! Floating point is used only to generate the path; every emitted value is a scaled integer.
//! The same seed and configuration give the same records on every run and machine.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::shm::{Input, Tick, input::book_qty};

/// Parameters of the synthetic market.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticConfig {
    /// Number of instruments; ticks cycle through ids `0..instruments`.
    pub instruments: u32,
    /// RNG seed.
    pub seed: u64,
    /// Starting price of instrument 0; instrument i starts at `start_price × (i + 1)`.
    pub start_price: f64,
    /// Volatility per tick (standard deviation of the log return).
    pub sigma: f64,
    /// Probability of a jump on a tick.
    pub jump_probability: f64,
    /// Standard deviation of a jump's log return.
    pub jump_sigma: f64,
    /// Half-spread of the book, in basis points of the mark.
    pub half_spread_bps: f64,
    /// Price decimals of every instrument.
    pub price_decimals: u8,
    /// Quantity decimals of every instrument.
    pub qty_decimals: u8,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            instruments: 4,
            seed: 1,
            start_price: 100.0,
            sigma: 2e-4,
            jump_probability: 1e-4,
            jump_sigma: 0.02,
            half_spread_bps: 1.0,
            price_decimals: 2,
            qty_decimals: 3,
        }
    }
}

/// An endless iterator of synthetic ticks.
pub struct Synthetic {
    config: SyntheticConfig,
    rng: StdRng,
    log_prices: Vec<f64>,
    next: u32,
    price_scale: f64,
    qty_scale: f64,
}

impl Synthetic {
    /// A generator with `config` (at least one instrument).
    pub fn new(config: SyntheticConfig) -> Synthetic {
        let n = config.instruments.max(1);
        let log_prices = (0..n)
            .map(|i| (config.start_price.max(1e-9) * f64::from(i + 1)).ln())
            .collect();
        Synthetic {
            config: SyntheticConfig {
                instruments: n,
                ..config
            },
            rng: StdRng::seed_from_u64(config.seed),
            log_prices,
            next: 0,
            price_scale: 10f64.powi(i32::from(config.price_decimals)),
            qty_scale: 10f64.powi(i32::from(config.qty_decimals)),
        }
    }

    fn scaled(&self, price: f64) -> i64 {
        // `as` saturates on overflow and maps NaN to 0; clamp keeps the mark positive.
        ((price * self.price_scale).round() as i64).max(1)
    }
}

impl Iterator for Synthetic {
    type Item = Input;

    fn next(&mut self) -> Option<Input> {
        let c = self.config;
        let i = self.next;
        self.next = (i + 1) % c.instruments;
        let z: f64 = StandardNormal.sample(&mut self.rng);
        let mut step = c.sigma * z - 0.5 * c.sigma * c.sigma;
        if self.rng.random::<f64>() < c.jump_probability {
            let j: f64 = StandardNormal.sample(&mut self.rng);
            step += c.jump_sigma * j;
        }
        let lp = &mut self.log_prices[i as usize];
        *lp += step;
        let price = lp.exp();
        let mark_px = self.scaled(price);
        let half =
            ((price * c.half_spread_bps / 10_000.0 * self.price_scale).round() as i64).max(1);
        let index_noise: f64 = StandardNormal.sample(&mut self.rng);
        let index_px = self.scaled(price * (1.0 + 1e-4 * index_noise));
        let bid_qty = book_qty((self.rng.random_range(0.01..50.0) * self.qty_scale) as i64);
        let ask_qty = book_qty((self.rng.random_range(0.01..50.0) * self.qty_scale) as i64);
        Some(Input::Tick(Tick {
            instrument: i,
            mark_px,
            index_px,
            // mark ≥ 1 and half ≥ 1, so bid ≤ mark < ask.
            bid_px: (mark_px - half).max(1),
            ask_px: mark_px.saturating_add(half),
            bid_qty: bid_qty.max(1),
            ask_qty: ask_qty.max(1),
        }))
    }
}

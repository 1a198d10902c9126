//! The insurance fund's circuit breaker.
//!
//! The fund *absorbs* a liquidation when the engine works it in the market: the fund then takes
//! whatever the fill misses the bankruptcy price by. When the fund's balance has fallen by more
//! than `max_loss_share` within the rolling window `window_ns` (engine time: the
//! publish stamps of the input), the breaker trips: one alert record is emitted, and until it
//! re-arms every liquidation job goes straight to auto-deleveraging at its bankruptcy limit,
//! where the counterparties, not the fund, take the position over. The fund still pays the
//! residue of a wallet left negative (rounding, or an ADL that found too little quantity): that
//! is bad debt already incurred, not new exposure.
//!
//! The loss is the drawdown of the balance (sampled after each input) from its peak within the
//! window: it trips when `(peak − balance) · 10^9 > share · peak`. Inflows within the same input
//! (a fee that pays the reset of the same wallet) therefore net out. The breaker re-arms once
//! `window_ns` has passed since it tripped; the peak from before the trip has then left the
//! window.

use std::collections::VecDeque;

use crate::margin::{Money, Rate};
use crate::shm::{self, Output};

/// The alert a trip emits: risk-stage code, carried on the wire as
/// [`shm::alert_code::INSURANCE_FUND_SHORT`] (arg0 = the drawdown from the window's peak,
/// arg1 = the balance left, both 10^-8 units).
pub const FUND_BREAKER_TRIPPED: u32 = shm::alert_code::INSURANCE_FUND_SHORT;

/// Configuration of the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Share of the balance the fund may lose within the window; `Rate(0)` disables the
    /// breaker. Default 0.5.
    pub max_loss_share: Rate,
    /// The rolling window, ns of engine time. Default 1 h.
    pub window_ns: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            max_loss_share: Rate(500_000_000),
            window_ns: 3_600_000_000_000,
        }
    }
}

/// State of the breaker. Invariant: `peaks` holds, oldest first, the balances sampled within
/// the window that no later sample equals or exceeds (so its front is the window's peak).
#[derive(Debug, Clone, Default)]
pub struct Breaker {
    pub(super) peaks: VecDeque<(u64, Money)>,
    /// When it tripped, while tripped.
    pub(super) tripped_at: Option<u64>,
    pub(super) trips: u64,
}

impl Breaker {
    /// Whether liquidations go straight to ADL.
    pub fn tripped(&self) -> bool {
        self.tripped_at.is_some()
    }

    /// Times it tripped.
    pub fn trips(&self) -> u64 {
        self.trips
    }

    /// Samples the fund's balance at engine time `now_ns` (after each input); emits the alert
    /// when the breaker trips.
    pub fn update(
        &mut self,
        config: &BreakerConfig,
        now_ns: u64,
        balance: Money,
        out: &mut impl FnMut(Output),
    ) {
        if config.max_loss_share.0 == 0 {
            return;
        }
        while let Some(&(t, _)) = self.peaks.front() {
            if now_ns.saturating_sub(t) < config.window_ns {
                break;
            }
            self.peaks.pop_front();
        }
        while self.peaks.back().is_some_and(|&(_, b)| b <= balance) {
            self.peaks.pop_back();
        }
        self.peaks.push_back((now_ns, balance));
        if let Some(at) = self.tripped_at {
            if now_ns.saturating_sub(at) < config.window_ns {
                return;
            }
            self.tripped_at = None;
        }
        let peak = self.peaks.front().map_or(balance, |&(_, b)| b);
        let lost = peak.checked_sub(balance).unwrap_or(Money::ZERO);
        let over = lost.is_positive()
            && crate::num::wide::cmp_products(
                lost.to_bits().unsigned_abs(),
                1_000_000_000,
                peak.to_bits().max(0).unsigned_abs(),
                u128::from(config.max_loss_share.0),
            ) == std::cmp::Ordering::Greater;
        if over {
            self.tripped_at = Some(now_ns);
            self.trips += 1;
            let money = |m: Money| {
                m.to_scaled_floor(shm::MONEY_DECIMALS)
                    .and_then(|v| u64::try_from(v).ok())
                    .unwrap_or(0)
            };
            out(Output::Alert(shm::Alert {
                code: FUND_BREAKER_TRIPPED,
                arg0: money(lost),
                arg1: money(balance),
            }));
        }
    }
}

//! The margin model: instruments and tiers, accounts and positions, equity, maintenance and
//! initial margin, status, liquidation and bankruptcy prices.
//!
//! Linear, stablecoin-margined perpetuals and dated futures; cross and isolated margin per
//! position (one position per instrument and account, "one-way mode").
//!
//! ## Numbers (see [`crate::num`])
//! Prices and quantities are exact scaled integers ([`Price`], [`Qty`]); a position keeps its
//! exact cost `Σ qty·price` (`i128`); rates are exact [`Rate`]s (10^-9). Each position's uPnL
//! (`qty·mark − cost`), maintenance margin (`notional·MMR − amount`) and initial margin
//! (`notional·IMR`) are computed **exactly** in `i128` and converted once into [`Money`]
//! (`I80F48`): uPnL rounded down, margins rounded up. Sums over positions are exact fixed-point
//! additions. Why `I80F48`: 80 integer bits hold any realistic balance (±6·10^23), 48 fractional
//! bits put the rounding error at 3.6·10^-15 per conversion, and addition is exact and cheap.
//! Fixed-point division (≈30 ns) never appears in an evaluation: each conversion is one `u128`
//! division by a power of ten below 2^64 (measured ≈ 3–5 ns here, the divisor fits the hardware
//! divide), three per position (uPnL, MM, IM); the margin-call test `MM/E ≥ level` is done as
//! `MM·10^9 ≥ level·E` on 256-bit products; liquidation prices divide once per tier, and are not
//! part of the per-tick evaluation. Measured: 10^6 accounts × 3 positions evaluate in ≈ 140 ns
//! per account (release build, `brink risk --accounts`), dominated by memory access.
//!
//! ## Precision budget (ulp = 2^-48 ≈ 3.55·10^-15 currency units)
//! With `n` positions in a margin account (its cross part, or 1 for an isolated position):
//! - uPnL of a position: exact value minus at most 1 ulp (never above the exact value).
//! - MM and IM of a position: exact value plus at most 1 ulp (never below).
//! - Equity `W + Σ uPnL`: `W` is exact as booked (a decimal input is converted once, rounded
//!   down); the sum is at most `n` ulp below the exact equity, never above.
//! - MM of the account: at most `n` ulp above the exact value, never below.
//! - Hence `equity − MM` is at most `2n` ulp below the exact buffer, never above: the status can
//!   only err toward the worse state, by less than `2n·3.6·10^-15`.
//! - Liquidation price: the numerator `W' + cum − C` is at most `2(n−1) + 2` ulp below exact
//!   (other positions' uPnL and MM, `cum`, cost), the quotient rounds once more; so
//!   `|LP − LP*| ≤ 2n·ulp / |D| + ulp` with `|D| = |q|·(1 ∓ MMR)` in base units (e.g. `q` = 0.001
//!   BTC: < 10^-10 USDT), on the unfavourable side (higher for a long, lower for a short). At the
//!   computed LP, `equity − MM` is within `2n + |D|` ulp of zero.
//! - Bankruptcy price: the numerator (other uPnL, cost) is at most `n` ulp low, so
//!   `|BP − BP*| ≤ n·ulp/|q| + ulp`, unfavourable side; equity at BP is within `n + |q|` ulp of 0.
//!
//! These bounds are checked against an exact rational oracle by the property tests in
//! `margin/oracle_tests.rs`.
//!
//! ## Overflow
//! Every step is checked; an overflow is [`MarginError::Overflow`], never a wrapped value and
//! never a panic. Accepted ranges that cannot overflow: prices and quantities are `i64` units,
//! decimals ≤ 12 each, costs stay below 2^126 units (checked by [`Account::apply_fill`]), amounts
//! below ~10^23 currency units.
//!
//! ## API for later stages
//! - [`InstrumentTable`] (ids are [`InstrumentId`]: index in the scenario's list) of validated
//!   [`Instrument`]s; [`Instrument::tier_index`] by notional; [`Instrument::tiers`].
//! - [`MarkPrices`]: the mark per instrument id; every evaluation reads its prices from it.
//! - [`Account::evaluate`] → [`AccountRisk`] (cross [`MarginSummary`] and statuses);
//!   [`Account::cross_summary`]; [`Account::position_risk`] / [`Position::risk`] →
//!   [`PositionRisk`]; [`Position::isolated_summary`]; [`MarginSummary::status`] with a
//!   [`CallLevel`] (default 0.8); [`MarginSummary::margin_ratio_ceil`].
//! - [`Account::liquidation_price`], [`Account::bankruptcy_price`] (`Option<Money>`),
//!   [`to_tick_nearest`] (display), [`to_tick_against`] (conservative).
//! - [`Account::apply_fill`] → [`FillOutcome`] (realised PnL and fee for conservation checks),
//!   [`Account::transfer_isolated_margin`], [`Account::change_wallet`].

mod account;
mod eval;
mod instrument;
mod liq;
#[cfg(test)]
mod oracle_tests;
#[cfg(test)]
mod tests;

use thiserror::Error;

pub use crate::num::{Money, Price, Qty, Rate};
pub use account::{Account, Fill, FillOutcome, MarginMode, Position};
pub use eval::{AccountRisk, CallLevel, MarginStatus, MarginSummary, PositionRisk};
pub use instrument::{
    Instrument, InstrumentError, InstrumentId, InstrumentKind, InstrumentSpec, InstrumentTable,
    MAX_DECIMALS, MarkPrices, Tier, TierSpec,
};
pub use liq::{to_tick_against, to_tick_nearest};

/// Why an evaluation or account update was refused. Nothing changes when one is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum MarginError {
    /// The instrument id is not in the table.
    #[error("instrument #{instrument} is not in the instrument table: load it first")]
    UnknownInstrument {
        /// The id.
        instrument: u32,
    },
    /// No mark price yet.
    #[error("instrument #{instrument} has no mark price: set one in MarkPrices before evaluating")]
    NoMark {
        /// The id.
        instrument: u32,
    },
    /// A price that is not positive.
    #[error("price {price} is not positive: prices must be > 0")]
    NonPositivePrice {
        /// The price units given.
        price: i64,
    },
    /// A zero quantity where a position or a fill needs one.
    #[error("quantity is zero: a position or fill needs a non-zero quantity")]
    ZeroQty,
    /// A margin given for a cross position.
    #[error("a cross position has no margin of its own: use mode isolated or drop the margin")]
    MarginOnCross,
    /// An isolated margin that would be negative.
    #[error("isolated margin would be negative: it must be ≥ 0")]
    NegativeMargin,
    /// A second position on the same instrument.
    #[error("the account already holds instrument #{instrument}: one position per instrument")]
    DuplicatePosition {
        /// The id.
        instrument: u32,
    },
    /// No position on the instrument.
    #[error("the account holds no position on instrument #{instrument}")]
    NoPosition {
        /// The id.
        instrument: u32,
    },
    /// No position at this index.
    #[error("the account has no position #{index}")]
    NoPositionIndex {
        /// The index.
        index: usize,
    },
    /// Exact arithmetic would overflow.
    #[error("{what} overflows the exact arithmetic: amounts are too large")]
    Overflow {
        /// Which quantity.
        what: &'static str,
    },
}

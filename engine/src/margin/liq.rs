//! Liquidation and bankruptcy prices (Binance's formula with tier re-evaluation) and their
//! rounding to the price tick.
//!
//! ## Liquidation price
//! For position `i` with signed quantity `q`, side `s = sign(q)` and exact cost `C = Σ q·price`:
//! equity at mark `P` is `W' + q·P − C` and maintenance is `|q|·P·MMR_t − cum_t`, where
//! `W' = WB − TMM + UPNL` (cross: wallet minus the other cross positions' maintenance plus their
//! uPnL, both held at their current marks; isolated: the position's margin). Setting them equal:
//!
//! `LP_t = (W' + cum_t − C) / (|q|·(MMR_t − s))`, i.e. Binance's
//! `(WB − TMM + UPNL + cum − side·|q|·EP) / (|q|·MMR − side·|q|)` since `side·|q|·EP = C`.
//!
//! **Tier re-evaluation.** Binance recomputes with the tier of the notional at the liquidation
//! price. Because MMR rises with notional and the amounts make MM continuous, maintenance margin
//! is the upper envelope `MM(n) = max_t (n·MMR_t − cum_t)` (convex). Equity minus MM is strictly
//! increasing in `P` for a long (slope `|q|(1 − MMR) > 0`) and decreasing for a short, and lies
//! below each tier's line, so its root is the **largest** per-tier root for a long and the
//! **smallest** for a short, and that root is the one whose notional falls in its own tier. We
//! compute every tier's root (≤ a dozen) and take the extreme, which is robust at the borders
//! where rounding could make a "which tier contains it" test flicker.
//!
//! It does not exist (`None`) when no positive price solves it: a long so well collateralised
//! that it is never liquidated, or a short already liquidatable at every price.
//!
//! ## Bankruptcy price
//! Where equity is zero: `BP = (C − W'') / q` with `W''` = wallet + other cross uPnL (isolated:
//! the margin). `None` when not positive (a fully collateralised long; a short already bankrupt).
//!
//! ## Rounding
//! The inputs are rounded so that the result is on the account's unfavourable side: the
//! numerator uses costs rounded up, other positions' MM rounded up and uPnL rounded down; the
//! quotient is exact over the integer denominator `|q|·(10^9 ∓ MMR)` and rounded up for a long
//! (liquidated sooner) and down for a short. The error bound is in the [`super`] module docs.
//!
//! For **display** a price is rounded to the nearest tick ([`to_tick_nearest`]), which reproduces
//! the figures exchanges publish (e.g. 25,100.4016 → 25,100.40). Display prices are never used
//! for decisions: the engine compares equity and maintenance margin directly. The conservative
//! tick ([`to_tick_against`]: up for a long, down for a short) is there for limits and bands.

use crate::num::{MONEY_FRAC_BITS, Money, Price, Rate, wide};

use super::eval::inputs;
use super::{Account, Instrument, InstrumentTable, MarginError, MarginMode, MarkPrices};

/// The balances a position's prices are solved against.
struct Base {
    /// `W'`: wallet − other cross MM + other cross uPnL (isolated: margin).
    for_liquidation: Money,
    /// `W''`: wallet + other cross uPnL (isolated: margin).
    for_bankruptcy: Money,
}

impl Account {
    fn price_base(
        &self,
        index: usize,
        table: &InstrumentTable,
        marks: &MarkPrices,
    ) -> Result<Base, MarginError> {
        let p = self
            .positions()
            .get(index)
            .ok_or(MarginError::NoPositionIndex { index })?;
        if p.mode() == MarginMode::Isolated {
            return Ok(Base {
                for_liquidation: p.isolated_margin(),
                for_bankruptcy: p.isolated_margin(),
            });
        }
        let overflow = MarginError::Overflow {
            what: "liquidation price",
        };
        let (mut liq, mut bank) = (self.wallet(), self.wallet());
        for (j, o) in self.positions().iter().enumerate() {
            if j == index || o.mode() != MarginMode::Cross {
                continue;
            }
            let (inst, mark) = inputs(table, marks, o)?;
            let r = o.risk(inst, mark)?;
            liq = liq
                .checked_add(r.upnl)
                .and_then(|v| v.checked_sub(r.maintenance))
                .ok_or(overflow)?;
            bank = bank.checked_add(r.upnl).ok_or(overflow)?;
        }
        Ok(Base {
            for_liquidation: liq,
            for_bankruptcy: bank,
        })
    }

    /// Liquidation price of position `index` (see the module docs); `None` when it does not
    /// exist. Rounded against the account (up for a long, down for a short).
    pub fn liquidation_price(
        &self,
        index: usize,
        table: &InstrumentTable,
        marks: &MarkPrices,
    ) -> Result<Option<Money>, MarginError> {
        let base = self.price_base(index, table, marks)?;
        let p = &self.positions()[index];
        let (inst, _) = inputs(table, marks, p)?;
        let overflow = MarginError::Overflow {
            what: "liquidation price",
        };
        let cost_ceil =
            Money::from_scaled_ceil(p.cost(), inst.notional_decimals()).ok_or(overflow)?;
        let scale = wide::pow10(inst.qty_decimals + Rate::DECIMALS).ok_or(overflow)?;
        let q = u128::from(p.qty().0.unsigned_abs());
        let long = p.side() > 0;
        let mut best: Option<u128> = None;
        for tier in inst.tiers() {
            let n = base
                .for_liquidation
                .checked_add(tier.amount_floor)
                .and_then(|v| v.checked_sub(cost_ceil))
                .ok_or(overflow)?
                .to_bits();
            // Long: D = −|q|(1 − MMR) < 0, a positive root needs N < 0.
            // Short: D = |q|(1 + MMR) > 0, a positive root needs N > 0.
            let one = u128::from(Rate::ONE.0);
            let mmr = u128::from(tier.mmr.0);
            let (rate, round) = if long {
                (one - mmr, wide::Round::Up)
            } else {
                (one + mmr, wide::Round::Down)
            };
            let positive_root = if long { n < 0 } else { n > 0 };
            if !positive_root {
                if long {
                    continue;
                }
                return Ok(None);
            }
            let den = q.checked_mul(rate).ok_or(overflow)?;
            let root = wide::mul_div(n.unsigned_abs(), scale, den, round).ok_or(overflow)?;
            best = Some(match best {
                None => root,
                Some(b) if long => b.max(root),
                Some(b) => b.min(root),
            });
        }
        best.filter(|&b| b > 0)
            .map(|b| {
                i128::try_from(b)
                    .map(Money::from_bits)
                    .map_err(|_| overflow)
            })
            .transpose()
    }

    /// Bankruptcy price of position `index` (equity = 0); `None` when it does not exist.
    /// Rounded against the account (up for a long, down for a short).
    pub fn bankruptcy_price(
        &self,
        index: usize,
        table: &InstrumentTable,
        marks: &MarkPrices,
    ) -> Result<Option<Money>, MarginError> {
        let base = self.price_base(index, table, marks)?;
        self.bankruptcy_price_from(index, table, marks, base.for_bankruptcy)
    }

    /// `self.bankruptcy_price(index, table, marks).ok().flatten()`, bit for bit, for callers that
    /// need it for many accounts (ADL ranks every holder by it) and no error detail.
    ///
    /// `W''` needs only the other cross positions' uPnL, but [`Account::bankruptcy_price`] also
    /// computes their maintenance and initial margins (through the liquidation price's base), so
    /// it fails when those overflow. Here each margin's exact integer is computed (a tier lookup
    /// and a product, no division) and known not to overflow its conversion when below 2^79
    /// (then `·2^48` fits in 128 bits, and the conversion divides by 10^9 to 10^38); the sums are
    /// known not to overflow while the magnitudes summed stay below 2^126. Anything outside
    /// those bounds falls back to [`Account::bankruptcy_price`] itself.
    pub(crate) fn bankruptcy_price_lean(
        &self,
        index: usize,
        table: &InstrumentTable,
        marks: &MarkPrices,
    ) -> Option<Money> {
        const CONVERTS: u128 = 1 << 79;
        // Bound on the bits of a margin below `CONVERTS`: `2^79·2^48 / 10^9`, rounded up.
        const MARGIN_BITS: u128 = 1 << 98;
        const SUMS: u128 = 1 << 126;
        let p = self.positions().get(index)?;
        if p.mode() == MarginMode::Isolated {
            return self
                .bankruptcy_price_from(index, table, marks, p.isolated_margin())
                .ok()
                .flatten();
        }
        let full = || self.bankruptcy_price(index, table, marks).ok().flatten();
        let mut bank = self.wallet();
        // Bound on the magnitude of every partial sum of both of `price_base`'s balances.
        let mut bound = bank.to_bits().unsigned_abs();
        for (j, o) in self.positions().iter().enumerate() {
            if j == index || o.mode() != MarginMode::Cross {
                continue;
            }
            // The failures of `Position::risk`, in its order.
            let (inst, mark) = inputs(table, marks, o).ok()?;
            if mark.0 <= 0 {
                return None;
            }
            // Validated instruments have at most 33 margin decimals; 10^38 is the last to fit.
            if inst.margin_decimals() > 38 {
                return full();
            }
            let upnl = Money::from_scaled_floor(o.upnl_exact(mark), inst.notional_decimals())?;
            let notional = Instrument::notional(o.qty(), mark);
            let tier = &inst.tiers()[inst.tier_index(notional)];
            let mm = tier.maintenance_exact(notional)?;
            let im = tier.initial_exact(notional)?;
            if mm.unsigned_abs() >= CONVERTS || im.unsigned_abs() >= CONVERTS {
                return full();
            }
            bound = bound
                .saturating_add(upnl.to_bits().unsigned_abs())
                .saturating_add(MARGIN_BITS);
            if bound >= SUMS {
                return full();
            }
            bank = bank.checked_add(upnl)?;
        }
        self.bankruptcy_price_from(index, table, marks, bank)
            .ok()
            .flatten()
    }

    /// The bankruptcy price of position `index` given `W''` (see the module docs).
    fn bankruptcy_price_from(
        &self,
        index: usize,
        table: &InstrumentTable,
        marks: &MarkPrices,
        for_bankruptcy: Money,
    ) -> Result<Option<Money>, MarginError> {
        let p = &self.positions()[index];
        let (inst, _) = inputs(table, marks, p)?;
        let overflow = MarginError::Overflow {
            what: "bankruptcy price",
        };
        let cost_ceil =
            Money::from_scaled_ceil(p.cost(), inst.notional_decimals()).ok_or(overflow)?;
        let long = p.side() > 0;
        // Long: (C − W'')/|q|; short: (W'' − C)/|q|.
        let m = if long {
            cost_ceil.checked_sub(for_bankruptcy)
        } else {
            for_bankruptcy.checked_sub(cost_ceil)
        }
        .ok_or(overflow)?
        .to_bits();
        if m <= 0 {
            return Ok(None);
        }
        let round = if long {
            wide::Round::Up
        } else {
            wide::Round::Down
        };
        let scale = wide::pow10(inst.qty_decimals).ok_or(overflow)?;
        let q = u128::from(p.qty().0.unsigned_abs());
        let bits = wide::mul_div(m.unsigned_abs(), scale, q, round).ok_or(overflow)?;
        Ok(Some(Money::from_bits(
            i128::try_from(bits).map_err(|_| overflow)?,
        )))
    }
}

/// `price` rounded to the nearest multiple of the instrument's tick (ties away from zero), for
/// display. `None` for a negative price or on overflow.
pub fn to_tick_nearest(price: Money, inst: &Instrument) -> Option<Price> {
    if price.is_negative() {
        return None;
    }
    let tick = u128::try_from(inst.tick.0).ok()?;
    let per_tick = wide::pow10(inst.price_decimals)?.checked_mul(2)?;
    let twice = wide::mul_div(
        price.to_bits().unsigned_abs(),
        per_tick,
        tick.checked_mul(1u128 << MONEY_FRAC_BITS)?,
        wide::Round::Down,
    )?;
    let ticks = twice.checked_add(1)? / 2;
    i64::try_from(ticks.checked_mul(tick)?).ok().map(Price)
}

/// `price` rounded to a tick against a position of side `side` (`> 0` long: up; short: down).
pub fn to_tick_against(price: Money, inst: &Instrument, side: i8) -> Option<Price> {
    if price.is_negative() {
        return None;
    }
    let tick = u128::try_from(inst.tick.0).ok()?;
    let round = if side > 0 {
        wide::Round::Up
    } else {
        wide::Round::Down
    };
    let ticks = wide::mul_div(
        price.to_bits().unsigned_abs(),
        wide::pow10(inst.price_decimals)?,
        tick.checked_mul(1u128 << MONEY_FRAC_BITS)?,
        round,
    )?;
    i64::try_from(ticks.checked_mul(tick)?).ok().map(Price)
}

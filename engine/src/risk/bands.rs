//! Safe bands: turning a margin unit's buffer into per-instrument price intervals.
//!
//! ## The bound (proof sketch)
//! Take a margin unit (the cross part of an account, or one isolated position) with positions
//! `i` of signed quantity `q_i` at marks `p_i`. Its equity is `E = W + Σ (q_i·p_i − C_i)` and its
//! maintenance margin `MM = Σ M_i(|q_i|·p_i)`, where each `M_i(N) = N·m(N) − c(N)` is continuous,
//! non-decreasing and piecewise linear in the notional `N`, with slope `m(N)` (the tier's MMR)
//! non-decreasing in `N`. Both are sums of one term per position, so a move of each price `p_i`
//! by `δ_i` changes any buffer `X = E − k·MM` (`k > 0`) by the sum of per-position changes
//! `ΔX_i = q_i·δ_i − k·(M_i(|q_i|(p_i+δ_i)) − M_i(|q_i|·p_i))`, each bounded as follows, with
//! `m_up` the largest MMR the notional can reach within the band and `m_cur` the current one:
//!
//! | position | move   | worst `ΔX_i` (loss)                 | best `ΔX_i` (gain)           |
//! |----------|--------|-------------------------------------|------------------------------|
//! | long     | down δ | `≥ −|q|·δ`                          | `≤ −|q|·δ·(1 − k·m_cur)`     |
//! | long     | up δ   | `≥ −|q|·δ·max(0, k·m_up − 1)`       | `≤ |q|·δ`                    |
//! | short    | up δ   | `≥ −|q|·δ·(1 + k·m_up)`             | `≤ 0`                        |
//! | short    | down δ | `≥ 0`                               | `≤ |q|·δ·(1 + k·m_cur)`      |
//!
//! So if the buffer is split into shares `s_i ≥ 0` with `Σ s_i < X`, and each price stays within
//! `s_i / rate` of where it was (per direction, `rate` from the table), the buffer stays positive:
//! the unit's state cannot change while every price stays inside its band. Two buffers are used:
//! - a unit not under margin call watches `X_call = E − MM/L` (`k = 1/L`, `L` the call level):
//!   while it is positive, `MM/E < L` and `E > MM`: neither a call nor a liquidation is possible;
//! - a unit under margin call watches `X_liq = E − MM` (`k = 1`) for liquidation, and the re-arm
//!   deficit `D = MM/R − E` (`R` the re-arm level) with the *gain* column: while `D ≥ 0` the ratio
//!   stays at or above `R` and the call is not re-armed.
//!
//! ## Rounding
//! Every step rounds toward a narrower band: buffers are computed from the evaluator's equity
//! (rounded down) and MM (rounded up) and reduced by `n·(2 + ⌈1/level⌉) + 4` ulp to absorb the
//! evaluator's own rounding at the new prices (each of `E` and `MM` errs by at most `n` ulp); shares, unit
//! conversions and the division by the rate round down; `m_up` is the MMR of the tier that the
//! notional plus the whole share could reach. An edge that would fall at or below zero is dropped
//! (prices are positive), an overflowing one is unbounded only when the rate is zero.

use crate::index::Band;
use crate::margin::{InstrumentTable, MarginError, MarginMode, MarkPrices, Money, Position, Rate};
use crate::num::{MONEY_FRAC_BITS, wide};

/// What a banded unit must not cross.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// Not under margin call: band until the ratio could reach the call level.
    Call {
        /// The margin-call level `L` (MM / equity).
        level: Rate,
    },
    /// Under margin call: band until liquidation could start or the call could re-arm.
    Called {
        /// The re-arm level `R` (< `L`).
        rearm: Rate,
    },
}

/// One position as the band computation sees it.
#[derive(Debug, Clone, Copy)]
struct Leg {
    instrument: u32,
    qty_abs: u128,
    long: bool,
    mark: i64,
    notional: i128,
    notional_decimals: u32,
    weight: u128,
}

/// Reusable scratch space, so banding allocates nothing once warm.
#[derive(Debug, Default)]
pub struct BandScratch {
    legs: Vec<Leg>,
}

const E9: u128 = 1_000_000_000;

/// Computes the bands of a unit from its positions (those of `mode`; for an isolated unit pass
/// the one position) and its evaluated summary, appending one [`Band`] per position to `out`.
/// `weights[i]` scales instrument `i`'s share of the buffer (10^9 = 1; e.g. its volatility);
/// missing entries count as 1.
#[allow(clippy::too_many_arguments)]
pub fn compute(
    table: &InstrumentTable,
    marks: &MarkPrices,
    weights: &[u64],
    positions: &[Position],
    mode: MarginMode,
    equity: Money,
    maintenance: Money,
    watch: Watch,
    scratch: &mut BandScratch,
    out: &mut Vec<Band>,
) -> Result<(), MarginError> {
    let overflow = |what| MarginError::Overflow { what };
    scratch.legs.clear();
    for p in positions.iter().filter(|p| p.mode() == mode) {
        let id = p.instrument();
        let inst = table
            .get(id)
            .ok_or(MarginError::UnknownInstrument { instrument: id.0 })?;
        let mark = marks
            .get(id)
            .ok_or(MarginError::NoMark { instrument: id.0 })?;
        let notional = crate::margin::Instrument::notional(p.qty(), mark);
        let nd = inst.notional_decimals();
        // Weight: the notional as money bits, times the instrument's weight.
        let w_money = wide::mul_div(
            notional.unsigned_abs(),
            1u128 << MONEY_FRAC_BITS,
            wide::pow10(nd).ok_or(overflow("band weight"))?,
            wide::Round::Down,
        )
        .ok_or(overflow("band weight"))?;
        let scale = weights.get(id.0 as usize).copied().unwrap_or(E9 as u64);
        let weight = wide::mul_div(w_money, u128::from(scale), E9, wide::Round::Down)
            .ok_or(overflow("band weight"))?
            .max(1);
        scratch.legs.push(Leg {
            instrument: id.0,
            qty_abs: u128::from(p.qty().0.unsigned_abs()),
            long: p.qty().0 > 0,
            mark: mark.0,
            notional,
            notional_decimals: nd,
            weight,
        });
    }
    if scratch.legs.is_empty() {
        return Ok(());
    }
    // Slack for the evaluator's rounding at the new prices: E errs by ≤ n ulp, MM by ≤ n ulp,
    // and MM/level by ≤ n·⌈1/level⌉ ulp; 4 more for the divisions here.
    let n = scratch.legs.len() as i128;
    let level = match watch {
        Watch::Call { level } => level,
        Watch::Called { rearm } => rearm,
    };
    let inv_level = E9.div_ceil(u128::from(level.0.max(1))) as i128;
    let margin = Money::from_bits(n * (2 + inv_level) + 4);
    let total_weight: u128 = scratch.legs.iter().map(|l| l.weight).sum();

    // The watched buffers, clamped at zero (a zero share gives a zero-width side).
    let (loss_k, loss_buffer, gain) = match watch {
        Watch::Call { level } => {
            let mm_over_l = div_rate(maintenance, level, wide::Round::Up)?;
            (Some(level), sub_clamped(equity, mm_over_l, margin), None)
        }
        Watch::Called { rearm } => {
            let mm_over_r = div_rate(maintenance, rearm, wide::Round::Down)?;
            (
                None,
                sub_clamped(equity, maintenance, margin),
                Some((rearm, sub_clamped(mm_over_r, equity, margin))),
            )
        }
    };

    for leg in &scratch.legs {
        let inst = table
            .get(crate::margin::InstrumentId(leg.instrument))
            .ok_or(MarginError::UnknownInstrument {
                instrument: leg.instrument,
            })?;
        let tiers = inst.tiers();
        let share = share_of(loss_buffer, leg.weight, total_weight)?;
        let share_units = money_to_units_floor(share, leg.notional_decimals)?;
        let reach = leg.notional.saturating_add(share_units as i128);
        let m_up = tiers[inst.tier_index(reach)].mmr.0 as u128;
        let m_top = tiers[tiers.len() - 1].mmr.0 as u128;
        let m_cur = tiers[inst.tier_index(leg.notional)].mmr.0 as u128;
        // k·m in 10^-9 units, rounded up (a larger rate narrows the band).
        let km = |m: u128, k: Option<Rate>| -> u128 {
            match k {
                None => m,
                Some(level) => (m * E9).div_ceil(u128::from(level.0.max(1))),
            }
        };
        // Loss rates (down, up) per unit of |q|, 10^-9 units.
        let (loss_down, loss_up) = if leg.long {
            (E9, km(m_top, loss_k).saturating_sub(E9))
        } else {
            (0, E9 + km(m_up, loss_k))
        };
        let mut down = reach_of(share_units, leg.qty_abs, loss_down);
        let mut up = reach_of(share_units, leg.qty_abs, loss_up);
        if let Some((rearm, deficit)) = gain {
            let g_share = share_of(deficit, leg.weight, total_weight)?;
            let g_units = money_to_units_floor(g_share, leg.notional_decimals)?;
            let krm = km(m_cur, Some(rearm));
            let (gain_down, gain_up) = if leg.long {
                (krm.saturating_sub(E9), E9)
            } else {
                (E9 + krm, 0)
            };
            down = down.min(reach_of(g_units, leg.qty_abs, gain_down));
            up = up.min(reach_of(g_units, leg.qty_abs, gain_up));
        }
        let lo = if down == u128::MAX {
            i64::MIN
        } else {
            match i64::try_from(down)
                .ok()
                .and_then(|d| leg.mark.checked_sub(d))
            {
                Some(lo) if lo > 0 => lo,
                _ => i64::MIN,
            }
        };
        let hi = if up == u128::MAX {
            i64::MAX
        } else {
            i64::try_from(up)
                .ok()
                .and_then(|u| leg.mark.checked_add(u))
                .unwrap_or(i64::MAX)
        };
        out.push(Band {
            instrument: leg.instrument,
            lo,
            hi,
        });
    }
    Ok(())
}

/// `a − b − margin`, or zero when that is not positive.
fn sub_clamped(a: Money, b: Money, margin: Money) -> Money {
    a.checked_sub(b)
        .and_then(|d| d.checked_sub(margin))
        .filter(|d| d.is_positive())
        .unwrap_or(Money::ZERO)
}

/// `amount / rate` for a non-negative amount, rounded as asked.
fn div_rate(amount: Money, rate: Rate, round: wide::Round) -> Result<Money, MarginError> {
    let bits = amount.to_bits().max(0).unsigned_abs();
    let q = wide::mul_div(bits, E9, u128::from(rate.0.max(1)), round)
        .and_then(|q| i128::try_from(q).ok())
        .ok_or(MarginError::Overflow {
            what: "margin / level",
        })?;
    Ok(Money::from_bits(q))
}

/// `buffer · weight / total`, rounded down.
fn share_of(buffer: Money, weight: u128, total: u128) -> Result<Money, MarginError> {
    let bits = wide::mul_div(
        buffer.to_bits().max(0).unsigned_abs(),
        weight,
        total.max(1),
        wide::Round::Down,
    )
    .and_then(|q| i128::try_from(q).ok())
    .ok_or(MarginError::Overflow { what: "band share" })?;
    Ok(Money::from_bits(bits))
}

/// A non-negative amount of money in `10^-decimals` units, rounded down.
fn money_to_units_floor(amount: Money, decimals: u32) -> Result<u128, MarginError> {
    let pow = wide::pow10(decimals).ok_or(MarginError::Overflow { what: "band units" })?;
    wide::mul_div(
        amount.to_bits().max(0).unsigned_abs(),
        pow,
        1u128 << MONEY_FRAC_BITS,
        wide::Round::Down,
    )
    .ok_or(MarginError::Overflow { what: "band units" })
}

/// How far (price units) the price may move when each unit of move costs `qty · rate / 10^9`
/// (notional units) and `budget` notional units are available; `u128::MAX` when the rate is zero.
fn reach_of(budget: u128, qty_abs: u128, rate_e9: u128) -> u128 {
    if rate_e9 == 0 {
        return u128::MAX;
    }
    match qty_abs.checked_mul(rate_e9) {
        Some(den) if den > 0 => wide::mul_div(budget, E9, den, wide::Round::Down).unwrap_or(0),
        _ => 0,
    }
}

//! Numbers of the margin model: exact scaled-integer prices, quantities and rates, and fixed-point
//! money with directed rounding.
//!
//! ## Why two kinds of number
//! Binary fixed point cannot hold `0.1` exactly, and exchanges publish prices and quantities as
//! decimals. So **prices and quantities stay exact** as integers scaled by the instrument's power of
//! ten, exactly as on the wire: [`Price`] counts `10^-price_decimals`, [`Qty`] counts
//! `10^-qty_decimals`. Their products (notional, position cost `Σ qty·price`) are exact `i128`
//! counts of `10^-(price_decimals + qty_decimals)`. **Rates** (MMR, IMR, fee rates, the margin-call
//! level) are exact [`Rate`]s counting `10^-9`.
//!
//! **Money** (wallet, PnL, margin, equity, maintenance margin) is [`Money`], a newtype over the
//! `fixed` crate's `I80F48`: 80 integer bits (±6·10^23) and 48 fractional bits (one unit in the last
//! place, "ulp", is 2^-48 ≈ 3.6·10^-15). An exact scaled integer becomes `Money` through exactly one
//! rounding, whose direction is in the function's name (`_floor`, `_ceil`); the margin model always
//! picks the direction that goes against the account (equity down, maintenance margin up).
//! Addition and subtraction of `Money` are exact (fixed point), checked for overflow.
//!
//! ## Arithmetic rules
//! - No plain `*`, `/`, `+` on `Money`: `I80F48`'s operators wrap in release builds. Every operation
//!   is `checked_*` and overflow surfaces as `None`, which callers turn into a typed error.
//! - Conversions use [`wide::mul_div`] (a 256-bit intermediate), so they never overflow silently
//!   and round once.
//! - `f64` appears only in [`Money::to_f64_lossy`], for display and plots.

pub mod decimal;
pub mod wide;

use fixed::types::I80F48;

pub use decimal::{
    DecimalError, Excess, Scaled, format_scaled, format_scaled_trimmed, parse_scaled,
    parse_scaled_rounded, parse_scaled_with,
};
use wide::{Round, mul_div, pow10};

/// A price, in units of `10^-price_decimals` of its instrument (exact, as on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Price(pub i64);

/// A signed quantity (positive long, negative short), in units of `10^-qty_decimals` of its
/// instrument (exact, as on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Qty(pub i64);

/// A non-negative rate (MMR, IMR, fee rate, call level), in units of `10^-9` (exact).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rate(pub u64);

impl Rate {
    /// Decimal places of a rate.
    pub const DECIMALS: u32 = 9;
    /// One, i.e. 100 %.
    pub const ONE: Rate = Rate(1_000_000_000);

    /// Parses a decimal rate exactly (at most 9 decimal places, not negative).
    pub fn parse(text: &str) -> Result<Rate, DecimalError> {
        let v = parse_scaled(text, Self::DECIMALS)?;
        u64::try_from(v)
            .map(Rate)
            .map_err(|_| DecimalError::Malformed {
                text: text.to_string(),
            })
    }

    /// The rate as decimal text without trailing zeros (e.g. `"0.004"`).
    pub fn to_decimal_string(self) -> String {
        format_scaled_trimmed(i128::from(self.0), Self::DECIMALS)
    }
}

/// An amount of the settlement currency (e.g. USDT), in binary fixed point (`I80F48`).
///
/// Invariant: none beyond `I80F48`'s range; every arithmetic operation is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Money(I80F48);

/// Fractional bits of [`Money`].
pub const MONEY_FRAC_BITS: u32 = 48;

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(I80F48::ZERO);
    /// The smallest positive amount, 2^-48.
    pub const ULP: Money = Money(I80F48::DELTA);
    /// The largest amount.
    pub const MAX: Money = Money(I80F48::MAX);

    /// From raw `I80F48` bits (value = bits / 2^48).
    pub const fn from_bits(bits: i128) -> Money {
        Money(I80F48::from_bits(bits))
    }

    /// Raw `I80F48` bits (value = bits / 2^48).
    pub const fn to_bits(self) -> i128 {
        self.0.to_bits()
    }

    /// The underlying fixed-point value.
    pub const fn to_fixed(self) -> I80F48 {
        self.0
    }

    /// A whole number of currency units (exact).
    pub fn from_int(v: i64) -> Money {
        Money(I80F48::from_num(v))
    }

    /// `units · 10^-decimals`, rounded toward −∞; `None` if out of range.
    pub fn from_scaled_floor(units: i128, decimals: u32) -> Option<Money> {
        Self::from_scaled(units, decimals, units < 0)
    }

    /// `units · 10^-decimals`, rounded toward +∞; `None` if out of range.
    pub fn from_scaled_ceil(units: i128, decimals: u32) -> Option<Money> {
        Self::from_scaled(units, decimals, units > 0)
    }

    fn from_scaled(units: i128, decimals: u32, away_from_zero: bool) -> Option<Money> {
        let round = if away_from_zero {
            Round::Up
        } else {
            Round::Down
        };
        let mag = mul_div(
            units.unsigned_abs(),
            1u128 << MONEY_FRAC_BITS,
            pow10(decimals)?,
            round,
        )?;
        signed_bits(mag, units < 0).map(Money::from_bits)
    }

    /// This amount in `10^-decimals` units, rounded toward −∞.
    pub fn to_scaled_floor(self, decimals: u32) -> Option<i128> {
        let neg = self.to_bits() < 0;
        self.to_scaled(decimals, if neg { Round::Up } else { Round::Down })
    }

    /// This amount in `10^-decimals` units, rounded toward +∞.
    pub fn to_scaled_ceil(self, decimals: u32) -> Option<i128> {
        let neg = self.to_bits() < 0;
        self.to_scaled(decimals, if neg { Round::Down } else { Round::Up })
    }

    /// This amount in `10^-decimals` units, rounded to nearest, ties away from zero.
    pub fn to_scaled_nearest(self, decimals: u32) -> Option<i128> {
        let bits = self.to_bits();
        let twice = mul_div(
            bits.unsigned_abs(),
            pow10(decimals)?.checked_mul(2)?,
            1u128 << MONEY_FRAC_BITS,
            Round::Down,
        )?;
        // floor(x + 1/2) = floor((floor(2x) + 1) / 2) on magnitudes.
        let mag = twice.checked_add(1)? / 2;
        let v = i128::try_from(mag).ok()?;
        Some(if bits < 0 { -v } else { v })
    }

    fn to_scaled(self, decimals: u32, round: Round) -> Option<i128> {
        let bits = self.to_bits();
        let mag = mul_div(
            bits.unsigned_abs(),
            pow10(decimals)?,
            1u128 << MONEY_FRAC_BITS,
            round,
        )?;
        let v = i128::try_from(mag).ok()?;
        Some(if bits < 0 { -v } else { v })
    }

    /// Exact sum, `None` on overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// Exact difference, `None` on overflow.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// Exact negation, `None` on overflow.
    pub fn checked_neg(self) -> Option<Money> {
        self.0.checked_neg().map(Money)
    }

    /// `self / other` rounded toward +∞ (for ratios shown to people and compared conservatively);
    /// `None` when `other` is zero or the quotient overflows.
    pub fn checked_div_ceil(self, other: Money) -> Option<Money> {
        let (a, b) = (self.to_bits(), other.to_bits());
        let neg = (a < 0) != (b < 0);
        let round = if neg { Round::Down } else { Round::Up };
        let mag = mul_div(
            a.unsigned_abs(),
            1u128 << MONEY_FRAC_BITS,
            b.unsigned_abs(),
            round,
        )?;
        signed_bits(mag, neg).map(Money::from_bits)
    }

    /// True when strictly below zero.
    pub const fn is_negative(self) -> bool {
        self.0.is_negative()
    }

    /// True when strictly above zero.
    pub const fn is_positive(self) -> bool {
        self.0.is_positive()
    }

    /// Decimal text with `decimals` places, rounded toward −∞ (`"?"` if out of range).
    pub fn to_string_floor(self, decimals: u32) -> String {
        self.to_scaled_floor(decimals)
            .map_or_else(|| "?".to_string(), |v| format_scaled(v, decimals))
    }

    /// Decimal text with `decimals` places, rounded toward +∞ (`"?"` if out of range).
    pub fn to_string_ceil(self, decimals: u32) -> String {
        self.to_scaled_ceil(decimals)
            .map_or_else(|| "?".to_string(), |v| format_scaled(v, decimals))
    }

    /// Decimal text with `decimals` places, rounded to nearest (ties away from zero), for display
    /// (`"?"` if out of range).
    pub fn to_string_nearest(self, decimals: u32) -> String {
        self.to_scaled_nearest(decimals)
            .map_or_else(|| "?".to_string(), |v| format_scaled(v, decimals))
    }

    /// `self / other` in `10^-decimals` units rounded to nearest, for display; `None` when
    /// `other` is zero or on overflow.
    pub fn ratio_scaled_nearest(self, other: Money, decimals: u32) -> Option<i128> {
        let (a, b) = (self.to_bits(), other.to_bits());
        let twice = mul_div(
            a.unsigned_abs(),
            pow10(decimals)?.checked_mul(2)?,
            b.unsigned_abs(),
            Round::Down,
        )?;
        let v = i128::try_from(twice.checked_add(1)? / 2).ok()?;
        Some(if (a < 0) != (b < 0) { -v } else { v })
    }

    /// An `f64` approximation, for display and plots only, never for decisions.
    pub fn to_f64_lossy(self) -> f64 {
        self.0.to_num::<f64>()
    }
}

/// `±mag` as `i128` bits, `None` when it does not fit.
fn signed_bits(mag: u128, negative: bool) -> Option<i128> {
    if negative {
        0i128.checked_sub_unsigned(mag)
    } else {
        i128::try_from(mag).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn scaled_conversions_round_in_the_named_direction() {
        let tenth_floor = Money::from_scaled_floor(1, 1).unwrap();
        let tenth_ceil = Money::from_scaled_ceil(1, 1).unwrap();
        assert_eq!(tenth_ceil.to_bits() - tenth_floor.to_bits(), 1);
        let minus_floor = Money::from_scaled_floor(-1, 1).unwrap();
        assert_eq!(minus_floor.to_bits(), -tenth_ceil.to_bits());
        assert_eq!(Money::from_scaled_floor(500, 0), Some(Money::from_int(500)));
        assert_eq!(Money::from_int(-3).to_scaled_floor(2), Some(-300));
        assert_eq!(tenth_floor.to_scaled_nearest(2), Some(10));
        assert_eq!(tenth_floor.to_scaled_floor(1), Some(0));
        assert_eq!(tenth_floor.to_scaled_ceil(1), Some(1));
        assert_eq!(Money::from_scaled_floor(i128::MAX, 0), None);
    }

    proptest! {
        #[test]
        fn floor_and_ceil_bracket_the_exact_value(units in any::<i64>(), decimals in 0u32..18) {
            let lo = Money::from_scaled_floor(i128::from(units), decimals).unwrap();
            let hi = Money::from_scaled_ceil(i128::from(units), decimals).unwrap();
            // lo ≤ units/10^d ≤ hi  ⇔  lo_bits·10^d ≤ units·2^48 ≤ hi_bits·10^d, checked in i128
            // (|units| < 2^63, so units·2^48 < 2^111).
            let exact = i128::from(units) << 48;
            let p = 10i128.pow(decimals);
            prop_assert!(lo.to_bits().checked_mul(p).is_none_or(|v| v <= exact));
            prop_assert!(hi.to_bits().checked_mul(p).is_none_or(|v| v >= exact));
            prop_assert!(hi.to_bits() - lo.to_bits() <= 1);
        }
    }
}

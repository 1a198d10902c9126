//! Instruments, maintenance tiers and the per-instrument tables the evaluator reads.
//!
//! A tier table is validated once when built (ascending caps, MMR non-decreasing and < 1,
//! IMR ≥ MMR, maintenance amounts continuous at every border) and stored with everything
//! precomputed in exact integers, so tier lookup and maintenance margin need no division.

use std::collections::HashMap;

use thiserror::Error;

use crate::num::{Money, Price, Qty, Rate, format_scaled_trimmed};

/// Index of an instrument in its [`InstrumentTable`] (the order of the scenario's list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct InstrumentId(pub u32);

impl InstrumentId {
    /// As a `usize` index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Perpetual swap or dated future.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstrumentKind {
    /// No expiry; funding keeps it near the index.
    Perpetual,
    /// Settles at `expiry_unix_s` (seconds since 1970-01-01T00:00:00Z).
    Future {
        /// Expiry, seconds since the Unix epoch, UTC.
        expiry_unix_s: i64,
    },
}

/// Most tiers an instrument may have (tier indices are `u8`).
pub const MAX_TIERS: usize = 255;

/// Largest `price_decimals` or `qty_decimals` accepted (keeps every exact product inside `i128`).
pub const MAX_DECIMALS: u32 = 12;

/// One maintenance tier, in exact integers.
///
/// Units: `max_notional` counts `10^-notional_decimals` (notional decimals = price + qty decimals
/// of the instrument); `amount` counts `10^-(notional_decimals + 9)`, the unit of
/// `notional · rate`. Invariant (checked by [`Instrument::new`]): tier `n`'s amount is
/// `floor_n·(MMR_n − MMR_{n−1}) + amount_{n−1}` with `floor_n` the previous cap, so
/// maintenance margin is continuous at every border.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    /// Largest notional of this tier (inclusive), `10^-notional_decimals` units.
    pub max_notional: i128,
    /// Maintenance margin rate.
    pub mmr: Rate,
    /// Initial margin rate.
    pub imr: Rate,
    /// Maintenance amount, `10^-(notional_decimals + 9)` units.
    pub amount: i128,
    /// The maintenance amount as money, rounded down.
    pub amount_floor: Money,
}

impl Tier {
    /// Exact maintenance margin `notional·MMR − amount` of a notional in this tier, in
    /// `10^-(notional_decimals + 9)` units; `None` on overflow.
    pub fn maintenance_exact(&self, notional: i128) -> Option<i128> {
        notional
            .checked_mul(i128::from(self.mmr.0))?
            .checked_sub(self.amount)
    }

    /// Exact initial margin `notional·IMR`, in `10^-(notional_decimals + 9)` units.
    pub fn initial_exact(&self, notional: i128) -> Option<i128> {
        notional.checked_mul(i128::from(self.imr.0))
    }
}

/// A tier as written in a scenario, before validation (exact integers, units as in [`Tier`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierSpec {
    /// Optional lower bound as written (`min_notional`); must equal the previous cap.
    pub min_notional: Option<i128>,
    /// Cap, `10^-notional_decimals` units.
    pub max_notional: i128,
    /// Maintenance margin rate.
    pub mmr: Rate,
    /// Initial margin rate.
    pub imr: Rate,
    /// Maintenance amount if given, `10^-(notional_decimals + 9)` units.
    pub amount: Option<i128>,
}

/// Everything needed to build an [`Instrument`].
#[derive(Debug, Clone)]
pub struct InstrumentSpec {
    /// Symbol, e.g. `BTCUSDT`.
    pub symbol: String,
    /// Perpetual or future.
    pub kind: InstrumentKind,
    /// Decimal places of prices.
    pub price_decimals: u32,
    /// Decimal places of quantities.
    pub qty_decimals: u32,
    /// Price tick (≥ 1 unit).
    pub tick: Price,
    /// Minimum order quantity (≥ 1 unit).
    pub min_qty: Qty,
    /// Liquidation fee rate.
    pub liquidation_fee: Rate,
    /// Tiers in ascending order of cap.
    pub tiers: Vec<TierSpec>,
}

/// Why an instrument definition was refused. Each variant says what is expected instead.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InstrumentError {
    /// Decimal places out of range.
    #[error("{field} = {value} is out of range: expected 0..={max}")]
    Decimals {
        /// `price_decimals` or `qty_decimals`.
        field: &'static str,
        /// Value given.
        value: u32,
        /// Largest accepted.
        max: u32,
    },
    /// Tick or minimum quantity not positive.
    #[error("{field} must be positive")]
    NotPositive {
        /// Field name.
        field: &'static str,
    },
    /// No tier at all.
    #[error("tiers is empty: give at least one tier")]
    NoTiers,
    /// More tiers than a tier index (`u8`) can name.
    #[error("{count} tiers: at most 255 are supported")]
    TooManyTiers {
        /// Tiers given.
        count: usize,
    },
    /// A cap not above the previous one (tiers unordered or overlapping).
    #[error(
        "tier {tier}: max_notional {max} is not above the previous tier's {previous}: tiers must be listed in strictly ascending order of max_notional, without overlap"
    )]
    Unordered {
        /// Tier index (0-based).
        tier: usize,
        /// Its cap.
        max: String,
        /// The previous cap.
        previous: String,
    },
    /// A `min_notional` that is not the previous cap (overlap or gap).
    #[error(
        "tier {tier}: min_notional {given} overlaps or leaves a gap: expected {expected} (the previous tier's max_notional)"
    )]
    Overlap {
        /// Tier index.
        tier: usize,
        /// Bound given.
        given: String,
        /// Bound expected.
        expected: String,
    },
    /// A rate outside its range.
    #[error("tier {tier}: {field} = {value} is out of range: expected {expected}")]
    Rate {
        /// Tier index.
        tier: usize,
        /// `mmr` or `imr`.
        field: &'static str,
        /// Value given.
        value: String,
        /// The accepted range.
        expected: &'static str,
    },
    /// A maintenance amount that breaks continuity at the tier's lower border.
    #[error(
        "tier {tier}: maintenance_amount {given} makes maintenance margin jump at the border: expected {expected} (floor × (MMR − previous MMR) + previous amount), or leave it out"
    )]
    Discontinuous {
        /// Tier index.
        tier: usize,
        /// Amount given.
        given: String,
        /// Amount expected.
        expected: String,
    },
    /// Arithmetic would overflow.
    #[error("tier {tier}: the numbers are too large to compute with exactly")]
    Overflow {
        /// Tier index.
        tier: usize,
    },
}

/// A validated instrument with precomputed tier constants.
#[derive(Debug, Clone)]
pub struct Instrument {
    /// Symbol, e.g. `BTCUSDT`.
    pub symbol: Box<str>,
    /// Perpetual or future.
    pub kind: InstrumentKind,
    /// Decimal places of prices.
    pub price_decimals: u32,
    /// Decimal places of quantities.
    pub qty_decimals: u32,
    /// Price tick.
    pub tick: Price,
    /// Minimum order quantity.
    pub min_qty: Qty,
    /// Liquidation fee rate.
    pub liquidation_fee: Rate,
    /// Invariant: non-empty, caps strictly ascending, MMR non-decreasing and < 1, IMR ≥ MMR,
    /// amounts continuous (see [`Tier`]).
    tiers: Box<[Tier]>,
}

impl Instrument {
    /// Validates a definition and precomputes its tiers.
    pub fn new(spec: InstrumentSpec) -> Result<Instrument, InstrumentError> {
        for (field, value) in [
            ("price_decimals", spec.price_decimals),
            ("qty_decimals", spec.qty_decimals),
        ] {
            if value > MAX_DECIMALS {
                return Err(InstrumentError::Decimals {
                    field,
                    value,
                    max: MAX_DECIMALS,
                });
            }
        }
        if spec.tick.0 <= 0 {
            return Err(InstrumentError::NotPositive { field: "tick_size" });
        }
        if spec.min_qty.0 <= 0 {
            return Err(InstrumentError::NotPositive { field: "min_qty" });
        }
        if spec.tiers.is_empty() {
            return Err(InstrumentError::NoTiers);
        }
        if spec.tiers.len() > MAX_TIERS {
            return Err(InstrumentError::TooManyTiers {
                count: spec.tiers.len(),
            });
        }
        let nd = spec.price_decimals + spec.qty_decimals;
        let show_notional = |v: i128| format_scaled_trimmed(v, nd);
        let show_amount = |v: i128| format_scaled_trimmed(v, nd + Rate::DECIMALS);
        let mut tiers = Vec::with_capacity(spec.tiers.len());
        let (mut floor, mut prev_mmr, mut prev_amount) = (0i128, 0u64, 0i128);
        for (i, t) in spec.tiers.iter().enumerate() {
            if t.max_notional <= floor {
                return Err(InstrumentError::Unordered {
                    tier: i,
                    max: show_notional(t.max_notional),
                    previous: show_notional(floor),
                });
            }
            if let Some(min) = t.min_notional
                && min != floor
            {
                return Err(InstrumentError::Overlap {
                    tier: i,
                    given: show_notional(min),
                    expected: show_notional(floor),
                });
            }
            let rate_err = |field, value: Rate, expected| InstrumentError::Rate {
                tier: i,
                field,
                value: value.to_decimal_string(),
                expected,
            };
            if t.mmr.0 == 0 || t.mmr >= Rate::ONE {
                return Err(rate_err("mmr", t.mmr, "0 < mmr < 1"));
            }
            if t.mmr.0 < prev_mmr {
                return Err(rate_err(
                    "mmr",
                    t.mmr,
                    "at least the previous tier's mmr (rates rise with notional)",
                ));
            }
            if t.imr < t.mmr || t.imr > Rate::ONE {
                return Err(rate_err("imr", t.imr, "mmr ≤ imr ≤ 1"));
            }
            let overflow = InstrumentError::Overflow { tier: i };
            let expected = floor
                .checked_mul(i128::from(t.mmr.0 - prev_mmr))
                .and_then(|v| v.checked_add(prev_amount))
                .ok_or(overflow.clone())?;
            if let Some(given) = t.amount
                && given != expected
            {
                return Err(InstrumentError::Discontinuous {
                    tier: i,
                    given: show_amount(given),
                    expected: show_amount(expected),
                });
            }
            // The maximum maintenance margin must stay exact: cap·rate fits in i128.
            t.max_notional
                .checked_mul(i128::from(Rate::ONE.0))
                .ok_or(overflow.clone())?;
            let amount_floor =
                Money::from_scaled_floor(expected, nd + Rate::DECIMALS).ok_or(overflow)?;
            tiers.push(Tier {
                max_notional: t.max_notional,
                mmr: t.mmr,
                imr: t.imr,
                amount: expected,
                amount_floor,
            });
            (floor, prev_mmr, prev_amount) = (t.max_notional, t.mmr.0, expected);
        }
        Ok(Instrument {
            symbol: spec.symbol.into_boxed_str(),
            kind: spec.kind,
            price_decimals: spec.price_decimals,
            qty_decimals: spec.qty_decimals,
            tick: spec.tick,
            min_qty: spec.min_qty,
            liquidation_fee: spec.liquidation_fee,
            tiers: tiers.into_boxed_slice(),
        })
    }

    /// Decimal places of a notional (`price_decimals + qty_decimals`).
    pub const fn notional_decimals(&self) -> u32 {
        self.price_decimals + self.qty_decimals
    }

    /// Decimal places of `notional · rate` (maintenance amounts, exact margins).
    pub const fn margin_decimals(&self) -> u32 {
        self.notional_decimals() + Rate::DECIMALS
    }

    /// The tiers, ascending.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// Index of the tier of a notional (`10^-notional_decimals` units, sign ignored): the first
    /// tier whose cap is ≥ it; notionals above the last cap use the last tier.
    pub fn tier_index(&self, notional: i128) -> usize {
        let n = notional.abs();
        self.tiers
            .iter()
            .position(|t| n <= t.max_notional)
            .unwrap_or(self.tiers.len() - 1)
    }

    /// The largest maintenance margin rate (the last tier's): the steepest slope of maintenance
    /// margin in notional, for safe price bands.
    pub fn max_mmr(&self) -> Rate {
        self.tiers.last().map_or(Rate(0), |t| t.mmr)
    }

    /// Exact notional `|qty|·price`, `10^-notional_decimals` units.
    pub fn notional(qty: Qty, price: Price) -> i128 {
        i128::from(qty.0).abs() * i128::from(price.0)
    }
}

/// The instruments of a scenario, indexed by [`InstrumentId`].
#[derive(Debug, Clone, Default)]
pub struct InstrumentTable {
    /// Invariant: `by_symbol[list[i].symbol] == InstrumentId(i)`.
    list: Vec<Instrument>,
    by_symbol: HashMap<Box<str>, InstrumentId>,
}

impl InstrumentTable {
    /// An empty table.
    pub fn new() -> InstrumentTable {
        InstrumentTable::default()
    }

    /// Appends an instrument; `None` when its symbol is already present.
    pub fn push(&mut self, instrument: Instrument) -> Option<InstrumentId> {
        if self.by_symbol.contains_key(&instrument.symbol) {
            return None;
        }
        let id = InstrumentId(u32::try_from(self.list.len()).ok()?);
        self.by_symbol.insert(instrument.symbol.clone(), id);
        self.list.push(instrument);
        Some(id)
    }

    /// The instrument with this id.
    pub fn get(&self, id: InstrumentId) -> Option<&Instrument> {
        self.list.get(id.index())
    }

    /// The id of a symbol.
    pub fn id_of(&self, symbol: &str) -> Option<InstrumentId> {
        self.by_symbol.get(symbol).copied()
    }

    /// Number of instruments.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when there is no instrument.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// All instruments in id order.
    pub fn iter(&self) -> impl Iterator<Item = (InstrumentId, &Instrument)> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, inst)| (InstrumentId(i as u32), inst))
    }
}

/// The mark price of every instrument, indexed by [`InstrumentId`]; `Price(0)` means "no mark yet".
#[derive(Debug, Clone, Default)]
pub struct MarkPrices {
    /// Invariant: every entry is ≥ 0; 0 = unset.
    marks: Vec<Price>,
}

impl MarkPrices {
    /// No marks for `count` instruments.
    pub fn new(count: usize) -> MarkPrices {
        MarkPrices {
            marks: vec![Price(0); count],
        }
    }

    /// Sets a mark; `false` (and nothing changes) when the price is not positive or the id is out
    /// of range.
    pub fn set(&mut self, id: InstrumentId, mark: Price) -> bool {
        match self.marks.get_mut(id.index()) {
            Some(slot) if mark.0 > 0 => {
                *slot = mark;
                true
            }
            _ => false,
        }
    }

    /// The mark, if set.
    pub fn get(&self, id: InstrumentId) -> Option<Price> {
        self.marks.get(id.index()).copied().filter(|p| p.0 > 0)
    }
}

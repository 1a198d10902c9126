//! Synthetic accounts and instruments for tests, benchmarks and `brink-accounts gen`.
//!
//! ## Accounts ([`AccountGen`], [`generate`], [`write`])
//! Each account gets `per_account` positions (at most the number of priced instruments) on
//! distinct instruments:
//! - side: long or short with equal probability;
//! - mode: cross with probability 0.7, isolated otherwise;
//! - notional: log-normal, median 2,000 currency units (σ = 1.2 in log space), at least the
//!   instrument's minimum quantity;
//! - entry: the mark moved by a normal relative move (σ = 2 %), on the tick;
//! - leverage: log-normal with median 10x and σ = 0.55 in log space, clamped to 1x–125x, so about
//!   80 % of positions lie between 5x and 20x; an isolated position's margin is notional/leverage,
//!   a cross account's wallet is Σ cross notional / leverage (one leverage per account).
//!
//! The same seed, table and marks always produce the same accounts. Floating point is used only
//! to draw the synthetic values; every stored value is an exact integer.
//!
//! ## Instruments ([`instruments`])
//! Instrument 0 is BTC-like (Binance's March-2021 BTCUSDT tiers, mark 50,000.00, price 2
//! decimals, quantity 3). The others have log-uniform marks between 0.1 and 5,000, decimals
//! chosen so that a tick is about 10^-4 of the mark or finer, and the BTC tiers with caps scaled
//! down 3x–100x and rates scaled up 1x–2.5x (smaller markets need more margin sooner).

use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};
use thiserror::Error;

use super::{BulkError, BulkPosition, BulkWriter, MONEY_DECIMALS};
use crate::margin::{
    Account, CallLevel, Instrument, InstrumentId, InstrumentKind, InstrumentSpec, InstrumentTable,
    MarginError, MarginMode, MarginStatus, MarkPrices, Position, TierSpec,
};
use crate::num::{Money, Price, Qty, Rate};

/// Why synthetic accounts could not be generated.
#[derive(Debug, Error)]
pub enum GenError {
    /// No instrument of the table has a mark price.
    #[error(
        "no instrument has a mark price: the generator needs one (set a [[price]] per instrument)"
    )]
    NoMarks,
    /// A distribution parameter was refused.
    #[error("bad distribution parameter: {0}")]
    Distribution(String),
    /// A generated position or account was refused by the margin model.
    #[error("account {account}: {source} (the instrument's decimals or mark are out of range)")]
    Margin {
        /// Account id.
        account: u64,
        /// Cause.
        source: MarginError,
    },
    /// Writing the bulk file failed.
    #[error(transparent)]
    Bulk(#[from] BulkError),
}

/// Scales of a priced instrument, precomputed.
#[derive(Debug, Clone, Copy)]
struct Priced {
    id: InstrumentId,
    mark: f64,
    price_scale: f64,
    qty_scale: f64,
    tick: i64,
    min_qty: i64,
}

/// Streams synthetic accounts (see the module docs).
#[derive(Debug)]
pub struct AccountGen {
    priced: Vec<Priced>,
    /// Partial Fisher–Yates state: the first `k` entries are an account's instruments.
    picks: Vec<usize>,
    k: usize,
    rng: StdRng,
    leverage: LogNormal<f64>,
    notional: LogNormal<f64>,
    drift: Normal<f64>,
    next_id: u64,
}

impl AccountGen {
    /// A generator over the priced instruments of `table`, `per_account` positions per account
    /// (capped at the number of priced instruments). Account ids start at 1.
    pub fn new(
        table: &InstrumentTable,
        marks: &MarkPrices,
        seed: u64,
        per_account: usize,
    ) -> Result<AccountGen, GenError> {
        let priced: Vec<Priced> = table
            .iter()
            .filter_map(|(id, inst)| {
                let mark = marks.get(id)?;
                let price_scale = 10f64.powi(inst.price_decimals as i32);
                Some(Priced {
                    id,
                    mark: mark.0 as f64 / price_scale,
                    price_scale,
                    qty_scale: 10f64.powi(inst.qty_decimals as i32),
                    tick: inst.tick.0,
                    min_qty: inst.min_qty.0,
                })
            })
            .collect();
        if priced.is_empty() {
            return Err(GenError::NoMarks);
        }
        let bad = |e: rand_distr::NormalError| GenError::Distribution(e.to_string());
        Ok(AccountGen {
            k: per_account.min(priced.len()),
            picks: (0..priced.len()).collect(),
            priced,
            rng: StdRng::seed_from_u64(seed),
            leverage: LogNormal::new(10f64.ln(), 0.55).map_err(bad)?,
            notional: LogNormal::new(2000f64.ln(), 1.2).map_err(bad)?,
            drift: Normal::new(0.0, 0.02).map_err(bad)?,
            next_id: 1,
        })
    }

    /// The next account as bulk records: fills `out` with its positions and returns its id and
    /// wallet in `10^-8` units.
    pub fn next_into(&mut self, out: &mut Vec<BulkPosition>) -> (u64, i64) {
        out.clear();
        let money_scale = 10f64.powi(MONEY_DECIMALS as i32);
        for i in 0..self.k {
            let j = self.rng.random_range(i..self.picks.len());
            self.picks.swap(i, j);
        }
        let lev_account = self.leverage.sample(&mut self.rng).clamp(1.0, 125.0);
        let mut cross_notional = 0f64;
        for &pick in &self.picks[..self.k] {
            let inst = self.priced[pick];
            let moved: f64 = self.drift.sample(&mut self.rng);
            let target = inst.mark * (1.0 + moved).max(0.05);
            let entry =
                ((target * inst.price_scale / inst.tick as f64).round() as i64).max(1) * inst.tick;
            let entry_f = entry as f64 / inst.price_scale;
            let qty_units = ((self.notional.sample(&mut self.rng) / entry_f * inst.qty_scale)
                .round() as i64)
                .max(inst.min_qty)
                .min(i64::MAX / 4);
            let qty = if self.rng.random_bool(0.5) {
                qty_units
            } else {
                -qty_units
            };
            let value = qty_units as f64 / inst.qty_scale * entry_f;
            let (mode, margin_units) = if self.rng.random_bool(0.3) {
                let lev = self.leverage.sample(&mut self.rng).clamp(1.0, 125.0);
                (MarginMode::Isolated, (value / lev * money_scale) as i64)
            } else {
                cross_notional += value;
                (MarginMode::Cross, 0)
            };
            out.push(BulkPosition {
                instrument: inst.id,
                mode,
                qty: Qty(qty),
                entry: Price(entry),
                margin_units,
            });
        }
        let id = self.next_id;
        self.next_id += 1;
        (id, (cross_notional / lev_account * money_scale) as i64)
    }

    /// The next account, built.
    pub fn next_account(&mut self, scratch: &mut Vec<BulkPosition>) -> Result<Account, GenError> {
        let (id, wallet_units) = self.next_into(scratch);
        to_account(id, wallet_units, scratch)
    }
}

/// Builds an [`Account`] from bulk records (money rounded down, as the loader does).
pub fn to_account(
    id: u64,
    wallet_units: i64,
    positions: &[BulkPosition],
) -> Result<Account, GenError> {
    let margin = |source| GenError::Margin {
        account: id,
        source,
    };
    let money = |units: i64| {
        Money::from_scaled_floor(i128::from(units), MONEY_DECIMALS).unwrap_or(Money::ZERO)
    };
    let mut account = Account::with_capacity(id, money(wallet_units), positions.len());
    for p in positions {
        let pos = Position::open(p.instrument, p.qty, p.entry, p.mode, money(p.margin_units))
            .map_err(margin)?;
        account.push_position(pos).map_err(margin)?;
    }
    Ok(account)
}

/// `count` synthetic accounts (ids 1..=count), `per_account` positions each.
pub fn generate(
    table: &InstrumentTable,
    marks: &MarkPrices,
    count: u64,
    seed: u64,
    per_account: usize,
) -> Result<Vec<Account>, GenError> {
    let mut g = AccountGen::new(table, marks, seed, per_account)?;
    let mut scratch = Vec::with_capacity(per_account);
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for _ in 0..count {
        out.push(g.next_account(&mut scratch)?);
    }
    Ok(out)
}

/// `count` synthetic accounts that load healthy (below `level` and above maintenance on every
/// margin unit at `marks`), as an exchange's book is between crashes: accounts the generator
/// draws already called or liquidatable are skipped, so ids ascend with gaps. Stops with fewer
/// accounts only if `100·count` draws did not find enough.
pub fn generate_healthy(
    table: &InstrumentTable,
    marks: &MarkPrices,
    count: u64,
    seed: u64,
    per_account: usize,
    level: CallLevel,
) -> Result<Vec<Account>, GenError> {
    let mut g = AccountGen::new(table, marks, seed, per_account)?;
    let mut scratch = Vec::with_capacity(per_account);
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut draws = 0u64;
    while (out.len() as u64) < count && draws < count.saturating_mul(100) {
        draws += 1;
        let account = g.next_account(&mut scratch)?;
        if account
            .evaluate(table, marks, level)
            .is_ok_and(|r| r.worst == MarginStatus::Healthy)
        {
            out.push(account);
        }
    }
    Ok(out)
}

/// Writes `count` synthetic accounts to the bulk file `path`.
pub fn write(
    path: &Path,
    table: &InstrumentTable,
    marks: &MarkPrices,
    count: u64,
    seed: u64,
    per_account: usize,
) -> Result<(), GenError> {
    let mut g = AccountGen::new(table, marks, seed, per_account)?;
    let mut w = BulkWriter::create(path, table)?;
    let mut buf = Vec::with_capacity(per_account);
    for _ in 0..count {
        let (id, wallet_units) = g.next_into(&mut buf);
        w.push(id, wallet_units, &buf)?;
    }
    w.finish()?;
    Ok(())
}

/// BTCUSDT's March-2021 tiers in currency units: (cap, MMR, IMR), rates in 10^-9.
const BTC_TIERS: [(i128, u64, u64); 6] = [
    (50_000, 4_000_000, 8_000_000),
    (250_000, 5_000_000, 10_000_000),
    (1_000_000, 10_000_000, 20_000_000),
    (10_000_000, 25_000_000, 50_000_000),
    (20_000_000, 50_000_000, 100_000_000),
    (50_000_000, 100_000_000, 200_000_000),
];

/// `n` synthetic perpetuals and their marks (see the module docs); `n = 0` gives empty ones.
pub fn instruments(n: usize, seed: u64) -> (InstrumentTable, MarkPrices) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut table = InstrumentTable::new();
    let mut marks = MarkPrices::new(n);
    for i in 0..n {
        let (symbol, mark, price_decimals, qty_decimals, cap_div, rate_mul) = if i == 0 {
            ("BTCUSDT".to_string(), 50_000.0, 2u32, 3u32, 1.0, 1.0)
        } else {
            // log-uniform 0.1 .. 5,000
            let mark: f64 = 10f64.powf(rng.random_range(-1.0..3.7));
            let mag = mark.log10().floor() as i32;
            let price_decimals = (4 - mag).clamp(2, 8) as u32;
            let qty_decimals = mag.clamp(0, 3) as u32;
            let cap_div = 10f64.powf(rng.random_range(0.5..2.0));
            let rate_mul = rng.random_range(1.0..2.5);
            (
                format!("SYN{i:03}USDT"),
                mark,
                price_decimals,
                qty_decimals,
                cap_div,
                rate_mul,
            )
        };
        let notional_scale = 10i128.pow(price_decimals + qty_decimals);
        let mut tiers = Vec::with_capacity(BTC_TIERS.len());
        let mut last_cap = 0i128;
        for (cap, mmr, imr) in BTC_TIERS {
            let cap_units = ((cap as f64 / cap_div) as i128 * notional_scale).max(last_cap + 1);
            last_cap = cap_units;
            tiers.push(TierSpec {
                min_notional: None,
                max_notional: cap_units,
                mmr: Rate((mmr as f64 * rate_mul) as u64),
                imr: Rate((imr as f64 * rate_mul) as u64),
                amount: None,
            });
        }
        let spec = InstrumentSpec {
            symbol,
            kind: InstrumentKind::Perpetual,
            price_decimals,
            qty_decimals,
            tick: Price(1),
            min_qty: Qty(1),
            liquidation_fee: Rate(5_000_000),
            tiers,
        };
        // The parameters above always satisfy `Instrument::new` (caps ascend, rates < 1,
        // IMR = 2·MMR); an instrument that did not would be left out rather than panic.
        if let Ok(inst) = Instrument::new(spec)
            && let Some(id) = table.push(inst)
        {
            let units = (mark * 10f64.powi(price_decimals as i32)).round() as i64;
            marks.set(id, Price(units.max(1)));
        }
    }
    (table, marks)
}

#[cfg(test)]
#[path = "synth_tests.rs"]
mod synth_tests;

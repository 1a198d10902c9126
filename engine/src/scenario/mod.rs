//! The TOML scenario format: instruments with tiers, mark prices, accounts with positions.
//!
//! ```toml
//! call_level = "0.8"               # optional margin-call level (margin ratio), default 0.8
//!
//! [[instrument]]
//! symbol = "BTCUSDT"
//! kind = "perpetual"              # or "future", with expiry = "2026-12-25T08:00:00Z"
//! price_decimals = 2
//! qty_decimals = 3
//! tick_size = "0.10"              # optional, default one price unit (10^-price_decimals)
//! min_qty = "0.001"               # optional, default one quantity unit
//! liquidation_fee = "0.003"
//! tiers = [ { max_notional = "50000", mmr = "0.004", imr = "0.008" },
//!           { max_notional = "250000", mmr = "0.005", imr = "0.01", maintenance_amount = "50" } ]
//!
//! [[price]]
//! symbol = "BTCUSDT"
//! mark = "50000"
//!
//! [[account]]
//! id = 1
//! wallet = "500"
//! positions = [ { symbol = "BTCUSDT", qty = "0.02", entry = "50000", mode = "cross" } ]
//! ```
//!
//! - Decimals are strings or numbers, read exactly ([`crate::num::decimal`]); a price or quantity
//!   may not have more decimals than its instrument's `price_decimals`/`qty_decimals`; rates have
//!   at most 9 decimals; money (wallet, margin) at most 18 and is rounded down into `Money`.
//! - A tier's `maintenance_amount` is optional: it is computed as Binance does,
//!   `cum_n = floor_n × (MMR_n − MMR_{n−1}) + cum_{n−1}`; when given it must equal that value
//!   (maintenance margin stays continuous). An optional `min_notional` must equal the previous cap.
//! - Unknown keys are errors. Every error names the file, the line, the field and what was
//!   expected ([`ScenarioError`]).
//! - Positions: one per symbol per account; `qty` signed (negative: short); `mode` is `cross` or
//!   `isolated`; an isolated position needs `margin`, a cross one must not have it. Every symbol a
//!   position uses needs a `[[price]]`.

mod raw;

use std::path::{Path, PathBuf};

use thiserror::Error;
use toml::Spanned;

use crate::margin::{
    Account, CallLevel, Instrument, InstrumentError, InstrumentKind, InstrumentSpec,
    InstrumentTable, MarginMode, MarkPrices, Position, TierSpec,
};
use crate::num::{DecimalError, Money, Price, Qty, Rate, parse_scaled};
pub use raw::{Dec, parse_utc};
use raw::{RawInstrument, RawScenario};

/// Decimal places accepted in money amounts (wallet, margin) before rounding into `Money`.
pub const MONEY_TEXT_DECIMALS: u32 = 18;

/// A scenario file that could not be used. Each error names the file and line, and says what was
/// expected.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{file}: cannot read the scenario file: {source}")]
    Read {
        /// File.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Not valid TOML, a missing or unknown key, or a value of the wrong type.
    #[error("{file}:{line}: {message}")]
    Syntax {
        /// File.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What the parser expected.
        message: String,
    },
    /// A value that is well-formed but not acceptable.
    #[error("{file}:{line}: {field}: {problem}")]
    Invalid {
        /// File.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// Path of the field, e.g. `instrument[0].tiers[1].mmr`.
        field: String,
        /// What is wrong and what was expected.
        problem: String,
    },
}

impl ScenarioError {
    /// The 1-based line the error points at, if any.
    pub fn line(&self) -> Option<usize> {
        match self {
            ScenarioError::Read { .. } => None,
            ScenarioError::Syntax { line, .. } | ScenarioError::Invalid { line, .. } => Some(*line),
        }
    }
}

/// A loaded, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Instruments in file order (`InstrumentId` = position in the list).
    pub instruments: InstrumentTable,
    /// Mark price per instrument (unset for instruments without a `[[price]]`).
    pub marks: MarkPrices,
    /// Accounts in file order, positions in file order.
    pub accounts: Vec<Account>,
    /// Margin-call level.
    pub call_level: CallLevel,
}

/// Reads text with spans and turns them into lines and typed errors.
struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err(
        &self,
        span: std::ops::Range<usize>,
        field: &str,
        problem: impl Into<String>,
    ) -> ScenarioError {
        ScenarioError::Invalid {
            file: self.file.to_path_buf(),
            line: self.line_of(span.start),
            field: field.to_string(),
            problem: problem.into(),
        }
    }

    /// A decimal into `10^-decimals` units.
    fn scaled(&self, v: &Spanned<Dec>, decimals: u32, field: &str) -> Result<i128, ScenarioError> {
        parse_scaled(&v.get_ref().0, decimals)
            .map_err(|e| self.err(v.span(), field, decimal_problem(e)))
    }

    /// A decimal into an `i64` count of `10^-decimals` units.
    fn scaled_i64(
        &self,
        v: &Spanned<Dec>,
        decimals: u32,
        field: &str,
    ) -> Result<i64, ScenarioError> {
        let x = self.scaled(v, decimals, field)?;
        i64::try_from(x)
            .map_err(|_| self.err(v.span(), field, format!("`{}` is too large", v.get_ref().0)))
    }

    /// A positive price.
    fn price(&self, v: &Spanned<Dec>, decimals: u32, field: &str) -> Result<Price, ScenarioError> {
        let p = self.scaled_i64(v, decimals, field)?;
        if p <= 0 {
            return Err(self.err(
                v.span(),
                field,
                format!(
                    "`{}` is not a positive price: expected a price > 0",
                    v.get_ref().0
                ),
            ));
        }
        Ok(Price(p))
    }

    fn rate(&self, v: &Spanned<Dec>, field: &str) -> Result<Rate, ScenarioError> {
        Rate::parse(&v.get_ref().0).map_err(|e| match e {
            DecimalError::Malformed { .. }
                if parse_scaled(&v.get_ref().0, Rate::DECIMALS).is_ok() =>
            {
                self.err(
                    v.span(),
                    field,
                    format!("`{}` is negative: expected a rate ≥ 0", v.get_ref().0),
                )
            }
            e => self.err(v.span(), field, decimal_problem(e)),
        })
    }

    fn money(&self, v: &Spanned<Dec>, field: &str) -> Result<Money, ScenarioError> {
        let x = self.scaled(v, MONEY_TEXT_DECIMALS, field)?;
        Money::from_scaled_floor(x, MONEY_TEXT_DECIMALS)
            .ok_or_else(|| self.err(v.span(), field, format!("`{}` is too large", v.get_ref().0)))
    }
}

fn decimal_problem(e: DecimalError) -> String {
    e.to_string()
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Scenario::parse(&text, path)
    }

    /// Validates scenario text; `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Scenario, ScenarioError> {
        let ctx = Ctx { file, text };
        let raw: RawScenario = toml::from_str(text).map_err(|e| ScenarioError::Syntax {
            file: file.to_path_buf(),
            line: e.span().map_or(1, |s| ctx.line_of(s.start)),
            message: e.message().trim().to_string(),
        })?;

        let mut instruments = InstrumentTable::new();
        for (i, ri) in raw.instrument.iter().enumerate() {
            let inst = build_instrument(&ctx, i, ri)?;
            let symbol = ri.get_ref().symbol.clone();
            if instruments.push(inst).is_none() {
                return Err(ctx.err(
                    symbol.span(),
                    &format!("instrument[{i}].symbol"),
                    format!("`{}` is defined twice: each symbol once", symbol.get_ref()),
                ));
            }
        }
        let known = || {
            instruments
                .iter()
                .map(|(_, i)| i.symbol.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let lookup = |s: &Spanned<String>, field: &str| {
            instruments
                .id_of(s.get_ref())
                .and_then(|id| Some((id, instruments.get(id)?)))
                .ok_or_else(|| {
                    ctx.err(
                        s.span(),
                        field,
                        format!(
                            "unknown symbol `{}`: expected one of the [[instrument]] symbols ({})",
                            s.get_ref(),
                            known()
                        ),
                    )
                })
        };

        let mut marks = MarkPrices::new(instruments.len());
        for (i, rp) in raw.price.iter().enumerate() {
            let rp = rp.get_ref();
            let (id, inst) = lookup(&rp.symbol, &format!("price[{i}].symbol"))?;
            if marks.get(id).is_some() {
                return Err(ctx.err(
                    rp.symbol.span(),
                    &format!("price[{i}].symbol"),
                    format!(
                        "`{}` has two [[price]] entries: give one",
                        rp.symbol.get_ref()
                    ),
                ));
            }
            let mark = ctx.price(&rp.mark, inst.price_decimals, &format!("price[{i}].mark"))?;
            if let Some(index) = &rp.index {
                ctx.price(index, inst.price_decimals, &format!("price[{i}].index"))?;
            }
            marks.set(id, mark);
        }

        let call_level = match &raw.call_level {
            None => CallLevel::default(),
            Some(v) => {
                let r = ctx.rate(v, "call_level")?;
                if r.0 == 0 || r > Rate::ONE {
                    return Err(ctx.err(
                        v.span(),
                        "call_level",
                        "expected a margin ratio with 0 < call_level ≤ 1",
                    ));
                }
                CallLevel(r)
            }
        };

        let mut accounts: Vec<Account> = Vec::with_capacity(raw.account.len());
        let mut ids = std::collections::HashSet::new();
        for (a, ra) in raw.account.iter().enumerate() {
            let ra = ra.get_ref();
            if *ra.id.get_ref() == crate::risk::takeover::FUND_ACCOUNT_ID {
                return Err(ctx.err(
                    ra.id.span(),
                    &format!("account[{a}].id"),
                    format!(
                        "id {} is reserved for the insurance fund: use a smaller id",
                        ra.id.get_ref()
                    ),
                ));
            }
            if !ids.insert(*ra.id.get_ref()) {
                return Err(ctx.err(
                    ra.id.span(),
                    &format!("account[{a}].id"),
                    format!(
                        "id {} is used twice: account ids are unique",
                        ra.id.get_ref()
                    ),
                ));
            }
            let wallet = ctx.money(&ra.wallet, &format!("account[{a}].wallet"))?;
            let mut acct = Account::with_capacity(*ra.id.get_ref(), wallet, ra.positions.len());
            for (k, rp) in ra.positions.iter().enumerate() {
                let span = rp.span();
                let rp = rp.get_ref();
                let f = |name: &str| format!("account[{a}].positions[{k}].{name}");
                let (id, inst) = lookup(&rp.symbol, &f("symbol"))?;
                if marks.get(id).is_none() {
                    return Err(ctx.err(
                        rp.symbol.span(),
                        &f("symbol"),
                        format!(
                            "`{}` has no [[price]]: add a mark price for it",
                            rp.symbol.get_ref()
                        ),
                    ));
                }
                let qty = ctx.scaled_i64(&rp.qty, inst.qty_decimals, &f("qty"))?;
                if qty == 0 {
                    return Err(ctx.err(rp.qty.span(), &f("qty"), "quantity is zero: expected a non-zero signed quantity (negative for a short)"));
                }
                let entry = ctx.price(&rp.entry, inst.price_decimals, &f("entry"))?;
                let (mode, margin) = match (rp.mode.get_ref().as_str(), &rp.margin) {
                    ("cross", None) => (MarginMode::Cross, Money::ZERO),
                    ("cross", Some(m)) => return Err(ctx.err(m.span(), &f("margin"), "a cross position has no margin of its own: remove it or use mode = \"isolated\"")),
                    ("isolated", Some(m)) => {
                        let margin = ctx.money(m, &f("margin"))?;
                        if margin.is_negative() {
                            return Err(ctx.err(m.span(), &f("margin"), "expected an isolated margin ≥ 0"));
                        }
                        (MarginMode::Isolated, margin)
                    }
                    ("isolated", None) => return Err(ctx.err(span, &f("margin"), "missing field `margin`: an isolated position needs its margin")),
                    (other, _) => return Err(ctx.err(rp.mode.span(), &f("mode"), format!("`{other}` is not a margin mode: expected \"cross\" or \"isolated\""))),
                };
                let position = Position::open(id, Qty(qty), entry, mode, margin).map_err(|e| {
                    ctx.err(
                        span.clone(),
                        &format!("account[{a}].positions[{k}]"),
                        e.to_string(),
                    )
                })?;
                acct.push_position(position).map_err(|_| {
                    ctx.err(
                        rp.symbol.span(),
                        &f("symbol"),
                        format!(
                            "`{}` appears twice in this account: one position per symbol",
                            rp.symbol.get_ref()
                        ),
                    )
                })?;
            }
            accounts.push(acct);
        }
        Ok(Scenario {
            instruments,
            marks,
            accounts,
            call_level,
        })
    }
}

fn build_instrument(
    ctx: &Ctx,
    i: usize,
    ri: &Spanned<RawInstrument>,
) -> Result<Instrument, ScenarioError> {
    let span = ri.span();
    let ri = ri.get_ref();
    let f = |name: &str| format!("instrument[{i}].{name}");
    let pd = *ri.price_decimals.get_ref();
    let qd = *ri.qty_decimals.get_ref();
    for (v, name) in [
        (&ri.price_decimals, "price_decimals"),
        (&ri.qty_decimals, "qty_decimals"),
    ] {
        if *v.get_ref() > crate::margin::MAX_DECIMALS {
            return Err(ctx.err(
                v.span(),
                &f(name),
                format!(
                    "{} is out of range: expected 0..={}",
                    v.get_ref(),
                    crate::margin::MAX_DECIMALS
                ),
            ));
        }
    }
    let kind = match (ri.kind.get_ref().as_str(), &ri.expiry) {
        ("perpetual", None) => InstrumentKind::Perpetual,
        ("perpetual", Some(e)) => {
            return Err(ctx.err(
                e.span(),
                &f("expiry"),
                "a perpetual has no expiry: remove it or use kind = \"future\"",
            ));
        }
        ("future", Some(e)) => InstrumentKind::Future {
            expiry_unix_s: parse_utc(e.get_ref()).ok_or_else(|| {
                ctx.err(
                    e.span(),
                    &f("expiry"),
                    format!(
                        "`{}` is not a UTC time: expected e.g. \"2026-12-25T08:00:00Z\"",
                        e.get_ref()
                    ),
                )
            })?,
        },
        ("future", None) => {
            return Err(ctx.err(
                span,
                &f("expiry"),
                "missing field `expiry`: a future needs its expiry time",
            ));
        }
        (other, _) => {
            return Err(ctx.err(
                ri.kind.span(),
                &f("kind"),
                format!(
                    "`{other}` is not an instrument kind: expected \"perpetual\" or \"future\""
                ),
            ));
        }
    };
    let tick = match &ri.tick_size {
        Some(t) => ctx.price(t, pd, &f("tick_size"))?,
        None => Price(1),
    };
    let min_qty = match &ri.min_qty {
        Some(q) => {
            let v = ctx.scaled_i64(q, qd, &f("min_qty"))?;
            if v <= 0 {
                return Err(ctx.err(q.span(), &f("min_qty"), "expected a positive quantity"));
            }
            Qty(v)
        }
        None => Qty(1),
    };
    let liquidation_fee = ctx.rate(&ri.liquidation_fee, &f("liquidation_fee"))?;
    if liquidation_fee >= Rate::ONE {
        return Err(ctx.err(
            ri.liquidation_fee.span(),
            &f("liquidation_fee"),
            "expected a rate below 1",
        ));
    }
    let nd = pd + qd;
    let mut tiers = Vec::with_capacity(ri.tiers.get_ref().len());
    for (t, rt) in ri.tiers.get_ref().iter().enumerate() {
        let rt = rt.get_ref();
        let g = |name: &str| format!("instrument[{i}].tiers[{t}].{name}");
        let notional = |v: &Spanned<Dec>, name: &str| -> Result<i128, ScenarioError> {
            let x = ctx.scaled(v, nd, &g(name))?;
            if x < 0 {
                return Err(ctx.err(v.span(), &g(name), "expected a notional ≥ 0"));
            }
            Ok(x)
        };
        tiers.push(TierSpec {
            min_notional: rt
                .min_notional
                .as_ref()
                .map(|v| notional(v, "min_notional"))
                .transpose()?,
            max_notional: notional(&rt.max_notional, "max_notional")?,
            mmr: ctx.rate(&rt.mmr, &g("mmr"))?,
            imr: ctx.rate(&rt.imr, &g("imr"))?,
            amount: rt
                .maintenance_amount
                .as_ref()
                .map(|v| ctx.scaled(v, nd + Rate::DECIMALS, &g("maintenance_amount")))
                .transpose()?,
        });
    }
    let spec = InstrumentSpec {
        symbol: ri.symbol.get_ref().clone(),
        kind,
        price_decimals: pd,
        qty_decimals: qd,
        tick,
        min_qty,
        liquidation_fee,
        tiers,
    };
    Instrument::new(spec).map_err(|e| {
        let tier_span = |t: usize| {
            ri.tiers
                .get_ref()
                .get(t)
                .map_or(ri.tiers.span(), |s| s.span())
        };
        let (span, field) = match &e {
            InstrumentError::Unordered { tier, .. } => (
                tier_span(*tier),
                format!("instrument[{i}].tiers[{tier}].max_notional"),
            ),
            InstrumentError::Overlap { tier, .. } => (
                tier_span(*tier),
                format!("instrument[{i}].tiers[{tier}].min_notional"),
            ),
            InstrumentError::Rate { tier, field, .. } => (
                tier_span(*tier),
                format!("instrument[{i}].tiers[{tier}].{field}"),
            ),
            InstrumentError::Discontinuous { tier, .. } => (
                tier_span(*tier),
                format!("instrument[{i}].tiers[{tier}].maintenance_amount"),
            ),
            InstrumentError::Overflow { tier } => {
                (tier_span(*tier), format!("instrument[{i}].tiers[{tier}]"))
            }
            InstrumentError::NoTiers | InstrumentError::TooManyTiers { .. } => {
                (ri.tiers.span(), f("tiers"))
            }
            InstrumentError::Decimals { field, .. } | InstrumentError::NotPositive { field } => {
                (span.clone(), f(field))
            }
        };
        ctx.err(span, &field, e.to_string())
    })
}

#[cfg(test)]
mod tests;

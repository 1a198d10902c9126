//! Evaluation: per-position uPnL, notional, tier, margins; per-account equity, maintenance
//! margin, margin ratio and status. No allocation, no division on the `u128` fast path beyond the
//! one conversion of each exact amount into [`Money`].

use std::cmp::Ordering;

use crate::num::{Money, Price, Rate, wide};

use super::{Account, Instrument, InstrumentTable, MarginError, MarginMode, MarkPrices, Position};

/// Health of a margin account (the cross part of an account, or one isolated position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MarginStatus {
    /// Margin ratio below the call level.
    Healthy,
    /// Margin ratio at or above the call level, equity still above maintenance.
    MarginCall,
    /// Equity at or below maintenance margin (and positive).
    Liquidatable,
    /// Equity at or below zero with positions open, or negative without.
    Bankrupt,
}

impl MarginStatus {
    /// `"healthy"`, `"margin_call"`, `"liquidatable"` or `"bankrupt"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MarginStatus::Healthy => "healthy",
            MarginStatus::MarginCall => "margin_call",
            MarginStatus::Liquidatable => "liquidatable",
            MarginStatus::Bankrupt => "bankrupt",
        }
    }
}

/// The margin ratio (MM / equity) at which a margin call is raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLevel(pub Rate);

impl Default for CallLevel {
    /// 0.8 (80 %).
    fn default() -> Self {
        CallLevel(Rate(800_000_000))
    }
}

/// One position evaluated at a mark price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionRisk {
    /// Unrealised PnL, rounded toward −∞.
    pub upnl: Money,
    /// Exact notional `|qty|·mark`, `10^-notional_decimals` units.
    pub notional: i128,
    /// Index of the tier of the notional.
    pub tier: u8,
    /// That tier's maintenance margin rate.
    pub mmr: Rate,
    /// Maintenance margin `notional·MMR − amount`, rounded toward +∞.
    pub maintenance: Money,
    /// Initial margin `notional·IMR`, rounded toward +∞.
    pub initial: Money,
}

/// Equity and margins of one margin account (cross part or an isolated position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MarginSummary {
    /// Equity, rounded down (wallet or isolated margin + uPnL).
    pub equity: Money,
    /// Maintenance margin, rounded up.
    pub maintenance: Money,
    /// Initial margin, rounded up.
    pub initial: Money,
}

impl MarginSummary {
    /// Status at a call level. Exact comparisons, no division:
    /// bankrupt if equity ≤ 0 with exposure (or < 0 without); liquidatable if equity ≤ MM;
    /// margin call if MM ≥ level·equity; healthy otherwise.
    pub fn status(&self, level: CallLevel) -> MarginStatus {
        let (e, mm) = (self.equity, self.maintenance);
        if mm == Money::ZERO {
            return if e.is_negative() {
                MarginStatus::Bankrupt
            } else {
                MarginStatus::Healthy
            };
        }
        if !e.is_positive() {
            return MarginStatus::Bankrupt;
        }
        if e <= mm {
            return MarginStatus::Liquidatable;
        }
        // MM/E ≥ level  ⇔  MM·10^9 ≥ level·E  (E > 0, MM > 0), exactly in 256 bits.
        let lhs = (mm.to_bits().unsigned_abs(), u128::from(Rate::ONE.0));
        let rhs = (e.to_bits().unsigned_abs(), u128::from(level.0.0));
        if mm.is_negative() {
            return MarginStatus::Healthy;
        }
        match wide::cmp_products(lhs.0, lhs.1, rhs.0, rhs.1) {
            Ordering::Less => MarginStatus::Healthy,
            _ => MarginStatus::MarginCall,
        }
    }

    /// Margin ratio MM / equity rounded up; `None` when equity ≤ 0.
    pub fn margin_ratio_ceil(&self) -> Option<Money> {
        if !self.equity.is_positive() {
            return None;
        }
        self.maintenance.checked_div_ceil(self.equity)
    }

    /// Equity − MM (the margin buffer), rounded down.
    pub fn buffer(&self) -> Option<Money> {
        self.equity.checked_sub(self.maintenance)
    }
}

/// An account's cross summary and the worst status over it and its isolated positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountRisk {
    /// Wallet and cross positions.
    pub cross: MarginSummary,
    /// Status of the cross part.
    pub cross_status: MarginStatus,
    /// Worst of the cross status and every isolated position's status.
    pub worst: MarginStatus,
}

impl Position {
    /// Evaluates this position at `mark` (which must be positive).
    pub fn risk(&self, inst: &Instrument, mark: Price) -> Result<PositionRisk, MarginError> {
        if mark.0 <= 0 {
            return Err(MarginError::NonPositivePrice { price: mark.0 });
        }
        let nd = inst.notional_decimals();
        let overflow = |what| MarginError::Overflow { what };
        let upnl = Money::from_scaled_floor(self.upnl_exact(mark), nd).ok_or(overflow("uPnL"))?;
        let notional = Instrument::notional(self.qty(), mark);
        let tier_index = inst.tier_index(notional);
        let tier = &inst.tiers()[tier_index];
        let md = inst.margin_decimals();
        let mm_exact = tier
            .maintenance_exact(notional)
            .ok_or(overflow("maintenance margin"))?;
        let maintenance =
            Money::from_scaled_ceil(mm_exact, md).ok_or(overflow("maintenance margin"))?;
        let im_exact = tier
            .initial_exact(notional)
            .ok_or(overflow("initial margin"))?;
        let initial = Money::from_scaled_ceil(im_exact, md).ok_or(overflow("initial margin"))?;
        Ok(PositionRisk {
            upnl,
            notional,
            tier: tier_index as u8,
            mmr: tier.mmr,
            maintenance,
            initial,
        })
    }

    /// The summary of this position as an isolated margin account (its margin + its uPnL).
    pub fn isolated_summary(&self, risk: &PositionRisk) -> Result<MarginSummary, MarginError> {
        Ok(MarginSummary {
            equity: self
                .isolated_margin()
                .checked_add(risk.upnl)
                .ok_or(MarginError::Overflow { what: "equity" })?,
            maintenance: risk.maintenance,
            initial: risk.initial,
        })
    }
}

/// The instrument and mark of a position, or the error naming what is missing.
pub(crate) fn inputs<'a>(
    table: &'a InstrumentTable,
    marks: &MarkPrices,
    p: &Position,
) -> Result<(&'a Instrument, Price), MarginError> {
    let id = p.instrument();
    let inst = table
        .get(id)
        .ok_or(MarginError::UnknownInstrument { instrument: id.0 })?;
    let mark = marks
        .get(id)
        .ok_or(MarginError::NoMark { instrument: id.0 })?;
    Ok((inst, mark))
}

impl Account {
    /// Evaluates one position at the current marks.
    pub fn position_risk(
        &self,
        index: usize,
        table: &InstrumentTable,
        marks: &MarkPrices,
    ) -> Result<PositionRisk, MarginError> {
        let p = self
            .positions()
            .get(index)
            .ok_or(MarginError::NoPositionIndex { index })?;
        let (inst, mark) = inputs(table, marks, p)?;
        p.risk(inst, mark)
    }

    /// Equity (wallet + Σ cross uPnL), maintenance and initial margin of the cross part.
    pub fn cross_summary(
        &self,
        table: &InstrumentTable,
        marks: &MarkPrices,
    ) -> Result<MarginSummary, MarginError> {
        let overflow = |what| MarginError::Overflow { what };
        let mut s = MarginSummary {
            equity: self.wallet(),
            ..MarginSummary::default()
        };
        for p in self.positions() {
            if p.mode() != MarginMode::Cross {
                continue;
            }
            let (inst, mark) = inputs(table, marks, p)?;
            let r = p.risk(inst, mark)?;
            s.equity = s.equity.checked_add(r.upnl).ok_or(overflow("equity"))?;
            s.maintenance = s
                .maintenance
                .checked_add(r.maintenance)
                .ok_or(overflow("maintenance margin"))?;
            s.initial = s
                .initial
                .checked_add(r.initial)
                .ok_or(overflow("initial margin"))?;
        }
        Ok(s)
    }

    /// Cross summary and statuses, including every isolated position. No allocation.
    pub fn evaluate(
        &self,
        table: &InstrumentTable,
        marks: &MarkPrices,
        level: CallLevel,
    ) -> Result<AccountRisk, MarginError> {
        let cross = self.cross_summary(table, marks)?;
        let cross_status = cross.status(level);
        let mut worst = cross_status;
        for p in self.positions() {
            if p.mode() == MarginMode::Isolated {
                let (inst, mark) = inputs(table, marks, p)?;
                let r = p.risk(inst, mark)?;
                worst = worst.max(p.isolated_summary(&r)?.status(level));
            }
        }
        Ok(AccountRisk {
            cross,
            cross_status,
            worst,
        })
    }
}

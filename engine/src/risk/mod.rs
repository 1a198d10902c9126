//! The risk stage: a deterministic state machine over validated input events.
//!
//! It alone owns accounts, positions, marks and (later) the insurance fund. It turns ticks, fills
//! and collateral changes into margin calls and liquidation decisions, touching on each tick only
//! the margin units whose safe band the tick left ([`crate::index`], bands from [`bands`]).
//!
//! ## State machine of a margin unit ([`units::UnitState`])
//! ```text
//!   Flat ──position opens──▶ Healthy ──ratio ≥ call level──▶ Called ──ratio < re-arm level──▶ Healthy
//!                               │                              │
//!                               └──────equity ≤ MM─────────────┴──▶ Liquidating ──orders done──▶ re-evaluated
//! ```
//! A margin call is emitted once per crossing and re-armed only when the ratio falls back below
//! the re-arm level (hysteresis). Every transition happens in an exact evaluation of the unit; the
//! index only decides *which* units to evaluate, and the bands guarantee that a unit not evaluated
//! could not have changed state (proof sketch in [`bands`]). [`Scan::All`] evaluates every unit
//! on every tick instead: the brute-force oracle used by the tests and the baseline of the bench.
//!
//! ## Determinism
//! Decisions depend only on the input sequence: units popped by a tick are evaluated in the
//! index's deterministic order, and nothing reads a clock or a hash map's iteration order.

pub mod bands;
pub mod units;

use crate::index::{Band, BandIndex};
use crate::ingest::{FeedBody, FeedEvent};
use crate::margin::{
    Account, CallLevel, InstrumentId, InstrumentTable, MarginError, MarginMode, MarginStatus,
    MarginSummary, MarkPrices, Money, Price, Rate,
};
use crate::shm::{self, Input, Output};
use bands::{BandScratch, Watch};
use units::{CROSS, UnitState, Units};

/// Thresholds of the risk stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiskConfig {
    /// Margin ratio (MM / equity) at which a margin call is raised. Default 0.8.
    pub call_level: Rate,
    /// Ratio below which a raised call re-arms. Default 0.7; must be below `call_level`.
    pub rearm_level: Rate,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            call_level: Rate(800_000_000),
            rearm_level: Rate(700_000_000),
        }
    }
}

/// Which units a tick evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    /// Only the units whose band the tick left (production).
    Index,
    /// Every unit holding the ticked instrument.
    Holders,
    /// Every unit (the brute-force oracle).
    All,
}

/// Counters of the risk stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RiskCounters {
    /// Ticks applied.
    pub ticks: u64,
    /// Unit evaluations (exact).
    pub evaluations: u64,
    /// Margin calls emitted.
    pub margin_calls: u64,
    /// Units handed to liquidation.
    pub liquidations: u64,
    /// Evaluations that failed (overflow or an unpriced instrument); the unit waits for a mark.
    pub unevaluable: u64,
}

/// The risk stage's state. See the module docs.
#[derive(Debug)]
pub struct RiskEngine {
    table: InstrumentTable,
    marks: MarkPrices,
    accounts: Vec<Account>,
    units: Units,
    index: BandIndex,
    /// Units holding each instrument (may hold stale entries; checked on use).
    holders: Vec<Vec<u32>>,
    /// Units waiting for a first mark on one of their instruments.
    unpriced: Vec<u32>,
    /// Per-instrument band weights (10^9 = 1).
    weights: Vec<u64>,
    config: RiskConfig,
    scan: Scan,
    counters: RiskCounters,
    // Scratch, reused so that the tick path allocates nothing once warm.
    touched: Vec<u32>,
    bands: Vec<Band>,
    band_scratch: BandScratch,
}

impl RiskEngine {
    /// Loads accounts and evaluates (and bands) every unit once.
    pub fn new(
        table: InstrumentTable,
        marks: MarkPrices,
        accounts: Vec<Account>,
        config: RiskConfig,
        scan: Scan,
    ) -> RiskEngine {
        let instruments = table.len();
        let mut units = Units::new(accounts.len());
        let mut holders = vec![Vec::new(); instruments];
        for (a, account) in accounts.iter().enumerate() {
            for p in account.positions() {
                let i = p.instrument().0;
                let unit = match p.mode() {
                    MarginMode::Cross => a as u32,
                    MarginMode::Isolated => units.isolated_or_insert(a as u32, i),
                };
                if let Some(h) = holders.get_mut(i as usize) {
                    h.push(unit);
                }
            }
        }
        for h in &mut holders {
            h.dedup();
        }
        let mut index = BandIndex::new(instruments, units.len());
        index.reserve(&holders.iter().map(Vec::len).collect::<Vec<_>>());
        let mut engine = RiskEngine {
            table,
            marks,
            accounts,
            units,
            index,
            holders,
            unpriced: Vec::new(),
            weights: vec![1_000_000_000; instruments],
            config,
            scan,
            counters: RiskCounters::default(),
            touched: Vec::new(),
            bands: Vec::new(),
            band_scratch: BandScratch::default(),
        };
        let all: Vec<u32> = (0..engine.units.len() as u32).collect();
        for unit in all {
            if engine.unit_has_positions(unit) {
                engine.units.set_state(unit, UnitState::Healthy);
                engine.evaluate(unit, 0, &mut |_| {});
            }
        }
        engine
    }

    /// Applies one validated input, passing every decision to `out` in order.
    pub fn on_event(&mut self, event: &FeedEvent, out: &mut impl FnMut(Output)) {
        let FeedBody::Input(input) = event.body else {
            return;
        };
        if let Input::Tick(tick) = input {
            self.on_tick(tick.instrument, Price(tick.mark_px), event.seq, out);
        }
    }

    /// Applies a mark price for an instrument.
    pub fn on_tick(
        &mut self,
        instrument: u32,
        mark: Price,
        seq: u64,
        out: &mut impl FnMut(Output),
    ) {
        let id = InstrumentId(instrument);
        let first = self.marks.get(id).is_none();
        if !self.marks.set(id, mark) {
            return;
        }
        self.counters.ticks += 1;
        let mut touched = std::mem::take(&mut self.touched);
        touched.clear();
        match self.scan {
            Scan::Index => self.index.on_price(instrument, mark.0, |u| touched.push(u)),
            Scan::Holders => {
                if let Some(h) = self.holders.get(instrument as usize) {
                    touched.extend_from_slice(h);
                }
            }
            Scan::All => touched.extend(0..self.units.len() as u32),
        }
        if first {
            touched.append(&mut self.unpriced);
        }
        for &unit in &touched {
            self.evaluate(unit, seq, out);
        }
        self.touched = touched;
    }

    /// Evaluates one unit exactly, runs its state machine and bands it again.
    fn evaluate(&mut self, unit: u32, seq: u64, out: &mut impl FnMut(Output)) {
        let Some(&u) = self.units.get(unit) else {
            return;
        };
        match u.state {
            UnitState::Flat | UnitState::Liquidating => return,
            UnitState::Healthy | UnitState::Called | UnitState::Unpriced => {}
        }
        self.counters.evaluations += 1;
        let summary = match self.summary(unit) {
            Ok(s) => s,
            Err(_) => {
                self.counters.unevaluable += 1;
                self.index.unband(unit);
                if u.state != UnitState::Unpriced {
                    self.units.set_state(unit, UnitState::Unpriced);
                    self.unpriced.push(unit);
                }
                return;
            }
        };
        let call = CallLevel(self.config.call_level);
        let status = summary.status(call);
        let previous = if u.state == UnitState::Unpriced {
            UnitState::Healthy
        } else {
            u.state
        };
        let next = match (previous, status) {
            (_, MarginStatus::Liquidatable | MarginStatus::Bankrupt) => UnitState::Liquidating,
            (UnitState::Healthy, MarginStatus::MarginCall) => {
                self.emit_margin_call(u.account, &summary, seq, out);
                UnitState::Called
            }
            (UnitState::Called, MarginStatus::Healthy)
                if summary.status(CallLevel(self.config.rearm_level)) == MarginStatus::Healthy =>
            {
                UnitState::Healthy
            }
            (UnitState::Called, _) => UnitState::Called,
            _ => UnitState::Healthy,
        };
        self.units.set_state(unit, next);
        match next {
            UnitState::Liquidating => {
                self.index.unband(unit);
                self.counters.liquidations += 1;
            }
            UnitState::Healthy | UnitState::Called => {
                let watch = if next == UnitState::Healthy {
                    Watch::Call {
                        level: self.config.call_level,
                    }
                } else {
                    Watch::Called {
                        rearm: self.config.rearm_level,
                    }
                };
                if self.band(unit, &summary, watch).is_err() {
                    self.counters.unevaluable += 1;
                    self.index.unband(unit);
                }
            }
            UnitState::Flat | UnitState::Unpriced => {}
        }
    }

    /// The summary of a unit at the current marks.
    fn summary(&self, unit: u32) -> Result<MarginSummary, MarginError> {
        let u = self.units.get(unit).ok_or(MarginError::NoPositionIndex {
            index: unit as usize,
        })?;
        let account = &self.accounts[u.account as usize];
        if u.is_cross() {
            account.cross_summary(&self.table, &self.marks)
        } else {
            let i = account.position_index(InstrumentId(u.instrument)).ok_or(
                MarginError::NoPosition {
                    instrument: u.instrument,
                },
            )?;
            let risk = account.position_risk(i, &self.table, &self.marks)?;
            account.positions()[i].isolated_summary(&risk)
        }
    }

    fn band(
        &mut self,
        unit: u32,
        summary: &MarginSummary,
        watch: Watch,
    ) -> Result<(), MarginError> {
        let Some(&u) = self.units.get(unit) else {
            return Ok(());
        };
        let account = &self.accounts[u.account as usize];
        let (positions, mode) = if u.is_cross() {
            (account.positions(), MarginMode::Cross)
        } else {
            let i = account.position_index(InstrumentId(u.instrument)).ok_or(
                MarginError::NoPosition {
                    instrument: u.instrument,
                },
            )?;
            (&account.positions()[i..=i], MarginMode::Isolated)
        };
        self.bands.clear();
        bands::compute(
            &self.table,
            &self.marks,
            &self.weights,
            positions,
            mode,
            summary.equity,
            summary.maintenance,
            watch,
            &mut self.band_scratch,
            &mut self.bands,
        )?;
        self.index.set_bands(unit, &self.bands);
        Ok(())
    }

    fn emit_margin_call(
        &mut self,
        account: u32,
        summary: &MarginSummary,
        seq: u64,
        out: &mut impl FnMut(Output),
    ) {
        self.counters.margin_calls += 1;
        let ratio_e9 = summary
            .margin_ratio_ceil()
            .and_then(|r| r.to_scaled_ceil(9))
            .and_then(|r| i64::try_from(r).ok())
            .unwrap_or(i64::MAX);
        let money = |m: Money| {
            m.to_scaled_floor(shm::MONEY_DECIMALS)
                .and_then(|v| i64::try_from(v).ok())
                .unwrap_or(i64::MIN)
        };
        out(Output::MarginCall(shm::MarginCall {
            account: self.accounts[account as usize].id(),
            ratio_e9,
            equity_money: money(summary.equity),
            mm_money: money(summary.maintenance),
            input_seq: seq,
        }));
    }

    fn unit_has_positions(&self, unit: u32) -> bool {
        let Some(u) = self.units.get(unit) else {
            return false;
        };
        let account = &self.accounts[u.account as usize];
        if u.is_cross() {
            account
                .positions()
                .iter()
                .any(|p| p.mode() == MarginMode::Cross)
        } else {
            u.instrument != CROSS && account.position_index(InstrumentId(u.instrument)).is_some()
        }
    }

    /// The state of every unit, in unit order (for tests and reports).
    pub fn unit_states(&self) -> impl Iterator<Item = (u32, UnitState)> + '_ {
        self.units.iter().map(|(id, u)| (id, u.state))
    }

    /// A unit's state.
    pub fn unit_state(&self, unit: u32) -> Option<UnitState> {
        self.units.get(unit).map(|u| u.state)
    }

    /// Counters so far.
    pub fn counters(&self) -> RiskCounters {
        self.counters
    }

    /// The band index (for reports and tests).
    pub fn index(&self) -> &BandIndex {
        &self.index
    }

    /// The accounts.
    pub fn accounts(&self) -> &[Account] {
        &self.accounts
    }

    /// The instrument table.
    pub fn instruments(&self) -> &InstrumentTable {
        &self.table
    }

    /// The current marks.
    pub fn marks(&self) -> &MarkPrices {
        &self.marks
    }

    /// Heap bytes held by the engine's own structures (accounts' position vectors, units, the
    /// index and the holder lists), for the memory report.
    pub fn heap_bytes(&self) -> usize {
        crate::bulk::heap_bytes(&self.accounts)
            + self.units.heap_bytes()
            + self.index.heap_bytes()
            + self.holders.iter().map(|h| h.capacity() * 4).sum::<usize>()
    }
}

#[cfg(test)]
mod tests;

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
//! ## Other inputs
//! Funding records charge every holder ([`funding`]); a `Settling` status record, or the expiry
//! of a dated future on the engine's clock mapping, settles the instrument ([`expiry`]);
//! volatility may scale maintenance rates ([`vol`], off by default). After each input handled
//! by [`RiskEngine::on_event`], the insurance fund's circuit breaker samples the fund
//! ([`breaker`]); inputs applied through [`RiskEngine::on_tick_at`] directly do not sample it.
//!
//! ## Determinism
//! Decisions depend only on the input sequence: units popped by a tick are evaluated in unit-id
//! order (so the index and the brute-force scan decide identically), and nothing reads a clock
//! or a hash map's iteration order.

mod adl;
mod adl_rows;
pub mod bands;
pub mod breaker;
pub mod expiry;
pub mod fund;
pub mod funding;
mod jobs;
pub mod liquidation;
mod params_codec;
pub mod reload;
pub mod shard;
mod state;
pub mod takeover;
pub mod units;
pub mod vol;

use std::collections::HashMap;

use crate::index::{Band, BandIndex};
use crate::ingest::{FeedBody, FeedEvent};
use crate::margin::{
    Account, CallLevel, InstrumentId, InstrumentTable, MarginError, MarginMode, MarginStatus,
    MarginSummary, MarkPrices, Money, Price, Rate,
};
use crate::shm::{self, Input, Output};
use bands::{BandScratch, Watch};
use fund::InsuranceFund;
use liquidation::LiquidationConfig;
use units::{CROSS, UnitState, Units};

/// Thresholds of the risk stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiskConfig {
    /// Margin ratio (MM / equity) at which a margin call is raised. Default 0.8.
    pub call_level: Rate,
    /// Ratio below which a raised call re-arms. Default 0.7; must be below `call_level`.
    pub rearm_level: Rate,
    /// Liquidation thresholds.
    pub liquidation: LiquidationConfig,
    /// How input publish stamps map to wall time (expiry of futures; see [`expiry`]).
    pub clock: expiry::ClockSource,
    /// Window before expiry over which the settlement TWAP is taken. Default 30 min.
    pub twap_window_ns: u64,
    /// Volatility-aware MMR scaling ([`vol`]); `None` (the default) keeps the tiers as given.
    pub vol_scaling: Option<vol::VolScaling>,
}

impl Default for RiskConfig {
    fn default() -> Self {
        RiskConfig {
            call_level: Rate(800_000_000),
            rearm_level: Rate(700_000_000),
            liquidation: LiquidationConfig::default(),
            clock: expiry::ClockSource::PublishNsIsUnixNs,
            twap_window_ns: 30 * 60 * 1_000_000_000,
            vol_scaling: None,
        }
    }
}

/// Which units a tick evaluates. Only `Index` computes bands (the scans have no use for them).
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
    /// Collateral changes booked.
    pub collateral: u64,
    /// Liquidation child orders sent.
    pub orders: u64,
    /// Fills of liquidation orders booked.
    pub liquidation_fills: u64,
    /// Ordinary fills booked.
    pub fills: u64,
    /// Fills or collateral changes refused (unknown account, wrong side, overflow).
    pub fills_refused: u64,
    /// ADL closes of counterparties.
    pub adl: u64,
    /// ADL events that found too little opposite quantity.
    pub adl_shortfall: u64,
    /// Bankrupt remainders the insurance fund took over (see [`takeover`]).
    pub takeovers: u64,
    /// Funding payments booked.
    pub funding: u64,
    /// Instruments settled.
    pub settlements: u64,
    /// Ticks refused (instrument settled).
    pub ticks_refused: u64,
    /// MMR scale changes applied (volatility scaling).
    pub rescales: u64,
}

impl RiskCounters {
    /// What was counted since `earlier` (counters taken from the same engine before).
    pub fn since(&self, earlier: &RiskCounters) -> RiskCounters {
        let d = |now: u64, then: u64| now.saturating_sub(then);
        RiskCounters {
            ticks: d(self.ticks, earlier.ticks),
            evaluations: d(self.evaluations, earlier.evaluations),
            margin_calls: d(self.margin_calls, earlier.margin_calls),
            liquidations: d(self.liquidations, earlier.liquidations),
            unevaluable: d(self.unevaluable, earlier.unevaluable),
            collateral: d(self.collateral, earlier.collateral),
            orders: d(self.orders, earlier.orders),
            liquidation_fills: d(self.liquidation_fills, earlier.liquidation_fills),
            fills: d(self.fills, earlier.fills),
            fills_refused: d(self.fills_refused, earlier.fills_refused),
            adl: d(self.adl, earlier.adl),
            adl_shortfall: d(self.adl_shortfall, earlier.adl_shortfall),
            takeovers: d(self.takeovers, earlier.takeovers),
            funding: d(self.funding, earlier.funding),
            settlements: d(self.settlements, earlier.settlements),
            ticks_refused: d(self.ticks_refused, earlier.ticks_refused),
            rescales: d(self.rescales, earlier.rescales),
        }
    }
}

/// Top of book of an instrument, as of its last tick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Book {
    /// Best bid, price units (0: not published).
    pub bid_px: i64,
    /// Best ask, price units (0: not published).
    pub ask_px: i64,
    /// Size at the best bid, lots.
    pub bid_qty: u32,
    /// Size at the best ask, lots.
    pub ask_qty: u32,
}

impl Book {
    /// Size × price at the best levels, summed (price·lot units): a depth measure for priority.
    pub fn top_notional(&self) -> i128 {
        i128::from(self.bid_qty) * i128::from(self.bid_px.max(0))
            + i128::from(self.ask_qty) * i128::from(self.ask_px.max(0))
    }
}

/// The risk stage's state. See the module docs.
#[derive(Debug)]
pub struct RiskEngine {
    table: InstrumentTable,
    marks: MarkPrices,
    /// The accounts and their ADL copies; changed only through `Accounts::update`.
    accounts: adl_rows::Accounts,
    /// Account id → index.
    account_index: HashMap<u64, u32>,
    units: Units,
    index: BandIndex,
    /// Units holding each instrument (may hold stale entries; checked on use).
    holders: Vec<Vec<u32>>,
    /// Units waiting for a first mark on one of their instruments.
    unpriced: Vec<u32>,
    /// Units to evaluate again on the next tick (a liquidation that could not start).
    retry: Vec<u32>,
    /// Per-instrument band weights (10^9 = 1).
    weights: Vec<u64>,
    config: RiskConfig,
    scan: Scan,
    counters: RiskCounters,
    fund: InsuranceFund,
    /// Positions the fund has taken over (id [`takeover::FUND_ACCOUNT_ID`]); its wallet is
    /// swept into `fund` after every change, so it is zero between inputs.
    fund_book: Account,
    /// Per instrument: the job working the fund's inventory, if any.
    fund_jobs: Vec<Option<u32>>,
    breaker: breaker::Breaker,
    /// Instruments as loaded (the unscaled tiers volatility scaling starts from).
    base_instruments: Vec<crate::margin::Instrument>,
    /// Per instrument: (last recomputation time, 0 = never; current MMR scale).
    scales: Vec<(u64, Rate)>,
    /// Settlement TWAP state per instrument.
    twap: Vec<expiry::Twap>,
    /// Instruments settled (ticks and fills refused).
    settled: Vec<bool>,
    /// Earliest expiry (Unix ns) of an unsettled future; `i128::MAX` when none.
    next_expiry_ns: i128,
    books: Vec<Book>,
    /// EWMA of absolute relative mark moves per instrument, 10^-9 units.
    vol: Vec<u64>,
    /// Liquidation jobs, by instrument and by order id.
    jobs: jobs::Jobs,
    /// Scratch of the ADL rankings, and the buffers of the last (not part of the state).
    adl_scratch: adl::AdlScratch,
    adl_spare: adl::AdlRanking,
    /// What the ADL rankings have cost (not part of the state).
    adl_work: AdlWork,
    /// Buffers reused on the hot path (not part of the state).
    scratch: Scratch,
    /// Engine time of the input being applied (its publish stamp).
    now_ns: u64,
    /// Outputs produced where no sink is at hand (ADL), flushed in order.
    pending_out: Vec<Output>,
    /// Accounts whose positions ADL changed, to evaluate again.
    readmit: Vec<u32>,
    // Scratch, reused so that the tick path allocates nothing once warm.
    touched: Vec<u32>,
    bands: Vec<Band>,
    band_scratch: BandScratch,
    /// This engine's place among the risk stage's shards; its order ids carry it.
    shard: shard::ShardTag,
}

/// What [`RiskEngine::into_load_parts`] gives back: what a freshly loaded engine was built from.
#[derive(Debug)]
pub struct LoadParts {
    /// The instruments.
    pub table: InstrumentTable,
    /// The marks at load.
    pub marks: MarkPrices,
    /// The accounts, in load order.
    pub accounts: Vec<Account>,
    /// The thresholds.
    pub config: RiskConfig,
    /// Which units a tick evaluates.
    pub scan: Scan,
    /// The insurance fund's starting balance.
    pub fund: Money,
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
        let account_index = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id(), i as u32))
            .collect();
        let base_instruments = table.iter().map(|(_, i)| i.clone()).collect();
        let accounts = adl_rows::Accounts::new(accounts, &table);
        let mut engine = RiskEngine {
            table,
            marks,
            accounts,
            account_index,
            units,
            index,
            holders,
            unpriced: Vec::new(),
            retry: Vec::new(),
            weights: vec![1_000_000_000; instruments],
            config,
            scan,
            counters: RiskCounters::default(),
            fund: InsuranceFund::new(Money::ZERO),
            // Room for a position on every instrument: taking one over allocates nothing.
            fund_book: Account::with_capacity(takeover::FUND_ACCOUNT_ID, Money::ZERO, instruments),
            fund_jobs: vec![None; instruments],
            breaker: breaker::Breaker::default(),
            base_instruments,
            scales: vec![(0, Rate::ONE); instruments],
            twap: vec![expiry::Twap::default(); instruments],
            settled: vec![false; instruments],
            next_expiry_ns: i128::MAX,
            books: vec![Book::default(); instruments],
            vol: vec![0; instruments],
            jobs: jobs::Jobs::new(instruments),
            adl_scratch: adl::AdlScratch::default(),
            adl_spare: adl::AdlRanking::default(),
            adl_work: AdlWork::default(),
            scratch: Scratch::default(),
            now_ns: 0,
            pending_out: Vec::new(),
            readmit: Vec::new(),
            touched: Vec::new(),
            bands: Vec::new(),
            band_scratch: BandScratch::default(),
            shard: shard::ShardTag::default(),
        };
        engine.next_expiry_ns = engine.compute_next_expiry();
        // Decisions found at load (accounts already called or liquidatable) are queued and
        // emitted with the outputs of the first event.
        let all: Vec<u32> = (0..engine.units.len() as u32).collect();
        let mut at_load = Vec::new();
        for unit in all {
            if engine.unit_has_positions(unit) {
                engine.units.set_state(unit, UnitState::Healthy);
                engine.evaluate(unit, 0, 0, &mut |o| at_load.push(o));
            }
        }
        at_load.append(&mut engine.pending_out);
        engine.pending_out = at_load;
        engine
    }

    /// Applies one validated input, passing every decision to `out` in order. The event's
    /// publish stamp is the engine's notion of time (deadlines), so a replay of the same input
    /// gives the same decisions.
    pub fn on_event(&mut self, event: &FeedEvent, out: &mut impl FnMut(Output)) {
        let FeedBody::Input(input) = event.body else {
            return;
        };
        let (seq, now) = (event.seq, event.publish_ns);
        self.now_ns = now;
        if !self.pending_out.is_empty() {
            self.flush(seq, now, out);
        }
        self.settle_due(seq, now, out);
        match input {
            Input::Tick(t) if self.is_settled(t.instrument) => self.counters.ticks_refused += 1,
            Input::Fill(f) if self.is_settled(f.instrument) => self.counters.fills_refused += 1,
            Input::Status(s) if s.state == shm::InstrumentState::Settling => {
                self.settle(s.instrument, s.settle_px, seq, now, out);
            }
            Input::Tick(t) => {
                let index_px = if t.index_px > 0 {
                    t.index_px
                } else {
                    t.mark_px
                };
                self.record_index(t.instrument, index_px, now);
                let book = Book {
                    bid_px: t.bid_px,
                    ask_px: t.ask_px,
                    bid_qty: t.bid_qty,
                    ask_qty: t.ask_qty,
                };
                self.on_tick_at(t.instrument, Price(t.mark_px), book, seq, now, out);
            }
            Input::Fill(f) => self.on_fill(&f, seq, now, out),
            Input::Collateral(c) => self.on_collateral(&c, seq, now, out),
            Input::Funding(f) => self.on_funding(f.instrument, f.rate_e9, seq, now, out),
            Input::Status(_) | Input::Heartbeat(_) => {}
        }
        // Whatever ADL an input caused is emitted with that input's records, not the next's.
        self.flush(seq, now, out);
        self.breaker.update(
            &self.config.liquidation.breaker,
            now,
            self.fund.balance(),
            out,
        );
    }

    /// Applies a mark price for an instrument (no book, time 0): the core of a tick.
    pub fn on_tick(
        &mut self,
        instrument: u32,
        mark: Price,
        seq: u64,
        out: &mut impl FnMut(Output),
    ) {
        self.on_tick_at(instrument, mark, Book::default(), seq, 0, out);
    }

    /// Applies a tick: mark, book, then the units whose band it left, then the jobs on it.
    pub fn on_tick_at(
        &mut self,
        instrument: u32,
        mark: Price,
        book: Book,
        seq: u64,
        now_ns: u64,
        out: &mut impl FnMut(Output),
    ) {
        if !self.pending_out.is_empty() {
            self.flush(seq, now_ns, out);
        }
        self.now_ns = now_ns;
        let id = InstrumentId(instrument);
        let previous = self.marks.get(id);
        if !self.marks.set(id, mark) {
            return;
        }
        self.counters.ticks += 1;
        if let Some(b) = self.books.get_mut(instrument as usize) {
            *b = book;
        }
        if let (Some(prev), Some(vol)) = (previous, self.vol.get_mut(instrument as usize)) {
            // EWMA (α = 1/32) of |Δp|/p in 10^-9 units.
            let moved = (u128::from(mark.0.abs_diff(prev.0)) * 1_000_000_000
                / u128::from(prev.0.unsigned_abs().max(1))) as u64;
            *vol = *vol - *vol / 32 + moved / 32;
        }
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
        if previous.is_none() {
            touched.append(&mut self.unpriced);
        }
        touched.append(&mut self.retry);
        if self.config.vol_scaling.is_some() {
            self.rescale(instrument, seq, now_ns, out);
        }
        // Units interact (ADL, the fund), so they are evaluated in one canonical order: by id.
        touched.sort_unstable();
        touched.dedup();
        for &unit in &touched {
            self.evaluate(unit, seq, now_ns, out);
        }
        self.touched = touched;
        if !self.jobs.is_empty() {
            self.work_jobs(instrument, seq, now_ns, out);
        }
        self.flush(seq, now_ns, out);
    }

    /// A fill: of one of our liquidation orders, or an ordinary trade of an account.
    fn on_fill(&mut self, f: &shm::Fill, seq: u64, now_ns: u64, out: &mut impl FnMut(Output)) {
        if f.liquidation_order_id != 0
            && self.on_liquidation_fill(
                f.liquidation_order_id,
                f.qty,
                Price(f.price_px),
                seq,
                now_ns,
                out,
            )
        {
            self.flush(seq, now_ns, out);
            return;
        }
        let Some(&a) = self.account_index.get(&f.account) else {
            self.counters.fills_refused += 1;
            return;
        };
        let id = InstrumentId(f.instrument);
        let mode = self.accounts[a as usize]
            .position_index(id)
            .map(|i| self.accounts[a as usize].positions()[i].mode())
            .unwrap_or(MarginMode::Cross);
        let fee = Money::from_scaled_floor(i128::from(f.fee_money), shm::MONEY_DECIMALS)
            .unwrap_or(Money::ZERO);
        let fill = crate::margin::Fill {
            instrument: id,
            qty: crate::margin::Qty(f.qty),
            price: Price(f.price_px),
            fee,
            mode,
        };
        let had = self.accounts[a as usize].position_index(id).is_some();
        let table = &self.table;
        match self
            .accounts
            .update(a, |account| account.apply_fill(table, fill))
        {
            Ok(outcome) => {
                self.counters.fills += 1;
                if outcome.isolated_shortfall.is_positive() {
                    self.fund.cover(outcome.isolated_shortfall);
                }
            }
            Err(_) => {
                self.counters.fills_refused += 1;
                return;
            }
        }
        let now_has = self.accounts[a as usize].position_index(id).is_some();
        if now_has
            && !had
            && let Some(h) = self.holders.get_mut(f.instrument as usize)
        {
            h.push(a);
        }
        if mode == MarginMode::Isolated && !now_has {
            self.units.release_isolated(a, f.instrument);
        }
        let unit = match mode {
            MarginMode::Isolated => self.units.isolated(a, f.instrument),
            MarginMode::Cross => Some(a),
        };
        if let Some(unit) = unit {
            self.readmit_unit(unit, seq, now_ns, out);
        }
        // An isolated close hands its margin back to the wallet: the cross unit changed too.
        self.readmit.push(a);
    }

    /// A deposit or withdrawal on an account's cross wallet.
    fn on_collateral(
        &mut self,
        c: &shm::Collateral,
        seq: u64,
        now_ns: u64,
        out: &mut impl FnMut(Output),
    ) {
        let Some(&a) = self.account_index.get(&c.account) else {
            self.counters.fills_refused += 1;
            return;
        };
        let Some(amount) =
            Money::from_scaled_floor(i128::from(c.amount_money), shm::MONEY_DECIMALS)
        else {
            self.counters.fills_refused += 1;
            return;
        };
        if self
            .accounts
            .update(a, |account| account.change_wallet(amount))
            .is_err()
        {
            self.counters.fills_refused += 1;
            return;
        }
        self.counters.collateral += 1;
        self.readmit_unit(a, seq, now_ns, out);
    }

    /// Re-evaluates a unit whose balances or positions changed (unless it is being liquidated).
    fn readmit_unit(&mut self, unit: u32, seq: u64, now_ns: u64, out: &mut impl FnMut(Output)) {
        let state = self.units.get(unit).map(|u| u.state);
        match state {
            Some(UnitState::Liquidating) | None => {}
            Some(_) => {
                if self.unit_has_positions(unit) {
                    if state == Some(UnitState::Flat) {
                        self.units.set_state(unit, UnitState::Healthy);
                    }
                    self.evaluate(unit, seq, now_ns, out);
                } else {
                    self.index.unband(unit);
                    self.units.set_state(unit, UnitState::Flat);
                }
            }
        }
    }

    /// Emits what ADL produced and re-evaluates the counterparties it touched.
    fn flush(&mut self, seq: u64, now_ns: u64, out: &mut impl FnMut(Output)) {
        while !self.pending_out.is_empty() || !self.readmit.is_empty() {
            for o in self.pending_out.drain(..) {
                out(o);
            }
            // The buffers are swapped and handed back, so that this allocates nothing once warm.
            let spare = std::mem::take(&mut self.scratch.readmit);
            let mut readmit = std::mem::replace(&mut self.readmit, spare);
            let mut units = std::mem::take(&mut self.scratch.units);
            for &a in &readmit {
                units.clear();
                units.push(a);
                units.extend(
                    self.accounts[a as usize]
                        .positions()
                        .iter()
                        .filter(|p| p.mode() == MarginMode::Isolated)
                        .filter_map(|p| self.units.isolated(a, p.instrument().0)),
                );
                for &u in &units {
                    self.readmit_unit(u, seq, now_ns, out);
                }
            }
            units.clear();
            readmit.clear();
            self.scratch.units = units;
            self.scratch.readmit = readmit;
        }
    }

    /// Evaluates one unit exactly, runs its state machine and bands it again.
    fn evaluate(&mut self, unit: u32, seq: u64, now_ns: u64, out: &mut impl FnMut(Output)) {
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
                if !self.start_liquidation(unit, &summary, seq, now_ns) {
                    // Nothing could be planned (an evaluation failed) or ADL closed everything
                    // at once: flat, or evaluated again on the next tick.
                    if self.unit_has_positions(unit) {
                        self.units.set_state(unit, UnitState::Healthy);
                        self.retry.push(unit);
                    } else {
                        self.units.set_state(unit, UnitState::Flat);
                    }
                }
            }
            // Only the index reads bands: the scans evaluate every unit they cover on every tick.
            UnitState::Healthy | UnitState::Called if self.scan != Scan::Index => {}
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
            // A released isolated slot (stale in a holder list) holds nothing, even when the
            // account holds the instrument again, cross.
            u.instrument != CROSS
                && self.units.isolated(u.account, u.instrument) == Some(unit)
                && account
                    .position_index(InstrumentId(u.instrument))
                    .is_some_and(|i| account.positions()[i].mode() == MarginMode::Isolated)
        }
    }

    /// Sets the insurance fund's starting balance (before any input).
    pub fn with_fund(mut self, initial: Money) -> RiskEngine {
        self.fund = InsuranceFund::new(initial);
        self
    }

    /// Places the engine among the risk stage's shards (before any input): its order ids then
    /// carry the shard's number (see [`shard`]).
    pub fn with_shard(mut self, tag: shard::ShardTag) -> RiskEngine {
        self.shard = tag;
        self
    }

    /// The engine's place among the risk stage's shards.
    pub fn shard(&self) -> shard::ShardTag {
        self.shard
    }

    /// An order id for a child of `account`'s job on `instrument`, carrying the shard's tag.
    pub(crate) fn order_id(&self, account: u64, instrument: u32, seq: u64, n: u32) -> u64 {
        self.shard
            .tag(liquidation::order_id(account, instrument, seq, n))
    }

    /// What a freshly loaded engine was built from (instruments as loaded, marks, accounts,
    /// thresholds, scan, the fund's starting balance), to build it again differently (e.g. in
    /// shards). Meant for an engine that has applied no input: what inputs changed is lost.
    pub fn into_load_parts(self) -> LoadParts {
        let mut table = InstrumentTable::new();
        for inst in self.base_instruments {
            // Cannot fail: the same instruments made the running table.
            let _ = table.push(inst);
        }
        LoadParts {
            table,
            marks: self.marks,
            accounts: self.accounts.into_vec(),
            config: self.config,
            scan: self.scan,
            fund: self.fund.initial(),
        }
    }

    /// The insurance fund.
    pub fn fund(&self) -> &InsuranceFund {
        &self.fund
    }

    /// The insurance fund's circuit breaker.
    pub fn breaker(&self) -> &breaker::Breaker {
        &self.breaker
    }

    /// Liquidation jobs still open.
    pub fn open_jobs(&self) -> usize {
        self.jobs.len()
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
        self.accounts.as_slice()
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
    /// index, the holder lists, the ADL copies and the ADL rankings' scratch), for the memory
    /// report.
    pub fn heap_bytes(&self) -> usize {
        crate::bulk::heap_bytes(self.accounts.as_slice())
            + self.units.heap_bytes()
            + self.index.heap_bytes()
            + self.holders.iter().map(|h| h.capacity() * 4).sum::<usize>()
            + self.adl_scratch.heap_bytes()
            + self.accounts.copies_heap_bytes()
    }

    /// What the ADL rankings have cost since the engine was built or restored.
    pub fn adl_work(&self) -> AdlWork {
        let mut work = self.adl_work;
        work.lists_grown = self.accounts.lists_grown();
        work
    }
}

/// What the ADL rankings have cost: counted as they run, not part of the engine's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdlWork {
    /// Rankings built (one per ADL event, and one per [`RiskEngine::adl_queue`]).
    pub rankings: u64,
    /// Candidates bounded from their copies, over all rankings.
    pub bounded: u64,
    /// Candidates scored exactly, over all rankings.
    pub scored: u64,
    /// Allocations the lists of ADL copies made to grow since loading.
    pub lists_grown: u64,
}

/// Buffers the engine reuses so that its hot path allocates nothing once warm. Not part of the
/// state: nothing reads what they hold between inputs.
#[derive(Debug, Default)]
struct Scratch {
    /// Liquidation planning: the positions in priority order, and the cuts planned.
    order: Vec<usize>,
    cuts: Vec<liquidation::Cut>,
    /// The accounts to re-evaluate being worked through while new ones queue in `readmit`.
    readmit: Vec<u32>,
    /// The units of one account being re-evaluated.
    units: Vec<u32>,
    /// A spare for the fund's inventory, which a takeover books on a copy first.
    fund_book: Option<Account>,
}

#[cfg(test)]
mod adl_tests;
#[cfg(test)]
mod conservation_tests;
#[cfg(test)]
mod liquidation_tests;
#[cfg(test)]
mod tests;

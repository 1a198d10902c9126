//! The risk engine's state as bytes, for snapshots ([`crate::recovery`]).
//!
//! [`RiskEngine::encode_state`] writes everything a future decision depends on: marks, accounts
//! and positions, margin units and their states (margin-call latches), the live safe bands,
//! holder lists, the insurance fund, its breaker and its inventory (taken-over positions and
//! their jobs), open liquidation jobs (children, ready queues, timeouts, order ids), funding and
//! expiry state, volatility and MMR scales, books, the engine clock and the counters. Maps are
//! written in key order and heaps as sorted lists, so equal states give equal bytes.
//!
//! Last come the tiers, liquidation fees and thresholds in force ([`super::reload::RiskParams`]:
//! a SIGHUP reload may have changed them since the configuration was read); a restored engine
//! runs with those, not the configuration's.
//!
//! Not written, because they are rebuilt: the instrument table (from those instruments and the
//! stored MMR scales), the account-id map, the band index's stale entries, the accounts' ADL
//! copies and scratch buffers. [`RiskEngine::restore_state`] applies the bytes to an engine
//! built from the same configuration and checks every index it reads, so a damaged or foreign
//! state is an error, never a panic later.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use super::liquidation::{Child, Job};
use super::takeover::{FUND, FUND_ACCOUNT_ID};
use super::units::{Unit, UnitState};
use super::{Book, RiskCounters, RiskEngine};
use crate::index::{Band, BandIndex};
use crate::margin::{Account, InstrumentId, MarginMode, MarkPrices, Money, Position, Price, Qty};
use crate::num::Rate;
use crate::recovery::codec::{DecodeError, Reader, Writer};
use crate::shm::{Output, Record, Side};

fn unit_state_code(s: UnitState) -> u8 {
    s as u8
}

fn unit_state_from(code: u8) -> Option<UnitState> {
    Some(match code {
        0 => UnitState::Flat,
        1 => UnitState::Healthy,
        2 => UnitState::Called,
        3 => UnitState::Liquidating,
        4 => UnitState::Unpriced,
        _ => return None,
    })
}

fn counters_words(c: &RiskCounters) -> [u64; 17] {
    [
        c.ticks,
        c.evaluations,
        c.margin_calls,
        c.liquidations,
        c.unevaluable,
        c.collateral,
        c.orders,
        c.liquidation_fills,
        c.fills,
        c.fills_refused,
        c.adl,
        c.adl_shortfall,
        c.funding,
        c.settlements,
        c.ticks_refused,
        c.rescales,
        c.takeovers,
    ]
}

fn counters_from(w: [u64; 17]) -> RiskCounters {
    RiskCounters {
        ticks: w[0],
        evaluations: w[1],
        margin_calls: w[2],
        liquidations: w[3],
        unevaluable: w[4],
        collateral: w[5],
        orders: w[6],
        liquidation_fills: w[7],
        fills: w[8],
        fills_refused: w[9],
        adl: w[10],
        adl_shortfall: w[11],
        funding: w[12],
        settlements: w[13],
        ticks_refused: w[14],
        rescales: w[15],
        takeovers: w[16],
    }
}

fn write_job(w: &mut Writer, j: &Job) {
    w.u32(j.unit);
    w.u32(j.account);
    w.u32(j.instrument);
    w.u8(j.side.code());
    w.i64(j.remaining);
    w.i64(j.limit_px);
    w.bool(j.full);
    w.u64(j.seq);
    w.u32(j.children);
    w.u64(j.progress_ns);
    w.bool(j.child.is_some());
    if let Some(c) = j.child {
        w.u64(c.order_id);
        w.i64(c.qty);
        w.u64(c.sent_ns);
        w.i64(c.limit_px);
    }
}

fn read_job(r: &mut Reader) -> Result<Job, DecodeError> {
    let unit = r.u32()?;
    let account = r.u32()?;
    let instrument = r.u32()?;
    let side = Side::from_code(r.u8()?).ok_or_else(|| r.invalid("a job side other than 1 or 2"))?;
    let remaining = r.i64()?;
    let limit_px = r.i64()?;
    let full = r.bool()?;
    let seq = r.u64()?;
    let children = r.u32()?;
    let progress_ns = r.u64()?;
    let child = if r.bool()? {
        Some(Child {
            order_id: r.u64()?,
            qty: r.i64()?,
            sent_ns: r.u64()?,
            limit_px: r.i64()?,
        })
    } else {
        None
    };
    Ok(Job {
        unit,
        account,
        instrument,
        side,
        remaining,
        limit_px,
        full,
        seq,
        children,
        progress_ns,
        child,
    })
}

/// Checks that every id in `ids` is below `bound`.
fn write_account(w: &mut Writer, a: &Account) {
    w.u64(a.id());
    w.i128(a.wallet().to_bits());
    w.len_of(a.positions().len());
    for p in a.positions() {
        w.u32(p.instrument().0);
        w.i64(p.qty().0);
        w.i128(p.cost());
        w.u8(match p.mode() {
            MarginMode::Cross => 0,
            MarginMode::Isolated => 1,
        });
        w.i128(p.isolated_margin().to_bits());
    }
}

/// An account of `n` instruments, as [`write_account`] wrote it.
fn read_account(r: &mut Reader, n: usize) -> Result<Account, DecodeError> {
    let id = r.u64()?;
    let wallet = Money::from_bits(r.i128()?);
    let np = r.len_of(45)?;
    let mut account = Account::with_capacity(id, wallet, np);
    for _ in 0..np {
        let instrument = r.u32()?;
        let qty = r.i64()?;
        let cost = r.i128()?;
        let mode = match r.u8()? {
            0 => MarginMode::Cross,
            1 => MarginMode::Isolated,
            _ => return Err(r.invalid("a margin mode other than 0 or 1")),
        };
        let margin = Money::from_bits(r.i128()?);
        if instrument as usize >= n {
            return Err(r.invalid("a position on an unknown instrument"));
        }
        let p = Position::from_parts(InstrumentId(instrument), Qty(qty), cost, mode, margin)
            .ok_or_else(|| r.invalid("a position breaking its invariants"))?;
        account
            .push_position(p)
            .map_err(|_| r.invalid("two positions of one account on one instrument"))?;
    }
    Ok(account)
}

fn check_ids(r: &Reader, ids: &[u32], bound: usize, what: &'static str) -> Result<(), DecodeError> {
    if ids.iter().all(|&i| (i as usize) < bound) {
        Ok(())
    } else {
        Err(r.invalid(what))
    }
}

impl RiskEngine {
    /// Writes the engine's state (see the module docs). Call it between two inputs.
    pub fn encode_state(&self, w: &mut Writer) {
        let n = self.table.len();
        w.len_of(n);
        for (_, inst) in self.table.iter() {
            w.len_of(inst.symbol.len());
            w.bytes(inst.symbol.as_bytes());
        }
        for i in 0..n {
            w.i64(self.marks.get(InstrumentId(i as u32)).map_or(0, |p| p.0));
        }
        w.len_of(self.accounts.len());
        for a in self.accounts.as_slice() {
            write_account(w, a);
        }
        w.len_of(self.units.units.len());
        for u in &self.units.units {
            w.u32(u.account);
            w.u32(u.instrument);
            w.u8(unit_state_code(u.state));
        }
        let mut isolated: Vec<_> = self.units.isolated.iter().collect();
        isolated.sort_unstable();
        w.len_of(isolated.len());
        for (&(a, i), &u) in isolated {
            w.u32(a);
            w.u32(i);
            w.u32(u);
        }
        w.u32s(&self.units.free);
        let bands = self.index.live_bands();
        w.len_of(bands.len());
        for (unit, b) in bands {
            w.u32(unit);
            w.u32(b.instrument);
            w.i64(b.lo);
            w.i64(b.hi);
        }
        w.len_of(self.holders.len());
        for h in &self.holders {
            w.u32s(h);
        }
        w.u32s(&self.unpriced);
        w.u32s(&self.retry);
        w.u64s(&self.weights);
        for c in counters_words(&self.counters) {
            w.u64(c);
        }
        let f = &self.fund;
        for m in [
            f.balance,
            f.initial,
            f.fees,
            f.surplus,
            f.covered,
            f.uncovered,
        ] {
            w.i128(m.to_bits());
        }
        w.len_of(self.breaker.peaks.len());
        for &(t, m) in &self.breaker.peaks {
            w.u64(t);
            w.i128(m.to_bits());
        }
        w.bool(self.breaker.tripped_at.is_some());
        w.u64(self.breaker.tripped_at.unwrap_or(0));
        w.u64(self.breaker.trips);
        w.len_of(self.scales.len());
        for &(t, s) in &self.scales {
            w.u64(t);
            w.u64(s.0);
        }
        w.len_of(self.twap.len());
        for t in &self.twap {
            w.i64(t.last_px);
            w.i128(t.last_ns);
            w.i128(t.sum);
            w.i128(t.span);
        }
        w.len_of(self.settled.len());
        for &s in &self.settled {
            w.bool(s);
        }
        w.i128(self.next_expiry_ns);
        w.len_of(self.books.len());
        for b in &self.books {
            w.i64(b.bid_px);
            w.i64(b.ask_px);
            w.u32(b.bid_qty);
            w.u32(b.ask_qty);
        }
        w.u64s(&self.vol);
        let jobs = &self.jobs;
        w.len_of(jobs.slots.len());
        for slot in &jobs.slots {
            w.bool(slot.is_some());
            if let Some(j) = slot {
                write_job(w, j);
            }
        }
        w.u32s(&jobs.free);
        w.len_of(jobs.ready.len());
        for q in &jobs.ready {
            w.len_of(q.len());
            for &s in q {
                w.u32(s);
            }
        }
        w.len_of(jobs.timeouts.len());
        for heap in &jobs.timeouts {
            let mut entries: Vec<(u64, u32)> = heap.iter().map(|Reverse(e)| *e).collect();
            entries.sort_unstable();
            w.len_of(entries.len());
            for (due, slot) in entries {
                w.u64(due);
                w.u32(slot);
            }
        }
        let mut orders: Vec<_> = jobs.orders.iter().collect();
        orders.sort_unstable();
        w.len_of(orders.len());
        for (&id, &slot) in orders {
            w.u64(id);
            w.u32(slot);
        }
        let mut per_unit: Vec<_> = jobs.per_unit.iter().collect();
        per_unit.sort_unstable();
        w.len_of(per_unit.len());
        for (&u, &k) in per_unit {
            w.u32(u);
            w.u32(k);
        }
        w.u64(jobs.len as u64);
        w.u64(self.now_ns);
        w.len_of(self.pending_out.len());
        for o in &self.pending_out {
            w.bytes(&o.encode().to_le_bytes());
        }
        w.u32s(&self.readmit);
        write_account(w, &self.fund_book);
        w.len_of(self.fund_jobs.len());
        for j in &self.fund_jobs {
            w.u32(j.unwrap_or(u32::MAX));
        }
        // The tiers, fees and thresholds in force (a reload may have changed them since the
        // configuration was read).
        self.params().encode(w);
    }

    /// Replaces this engine's state (built from the same configuration: instruments, thresholds,
    /// scan) with one written by [`encode_state`](Self::encode_state). The whole input must be
    /// consumed.
    pub fn restore_state(self, r: &mut Reader) -> Result<RiskEngine, DecodeError> {
        let engine = self.restore_state_part(r)?;
        r.finish()?;
        Ok(engine)
    }

    /// As [`restore_state`](Self::restore_state), leaving what follows the state in `r` (the
    /// next shard's state).
    pub(crate) fn restore_state_part(mut self, r: &mut Reader) -> Result<RiskEngine, DecodeError> {
        let n = r.len_of(8)?;
        if n != self.base_instruments.len() {
            return Err(r.invalid(
                "the state has another number of instruments than the configured scenario",
            ));
        }
        for base in &self.base_instruments {
            let len = r.len_of(1)?;
            if r.take(len)? != base.symbol.as_bytes() {
                return Err(r.invalid("an instrument symbol differs from the configured scenario"));
            }
        }
        let mut marks = MarkPrices::new(n);
        for i in 0..n {
            let px = r.i64()?;
            if px < 0 {
                return Err(r.invalid("a negative mark"));
            }
            marks.set(InstrumentId(i as u32), Price(px));
        }
        let accounts_len = r.len_of(32)?;
        let mut accounts = Vec::with_capacity(accounts_len);
        for _ in 0..accounts_len {
            accounts.push(read_account(r, n)?);
        }
        let units_len = r.len_of(9)?;
        let mut units = Vec::with_capacity(units_len);
        for _ in 0..units_len {
            let account = r.u32()?;
            let instrument = r.u32()?;
            let state =
                unit_state_from(r.u8()?).ok_or_else(|| r.invalid("an unknown unit state"))?;
            if account as usize >= accounts.len() {
                return Err(r.invalid("a unit of an unknown account"));
            }
            units.push(Unit {
                account,
                instrument,
                state,
            });
        }
        let mut isolated = HashMap::new();
        for _ in 0..r.len_of(12)? {
            let (a, i, u) = (r.u32()?, r.u32()?, r.u32()?);
            if u as usize >= units.len() {
                return Err(r.invalid("an isolated unit out of range"));
            }
            isolated.insert((a, i), u);
        }
        let free = r.u32s()?;
        check_ids(r, &free, units.len(), "a free unit out of range")?;
        let mut index = BandIndex::new(n, units.len());
        let mut bands: Vec<(u32, Band)> = Vec::new();
        for _ in 0..r.len_of(24)? {
            let unit = r.u32()?;
            let instrument = r.u32()?;
            let (lo, hi) = (r.i64()?, r.i64()?);
            if unit as usize >= units.len() || instrument as usize >= n {
                return Err(r.invalid("a band out of range"));
            }
            bands.push((unit, Band { instrument, lo, hi }));
        }
        for group in bands.chunk_by(|a, b| a.0 == b.0) {
            let set: Vec<Band> = group.iter().map(|(_, b)| *b).collect();
            index.set_bands(group[0].0, &set);
        }
        let holders_len = r.len_of(8)?;
        if holders_len != n {
            return Err(r.invalid("holder lists for another number of instruments"));
        }
        let mut holders = Vec::with_capacity(n);
        for _ in 0..n {
            let h = r.u32s()?;
            check_ids(r, &h, units.len(), "a holder out of range")?;
            holders.push(h);
        }
        let unpriced = r.u32s()?;
        check_ids(r, &unpriced, units.len(), "an unpriced unit out of range")?;
        let retry = r.u32s()?;
        check_ids(r, &retry, units.len(), "a retried unit out of range")?;
        let weights = r.u64s()?;
        if weights.len() != n {
            return Err(r.invalid("band weights for another number of instruments"));
        }
        let mut c = [0u64; 17];
        for v in &mut c {
            *v = r.u64()?;
        }
        let counters = counters_from(c);
        let mut m = [Money::ZERO; 6];
        for v in &mut m {
            *v = Money::from_bits(r.i128()?);
        }
        self.fund.balance = m[0];
        self.fund.initial = m[1];
        self.fund.fees = m[2];
        self.fund.surplus = m[3];
        self.fund.covered = m[4];
        self.fund.uncovered = m[5];
        let mut peaks = VecDeque::new();
        for _ in 0..r.len_of(24)? {
            peaks.push_back((r.u64()?, Money::from_bits(r.i128()?)));
        }
        let tripped = r.bool()?;
        let tripped_ns = r.u64()?;
        self.breaker.peaks = peaks;
        self.breaker.tripped_at = tripped.then_some(tripped_ns);
        self.breaker.trips = r.u64()?;
        if r.len_of(16)? != n {
            return Err(r.invalid("MMR scales for another number of instruments"));
        }
        let mut scales = Vec::with_capacity(n);
        for _ in 0..n {
            scales.push((r.u64()?, Rate(r.u64()?)));
        }
        if r.len_of(56)? != n {
            return Err(r.invalid("TWAP state for another number of instruments"));
        }
        for t in self.twap.iter_mut() {
            t.last_px = r.i64()?;
            t.last_ns = r.i128()?;
            t.sum = r.i128()?;
            t.span = r.i128()?;
        }
        if r.len_of(1)? != n {
            return Err(r.invalid("settlement flags for another number of instruments"));
        }
        for s in self.settled.iter_mut() {
            *s = r.bool()?;
        }
        let next_expiry_ns = r.i128()?;
        if r.len_of(24)? != n {
            return Err(r.invalid("books for another number of instruments"));
        }
        let mut books = Vec::with_capacity(n);
        for _ in 0..n {
            books.push(Book {
                bid_px: r.i64()?,
                ask_px: r.i64()?,
                bid_qty: r.u32()?,
                ask_qty: r.u32()?,
            });
        }
        let vol = r.u64s()?;
        if vol.len() != n {
            return Err(r.invalid("volatility for another number of instruments"));
        }
        let slots_len = r.len_of(1)?;
        let mut slots = Vec::with_capacity(slots_len);
        for _ in 0..slots_len {
            if r.bool()? {
                let j = read_job(r)?;
                let fund_job = j.unit == FUND && j.account == FUND;
                if (!fund_job
                    && (j.unit as usize >= units.len() || j.account as usize >= accounts.len()))
                    || j.instrument as usize >= n
                {
                    return Err(r.invalid("a liquidation job out of range"));
                }
                slots.push(Some(j));
            } else {
                slots.push(None);
            }
        }
        let jobs_free = r.u32s()?;
        check_ids(r, &jobs_free, slots.len(), "a free job slot out of range")?;
        if r.len_of(8)? != n {
            return Err(r.invalid("ready queues for another number of instruments"));
        }
        let mut ready = Vec::with_capacity(n);
        for _ in 0..n {
            let q = r.u32s()?;
            check_ids(r, &q, slots.len(), "a ready job out of range")?;
            ready.push(VecDeque::from(q));
        }
        if r.len_of(8)? != n {
            return Err(r.invalid("timeouts for another number of instruments"));
        }
        let mut timeouts = Vec::with_capacity(n);
        for _ in 0..n {
            let mut heap = BinaryHeap::new();
            for _ in 0..r.len_of(12)? {
                let (due, slot) = (r.u64()?, r.u32()?);
                if slot as usize >= slots.len() {
                    return Err(r.invalid("a timeout of a job out of range"));
                }
                heap.push(Reverse((due, slot)));
            }
            timeouts.push(heap);
        }
        let mut orders = HashMap::new();
        for _ in 0..r.len_of(12)? {
            let (id, slot) = (r.u64()?, r.u32()?);
            if slot as usize >= slots.len() {
                return Err(r.invalid("an order of a job out of range"));
            }
            orders.insert(id, slot);
        }
        let mut per_unit = HashMap::new();
        for _ in 0..r.len_of(8)? {
            per_unit.insert(r.u32()?, r.u32()?);
        }
        let jobs_len = r.u64()? as usize;
        if jobs_len != slots.iter().filter(|s| s.is_some()).count() {
            return Err(r.invalid("a job count that does not match the jobs"));
        }
        let now_ns = r.u64()?;
        let mut pending_out = Vec::new();
        for _ in 0..r.len_of(64)? {
            let record = Record::from_le_bytes(r.take(64)?)
                .ok_or_else(|| r.invalid("a pending output record"))?;
            pending_out
                .push(Output::decode(&record).map_err(|_| r.invalid("a pending output record"))?);
        }
        let readmit = r.u32s()?;
        check_ids(
            r,
            &readmit,
            accounts.len(),
            "a re-admitted account out of range",
        )?;
        let fund_book = read_account(r, n)?;
        if fund_book.id() != FUND_ACCOUNT_ID {
            return Err(r.invalid("a fund inventory under another account id"));
        }
        if r.len_of(4)? != n {
            return Err(r.invalid("fund jobs for another number of instruments"));
        }
        let mut fund_jobs = Vec::with_capacity(n);
        for _ in 0..n {
            let slot = r.u32()?;
            if slot == u32::MAX {
                fund_jobs.push(None);
            } else if slots
                .get(slot as usize)
                .is_some_and(|s| s.is_some_and(|j| j.account == FUND))
            {
                fund_jobs.push(Some(slot));
            } else {
                return Err(r.invalid("a fund job slot that holds no fund job"));
            }
        }
        let params = crate::risk::reload::RiskParams::decode_part(r)?;
        if crate::risk::reload::check_instruments(&self.base_instruments, &params.instruments)
            .is_err()
        {
            return Err(r.invalid(
                "the state's instruments differ from the configured ones in a field that only \
                 a restart changes",
            ));
        }
        self.base_instruments = params.instruments;
        self.config = params.config;

        // Instruments: as configured, with the stored MMR scales applied.
        let mut table = crate::margin::InstrumentTable::new();
        for (base, &(_, scale)) in self.base_instruments.iter().zip(&scales) {
            let inst = if scale == Rate::ONE {
                base.clone()
            } else {
                super::vol::scaled_instrument(base, scale)
                    .ok_or_else(|| r.invalid("an MMR scale the instrument cannot take"))?
            };
            table
                .push(inst)
                .ok_or_else(|| r.invalid("a duplicate instrument symbol"))?;
        }
        self.account_index = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (a.id(), i as u32))
            .collect();
        self.table = table;
        self.marks = marks;
        self.accounts = super::adl_rows::Accounts::new(accounts, &self.table);
        self.units.units = units;
        self.units.isolated = isolated;
        self.units.free = free;
        self.index = index;
        self.holders = holders;
        self.unpriced = unpriced;
        self.retry = retry;
        self.weights = weights;
        self.counters = counters;
        self.scales = scales;
        self.next_expiry_ns = next_expiry_ns;
        self.books = books;
        self.vol = vol;
        self.jobs.slots = slots;
        self.jobs.free = jobs_free;
        self.jobs.ready = ready;
        self.jobs.timeouts = timeouts;
        self.jobs.orders = orders;
        self.jobs.per_unit = per_unit;
        self.jobs.len = jobs_len;
        self.now_ns = now_ns;
        self.pending_out = pending_out;
        self.readmit = readmit;
        self.fund_book = fund_book;
        self.fund_jobs = fund_jobs;
        Ok(self)
    }
}

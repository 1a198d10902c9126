//! Auto-deleveraging: closing a bankrupt remainder against the opposite side's positions on the
//! instrument, in ADL rank order (when it happens: [`super::liquidation`]).
//!
//! ## The ranking
//! Every opposite-side position of the instrument is ranked by `profit% × effective leverage`
//! (`profit% ÷ effective leverage` when losing, see [`RiskEngine::adl_score`]): descending score,
//! then ascending account id, then the order of the instrument's holder list (which matters only
//! for two accounts with the same id). Each account counts once; positions being liquidated are
//! not counterparties. Each counterparty is closed at the bankrupt position's limit price; both
//! sides are booked at that price with no fee, so the proceeds of the two sides cancel exactly.
//!
//! A ranking of an instrument's side is reused for `adl_refresh_ns` of engine time (quantities
//! are read afresh at every close, so closed or flipped positions are skipped).
//!
//! ## What a ranking costs
//! Building one visits every holder of the instrument once: an account index from the unit, a
//! bit of a reusable bitset for the dedupe, and, for an opposite-side position, its score (the
//! account's positions for the bankruptcy price, and a few divisions). The scored entries go
//! into a binary heap, built in O(n), not sorted: [`AdlRanking`] pops them in rank order only as
//! far as closes need them (usually a handful) and keeps what it popped, so a ranking reused
//! later continues where it left off. The order popped is exactly that of a full sort.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use fixed::types::I80F48;

use super::RiskEngine;
use super::units::UnitState;
use crate::margin::{Fill, Instrument, InstrumentId, MarginMode, Money, Price, Qty};
use crate::shm::{self, Output, Side};

/// A scored counterparty, ordered so that the greatest is ranked first: higher score, then lower
/// account id, then earlier in the holder list.
///
/// Invariant: within one ranking `seq` is unique, so no two entries compare equal; equality
/// and order are both over `(score, id, seq)` (`account` follows from `seq`).
#[derive(Debug, Clone, Copy)]
struct Entry {
    score: I80F48,
    /// The account's id (the first tie-break).
    id: u64,
    /// Place among the ranking's candidates, in holder-list order (the last tie-break).
    seq: u32,
    /// Account index.
    account: u32,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .cmp(&other.score)
            .then(other.id.cmp(&self.id))
            .then(other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

/// Positions ranked for ADL on one side of an instrument: `(score, account index)`, best first,
/// popped from a heap only as far as they are read.
///
/// Invariant: every entry of `ranked` ranks before every entry of `rest`, and `ranked` is in
/// rank order; so `ranked` followed by `rest` popped to the end is the full ranking.
#[derive(Debug, Clone, Default)]
pub(crate) struct AdlRanking {
    /// The entries popped so far, in rank order.
    ranked: Vec<(I80F48, u32)>,
    /// The entries not read yet.
    rest: BinaryHeap<Entry>,
}

impl AdlRanking {
    /// A ranking already in rank order (as a snapshot stores it).
    pub(crate) fn from_ranked(ranked: Vec<(I80F48, u32)>) -> AdlRanking {
        AdlRanking {
            ranked,
            rest: BinaryHeap::new(),
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.ranked.len() + self.rest.len()
    }

    /// The `k`-th entry (0 is the first), popping the heap as far as needed.
    pub(crate) fn get(&mut self, k: usize) -> Option<(I80F48, u32)> {
        while self.ranked.len() <= k {
            let e = self.rest.pop()?;
            debug_assert!(self.rest.peek().is_none_or(|next| *next < e));
            self.ranked.push((e.score, e.account));
        }
        self.ranked.get(k).copied()
    }

    /// Every entry in rank order (snapshots and quantiles; sorts what was not popped yet).
    pub(crate) fn in_order(&self) -> Vec<(I80F48, u32)> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(&self.ranked);
        let mut rest = self.rest.clone().into_vec();
        rest.sort_unstable_by(|x, y| y.cmp(x));
        out.extend(rest.iter().map(|e| (e.score, e.account)));
        out
    }

    /// Empties it, keeping its buffers.
    fn clear(&mut self) -> Vec<Entry> {
        self.ranked.clear();
        let mut rest = std::mem::take(&mut self.rest).into_vec();
        rest.clear();
        rest
    }
}

/// Scratch of the ADL rankings, reused so that building one allocates nothing once warm.
///
/// Invariant: between two rankings every bit of `seen` is clear.
#[derive(Debug, Clone, Default)]
pub(crate) struct AdlScratch {
    /// One bit per account index: already met in the holder list being ranked.
    seen: Vec<u64>,
    /// Accounts of the holder list, each once, in holder-list order.
    accounts: Vec<u32>,
}

impl AdlScratch {
    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.seen.capacity() * 8 + self.accounts.capacity() * 4
    }
}

impl RiskEngine {
    /// Closes `qty` lots of `account`'s position on `instrument` (side `side` of the position)
    /// against the opposite side's positions by ADL rank, at `limit_px` (or, when the position
    /// has no bankruptcy price, at the mark). Returns the quantity closed.
    pub(crate) fn adl_now(
        &mut self,
        account: u32,
        instrument: u32,
        side: i8,
        qty: i64,
        limit_px: i64,
        seq: u64,
    ) -> i64 {
        let id = InstrumentId(instrument);
        let price = if limit_px == i64::MAX {
            match self.marks.get(id) {
                Some(m) => m.0,
                None => return 0,
            }
        } else {
            limit_px
        };
        let closing = if side > 0 { Side::Sell } else { Side::Buy };
        let qty = qty.min(self.held(account, instrument, closing));
        if qty <= 0 {
            return 0;
        }
        // A ranking is reused within one input and for `adl_refresh_ns` of engine time
        // (quantities are read afresh below, so closed or flipped positions are skipped).
        let now = self.now_ns;
        let refresh = self.config.liquidation.adl_refresh_ns;
        let (at, mut ranked) = match self.adl_cache.remove(&(instrument, -side)) {
            Some((at, q, ranked)) if q == seq || now.saturating_sub(at) < refresh => (at, ranked),
            stale => {
                let mut scratch = std::mem::take(&mut self.adl_scratch);
                let reuse = stale.map(|(_, _, r)| r).unwrap_or_default();
                let ranked = self.adl_ranking(instrument, -side, &mut scratch, reuse);
                self.adl_scratch = scratch;
                (now, ranked)
            }
        };
        let bankrupt_id = self.acct(account).id();
        let mut left = qty;
        let mut k = 0;
        while left > 0 {
            let Some((_, counterparty)) = ranked.get(k) else {
                break;
            };
            k += 1;
            if counterparty == account || self.liquidating(counterparty, instrument) {
                continue;
            }
            let Some(i) = self.accounts[counterparty as usize].position_index(id) else {
                continue;
            };
            if self.accounts[counterparty as usize].positions()[i].side() != -side {
                continue;
            }
            let cq = self.accounts[counterparty as usize].positions()[i].qty().0;
            let x = cq.abs().min(left);
            let close = |q: i64| Fill {
                instrument: id,
                qty: Qty(q),
                price: Price(price),
                fee: Money::ZERO,
                mode: MarginMode::Cross,
            };
            let c_mode = self.accounts[counterparty as usize].positions()[i].mode();
            match self.accounts[counterparty as usize]
                .apply_fill(&self.table, close(-cq.signum() * x))
            {
                Ok(outcome) if outcome.isolated_shortfall.is_positive() => {
                    // A losing isolated counterparty closed beyond its margin: the fund's.
                    self.fund.cover(outcome.isolated_shortfall);
                }
                Ok(_) => {}
                Err(_) => continue,
            }
            let b_mode = self
                .acct(account)
                .position_index(id)
                .map(|k| self.acct(account).positions()[k].mode());
            match self.apply_fill_to(account, close(cq.signum() * x)) {
                Ok(outcome) if outcome.isolated_shortfall.is_positive() => {
                    self.fund.cover(outcome.isolated_shortfall);
                }
                _ => {}
            }
            if b_mode == Some(MarginMode::Isolated)
                && self.accounts[account as usize].position_index(id).is_none()
            {
                self.units.release_isolated(account, instrument);
            }
            if c_mode == MarginMode::Isolated
                && self.accounts[counterparty as usize]
                    .position_index(id)
                    .is_none()
            {
                self.units.release_isolated(counterparty, instrument);
            }
            left -= x;
            self.counters.adl += 1;
            let cid = self.accounts[counterparty as usize].id();
            let side = if cq > 0 { Side::Sell } else { Side::Buy };
            self.pending_out.push(Output::Adl(shm::Adl {
                order_id: self.order_id(cid, instrument, seq, u32::MAX - self.counters.adl as u32),
                account: cid,
                instrument,
                side,
                qty: x,
                price_px: price,
                bankrupt_account: bankrupt_id,
            }));
            self.readmit.push(counterparty);
        }
        if left < qty {
            self.reset_negative_wallet(account);
            if account != super::takeover::FUND {
                self.readmit.push(account);
            }
        }
        if left > 0 {
            self.counters.adl_shortfall += 1;
        }
        self.adl_cache
            .insert((instrument, -side), (at, seq, ranked));
        qty - left
    }

    /// The ADL ranking of the positions on `instrument` whose quantity has sign `sign` (see the
    /// module docs), built in `reuse`'s buffers with `scratch`.
    pub(crate) fn adl_ranking(
        &self,
        instrument: u32,
        sign: i8,
        scratch: &mut AdlScratch,
        mut reuse: AdlRanking,
    ) -> AdlRanking {
        let mut entries = reuse.clear();
        let id = InstrumentId(instrument);
        let Some(mark) = self.marks.get(id) else {
            reuse.rest = BinaryHeap::from(entries);
            return reuse;
        };
        self.adl_candidates(instrument, scratch);
        for (k, &a) in scratch.accounts.iter().enumerate() {
            let account = &self.accounts[a as usize];
            let Some(i) = account.position_index(id) else {
                continue;
            };
            if account.positions()[i].side() != sign {
                continue;
            }
            // A position being liquidated is not a counterparty.
            if self.liquidating(a, instrument) {
                continue;
            }
            entries.push(Entry {
                score: self.adl_score(a, i, mark).unwrap_or(I80F48::MIN),
                id: account.id(),
                seq: k as u32,
                account: a,
            });
        }
        reuse.rest = BinaryHeap::from(entries);
        reuse
    }

    /// Fills `scratch.accounts` with the accounts of `instrument`'s holder list, each once, in
    /// the order they first appear; leaves `scratch.seen` clear.
    fn adl_candidates(&self, instrument: u32, scratch: &mut AdlScratch) {
        let words = self.accounts.len().div_ceil(64);
        if scratch.seen.len() < words {
            scratch.seen.resize(words, 0);
        }
        scratch.accounts.clear();
        for &unit in self.holders.get(instrument as usize).into_iter().flatten() {
            let Some(u) = self.units.get(unit) else {
                continue;
            };
            let a = u.account;
            let (word, bit) = (a as usize / 64, 1u64 << (a % 64));
            // Units belong to loaded accounts, so the bit exists.
            let Some(w) = scratch.seen.get_mut(word) else {
                continue;
            };
            if *w & bit == 0 {
                *w |= bit;
                scratch.accounts.push(a);
            }
        }
        for &a in &scratch.accounts {
            scratch.seen[a as usize / 64] = 0;
        }
        debug_assert!(scratch.seen.iter().all(|&w| w == 0));
    }

    /// Whether `account`'s position on `instrument` belongs to a unit being liquidated.
    fn liquidating(&self, account: u32, instrument: u32) -> bool {
        let a = &self.accounts[account as usize];
        let Some(i) = a.position_index(InstrumentId(instrument)) else {
            return false;
        };
        let holder = match a.positions()[i].mode() {
            MarginMode::Cross => Some(account),
            MarginMode::Isolated => self.units.isolated(account, instrument),
        };
        holder.and_then(|h| self.units.get(h)).map(|h| h.state) == Some(UnitState::Liquidating)
    }

    /// The ADL rank quantile of `account`'s position on `instrument`, 1 to 5 like an exchange's
    /// lights: 5 is the top fifth of the same-side positions by ADL score (deleveraged first),
    /// 1 the bottom fifth. For rank `r` (0-based) among `n`: `5 − ⌊5r/n⌋`. `None` without a
    /// position, a mark, or for a position being liquidated (it is not a counterparty).
    pub fn adl_quantile(&self, account: u32, instrument: u32) -> Option<u8> {
        let a = self.accounts.get(account as usize)?;
        let i = a.position_index(InstrumentId(instrument))?;
        let ranked = self
            .adl_ranking(
                instrument,
                a.positions()[i].side(),
                &mut AdlScratch::default(),
                AdlRanking::default(),
            )
            .in_order();
        let n = ranked.len();
        let r = ranked.iter().position(|&(_, x)| x == account)?;
        Some(5 - (5 * r / n) as u8)
    }

    /// `profit% × effective leverage` (÷ when losing) of position `i` of account `a`, where
    /// `effective leverage = |mark value| / (mark value − bankruptcy value)`.
    pub(super) fn adl_score(&self, a: u32, i: usize, mark: Price) -> Option<I80F48> {
        let account = &self.accounts[a as usize];
        let p = &account.positions()[i];
        let inst = self.table.get(p.instrument())?;
        let nd = inst.notional_decimals();
        let upnl = Money::from_scaled_floor(p.upnl_exact(mark), nd)?.to_fixed();
        let cost = Money::from_scaled_floor(p.cost().abs(), nd)?.to_fixed();
        let value = Money::from_scaled_floor(Instrument::notional(p.qty(), mark), nd)?.to_fixed();
        if cost <= 0 || value <= 0 {
            return None;
        }
        let profit = upnl.checked_div(cost)?;
        let bp = account
            .bankruptcy_price(i, &self.table, &self.marks)
            .ok()
            .flatten()
            .map(Money::to_fixed)
            .unwrap_or(I80F48::ZERO);
        let qty = I80F48::from_num(p.qty().0.unsigned_abs())
            .checked_div(I80F48::from_num(10u64.checked_pow(inst.qty_decimals)?))?;
        let bank_value = bp.checked_mul(qty)?;
        let margin = (value - bank_value).abs().max(I80F48::DELTA);
        let leverage = value.checked_div(margin)?;
        if profit >= 0 {
            profit.checked_mul(leverage)
        } else {
            profit.checked_div(leverage)
        }
    }
}

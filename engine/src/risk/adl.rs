//! Auto-deleveraging: closing a bankrupt remainder against the opposite side's positions on the
//! instrument, in ADL rank order (when it happens: [`super::liquidation`]).
//!
//! ## The ranking
//! Every opposite-side position of the instrument is ranked by `profit% × effective leverage`
//! (`profit% ÷ effective leverage` when losing, see [`RiskEngine::adl_score`]): descending score,
//! then ascending account id, then ascending account index (which matters only for two accounts
//! with the same id). Each account counts once; positions being liquidated are not
//! counterparties. Each counterparty is closed at the bankrupt position's limit price; both
//! sides are booked at that price with no fee, so the proceeds of the two sides cancel exactly.
//!
//! Every ADL event ranks afresh, as of the moment it happens, and walks the ranking only as far
//! as its quantity needs. Nothing the walk changes can move an entry it has not reached: a close
//! changes the counterparty just taken and the bankrupt account, which holds the other side.
//! So the entries read are exactly the first ones of a full sort at the event.
//!
//! ## What a ranking costs
//! Building one reads the instrument's list of copies of the positions on the ranked side
//! ([`super::adl_rows`]) in order, and computes from each copy an upper bound on its score (a
//! few `f64` operations; `+∞` when none is promised). The [`BEST`] highest bounds are kept in a
//! heap as they come; the others wait unordered, every one of them at most the lowest of those.
//! Reading the ranking ([`AdlRanking::get`]) then scores exactly, in descending bound order, only until the best
//! exact score beats every bound left, and pops that entry: it is the next in rank order, since
//! every entry not scored yet scores at most its bound. An account listed twice is scored
//! once. An ADL event reads a handful of entries and scores about as many, whatever the number
//! of holders; only the bounding pass visits them all, at a few tens of nanoseconds each.
//! `adl_tests` checks every prefix of every ranking against the full sort of the exact scores.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use fixed::types::I80F48;

use super::RiskEngine;
use super::units::UnitState;
use crate::margin::{Fill, Instrument, InstrumentId, MarginMode, Money, Price, Qty};
use crate::shm::{self, Output, Side};

/// An exactly scored counterparty, ordered so that the greatest is ranked first: higher score,
/// then lower account id, then lower account index.
///
/// Invariant: within one ranking an account appears once, so no two entries compare equal.
#[derive(Debug, Clone, Copy)]
struct Entry {
    score: I80F48,
    /// The account's id (the first tie-break).
    id: u64,
    /// Account index (the last tie-break).
    account: u32,
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .cmp(&other.score)
            .then(other.id.cmp(&self.id))
            .then(other.account.cmp(&self.account))
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

/// A candidate not scored yet: an upper bound on its score.
#[derive(Debug, Clone, Copy)]
struct Bounded {
    bound: f64,
    account: u32,
}

impl Ord for Bounded {
    fn cmp(&self, other: &Self) -> Ordering {
        self.bound
            .total_cmp(&other.bound)
            .then(other.account.cmp(&self.account))
    }
}

impl PartialOrd for Bounded {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Bounded {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Bounded {}

/// Whether exact score `score` is above every exact score that `bound` bounds: `bound` widened
/// by a relative and absolute 2^-40 covers the rounding of `score` to `f64` (at most a relative
/// 2^-53).
fn beats(score: I80F48, bound: f64) -> bool {
    const WIDEN: f64 = 1.0 / (1u64 << 40) as f64;
    score.to_num::<f64>() > bound + bound.abs() * WIDEN + WIDEN
}

/// How many candidates of the highest bounds a ranking keeps in a heap as it bounds them; the
/// others wait unordered, and are ordered only if reading goes past those.
pub(crate) const BEST: usize = 32;

/// Positions ranked for ADL on one side of an instrument, read in rank order: the entries read
/// so far, the candidates scored exactly and not yet read, and the candidates only bounded.
///
/// Invariants: `ranked` is in rank order and every entry of it ranks before every candidate
/// left (scored or not); every candidate only bounded scores at most its bound; every bound in
/// `rest` is at most every bound in `best`; a bit of `taken` is set for each account of
/// `taken_list` and no other.
#[derive(Debug, Clone, Default)]
pub(crate) struct AdlRanking {
    instrument: u32,
    sign: i8,
    mark: Price,
    /// The entries read so far, in rank order.
    ranked: Vec<(I80F48, u32)>,
    exact: BinaryHeap<Entry>,
    /// The candidates of the highest bounds, not scored yet.
    best: BinaryHeap<Bounded>,
    /// The other candidates not scored yet, unordered.
    rest: Vec<Bounded>,
    /// Accounts scored (a list may hold an account twice: the second is skipped).
    taken: Vec<u64>,
    taken_list: Vec<u32>,
    /// Candidates bounded, and scored exactly so far.
    bounded: u32,
    scored: u32,
}

impl AdlRanking {
    /// The `k`-th entry (0 is the first), scoring candidates as far as needed. `engine` must be
    /// in the state the ranking was built in, as far as the candidates not read yet go.
    pub(crate) fn get(&mut self, engine: &RiskEngine, k: usize) -> Option<(I80F48, u32)> {
        while self.ranked.len() <= k {
            while let Some(b) = self.next_bound() {
                if self
                    .exact
                    .peek()
                    .is_some_and(|top| beats(top.score, b.bound))
                {
                    break;
                }
                self.best.pop();
                let (word, bit) = (b.account as usize / 64, 1u64 << (b.account % 64));
                let Some(w) = self.taken.get_mut(word) else {
                    continue;
                };
                if *w & bit != 0 {
                    continue;
                }
                *w |= bit;
                self.taken_list.push(b.account);
                self.scored += 1;
                if let Some(e) = engine.adl_entry(b.account, self.instrument, self.sign, self.mark)
                {
                    self.exact.push(e);
                }
            }
            let e = self.exact.pop()?;
            self.ranked.push((e.score, e.account));
        }
        self.ranked.get(k).copied()
    }

    /// The candidate of the highest bound not scored yet, at the top of `best` (ordering `rest`
    /// into it once `best` is empty).
    fn next_bound(&mut self) -> Option<Bounded> {
        if self.best.is_empty() && !self.rest.is_empty() {
            let rest = std::mem::take(&mut self.rest);
            let mut emptied = std::mem::replace(&mut self.best, BinaryHeap::from(rest)).into_vec();
            emptied.clear();
            self.rest = emptied;
        }
        self.best.peek().copied()
    }

    /// Every entry in rank order (quantiles; scores every candidate left).
    pub(crate) fn in_order(&mut self, engine: &RiskEngine) -> &[(I80F48, u32)] {
        let mut k = self.ranked.len();
        while self.get(engine, k).is_some() {
            k += 1;
        }
        &self.ranked
    }

    /// Candidates bounded and scored exactly so far.
    pub(crate) fn work(&self) -> (u32, u32) {
        (self.bounded, self.scored)
    }

    /// Empties it for a ranking of `instrument`'s side `sign` at `mark` among `accounts`
    /// accounts, keeping its buffers.
    fn reset(&mut self, instrument: u32, sign: i8, mark: Price, accounts: usize) {
        self.instrument = instrument;
        self.sign = sign;
        self.mark = mark;
        self.ranked.clear();
        self.exact.clear();
        self.best.clear();
        self.rest.clear();
        for &a in &self.taken_list {
            if let Some(w) = self.taken.get_mut(a as usize / 64) {
                *w = 0;
            }
        }
        self.taken_list.clear();
        let words = accounts.div_ceil(64);
        if self.taken.len() < words {
            self.taken.resize(words, 0);
        }
        debug_assert!(self.taken.iter().all(|&w| w == 0));
        self.bounded = 0;
        self.scored = 0;
    }

    /// Adds a candidate while building: kept among the `BEST` highest bounds in `low` (a
    /// min-heap), or else put in `rest`.
    fn add(&mut self, low: &mut BinaryHeap<std::cmp::Reverse<Bounded>>, b: Bounded) {
        self.bounded += 1;
        if low.len() < BEST {
            low.push(std::cmp::Reverse(b));
        } else if low.peek().is_some_and(|m| b > m.0) {
            if let Some(std::cmp::Reverse(out)) = low.pop() {
                self.rest.push(out);
            }
            low.push(std::cmp::Reverse(b));
        } else {
            self.rest.push(b);
        }
    }

    /// Ends a build: moves the highest bounds from `low` into `best`, leaving `low` empty.
    fn finish(&mut self, low: &mut BinaryHeap<std::cmp::Reverse<Bounded>>) {
        while let Some(std::cmp::Reverse(b)) = low.pop() {
            self.best.push(b);
        }
    }
}

/// Scratch of the ADL rankings, reused so that building one allocates nothing once warm.
#[derive(Debug, Clone, Default)]
pub(crate) struct AdlScratch {
    /// The highest bounds met so far in a build (a min-heap); empty between builds.
    low: BinaryHeap<std::cmp::Reverse<Bounded>>,
    /// Raw marks by instrument as `f64` (0 = none).
    marks: Vec<f64>,
}

impl AdlScratch {
    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.low.capacity() * std::mem::size_of::<Bounded>() + self.marks.capacity() * 8
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
        // Ranked afresh for every event (see the module docs), in the spare ranking's buffers.
        let mut scratch = std::mem::take(&mut self.adl_scratch);
        let spare = std::mem::take(&mut self.adl_spare);
        let mut ranked = self.adl_ranking(instrument, -side, &mut scratch, spare);
        self.adl_scratch = scratch;
        let bankrupt_id = self.acct(account).id();
        let mut left = qty;
        let mut k = 0;
        while left > 0 {
            let Some((_, counterparty)) = ranked.get(self, k) else {
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
            let table = &self.table;
            match self.accounts.update(counterparty, |c| {
                c.apply_fill(table, close(-cq.signum() * x))
            }) {
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
        let (bounded, scored) = ranked.work();
        self.adl_work.rankings += 1;
        self.adl_work.bounded += u64::from(bounded);
        self.adl_work.scored += u64::from(scored);
        self.adl_spare = ranked;
        qty - left
    }

    /// The ADL ranking of the positions on `instrument` whose quantity has sign `sign` (see the
    /// module docs), built in `reuse`'s buffers with `scratch`: every candidate bounded, none
    /// scored yet.
    pub(crate) fn adl_ranking(
        &self,
        instrument: u32,
        sign: i8,
        scratch: &mut AdlScratch,
        mut reuse: AdlRanking,
    ) -> AdlRanking {
        let id = InstrumentId(instrument);
        let mark = self.marks.get(id).unwrap_or(Price(0));
        reuse.reset(instrument, sign, mark, self.accounts.len());
        if mark.0 <= 0 {
            return reuse;
        }
        let count = self.table.len();
        scratch.marks.clear();
        scratch.marks.extend((0..count).map(|i| {
            self.marks
                .get(InstrumentId(i as u32))
                .map_or(0.0, |m| m.0 as f64)
        }));
        let low = &mut scratch.low;
        self.accounts.adl_bounds(
            instrument,
            sign,
            mark.0 as f64,
            &scratch.marks,
            |account, bound| {
                reuse.add(low, Bounded { bound, account });
            },
        );
        reuse.finish(&mut scratch.low);
        reuse
    }

    /// Account `a` as an entry of the ranking of `instrument`'s side `sign` at `mark`: `None`
    /// when it holds no such position or the position is being liquidated.
    fn adl_entry(&self, a: u32, instrument: u32, sign: i8, mark: Price) -> Option<Entry> {
        let account = self.accounts.get(a as usize)?;
        let i = account.position_index(InstrumentId(instrument))?;
        if account.positions()[i].side() != sign || self.liquidating(a, instrument) {
            return None;
        }
        Some(Entry {
            score: self.adl_score(a, i, mark).unwrap_or(I80F48::MIN),
            id: account.id(),
            account: a,
        })
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

    /// The ids of the first `k` accounts in the ADL ranking of the positions of side `side`
    /// (`> 0`: longs) on `instrument`, as ranked now: the counterparties that a bankrupt position
    /// of the other side would be closed against first, in order. Ranks afresh (whatever ADL has
    /// cached) and changes no state.
    pub fn adl_queue(&mut self, instrument: u32, side: i8, k: usize) -> Vec<u64> {
        let sign = if side > 0 { 1 } else { -1 };
        let mut scratch = std::mem::take(&mut self.adl_scratch);
        let spare = std::mem::take(&mut self.adl_spare);
        let mut ranked = self.adl_ranking(instrument, sign, &mut scratch, spare);
        self.adl_scratch = scratch;
        let queue = (0..k)
            .map_while(|n| ranked.get(self, n))
            .map(|(_, a)| self.accounts[a as usize].id())
            .collect();
        let (bounded, scored) = ranked.work();
        self.adl_work.rankings += 1;
        self.adl_work.bounded += u64::from(bounded);
        self.adl_work.scored += u64::from(scored);
        self.adl_spare = ranked;
        queue
    }

    /// The ADL rank quantile of `account`'s position on `instrument`, 1 to 5 like an exchange's
    /// lights: 5 is the top fifth of the same-side positions by ADL score (deleveraged first),
    /// 1 the bottom fifth. For rank `r` (0-based) among `n`: `5 − ⌊5r/n⌋`. `None` without a
    /// position, a mark, or for a position being liquidated (it is not a counterparty).
    pub fn adl_quantile(&self, account: u32, instrument: u32) -> Option<u8> {
        let a = self.accounts.get(account as usize)?;
        let i = a.position_index(InstrumentId(instrument))?;
        let mut ranking = self.adl_ranking(
            instrument,
            a.positions()[i].side(),
            &mut AdlScratch::default(),
            AdlRanking::default(),
        );
        let ranked = ranking.in_order(self);
        let n = ranked.len();
        let r = ranked.iter().position(|&(_, x)| x == account)?;
        Some(5 - (5 * r / n) as u8)
    }

    /// `profit% × effective leverage` (÷ when losing) of position `i` of account `a`, where
    /// `effective leverage = |mark value| / (mark value − bankruptcy value)`.
    ///
    /// Every step is in `I80F48` as first written (the amounts floored from their exact integers,
    /// the bankruptcy price rounded against the account, `0` when it does not exist); the
    /// divisions go through [`div`] and the bankruptcy price through
    /// [`Account::bankruptcy_price_lean`](crate::margin::Account), which give the same bits
    /// faster.
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
        let profit = div(upnl, cost)?;
        let bp = account
            .bankruptcy_price_lean(i, &self.table, &self.marks)
            .map(Money::to_fixed)
            .unwrap_or(I80F48::ZERO);
        // `|qty| / 10^qty_decimals` in `I80F48`: both are whole numbers, so the quotient of their
        // fixed-point bits is `|qty|·2^48 / 10^qty_decimals`, truncated, exactly.
        let qty = I80F48::from_bits(
            i128::try_from(
                (u128::from(p.qty().0.unsigned_abs()) << FRAC_BITS)
                    / u128::from(10u64.checked_pow(inst.qty_decimals)?),
            )
            .ok()?,
        );
        let bank_value = bp.checked_mul(qty)?;
        let margin = (value - bank_value).abs().max(I80F48::DELTA);
        let leverage = div(value, margin)?;
        if profit >= 0 {
            profit.checked_mul(leverage)
        } else {
            div(profit, leverage)
        }
    }
}

/// Fractional bits of `I80F48`.
const FRAC_BITS: u32 = 48;

/// `a.checked_div(b)`, bit for bit: `fixed` divides `a·2^48` by `b` in 256 bits and truncates
/// toward zero; when `|a| < 2^79`, `a·2^48` fits in an `i128`, whose division truncates toward
/// zero too, and the quotient, no larger than the dividend, cannot overflow. About four times
/// cheaper; ADL scores never come near the bound.
fn div(a: I80F48, b: I80F48) -> Option<I80F48> {
    let (x, y) = (a.to_bits(), b.to_bits());
    if y != 0 && x.unsigned_abs() < 1 << (127 - FRAC_BITS) {
        Some(I80F48::from_bits((x << FRAC_BITS) / y))
    } else {
        a.checked_div(b)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// Bits spread over every magnitude (and sign), the edges of `div`'s fast path included.
    fn bits(rng: &mut StdRng) -> i128 {
        let edge = 1i128 << (127 - FRAC_BITS);
        match rng.random_range(0..8) {
            0 => [
                0,
                1,
                -1,
                i128::MIN,
                i128::MAX,
                edge,
                edge - 1,
                -edge,
                1 - edge,
            ][rng.random_range(0..9)],
            _ => {
                let b = rng.random_range(0..127u32);
                let v = (rng.random::<i128>() & ((1i128 << b) - 1)) | (1i128 << b);
                if rng.random_bool(0.5) { -v } else { v }
            }
        }
    }

    #[test]
    fn div_is_checked_div_bit_for_bit() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut fast = 0;
        for _ in 0..2_000_000 {
            let (a, b) = (
                I80F48::from_bits(bits(&mut rng)),
                I80F48::from_bits(bits(&mut rng)),
            );
            assert_eq!(div(a, b), a.checked_div(b), "{a:?} / {b:?}");
            fast += u32::from(b != 0 && a.to_bits().unsigned_abs() < 1 << (127 - FRAC_BITS));
        }
        // Both paths were taken, each many times.
        assert!((100_000..1_900_000).contains(&fast), "{fast}");
    }

    #[test]
    fn entries_pop_in_the_order_of_a_full_sort_ties_included() {
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..500 {
            let n = rng.random_range(0..300u32);
            // Distinct account indices, scores and ids drawn from few values so that they tie.
            let entries: Vec<Entry> = (0..n)
                .map(|account| Entry {
                    score: I80F48::from_num(rng.random_range(-3..3)),
                    id: rng.random_range(0..20),
                    account,
                })
                .collect();
            let mut sorted = entries.clone();
            sorted.sort_by(|x, y| {
                y.score
                    .cmp(&x.score)
                    .then(x.id.cmp(&y.id))
                    .then(x.account.cmp(&y.account))
            });
            let mut heap = BinaryHeap::from(entries);
            for want in &sorted {
                let got = heap.pop().map(|e| (e.score, e.id, e.account));
                assert_eq!(got, Some((want.score, want.id, want.account)));
            }
            assert!(heap.is_empty());
        }
    }

    #[test]
    fn a_score_beats_a_bound_only_when_above_it() {
        let mut rng = StdRng::seed_from_u64(9);
        for _ in 0..1_000_000 {
            let score = I80F48::from_bits(bits(&mut rng) >> rng.random_range(0..100));
            let exact: f64 = score.to_num();
            // Bounds at, just under and just over the score, and anywhere.
            let bound = match rng.random_range(0..4) {
                0 => exact,
                1 => exact.next_down(),
                2 => exact.next_up(),
                _ => {
                    f64::from_bits(rng.random::<u64>() >> 2)
                        * if rng.random_bool(0.5) { 1.0 } else { -1.0 }
                }
            };
            if beats(score, bound) {
                // Exactly: `bits·2^-48 > bound` ⇔ `bits > ⌊bound·2^48⌋` for whole `bits` (the
                // scaling by a power of two is exact; the conversion saturates far outside).
                let floor = (bound * (1u64 << 48) as f64).floor() as i128;
                assert!(score.to_bits() > floor, "{score} vs {bound}");
            }
        }
        assert!(!beats(I80F48::MAX, f64::INFINITY));
        assert!(beats(I80F48::ZERO, -1e-6));
        assert!(!beats(I80F48::ZERO, 0.0));
    }
}

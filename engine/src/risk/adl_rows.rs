//! The accounts, with dense copies of what an ADL ranking reads first, and the upper bound on
//! an ADL score that a copy gives.
//!
//! ## Why
//! Ranking one side of an instrument for ADL used to score every holder exactly: a holder-list
//! unit, its account and its positions read from three places in memory, then a dozen 128-bit
//! divisions. An ADL event reads the first few entries of its ranking. So a ranking now bounds
//! every holder from a 64-byte copy of `f64` figures, kept per instrument and side in one
//! contiguous list that the ranking reads in order, and scores exactly only the holders whose
//! bound could still beat the best exact score found: see [`super::adl::AdlRanking`].
//!
//! ## Keeping the copies true
//! [`Accounts`] owns the accounts and their copies. It hands out accounts for reading only;
//! every change goes through [`Accounts::update`], which rewrites the account's copies after
//! the change: in place for a position still on the same instrument and side, appended to the
//! list of a new (instrument, side), marked dead in the list of one the account left. So every
//! position of an account of at most 3 positions has exactly one live copy, equal to what its
//! account gives (the copies are not part of the state: they are built again from the
//! accounts on restore). Where each copy is is kept per account. A full list is compacted (dead
//! copies dropped, the moved ones' places updated) before it grows, so it grows only when live
//! copies fill it. An account of more than 3 positions has no copies: it is listed by index in
//! a second list per instrument and side (which may hold it after it left, or twice; a ranking
//! checks the account) and bounded by `+∞`.
//!
//! ## The bound
//! [`Accounts::adl_bounds`] gives, for each position, an `f64` that is at least the exact score
//! [`RiskEngine::adl_score`](super::RiskEngine) computes, at the current marks, or `+∞` when it
//! cannot promise a finite one. Writing `v = |q|·P` (value), `c = |C|` (cost), `u = q·P − C`
//! (uPnL), `W''` (wallet plus the other cross positions' uPnL; isolated: the position's margin)
//! and `Q = |q|/10^qd`, the exact score is, in real numbers, `p·ℓ` (`p/ℓ` when `p < 0`) with
//! `p = u/c`, `ℓ = v/M`, `M = |v − max(mm, 0)|` and `mm = c − W''` for a long, `W'' + c` for a
//! short (the bankruptcy value `BP·Q`, 0 when there is no bankruptcy price). The engine computes
//! it in `I80F48` from amounts each rounded by at most one unit of 2^-48 (`ULP`): `u`, `c`, `v`
//! and each other position's uPnL floored, the cost ceiled, `BP` rounded once, `Q` truncated,
//! each product and quotient rounded once. Tracing those through:
//! - the exact `M` is within `ULP·(k + 8 + Q + BP + 1)` of the real one (`k` other cross
//!   positions; `BP`'s rounding is multiplied by `Q`, `Q`'s by `BP`);
//! - the exact `p` is within `ULP·(1 + |p|)/c·(1 + 2^-37) + ULP` of the real one when
//!   `c ≥ 2^-10`;
//! - the exact `ℓ` is within a relative `2^-19` and `ULP` of the real one when the error of
//!   `M` is below `2^-20·M` and `v ≥ 2^-10`.
//!
//! The copy's figures are the account's converted to `f64` (each within a relative 2^-52) and
//! the bound recomputes the same real formula; with at most 3 positions per copy every sum has at
//! most 6 terms, so its `f64` error is below `2^-48·(v + c + T)` for `M` and `mm` (`T` the sum of
//! the magnitudes in `W''`) and `2^-48·(v + c)` for `u`. The bound adds both errors, doubled, to
//! `p` and `M`, requires `c ≥ 2^-10`, `v ≥ 2^-10`, all magnitudes below 2^60 and the error of `M`
//! below `2^-20·M` (else it returns `+∞`), takes `p_hi·ℓ_hi` (or `p_hi/ℓ_hi` when `p_hi < 0`,
//! where the larger leverage gives the larger score), adds `2·ULP` for the last rounding and
//! widens the result by a relative and absolute `2^-40` for its own `f64` rounding. It returns
//! `+∞` for an account of more than 3 positions, for another cross position without a mark (the
//! engine then takes no bankruptcy price) and for anything not finite.
//!
//! `adl_tests` checks the bound against the exact score over random books, extremes included,
//! and every ranking against the full sort.

use crate::margin::{Account, InstrumentTable, MarginMode};

/// Positions an account may hold and still have copies; an account with more is bounded by
/// `+∞` (scored exactly).
const INLINE: usize = 3;

/// `account` of a dead copy.
const DEAD: u32 = u32::MAX;

/// `index` of a [`Loc`] that places nothing.
const NOWHERE: u32 = u32::MAX;

/// 2^-48, the unit of the engine's amounts.
const ULP: f64 = 1.0 / (1u64 << 48) as f64;

/// What bounding one position reads: the position, and the rest of its account as far as its
/// bankruptcy price goes.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(64))]
struct Copy {
    /// Account index, or [`DEAD`].
    account: u32,
    /// Other cross positions in `oa`/`oi` (0 for an isolated position).
    others: u32,
    /// `q·10^-nd`: the position's signed value per unit of raw mark (its sign is the side).
    a: f64,
    /// `C·10^-nd`: the signed cost.
    c: f64,
    /// Cross: the wallet less the other cross positions' signed costs; isolated: the margin.
    w0: f64,
    /// Cross: `|wallet|` plus the other cross positions' `|cost|`; isolated: `|margin|`.
    t0: f64,
    /// The other cross positions' `a` and instruments.
    oa: [f64; 2],
    oi: [u32; 2],
}

// One cache line a copy.
const _: () = assert!(std::mem::size_of::<Copy>() == 64);

/// Where one of an account's copies is.
#[derive(Debug, Clone, Copy)]
struct Loc {
    instrument: u32,
    /// Index in the list, or [`NOWHERE`].
    index: u32,
    side: i8,
}

const NO_LOC: Loc = Loc {
    instrument: 0,
    index: NOWHERE,
    side: 0,
};

/// The index of side `sign` in a per-instrument pair of lists.
const fn side_index(sign: i8) -> usize {
    if sign > 0 { 0 } else { 1 }
}

/// Whether `account` holds a position of side `sign` on `instrument`.
fn holds(account: &Account, instrument: u32, sign: i8) -> bool {
    account
        .positions()
        .iter()
        .any(|p| p.instrument().0 == instrument && p.side() == sign)
}

/// The copies, where they are, and the accounts of more than 3 positions (see the module docs).
#[derive(Debug, Clone, Default)]
struct Copies {
    /// Per instrument: the copies of long positions, then short ones.
    lists: Vec<[Vec<Copy>; 2]>,
    /// Per account: where its copies are.
    at: Vec<[Loc; INLINE]>,
    /// Per instrument and side: accounts of more than 3 positions holding it (stale entries and
    /// repeats allowed).
    wide: Vec<[Vec<u32>; 2]>,
    /// Per instrument: `10^-notional_decimals`.
    scale: Vec<f64>,
    /// Per instrument: `10^price_decimals` (`Q = |a|·10^pd`).
    price_unit: Vec<f64>,
    /// One bit per account (compacting `wide`); clear between uses.
    seen: Vec<u64>,
    /// Allocations the lists made to grow.
    grown: u64,
}

impl Copies {
    fn new(accounts: &[Account], table: &InstrumentTable) -> Copies {
        let count = table.len();
        let mut copies = Copies {
            lists: vec![[Vec::new(), Vec::new()]; count],
            at: vec![[NO_LOC; INLINE]; accounts.len()],
            wide: vec![[Vec::new(), Vec::new()]; count],
            scale: vec![0.0; count],
            price_unit: vec![0.0; count],
            seen: vec![0; accounts.len().div_ceil(64)],
            grown: 0,
        };
        for (id, inst) in table.iter() {
            copies.scale[id.index()] = 1.0 / 10f64.powi(inst.notional_decimals() as i32);
            copies.price_unit[id.index()] = 10f64.powi(inst.price_decimals as i32);
        }
        let mut sizes = vec![[0usize; 2]; count];
        for account in accounts {
            for p in account.positions() {
                if let Some(n) = sizes.get_mut(p.instrument().0 as usize) {
                    n[side_index(p.side())] += 1;
                }
            }
        }
        for (list, n) in copies.lists.iter_mut().zip(&sizes) {
            for side in 0..2 {
                list[side].reserve_exact(n[side] + n[side] / 4 + 16);
            }
        }
        for a in 0..accounts.len() {
            copies.refresh(a as u32, &[], accounts);
        }
        copies
    }

    /// The copy of position `k` of `account` (index `a`), which holds at most 3.
    fn copy_of(&self, a: u32, account: &Account, k: usize) -> Copy {
        let positions = account.positions();
        let p = &positions[k];
        let scale = |i: u32| self.scale.get(i as usize).copied().unwrap_or(f64::NAN);
        let mut copy = Copy {
            account: a,
            others: 0,
            a: p.qty().0 as f64 * scale(p.instrument().0),
            c: p.cost() as f64 * scale(p.instrument().0),
            w0: 0.0,
            t0: 0.0,
            oa: [0.0; 2],
            oi: [0; 2],
        };
        if p.mode() == MarginMode::Isolated {
            copy.w0 = bits_f64(p.isolated_margin().to_bits());
            copy.t0 = copy.w0.abs();
            return copy;
        }
        let wallet = bits_f64(account.wallet().to_bits());
        let (mut w0, mut t0) = (wallet, wallet.abs());
        for (j, o) in positions.iter().enumerate() {
            if j == k || o.mode() != MarginMode::Cross {
                continue;
            }
            let n = copy.others as usize;
            let i = o.instrument().0;
            let c = o.cost() as f64 * scale(i);
            w0 -= c;
            t0 += c.abs();
            copy.oa[n] = o.qty().0 as f64 * scale(i);
            copy.oi[n] = i;
            copy.others += 1;
        }
        copy.w0 = w0;
        copy.t0 = t0;
        copy
    }

    /// Rewrites account `a`'s copies after a change (`before`: its positions' (instrument,
    /// side) before the change when it held more than 3; read only then).
    fn refresh(&mut self, a: u32, before: &[(u32, i8)], accounts: &[Account]) {
        let account = &accounts[a as usize];
        let old = self.at[a as usize];
        let mut new = [NO_LOC; INLINE];
        if account.positions().len() <= INLINE {
            for (k, p) in account.positions().iter().enumerate() {
                let (i, side) = (p.instrument().0, p.side());
                let copy = self.copy_of(a, account, k);
                let kept = old
                    .iter()
                    .find(|l| l.index != NOWHERE && l.instrument == i && l.side == side);
                let index = match kept {
                    Some(l) => {
                        if let Some(slot) = self.slot_mut(i, side, l.index) {
                            *slot = copy;
                        }
                        l.index
                    }
                    None => self.push(i, side, copy),
                };
                new[k] = Loc {
                    instrument: i,
                    index,
                    side,
                };
            }
        } else {
            for p in account.positions() {
                let key = (p.instrument().0, p.side());
                if !before.contains(&key) || old.iter().any(|l| l.index != NOWHERE) {
                    self.list_wide(key, a, accounts);
                }
            }
        }
        // The copies of the (instrument, side) the account left die.
        for l in old.iter().filter(|l| l.index != NOWHERE) {
            let still = new
                .iter()
                .any(|n| n.index == l.index && n.instrument == l.instrument && n.side == l.side);
            if !still && let Some(slot) = self.slot_mut(l.instrument, l.side, l.index) {
                slot.account = DEAD;
            }
        }
        self.at[a as usize] = new;
    }

    fn slot_mut(&mut self, instrument: u32, side: i8, index: u32) -> Option<&mut Copy> {
        self.lists
            .get_mut(instrument as usize)?
            .get_mut(side_index(side))?
            .get_mut(index as usize)
    }

    /// Appends `copy` to the list of (`instrument`, `side`), compacting it first when full;
    /// returns its index.
    fn push(&mut self, instrument: u32, side: i8, copy: Copy) -> u32 {
        let Some(pair) = self.lists.get_mut(instrument as usize) else {
            return NOWHERE;
        };
        let list = &mut pair[side_index(side)];
        if list.len() == list.capacity() {
            // Drop the dead copies; the moved ones' places change.
            list.retain(|c| c.account != DEAD);
            for (j, c) in list.iter().enumerate() {
                if let Some(l) = self.at.get_mut(c.account as usize).and_then(|locs| {
                    locs.iter_mut()
                        .find(|l| l.instrument == instrument && l.side == side)
                }) {
                    l.index = j as u32;
                }
            }
            if list.len() >= list.capacity() / 4 * 3 {
                self.grown += 1;
                list.reserve_exact(list.len() / 2 + 16);
            }
        }
        list.push(copy);
        (list.len() - 1) as u32
    }

    /// Lists account `a` (of more than 3 positions) under `(instrument, side)`, compacting that
    /// list first when full.
    fn list_wide(&mut self, (instrument, side): (u32, i8), a: u32, accounts: &[Account]) {
        let Some(pair) = self.wide.get_mut(instrument as usize) else {
            return;
        };
        let list = &mut pair[side_index(side)];
        if list.len() == list.capacity() {
            let seen = &mut self.seen;
            list.retain(|&b| {
                let (word, bit) = (b as usize / 64, 1u64 << (b % 64));
                let (Some(account), Some(w)) = (accounts.get(b as usize), seen.get_mut(word))
                else {
                    return false;
                };
                if *w & bit != 0
                    || account.positions().len() <= INLINE
                    || !holds(account, instrument, side)
                {
                    return false;
                }
                *w |= bit;
                true
            });
            for &b in list.iter() {
                seen[b as usize / 64] = 0;
            }
            if list.len() == list.capacity() {
                self.grown += 1;
                list.reserve(list.len() + 16);
            }
        }
        list.push(a);
    }

    fn heap_bytes(&self) -> usize {
        let lists = |l: &Vec<[Vec<Copy>; 2]>| {
            l.iter()
                .flatten()
                .map(|v| v.capacity() * std::mem::size_of::<Copy>())
                .sum::<usize>()
        };
        lists(&self.lists)
            + self.at.capacity() * std::mem::size_of::<[Loc; INLINE]>()
            + self
                .wide
                .iter()
                .flatten()
                .map(|v| v.capacity() * 4)
                .sum::<usize>()
            + self.seen.capacity() * 8
            + (self.scale.capacity() + self.price_unit.capacity()) * 8
    }
}

/// An upper bound on the exact ADL score of the position `copy` shows, at raw mark `mark`
/// with the raw marks `marks` (0 = none) of every instrument, where `q_unit` is the
/// instrument's `10^price_decimals`; `None` when no finite bound is promised. See the module
/// docs.
fn bound_of(copy: &Copy, mark: f64, marks: &[f64], q_unit: f64) -> Option<f64> {
    const LIMIT: f64 = (1u64 << 60) as f64;
    const SMALL: f64 = 1.0 / 1024.0;
    let v = copy.a.abs() * mark;
    let c = copy.c.abs();
    let u = copy.a * mark - copy.c;
    let (mut w, mut t) = (copy.w0, copy.t0);
    let others = copy.others.min(2) as usize;
    for (&oa, &oi) in copy.oa[..others].iter().zip(&copy.oi[..others]) {
        let m = marks.get(oi as usize).copied().unwrap_or(0.0);
        if m <= 0.0 {
            return None;
        }
        let value = oa * m;
        w += value;
        t += value.abs();
    }
    let others = others as f64;
    let mm = if copy.a > 0.0 { c - w } else { w + c };
    let bank = mm.max(0.0);
    let m_real = (v - bank).abs();
    let q = copy.a.abs() * q_unit;
    if !(c >= SMALL && v >= SMALL && q > 0.0 && v < LIMIT && c < LIMIT && t < LIMIT) {
        return None;
    }
    let f64_err = |magnitude: f64| 2.0 * magnitude / (1u64 << 48) as f64;
    // The error of `M` is `f64_err(v + c + T) + 2·ULP·(k + 8 + Q + BP + 1)` with `BP` at most
    // `bank/Q + 1`; multiplied through by `Q > 0`, the test needs no division.
    let m_err_q = (f64_err(v + c + t) + 2.0 * ULP * (others + 10.0 + q)) * q + 2.0 * ULP * bank;
    // Written so that a NaN anywhere fails it too.
    if (m_real * q).partial_cmp(&(m_err_q * (1u64 << 20) as f64))
        != Some(std::cmp::Ordering::Greater)
    {
        return None;
    }
    let inv_c = 1.0 / c;
    let p = u * inv_c;
    let p_err = 2.0
        * ((ULP * (1.0 + p.abs()) + f64_err(v + c)) * inv_c + p.abs() / (1u64 << 50) as f64 + ULP);
    let p_hi = p + p_err;
    // `ℓ_hi = v/M·(1 + 2^-18) + 2·ULP`; `p_hi/ℓ_hi` is taken as `p_hi·M/(v·(1 + 2^-18) + 2·ULP·M)`,
    // one division either way.
    let widen = 1.0 + 1.0 / (1u64 << 18) as f64;
    let s_hi = if p_hi >= 0.0 {
        p_hi * (v / m_real * widen + 2.0 * ULP)
    } else {
        p_hi * m_real / (v * widen + 2.0 * ULP * m_real)
    } + 2.0 * ULP;
    let bound = s_hi + s_hi.abs() / (1u64 << 40) as f64 + 1.0 / (1u64 << 40) as f64;
    bound.is_finite().then_some(bound)
}

/// `bits·2^-48` as the nearest `f64`.
fn bits_f64(bits: i128) -> f64 {
    bits as f64 * ULP
}

/// The accounts, by index, with their ADL copies: readable freely, changed only through
/// [`Accounts::update`] (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Accounts {
    list: Vec<Account>,
    copies: Copies,
    /// Scratch: the (instrument, side) of an account's positions before a change.
    before: Vec<(u32, i8)>,
}

impl Accounts {
    /// `list` with copies built for `table`.
    pub(crate) fn new(list: Vec<Account>, table: &InstrumentTable) -> Accounts {
        let copies = Copies::new(&list, table);
        Accounts {
            list,
            copies,
            before: Vec::new(),
        }
    }

    /// Applies `change` to account `a` and brings its copies up to date.
    ///
    /// # Panics
    /// If `a` is not an account index (callers hold indices of loaded accounts).
    pub(crate) fn update<R>(&mut self, a: u32, change: impl FnOnce(&mut Account) -> R) -> R {
        let account = &mut self.list[a as usize];
        self.before.clear();
        // Only a wide account's refresh reads what it held before (a narrow one's places say).
        if account.positions().len() > INLINE {
            self.before.extend(
                account
                    .positions()
                    .iter()
                    .map(|p| (p.instrument().0, p.side())),
            );
        }
        let out = change(account);
        self.copies.refresh(a, &self.before, &self.list);
        out
    }

    /// The accounts in index order.
    pub(crate) fn as_slice(&self) -> &[Account] {
        &self.list
    }

    /// The account at `a`, if any.
    pub(crate) fn get(&self, a: usize) -> Option<&Account> {
        self.list.get(a)
    }

    /// How many.
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// The accounts, without their copies.
    pub(crate) fn into_vec(self) -> Vec<Account> {
        self.list
    }

    /// Allocations the copies' lists made to grow since the accounts were loaded.
    pub(crate) fn lists_grown(&self) -> u64 {
        self.copies.grown
    }

    /// Heap bytes held by the copies (the accounts' own are counted by their owner).
    pub(crate) fn copies_heap_bytes(&self) -> usize {
        self.copies.heap_bytes() + self.before.capacity() * 8
    }

    /// Calls `f(account, bound)` for every account holding `instrument` on side `sign`, at raw
    /// mark `mark` with the raw marks `marks` (0 = none) of every instrument, in list order;
    /// `bound` is `+∞` when no finite bound is promised. An account of more than 3 positions
    /// may come twice. See the module docs.
    pub(crate) fn adl_bounds(
        &self,
        instrument: u32,
        sign: i8,
        mark: f64,
        marks: &[f64],
        mut f: impl FnMut(u32, f64),
    ) {
        let (Some(pair), Some(wide), Some(&q_unit)) = (
            self.copies.lists.get(instrument as usize),
            self.copies.wide.get(instrument as usize),
            self.copies.price_unit.get(instrument as usize),
        ) else {
            return;
        };
        for copy in &pair[side_index(sign)] {
            if copy.account != DEAD {
                f(
                    copy.account,
                    bound_of(copy, mark, marks, q_unit).unwrap_or(f64::INFINITY),
                );
            }
        }
        for &a in &wide[side_index(sign)] {
            if let Some(account) = self.list.get(a as usize)
                && account.positions().len() > INLINE
                && holds(account, instrument, sign)
            {
                f(a, f64::INFINITY);
            }
        }
    }
}

#[cfg(test)]
impl Accounts {
    /// The bound [`Accounts::adl_bounds`] gives account `a`'s position on `instrument` of side
    /// `sign`; `None` when it holds none.
    pub(crate) fn adl_bound(
        &self,
        a: u32,
        instrument: u32,
        sign: i8,
        mark: f64,
        marks: &[f64],
    ) -> Option<f64> {
        let account = self.list.get(a as usize)?;
        if !holds(account, instrument, sign) {
            return None;
        }
        if account.positions().len() > INLINE {
            return Some(f64::INFINITY);
        }
        let loc = self
            .copies
            .at
            .get(a as usize)?
            .iter()
            .find(|l| l.index != NOWHERE && l.instrument == instrument && l.side == sign)?;
        let copy = self.copies.lists.get(instrument as usize)?[side_index(sign)]
            .get(loc.index as usize)?;
        let q_unit = *self.copies.price_unit.get(instrument as usize)?;
        Some(bound_of(copy, mark, marks, q_unit).unwrap_or(f64::INFINITY))
    }

    /// Panics unless every position of an account of at most 3 has exactly one live copy, where
    /// its account says, equal to the account's to the bit, and every position of a wider
    /// account is listed.
    pub(crate) fn check_copies(&self) {
        let bits = |c: &Copy| {
            [
                u64::from(c.account),
                u64::from(c.others),
                c.a.to_bits(),
                c.c.to_bits(),
                c.w0.to_bits(),
                c.t0.to_bits(),
                c.oa[0].to_bits(),
                c.oa[1].to_bits(),
                u64::from(c.oi[0]),
                u64::from(c.oi[1]),
            ]
        };
        let mut live = vec![0usize; self.list.len()];
        for list in self.copies.lists.iter().flatten() {
            for c in list.iter().filter(|c| c.account != DEAD) {
                live[c.account as usize] += 1;
            }
        }
        for (a, account) in self.list.iter().enumerate() {
            let positions = account.positions();
            if positions.len() > INLINE {
                assert_eq!(live[a], 0, "account {a}: copies of a wide account");
                for p in positions {
                    let i = p.instrument().0 as usize;
                    assert!(
                        self.copies.wide[i][side_index(p.side())].contains(&(a as u32)),
                        "wide account {a} not listed"
                    );
                }
                continue;
            }
            assert_eq!(live[a], positions.len(), "account {a}: live copies");
            for (k, p) in positions.iter().enumerate() {
                let (i, side) = (p.instrument().0, p.side());
                let loc = self.copies.at[a]
                    .iter()
                    .find(|l| l.index != NOWHERE && l.instrument == i && l.side == side)
                    .expect("a place for every position");
                let copy = &self.copies.lists[i as usize][side_index(side)][loc.index as usize];
                assert_eq!(
                    bits(copy),
                    bits(&self.copies.copy_of(a as u32, account, k)),
                    "copy of account {a} position {k}"
                );
            }
        }
    }
}

impl std::ops::Index<usize> for Accounts {
    type Output = Account;

    fn index(&self, a: usize) -> &Account {
        &self.list[a]
    }
}

//! The accounts, with a dense copy of what an ADL ranking reads first, and the upper bound on an
//! ADL score that the copy gives.
//!
//! ## Why
//! Ranking one side of an instrument for ADL used to score every holder exactly: a holder-list
//! unit, its account and its positions read from three places in memory, then a dozen 128-bit
//! divisions. An ADL event reads the first few entries of its ranking. So a ranking now bounds
//! every holder from a dense row of `f64` figures (one 128-byte row per account, read in the
//! order of a per-instrument, per-side list of account indices), and scores exactly only the
//! holders whose bound could still beat the best exact score found: see
//! [`super::adl::AdlRanking`].
//!
//! ## Keeping the rows true
//! [`Accounts`] owns the accounts and their rows. It hands out accounts for reading only;
//! every change goes through [`Accounts::update`], which rebuilds the account's row after the
//! change and adds the account to the list of every (instrument, side) it did not hold before.
//! So a row is always a copy of its account (the rows are not part of the state: they are
//! built again from the accounts on restore). The lists may hold accounts that have since left
//! the side, and an account more than once; a ranking checks the row and skips duplicates. A
//! full list is compacted (stale entries and duplicates dropped) before it grows, so it grows
//! only when the accounts really holding the side fill it.
//!
//! ## The bound
//! [`Rows::bound`] gives, for position `i` of a row, an `f64` that is at least the exact score
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
//! The row's figures are the account's converted to `f64` (each within a relative 2^-52) and
//! the bound recomputes the same real formula; with at most 3 positions inline every sum has at
//! most 6 terms, so its `f64` error is below `2^-48·(v + c + T)` for `M` and `mm` (`T` the sum of
//! the magnitudes in `W''`) and `2^-48·(v + c)` for `u`. The bound adds both errors, doubled, to
//! `p` and `M`, requires `c ≥ 2^-10`, `v ≥ 2^-10`, all magnitudes below 2^60 and the error of `M`
//! below `2^-20·M` (else it returns `+∞`), takes `p_hi·ℓ_hi` (or `p_hi/ℓ_hi` when `p_hi < 0`,
//! where the larger leverage gives the larger score), adds `2·ULP` for the last rounding and
//! widens the result by a relative and absolute `2^-40` for its own `f64` rounding. It returns
//! `+∞` for a row of more than 3 positions, for another cross position without a mark (the
//! engine then takes no bankruptcy price) and for anything not finite.
//!
//! `adl_tests` checks the bound against the exact score over random books, extremes included,
//! and every ranking against the full sort.

use crate::margin::{Account, InstrumentTable, MarginMode};

/// Positions a row holds; an account with more is bounded by `+∞` (scored exactly).
const INLINE: usize = 3;

/// `n` of a row whose account holds more than [`INLINE`] positions.
const OVERFLOW: u32 = u32::MAX;

/// 2^-48, the unit of the engine's amounts.
const ULP: f64 = 1.0 / (1u64 << 48) as f64;

/// One position of a row.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    instrument: u32,
    /// `1` long, `-1` short.
    side: i8,
    isolated: bool,
    /// `q·10^-nd`: the position's signed value per unit of raw mark.
    a: f64,
    /// `C·10^-nd`: the signed cost.
    c: f64,
    /// The isolated margin (isolated positions).
    iso: f64,
}

/// What a ranking reads of an account: its wallet and up to [`INLINE`] positions, in `f64`.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C, align(128))]
pub(crate) struct Row {
    wallet: f64,
    /// Slots in use, or [`OVERFLOW`].
    n: u32,
    slots: [Slot; INLINE],
}

impl Row {
    /// The slot of the position on `instrument` of side `sign`, if the row shows one.
    fn slot(&self, instrument: u32, sign: i8) -> Option<usize> {
        let n = if self.n == OVERFLOW {
            0
        } else {
            self.n as usize
        };
        self.slots[..n]
            .iter()
            .position(|s| s.instrument == instrument && s.side == sign)
    }
}

/// Whether the row's account holds a position of side `sign` on `instrument` (reading the
/// account when its row overflows).
fn holds(row: &Row, account: &Account, instrument: u32, sign: i8) -> bool {
    if row.n == OVERFLOW {
        account
            .positions()
            .iter()
            .any(|p| p.instrument().0 == instrument && p.side() == sign)
    } else {
        row.slot(instrument, sign).is_some()
    }
}

/// The index of side `sign` in a per-instrument pair of lists.
const fn side_index(sign: i8) -> usize {
    if sign > 0 { 0 } else { 1 }
}

/// Rows by account, and per instrument and side the accounts that hold it (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Rows {
    rows: Vec<Row>,
    /// Per instrument: the accounts holding it long, then short (stale entries and duplicates
    /// allowed).
    lists: Vec<[Vec<u32>; 2]>,
    /// Per instrument: `10^-notional_decimals`.
    scale: Vec<f64>,
    /// Per instrument: `10^price_decimals` (`Q = |a|·10^pd`).
    price_unit: Vec<f64>,
    /// One bit per account (compaction); clear between uses.
    seen: Vec<u64>,
    /// Allocations the lists made to grow.
    grown: u64,
}

impl Rows {
    /// Rows and lists for `accounts`.
    fn new(accounts: &[Account], table: &InstrumentTable) -> Rows {
        let count = table.len();
        let mut rows = Rows {
            rows: Vec::with_capacity(accounts.len()),
            lists: vec![[Vec::new(), Vec::new()]; count],
            scale: vec![0.0; count],
            price_unit: vec![0.0; count],
            seen: vec![0; accounts.len().div_ceil(64)],
            grown: 0,
        };
        for (id, inst) in table.iter() {
            let nd = inst.notional_decimals() as i32;
            rows.scale[id.index()] = 1.0 / 10f64.powi(nd);
            rows.price_unit[id.index()] = 10f64.powi(inst.price_decimals as i32);
        }
        for (a, account) in accounts.iter().enumerate() {
            let row = rows.row_of(account);
            rows.rows.push(row);
            for p in account.positions() {
                if let Some(l) = rows.lists.get_mut(p.instrument().0 as usize) {
                    l[side_index(p.side())].push(a as u32);
                }
            }
        }
        // Room to double before the first compaction.
        for l in rows.lists.iter_mut().flatten() {
            l.reserve(l.len() + 64);
        }
        rows
    }

    /// The row of `account`.
    fn row_of(&self, account: &Account) -> Row {
        let mut row = Row {
            wallet: bits_f64(account.wallet().to_bits()),
            n: 0,
            slots: [Slot::default(); INLINE],
        };
        if account.positions().len() > INLINE {
            row.n = OVERFLOW;
            return row;
        }
        for (slot, p) in row.slots.iter_mut().zip(account.positions()) {
            let i = p.instrument().0;
            let scale = self.scale.get(i as usize).copied().unwrap_or(f64::NAN);
            *slot = Slot {
                instrument: i,
                side: p.side(),
                isolated: p.mode() == MarginMode::Isolated,
                a: p.qty().0 as f64 * scale,
                c: p.cost() as f64 * scale,
                iso: bits_f64(p.isolated_margin().to_bits()),
            };
            row.n += 1;
        }
        row
    }

    /// Rebuilds account `a`'s row after a change, and lists it under every (instrument, side)
    /// of its positions that `before` (its positions' (instrument, side) before the change)
    /// did not have.
    fn refresh(&mut self, a: u32, before: &[(u32, i8)], accounts: &[Account]) {
        let account = &accounts[a as usize];
        self.rows[a as usize] = self.row_of(account);
        for p in account.positions() {
            let key = (p.instrument().0, p.side());
            if before.contains(&key) {
                continue;
            }
            let Some(pair) = self.lists.get_mut(key.0 as usize) else {
                continue;
            };
            let list = &mut pair[side_index(key.1)];
            if list.len() == list.capacity() {
                compact(list, &self.rows, accounts, key, &mut self.seen);
            }
            if list.len() == list.capacity() {
                self.grown += 1;
                list.reserve(list.len() + 64);
            }
            list.push(a);
        }
    }

    /// The accounts listed under `instrument` and side `sign` (see the module docs).
    pub(crate) fn list(&self, instrument: u32, sign: i8) -> &[u32] {
        self.lists
            .get(instrument as usize)
            .map_or(&[][..], |l| &l[side_index(sign)])
    }

    /// The address of account `a`'s row (for prefetching).
    pub(crate) fn row_ptr(&self, a: u32) -> *const Row {
        self.rows.as_ptr().wrapping_add(a as usize)
    }

    /// Allocations the lists made to grow since the accounts were loaded.
    pub(crate) fn grown(&self) -> u64 {
        self.grown
    }

    /// Heap bytes held.
    fn heap_bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<Row>()
            + self
                .lists
                .iter()
                .flatten()
                .map(|l| l.capacity() * 4)
                .sum::<usize>()
            + self.seen.capacity() * 8
            + (self.scale.capacity() + self.price_unit.capacity()) * 8
    }

    fn bound_of(&self, row: &Row, k: usize, mark: f64, marks: &[f64]) -> Option<f64> {
        const LIMIT: f64 = (1u64 << 60) as f64;
        const SMALL: f64 = 1.0 / 1024.0;
        let s = &row.slots[k];
        let v = s.a.abs() * mark;
        let c = s.c.abs();
        let u = s.a * mark - s.c;
        let (w, t, others) = if s.isolated {
            (s.iso, s.iso.abs(), 0.0)
        } else {
            let (mut w, mut t, mut others) = (row.wallet, row.wallet.abs(), 0.0);
            for (j, o) in row.slots[..row.n as usize].iter().enumerate() {
                if j == k || o.isolated {
                    continue;
                }
                let m = marks.get(o.instrument as usize).copied().unwrap_or(0.0);
                if m <= 0.0 {
                    return None;
                }
                let value = o.a * m;
                w += value - o.c;
                t += value.abs() + o.c.abs();
                others += 1.0;
            }
            (w, t, others)
        };
        let mm = if s.side > 0 { c - w } else { w + c };
        let bank = mm.max(0.0);
        let m_real = (v - bank).abs();
        let q = s.a.abs() * self.price_unit.get(s.instrument as usize).copied()?;
        if !(c >= SMALL && v >= SMALL && q > 0.0 && v < LIMIT && c < LIMIT && t < LIMIT) {
            return None;
        }
        let f64_err = |magnitude: f64| 2.0 * magnitude / (1u64 << 48) as f64;
        let bp = bank / q + 1.0;
        let m_err = f64_err(v + c + t) + 2.0 * ULP * (others + 8.0 + q + bp + 1.0);
        // Written so that a NaN anywhere fails it too.
        if m_real.partial_cmp(&(m_err * (1u64 << 20) as f64)) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        let p = u / c;
        let p_err = 2.0
            * ((ULP * (1.0 + p.abs()) + f64_err(v + c)) / c + p.abs() / (1u64 << 50) as f64 + ULP);
        let p_hi = p + p_err;
        let l_hi = v / m_real * (1.0 + 1.0 / (1u64 << 18) as f64) + 2.0 * ULP;
        let s_hi = if p_hi >= 0.0 {
            p_hi * l_hi
        } else {
            p_hi / l_hi
        } + 2.0 * ULP;
        let bound = s_hi + s_hi.abs() / (1u64 << 40) as f64 + 1.0 / (1u64 << 40) as f64;
        bound.is_finite().then_some(bound)
    }
}

/// `bits·2^-48` as the nearest `f64`.
fn bits_f64(bits: i128) -> f64 {
    bits as f64 * ULP
}

/// Drops from `list` the accounts that no longer hold `(instrument, side)` and every repeat,
/// keeping the first of each in order; `seen` is left clear.
fn compact(
    list: &mut Vec<u32>,
    rows: &[Row],
    accounts: &[Account],
    (instrument, sign): (u32, i8),
    seen: &mut [u64],
) {
    list.retain(|&a| {
        let (word, bit) = (a as usize / 64, 1u64 << (a % 64));
        let (Some(row), Some(account), Some(w)) = (
            rows.get(a as usize),
            accounts.get(a as usize),
            seen.get_mut(word),
        ) else {
            return false;
        };
        if *w & bit != 0 || !holds(row, account, instrument, sign) {
            return false;
        }
        *w |= bit;
        true
    });
    for &a in list.iter() {
        seen[a as usize / 64] = 0;
    }
}

/// The accounts, by index, with their ADL rows: readable freely, changed only through
/// [`Accounts::update`] (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Accounts {
    list: Vec<Account>,
    rows: Rows,
    /// Scratch: the (instrument, side) of an account's positions before a change.
    before: Vec<(u32, i8)>,
}

impl Accounts {
    /// `list` with rows built for `table`.
    pub(crate) fn new(list: Vec<Account>, table: &InstrumentTable) -> Accounts {
        let rows = Rows::new(&list, table);
        Accounts {
            list,
            rows,
            before: Vec::new(),
        }
    }

    /// Applies `change` to account `a` and brings its row and lists up to date.
    ///
    /// # Panics
    /// If `a` is not an account index (callers hold indices of loaded accounts).
    pub(crate) fn update<R>(&mut self, a: u32, change: impl FnOnce(&mut Account) -> R) -> R {
        let account = &mut self.list[a as usize];
        self.before.clear();
        self.before.extend(
            account
                .positions()
                .iter()
                .map(|p| (p.instrument().0, p.side())),
        );
        let out = change(account);
        self.rows.refresh(a, &self.before, &self.list);
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

    /// The rows.
    pub(crate) fn rows(&self) -> &Rows {
        &self.rows
    }

    /// An upper bound on the exact ADL score of account `a`'s position on `instrument`, if the
    /// account holds one of side `sign`, at raw mark `mark` with the raw marks `marks` (0 =
    /// none) of every instrument: `None` when the row shows no such position (the account is
    /// not a candidate), `+∞` when no finite bound is promised. See the module docs.
    pub(crate) fn adl_bound(
        &self,
        a: u32,
        instrument: u32,
        sign: i8,
        mark: f64,
        marks: &[f64],
    ) -> Option<f64> {
        let row = self.rows.rows.get(a as usize)?;
        if row.n == OVERFLOW {
            let account = self.list.get(a as usize)?;
            return holds(row, account, instrument, sign).then_some(f64::INFINITY);
        }
        let k = row.slot(instrument, sign)?;
        Some(
            self.rows
                .bound_of(row, k, mark, marks)
                .unwrap_or(f64::INFINITY),
        )
    }

    /// The accounts, without their rows.
    pub(crate) fn into_vec(self) -> Vec<Account> {
        self.list
    }

    /// Heap bytes held by the rows and lists (the accounts' own are counted by their owner).
    pub(crate) fn rows_heap_bytes(&self) -> usize {
        self.rows.heap_bytes() + self.before.capacity() * 8
    }
}

#[cfg(test)]
impl Accounts {
    /// Panics unless every row is its account's row, to the bit, and every position's account
    /// is listed under its instrument and side.
    pub(crate) fn check_rows(&self) {
        let bits = |r: &Row| {
            let mut v = vec![r.wallet.to_bits(), u64::from(r.n)];
            for s in &r.slots {
                v.extend([
                    u64::from(s.instrument),
                    s.side as u64,
                    u64::from(s.isolated),
                    s.a.to_bits(),
                    s.c.to_bits(),
                    s.iso.to_bits(),
                ]);
            }
            v
        };
        assert_eq!(self.rows.rows.len(), self.list.len());
        for (a, account) in self.list.iter().enumerate() {
            assert_eq!(
                bits(&self.rows.rows[a]),
                bits(&self.rows.row_of(account)),
                "row of account {a}"
            );
            for p in account.positions() {
                assert!(
                    self.rows
                        .list(p.instrument().0, p.side())
                        .contains(&(a as u32)),
                    "account {a} not listed under {:?}/{}",
                    p.instrument(),
                    p.side()
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

impl<'a> IntoIterator for &'a Accounts {
    type Item = &'a Account;
    type IntoIter = std::slice::Iter<'a, Account>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

//! The safe-band index: a tick touches only the accounts whose band it left.
//!
//! Every banded account owns, for each instrument it holds, a closed interval of prices
//! `[lo, hi]` (in the instrument's integer price units) inside which its margin state provably
//! cannot change (see the risk stage for how bands are computed from the margin buffer). Per
//! instrument the index keeps the lower edges and the upper edges in two ordered sets. A tick at
//! price `p` takes the lower edges above `p` from the top of the first and the upper edges below
//! `p` from the bottom of the second: exactly the accounts whose band `p` left. An unbounded side
//! (`lo = i64::MIN`, `hi = i64::MAX`) is not stored: no price leaves it.
//!
//! ## Cost
//! Each instrument keeps its highest lower edge and its lowest upper edge beside the sets, so a
//! tick that leaves no band reads those two numbers and touches no set. Each set is a list of
//! sorted blocks of at most [`edges::BLOCK`] edges (see [`edges`]), kept so that the end the
//! price takes edges from is the end of the last block: taking an edge is O(1), and adding one
//! costs a binary search over the blocks' first edges and one within its block, plus shifting at
//! most a block's edges (and, when the block splits, the directory entries after it). For an
//! account re-banded near its edge the new edge lands near that end too, so the blocks and
//! directory entries it touches are those the instrument's previous ticks touched, in cache
//! whatever the number of edges far from the price. (The binary heaps the index used before
//! sifted every pop down to a leaf that differed each time, through the far edges, and grew by
//! copying all of them at once: both made a tick's cost grow with the number of holders.) Cost
//! per tick: `O(popped + stale)` takes plus `O(log n + BLOCK)` per re-banded edge. Emptied
//! blocks are kept for reuse: once each set has been as large as it gets, ticks and re-bands
//! allocate nothing.
//!
//! ## Invalidation
//! Re-banding an account must retire its old edges on every instrument. Rather than search the
//! sets, each account carries a generation; an entry is live only while its generation equals
//! the account's. [`BandIndex::unband`] bumps the generation, so all the account's entries go
//! stale at once in O(1), and stale entries are discarded when they surface. To bound memory,
//! when the stale entries outnumber the live ones (plus a slack), the sets are rebuilt without
//! them, a few blocks (`COMPACT_BLOCKS`, about a thousand edges) per [`BandIndex::set_bands`]
//! call until every set has been (a compaction pass, counted by [`BandIndex::compactions`]): a
//! pass is paid for by at least as many invalidations as it removes entries, so it is O(1)
//! amortised per invalidation, and the pause on any one call is bounded whatever the number of
//! edges (rebuilt at once, 12 million edges over 100 instruments took 177 ms).
//!
//! ## Why a tick reports exactly the bands it left (proof sketch)
//! Write `gen(a)` for account `a`'s generation and `B(a)` for the bands of its last
//! [`BandIndex::set_bands`] if no [`BandIndex::unband`] or pop has retired them since (else
//! `B(a) = ∅`).
//! 1. *Live entries are the bounded sides of current bands.* For every band `b ∈ B(a)` on
//!    instrument `i`, `lower[i]` holds `(b.lo, a, gen(a))` if `b.lo > i64::MIN` and `upper[i]`
//!    holds `(b.hi, a, gen(a))` if `b.hi < i64::MAX`; and every entry carrying `gen(a)` is one of
//!    these. It holds because `set_bands` retires (bumps the generation) before it inserts with
//!    the new generation, and every retirement bumps it, so older entries never match again
//!    (generations are `u32` and wrap: a stale entry could pass for live only after 2^32
//!    retirements of its account while it stayed stored).
//! 2. *The tops are exact.* `lower_top[i]` is the largest edge in `lower[i]` (`i64::MIN` when
//!    empty) and `upper_top[i]` the smallest in `upper[i]` (`i64::MAX`): updated on every insert
//!    and every removal, recomputed after a rebuild.
//! 3. *A tick at `p` takes exactly the edges beyond `p`.* A price leaves `b` iff `p < b.lo` or
//!    `p > b.hi`; for an unbounded side that is impossible, so not storing it loses nothing. The
//!    loop takes lower entries from the largest down while their edge is above `p`, so it takes
//!    every entry with `edge > p` and no other (when `lower_top ≤ p` there is none, by 2); the
//!    same for upper entries below `p`. A taken entry that is live (by 1, its account's band left
//!    `p`) retires the account and reports it; the account's other entries are then stale and
//!    are discarded if they surface, so it is reported once. A stale entry belongs to no current
//!    band (by 1) and is discarded. Every live band that `p` left has its entry beyond `p` (by 1),
//!    so every such account is reported, unless it already was in this call.
//!
//! ## Invariants
//! - `live_entries` is the number of stored entries whose generation is current;
//!   `stored >= live_entries`, the difference being the stale count.
//! - An account slot's `entries` counts its live stored entries; `banded` is whether it has
//!   bands (some of them possibly unbounded on both sides, so storing nothing).
//! - After every `set_bands`, the stale count is at most `live_entries + STALE_SLACK` plus the
//!   edges the calls of one compaction pass added (at most two per band each; a pass takes
//!   about one call per `COMPACT_BLOCKS` blocks, plus one per set): a pass starts once the stale
//!   count exceeds the first part, and ends having removed every entry that was stale when it
//!   began (`EdgeSet::retain_blocks`).
//! - `lower_top` / `upper_top` as in 2 above.

use std::cmp::Reverse;

use self::edges::{BLOCK, EdgeSet};

mod edges;

/// One stored edge. Ordered by `edge` first; ties broken by account and generation only so that
/// the ordering is total and deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Edge {
    edge: i64,
    account: u32,
    generation: u32,
}

/// The band of one account on one instrument: safe while `lo <= price <= hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Band {
    /// The instrument's dense index.
    pub instrument: u32,
    /// The lowest safe price (inclusive); `i64::MIN` when no fall can hurt.
    pub lo: i64,
    /// The highest safe price (inclusive); `i64::MAX` when no rise can hurt.
    pub hi: i64,
}

/// The edges of one instrument.
#[derive(Debug)]
struct InstrumentEdges {
    /// The largest edge in `lower` (`i64::MIN` when empty): a price at or above it leaves no
    /// lower edge.
    lower_top: i64,
    /// The smallest edge in `upper` (`i64::MAX` when empty).
    upper_top: i64,
    /// Bounded lower edges: taken from the largest down while above the price.
    lower: EdgeSet<Edge>,
    /// Bounded upper edges, reversed: taken from the smallest up while below the price.
    upper: EdgeSet<Reverse<Edge>>,
}

impl Default for InstrumentEdges {
    fn default() -> Self {
        InstrumentEdges {
            lower_top: i64::MIN,
            upper_top: i64::MAX,
            lower: EdgeSet::new(BLOCK),
            upper: EdgeSet::new(BLOCK),
        }
    }
}

impl InstrumentEdges {
    fn refresh_tops(&mut self) {
        self.lower_top = self.lower.max().map_or(i64::MIN, |e| e.edge);
        self.upper_top = self.upper.max().map_or(i64::MAX, |e| e.0.edge);
    }
}

/// Account state kept by the index: 12 bytes per account.
#[derive(Debug, Clone, Copy, Default)]
struct AccountSlot {
    /// The current generation; entries carrying another are stale.
    generation: u32,
    /// Live stored entries (bounded lower and upper edges) this account has across all sets.
    entries: u32,
    /// Whether the account has bands (stored or unbounded).
    banded: bool,
}

/// What the index has done since it was built: the work a tick or a re-band costs, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexCounters {
    /// Calls of [`BandIndex::set_bands`] (bandings and re-bandings).
    pub set_bands: u64,
    /// Edges stored (at most two per band set; unbounded sides are not stored).
    pub pushes: u64,
    /// Live edges popped by ticks (each retires its account's bands and touches it).
    pub popped: u64,
    /// Stale edges discarded as they surfaced on ticks.
    pub stale_popped: u64,
    /// Rebuilds that dropped every stale entry.
    pub compactions: u64,
    /// Allocations the sets made to grow past the largest they had been (a block, or room in
    /// a block list); see [`edges`].
    pub grown: u64,
}

impl IndexCounters {
    /// What was counted since `earlier` (counters taken from the same index before).
    pub fn since(&self, earlier: &IndexCounters) -> IndexCounters {
        let d = |now: u64, then: u64| now.saturating_sub(then);
        IndexCounters {
            set_bands: d(self.set_bands, earlier.set_bands),
            pushes: d(self.pushes, earlier.pushes),
            popped: d(self.popped, earlier.popped),
            stale_popped: d(self.stale_popped, earlier.stale_popped),
            compactions: d(self.compactions, earlier.compactions),
            grown: d(self.grown, earlier.grown),
        }
    }
}

/// Per-instrument ordered band edges with lazy invalidation. See the module docs.
#[derive(Debug)]
pub struct BandIndex {
    instruments: Vec<InstrumentEdges>,
    accounts: Vec<AccountSlot>,
    /// Entries in all sets, stale ones included.
    stored: u64,
    live_entries: u64,
    counters: IndexCounters,
    /// Where the compaction pass under way goes on: set `k` (instrument `k / 2`, its lower side
    /// when `k` is even) from the block holding the edge given (from its first block with
    /// `None`); `None` between passes.
    compacting: Option<(usize, Option<Edge>)>,
}

/// Stale entries tolerated beyond the live count before a rebuild.
const STALE_SLACK: u64 = 4096;

/// Blocks a compaction pass rebuilds per [`BandIndex::set_bands`] call (1,024 edges).
const COMPACT_BLOCKS: usize = 16;

impl BandIndex {
    /// An empty index for `instruments` instruments and `accounts` accounts (dense ids).
    pub fn new(instruments: usize, accounts: usize) -> Self {
        Self {
            instruments: (0..instruments)
                .map(|_| InstrumentEdges::default())
                .collect(),
            accounts: vec![AccountSlot::default(); accounts],
            stored: 0,
            live_entries: 0,
            counters: IndexCounters::default(),
            compacting: None,
        }
    }

    /// Sizing hint for `per_instrument` entries on each side of every instrument. The sets
    /// allocate block by block as they grow (never by copying what they hold), so there is
    /// nothing to reserve; kept so that callers can state the expected size.
    pub fn reserve(&mut self, per_instrument: &[usize]) {
        let _ = per_instrument;
    }

    /// Number of accounts the index was sized for.
    pub fn accounts(&self) -> usize {
        self.accounts.len()
    }

    /// Grows the index to hold account ids below `accounts`.
    pub fn ensure_accounts(&mut self, accounts: usize) {
        if accounts > self.accounts.len() {
            self.accounts.resize(accounts, AccountSlot::default());
        }
    }

    /// Retires every band of `account` in O(1). Unknown accounts are ignored.
    pub fn unband(&mut self, account: u32) {
        if let Some(slot) = self.accounts.get_mut(account as usize) {
            retire(slot, &mut self.live_entries);
        }
    }

    /// Replaces the bands of `account` with `bands`. A band whose instrument is out of range is
    /// skipped and counted in the return value (the caller validated instruments at ingest, so
    /// this is a programming error surfaced as a count rather than a panic).
    pub fn set_bands(&mut self, account: u32, bands: &[Band]) -> usize {
        self.unband(account);
        self.ensure_accounts(account as usize + 1);
        let generation = self.accounts[account as usize].generation;
        let mut skipped = 0;
        let mut added = 0u32;
        for band in bands {
            let Some(edges) = self.instruments.get_mut(band.instrument as usize) else {
                skipped += 1;
                continue;
            };
            if band.lo != i64::MIN
                && edges.lower.insert(Edge {
                    edge: band.lo,
                    account,
                    generation,
                })
            {
                edges.lower_top = edges.lower_top.max(band.lo);
                added += 1;
            }
            if band.hi != i64::MAX
                && edges.upper.insert(Reverse(Edge {
                    edge: band.hi,
                    account,
                    generation,
                }))
            {
                edges.upper_top = edges.upper_top.min(band.hi);
                added += 1;
            }
        }
        let slot = &mut self.accounts[account as usize];
        slot.entries = added;
        slot.banded = bands.len() > skipped;
        self.live_entries += u64::from(added);
        self.stored += u64::from(added);
        self.counters.set_bands += 1;
        self.counters.pushes += u64::from(added);
        self.maybe_compact();
        skipped
    }

    /// Applies a price for `instrument`: every account whose band on it no longer contains
    /// `price` is unbanded and passed to `touched`, once per call, in a deterministic order
    /// (lower-edge breaches from the highest edge down, then upper-edge breaches from the lowest
    /// edge up). The caller re-evaluates each and bands it again.
    pub fn on_price(&mut self, instrument: u32, price: i64, mut touched: impl FnMut(u32)) {
        let Some(edges) = self.instruments.get_mut(instrument as usize) else {
            return;
        };
        // Lower edges above the price: the price fell out of these bands.
        if edges.lower_top > price {
            while let Some(top) = edges.lower.max() {
                if top.edge <= price {
                    break;
                }
                edges.lower.pop_max();
                self.stored -= 1;
                if retire_edge(
                    &mut self.accounts,
                    &mut self.live_entries,
                    &mut self.counters,
                    top,
                ) {
                    touched(top.account);
                }
            }
            edges.lower_top = edges.lower.max().map_or(i64::MIN, |e| e.edge);
        }
        // Upper edges below the price: the price rose out of these bands.
        if edges.upper_top < price {
            while let Some(Reverse(top)) = edges.upper.max() {
                if top.edge >= price {
                    break;
                }
                edges.upper.pop_max();
                self.stored -= 1;
                if retire_edge(
                    &mut self.accounts,
                    &mut self.live_entries,
                    &mut self.counters,
                    top,
                ) {
                    touched(top.account);
                }
            }
            edges.upper_top = edges.upper.max().map_or(i64::MAX, |e| e.0.edge);
        }
    }

    /// Every live band with a bounded side, by account then instrument (for a snapshot: setting
    /// these bands again on an empty index gives one that pops the same accounts on every price;
    /// a band unbounded on both sides is left out, since no price leaves it).
    pub fn live_bands(&self) -> Vec<(u32, Band)> {
        let live = |e: &&Edge| {
            self.accounts
                .get(e.account as usize)
                .is_some_and(|s| s.generation == e.generation)
        };
        // (account, instrument, lo, hi) with the missing side unbounded; merged below.
        let mut sides: Vec<(u32, u32, i64, i64)> = Vec::new();
        for (i, edges) in self.instruments.iter().enumerate() {
            let i = i as u32;
            sides.extend(
                edges
                    .lower
                    .iter()
                    .filter(live)
                    .map(|e| (e.account, i, e.edge, i64::MAX)),
            );
            sides.extend(
                edges
                    .upper
                    .iter()
                    .map(|e| &e.0)
                    .filter(live)
                    .map(|e| (e.account, i, i64::MIN, e.edge)),
            );
        }
        sides.sort_unstable();
        let mut out: Vec<(u32, Band)> = Vec::with_capacity(sides.len());
        for (account, instrument, lo, hi) in sides {
            match out.last_mut() {
                Some((a, b)) if *a == account && b.instrument == instrument => {
                    b.lo = b.lo.max(lo);
                    b.hi = b.hi.min(hi);
                }
                _ => out.push((account, Band { instrument, lo, hi })),
            }
        }
        out
    }

    /// Whether `account` currently has bands.
    pub fn is_banded(&self, account: u32) -> bool {
        self.accounts
            .get(account as usize)
            .is_some_and(|slot| slot.banded)
    }

    /// Entries in all sets, stale ones included.
    pub fn total_entries(&self) -> u64 {
        self.stored
    }

    /// Live entries (one per bounded side of a current band).
    pub fn live_entries(&self) -> u64 {
        self.live_entries
    }

    /// How many times the sets were rebuilt to drop stale entries.
    pub fn compactions(&self) -> u64 {
        self.counters.compactions
    }

    /// Stale entries discarded as they surfaced on ticks.
    pub fn stale_popped(&self) -> u64 {
        self.counters.stale_popped
    }

    /// The work done so far, counted (see [`IndexCounters`]).
    pub fn counters(&self) -> IndexCounters {
        IndexCounters {
            grown: self
                .instruments
                .iter()
                .map(|e| e.lower.grown() + e.upper.grown())
                .sum(),
            ..self.counters
        }
    }

    /// Heap bytes held by the index (its sets' blocks, spare blocks included, and directories;
    /// the account slots), for memory reports.
    pub fn heap_bytes(&self) -> usize {
        self.instruments
            .iter()
            .map(|e| e.lower.heap_bytes() + e.upper.heap_bytes())
            .sum::<usize>()
            + self.accounts.capacity() * std::mem::size_of::<AccountSlot>()
            + self.instruments.capacity() * std::mem::size_of::<InstrumentEdges>()
    }

    /// Starts a compaction pass when the stale entries outnumber the live ones (plus the slack),
    /// and rebuilds the next `COMPACT_BLOCKS` blocks of the pass under way without their stale
    /// entries.
    fn maybe_compact(&mut self) {
        let (k, from) = match self.compacting {
            Some(at) => at,
            None if self.stored - self.live_entries > self.live_entries + STALE_SLACK => (0, None),
            None => return,
        };
        let accounts = &self.accounts;
        let live = |e: &Edge| accounts[e.account as usize].generation == e.generation;
        let mut next = None;
        if let Some(edges) = self.instruments.get_mut(k / 2) {
            let before = edges.lower.len() + edges.upper.len();
            next = if k % 2 == 0 {
                edges.lower.retain_blocks(from, COMPACT_BLOCKS, live)
            } else {
                edges
                    .upper
                    .retain_blocks(from.map(Reverse), COMPACT_BLOCKS, |e| live(&e.0))
                    .map(|e| e.0)
            };
            edges.refresh_tops();
            self.stored -= (before - edges.lower.len() - edges.upper.len()) as u64;
        }
        self.compacting = if next.is_some() {
            Some((k, next))
        } else if k + 1 < 2 * self.instruments.len() {
            Some((k + 1, None))
        } else {
            self.counters.compactions += 1;
            None
        };
        debug_assert_eq!(
            self.instruments
                .iter()
                .map(|e| (e.lower.len() + e.upper.len()) as u64)
                .sum::<u64>(),
            self.stored
        );
    }
}

/// Retires every band of an account at once: its entries go stale.
fn retire(slot: &mut AccountSlot, live_entries: &mut u64) {
    *live_entries -= u64::from(slot.entries);
    slot.entries = 0;
    slot.banded = false;
    slot.generation = slot.generation.wrapping_add(1);
}

/// For an edge that surfaced: retires its account's bands when the edge is live (returns true),
/// or counts it as stale.
fn retire_edge(
    accounts: &mut [AccountSlot],
    live_entries: &mut u64,
    counters: &mut IndexCounters,
    edge: Edge,
) -> bool {
    let slot = &mut accounts[edge.account as usize];
    if slot.generation != edge.generation {
        counters.stale_popped += 1;
        return false;
    }
    counters.popped += 1;
    retire(slot, live_entries);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn a_tick_pops_exactly_the_bands_it_leaves() {
        let mut index = BandIndex::new(2, 4);
        index.set_bands(
            0,
            &[Band {
                instrument: 0,
                lo: 90,
                hi: 110,
            }],
        );
        index.set_bands(
            1,
            &[Band {
                instrument: 0,
                lo: 95,
                hi: i64::MAX,
            }],
        );
        index.set_bands(
            2,
            &[
                Band {
                    instrument: 0,
                    lo: i64::MIN,
                    hi: 105,
                },
                Band {
                    instrument: 1,
                    lo: 10,
                    hi: 20,
                },
            ],
        );
        let mut hit = vec![];
        index.on_price(0, 100, |a| hit.push(a));
        assert!(hit.is_empty());
        index.on_price(0, 95, |a| hit.push(a));
        assert!(hit.is_empty(), "the edges are inclusive");
        index.on_price(0, 94, |a| hit.push(a));
        assert_eq!(hit, vec![1]);
        hit.clear();
        index.on_price(0, 106, |a| hit.push(a));
        assert_eq!(hit, vec![2]);
        assert!(!index.is_banded(2));
        hit.clear();
        // Account 2's band on instrument 1 went stale with the rest of it.
        index.on_price(1, 5, |a| hit.push(a));
        assert!(hit.is_empty());
        assert_eq!(index.stale_popped(), 1);
        assert_eq!(index.live_entries(), 2);
    }

    #[test]
    fn rebanding_retires_the_old_edges() {
        let mut index = BandIndex::new(1, 1);
        index.set_bands(
            0,
            &[Band {
                instrument: 0,
                lo: 90,
                hi: 110,
            }],
        );
        index.set_bands(
            0,
            &[Band {
                instrument: 0,
                lo: 50,
                hi: 150,
            }],
        );
        let mut hit = vec![];
        index.on_price(0, 80, |a| hit.push(a));
        assert!(hit.is_empty(), "the old lower edge 90 must be stale");
        index.on_price(0, 49, |a| hit.push(a));
        assert_eq!(hit, vec![0]);
    }

    #[test]
    fn out_of_range_instruments_are_counted_not_fatal() {
        let mut index = BandIndex::new(1, 1);
        let skipped = index.set_bands(
            0,
            &[Band {
                instrument: 7,
                lo: 0,
                hi: 1,
            }],
        );
        assert_eq!(skipped, 1);
        index.on_price(7, 5, |_| unreachable!());
        assert!(!index.is_banded(0));
    }

    #[test]
    fn compaction_bounds_stale_entries() {
        let mut index = BandIndex::new(1, 10);
        for round in 0..10_000i64 {
            let account = (round % 10) as u32;
            index.set_bands(
                account,
                &[Band {
                    instrument: 0,
                    lo: -round,
                    hi: round + 1000,
                }],
            );
            // The invariant's bound: one band of two edges per call, passes of two calls.
            let stale = index.total_entries() - index.live_entries();
            assert!(
                stale <= index.live_entries() + STALE_SLACK + 2 * 2,
                "{stale} stale"
            );
        }
        assert!(index.compactions() > 0);
        assert_eq!(index.live_entries(), 20);
    }

    #[test]
    fn a_compaction_pass_is_spread_over_calls() {
        const INSTRUMENTS: u32 = 2;
        const ACCOUNTS: i64 = 5_000;
        let mut index = BandIndex::new(INSTRUMENTS as usize, ACCOUNTS as usize);
        // (call, entries it removed) for the calls that rebuilt blocks.
        let mut compacted = Vec::new();
        for round in 0..1_000_000i64 {
            let bands: Vec<Band> = (0..INSTRUMENTS)
                .map(|instrument| Band {
                    instrument,
                    lo: -round,
                    hi: round + 1000,
                })
                .collect();
            let before = index.total_entries();
            index.set_bands((round % ACCOUNTS) as u32, &bands);
            // Without a rebuild the call adds its 4 edges and removes none.
            if index.total_entries() < before + 4 {
                compacted.push((round, before + 4 - index.total_entries()));
            }
            if index.compactions() == 1 {
                break;
            }
        }
        assert_eq!(index.compactions(), 1);
        // Four sets of about 10,000 edges, half of them stale: the pass takes many calls, none
        // rebuilding more than its blocks' worth.
        assert!(compacted.len() > 2 * INSTRUMENTS as usize, "{compacted:?}");
        assert!(
            compacted
                .iter()
                .all(|&(_, removed)| removed <= (COMPACT_BLOCKS * BLOCK) as u64)
        );
        // What is stale now was made stale during the pass: at most its calls' 4 edges each.
        assert_eq!(index.live_entries(), ACCOUNTS as u64 * 4);
        let calls = compacted.last().map_or(0, |c| c.0) - compacted[0].0 + 1;
        assert!(index.total_entries() - index.live_entries() <= 4 * calls as u64);
    }

    #[test]
    fn unbounded_sides_are_not_stored_but_the_band_counts() {
        let mut index = BandIndex::new(1, 2);
        index.set_bands(
            0,
            &[Band {
                instrument: 0,
                lo: i64::MIN,
                hi: i64::MAX,
            }],
        );
        index.set_bands(
            1,
            &[Band {
                instrument: 0,
                lo: 90,
                hi: i64::MAX,
            }],
        );
        assert!(index.is_banded(0));
        assert_eq!(index.total_entries(), 1);
        assert_eq!(index.live_entries(), 1);
        let mut hit = vec![];
        index.on_price(0, i64::MAX, |a| hit.push(a));
        assert!(hit.is_empty());
        index.on_price(0, 1, |a| hit.push(a));
        assert_eq!(hit, vec![1]);
        assert!(index.is_banded(0));
        assert!(!index.is_banded(1));
        assert_eq!(index.live_bands(), vec![]);
    }

    #[test]
    fn live_bands_join_the_two_sides() {
        let mut index = BandIndex::new(2, 3);
        let a = [
            Band {
                instrument: 0,
                lo: 90,
                hi: 110,
            },
            Band {
                instrument: 1,
                lo: i64::MIN,
                hi: 20,
            },
        ];
        let b = [Band {
            instrument: 1,
            lo: 5,
            hi: i64::MAX,
        }];
        index.set_bands(2, &a);
        index.set_bands(0, &b);
        // Re-banding leaves stale entries behind; they are not live bands.
        index.set_bands(2, &a);
        assert_eq!(index.live_bands(), vec![(0, b[0]), (2, a[0]), (2, a[1])]);
    }

    proptest! {
        /// Against a brute-force model that keeps every account's current band and checks them
        /// all on every price: the index reports exactly the accounts whose band the price left,
        /// and its live bands, set again on an empty index, give one that reports the same.
        #[test]
        fn agrees_with_brute_force(
            ops in proptest::collection::vec(
                (0u32..3, 0u32..40, -100i64..100, 0i64..60, 0i64..60, 0u8..12), 1..400)
        ) {
            let mut index = BandIndex::new(3, 40);
            // Model: account -> its bands.
            let mut model: Vec<Vec<Band>> = vec![vec![]; 40];
            for (instrument, account, price, down, up, kind) in ops {
                if kind < 6 {
                    let mut got = BTreeSet::new();
                    index.on_price(instrument, price, |a| { got.insert(a); });
                    let mut want = BTreeSet::new();
                    for (a, bands) in model.iter_mut().enumerate() {
                        if bands.iter().any(|b| b.instrument == instrument
                            && (price < b.lo || price > b.hi)) {
                            want.insert(a as u32);
                            bands.clear();
                        }
                    }
                    prop_assert_eq!(got, want);
                } else if kind == 6 {
                    index.unband(account);
                    model[account as usize].clear();
                } else {
                    // Some sides unbounded, as a position that a move one way cannot hurt.
                    let lo = if kind == 7 { i64::MIN } else { price - down };
                    let hi = if kind == 8 { i64::MAX } else { price + up };
                    let bands = vec![
                        Band { instrument, lo, hi },
                        Band { instrument: (instrument + 1) % 3, lo: price - up, hi: price + down },
                    ];
                    index.set_bands(account, &bands);
                    model[account as usize] = bands;
                }
                let live: u64 = model
                    .iter()
                    .flatten()
                    .map(|b| u64::from(b.lo != i64::MIN) + u64::from(b.hi != i64::MAX))
                    .sum();
                prop_assert_eq!(index.live_entries(), live);
                for (a, bands) in model.iter().enumerate() {
                    prop_assert_eq!(index.is_banded(a as u32), !bands.is_empty());
                }
            }
            // A snapshot's bands rebuild an index that reports the same on every price.
            let mut rebuilt = BandIndex::new(3, 40);
            for group in index.live_bands().chunk_by(|a, b| a.0 == b.0) {
                let set: Vec<Band> = group.iter().map(|(_, b)| *b).collect();
                rebuilt.set_bands(group[0].0, &set);
            }
            for price in [-200i64, -50, 0, 50, 200] {
                for instrument in 0..3 {
                    let (mut x, mut y) = (BTreeSet::new(), BTreeSet::new());
                    index.on_price(instrument, price, |a| { x.insert(a); });
                    rebuilt.on_price(instrument, price, |a| { y.insert(a); });
                    prop_assert_eq!(x, y);
                }
            }
        }
    }
}

//! The safe-band index: a tick touches only the accounts whose band it left.
//!
//! Every banded account owns, for each instrument it holds, a closed interval of prices
//! `[lo, hi]` (in the instrument's integer price units) inside which its margin state provably
//! cannot change (see the risk stage for how bands are computed from the margin buffer). Per
//! instrument the index keeps the lower edges in a max-heap and the upper edges in a min-heap. A
//! tick at price `p` pops the lower edges above `p` and the upper edges below `p`: exactly the
//! accounts whose band `p` left. Cost per tick: `O((popped + stale) · log n)`, independent of how
//! many accounts hold the instrument.
//!
//! ## Invalidation
//! Re-banding an account must retire its old edges on every instrument. Rather than search the
//! heaps, each account carries a generation; an entry is live only while its generation equals
//! the account's. [`BandIndex::unband`] bumps the generation, so all the account's entries go stale
//! at once in O(1), and stale entries are discarded when they surface. To bound memory, when the
//! stale entries outnumber the live ones (plus a slack), every heap is rebuilt without them: each
//! rebuild is paid for by at least as many invalidations as it removes entries, so it is O(1)
//! amortised per invalidation (but a pause of O(n) when it happens; see [`BandIndex::compactions`]).
//!
//! ## Invariants
//! - `live_entries` is the number of heap entries whose generation is current.
//! - `total_entries() >= live_entries`; the difference is the stale count.
//! - An account with a live entry on an instrument has exactly one live lower and one live upper
//!   entry there (an unbounded side is stored as `i64::MIN` / `i64::MAX` and never popped).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One edge in a heap. Ordered by `edge` first; ties broken by account and generation only so
/// that the ordering is total and deterministic.
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

#[derive(Debug, Default)]
struct InstrumentHeaps {
    /// Lower edges: the largest on top, popped while it is above the price.
    lower: BinaryHeap<Edge>,
    /// Upper edges: the smallest on top, popped while it is below the price.
    upper: BinaryHeap<Reverse<Edge>>,
}

/// Account state kept by the index: 8 bytes per account.
#[derive(Debug, Clone, Copy, Default)]
struct AccountSlot {
    /// The current generation; entries carrying another are stale.
    generation: u32,
    /// Live entries (lower + upper) this account has across all heaps.
    entries: u32,
}

/// What the index has done since it was built: the work a tick or a re-band costs, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexCounters {
    /// Calls of [`BandIndex::set_bands`] (bandings and re-bandings).
    pub set_bands: u64,
    /// Edges pushed (two per band set).
    pub pushes: u64,
    /// Live edges popped by ticks (each retires its account's bands and touches it).
    pub popped: u64,
    /// Stale edges discarded as they surfaced on ticks.
    pub stale_popped: u64,
    /// Rebuilds that dropped every stale entry.
    pub compactions: u64,
}

/// Per-instrument ordered band edges with lazy invalidation. See the module docs.
#[derive(Debug)]
pub struct BandIndex {
    heaps: Vec<InstrumentHeaps>,
    accounts: Vec<AccountSlot>,
    live_entries: u64,
    counters: IndexCounters,
}

/// Stale entries tolerated beyond the live count before a rebuild.
const STALE_SLACK: u64 = 4096;

impl BandIndex {
    /// An empty index for `instruments` instruments and `accounts` accounts (dense ids).
    pub fn new(instruments: usize, accounts: usize) -> Self {
        Self {
            heaps: (0..instruments)
                .map(|_| InstrumentHeaps::default())
                .collect(),
            accounts: vec![AccountSlot::default(); accounts],
            live_entries: 0,
            counters: IndexCounters::default(),
        }
    }

    /// Reserves heap room for `per_instrument` entries on each side of every instrument, so that
    /// banding at start-up does not reallocate as it goes.
    pub fn reserve(&mut self, per_instrument: &[usize]) {
        for (heaps, &n) in self.heaps.iter_mut().zip(per_instrument) {
            heaps.lower.reserve(n);
            heaps.upper.reserve(n);
        }
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
            let Some(heaps) = self.heaps.get_mut(band.instrument as usize) else {
                skipped += 1;
                continue;
            };
            heaps.lower.push(Edge {
                edge: band.lo,
                account,
                generation,
            });
            heaps.upper.push(Reverse(Edge {
                edge: band.hi,
                account,
                generation,
            }));
            added += 2;
        }
        self.accounts[account as usize].entries = added;
        self.live_entries += u64::from(added);
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
        let Some(heaps) = self.heaps.get_mut(instrument as usize) else {
            return;
        };
        // Lower edges above the price: the price fell out of these bands.
        while let Some(top) = heaps.lower.peek().copied() {
            if top.edge <= price {
                break;
            }
            heaps.lower.pop();
            if retire_edge(
                &mut self.accounts,
                &mut self.live_entries,
                &mut self.counters,
                top,
            ) {
                touched(top.account);
            }
        }
        // Upper edges below the price: the price rose out of these bands.
        while let Some(Reverse(top)) = heaps.upper.peek().copied() {
            if top.edge >= price {
                break;
            }
            heaps.upper.pop();
            if retire_edge(
                &mut self.accounts,
                &mut self.live_entries,
                &mut self.counters,
                top,
            ) {
                touched(top.account);
            }
        }
    }

    /// Every live band, by account then instrument (for a snapshot: setting these bands again on
    /// an empty index gives one that pops the same accounts on every price).
    pub fn live_bands(&self) -> Vec<(u32, Band)> {
        let live = |e: &Edge| {
            self.accounts
                .get(e.account as usize)
                .is_some_and(|s| s.generation == e.generation)
        };
        let mut lower: Vec<(u32, u32, i64)> = Vec::new();
        let mut upper: Vec<(u32, u32, i64)> = Vec::new();
        for (i, heaps) in self.heaps.iter().enumerate() {
            lower.extend(
                heaps
                    .lower
                    .iter()
                    .filter(|e| live(e))
                    .map(|e| (e.account, i as u32, e.edge)),
            );
            upper.extend(
                heaps
                    .upper
                    .iter()
                    .filter(|Reverse(e)| live(e))
                    .map(|Reverse(e)| (e.account, i as u32, e.edge)),
            );
        }
        lower.sort_unstable();
        upper.sort_unstable();
        // A live account has exactly one lower and one upper entry per banded instrument.
        lower
            .into_iter()
            .zip(upper)
            .filter(|(l, u)| l.0 == u.0 && l.1 == u.1)
            .map(|(l, u)| {
                (
                    l.0,
                    Band {
                        instrument: l.1,
                        lo: l.2,
                        hi: u.2,
                    },
                )
            })
            .collect()
    }

    /// Whether `account` currently has bands.
    pub fn is_banded(&self, account: u32) -> bool {
        self.accounts
            .get(account as usize)
            .is_some_and(|slot| slot.entries > 0)
    }

    /// Entries in all heaps, stale ones included.
    pub fn total_entries(&self) -> u64 {
        self.heaps
            .iter()
            .map(|h| (h.lower.len() + h.upper.len()) as u64)
            .sum()
    }

    /// Live entries (two per banded position).
    pub fn live_entries(&self) -> u64 {
        self.live_entries
    }

    /// How many times the heaps were rebuilt to drop stale entries.
    pub fn compactions(&self) -> u64 {
        self.counters.compactions
    }

    /// Stale entries discarded as they surfaced on ticks.
    pub fn stale_popped(&self) -> u64 {
        self.counters.stale_popped
    }

    /// The work done so far, counted (see [`IndexCounters`]).
    pub fn counters(&self) -> IndexCounters {
        self.counters
    }

    /// Heap bytes held by the index (capacity, not length), for memory reports.
    pub fn heap_bytes(&self) -> usize {
        let edge = std::mem::size_of::<Edge>();
        self.heaps
            .iter()
            .map(|h| (h.lower.capacity() + h.upper.capacity()) * edge)
            .sum::<usize>()
            + self.accounts.capacity() * std::mem::size_of::<AccountSlot>()
            + self.heaps.capacity() * std::mem::size_of::<InstrumentHeaps>()
    }

    fn maybe_compact(&mut self) {
        let total = self.total_entries();
        if total - self.live_entries <= self.live_entries + STALE_SLACK {
            return;
        }
        let accounts = &self.accounts;
        let live = |e: &Edge| accounts[e.account as usize].generation == e.generation;
        for heaps in &mut self.heaps {
            heaps.lower.retain(live);
            heaps.upper.retain(|Reverse(e)| live(e));
        }
        self.counters.compactions += 1;
        debug_assert_eq!(self.total_entries(), self.live_entries);
    }
}

/// Retires every band of an account at once: its entries go stale.
fn retire(slot: &mut AccountSlot, live_entries: &mut u64) {
    *live_entries -= u64::from(slot.entries);
    slot.entries = 0;
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
        }
        assert!(index.compactions() > 0);
        let stale = index.total_entries() - index.live_entries();
        assert!(stale <= index.live_entries() + STALE_SLACK, "{stale} stale");
        assert_eq!(index.live_entries(), 20);
    }

    proptest! {
        /// Against a brute-force model that keeps every account's current band and checks them
        /// all on every price: the index reports exactly the accounts whose band the price left.
        #[test]
        fn agrees_with_brute_force(
            ops in proptest::collection::vec(
                (0u32..3, 0u32..40, -100i64..100, 0i64..60, 0i64..60, any::<bool>()), 1..400)
        ) {
            let mut index = BandIndex::new(3, 40);
            // Model: account -> its bands.
            let mut model: Vec<Vec<Band>> = vec![vec![]; 40];
            for (instrument, account, price, down, up, is_tick) in ops {
                if is_tick {
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
                } else {
                    let bands = vec![
                        Band { instrument, lo: price - down, hi: price + up },
                        Band { instrument: (instrument + 1) % 3, lo: price - up, hi: price + down },
                    ];
                    index.set_bands(account, &bands);
                    model[account as usize] = bands;
                }
                let live: u64 = model.iter().map(|b| 2 * b.len() as u64).sum();
                prop_assert_eq!(index.live_entries(), live);
            }
        }
    }
}

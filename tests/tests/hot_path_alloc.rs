//! "No allocation on the hot path": once warm, the risk stage allocates nothing, whether its
//! ticks only re-band accounts and raise margin calls, or liquidate them, answer fills, hand
//! remainders to the insurance fund and deleverage.
//!
//! Generated accounts (3 positions each over 10 instruments) and a seeded path that moves one
//! instrument's mark by 1–5 bp per tick, pulled back towards its start once it strays from it.
//! The engine is warmed up until the index has packed its sets (until then they grow with the
//! stale edges re-bands leave behind); the ticks after that are walked with every allocation on
//! this thread counted by a counting global allocator. With liquidations, traders keep adding
//! to their positions (an ordinary fill every 16 ticks), so accounts keep coming near their
//! edge and the index's sets can still outgrow their largest size now and then: the index
//! counts those allocations, and they must be all there is. `ALLOC_TRACE=1` prints the stacks of
//! the first few allocations counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use brink::bulk::synth;
use brink::index::IndexCounters;
use brink::ingest::{FeedBody, FeedEvent};
use brink::margin::{CallLevel, InstrumentId, Price};
use brink::matcher::{Matcher, MatcherConfig};
use brink::risk::RiskCounters;
use brink::risk::{Book, RiskConfig, RiskEngine, Scan};
use brink::shm::{Input, Output, Tick};

/// The system allocator, counting this thread's allocations while armed.
struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

/// Print the stacks of the first allocations counted (`ALLOC_TRACE`).
static TRACE: AtomicBool = AtomicBool::new(false);

/// Counts an allocation if armed (and, with `TRACE`, prints where the first few come from, with
/// counting disarmed meanwhile: capturing a stack allocates).
fn note() {
    // `try_with`: a thread being torn down has no thread-locals left; it is not counted.
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
            if TRACE.load(Ordering::Relaxed) && COUNT.with(Cell::get) < 6 {
                armed.set(false);
                eprintln!("{}", std::backtrace::Backtrace::force_capture());
                armed.set(true);
            }
        }
    });
}

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged;
// the counting touches only const-initialised thread-locals and an atomic, which never allocate
// (the tracing disarms the counting before it allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarded as received (the caller upholds `GlobalAlloc::alloc`'s contract).
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> u64 {
    TRACE.store(std::env::var_os("ALLOC_TRACE").is_some(), Ordering::Relaxed);
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    COUNT.with(Cell::get)
}

const INSTRUMENTS: usize = 10;
/// Ticks walked with allocations counted.
const MEASURED: usize = 200_000;
/// Most ticks the warm-up may take.
const WARM_UP_MAX: usize = 5_000_000;
/// Lots a side on every tick's book.
const BOOK_LOTS: u32 = 100_000;

/// The marks: `(instrument, price)` per tick, each mark walking by 1–5 bp a tick, pulled back
/// towards its start once it strays more than `1 / pull` from it, and with `jumps`, dropping
/// 2 % on every 1,000th tick (xorshift64, seeded).
struct Path {
    state: u64,
    start: Vec<i64>,
    prices: Vec<i64>,
    pull: i64,
    jumps: bool,
    n: u64,
}

impl Path {
    fn next(&mut self) -> (u32, i64) {
        let s = &mut self.state;
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        let r = *s;
        self.n += 1;
        let i = (r % INSTRUMENTS as u64) as usize;
        let bp = 1 + ((r >> 8) % 5) as i64;
        let (p, start) = (self.prices[i], self.start[i]);
        let drift = p - start;
        let down = if drift.abs() * self.pull > start {
            drift > 0
        } else {
            (r >> 16) & 1 == 1
        };
        let step = (p * bp / 10_000).max(1);
        self.prices[i] = if self.jumps && self.n.is_multiple_of(1_000) {
            p * 98 / 100
        } else if down {
            p - step
        } else {
            p + step
        };
        (i as u32, self.prices[i])
    }
}

/// An engine walking a path, with (optionally) the built-in matcher answering its liquidation
/// orders, as a venue would.
struct Walk {
    engine: RiskEngine,
    matcher: Option<Matcher>,
    /// With a venue, traders adding to their positions: `(account id, instrument, lots)`, one
    /// per account, each adding to its first position's side (so at-risk accounts keep coming).
    traders: Vec<(u64, u32, i64)>,
    path: Path,
    seq: u64,
    out: Vec<Output>,
}

impl Walk {
    fn new(accounts: u64, pull: i64, venue: bool) -> Walk {
        let (table, marks) = synth::instruments(INSTRUMENTS, 7);
        let book = synth::generate_healthy(&table, &marks, accounts, 42, 3, CallLevel::default())
            .expect("generated accounts");
        let start: Vec<i64> = (0..INSTRUMENTS)
            .map(|i| marks.get(InstrumentId(i as u32)).map_or(1, |p| p.0))
            .collect();
        let traders = book
            .iter()
            .filter_map(|a| {
                let p = a.positions().first()?;
                // A quarter of the position again, on its side.
                let q = p.qty().0;
                let lots = if q > 0 {
                    (q / 4).max(1)
                } else {
                    (q / 4).min(-1)
                };
                Some((a.id(), p.instrument().0, lots))
            })
            .collect();
        Walk {
            engine: RiskEngine::new(table, marks, book, RiskConfig::default(), Scan::Index),
            traders: if venue { traders } else { Vec::new() },
            matcher: venue.then(|| Matcher::new(MatcherConfig::default(), INSTRUMENTS)),
            path: Path {
                state: 0x9E37_79B9_7F4A_7C15,
                prices: start.clone(),
                start,
                pull,
                jumps: venue,
                n: 0,
            },
            seq: 0,
            out: Vec::with_capacity(1 << 16),
        }
    }

    fn tick(&mut self) {
        let (instrument, px) = self.path.next();
        self.seq += 1;
        let (seq, now) = (self.seq, self.seq * 1_000_000);
        let book = Book {
            bid_px: px,
            ask_px: px,
            bid_qty: BOOK_LOTS,
            ask_qty: BOOK_LOTS,
        };
        let out = &mut self.out;
        self.engine
            .on_tick_at(instrument, Price(px), book, seq, now, &mut |o| out.push(o));
        if let Some(matcher) = self.matcher.as_mut() {
            matcher.on_tick(&Tick {
                instrument,
                mark_px: px,
                index_px: px,
                bid_px: px,
                ask_px: px,
                bid_qty: BOOK_LOTS,
                ask_qty: BOOK_LOTS,
            });
            // Every 16th tick a trader adds to a position at the mark: an ordinary fill.
            if seq.is_multiple_of(16) && !self.traders.is_empty() {
                let (account, on, lots) = self.traders[(seq / 16) as usize % self.traders.len()];
                let event = FeedEvent {
                    seq,
                    publish_ns: now,
                    receive_ns: now,
                    body: FeedBody::Input(Input::Fill(brink::shm::Fill {
                        account,
                        instrument: on,
                        qty: lots,
                        price_px: self.path.prices[on as usize],
                        fee_money: 0,
                        liquidation_order_id: 0,
                    })),
                };
                self.engine.on_event(&event, &mut |o| out.push(o));
            }
            let mut i = 0;
            while i < out.len() {
                if let Some(fill) = matcher.on_output(&out[i]) {
                    let event = FeedEvent {
                        seq,
                        publish_ns: now,
                        receive_ns: now,
                        body: FeedBody::Input(Input::Fill(fill)),
                    };
                    self.engine.on_event(&event, &mut |o| out.push(o));
                }
                i += 1;
            }
        }
        out.clear();
    }

    /// Warms up until the index has dropped its stale edges `cycles` times: its sets grow with
    /// the stale edges re-bands leave behind until those outnumber the live ones, then are
    /// packed again (keeping the emptied blocks), so by then each has been through that cycle.
    fn warm_up(&mut self, cycles: u64) {
        while self.engine.index().compactions() < cycles && (self.seq as usize) < WARM_UP_MAX {
            self.tick();
        }
        assert!(
            self.engine.index().compactions() >= cycles,
            "fewer than {cycles} compactions in {WARM_UP_MAX} ticks"
        );
    }

    /// Walks `MEASURED` ticks; returns the allocations and what the engine did meanwhile.
    /// Walks the measured ticks: the allocations, the counters' changes, and the allocations the
    /// ADL copies' lists made to grow.
    fn measure(&mut self) -> (u64, RiskCounters, IndexCounters, u64) {
        let (risk, index) = (self.engine.counters(), self.engine.index().counters());
        let adl = self.engine.adl_work();
        let allocated = allocations(|| {
            for _ in 0..MEASURED {
                self.tick();
            }
        });
        let risk = self.engine.counters().since(&risk);
        let index = self.engine.index().counters().since(&index);
        let work = self.engine.adl_work();
        let lists_grown = work.lists_grown - adl.lists_grown;
        println!(
            "after {} ticks of warm-up, {MEASURED} ticks: {} allocations; {risk:?}; {index:?}; \
             ADL: {} rankings, {} bounded, {} scored, lists grown {lists_grown}",
            self.seq as usize - MEASURED,
            allocated,
            work.rankings - adl.rankings,
            work.bounded - adl.bounded,
            work.scored - adl.scored,
        );
        (allocated, risk, index, lists_grown)
    }
}

#[test]
fn warm_ticks_that_reband_accounts_allocate_nothing() {
    // 0.15 % from the start at most: accounts near their edge keep leaving and re-entering
    // bands, and none drifts into liquidation.
    let mut walk = Walk::new(2_000, 700, false);
    walk.warm_up(1);
    let (allocated, risk, index, lists_grown) = walk.measure();
    assert_eq!(risk.ticks, MEASURED as u64);
    assert!(risk.margin_calls > 0, "no margin call while measured");
    assert!(
        index.popped > 1_000 && index.set_bands > 1_000 && index.pushes > 1_000,
        "too little re-banding to show anything"
    );
    assert_eq!(
        risk.liquidations, 0,
        "the measured ticks are meant to stay calm"
    );
    assert_eq!(allocated, 0, "allocations on warm ticks");
    assert_eq!(index.grown, 0);
    assert_eq!(lists_grown, 0);
}

#[test]
fn warm_liquidation_work_allocates_nothing() {
    // Up to 3.3 % from the start and a 2 % drop every 1,000 ticks: liquidations throughout,
    // their orders filled by the matcher, remainders taken over by the fund.
    let mut walk = Walk::new(20_000, 30, true);
    walk.warm_up(2);
    let (allocated, risk, index, lists_grown) = walk.measure();
    assert!(
        risk.liquidations > 100 && risk.liquidation_fills > 100 && risk.takeovers > 10,
        "too little liquidation work to show anything: {risk:?}"
    );
    assert!(index.set_bands > 10_000, "too little re-banding: {index:?}");
    // The index's sets may still grow past the largest they had been as more accounts come
    // near their edge, and a list of ADL copies when positions opened on its side outnumber the
    // room it has (each counts the allocations that take); nothing else allocates.
    assert_eq!(
        allocated,
        index.grown + lists_grown,
        "allocations on warm ticks besides the index's and the ADL lists' growth"
    );
    assert!(
        index.grown * 10_000 < index.pushes,
        "the index grew by more than one allocation per 10,000 edges pushed: {index:?}"
    );
}

//! "No allocation on the hot path": once warm, the risk stage's ticks allocate nothing, the
//! safe-band index's re-bands and the margin calls they raise included.
//!
//! 2,000 generated accounts (3 positions each over 10 instruments) and a seeded path that moves
//! one instrument's mark by 1–5 bp per tick, pulled back towards its start once it strays 0.15 %
//! from it (so the accounts near their edge keep leaving and re-entering bands, and none drifts
//! into liquidation while measured). The path warms the engine up until the index has packed its
//! sets once (until then they grow with the stale edges re-bands leave behind); the next 200,000
//! ticks are walked with every allocation on this thread counted by a counting global allocator.
//! `ALLOC_TRACE=1` prints the stacks of the first few allocations counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use brink::bulk::synth;
use brink::margin::{CallLevel, InstrumentId, Price};
use brink::risk::{Book, RiskConfig, RiskEngine, Scan};
use brink::shm::Output;

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
const ACCOUNTS: u64 = 2_000;
/// Ticks walked with allocations counted.
const MEASURED: usize = 200_000;
/// Most ticks the warm-up may take.
const WARM_UP_MAX: usize = 5_000_000;

/// The marks: `(instrument, price)` per tick, each mark walking by 1–5 bp a tick, pulled back
/// towards its start once it strays 0.15 % from it (xorshift64, seeded).
struct Path {
    state: u64,
    start: Vec<i64>,
    prices: Vec<i64>,
}

impl Path {
    fn new(start: Vec<i64>) -> Self {
        Path {
            state: 0x9E37_79B9_7F4A_7C15,
            prices: start.clone(),
            start,
        }
    }

    fn next(&mut self) -> (u32, i64) {
        let s = &mut self.state;
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        let r = *s;
        let i = (r % INSTRUMENTS as u64) as usize;
        let bp = 1 + ((r >> 8) % 5) as i64;
        let (p, start) = (self.prices[i], self.start[i]);
        let drift = p - start;
        let down = if drift.abs() * 700 > start {
            drift > 0
        } else {
            (r >> 16) & 1 == 1
        };
        let step = (p * bp / 10_000).max(1);
        self.prices[i] = if down { p - step } else { p + step };
        (i as u32, self.prices[i])
    }
}

/// Applies one tick of `path` as tick number `seq`.
fn tick(engine: &mut RiskEngine, path: &mut Path, seq: u64, out: &mut Vec<Output>) {
    let (instrument, px) = path.next();
    let book = Book {
        bid_px: px,
        ask_px: px,
        bid_qty: 1_000_000,
        ask_qty: 1_000_000,
    };
    engine.on_tick_at(
        instrument,
        Price(px),
        book,
        seq,
        seq * 1_000_000,
        &mut |o| out.push(o),
    );
    out.clear();
}

#[test]
fn warm_ticks_that_reband_accounts_allocate_nothing() {
    let (table, marks) = synth::instruments(INSTRUMENTS, 7);
    let accounts = synth::generate_healthy(&table, &marks, ACCOUNTS, 42, 3, CallLevel::default())
        .expect("generated accounts");
    let start: Vec<i64> = (0..INSTRUMENTS)
        .map(|i| marks.get(InstrumentId(i as u32)).map_or(1, |p| p.0))
        .collect();
    let mut path = Path::new(start);
    let mut engine = RiskEngine::new(table, marks, accounts, RiskConfig::default(), Scan::Index);
    let mut out: Vec<Output> = Vec::with_capacity(1 << 16);
    // Warm up until the index has dropped its stale edges once: its sets grow with the stale
    // edges re-bands leave behind until those outnumber the live ones, then are packed again, so
    // by then each has been as large as it gets on this path for a while.
    let mut seq = 0;
    while engine.index().compactions() == 0 && (seq as usize) < WARM_UP_MAX {
        seq += 1;
        tick(&mut engine, &mut path, seq, &mut out);
    }
    assert!(
        engine.index().compactions() > 0,
        "no compaction in {WARM_UP_MAX} ticks"
    );
    let before = (engine.counters(), engine.index().counters());
    let allocated = allocations(|| {
        for _ in 0..MEASURED {
            seq += 1;
            tick(&mut engine, &mut path, seq, &mut out);
        }
    });
    let (risk, index) = (engine.counters(), engine.index().counters());

    // The measured ticks did the index's work: ticks that left bands, accounts re-evaluated and
    // re-banded, edges pushed back into the sets.
    assert_eq!(risk.ticks - before.0.ticks, MEASURED as u64);
    let popped = index.popped - before.1.popped;
    let pushes = index.pushes - before.1.pushes;
    let rebands = index.set_bands - before.1.set_bands;
    println!(
        "warm-up {} ticks; measured {MEASURED} ticks: {popped} edges popped, {rebands} re-bands, \
         {pushes} edges pushed, {} evaluations, {} margin calls, {allocated} allocations",
        seq as usize - MEASURED,
        risk.evaluations - before.0.evaluations,
        risk.margin_calls - before.0.margin_calls,
    );
    assert!(
        risk.margin_calls > before.0.margin_calls,
        "no margin call while measured"
    );
    assert!(
        popped > 1_000 && rebands > 1_000 && pushes > 1_000,
        "too little re-banding to show anything"
    );
    assert_eq!(
        risk.liquidations, before.0.liquidations,
        "the measured ticks are meant to stay calm"
    );
    assert_eq!(allocated, 0, "allocations on warm ticks");
}

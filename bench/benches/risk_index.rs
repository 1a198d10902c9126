//! Per-tick cost of the risk stage with 10^4, 10^5 and 10^6 accounts (3 positions each over 100
//! instruments): the safe-band index versus evaluating every unit that holds the ticked
//! instrument. The book loads healthy (accounts the generator draws already called or
//! liquidatable are skipped, see `synth::generate_healthy`), then walks a seeded random path:
//! most ticks move one instrument's mark by ±1–5 bp, one tick in 1,000 jumps 1–3 %, with 1 ms
//! of feed time per tick (so liquidation deadlines pass as they would live). Each tick shows a
//! book at the mark (100,000 lots a side); liquidation orders are answered by the built-in
//! matcher (`brink::matcher`) and its fills go back through `on_event`, as a venue's would,
//! within the timed tick. The insurance fund starts at 5 % of the traders' wallets.
//!
//! ## What one iteration is
//! One criterion iteration walks a fixed window of the path from the loaded book: a fresh
//! engine (and matcher) is built from the same accounts before each iteration, outside the
//! timing, and dropped after it, outside the timing. Every iteration of a bench therefore does
//! the same work on the same book, whatever the engine's speed, and the sizes compare like with
//! like. Criterion's times are per window; the summary divides them by the window's length.
//!
//! | id | population | path | window | engine |
//! |---|---|---|---|---|
//! | `risk_index/index/N` | alike | with jumps | the first pass, 65,536 ticks | index |
//! | `risk_index/index_first2048/N` | alike | with jumps | the first 2,048 ticks | index |
//! | `risk_index/scan/N` | alike | with jumps | the first 2,048 ticks | scan |
//! | `risk_index/index_calm/N` | alike | without jumps | the first pass | index |
//! | `risk_index/index_fixed_edge/N` | 10^4 at risk | with jumps | the first pass | index |
//! | `risk_index/index_fixed_edge_no_adl/N` | 10^4 at risk | with jumps | the first pass | index, no deadline ADL |
//!
//! "Alike": `synth::generate_healthy(N)`, so the accounts near the edge grow with N. "10^4 at
//! risk": the first 10^4 accounts are those of the alike population of 10^4 and the other
//! N − 10^4 are drawn alike but collateralised to about 1x, so the holders of every instrument
//! grow a hundredfold while the accounts near the edge, and every evaluation, pop and
//! liquidation on the window, stay the same: the case that tests whether a tick's cost depends
//! on how many accounts hold the instrument. One cost there still grows with the holders: an
//! ADL ranking bounds every opposite-side position of the instrument from its dense copy (a few
//! tens of nanoseconds each) before scoring exactly the few it reads (`risk::adl`; the
//! `adl_ranking` bench times one), and the window's jobs that pass their fill deadline go to ADL.
//! `index_fixed_edge_no_adl` sets `fill_deadline_ns` to `u64::MAX` (those jobs keep working the
//! market; no ADL happens on the window), which leaves the index's own cost.
//!
//! "index" is `Scan::Index`; "scan" is `Scan::Holders`, which evaluates every unit holding the
//! ticked instrument (and, having no use for them, computes no bands). The scan walks only the
//! first 2,048 ticks (five of the path's jumps; a tick costs it 20–30 ms at 10^6); the index walks
//! the same window too, so their ratio compares the same work.

//! Each window's counts (evaluations, the index's pops, pushes and re-bands, liquidations) and a
//! digest of its output records in order are printed; every iteration must repeat them exactly,
//! or the bench panics. With `RISK_INDEX_ONCE=1` a digest of the engine's encoded state at the
//! end of the window is printed too: two builds that print the same digests made the same
//! decisions on the window and ended in the same state.
//!
//! Before timing, it measures engine memory per position at 10^6 accounts: the engine's own
//! `heap_bytes()` plus its struct, and the change of the process's resident set over generating
//! the accounts and building the engine.
//!
//! `cargo bench -p brink-bench --bench risk_index`; the summary tables (medians over the
//! iterations, ns per tick) are printed at the end. Knobs (environment):
//! - `RISK_INDEX_COUNTS=10000,1000000`: the account counts (default 10^4, 10^5, 10^6);
//! - `RISK_INDEX_BENCHES=index,index_fixed_edge`: the benches to run (default all);
//! - `RISK_INDEX_SAMPLES=10`: criterion samples per bench (at least 10);
//! - `RISK_INDEX_ONCE=1`: walk each window once, without criterion, and print its counts (for
//!   profilers: the window is walked in `walk_window`).

use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use brink::bulk::synth;
use brink::index::IndexCounters;
use brink::ingest::{FeedBody, FeedEvent};
use brink::margin::{
    Account, CallLevel, Instrument, InstrumentTable, MarginMode, MarkPrices, Money, Price,
};
use brink::matcher::{Matcher, MatcherConfig};
use brink::recovery::codec::Writer;
use brink::risk::{Book, RiskConfig, RiskCounters, RiskEngine, Scan};
use brink::shm::{Input, Output, Tick};
use criterion::{Criterion, SamplingMode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const COUNTS: [u64; 3] = [10_000, 100_000, 1_000_000];
const INSTRUMENTS: usize = 100;
const POSITIONS: usize = 3;
const PATH_LEN: usize = 1 << 16;
/// The long window: one pass of the path.
const PASS: usize = PATH_LEN;
/// The short window (the scan's): the first five of the path's jumps fall in it.
const SHORT: usize = 2048;
/// Feed time per tick.
const TICK_NS: u64 = 1_000_000;
/// Size shown at each best level, lots.
const BOOK_LOTS: u32 = 100_000;
/// Accounts at risk in the fixed-edge population, whatever its size.
const AT_RISK: u64 = 10_000;

/// The path: (instrument, relative move in 10^-6).
fn path(seed: u64, jumps: bool) -> Vec<(u32, i64)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..PATH_LEN)
        .map(|_| {
            let instrument = rng.random_range(0..INSTRUMENTS as u32);
            let size = if jumps && rng.random_range(0..1000) == 0 {
                rng.random_range(10_000..=30_000)
            } else {
                rng.random_range(100..=500)
            };
            let sign = if rng.random_bool(0.5) { 1 } else { -1 };
            (instrument, sign * size)
        })
        .collect()
}

fn market() -> (InstrumentTable, MarkPrices) {
    synth::instruments(INSTRUMENTS, 7)
}

fn accounts(table: &InstrumentTable, marks: &MarkPrices, count: u64) -> Vec<Account> {
    match synth::generate_healthy(table, marks, count, 42, POSITIONS, CallLevel::default()) {
        Ok(a) => a,
        Err(e) => panic!("bench set-up: {e}"),
    }
}

/// The fixed-edge population: the same `AT_RISK` accounts as `accounts(AT_RISK)`, then
/// `count − AT_RISK` more drawn alike but topped up to about 1x (collateral equal to each
/// position's notional, in the wallet or the isolated margin), which no move on the path brings
/// near maintenance. The number of accounts near the edge stays the same while the number that
/// hold each instrument grows with `count`.
fn fixed_edge_accounts(table: &InstrumentTable, marks: &MarkPrices, count: u64) -> Vec<Account> {
    let mut out = accounts(table, marks, AT_RISK.min(count));
    let next_id = out.last().map_or(1, |a| a.id() + 1);
    let rest = match synth::generate_healthy(
        table,
        marks,
        count.saturating_sub(AT_RISK),
        43,
        POSITIONS,
        CallLevel::default(),
    ) {
        Ok(a) => a,
        Err(e) => panic!("bench set-up: {e}"),
    };
    for (k, a) in rest.iter().enumerate() {
        let mut safe = Account::with_capacity(next_id + k as u64, a.wallet(), a.positions().len());
        for p in a.positions() {
            let inst = table.get(p.instrument()).expect("synthetic instrument");
            let mark = marks.get(p.instrument()).expect("synthetic mark");
            let notional = Money::from_scaled_ceil(
                Instrument::notional(p.qty(), mark).abs(),
                inst.notional_decimals(),
            )
            .expect("in range");
            safe.push_position(*p).expect("distinct instruments");
            safe.change_wallet(notional).expect("in range");
            if p.mode() == MarginMode::Isolated {
                safe.transfer_isolated_margin(p.instrument(), notional)
                    .expect("isolated");
            }
        }
        out.push(safe);
    }
    out
}

/// Which population a bench loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Population {
    /// `accounts(count)`: the at-risk share grows with the count.
    Alike,
    /// `fixed_edge_accounts(count)`: `AT_RISK` accounts near the edge, the rest far from it.
    FixedEdge,
}

/// One bench: which engine walks which window of which path over which population.
#[derive(Debug, Clone, Copy)]
struct Bench {
    name: &'static str,
    population: Population,
    jumps: bool,
    scan: Scan,
    window: usize,
    /// Whether a liquidation job past its fill deadline goes to ADL (the default); off, jobs
    /// keep working the market.
    deadline_adl: bool,
}

const BENCHES: [Bench; 6] = [
    Bench {
        name: "index",
        population: Population::Alike,
        jumps: true,
        scan: Scan::Index,
        window: PASS,
        deadline_adl: true,
    },
    Bench {
        name: "index_first2048",
        population: Population::Alike,
        jumps: true,
        scan: Scan::Index,
        window: SHORT,
        deadline_adl: true,
    },
    Bench {
        name: "scan",
        population: Population::Alike,
        jumps: true,
        scan: Scan::Holders,
        window: SHORT,
        deadline_adl: true,
    },
    Bench {
        name: "index_calm",
        population: Population::Alike,
        jumps: false,
        scan: Scan::Index,
        window: PASS,
        deadline_adl: true,
    },
    Bench {
        name: "index_fixed_edge",
        population: Population::FixedEdge,
        jumps: true,
        scan: Scan::Index,
        window: PASS,
        deadline_adl: true,
    },
    Bench {
        name: "index_fixed_edge_no_adl",
        population: Population::FixedEdge,
        jumps: true,
        scan: Scan::Index,
        window: PASS,
        deadline_adl: false,
    },
];

/// A loaded book: every timed window starts from an engine built from it afresh.
struct Loaded {
    table: InstrumentTable,
    marks: MarkPrices,
    accounts: Vec<Account>,
    fund: Money,
}

impl Loaded {
    fn new(count: u64, population: Population) -> Loaded {
        let (table, marks) = market();
        let accounts = match population {
            Population::Alike => accounts(&table, &marks, count),
            Population::FixedEdge => fixed_edge_accounts(&table, &marks, count),
        };
        // An insurance fund of 5 % of the traders' wallets, as venues keep one: bankrupt
        // remainders go to it first, and to ADL only when it cannot carry them.
        let fund = accounts
            .iter()
            .fold(Money::ZERO, |m, a| m.checked_add(a.wallet()).unwrap_or(m))
            .to_scaled_floor(8)
            .and_then(|units| Money::from_scaled_floor(units / 20, 8))
            .unwrap_or(Money::ZERO);
        Loaded {
            table,
            marks,
            accounts,
            fund,
        }
    }

    /// A fresh engine over this book, at the start of the path.
    fn walker(&self, bench: &Bench) -> Walker {
        let prices = (0..INSTRUMENTS)
            .map(|i| {
                self.marks
                    .get(brink::margin::InstrumentId(i as u32))
                    .map_or(1, |p| p.0)
            })
            .collect();
        let mut config = RiskConfig::default();
        if !bench.deadline_adl {
            config.liquidation.fill_deadline_ns = u64::MAX;
        }
        let engine = RiskEngine::new(
            self.table.clone(),
            self.marks.clone(),
            self.accounts.clone(),
            config,
            bench.scan,
        )
        .with_fund(self.fund);
        Walker {
            engine,
            matcher: Matcher::new(MatcherConfig::default(), INSTRUMENTS),
            pending: Vec::new(),
            prices,
            at: 0,
            seq: 0,
            outputs: 0,
            output_digest: DIGEST_SEED,
        }
    }
}

/// An engine walking the path.
struct Walker {
    engine: RiskEngine,
    matcher: Matcher,
    pending: Vec<Output>,
    prices: Vec<i64>,
    at: usize,
    seq: u64,
    outputs: u64,
    /// Digest of every output record so far, in order ([`digest`]).
    output_digest: u64,
}

/// Folds 64-bit words into a digest (FNV-1a over words): equal streams give equal digests, and
/// a changed, dropped or reordered record changes it (up to collisions).
fn digest(mut h: u64, words: impl IntoIterator<Item = u64>) -> u64 {
    for w in words {
        h = (h ^ w).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

const DIGEST_SEED: u64 = 0xCBF2_9CE4_8422_2325;

impl Walker {
    #[inline]
    fn tick(&mut self, path: &[(u32, i64)]) {
        let (instrument, ppm) = path[self.at];
        self.at = (self.at + 1) % path.len();
        self.seq += 1;
        let p = &mut self.prices[instrument as usize];
        *p = (*p + *p * ppm / 1_000_000).max(1);
        let book = Book {
            bid_px: *p,
            ask_px: *p,
            bid_qty: BOOK_LOTS,
            ask_qty: BOOK_LOTS,
        };
        self.matcher.on_tick(&Tick {
            instrument,
            mark_px: *p,
            index_px: *p,
            bid_px: *p,
            ask_px: *p,
            bid_qty: BOOK_LOTS,
            ask_qty: BOOK_LOTS,
        });
        let now = self.seq * TICK_NS;
        let mut pending = std::mem::take(&mut self.pending);
        self.engine
            .on_tick_at(instrument, Price(*p), book, self.seq, now, &mut |o| {
                pending.push(o)
            });
        // The venue answers: fills go back in as inputs (and may cause further decisions).
        let mut i = 0;
        while i < pending.len() {
            if let Some(fill) = self.matcher.on_output(&pending[i]) {
                let event = FeedEvent {
                    seq: self.seq,
                    publish_ns: now,
                    receive_ns: now,
                    body: FeedBody::Input(Input::Fill(fill)),
                };
                self.engine.on_event(&event, &mut |o| pending.push(o));
            }
            i += 1;
        }
        self.outputs += pending.len() as u64;
        for o in &pending {
            let bytes = o.encode().to_le_bytes();
            self.output_digest = digest(
                self.output_digest,
                bytes
                    .chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))),
            );
        }
        black_box(&pending);
        pending.clear();
        self.pending = pending;
    }
}

/// Walks the next `ticks` ticks of `path` (a separate function so that profilers can select it).
#[inline(never)]
fn walk_window(w: &mut Walker, path: &[(u32, i64)], ticks: usize) {
    for _ in 0..ticks {
        w.tick(path);
    }
}

/// What one window did (the same on every iteration: the engine is deterministic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct WindowCounts {
    ticks: u64,
    risk: RiskCounters,
    index: IndexCounters,
    outputs: u64,
    /// Digest of the window's output records, in order.
    output_digest: u64,
    /// Digest of the engine's encoded state at the end of the window (`RISK_INDEX_ONCE` only:
    /// encoding 10^6 accounts is not part of what is timed, but it is slow); 0 otherwise.
    state_digest: u64,
    /// Heap entries (stale included) at the start and the end of the window.
    entries_start: u64,
    entries_end: u64,
    live_end: u64,
}

impl WindowCounts {
    fn per_tick(&self, n: u64) -> f64 {
        n as f64 / self.ticks.max(1) as f64
    }
}

/// Builds a fresh engine, walks one window and returns its time and counts; the engine is
/// built and dropped outside the timing.
fn one_window(
    loaded: &Loaded,
    bench: &Bench,
    path: &[(u32, i64)],
    with_state: bool,
) -> (Duration, WindowCounts) {
    let mut w = loaded.walker(bench);
    let r0 = w.engine.counters();
    let i0 = w.engine.index().counters();
    let entries_start = w.engine.index().total_entries();
    let start = Instant::now();
    walk_window(&mut w, path, bench.window);
    let elapsed = start.elapsed();
    let r1 = w.engine.counters();
    let i1 = w.engine.index().counters();
    let counts = WindowCounts {
        ticks: r1.ticks - r0.ticks,
        risk: r1.since(&r0),
        index: i1.since(&i0),
        outputs: w.outputs,
        output_digest: w.output_digest,
        state_digest: if with_state {
            let mut writer = Writer::new();
            w.engine.encode_state(&mut writer);
            let bytes = writer.into_bytes();
            digest(
                DIGEST_SEED,
                bytes.chunks(8).map(|c| {
                    let mut b = [0u8; 8];
                    b[..c.len()].copy_from_slice(c);
                    u64::from_le_bytes(b)
                }),
            )
        } else {
            0
        },
        entries_start,
        entries_end: w.engine.index().total_entries(),
        live_end: w.engine.index().live_entries(),
    };
    drop(black_box(w));
    (elapsed, counts)
}

/// What one bench measured.
#[derive(Default)]
struct Measured {
    /// Per-window times.
    windows: Vec<Duration>,
    counts: Option<WindowCounts>,
}

impl Measured {
    /// Ns per tick of every window, ascending.
    fn sorted_ns(&self, window: usize) -> Vec<f64> {
        let mut per: Vec<f64> = self
            .windows
            .iter()
            .map(|d| d.as_nanos() as f64 / window as f64)
            .collect();
        per.sort_by(f64::total_cmp);
        per
    }

    /// Median ns per tick over the windows.
    fn median_ns(&self, window: usize) -> Option<f64> {
        let per = self.sorted_ns(window);
        per.get(per.len() / 2).copied()
    }
}

/// Resident set size of this process, bytes.
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

struct Memory {
    positions: usize,
    heap_per_position: f64,
    rss_per_position: f64,
}

fn memory(count: u64) -> Memory {
    let before = rss_bytes();
    let (table, marks) = market();
    let accounts = accounts(&table, &marks, count);
    let positions: usize = accounts.iter().map(|a| a.positions().len()).sum();
    let engine = RiskEngine::new(table, marks, accounts, RiskConfig::default(), Scan::Index);
    let after = rss_bytes();
    let heap = engine.heap_bytes() + std::mem::size_of::<RiskEngine>();
    let m = Memory {
        positions,
        heap_per_position: heap as f64 / positions as f64,
        rss_per_position: after.saturating_sub(before) as f64 / positions as f64,
    };
    println!(
        "memory at {count} accounts, {positions} positions, {INSTRUMENTS} instruments: \
         heap_bytes {:.1} B/position, resident set +{:.1} B/position ({:.0} MiB)",
        m.heap_per_position,
        m.rss_per_position,
        after.saturating_sub(before) as f64 / (1 << 20) as f64
    );
    drop(engine);
    m
}

fn env_list(name: &str) -> Option<Vec<String>> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
}

fn print_counts(name: &str, count: u64, c: &WindowCounts, per_tick_ns: &[f64]) {
    let ix = c.index;
    println!(
        "{name}/{count}: {:.0} ns/tick (median; {:.0} to {:.0} over {} windows); {} ticks; per tick: {:.3} evaluations, {:.3} index pops ({:.3} stale), \
         {:.3} re-bands, {:.3} pushes; {} margin calls, {} liquidations, {} fills, {} fund \
         takeovers, {} ADL, {} outputs (digest {:016x}, state {:016x}); heap entries {} -> {} ({} live), \
         {} compactions",
        per_tick_ns
            .get(per_tick_ns.len() / 2)
            .copied()
            .unwrap_or(f64::NAN),
        per_tick_ns.first().copied().unwrap_or(f64::NAN),
        per_tick_ns.last().copied().unwrap_or(f64::NAN),
        per_tick_ns.len(),
        c.ticks,
        c.per_tick(c.risk.evaluations),
        c.per_tick(ix.popped),
        c.per_tick(ix.stale_popped),
        c.per_tick(ix.set_bands),
        c.per_tick(ix.pushes),
        c.risk.margin_calls,
        c.risk.liquidations,
        c.risk.liquidation_fills,
        c.risk.takeovers,
        c.risk.adl,
        c.outputs,
        c.output_digest,
        c.state_digest,
        c.entries_start,
        c.entries_end,
        c.live_end,
        ix.compactions,
    );
}

fn main() {
    let counts: Vec<u64> = env_list("RISK_INDEX_COUNTS")
        .map(|v| v.iter().filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_else(|| COUNTS.to_vec());
    let wanted = env_list("RISK_INDEX_BENCHES");
    let benches: Vec<Bench> = BENCHES
        .iter()
        .filter(|b| {
            wanted
                .as_ref()
                .is_none_or(|w| w.iter().any(|n| n == b.name))
        })
        .copied()
        .collect();
    let samples: usize = std::env::var("RISK_INDEX_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(10);
    let once = std::env::var_os("RISK_INDEX_ONCE").is_some();

    let mem = (!once).then(|| memory(*COUNTS.last().unwrap_or(&1_000_000)));
    let mut c = Criterion::default().configure_from_args();
    let path_jumps = path(2025, true);
    let path_calm = path(2025, false);
    let mut results: Vec<(u64, &'static str, Measured)> = Vec::new();
    for &count in &counts {
        for population in [Population::Alike, Population::FixedEdge] {
            let mine: Vec<&Bench> = benches
                .iter()
                .filter(|b| b.population == population)
                .collect();
            if mine.is_empty() {
                continue;
            }
            let loaded = Loaded::new(count, population);
            for bench in mine {
                let path = if bench.jumps { &path_jumps } else { &path_calm };
                let measured = Rc::new(RefCell::new(Measured::default()));
                if once {
                    let (d, counts) = one_window(&loaded, bench, path, true);
                    let mut m = measured.borrow_mut();
                    m.windows.push(d);
                    m.counts = Some(counts);
                } else {
                    let mut group = c.benchmark_group("risk_index");
                    group
                        .sample_size(samples)
                        .sampling_mode(SamplingMode::Flat)
                        .warm_up_time(Duration::from_millis(1))
                        .measurement_time(Duration::from_millis(1));
                    let rec = Rc::clone(&measured);
                    let loaded = &loaded;
                    group.bench_function(format!("{}/{count}", bench.name), move |b| {
                        b.iter_custom(|iters| {
                            let mut total = Duration::ZERO;
                            for _ in 0..iters {
                                let (d, counts) = one_window(loaded, bench, path, false);
                                let mut m = rec.borrow_mut();
                                m.windows.push(d);
                                // Same book, same path: every window must do the same work.
                                let first = *m.counts.get_or_insert(counts);
                                assert_eq!(
                                    first, counts,
                                    "{}: a window did other work",
                                    bench.name
                                );
                                total += d;
                            }
                            total
                        })
                    });
                    group.finish();
                }
                let m = Rc::try_unwrap(measured)
                    .map(RefCell::into_inner)
                    .unwrap_or_default();
                if let Some(wc) = &m.counts {
                    print_counts(bench.name, count, wc, &m.sorted_ns(bench.window));
                }
                results.push((count, bench.name, m));
            }
        }
    }
    c.final_summary();
    summary(&counts, &results, mem.as_ref());
}

fn summary(counts: &[u64], results: &[(u64, &'static str, Measured)], mem: Option<&Memory>) {
    let find = |count: u64, name: &str| {
        results
            .iter()
            .find(|(c, n, _)| *c == count && *n == name)
            .map(|(_, _, m)| m)
    };
    let window = |name: &str| {
        BENCHES
            .iter()
            .find(|b| b.name == name)
            .map_or(PASS, |b| b.window)
    };
    let ns = |count: u64, name: &str| find(count, name).and_then(|m| m.median_ns(window(name)));
    let counts_of = |count: u64, name: &str| find(count, name).and_then(|m| m.counts);
    let evals =
        |count: u64, name: &str| counts_of(count, name).map(|c| c.per_tick(c.risk.evaluations));
    let adl = |count: u64, name: &str| counts_of(count, name).map(|c| c.risk.adl as f64);
    let cell =
        |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    let ratio = |a: Option<f64>, b: Option<f64>, digits: usize| match (a, b) {
        (Some(a), Some(b)) => format!("{:.digits$}x", a / b),
        _ => "-".to_string(),
    };
    let iterations = |count: u64, name: &str| find(count, name).map_or(0, |m| m.windows.len());
    println!();
    println!(
        "Index and scan on the same window, the first {SHORT} ticks from the loaded book (median ns per tick over the iterations)"
    );
    println!(
        "| accounts | index | scan | scan/index | evals/tick index | evals/tick scan | iterations index, scan |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for &count in counts {
        println!(
            "| {count} | {} | {} | {} | {} | {} | {}, {} |",
            cell(ns(count, "index_first2048"), 0),
            cell(ns(count, "scan"), 0),
            ratio(ns(count, "scan"), ns(count, "index_first2048"), 0),
            cell(evals(count, "index_first2048"), 3),
            cell(evals(count, "scan"), 0),
            iterations(count, "index_first2048"),
            iterations(count, "scan"),
        );
    }
    println!();
    println!(
        "The index over the first pass ({PASS} ticks) from the loaded book (median ns per tick over the iterations; ADL: closes on the window)"
    );
    println!(
        "| accounts | alike | evals/tick | ADL | alike, no jumps | evals/tick | ADL | 10^4 at risk | evals/tick | ADL | 10^4 at risk, no deadline ADL | evals/tick | ADL | iterations |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for &count in counts {
        let mut row = format!("| {count} |");
        for name in [
            "index",
            "index_calm",
            "index_fixed_edge",
            "index_fixed_edge_no_adl",
        ] {
            row += &format!(
                " {} | {} | {} |",
                cell(ns(count, name), 0),
                cell(evals(count, name), 3),
                cell(adl(count, name), 0)
            );
        }
        row += &format!(" {} |", iterations(count, "index"));
        println!("{row}");
    }
    if let (Some(&first), Some(&last)) = (counts.first(), counts.last()) {
        let growth = |name: &str| ratio(ns(last, name), ns(first, name), 2);
        println!(
            "growth {first} -> {last}, first pass (goal <= 2x): alike {}, alike without jumps {}, 10^4 at risk {}, 10^4 at risk without deadline ADL {}",
            growth("index"),
            growth("index_calm"),
            growth("index_fixed_edge"),
            growth("index_fixed_edge_no_adl"),
        );
        // The scan evaluates every holder on every tick, and does the same liquidation work as
        // the index: its cost over the pass is estimated as its evaluation cost on the short
        // window (scan − index there) plus the index's cost over the pass.
        let estimate = match (
            ns(last, "scan"),
            ns(last, "index_first2048"),
            ns(last, "index"),
        ) {
            (Some(s), Some(i), Some(p)) => format!("{:.0}x", (s - i + p) / p),
            _ => "-".to_string(),
        };
        println!(
            "scan/index at {last} (goal >= 1000x): first {SHORT} ticks {}; first pass, estimated as (scan - index on the first {SHORT} + index on the pass) / index on the pass: {estimate}",
            ratio(ns(last, "scan"), ns(last, "index_first2048"), 0),
        );
    }
    if let Some(mem) = mem {
        println!(
            "memory per position at 10^6 accounts x {POSITIONS} positions ({} positions): heap_bytes {:.1} B, resident set {:.1} B (goal <= 256 B)",
            mem.positions, mem.heap_per_position, mem.rss_per_position
        );
    }
}

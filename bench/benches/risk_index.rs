//! Per-tick cost of the risk stage with 10^4, 10^5 and 10^6 accounts (3 positions each over 100
//! instruments): the safe-band index (`risk_index/index/N`) versus evaluating every unit that
//! holds the ticked instrument (`risk_index/scan/N`). The book loads healthy (accounts the
//! generator draws already called or liquidatable are skipped, see `synth::generate_healthy`), then
//! walks a seeded random path: most ticks move one
//! instrument's mark by ±1–5 bp, one tick in 1,000 jumps 1–3 %. Each iteration is one tick; the
//! engines advance along the path from sample to sample, with 1 ms of feed time per tick (so
//! liquidation deadlines pass as they would live). Each tick shows a book at the mark (5 lots a
//! side of every instrument's size, 100,000 lots); liquidation orders are answered by the built-in
//! matcher (`brink::matcher`) and its fills go back through `on_event`, as a venue's would, within
//! the timed tick.
//!
//! `risk_index/index_calm/N` runs the index on the same path without the jumps (no
//! liquidations), which separates the cost of the index from that of liquidation work.
//! `risk_index/index_fixed_edge/N` runs the index on the jump path over a population whose
//! first 10^4 accounts are those of `index/10000` and whose other `N − 10^4` are drawn alike but
//! collateralised to about 1x: the accounts near the edge stay the same while the holders of
//! every instrument grow a hundredfold, which isolates what the index's cost depends on.
//!
//! The insurance fund starts at 5 % of the traders' wallets.
//!
//! Before timing, it measures engine memory per position at 10^6 accounts: the engine's own
//! `heap_bytes()` plus its struct, and the change of the process's resident set (`VmRSS`) over
//! generating the accounts and building the engine.
//!
//! `cargo bench -p brink-bench --bench risk_index`; the summary table (medians of criterion's
//! samples, ns per tick) is printed at the end.

use std::cell::RefCell;
use std::hint::black_box;
use std::rc::Rc;
use std::time::{Duration, Instant};

use brink::bulk::synth;
use brink::ingest::{FeedBody, FeedEvent};
use brink::margin::{
    Account, CallLevel, Instrument, InstrumentTable, MarginMode, MarkPrices, Money, Price,
};
use brink::matcher::{Matcher, MatcherConfig};
use brink::risk::{Book, RiskConfig, RiskEngine, Scan};
use brink::shm::{Input, Output, Tick};
use criterion::Criterion;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const COUNTS: [u64; 3] = [10_000, 100_000, 1_000_000];
const INSTRUMENTS: usize = 100;
const POSITIONS: usize = 3;
const PATH_LEN: usize = 1 << 16;
/// Feed time per tick.
const TICK_NS: u64 = 1_000_000;
/// Size shown at each best level, lots.
const BOOK_LOTS: u32 = 100_000;

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

/// Accounts at risk in the fixed-edge population, whatever its size.
const AT_RISK: u64 = 10_000;

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

/// Which population a walker loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Population {
    /// `accounts(count)`: the at-risk share grows with the count.
    Mixed,
    /// `fixed_edge_accounts(count)`: `AT_RISK` accounts near the edge, the rest far from it.
    FixedEdge,
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
}

impl Walker {
    fn new(count: u64, scan: Scan, population: Population) -> Walker {
        let (table, marks) = market();
        let accounts = match population {
            Population::Mixed => accounts(&table, &marks, count),
            Population::FixedEdge => fixed_edge_accounts(&table, &marks, count),
        };
        let prices = (0..INSTRUMENTS)
            .map(|i| {
                marks
                    .get(brink::margin::InstrumentId(i as u32))
                    .map_or(1, |p| p.0)
            })
            .collect();
        // An insurance fund of 5 % of the traders' wallets, as venues keep one: bankrupt
        // remainders go to it first, and to ADL only when it cannot carry them.
        let fund = accounts
            .iter()
            .fold(Money::ZERO, |m, a| m.checked_add(a.wallet()).unwrap_or(m))
            .to_scaled_floor(8)
            .and_then(|units| Money::from_scaled_floor(units / 20, 8))
            .unwrap_or(Money::ZERO);
        let engine =
            RiskEngine::new(table, marks, accounts, RiskConfig::default(), scan).with_fund(fund);
        Walker {
            engine,
            matcher: Matcher::new(MatcherConfig::default(), INSTRUMENTS),
            pending: Vec::new(),
            prices,
            at: 0,
            seq: 0,
            outputs: 0,
        }
    }

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
        black_box(&pending);
        pending.clear();
        self.pending = pending;
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

fn memory() -> Memory {
    let count = *COUNTS.last().unwrap_or(&1_000_000);
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

/// What each engine of one population size measured.
struct Row {
    index: Measured,
    scan: Measured,
    /// The index on the path without jumps (no liquidations).
    calm: Measured,
    /// The index with `AT_RISK` accounts near the edge and the rest far from it.
    edge: Measured,
}

fn median_ns(samples: &[(u64, Duration)], keep: usize) -> f64 {
    let start = samples.len().saturating_sub(keep);
    let mut per: Vec<f64> = samples[start..]
        .iter()
        .map(|(n, d)| d.as_nanos() as f64 / (*n).max(1) as f64)
        .collect();
    per.sort_by(f64::total_cmp);
    per.get(per.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Ticks of the fixed windows every engine walks first, from the same start.
const FIRST_SHORT: usize = 256;

/// What one engine measured.
struct Measured {
    /// Criterion's samples: median ns/tick.
    median_ns: f64,
    /// Evaluations per tick over criterion's samples.
    evals_per_tick: f64,
    /// Mean ns/tick over the first `FIRST_SHORT` ticks of the path from the loaded book.
    first_short_ns: f64,
    /// Mean ns/tick over the first `PATH_LEN` ticks (index engines only; NaN for the scan).
    first_pass_ns: f64,
}

/// Mean ns/tick of the next `n` ticks.
fn timed_ticks(w: &mut Walker, path: &[(u32, i64)], n: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        w.tick(path);
    }
    start.elapsed().as_nanos() as f64 / n.max(1) as f64
}

/// Benches one engine.
///
/// Criterion chooses how many ticks each engine walks, so a fast engine walks the path many
/// times (its prices compounding pass after pass, its book depleted by the liquidations) while a
/// slow one walks part of it once. Before criterion, every engine therefore walks the same
/// fixed windows from the same loaded book: its first `FIRST_SHORT` ticks, and for the index its
/// whole first pass (`PATH_LEN` ticks); those compare like with like across sizes.
fn bench_one(
    c: &mut Criterion,
    name: &str,
    count: u64,
    scan: Scan,
    population: Population,
    path: &[(u32, i64)],
) -> Measured {
    let mut w = Walker::new(count, scan, population);
    let first_short_ns = timed_ticks(&mut w, path, FIRST_SHORT);
    let first_pass_ns = if scan == Scan::Index {
        let rest = timed_ticks(&mut w, path, PATH_LEN - FIRST_SHORT);
        (first_short_ns * FIRST_SHORT as f64 + rest * (PATH_LEN - FIRST_SHORT) as f64)
            / PATH_LEN as f64
    } else {
        f64::NAN
    };
    let slow = scan != Scan::Index && count >= 1_000_000;
    let samples = if slow { 10 } else { 20 };
    let mut group = c.benchmark_group("risk_index");
    group
        .sample_size(samples)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(if slow { 4 } else { 3 }));
    let recorded: Rc<RefCell<Vec<(u64, Duration)>>> = Rc::default();
    let (ticks0, evals0) = (w.engine.counters().ticks, w.engine.counters().evaluations);
    {
        let rec = Rc::clone(&recorded);
        let w = &mut w;
        group.bench_function(format!("{name}/{count}"), move |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    w.tick(path);
                }
                let elapsed = start.elapsed();
                rec.borrow_mut().push((iters, elapsed));
                elapsed
            })
        });
    }
    group.finish();
    let c1 = w.engine.counters();
    let ticks = (c1.ticks - ticks0).max(1) as f64;
    println!(
        "{name}/{count}: {} ticks, {:.1} evaluations/tick, {} margin calls, {} liquidations, \
         {} fills, {} fund takeovers, {} ADL, {} outputs, {} liquidation jobs open at the end",
        c1.ticks - ticks0,
        (c1.evaluations - evals0) as f64 / ticks,
        c1.margin_calls,
        c1.liquidations,
        c1.liquidation_fills,
        c1.takeovers,
        c1.adl,
        w.outputs,
        w.engine.open_jobs()
    );
    Measured {
        median_ns: median_ns(&recorded.borrow(), samples),
        evals_per_tick: (c1.evaluations - evals0) as f64 / ticks,
        first_short_ns,
        first_pass_ns,
    }
}

fn main() {
    let mem = memory();
    let mut c = Criterion::default().configure_from_args();
    let path_jumps = path(2025, true);
    let path_calm = path(2025, false);
    let mut rows = Vec::new();
    for count in COUNTS {
        let index = bench_one(
            &mut c,
            "index",
            count,
            Scan::Index,
            Population::Mixed,
            &path_jumps,
        );
        let scan = bench_one(
            &mut c,
            "scan",
            count,
            Scan::Holders,
            Population::Mixed,
            &path_jumps,
        );
        let calm = bench_one(
            &mut c,
            "index_calm",
            count,
            Scan::Index,
            Population::Mixed,
            &path_calm,
        );
        let edge = bench_one(
            &mut c,
            "index_fixed_edge",
            count,
            Scan::Index,
            Population::FixedEdge,
            &path_jumps,
        );
        rows.push((
            count,
            Row {
                index,
                scan,
                calm,
                edge,
            },
        ));
    }
    c.final_summary();

    println!();
    println!(
        "Same ticks from the same loaded book (mean ns/tick): the first {FIRST_SHORT} ticks, and the index's whole first pass of {PATH_LEN}"
    );
    println!(
        "| accounts | index, first {FIRST_SHORT} | scan, first {FIRST_SHORT} | scan/index | index, first pass | index, no jumps, first pass | index, 10^4 at risk, first pass |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for (count, r) in &rows {
        println!(
            "| {count} | {:.0} | {:.0} | {:.0}x | {:.0} | {:.0} | {:.0} |",
            r.index.first_short_ns,
            r.scan.first_short_ns,
            r.scan.first_short_ns / r.index.first_short_ns,
            r.index.first_pass_ns,
            r.calm.first_pass_ns,
            r.edge.first_pass_ns,
        );
    }
    println!();
    println!(
        "Criterion's samples (median ns/tick; each engine walks as far as its speed takes it, see bench_one)"
    );
    println!(
        "| accounts | index | scan | scan/index | evals/tick index | evals/tick scan | index, no jumps | evals/tick | index, 10^4 at risk | evals/tick |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (count, r) in &rows {
        println!(
            "| {count} | {:.0} | {:.0} | {:.0}x | {:.2} | {:.0} | {:.0} | {:.3} | {:.0} | {:.3} |",
            r.index.median_ns,
            r.scan.median_ns,
            r.scan.median_ns / r.index.median_ns,
            r.index.evals_per_tick,
            r.scan.evals_per_tick,
            r.calm.median_ns,
            r.calm.evals_per_tick,
            r.edge.median_ns,
            r.edge.evals_per_tick
        );
    }
    if let (Some((_, first)), Some((_, last))) = (rows.first(), rows.last()) {
        println!(
            "first pass, index growth 10^4 -> 10^6: {:.2}x with jumps, {:.2}x without, {:.2}x with 10^4 at risk (goal <= 2x)",
            last.index.first_pass_ns / first.index.first_pass_ns,
            last.calm.first_pass_ns / first.calm.first_pass_ns,
            last.edge.first_pass_ns / first.edge.first_pass_ns,
        );
        println!(
            "first {FIRST_SHORT} ticks, scan/index at 10^6: {:.0}x; criterion medians, scan/index at 10^6: {:.0}x (goal >= 1000x)",
            last.scan.first_short_ns / last.index.first_short_ns,
            last.scan.median_ns / last.index.median_ns,
        );
    }
    println!(
        "memory per position at 10^6 accounts x {POSITIONS} positions ({} positions): heap_bytes {:.1} B, resident set {:.1} B (goal <= 256 B)",
        mem.positions, mem.heap_per_position, mem.rss_per_position
    );
}

//! What one ADL ranking costs: building the ranking of one side of an instrument and reading its
//! first 8 counterparties ([`RiskEngine::adl_queue`], the same ranking `adl_now` builds for every
//! ADL event: every candidate bounded, as many scored exactly as reading needs), over the
//! population of the risk index bench
//! (`synth::generate_healthy`: N accounts, 3 positions each over 100 instruments, so about
//! 3N/100 holders per instrument, half of them on each side).
//!
//! One criterion iteration ranks the next (instrument, side) of the 200 in turn, so a sample
//! averages over instruments of every size; the summary divides the median time per ranking by
//! the mean number of holders per instrument. The engine is built once per size, untimed, and
//! a ranking changes no state, so every iteration of a size ranks the same book.
//!
//! Before timing, for every instrument and side, the first 8 counterparties must be the first 8
//! of the whole ranking, with no account twice, or the bench panics.
//!
//! `cargo bench -p brink-bench --bench adl_ranking`; ids are `adl_ranking/top8/N`. Knobs
//! (environment): `ADL_RANKING_COUNTS=10000,1000000` (default 10^4, 10^5, 10^6),
//! `ADL_RANKING_SAMPLES=20` (default 20), `ADL_RANKING_ONCE=1` (rank each of the 200 once,
//! without criterion, in `rank_all`: for profilers, which then see the same work on every run).
//! The machine's caches matter: at 10^6 accounts a ranking touches tens of megabytes that a
//! busy neighbour may have evicted; compare sizes within one run.

use std::collections::HashSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use brink::bulk::synth;
use brink::margin::CallLevel;
use brink::risk::{RiskConfig, RiskEngine, Scan};
use criterion::{Criterion, SamplingMode};

const COUNTS: [u64; 3] = [10_000, 100_000, 1_000_000];
const INSTRUMENTS: u32 = 100;
const POSITIONS: usize = 3;
const TOP: usize = 8;

fn engine(count: u64) -> RiskEngine {
    let (table, marks) = synth::instruments(INSTRUMENTS as usize, 7);
    let accounts =
        match synth::generate_healthy(&table, &marks, count, 42, POSITIONS, CallLevel::default()) {
            Ok(a) => a,
            Err(e) => panic!("bench set-up: {e}"),
        };
    RiskEngine::new(table, marks, accounts, RiskConfig::default(), Scan::Index)
}

/// The (instrument, side) of iteration `n`.
fn nth(n: u64) -> (u32, i8) {
    let k = (n % (2 * u64::from(INSTRUMENTS))) as u32;
    (k / 2, if k.is_multiple_of(2) { 1 } else { -1 })
}

fn check(engine: &mut RiskEngine) {
    for n in 0..2 * u64::from(INSTRUMENTS) {
        let (instrument, side) = nth(n);
        let all = engine.adl_queue(instrument, side, usize::MAX);
        let top = engine.adl_queue(instrument, side, TOP);
        assert_eq!(top, all[..TOP.min(all.len())], "{instrument}/{side}");
        let distinct: HashSet<u64> = all.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            all.len(),
            "{instrument}/{side}: an account twice"
        );
        assert!(!all.is_empty(), "{instrument}/{side}: nobody to rank");
    }
}

/// Ranks each (instrument, side) once, reading its first `TOP` (a separate function so that
/// profilers can select it).
#[inline(never)]
fn rank_all(engine: &mut RiskEngine) -> Duration {
    let start = Instant::now();
    for n in 0..2 * u64::from(INSTRUMENTS) {
        let (instrument, side) = nth(n);
        black_box(engine.adl_queue(instrument, side, TOP));
    }
    start.elapsed()
}

fn env_list(name: &str) -> Option<Vec<u64>> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
}

fn main() {
    let counts = env_list("ADL_RANKING_COUNTS").unwrap_or_else(|| COUNTS.to_vec());
    let samples = std::env::var("ADL_RANKING_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20usize)
        .max(10);
    let once = std::env::var_os("ADL_RANKING_ONCE").is_some();
    let mut c = Criterion::default().configure_from_args();
    let mut rows = Vec::new();
    for &count in &counts {
        let mut e = engine(count);
        check(&mut e);
        let holders = count as f64 * POSITIONS as f64 / f64::from(INSTRUMENTS);
        // What a ranking does, from one pass over the 200 (instrument, side).
        let before = e.adl_work();
        let d = rank_all(&mut e);
        let work = e.adl_work();
        let rankings = (work.rankings - before.rankings) as f64;
        let bounded = (work.bounded - before.bounded) as f64 / rankings;
        let scored = (work.scored - before.scored) as f64 / rankings;
        if once {
            let median = d.as_nanos() as f64 / (2.0 * f64::from(INSTRUMENTS));
            rows.push((count, holders, median, bounded, scored));
            continue;
        }
        let mut per_ranking: Vec<f64> = Vec::new();
        let mut group = c.benchmark_group("adl_ranking");
        group
            .sample_size(samples)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(2));
        let mut n = 0u64;
        group.bench_function(format!("top{TOP}/{count}"), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    let (instrument, side) = nth(n);
                    n += 1;
                    black_box(e.adl_queue(instrument, side, TOP));
                }
                let d = start.elapsed();
                per_ranking.push(d.as_nanos() as f64 / iters as f64);
                d
            })
        });
        group.finish();
        per_ranking.sort_by(f64::total_cmp);
        let median = per_ranking
            .get(per_ranking.len() / 2)
            .copied()
            .unwrap_or(f64::NAN);
        rows.push((count, holders, median, bounded, scored));
    }
    c.final_summary();
    println!();
    println!(
        "One ADL ranking (build, read the first {TOP}), median over the samples (mean of one pass with ADL_RANKING_ONCE)"
    );
    println!(
        "| accounts | holders per instrument | µs per ranking | ns per holder | bounded per ranking | scored exactly per ranking |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for (count, holders, median, bounded, scored) in rows {
        println!(
            "| {count} | {holders:.0} | {:.1} | {:.1} | {bounded:.0} | {scored:.1} |",
            median / 1e3,
            median / holders
        );
    }
}

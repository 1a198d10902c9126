//! What a re-band costs the safe-band index, and how long the longest one takes while the index
//! drops its stale edges (a compaction pass, which goes `COMPACT_BLOCKS` blocks per re-band).
//!
//! N accounts with 3 bands each over 100 instruments (random widths around one price), banded
//! once and then re-banded in turn, account after account, with fresh random bands: every
//! re-band leaves the account's old edges stale, so passes start once the stale edges outnumber
//! the live ones, and run a few blocks per re-band until every set has been rebuilt.
//!
//! - `index_rebands/reband/N` (criterion): the mean time of one re-band in that steady state,
//!   passes included (each iteration re-bands the next account).
//! - Then, untimed by criterion, every re-band of two whole passes and of the re-bands between
//!   them is timed on its own (`CLOCK_MONOTONIC` via `Instant`) into two HdrHistograms: the
//!   re-bands that rebuilt blocks, and the others. Their p50, p99, p99.9 and max are printed,
//!   with how many re-bands a pass took. On a shared VM the maxima of both are set by the
//!   machine (descheduling, page faults); what the pass adds shows as the difference.
//!
//! `cargo bench -p brink-bench --bench index_rebands`. Knobs (environment):
//! `INDEX_REBANDS_COUNTS=100000,1000000` (default 10^5 and 10^6 accounts).

use std::hint::black_box;
use std::time::Instant;

use brink::index::{Band, BandIndex};
use criterion::Criterion;
use hdrhistogram::Histogram;

const INSTRUMENTS: u32 = 100;
const BANDS: u64 = 3;

/// xorshift64: the bands' widths and instruments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// An index over `accounts` accounts, re-banded in turn.
struct Rebands {
    index: BandIndex,
    accounts: u32,
    next: u32,
    rng: Rng,
    bands: Vec<Band>,
}

impl Rebands {
    fn new(accounts: u32) -> Rebands {
        let mut r = Rebands {
            index: BandIndex::new(INSTRUMENTS as usize, accounts as usize),
            accounts,
            next: 0,
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            bands: Vec::with_capacity(BANDS as usize),
        };
        for _ in 0..accounts {
            r.reband();
        }
        r
    }

    /// Re-bands the next account; returns whether the call rebuilt blocks of a pass (its edges
    /// stored fell short of what it added).
    fn reband(&mut self) -> bool {
        let account = self.next;
        self.next = (self.next + 1) % self.accounts;
        self.bands.clear();
        for k in 0..BANDS {
            let x = self.rng.next();
            self.bands.push(Band {
                instrument: ((u64::from(account) * BANDS + k) % u64::from(INSTRUMENTS)) as u32,
                lo: 1_000_000 - (x % 50_000) as i64,
                hi: 1_000_000 + ((x >> 20) % 50_000) as i64,
            });
        }
        let before = self.index.total_entries();
        self.index.set_bands(account, &self.bands);
        self.index.total_entries() < before + 2 * BANDS
    }
}

fn histogram() -> Histogram<u64> {
    match Histogram::new_with_bounds(1, 60_000_000_000, 3) {
        Ok(h) => h,
        Err(e) => panic!("histogram: {e}"),
    }
}

fn line(name: &str, h: &Histogram<u64>) -> String {
    format!(
        "{name}: {} re-bands, p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns",
        h.len(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    )
}

/// Times every re-band of two whole compaction passes (and of those between them).
fn pauses(r: &mut Rebands) -> String {
    // Until a pass is under way.
    let start = r.index.compactions();
    while r.index.compactions() == start {
        r.reband();
    }
    let (mut rebuilding, mut other) = (histogram(), histogram());
    let mut pass_calls = 0u64;
    let end = r.index.compactions() + 2;
    while r.index.compactions() < end {
        let t = Instant::now();
        let rebuilt = r.reband();
        let ns = t.elapsed().as_nanos().max(1) as u64;
        let h = if rebuilt { &mut rebuilding } else { &mut other };
        h.saturating_record(ns);
        pass_calls += u64::from(rebuilt);
    }
    format!(
        "{}\n{}\n(two passes: {} re-bands rebuilt blocks; {} live edges, {} stored)",
        line("  rebuilding blocks", &rebuilding),
        line("  others", &other),
        pass_calls,
        r.index.live_entries(),
        r.index.total_entries()
    )
}

fn counts() -> Vec<u32> {
    std::env::var("INDEX_REBANDS_COUNTS")
        .ok()
        .map(|s| s.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .filter(|c: &Vec<u32>| !c.is_empty())
        .unwrap_or_else(|| vec![100_000, 1_000_000])
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let mut summary = Vec::new();
    for n in counts() {
        let mut r = Rebands::new(n);
        // Into the steady state: past the first pass.
        while r.index.compactions() == 0 {
            r.reband();
        }
        c.bench_function(&format!("index_rebands/reband/{n}"), |b| {
            b.iter(|| black_box(r.reband()))
        });
        summary.push(format!("{n} accounts:\n{}", pauses(&mut r)));
    }
    c.final_summary();
    println!("\nre-band times around compaction passes (per call, Instant):");
    for s in summary {
        println!("{s}");
    }
}

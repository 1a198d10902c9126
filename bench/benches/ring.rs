//! Brink's SPSC ring against rtrb, crossbeam's ArrayQueue and bounded channel, and std's
//! sync_channel: throughput (single items and 64-item batches, producer and consumer on two
//! threads) and one-way latency percentiles, then one comparison table.
//!
//! `cargo bench -p brink-bench --bench ring` (about two minutes on a 2-vCPU VM). Every queue is
//! first checked to deliver every item once and in order; then it is timed. Threads are pinned to
//! the first two available cores when there are at least two.

use std::time::Duration;

use brink_bench::{
    ArrayQueue, BrinkRing, Cores, CrossbeamChannel, Row, Rtrb, Spsc, StdSyncChannel, latency,
    latency_histogram, median_rate, table, transfer,
};
use criterion::{Criterion, SamplingMode, Throughput};

/// Items moved by the correctness check that precedes each queue's timing.
const CHECK_ITEMS: u64 = 1_000_000;
/// Gap between latency probes: slow enough that the queue is empty when a probe arrives.
const PROBE_GAP_NS: u64 = 1_000;
/// Latency rounds (queues interleaved, so VM noise spreads over all of them) and probes per round.
const LATENCY_ROUNDS: u64 = 5;
const PROBES_PER_ROUND: u64 = 100_000;
/// Timed runs shorter than this are warm-up-sized and left out of the rate estimates.
const MIN_TABLE_ITEMS: u64 = 100_000;
/// The table's throughput columns come from these interleaved rounds (every queue and mode once
/// per round, rotating the order), so that load changes on a shared machine hit all queues alike.
const TABLE_ROUNDS: usize = 7;
/// Target length of one table run, sized from criterion's estimate of each queue's rate.
const TABLE_RUN_S: f64 = 0.15;

/// Times one transfer on queue number `queue` (the table's row order).
fn transfer_on(queue: usize, items: u64, batch: usize, cores: Cores) -> Duration {
    match queue {
        0 => transfer::<BrinkRing>(items, batch, cores),
        1 => transfer::<Rtrb>(items, batch, cores),
        2 => transfer::<ArrayQueue>(items, batch, cores),
        3 => transfer::<CrossbeamChannel>(items, batch, cores),
        _ => transfer::<StdSyncChannel>(items, batch, cores),
    }
}

/// Replaces the rows' criterion-based rates with medians over interleaved rounds.
fn interleaved_throughput(rows: &mut [Row], cores: Cores, rounds: usize) {
    let mut runs = vec![[Vec::new(), Vec::new()]; rows.len()];
    for round in 0..rounds {
        for k in 0..rows.len() {
            let i = (k + round) % rows.len();
            for (mode, batch) in [(0, 1_usize), (1, 64)] {
                let estimate = if mode == 0 {
                    rows[i].single_per_s
                } else {
                    rows[i].batch_per_s
                };
                let items = ((estimate * TABLE_RUN_S) as u64).clamp(10_000, 100_000_000);
                runs[i][mode].push((items, transfer_on(i, items, batch, cores)));
            }
        }
    }
    for (row, [single, batch]) in rows.iter_mut().zip(&runs) {
        row.single_per_s = median_rate(single);
        row.batch_per_s = median_rate(batch);
    }
}

fn throughput<Q: Spsc<u64>>(c: &mut Criterion, cores: Cores, quick: bool, row: &mut Row) {
    for batch in [1, 64] {
        transfer::<Q>(if quick { 10_000 } else { CHECK_ITEMS }, batch, cores);
    }
    let mut group = c.benchmark_group("ring-throughput");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for batch in [1_usize, 64] {
        let mut runs = Vec::new();
        let id = format!(
            "{}/{}",
            Q::NAME,
            if batch == 1 { "single" } else { "batch64" }
        );
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let elapsed = transfer::<Q>(iters, batch, cores);
                if iters >= MIN_TABLE_ITEMS {
                    runs.push((iters, elapsed));
                }
                elapsed
            })
        });
        let rate = median_rate(&runs);
        if batch == 1 {
            row.single_per_s = rate;
        } else {
            row.batch_per_s = rate;
        }
    }
    group.finish();
    row.name = Q::NAME;
    row.native_batch = Q::NATIVE_BATCH;
}

fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cpus} CPU(s) available, {}", load_average())
}

/// The 1-minute load average: on a shared machine, other processes' load is the main noise.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .map(|l| format!("load average {l}"))
        })
        .unwrap_or_else(|| "load average unknown".to_owned())
}

fn main() {
    // Read the core list once, before any thread is pinned.
    let available = brink::runtime::available_cores();
    let cores = Cores::from_available(&available);
    // `cargo bench` passes `--bench`; `cargo test --benches` does not: then run a quick smoke pass.
    let quick = !std::env::args().any(|a| a == "--bench");
    let load_at_start = load_average();
    let mut c = Criterion::default().without_plots().configure_from_args();

    let mut rows = vec![Row::default(); 5];
    throughput::<BrinkRing>(&mut c, cores, quick, &mut rows[0]);
    throughput::<Rtrb>(&mut c, cores, quick, &mut rows[1]);
    throughput::<ArrayQueue>(&mut c, cores, quick, &mut rows[2]);
    throughput::<CrossbeamChannel>(&mut c, cores, quick, &mut rows[3]);
    throughput::<StdSyncChannel>(&mut c, cores, quick, &mut rows[4]);
    interleaved_throughput(&mut rows, cores, if quick { 1 } else { TABLE_ROUNDS });

    let (rounds, probes) = if quick {
        (1, 1_000)
    } else {
        (LATENCY_ROUNDS, PROBES_PER_ROUND)
    };
    let mut hists: Vec<_> = (0..5).map(|_| latency_histogram()).collect();
    for round in 0..rounds {
        // Rotate which queue goes first, so no queue always runs right after thread teardown.
        for k in 0..5 {
            let i = (k + round as usize) % 5;
            let h = std::mem::replace(&mut hists[i], latency_histogram());
            hists[i] = match i {
                0 => latency::<BrinkRing>(probes, PROBE_GAP_NS, cores, h),
                1 => latency::<Rtrb>(probes, PROBE_GAP_NS, cores, h),
                2 => latency::<ArrayQueue>(probes, PROBE_GAP_NS, cores, h),
                3 => latency::<CrossbeamChannel>(probes, PROBE_GAP_NS, cores, h),
                _ => latency::<StdSyncChannel>(probes, PROBE_GAP_NS, cores, h),
            };
        }
    }
    for (row, hist) in rows.iter_mut().zip(&hists) {
        row.set_latency(hist);
    }

    c.final_summary();
    println!("\n## Ring comparison");
    println!("machine: {} (at start: {load_at_start})", machine());
    println!(
        "threads: producer {:?}, consumer {:?} (core ids; None = unpinned); capacity {} slots; \
         throughput: median of {} interleaved runs per queue and mode; \
         latency: {} probes per queue, one every {} ns",
        cores.producer,
        cores.consumer,
        brink_bench::CAPACITY,
        if quick { 1 } else { TABLE_ROUNDS },
        rounds * probes,
        PROBE_GAP_NS
    );
    println!("\n{}", table(&rows));
}

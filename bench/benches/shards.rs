//! Does the risk stage's work spread over shard threads? Time per input of the risk stage
//! ([`brink::stages::RiskStage`], fan-out and merge included) over the same inputs with its
//! accounts in 1, 2 and 4 shards, run inline on the calling thread or on threads of their own.
//!
//! The inputs are heavy on purpose: the brute-force holder scan (`Scan::Holders`, every unit
//! holding the ticked instrument evaluated exactly on every tick), 40,000 accounts with two
//! positions over 4 instruments, a seeded path of ±1–5 bp moves. Per input that is tens of
//! thousands of evaluations, the kind of work a shard thread can take off the risk thread; with
//! the index, a tick costs tens of nanoseconds and the fan-out would cost more than it saves.
//!
//! Before timing, the shard threads' merged entries are checked equal to the same shards run
//! inline over a first window (threads must not change what is decided). Each sample builds its
//! stage untimed, then times `iters` inputs (at most the path's length; the time is scaled to
//! `iters` beyond it) and the final drain.
//!
//! `cargo bench -p brink-bench --bench shards`; ids are `shards/inline/N` and `shards/threads/N`.
//! On a 2-vCPU VM two shard threads can use both cores while the risk thread waits for them;
//! four cannot; read the ratios against `shards/inline/1` from the same run.

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brink::bulk::synth;
use brink::ingest::{FeedBody, FeedEvent};
use brink::margin::{CallLevel, InstrumentId, Money};
use brink::recovery::Entry;
use brink::risk::shard::Shards;
use brink::risk::{RiskConfig, RiskEngine, Scan};
use brink::runtime::{Emit, ShardPlan, Stage, WaitStrategy};
use brink::shm::{Input, Tick};
use brink::stages::{Inbound, Outbound, RiskStage};
use criterion::Criterion;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const INSTRUMENTS: usize = 4;
const ACCOUNTS: u64 = 40_000;
const PATH_LEN: usize = 4_096;

fn engine() -> RiskEngine {
    let (table, marks) = synth::instruments(INSTRUMENTS, 3);
    let accounts =
        match synth::generate_healthy(&table, &marks, ACCOUNTS, 21, 2, CallLevel::default()) {
            Ok(a) => a,
            Err(e) => panic!("bench set-up: {e}"),
        };
    RiskEngine::new(table, marks, accounts, RiskConfig::default(), Scan::Holders)
        .with_fund(Money::from_int(1_000_000_000))
}

fn path() -> Vec<FeedEvent> {
    let e = engine();
    let mut prices: Vec<i64> = (0..INSTRUMENTS)
        .map(|i| e.marks().get(InstrumentId(i as u32)).map_or(1, |p| p.0))
        .collect();
    let mut rng = StdRng::seed_from_u64(5);
    (0..PATH_LEN as u64)
        .map(|seq| {
            let i = rng.random_range(0..INSTRUMENTS);
            let bp: i64 = rng.random_range(1..=5) * if rng.random_bool(0.5) { 1 } else { -1 };
            prices[i] = (prices[i] + prices[i] * bp / 10_000).max(1);
            let p = prices[i];
            FeedEvent {
                seq: seq + 1,
                publish_ns: 1_000_000_000 + seq * 1_000_000,
                receive_ns: 0,
                body: FeedBody::Input(Input::Tick(Tick {
                    instrument: i as u32,
                    mark_px: p,
                    index_px: p,
                    bid_px: p,
                    ask_px: p,
                    bid_qty: 100_000,
                    ask_qty: 100_000,
                })),
            }
        })
        .collect()
}

/// Keeps what the stage passes on (for the check) or only counts it (when timing).
struct Sink {
    keep: bool,
    entries: Vec<Entry>,
    count: u64,
}

impl Emit<Outbound> for Sink {
    fn emit(&mut self, item: Outbound) {
        self.count += 1;
        if self.keep {
            self.entries.push(item.entry);
        }
    }
}

fn stage(shards: usize, threads: bool) -> RiskStage {
    let plan = if threads {
        ShardPlan::threads(shards, WaitStrategy::SpinYield, &[])
    } else {
        ShardPlan::inline(shards)
    };
    RiskStage::new(
        Shards::split(engine(), shards),
        None,
        Arc::new(Mutex::new(None)),
        Arc::default(),
    )
    .on_threads(&plan, Vec::new(), 1 << 12, WaitStrategy::SpinYield)
    .unwrap_or_else(|e| panic!("bench set-up: shard threads: {e}"))
}

fn run(stage: &mut RiskStage, events: &[FeedEvent], sink: &mut Sink) {
    for &event in events {
        stage.process(
            Inbound {
                event,
                handoff_ns: 0,
            },
            sink,
        );
    }
    stage.finish(sink);
}

/// Shard threads must pass on exactly what the same shards inline do.
fn check(events: &[FeedEvent], layouts: &[(usize, bool)]) {
    let entries = |shards, threads| {
        let mut sink = Sink {
            keep: true,
            entries: Vec::new(),
            count: 0,
        };
        run(&mut stage(shards, threads), events, &mut sink);
        sink.entries
    };
    for &(shards, threads) in layouts.iter().filter(|(_, threads)| *threads) {
        let got = entries(shards, threads);
        let inline = entries(shards, false);
        assert!(
            got == inline,
            "{shards} shard threads pass on other entries than {shards} inline shards"
        );
        println!(
            "check: {shards} shard threads pass on the {} entries {shards} inline shards do",
            got.len()
        );
    }
}

fn bench(c: &mut Criterion) {
    let events = path();
    let layouts = [(1, false), (2, false), (2, true), (4, true)];
    check(&events[..512], &layouts);
    let mut group = c.benchmark_group("shards");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for (shards, threads) in layouts {
        let id = format!("{}/{shards}", if threads { "threads" } else { "inline" });
        group.bench_function(id, |b| {
            b.iter_custom(|iters| {
                let mut stage = stage(shards, threads);
                let mut sink = Sink {
                    keep: false,
                    entries: Vec::new(),
                    count: 0,
                };
                let n = (iters as usize).min(events.len());
                let start = Instant::now();
                run(&mut stage, &events[..n], &mut sink);
                let elapsed = start.elapsed();
                black_box(sink.count);
                // Inputs beyond the path are not timed: scale to the iterations asked.
                elapsed.mul_f64(iters as f64 / n.max(1) as f64)
            })
        });
    }
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}

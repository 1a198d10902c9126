//! `brink bench`: the engine under a paced publisher in another process, with its latency table.
//!
//! ```text
//! brink bench --accounts N --rate R --duration D --topology threads3|fuse-first2|fuse-last2|fused1|auto
//!             [--wait busy-spin|spin-yield|backoff] [--json OUT] [--baseline]
//!             [--shards 1,2,4] [--shard-threads auto|threads|inline]
//! ```
//!
//! Each run makes its shared-memory files in a fresh folder, starts the venue (this executable
//! again, `bench --venue`) and the engine with N generated accounts (the demo's BTCUSDT book,
//! healthy at the opening mark). The venue publishes R·D ticks at R ticks per second: the
//! embedded BTCUSDT mark-price path of 2025-10-10 (the crash), interpolated to R·D points, so
//! the run replays the whole day in D seconds and a realistic share of ticks moves accounts into
//! margin calls and liquidations. It stamps each tick with its due time on the paced schedule,
//! so a late publisher or a stalled stage shows as latency (see `docs/latency.md`), and fills the
//! engine's liquidation orders against the last tick's book.
//!
//! `--baseline` then runs the same thing again, same accounts (same seed), same path, same
//! topology and wait strategy, with `crossbeam::channel` (bounded, same capacity) between the
//! stages instead of Brink's SPSC rings, and prints ours / baseline per hop.
//!
//! `--shards 1,2,4` runs once per shard count (the accounts partitioned by id over that many risk
//! engines, see [`brink::risk::shard`]) and prints the records per second each took in, relative
//! to the first count. Shards get threads of their own where free cores allow (`auto`), or always
//! (`threads`), or run inline on the risk thread (`inline`); the table says which.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use brink::bench::{BenchOutput, BenchRun, ShardRun, ratio_table, shard_table, topology_name};
use brink::demo::{self, VenueSummary};
use brink::live::{self, LiveCounters};
use brink::risk::RiskCounters;
use brink::runtime::{
    LinkKind, ShardPlan, StopSignal, TopologyPlan, WaitStrategy, available_cores,
};
use brink::telemetry::{ReportRequest, format_ns};
use clap::Args;

use super::demo::{demo_engine, live_config, plan_for, work_dir};

/// How long the venue keeps answering orders after the engine has read the whole feed and gone
/// quiet, before it closes the feed (the risk stage may still be working through its queue).
const VENUE_GRACE: Duration = Duration::from_secs(1);

/// Largest R·D accepted: the venue holds the whole path in memory (8 bytes a tick).
const MAX_TICKS: u64 = 200_000_000;

/// Options of `brink bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Generated accounts (one BTCUSDT position each, 1x–125x, cross and isolated).
    #[arg(long, default_value_t = 100_000)]
    accounts: u64,
    /// Ticks per second the publisher is paced at.
    #[arg(long, default_value_t = 100_000.0)]
    rate: f64,
    /// Seconds of paced publishing.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Thread topology: auto, threads3, fuse-first2, fuse-last2 or fused1.
    #[arg(long, default_value = "auto")]
    topology: String,
    /// Wait strategy of every stage thread: busy-spin, spin-yield or backoff (default: spin-yield,
    /// or what `auto` chooses).
    #[arg(long)]
    wait: Option<String>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also run the same pipeline with crossbeam channels between the stages, and compare.
    #[arg(long)]
    baseline: bool,
    /// Seed of the account generator.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Insurance fund at the start, USDT.
    #[arg(long, default_value_t = 250_000)]
    fund: i64,
    /// Keep each run's files in a folder under this one instead of a temporary folder.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Risk shard counts to run, one run each (e.g. 1,2,4).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    shards: Vec<usize>,
    /// Where the shards run: auto (own cores when free, else inline), threads, or inline.
    #[arg(long, default_value = "auto")]
    shard_threads: String,
    #[command(flatten)]
    venue: super::demo::VenueArgs,
}

/// Runs `brink bench` (or, with `--venue`, its venue process). Exit codes: 0 success, 2 bad
/// options, 1 a failed run.
pub fn run(args: BenchArgs) -> ExitCode {
    if let Err(e) = check(&args) {
        eprintln!("error: {e:#}");
        return ExitCode::from(2);
    }
    let result = if args.venue.is_venue {
        venue(&args)
    } else {
        match plan(&args) {
            Ok(plan) => bench(&args, &plan),
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::from(2);
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn check(args: &BenchArgs) -> Result<()> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!(
            "--rate must be a positive number of ticks per second, got {}",
            args.rate
        );
    }
    if !(args.duration.is_finite() && args.duration > 0.0) {
        bail!(
            "--duration must be a positive number of seconds, got {}",
            args.duration
        );
    }
    if args.accounts == 0 {
        bail!("--accounts must be at least 1");
    }
    let max = brink::risk::shard::MAX_SHARDS;
    if args.shards.is_empty() || args.shards.iter().any(|&n| !(1..=max).contains(&n)) {
        bail!(
            "--shards {:?}: give shard counts from 1 to {max}, separated by commas (e.g. 1,2,4)",
            args.shards
        );
    }
    if !matches!(args.shard_threads.as_str(), "auto" | "threads" | "inline") {
        bail!(
            "--shard-threads {}: expected auto, threads or inline",
            args.shard_threads
        );
    }
    let ticks = ticks(args);
    if !(1..=MAX_TICKS).contains(&ticks) {
        bail!(
            "--rate × --duration = {ticks} ticks: use between 1 and {MAX_TICKS} (lower the rate \
             or the duration)"
        );
    }
    Ok(())
}

/// Ticks the venue publishes: R·D, rounded.
fn ticks(args: &BenchArgs) -> u64 {
    (args.rate * args.duration).round() as u64
}

fn venue(args: &BenchArgs) -> Result<()> {
    let (feed, orders) = args.venue.rings()?;
    let dir = feed.parent().unwrap_or(Path::new("."));
    let path = bench_path(dir, ticks(args))?;
    let summary = demo::run_venue(feed, orders, &path, args.rate, VENUE_GRACE)?;
    println!("{}", summary.to_line());
    Ok(())
}

/// The demo's crash-day price path interpolated to exactly `ticks` points (fewer only if
/// `ticks` is below the path's own points).
fn bench_path(dir: &Path, ticks: u64) -> Result<Vec<i64>> {
    let points = demo::price_path(dir, 1)?.len() as u64;
    let steps = ticks.div_ceil(points.saturating_sub(1).max(1)).max(1);
    let steps = u32::try_from(steps).context("too many ticks for the price path")?;
    let mut path = demo::price_path(dir, steps)?;
    path.truncate(usize::try_from(ticks).unwrap_or(usize::MAX));
    Ok(path)
}

fn wait_for(name: &str) -> Result<WaitStrategy> {
    Ok(match name {
        "busy-spin" => WaitStrategy::BusySpin,
        "spin-yield" => WaitStrategy::SpinYield,
        "backoff" => WaitStrategy::BackoffPark,
        other => bail!("--wait {other}: expected busy-spin, spin-yield or backoff"),
    })
}

fn plan(args: &BenchArgs) -> Result<TopologyPlan> {
    let wait = args.wait.as_deref().map(wait_for).transpose()?;
    let mut plan = plan_for(&args.topology, wait.unwrap_or(WaitStrategy::SpinYield))?;
    if let Some(wait) = wait {
        for t in &mut plan.threads {
            t.wait = wait;
        }
    }
    Ok(plan)
}

/// What one run leaves.
struct Measured {
    run: BenchRun,
    risk: RiskCounters,
    venue: Option<VenueSummary>,
    rejected: u64,
    gaps: u64,
    wall: Duration,
}

fn bench(args: &BenchArgs, plan: &TopologyPlan) -> Result<()> {
    let cores = available_cores().len();
    println!(
        "brink bench: {} accounts, {} ticks/s for {} s ({} ticks), {} core(s)",
        args.accounts,
        args.rate,
        args.duration,
        ticks(args),
        cores
    );
    print!("topology: {plan}");
    let mut sweep = Vec::with_capacity(args.shards.len());
    for &count in &args.shards {
        let shards = shard_plan(args, count, plan);
        if args.shards.len() > 1 || count > 1 {
            println!();
            print!("{shards}");
        }
        let m = measure(args, plan, &shards, LinkKind::Ring, cores)?;
        report(&m, LinkKind::Ring);
        sweep.push(ShardRun {
            shards: count,
            shard_threads: shards.threaded(),
            run: m.run,
        });
    }
    let ours = sweep[0].run.clone();
    let baseline = if args.baseline {
        let shards = shard_plan(args, args.shards[0], plan);
        let base = measure(args, plan, &shards, LinkKind::Channel, cores)?;
        report(&base, LinkKind::Channel);
        println!();
        println!(
            "ratio per hop, ours (spsc ring) / baseline (crossbeam channel); below 1 is faster:"
        );
        print!("{}", ratio_table(&ours.hops, &base.run.hops));
        if plan.topology == brink::runtime::Topology::Fused1 {
            println!("(fused1 has no queue between stages: both runs are the same pipeline)");
        }
        Some(base.run)
    } else {
        None
    };
    let shard_runs = (sweep.len() > 1).then(|| {
        println!();
        println!("records per second taken in, by risk shard count (ratio to the first):");
        print!("{}", shard_table(&sweep));
        sweep
    });
    if let Some(out) = &args.json {
        let doc = BenchOutput {
            run: ours,
            baseline,
            shard_runs,
        };
        std::fs::write(out, doc.to_json_string() + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

/// Where `count` shards run, as `--shard-threads` asks (beside `plan`).
fn shard_plan(args: &BenchArgs, count: usize, plan: &TopologyPlan) -> ShardPlan {
    if count <= 1 {
        return ShardPlan::single();
    }
    match args.shard_threads.as_str() {
        "threads" => ShardPlan::threads(count, plan.stage_wait(), &[]),
        "inline" => ShardPlan::inline(count),
        _ => ShardPlan::auto(count, &available_cores(), plan),
    }
}

fn report(m: &Measured, links: LinkKind) {
    println!();
    println!(
        "== {links}: {:.1} s, {:.0} feed records/s taken in ==",
        m.wall.as_secs_f64(),
        m.run.throughput_per_s
    );
    println!(
        "ticks applied {}, margin calls {}, liquidations {} (child orders {}, fills {}), ADL {}",
        m.risk.ticks,
        m.risk.margin_calls,
        m.risk.liquidations,
        m.risk.orders,
        m.risk.liquidation_fills,
        m.risk.adl
    );
    if let Some(v) = m.venue {
        println!(
            "venue: {} ticks, {} orders, {} fills; lateness max {}, {} ticks later than {}, {} waiting on a full feed ring",
            v.ticks,
            v.orders,
            v.fills,
            format_ns(v.max_late_ns),
            v.late_ticks,
            format_ns(demo::LATE_NS),
            format_ns(v.wait_ns)
        );
    }
    if m.rejected > 0 || m.gaps > 0 {
        println!("ingest: {} rejected, {} gaps", m.rejected, m.gaps);
    }
    println!("latency per hop (CLOCK_MONOTONIC, from each tick's due time on the paced schedule):");
    print!("{}", m.run.hops.to_text());
}

fn measure(
    args: &BenchArgs,
    plan: &TopologyPlan,
    shards: &ShardPlan,
    links: LinkKind,
    cores: usize,
) -> Result<Measured> {
    let tag = match links {
        LinkKind::Ring => format!("ring-{}", shards.count),
        LinkKind::Channel => "channel".to_string(),
    };
    let sub = args.dir.as_ref().map(|d| d.join(&tag));
    let (dir, _temp) = work_dir(sub.as_deref(), "brink-bench-")?;
    let mut config = live_config(&dir);
    config.shards = shards.clone();
    let started = Instant::now();
    let engine = demo_engine(args.accounts, args.seed, args.fund)?;
    let accounts = engine.accounts().len() as u64;
    println!();
    println!(
        "[{links}] {accounts} accounts generated in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let exe = std::env::current_exe().context("locating this executable")?;
    let venue = Command::new(exe)
        .args(["bench", "--venue"])
        .arg("--rate")
        .arg(args.rate.to_string())
        .arg("--duration")
        .arg(args.duration.to_string())
        .arg("--feed")
        .arg(&config.feed)
        .arg("--orders")
        .arg(&config.orders)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the venue process")?;

    let counters = LiveCounters::default();
    let done = Arc::new(AtomicBool::new(false));
    let intake = spawn_intake(counters.clone(), done.clone());
    let run_started = Instant::now();
    let summary = live::run_on(
        &config,
        links,
        engine,
        plan,
        StopSignal::new(),
        &counters,
        ReportRequest::new(),
        |_, _| {},
    );
    let wall = run_started.elapsed();
    done.store(true, Ordering::Release);
    let throughput = intake.join().unwrap_or(0.0);
    let venue_out = venue.wait_with_output().context("waiting for the venue")?;
    let summary = summary?;
    if !venue_out.status.success() {
        bail!("the venue process failed: {}", venue_out.status);
    }
    let venue = VenueSummary::parse_line(&String::from_utf8_lossy(&venue_out.stdout));
    let risk = summary
        .engine
        .as_ref()
        .map(|e| e.counters())
        .context("the risk stage did not hand back its state")?;
    let throughput_per_s = if throughput > 0.0 {
        throughput
    } else {
        // Too short for the sampler to see two distinct counts.
        summary
            .latency
            .get("feed")
            .map(|s| summary.latency.throughput_per_s(s.count))
            .unwrap_or(0.0)
    };
    Ok(Measured {
        run: BenchRun {
            topology: topology_name(plan.topology).to_owned(),
            cores,
            rate: args.rate,
            accounts,
            duration_s: args.duration,
            throughput_per_s,
            hops: summary.latency,
        },
        risk,
        venue,
        rejected: summary.ingest.rejected.total(),
        gaps: summary.ingest.gaps,
        wall,
    })
}

/// Samples ingest's record count every millisecond until `done`; returns records per second
/// between the first and the last sample that saw the count change (0 if it changed once or
/// never).
fn spawn_intake(counters: LiveCounters, done: Arc<AtomicBool>) -> std::thread::JoinHandle<f64> {
    std::thread::spawn(move || {
        let count = || {
            counters
                .ingest
                .lock()
                .map(|c| c.accepted + c.rejected.total())
                .unwrap_or(0)
        };
        let mut first: Option<(Instant, u64)> = None;
        let mut last: Option<(Instant, u64)> = None;
        let mut seen = 0;
        // Acquire: pairs with the Release store after the engine ended.
        while !done.load(Ordering::Acquire) {
            let n = count();
            if n != seen {
                seen = n;
                let now = Instant::now();
                if first.is_none() {
                    first = Some((now, n));
                }
                last = Some((now, n));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        match (first, last) {
            (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
                (n1 - n0) as f64 / (t1 - t0).as_secs_f64()
            }
            _ => 0.0,
        }
    })
}

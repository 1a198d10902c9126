//! `brink demo`: the whole procedure on a real price path, in one command.
//!
//! It creates its shared-memory files in a temporary folder, starts the venue (this executable
//! again, as a separate process) replaying the embedded BTCUSDT 2025-10-10 mark-price path against
//! a generated population of accounts, runs the full pipeline (ingest, risk, emit) with the
//! venue filling liquidation orders, shows progress, and ends with a summary.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use brink::demo::{self, VenueSummary};
use brink::ingest::IngestConfig;
use brink::journal::FsyncPolicy;
use brink::live::{self, LiveConfig, LiveCounters};
use brink::margin::Money;
use brink::risk::{RiskConfig, RiskEngine, Scan};
use brink::runtime::{StopSignal, Topology, TopologyPlan, WaitStrategy, available_cores};
use brink::scenario::Scenario;
use brink::telemetry::{ReportRequest, TelemetryConfig};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

/// Options of `brink demo`; every one has a default, so `brink demo` alone runs the demo.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Generated accounts (one BTCUSDT position each, 1x–125x, cross and isolated).
    #[arg(long, default_value_t = 100_000)]
    accounts: u64,
    /// Seed of the account generator.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Ticks per second the venue publishes.
    #[arg(long, default_value_t = 25_000.0)]
    rate: f64,
    /// Ticks between consecutive points of the kline path.
    #[arg(long, default_value_t = 40)]
    steps: u32,
    /// Thread topology: auto, threads3, fuse-first2, fuse-last2 or fused1.
    #[arg(long, default_value = "auto")]
    topology: String,
    /// Insurance fund at the start, USDT.
    #[arg(long, default_value_t = 250_000)]
    fund: i64,
    /// Keep the demo's files in this folder instead of a temporary one.
    #[arg(long)]
    dir: Option<PathBuf>,
    #[command(flatten)]
    venue: VenueArgs,
}

/// The hidden options with which `brink demo` and `brink bench` start their own executable as
/// the venue process.
#[derive(Debug, Args)]
pub(super) struct VenueArgs {
    /// Run as the venue process (started by the command itself).
    #[arg(long = "venue", hide = true)]
    pub(super) is_venue: bool,
    /// The venue's feed ring.
    #[arg(long, hide = true)]
    feed: Option<PathBuf>,
    /// The venue's order ring.
    #[arg(long, hide = true)]
    orders: Option<PathBuf>,
}

impl VenueArgs {
    /// The feed and order rings the venue process was given.
    pub(super) fn rings(&self) -> Result<(&Path, &Path)> {
        match (&self.feed, &self.orders) {
            (Some(feed), Some(orders)) => Ok((feed, orders)),
            _ => bail!("--venue needs --feed and --orders"),
        }
    }
}

/// Runs the demo (or, with `--venue`, its venue process).
pub fn run(args: DemoArgs) -> ExitCode {
    let result = if args.venue.is_venue {
        venue(&args)
    } else {
        demo(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn venue(args: &DemoArgs) -> Result<()> {
    let (feed, orders) = args.venue.rings()?;
    let dir = feed.parent().unwrap_or(Path::new("."));
    let path = demo::price_path(dir, args.steps)?;
    let summary = demo::run_venue(feed, orders, &path, args.rate, Duration::from_millis(300))?;
    println!("{}", summary.to_line());
    Ok(())
}

/// The plan for a `--topology` name: `auto` as the cores allow, or the named layout unpinned,
/// every thread waiting with `wait`.
pub(super) fn plan_for(name: &str, wait: WaitStrategy) -> Result<TopologyPlan> {
    let topology = match name {
        "auto" => return Ok(TopologyPlan::auto(&available_cores())),
        "threads3" => Topology::Threads3,
        "fuse-first2" => Topology::FuseFirst2,
        "fuse-last2" => Topology::FuseLast2,
        "fused1" => Topology::Fused1,
        other => {
            bail!("--topology {other}: expected auto, threads3, fuse-first2, fuse-last2 or fused1")
        }
    };
    Ok(TopologyPlan::unpinned(topology, wait))
}

/// A folder for the run's files: `dir` (created), or a fresh temporary one under the
/// shared-memory folder (removed when the returned guard drops).
pub(super) fn work_dir(
    dir: Option<&Path>,
    prefix: &str,
) -> Result<(PathBuf, Option<tempfile::TempDir>)> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            Ok((d.to_path_buf(), None))
        }
        None => {
            let base = brink::shm::default_dir();
            let temp = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir_in(&base)
                .with_context(|| format!("creating a folder in {}", base.display()))?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}

/// The demo's risk engine: the embedded BTCUSDT instrument and `accounts` generated accounts
/// (seeded), healthy at the opening mark, with an insurance fund of `fund` USDT.
pub(super) fn demo_engine(accounts: u64, seed: u64, fund: i64) -> Result<RiskEngine> {
    let scenario = Scenario::parse(demo::SCENARIO, Path::new("<embedded demo scenario>"))?;
    // The generator draws entries around the mark with leverage up to 125x; the demo starts from
    // a book that is healthy at the opening mark (accounts already under call are redrawn).
    let accounts = brink::bulk::synth::generate_healthy(
        &scenario.instruments,
        &scenario.marks,
        accounts,
        seed,
        1,
        brink::margin::CallLevel::default(),
    )?;
    Ok(RiskEngine::new(
        scenario.instruments,
        scenario.marks,
        accounts,
        RiskConfig::default(),
        Scan::Index,
    )
    .with_fund(Money::from_int(fund)))
}

/// The live engine's settings for a run whose files (`feed.ring`, `orders.ring`,
/// `orders.journal`) live in `dir`; stale ones are removed.
pub(super) fn live_config(dir: &Path) -> LiveConfig {
    let config = LiveConfig {
        feed: dir.join("feed.ring"),
        orders: dir.join("orders.ring"),
        orders_capacity: 1 << 16,
        journal: dir.join("orders.journal"),
        fsync: FsyncPolicy::Never,
        ring_capacity: 1 << 14,
        ingest: IngestConfig {
            instruments: 1,
            band_bps: 0,
            ..IngestConfig::default()
        },
        feed_wait: Duration::from_secs(10),
        stop_on_close: true,
        telemetry: TelemetryConfig::default(),
        snapshot: None,
        shards: brink::runtime::ShardPlan::single(),
    };
    for f in [&config.feed, &config.orders, &config.journal] {
        let _ = std::fs::remove_file(f);
    }
    config
}

fn demo(args: &DemoArgs) -> Result<()> {
    let plan = plan_for(&args.topology, WaitStrategy::SpinYield)?;
    let (dir, _temp) = work_dir(args.dir.as_deref(), "brink-demo-")?;
    let dir = dir.as_path();
    let config = live_config(dir);

    println!(
        "Brink demo: Binance BTCUSDT mark price, 2025-10-10 (the crash), files in {}",
        dir.display()
    );
    let path = demo::price_path(dir, args.steps)?;
    let started = Instant::now();
    let engine = demo_engine(args.accounts, args.seed, args.fund)?;
    println!(
        "{} accounts generated in {:.2} s; {} ticks to replay at {} ticks/s",
        engine.accounts().len(),
        started.elapsed().as_secs_f64(),
        path.len(),
        args.rate
    );
    let wallets_before = total_wallets(engine.accounts().iter());
    print!("topology: {plan}");

    let exe = std::env::current_exe().context("locating this executable")?;
    let venue = Command::new(exe)
        .args(["demo", "--venue", "--steps", &args.steps.to_string()])
        .arg("--rate")
        .arg(args.rate.to_string())
        .arg("--feed")
        .arg(&config.feed)
        .arg("--orders")
        .arg(&config.orders)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the venue process")?;

    let counters = LiveCounters::default();
    let done = Arc::new(AtomicBool::new(false));
    let progress = spawn_progress(path.len() as u64, counters.clone(), done.clone());
    let run_started = Instant::now();
    let summary = live::run(
        &config,
        engine,
        &plan,
        StopSignal::new(),
        &counters,
        ReportRequest::new(),
        |_, _| {},
    );
    done.store(true, Ordering::Release);
    let _ = progress.join();
    let elapsed = run_started.elapsed();
    let venue_out = venue.wait_with_output().context("waiting for the venue")?;
    let summary = summary?;
    let venue = VenueSummary::parse_line(&String::from_utf8_lossy(&venue_out.stdout));

    let engine = summary
        .engine
        .as_ref()
        .context("the risk stage did not hand back its state")?;
    let c = engine.counters();
    let f = engine.fund();
    println!();
    println!("== summary ({:.1} s) ==", elapsed.as_secs_f64());
    println!("ticks applied          {}", c.ticks);
    println!(
        "unit evaluations       {} ({:.2} per tick)",
        c.evaluations,
        c.evaluations as f64 / c.ticks.max(1) as f64
    );
    println!("margin calls           {}", c.margin_calls);
    println!("liquidations           {} units", c.liquidations);
    println!("  child orders sent    {}", c.orders);
    println!("  fills booked         {}", c.liquidation_fills);
    println!(
        "fund takeovers         {} (inventory left: {} positions)",
        c.takeovers,
        engine.fund_inventory().len()
    );
    println!("ADL closes             {}", c.adl);
    println!(
        "records emitted        {} (journal and order ring)",
        summary.emit.emitted
    );
    if let Some(v) = venue {
        println!(
            "venue                  {} ticks, {} orders, {} fills, {} unfilled",
            v.ticks, v.orders, v.fills, v.unfilled
        );
        println!(
            "venue lateness         max {} after a tick's due time, {} ticks later than {}",
            brink::telemetry::format_ns(v.max_late_ns),
            v.late_ticks,
            brink::telemetry::format_ns(demo::LATE_NS)
        );
    }
    println!(
        "insurance fund         {} → {} USDT (fees {}, surplus {}, paid {})",
        f.initial().to_string_nearest(2),
        f.balance().to_string_nearest(2),
        f.fees().to_string_nearest(2),
        f.surplus().to_string_nearest(2),
        f.covered().to_string_nearest(2)
    );
    println!(
        "bad debt               {} USDT",
        f.uncovered().to_string_nearest(2)
    );
    println!(
        "wallets                {} → {} USDT",
        wallets_before.to_string_nearest(2),
        total_wallets(engine.accounts()).to_string_nearest(2)
    );
    println!(
        "ingest                 {} accepted, {} rejected, {} gaps",
        summary.ingest.accepted,
        summary.ingest.rejected.total(),
        summary.ingest.gaps
    );
    println!();
    println!("latency per hop (CLOCK_MONOTONIC, from the venue's publish stamp):");
    print!("{}", summary.latency.to_text());
    Ok(())
}

fn total_wallets<'a>(accounts: impl Iterator<Item = &'a brink::margin::Account>) -> Money {
    accounts
        .map(|a| {
            a.positions().iter().fold(a.wallet(), |m, p| {
                m.checked_add(p.isolated_margin()).unwrap_or(m)
            })
        })
        .fold(Money::ZERO, |m, w| m.checked_add(w).unwrap_or(m))
}

fn spawn_progress(
    total: u64,
    counters: LiveCounters,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} ticks  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        while !done.load(Ordering::Acquire) {
            let risk = counters.risk.lock().map(|c| *c).unwrap_or_default();
            bar.set_position(risk.ticks.min(total));
            bar.set_message(format!(
                "calls {}  liquidations {}  ADL {}",
                risk.margin_calls, risk.liquidations, risk.adl
            ));
            std::thread::sleep(Duration::from_millis(100));
        }
        let risk = counters.risk.lock().map(|c| *c).unwrap_or_default();
        bar.set_position(risk.ticks.min(total));
        bar.finish();
    })
}

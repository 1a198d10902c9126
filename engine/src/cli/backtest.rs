//! `brink backtest`: replays a market-data file through the risk stage, deterministically, and
//! writes `events.jsonl`, `report.json` and `report.svg` into a folder.
//!
//! Accounts come from the scenario, a bulk file (`--accounts`) and/or a generated population
//! (`--synth-accounts N --seed S`, drawn by `brink::bulk::synth` and kept only when healthy at
//! the file's first price). The opening mark of the file's instrument is the file's first price.
//! Exit codes: 0 done and the money check passed, 1 the money check failed or an output could not
//! be written, 2 bad arguments, scenario, accounts or ticks file.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use brink::backtest::{self, BacktestConfig, BacktestError, Outcome};
use brink::feed::Format;
use brink::margin::{Account, InstrumentId, Money, Price};
use brink::matcher::MatcherConfig;
use brink::num::decimal::parse_scaled;
use brink::scenario::Scenario;
use brink::shm::Input;

/// The ticks file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TicksFormat {
    /// Tardis.dev trades CSV (plain or .gz).
    TardisTrades,
    /// Tardis.dev quotes CSV (plain or .gz).
    TardisQuotes,
    /// Binance kline CSV or .zip.
    BinanceKlines,
}

impl From<TicksFormat> for Format {
    fn from(f: TicksFormat) -> Format {
        match f {
            TicksFormat::TardisTrades => Format::TardisTrades,
            TicksFormat::TardisQuotes => Format::TardisQuotes,
            TicksFormat::BinanceKlines => Format::BinanceKlines,
        }
    }
}

/// Arguments of `brink backtest`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Scenario file (TOML): instruments, marks and accounts.
    #[arg(long)]
    scenario: PathBuf,
    /// Also load a bulk accounts file (see `brink-accounts gen`).
    #[arg(long)]
    accounts: Option<PathBuf>,
    /// Also generate N accounts with brink::bulk::synth (instead of, or besides, a bulk file):
    /// one position each on the file's instrument, 1x-125x, cross and isolated, healthy at the
    /// file's first price. Their ids follow the largest scenario or bulk id.
    #[arg(long, value_name = "N")]
    synth_accounts: Option<u64>,
    /// Seed of the generated accounts (and, unless --matcher-seed, of the matcher).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Market-data file: Tardis trades or quotes CSV (.gz), Binance klines CSV or .zip.
    #[arg(long)]
    ticks: PathBuf,
    /// Format of the ticks file.
    #[arg(long, value_enum)]
    format: TicksFormat,
    /// Output folder (created): events.jsonl, report.json, report.svg.
    #[arg(long)]
    out: PathBuf,
    /// Scenario instrument the ticks are for (default: the file's symbol column, or for klines
    /// the scenario symbol its file name contains).
    #[arg(long)]
    symbol: Option<String>,
    /// Size at each best level, in the instrument's quantity units (e.g. 5 for 5 BTC),
    /// replacing the file's (trade size, quoted sizes; klines have none, i.e. unlimited).
    #[arg(long, value_name = "QTY")]
    depth: Option<String>,
    /// Replay only the first N ticks of the file.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Insurance fund at the start, in whole currency units.
    #[arg(long, default_value_t = 0)]
    fund: i64,
    /// Matcher: largest adverse slippage from the best level, basis points.
    #[arg(long, default_value_t = 0)]
    slippage_bps: u32,
    /// Matcher: chance of a partial fill, per mille.
    #[arg(long, default_value_t = 0)]
    partial_per_mille: u32,
    /// Matcher: seed of its random stream (default: --seed).
    #[arg(long)]
    matcher_seed: Option<u64>,
    /// The sampled series (fund, price path) keep between N and 2N points.
    #[arg(long, default_value_t = 500, value_name = "N")]
    series_points: usize,
}

/// A failure and its exit code.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn bad(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 2,
        error: error.into(),
    }
}

fn fatal(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: 1,
        error: error.into(),
    }
}

fn from_backtest(e: BacktestError) -> Failure {
    match e {
        BacktestError::Write { .. } => fatal(e),
        other => bad(other),
    }
}

/// Runs the command; see the module docs for the exit codes.
pub fn run(args: BacktestArgs) -> ExitCode {
    match backtest(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(f) => {
            eprintln!("error: {:#}", f.error);
            ExitCode::from(f.code)
        }
    }
}

/// The first tick's mark in the file, at the instrument's scale.
fn first_price(scenario: &Scenario, args: &BacktestArgs, instrument: u32) -> Result<i64, Failure> {
    let src = backtest::open_ticks(
        &scenario.instruments,
        &args.ticks,
        args.format.into(),
        instrument,
    )
    .map_err(from_backtest)?;
    for input in src {
        if let Ok(Input::Tick(t)) = input {
            return Ok(t.mark_px);
        }
    }
    Err(bad(BacktestError::Empty {
        path: args.ticks.clone(),
        format: Format::from(args.format).name(),
    }))
}

fn load_accounts(
    scenario: &Scenario,
    args: &BacktestArgs,
    marks: &brink::margin::MarkPrices,
) -> Result<Vec<Account>, Failure> {
    let mut accounts = scenario.accounts.clone();
    if let Some(path) = &args.accounts {
        accounts.extend(brink::bulk::load(path, &scenario.instruments).map_err(bad)?);
    }
    if let Some(n) = args.synth_accounts {
        // Only the file's instrument is priced for the generator: one position each on it.
        let mut priced = brink::margin::MarkPrices::new(scenario.instruments.len());
        for (id, _) in scenario.instruments.iter() {
            if let Some(p) = marks.get(id) {
                priced.set(id, p);
            }
        }
        let generated = brink::bulk::synth::generate_healthy(
            &scenario.instruments,
            &priced,
            n,
            args.seed,
            1,
            scenario.call_level,
        )
        .map_err(bad)?;
        // Generated ids continue after the largest id loaded so far.
        let base = accounts.iter().map(Account::id).max().unwrap_or(0);
        for (k, g) in generated.into_iter().enumerate() {
            let mut a =
                Account::with_capacity(base + 1 + k as u64, g.wallet(), g.positions().len());
            for p in g.positions() {
                a.push_position(*p).map_err(bad)?;
            }
            accounts.push(a);
        }
    }
    let mut ids: Vec<u64> = accounts.iter().map(Account::id).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(anyhow!(
            "account id {} appears twice (scenario, --accounts and --synth-accounts ids must differ)",
            w[0]
        )));
    }
    Ok(accounts)
}

fn backtest(args: &BacktestArgs) -> Result<bool, Failure> {
    let started = Instant::now();
    let scenario = Scenario::load(&args.scenario).map_err(bad)?;
    let table = &scenario.instruments;
    let instrument = backtest::resolve_instrument(table, &args.ticks, args.symbol.as_deref())
        .map_err(from_backtest)?;
    let inst = table
        .get(InstrumentId(instrument))
        .ok_or_else(|| bad(anyhow!("instrument {instrument} is not in the scenario")))?;
    let mut config = BacktestConfig::new(instrument);
    if let Some(depth) = &args.depth {
        let lots = parse_scaled(depth, inst.qty_decimals)
            .ok()
            .filter(|&v| v > 0)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                bad(anyhow!(
                    "--depth {depth}: expected a positive quantity of {} (at most {} decimals)",
                    inst.symbol,
                    inst.qty_decimals
                ))
            })?;
        config.depth = Some(lots);
    }
    config.limit = args.limit;
    config.fund = Money::from_int(args.fund);
    config.series_points = args.series_points;
    config.matcher = MatcherConfig {
        max_slippage_bps: args.slippage_bps,
        partial_per_mille: args.partial_per_mille,
        no_fill_per_mille: 0,
        seed: args.matcher_seed.unwrap_or(args.seed),
    };

    // The opening mark is the file's first price.
    let mut marks = scenario.marks.clone();
    let first = first_price(&scenario, args, instrument)?;
    marks.set(InstrumentId(instrument), Price(first));
    let accounts = load_accounts(&scenario, args, &marks)?;
    let source = backtest::open_ticks(table, &args.ticks, args.format.into(), instrument)
        .map_err(from_backtest)?;

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating the --out folder {}", args.out.display()))
        .map_err(bad)?;
    let events_path = args.out.join("events.jsonl");
    let file = File::create(&events_path)
        .with_context(|| format!("creating {}", events_path.display()))
        .map_err(fatal)?;
    let mut events = BufWriter::with_capacity(1 << 20, file);

    println!(
        "backtest: {} ({}) as {}, {} accounts, fund {}",
        args.ticks.display(),
        Format::from(args.format).name(),
        inst.symbol,
        accounts.len(),
        args.fund
    );
    let bar = progress_bar(args.limit);
    let mut progress = |rows: u64, c: &brink::risk::RiskCounters| {
        bar.set_position(rows);
        bar.set_message(format!(
            "calls {}  liquidations {}  ADL {}",
            c.margin_calls, c.liquidations, c.adl
        ));
    };
    let outcome = backtest::run(
        table,
        &marks,
        accounts,
        source,
        &config,
        backtest::EventSink {
            writer: &mut events,
            path: &events_path,
        },
        &mut progress,
    )
    .map_err(from_backtest)?;
    bar.finish_and_clear();
    drop(events);

    let ticks_text = args.ticks.display().to_string();
    let report = backtest::report::build(
        table,
        &outcome,
        &ticks_text,
        Format::from(args.format).name(),
    );
    let report_path = args.out.join("report.json");
    let text = serde_json::to_string_pretty(&report).map_err(fatal)? + "\n";
    write(&report_path, text.as_bytes())?;
    let title = format!(
        "Brink backtest: {} ({})",
        outcome.symbol,
        args.ticks
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    );
    let svg = backtest::plot::svg(
        outcome.series.buckets(),
        &outcome.symbol,
        outcome.price_decimals,
        &title,
    )
    .map_err(fatal)?;
    write(&args.out.join("report.svg"), svg.as_bytes())?;
    summary(&outcome, &args.out, started.elapsed().as_secs_f64());
    Ok(outcome.money_ok())
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    File::create(path)
        .and_then(|mut f| f.write_all(bytes))
        .with_context(|| format!("writing {}", path.display()))
        .map_err(fatal)
}

/// A bar when the length is known (`--limit`), a counter otherwise; hidden unless stderr is a
/// terminal.
fn progress_bar(limit: Option<u64>) -> ProgressBar {
    let bar = match limit {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = if limit.is_some() {
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} rows  {msg}"
    } else {
        "{spinner} [{elapsed_precise}] {pos} rows  {msg}"
    };
    bar.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar
}

fn summary(o: &Outcome, out: &Path, seconds: f64) {
    let t = &o.tally;
    let n = |k: &str| t.events.get(k).copied().unwrap_or(0);
    let rejected: u64 = t.rejected.values().map(|v| v.0).sum();
    println!(
        "{} rows, {} ticks, {} fills fed back, {} rows refused{}",
        t.rows,
        t.ticks,
        t.fills,
        rejected,
        if t.limited {
            " (stopped at --limit)"
        } else {
            ""
        }
    );
    for (reason, (count, line)) in &t.rejected {
        println!("  refused {reason}: {count} (first at line {line})");
    }
    println!(
        "margin calls {}  liquidations {}  fills {}  ADL {}  settlements {}",
        n("margin_call"),
        n("liquidation"),
        n("fill"),
        n("adl"),
        n("settlement")
    );
    println!(
        "insurance fund {} -> {}  bad debt {}",
        o.fund.initial().to_string_nearest(2),
        o.fund.balance().to_string_nearest(2),
        o.fund.uncovered().to_string_nearest(2)
    );
    println!(
        "money check: {} (ledger: {} of {} accounts differ, fund {}; identity {})",
        if o.money_ok() { "pass" } else { "FAIL" },
        o.agreement.differing,
        o.agreement.accounts,
        if o.agreement.fund_agrees {
            "agrees"
        } else {
            "differs"
        },
        if o.identity.holds { "holds" } else { "broken" }
    );
    println!("wrote {} in {seconds:.2} s", out.display());
}

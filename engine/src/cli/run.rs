//! `brink run --config FILE [--check]`: the production process.
//!
//! Exit codes: 0 after a clean stop (SIGTERM or SIGINT: input stops, rings drain, the journal is
//! synced, the latency report printed), 2 for a configuration or input error (the message names
//! the file, line or key), 1 for a fatal runtime error (the message says what and where).
//! SIGUSR1 prints the latency report now; SIGHUP reloads instrument tiers and thresholds
//! ([`brink::ops`]), which also writes the status file `brink status` reads and the log lines.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use brink::config::RunConfig;
use brink::ingest::IngestConfig;
use brink::live::{self, LiveConfig, LiveCounters, LiveError};
use brink::margin::Money;
use brink::risk::{RiskEngine, Scan};
use brink::runtime::StopSignal;
use brink::scenario::Scenario;
use brink::telemetry::{ReportCause, ReportRequest, TelemetryConfig};
use clap::Args;

/// Options of `brink run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (TOML; see examples/brink.toml).
    #[arg(long)]
    config: PathBuf,
    /// Validate the configuration and the files it names, print the resolved settings, and exit.
    #[arg(long)]
    check: bool,
}

/// Runs `brink run`.
pub fn run(args: RunArgs) -> ExitCode {
    // Every signal the engine answers is handled from the start, so one that arrives while the
    // accounts load is kept for later instead of ending the process (SIGUSR1's and SIGHUP's
    // default action).
    let stop = StopSignal::new();
    let report = ReportRequest::new();
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, stop.flag()) {
            eprintln!("error: cannot install the handler of signal {signal}: {e}");
            return ExitCode::from(1);
        }
    }
    if let Err(e) = report.install_sigusr1() {
        eprintln!("error: cannot install the SIGUSR1 handler: {e}");
        return ExitCode::from(1);
    }
    let hup = Arc::new(AtomicBool::new(false));
    if let Err(e) = signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup)) {
        eprintln!("error: cannot install the SIGHUP handler: {e}");
        return ExitCode::from(1);
    }
    let config = match RunConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let engine = match load_engine(&config) {
        Ok(e) => e,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let plan = config.plan();
    let shard_plan = config.shard_plan(&plan);
    println!("configuration {}", config.file.display());
    println!("  feed     {}", config.feed.display());
    println!(
        "  orders   {} (capacity {})",
        config.orders.display(),
        config.orders_capacity
    );
    println!(
        "  journal  {} (fsync {:?})",
        config.journal.display(),
        config.fsync
    );
    println!(
        "  snapshot {}",
        brink::recovery::taker::describe(&config.snapshot)
    );
    println!(
        "  accounts {} units over {} instruments, from {}{}",
        engine.accounts().len(),
        engine.instruments().len(),
        config.scenario.display(),
        config
            .bulk
            .as_ref()
            .map(|b| format!(" and {}", b.display()))
            .unwrap_or_default()
    );
    println!(
        "  thresholds: margin call {}, re-arm {}, target {}, full at {}",
        config.risk.call_level.to_decimal_string(),
        config.risk.rearm_level.to_decimal_string(),
        config.risk.liquidation.target_ratio.to_decimal_string(),
        config.risk.liquidation.full_ratio.to_decimal_string()
    );
    print!("topology: {plan}");
    print!("{shard_plan}");
    if args.check {
        return match brink::ops::preflight::preflight(&config, &plan, &shard_plan, engine) {
            Ok(notes) => {
                for note in notes {
                    println!("  {note}");
                }
                println!("configuration valid");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }

    let live_config = LiveConfig {
        feed: config.feed.clone(),
        orders: config.orders.clone(),
        orders_capacity: config.orders_capacity,
        journal: config.journal.clone(),
        fsync: config.fsync,
        ring_capacity: config.ring_capacity,
        ingest: IngestConfig {
            instruments: engine.instruments().len() as u32,
            band_bps: config.price_band_bps,
            confirm_ticks: config.confirm_ticks,
            index_agree_bps: config.index_agree_bps,
            stale_after_ns: config.stale_after.as_nanos() as u64,
            ..IngestConfig::default()
        },
        feed_wait: config.feed_wait,
        stop_on_close: false,
        telemetry: TelemetryConfig {
            interval: config.telemetry_interval,
            report_every: config.report_every,
            log_path: config.histogram_log.clone(),
            ..TelemetryConfig::default()
        },
        snapshot: Some(config.snapshot.clone()),
        shards: shard_plan,
    };
    let counters = LiveCounters::default();
    let ops = match brink::ops::start(&config, &engine, &counters, &stop, hup) {
        Ok(ops) => ops,
        Err(e) => {
            eprintln!("error: cannot start the ops thread (SIGHUP, status file): {e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(
        pid = std::process::id(),
        "engine starting: {} units over {} instruments; feed {}, orders {}, journal {}, status {}",
        engine.accounts().len(),
        engine.instruments().len(),
        config.feed.display(),
        config.orders.display(),
        config.journal.display(),
        brink::ops::status_path(&config.journal).display()
    );
    let report_counters = counters.clone();
    let result = live::run(
        &live_config,
        engine,
        &plan,
        stop,
        &counters,
        report,
        move |cause, report| {
            println!("latency report ({cause:?}):");
            print!("{}", report.to_text());
            if cause == ReportCause::Requested {
                println!("counters:");
                print!("{}", brink::ops::counters_text(&report_counters));
            }
        },
    );
    ops.finish(matches!(&result, Ok(s) if s.emit.journal_error.is_none()));
    match result {
        Ok(summary) => {
            println!(
                "stopped: {} records in, {} rejected, {} decisions emitted",
                summary.ingest.accepted,
                summary.ingest.rejected.total(),
                summary.emit.emitted
            );
            println!(
                "order ring: full {} time(s), {} ms waited for its consumer",
                summary.emit.ring_full,
                summary.emit.ring_wait_ns / 1_000_000
            );
            if let Some(e) = &summary.emit.journal_error {
                tracing::error!("the journal failed and emitting stopped: {e}");
                return ExitCode::from(1);
            }
            println!("{}", brink::recovery::restart::describe(&summary.restart));
            if let Some(s) = &summary.snapshots {
                println!(
                    "snapshots: {} written (last at input {}), {} dropped{}",
                    s.written,
                    s.last_inputs.map_or("-".to_string(), |i| i.to_string()),
                    s.dropped,
                    s.error
                        .as_ref()
                        .map(|e| format!(", last error: {e}"))
                        .unwrap_or_default()
                );
            }
            tracing::info!(
                "stopped cleanly: {} records in, {} decisions emitted",
                summary.ingest.accepted,
                summary.emit.emitted
            );
            println!("latency (whole run):");
            print!("{}", summary.latency.to_text());
            ExitCode::SUCCESS
        }
        Err(
            e @ (LiveError::Feed { .. }
            | LiveError::Orders { .. }
            | LiveError::Journal(_)
            | LiveError::Recovery(_)),
        ) => {
            tracing::error!("cannot run: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            tracing::error!("stopped on a fatal error: {e}");
            ExitCode::from(1)
        }
    }
}

fn load_engine(config: &RunConfig) -> Result<RiskEngine, String> {
    let scenario = Scenario::load(&config.scenario).map_err(|e| e.to_string())?;
    let accounts = match &config.bulk {
        Some(bulk) => brink::bulk::load(bulk, &scenario.instruments).map_err(|e| e.to_string())?,
        None => scenario.accounts,
    };
    Ok(RiskEngine::new(
        scenario.instruments,
        scenario.marks,
        accounts,
        config.risk,
        Scan::Index,
    )
    .with_fund(Money::from_int(config.insurance_fund)))
}

//! `brink status --config FILE [--json]`: what a running `brink run` is doing.
//!
//! Reads the status file the engine's ops thread rewrites every telemetry interval next to the
//! journal (`<journal>.status`) and the headers of the feed and order rings, and prints input
//! and output sequence, ring lag, heartbeat ages, counters, the insurance fund and the latest
//! latency. Exit codes: 0 the engine is running, 1 it is not (no status file, stopped, or the
//! status is stale: older than three intervals or its process gone), 2 configuration error.

use std::path::PathBuf;
use std::process::ExitCode;

use brink::config::RunConfig;
use brink::ops::status::{Liveness, RingStatus, StatusFile, liveness, render_text, status_path};
use brink::shm::RingKind;
use clap::Args;

/// Options of `brink status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The configuration file the engine runs with (it names the journal and the rings).
    #[arg(long)]
    config: PathBuf,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// Runs `brink status`.
pub fn run(args: StatusArgs) -> ExitCode {
    let config = match RunConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let path = status_path(&config.journal);
    let feed = RingStatus::read(&config.feed, RingKind::Feed);
    let orders = RingStatus::read(&config.orders, RingKind::Orders);
    let now = brink::clock::wall_ns();
    let status = StatusFile::read(&path);
    let live = status.as_ref().ok().map(|s| liveness(s, now));
    if args.json {
        let ring = |r: &Result<RingStatus, String>| match r {
            Ok(r) => serde_json::to_value(r).unwrap_or_default(),
            Err(e) => serde_json::json!({ "error": e }),
        };
        let value = serde_json::json!({
            "running": live == Some(Liveness::Running),
            "liveness": live,
            "status_file": path,
            "status_age_ms": status.as_ref().ok().map(|s| now.saturating_sub(s.written_wall_ns) / 1_000_000),
            "status": status.as_ref().ok(),
            "error": status.as_ref().err().map(|e| e.to_string()),
            "rings": { "feed": ring(&feed), "orders": ring(&orders) },
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        match &status {
            Ok(s) => print!(
                "{}",
                render_text(s, live.unwrap_or(Liveness::Stale), now, &feed, &orders)
            ),
            Err(e) => {
                println!("engine   NOT RUNNING: {e}");
                for (name, ring) in [("feed", &feed), ("orders", &orders)] {
                    match ring {
                        Ok(r) => println!(
                            "{name:<7}  produced {}, consumed {}, lag {}",
                            r.produced, r.consumed, r.lag
                        ),
                        Err(e) => println!("{name:<7}  unavailable: {e}"),
                    }
                }
            }
        }
    }
    if live == Some(Liveness::Running) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

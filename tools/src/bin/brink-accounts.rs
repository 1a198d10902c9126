//! `brink-accounts`: generates bulk accounts files (see `brink::bulk`) for tests and benchmarks.
//!
//! `brink-accounts gen --count N --seed S --instruments SCENARIO --out PATH [--positions K]`
//!
//! Instruments and mark prices come from a scenario file (its accounts are ignored). Each account
//! gets `K` positions (default 3, at most the number of priced instruments) on distinct
//! instruments, drawn by `brink::bulk::synth` (sides, modes, notionals and the 1x–125x leverage
//! spread are documented there).
//!
//! The same seed and inputs always produce the same file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use brink::bulk::synth;
use brink::scenario::Scenario;
use clap::{Parser, Subcommand};

/// Bulk accounts generator.
#[derive(Debug, Parser)]
#[command(name = "brink-accounts", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate a bulk accounts file.
    Gen {
        /// Number of accounts.
        #[arg(long)]
        count: u64,
        /// Random seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Scenario file giving the instruments and their mark prices.
        #[arg(long)]
        instruments: PathBuf,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
        /// Positions per account.
        #[arg(long, default_value_t = 3)]
        positions: usize,
    },
}

fn main() -> ExitCode {
    let Cli { command } = Cli::parse();
    match command {
        Command::Gen {
            count,
            seed,
            instruments,
            out,
            positions,
        } => match generate(count, seed, &instruments, &out, positions) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

fn generate(
    count: u64,
    seed: u64,
    scenario: &std::path::Path,
    out: &std::path::Path,
    per_account: usize,
) -> Result<()> {
    let s = Scenario::load(scenario)?;
    synth::write(out, &s.instruments, &s.marks, count, seed, per_account)
        .with_context(|| format!("generating from {}", scenario.display()))?;
    Ok(())
}

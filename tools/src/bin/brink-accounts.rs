//! `brink-accounts`: generates bulk accounts files (see `brink::bulk`) for tests and benchmarks.
//!
//! `brink-accounts gen --count N --seed S --instruments SCENARIO --out PATH [--positions K]`
//!
//! Instruments and mark prices come from a scenario file (its accounts are ignored). Each account
//! gets `K` positions (default 3, at most the number of instruments) on distinct instruments:
//! - side: long or short with equal probability;
//! - mode: cross with probability 0.7, isolated otherwise;
//! - notional: log-normal, median 2,000 currency units (σ = 1.2 in log space), at least the
//!   instrument's minimum quantity;
//! - entry: the mark moved by a normal relative move (σ = 2 %), on the tick;
//! - leverage: log-normal with median 10x and σ = 0.55 in log space, clamped to 1x–125x, so about
//!   80 % of positions lie between 5x and 20x; an isolated position's margin is notional/leverage,
//!   a cross account's wallet is Σ cross notional / leverage (the same leverage for the account).
//!
//! The same seed and inputs always produce the same file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use brink::bulk::{BulkPosition, BulkWriter, MONEY_DECIMALS};
use brink::margin::{InstrumentId, MarginMode};
use brink::num::{Price, Qty};
use brink::scenario::Scenario;
use clap::{Parser, Subcommand};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};

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
    let priced: Vec<InstrumentId> = s
        .instruments
        .iter()
        .filter(|(id, _)| s.marks.get(*id).is_some())
        .map(|(id, _)| id)
        .collect();
    if priced.is_empty() {
        bail!(
            "{}: no instrument has a [[price]]: the generator needs mark prices",
            scenario.display()
        );
    }
    let k = per_account.min(priced.len());
    let mut rng = StdRng::seed_from_u64(seed);
    let leverage = LogNormal::new(10f64.ln(), 0.55)?;
    let notional = LogNormal::new(2000f64.ln(), 1.2)?;
    let drift = Normal::new(0.0, 0.02)?;
    let money_scale = 10f64.powi(MONEY_DECIMALS as i32);
    let mut w = BulkWriter::create(out, &s.instruments)?;
    let mut buf: Vec<BulkPosition> = Vec::with_capacity(k);
    let mut picks: Vec<InstrumentId> = priced.clone();
    for n in 0..count {
        buf.clear();
        // Distinct instruments: a partial Fisher–Yates shuffle.
        for i in 0..k {
            let j = rng.random_range(i..picks.len());
            picks.swap(i, j);
        }
        let lev_account = leverage.sample(&mut rng).clamp(1.0, 125.0);
        let mut cross_notional = 0f64;
        for &id in &picks[..k] {
            let inst = s.instruments.get(id).context("instrument")?;
            let mark = s.marks.get(id).context("mark")?;
            let price_scale = 10f64.powi(inst.price_decimals as i32);
            let qty_scale = 10f64.powi(inst.qty_decimals as i32);
            let mark_f = mark.0 as f64 / price_scale;
            let tick = inst.tick.0;
            let moved: f64 = drift.sample(&mut rng);
            let target = mark_f * (1.0 + moved).max(0.05);
            let entry = ((target * price_scale / tick as f64).round() as i64).max(1) * tick;
            let entry_f = entry as f64 / price_scale;
            let qty_units = ((notional.sample(&mut rng) / entry_f * qty_scale).round() as i64)
                .max(inst.min_qty.0)
                .min(i64::MAX / 4);
            let qty = if rng.random_bool(0.5) {
                qty_units
            } else {
                -qty_units
            };
            let value = qty_units as f64 / qty_scale * entry_f;
            let isolated = rng.random_bool(0.3);
            let (mode, margin_units) = if isolated {
                let lev = leverage.sample(&mut rng).clamp(1.0, 125.0);
                (MarginMode::Isolated, (value / lev * money_scale) as i64)
            } else {
                cross_notional += value;
                (MarginMode::Cross, 0)
            };
            buf.push(BulkPosition {
                instrument: id,
                mode,
                qty: Qty(qty),
                entry: Price(entry),
                margin_units,
            });
        }
        let wallet_units = (cross_notional / lev_account * money_scale) as i64;
        w.push(n + 1, wallet_units, &buf)?;
    }
    w.finish()?;
    Ok(())
}

//! Subcommands of the `brink` binary. Each command lives in its own file.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backtest;
mod bench;
mod demo;
mod risk;
mod run;
mod status;

/// Brink: a low-latency liquidation engine.
#[derive(Debug, Parser)]
#[command(name = "brink", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay a market-data file through the risk stage, deterministically: events, report, plot.
    Backtest(backtest::BacktestArgs),
    /// Measure the engine's latency per hop under a paced publisher in another process.
    Bench(bench::BenchArgs),
    /// Run the whole procedure on the embedded BTCUSDT 2025-10-10 crash path (no set-up needed).
    Demo(demo::DemoArgs),
    /// Print the cores this process may run on and the topology `auto` would choose.
    Topology,
    /// Run the engine as a long-lived process on a configuration file.
    Run(run::RunArgs),
    /// Show what a running `brink run` is doing (sequences, lag, counters, fund, latency).
    Status(status::StatusArgs),
    /// Evaluate every account of a scenario: equity, margins, status, liquidation prices.
    Risk(risk::RiskArgs),
}

impl Cli {
    /// Whether the command is `brink run` (the long-lived engine).
    pub fn is_run(&self) -> bool {
        matches!(self.command, Command::Run(_))
    }

    /// Runs the chosen subcommand and maps its outcome to the documented exit codes:
    /// 0 success, 2 configuration or input error, 1 any other fatal error.
    pub fn run(self) -> ExitCode {
        match self.command {
            Command::Topology => {
                let cores = core_affinity::get_core_ids().unwrap_or_default();
                println!("cores available: {}", cores.len());
                ExitCode::SUCCESS
            }
            Command::Risk(args) => risk::run(args),
            Command::Bench(args) => bench::run(args),
            Command::Demo(args) => demo::run(args),
            Command::Backtest(args) => backtest::run(args),
            Command::Run(args) => run::run(args),
            Command::Status(args) => status::run(args),
        }
    }
}

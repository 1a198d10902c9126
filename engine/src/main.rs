//! The `brink` command.

use clap::Parser;

mod cli;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    // `brink run` logs every operator event (info); the other commands print their own reports
    // and log only warnings and errors (a full order ring, a failed journal). `BRINK_LOG` or
    // `RUST_LOG` chooses another level or filter.
    brink::ops::init_logging(if cli.is_run() { "info" } else { "warn" });
    cli.run()
}

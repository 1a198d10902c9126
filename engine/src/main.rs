//! The `brink` command.

use clap::Parser;

mod cli;

fn main() -> std::process::ExitCode {
    init_logging();
    cli::Cli::parse().run()
}

/// The stages' warnings and errors (a full order ring, a failed journal) go to stderr; `RUST_LOG`
/// chooses another level or filter (e.g. `RUST_LOG=info`).
fn init_logging() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second subscriber cannot be installed; there is none before this one.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

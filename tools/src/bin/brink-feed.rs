//! `brink-feed`: publishes market data into a shared-memory feed ring and inspects rings.

use clap::Parser;

/// Feed publisher and ring inspector.
#[derive(Debug, Parser)]
#[command(name = "brink-feed", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}

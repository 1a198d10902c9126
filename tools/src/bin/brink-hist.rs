//! `brink-hist`: reads an HdrHistogram interval log (as the engine writes it, one tag per hop) and
//! prints the per-hop latency table or draws the percentile plot.
//!
//! ```text
//! brink-hist plot  --log run.hlog --out plot.svg [--title "3 stages, 1M ticks/s"]
//! brink-hist table --log run.hlog [--json]
//! ```

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use brink::telemetry::{PLOT_SIZE, percentile_plot_svg, read_interval_log};
use clap::{Parser, Subcommand};

/// Latency tables and percentile plots from HdrHistogram interval logs.
#[derive(Debug, Parser)]
#[command(name = "brink-hist", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Draws the percentile plot (SVG; x: percentile on a 1/(1-p) log scale, y: latency, log
    /// scale; one line per hop) and prints the per-hop table.
    Plot {
        /// The interval log to read.
        #[arg(long)]
        log: PathBuf,
        /// Where to write the SVG.
        #[arg(long)]
        out: PathBuf,
        /// Plot title; defaults to the log's file name.
        #[arg(long)]
        title: Option<String>,
        /// Width and height in pixels, e.g. `1100x650`.
        #[arg(long, value_parser = parse_size)]
        size: Option<(u32, u32)>,
    },
    /// Prints the per-hop table: p50, p90, p99, p99.9, p99.99, max, count, throughput.
    Table {
        /// The interval log to read.
        #[arg(long)]
        log: PathBuf,
        /// Print `{"<hop>":{"p50_ns":…,…,"count":…},…}` instead of the text table.
        #[arg(long)]
        json: bool,
    },
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once('x')
        .ok_or_else(|| format!("expected WIDTHxHEIGHT, e.g. 1100x650, got `{s}`"))?;
    let parse = |v: &str| {
        v.parse::<u32>()
            .ok()
            .filter(|n| (200..=10_000).contains(n))
            .ok_or_else(|| format!("`{v}` is not a size between 200 and 10000 pixels"))
    };
    Ok((parse(w)?, parse(h)?))
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Plot {
            log,
            out,
            title,
            size,
        } => {
            if out
                .extension()
                .is_some_and(|e| !e.eq_ignore_ascii_case("svg"))
            {
                bail!(
                    "`{}`: only SVG output is supported; name the file *.svg (convert it with \
                     `rsvg-convert` or ImageMagick `convert` for PNG)",
                    out.display()
                );
            }
            let contents = read(&log)?;
            let lines: Vec<_> = contents
                .tags
                .iter()
                .map(|t| (t.name.as_str(), &t.total))
                .collect();
            let title = title.unwrap_or_else(|| {
                log.file_name().map_or_else(
                    || "latency by percentile".to_owned(),
                    |n| format!("latency by percentile: {}", n.to_string_lossy()),
                )
            });
            let svg = percentile_plot_svg(&lines, &title, size.unwrap_or(PLOT_SIZE))?;
            std::fs::write(&out, svg).with_context(|| format!("writing {}", out.display()))?;
            print!("{}", contents.report());
            eprintln!("wrote {}", out.display());
        }
        Command::Table { log, json } => {
            let report = read(&log)?.report();
            if json {
                println!("{}", report.to_json_string(true));
            } else {
                print!("{report}");
            }
        }
    }
    Ok(())
}

fn read(path: &PathBuf) -> Result<brink::telemetry::LogContents> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    read_interval_log(&bytes).with_context(|| format!("reading {}", path.display()))
}

//! Latency telemetry: per-thread histograms at every hop, snapshots, reports, interval logs, plots.
//!
//! ```text
//!  stage thread (pinned)                         telemetry thread (unpinned)
//!  ┌──────────────────────────┐  full sets   ┌──────────────────────────────────────┐
//!  │ Recorder                 │ ───────────▶ │ Collector                            │
//!  │  live: Histogram per hop │              │  interval + cumulative per hop       │
//!  │  record(hop, ns)         │ ◀─────────── │  → Report (text / JSON), interval log │
//!  └──────────────────────────┘  spare sets  └──────────────────────────────────────┘
//! ```
//!
//! - Stamps are [`clock::now_ns`](crate::clock::now_ns) (CLOCK_MONOTONIC, comparable across
//!   processes). The publisher stamps each record; each stage stamps on receipt and hand-off.
//! - Each stage thread owns a [`Recorder`] with one pre-sized histogram (1 ns..10 s, 3 significant
//!   digits, auto-resize off) per [`Hop`] it times. [`Recorder::record`] is a plain histogram
//!   record; out-of-range values are clamped and counted.
//! - The [`Collector`] asks for snapshots through a shared epoch; recorders answer in
//!   [`Recorder::poll`] by swapping their live set with a pre-allocated spare (see
//!   [`recorder`](self::recorder) for the protocol). No lock or allocation on the recording side.
//! - [`Report`]: p50, p90, p99, p99.9, p99.99, max, count and throughput per hop, as text or JSON.
//!   Produced at shutdown, at a configured period and on request ([`ReportRequest`], which
//!   [`ReportRequest::install_sigusr1`] wires to SIGUSR1).
//! - [`IntervalLog`]: HdrHistogram interval logs (V2 + deflate), one tag per hop, readable by
//!   HdrHistogram's `HistogramLogProcessor`; [`read_interval_log`] reads them back.
//! - [`percentile_plot_svg`]: the percentile plot `brink-hist` draws.
//!
//! A topology reports only the hops it has: the hops of the recorders it creates. A fused
//! risk+emit stage, for instance, records `risk` and `e2e` and has no `risk_emit` row.

pub mod collector;
pub mod error;
pub mod hop;
pub mod log;
pub mod plot;
pub mod recorder;
pub mod report;

pub use collector::{Collector, LatestReports, ReportCause, TelemetryConfig};
pub use error::TelemetryError;
pub use hop::{Hop, HopSet};
pub use log::{
    IntervalLog, LogContents, LoggedInterval, TagTotal, read_interval_log, visit_intervals,
};
pub use plot::{PLOT_SIZE, percentile_curve, percentile_label, percentile_plot_svg};
pub use recorder::{HIGHEST_NS, LOWEST_NS, Recorder, SIGNIFICANT_DIGITS, new_histogram};
pub use report::{HopStats, QUANTILES, Report, ReportRequest, ReportRow, format_ns};

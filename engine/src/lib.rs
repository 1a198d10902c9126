//! # Brink: a low-latency liquidation engine
//!
//! ```text
//!  feed handler process            brink process
//!  ┌───────────┐  shm feed ring   ┌────────┐ SPSC ┌────────┐ SPSC ┌────────┐  shm order ring  ┌──────────────┐
//!  │ publisher │ ───────────────▶ │ ingest │ ───▶ │  risk  │ ───▶ │  emit  │ ───────────────▶ │ order gateway│
//!  └───────────┘  (memmap2 file)  └────────┘      └────────┘      └────────┘  + journal file  └──────────────┘
//! ```
//!
//! ## Thread ownership
//! - **ingest** owns the feed mapping's consumer cursor; it validates records and forwards events.
//! - **risk** alone owns accounts, positions, prices and the insurance fund. With N risk shards
//!   ([`risk::shard`]), each shard owns the accounts partitioned to it and a slice of the fund,
//!   on the risk thread or a thread of its own; the risk stage fans inputs out to them and merges
//!   their outputs in shard order ([`stages`]).
//! - **emit** alone owns order ids, the output ring and the journal.
//! - Nothing on the hot path is shared by two threads except the SPSC rings' cursors.
//!
//! ## Modules
//! - [`stages`]: the three stages (ingest, risk, emit) on the thread runtime, with latency stamps.
//! - [`sync`]: the one place atomics are imported from (std, or loom under `--cfg loom`).
//! - [`ring`]: the bounded lock-free single-producer single-consumer ring between stages.
//! - [`runtime`]: stages, pinning, wait strategies, fused topologies, shutdown.
//! - [`clock`]: CLOCK_MONOTONIC nanosecond stamps, comparable across processes.
//! - [`shm`]: the shared-memory ring file (feed and order rings): byte layout, record kinds, SPSC protocol across processes.
//! - [`config`]: the `brink run` configuration file.
//! - [`demo`]: the demo's embedded instrument and price path, and its venue process.
//! - [`feed`]: market-data sources (Tardis CSV, Binance klines, synthetic) turned into feed records.
//! - [`ingest`]: the ingest stage: header validation, sequence checks, record validation.
//! - [`num`]: fixed-point money, price and quantity types with directed rounding.
//! - [`ops`]: SIGHUP reloads, the status file of `brink status`, operator log lines.
//! - [`live`]: the live engine: stages wired to the rings and the journal, with telemetry.
//! - [`margin`]: instruments, tiers, accounts, positions; equity, maintenance, liquidation prices.
//! - [`risk`]: the risk stage: margin units, their state machine, safe bands, decisions.
//! - [`scenario`]: the TOML scenario format.
//! - [`bulk`]: the compact bulk accounts format.
//! - [`backtest`]: a market-data file replayed through the risk stage and the built-in matcher,
//!   deterministically, with events, a report, a plot and a money check.
//! - [`bench`]: what `brink bench` reports: the run, the channel baseline, ratios, JSON.
//! - [`index`]: the safe-band index: per-instrument ordered band edges, so a tick touches only
//!   the accounts whose band it left.
//! - [`journal`]: the append-only, CRC-checked journal of emitted orders, with torn-tail recovery.
//! - [`recovery`]: crash recovery: snapshots of the risk state, the journal's input and output
//!   entries, and the restart that replays them.
//! - [`telemetry`]: per-thread latency histograms, snapshots, reports and interval logs.
//! - [`matcher`]: a built-in matcher for tests, demos and backtests: fills liquidation orders
//!   against the latest tick's best levels.

pub mod backtest;
pub mod bench;
pub mod bulk;
pub mod clock;
pub mod config;
pub mod demo;
pub mod feed;
pub mod index;
pub mod ingest;
pub mod journal;
pub mod live;
pub mod margin;
pub mod matcher;
pub mod num;
pub mod ops;
pub mod recovery;
pub mod ring;
pub mod risk;
pub mod runtime;
pub mod scenario;
pub mod shm;
pub mod stages;
pub mod sync;
pub mod telemetry;

//! The operator's side of `brink run`: SIGHUP reloads, the status file `brink status` reads,
//! and the log lines an operator must see.
//!
//! ```text
//!  signal handlers ──flags──▶ ops thread (unpinned, every 20 ms)
//!                              │  SIGHUP: read + validate the config ─post─▶ RiskControl ─▶ risk stage
//!                              │                                            (applies between inputs,
//!                              │◀──────────────── outcome ───────────────── alert on the order ring)
//!                              │  counters of the stages ──▶ one log line per operator event
//!                              └─ every telemetry interval ──▶ <journal>.status (JSON, atomic rename)
//! ```
//!
//! - [`control`]: the risk stage's one-slot reload mailbox and its published gauges.
//! - [`preflight`]: `brink run --check`: cores, rings, journal and snapshot checked without
//!   starting.
//! - [`reload`]: reading the configuration again; what may change live and what waits for a
//!   restart.
//! - [`status`]: the status file, ring headers as `brink status` shows them.
//! - [`watch`]: the ops thread.
//!
//! Logs go through `tracing` to stderr ([`init_logging`]; `BRINK_LOG` sets the filter, e.g.
//! `BRINK_LOG=debug`). No stage thread logs on its hot path: the ops thread derives its lines
//! from counters the stages publish anyway.

pub mod control;
pub mod preflight;
pub mod reload;
pub mod status;
pub mod watch;

pub use control::{RiskControl, RiskGauges};
pub use status::{Liveness, RingStatus, StatusFile, status_path};
pub use watch::{OpsConfig, OpsThread, counters_text};

/// Sends `tracing` events to stderr, one line each, filtered by `BRINK_LOG` (else `RUST_LOG`,
/// else `default_filter`).
/// Does nothing when a subscriber is already set.
pub fn init_logging(default_filter: &str) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("BRINK_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// Starts the ops thread of a `brink run` engine about to start on `config`; `hup` is the flag
/// the SIGHUP handler raises (installed by the caller before loading), which the thread polls. Call
/// [`OpsThread::finish`] after the engine stopped.
pub fn start(
    config: &crate::config::RunConfig,
    engine: &crate::risk::RiskEngine,
    counters: &crate::live::LiveCounters,
    stop: &crate::runtime::StopSignal,
    hup: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::io::Result<OpsThread> {
    OpsThread::spawn(
        OpsConfig {
            file: config.file.clone(),
            running: config.clone(),
            instruments: engine
                .instruments()
                .iter()
                .map(|(_, i)| i.clone())
                .collect(),
            status_path: status_path(&config.journal),
        },
        counters.clone(),
        stop.clone(),
        hup,
    )
}

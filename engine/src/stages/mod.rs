//! The engine's three stages on the thread runtime: [`IngestSource`] (the shared-memory feed),
//! [`RiskStage`] (the [`crate::risk::RiskEngine`] state machine) and [`EmitSink`] (journal, then
//! the shared-memory order ring).
//!
//! Items between stages carry the stamps the latency hops are computed from:
//!
//! ```text
//!  publish_ns ──feed──▶ receive_ns ─ingest_risk─▶ risk_in ─risk─▶ risk_out ─risk_emit─▶ emit_in ─emit─▶ written
//!  └──────────────────────────────────────────── e2e (orders only) ─────────────────────────────────────┘
//! ```
//! `feed`, `ingest_risk` and `risk` are recorded for every input; `risk_emit`, `emit` and `e2e`
//! for every output. A stamp is one CLOCK_MONOTONIC read.

mod emit;
mod ingest;
mod risk;
mod shards;

pub use emit::{EmitCounters, EmitSink};
pub use ingest::IngestSource;
pub use risk::RiskStage;

use crate::ingest::FeedEvent;
use crate::recovery::Entry;

/// An input on its way from ingest to risk.
#[derive(Debug, Clone, Copy)]
pub struct Inbound {
    /// The validated event (with its publish and receive stamps).
    pub event: FeedEvent,
    /// When ingest handed it on.
    pub handoff_ns: u64,
}

/// A journal entry on its way from risk to emit: an input risk consumed (journaled only, before
/// the decisions it caused) or a decision (journaled, then published).
#[derive(Debug, Clone, Copy)]
pub struct Outbound {
    /// The entry.
    pub entry: Entry,
    /// Publish stamp of the input that caused it (for the end-to-end hop).
    pub publish_ns: u64,
    /// When risk handed it on.
    pub handoff_ns: u64,
}

#[cfg(all(test, not(loom)))]
mod tests;

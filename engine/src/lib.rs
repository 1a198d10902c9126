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
//! - **risk** alone owns accounts, positions, prices and the insurance fund.
//! - **emit** alone owns order ids, the output ring and the journal.
//! - Nothing on the hot path is shared by two threads except the SPSC rings' cursors.
//!
//! ## Modules
//! - [`sync`]: the one place atomics are imported from (std, or loom under `--cfg loom`).
//! - [`ring`]: the bounded lock-free single-producer single-consumer ring between stages.
//! - [`runtime`]: stages, pinning, wait strategies, fused topologies, shutdown.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod ring;
pub mod runtime;
pub mod sync;

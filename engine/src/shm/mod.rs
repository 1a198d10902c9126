//! The shared-memory ring file: one format for the feed (input) and the order ring (output), and
//! its single-producer single-consumer protocol across processes.
//!
//! # File layout
//!
//! A ring file is a 4096-byte header page followed by `capacity` 64-byte record slots
//! (`capacity` a power of two). All integers are little-endian. The full diagram lives in
//! `docs/shm-format.md`; in short:
//!
//! ```text
//!  0      ┌──────────────────────────────────────────────────────────────┐
//!         │ magic "BRINKRNG" │ version │ rec size │ capacity │ kind │ money│  creator, once
//!         │ created wall ns  │ producer pid │ reserved                     │
//!  128    ├──────────────────────────────────────────────────────────────┤
//!         │ producer cursor                                    (128 B)   │  producer
//!  256    ├──────────────────────────────────────────────────────────────┤
//!         │ consumer cursor                                    (128 B)   │  consumer
//!  384    ├──────────────────────────────────────────────────────────────┤
//!         │ producer heartbeat ns │ producer wait ns │ closed   (128 B)   │  producer
//!  512    ├──────────────────────────────────────────────────────────────┤
//!         │ consumer heartbeat ns │ consumer pid              (128 B)   │  consumer
//!  640    ├──────────────────────────────────────────────────────────────┤
//!         │ reserved (zero)                                              │
//!  4096   ├──────────────────────────────────────────────────────────────┤
//!         │ slot 0: commit │ publish ns │ tag aux rsv instr │ payload×5  │  64 B
//!         │ slot 1 …                                                     │
//!         └──────────────────────────────────────────────────────────────┘
//! ```
//!
//! See [`layout::HeaderLayout`] and [`Record`] for every offset (each asserted at compile time),
//! [`input`] and [`output`] for the payload of each record kind.
//!
//! # Protocol
//!
//! - Record `seq` lives in slot `seq & (capacity - 1)`. Its commit word is `seq + 1`, written last
//!   with Release by the producer and read first with Acquire by the consumer; a slot still holding
//!   the previous lap's record (commit `seq + 1 - capacity`) or never written (0) is not ready.
//! - The producer writes slot `seq` only when `seq < consumer cursor + capacity`: it never
//!   overwrites an unread record. On a full ring it waits (spin with back-off, then yield, then
//!   50 µs sleeps) and counts the nanoseconds waited ([`Producer::wait_ns`], also in the header).
//! - The consumer releases slots by storing its cursor (Release), in batches.
//! - Heartbeats are CLOCK_MONOTONIC stamps, comparable across processes. A producer replaced by a
//!   new one either renames a fresh file over the path (new creation time and inode) or attaches to
//!   the same file (new pid); the ingest stage detects both.
//! - Mapped memory is accessed only through atomics and volatile word copies; no reference to a
//!   non-atomic type is ever formed over it. The atomics come straight from `core` rather than
//!   [`crate::sync`]: memory shared with another process cannot be model-checked by loom.
//!
//! # Units
//!
//! Prices and quantities are `i64` scaled by the instrument's `10^price_decimals` and
//! `10^qty_decimals`; money by `10^MONEY_DECIMALS` (10^8); rates and ratios by `10^9`. Instrument
//! ids are the index of the instrument in the scenario file's `[[instrument]]` list.

pub mod consumer;
pub mod error;
pub mod file;
pub mod input;
pub mod layout;
pub mod output;
pub mod producer;

pub use consumer::{Consumer, Slot};
pub use error::ShmError;
pub use file::{Expect, HeaderView, RingFile, default_dir};
pub use input::{
    Collateral, Fill, Funding, Heartbeat, Input, InputDecodeError, InstrumentState, Status, Tick,
};
pub use layout::{
    DIGEST_SEED, HEADER_SIZE, LAYOUT_VERSION, MAGIC, MAX_CAPACITY, MIN_CAPACITY, MONEY_DECIMALS,
    RATE_DECIMALS, RECORD_SIZE, Record, RingKind, file_len,
};
pub use output::{
    Adl, Alert, Liquidation, MarginCall, Output, OutputDecodeError, Settlement, Side, alert_code,
};
pub use producer::{Full, Producer};

#[cfg(test)]
mod tests;

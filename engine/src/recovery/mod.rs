//! Crash recovery: nothing lost, nothing emitted twice.
//!
//! - **One ordered log.** The journal ([`crate::journal`]) holds, in order, every input the risk
//!   stage consumed (feed records and ingest alerts) and, after each, the outputs it produced
//!   ([`entry`]). An output is journaled before it is written to the order ring; an input entry
//!   reaches the file no later than the first output it caused.
//! - **The feed keeps what the journal lacks.** The ingest stage releases feed slots to the
//!   producer only once the journal holds them ([`progress`]), so after a crash every record the
//!   journal lacks is still in the feed ring.
//! - **Snapshots** ([`snapshot`], [`taker`]) hold the risk state at an input boundary with the
//!   number of input entries it applied; one is installed only once the journal holds all of
//!   them, so it is never ahead of the journal.
//! - **Restart** ([`mod@restart`]) loads the last snapshot, replays the journal's inputs after it
//!   (the risk engine is deterministic in its input: outputs regenerated for journaled inputs
//!   are the journaled ones and are not emitted again), completes the last input's outputs,
//!   writes to the reopened order ring what it lacks, and resumes the feed after the last
//!   journaled record.

pub mod codec;
pub mod entry;
pub mod progress;
pub mod restart;
pub mod snapshot;
pub mod taker;

pub use entry::{Entry, EntryError, journaled_outputs};
pub use progress::{InputLog, JournalProgress};
pub use restart::{RecoveryError, Restart, RestartConfig, RestartReport, restart};
pub use snapshot::{SeenPrice, SnapshotError, SnapshotMeta};
pub use taker::{Position, SnapshotSettings, SnapshotTaker, SnapshotWriter, WriterReport};

#[cfg(test)]
mod tests;

//! Errors of the shared-memory layer. Each names the file and says what was found and expected.

use std::path::PathBuf;

/// A ring file could not be created, opened or validated.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// An operating-system call failed.
    #[error(
        "cannot {op} ring file {path}: {source} (check the path, its directory and permissions)"
    )]
    Io {
        /// File concerned.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is shorter (or longer) than its header says.
    #[error(
        "ring file {path} is {found} bytes, expected {expected}: truncated or not a ring file; recreate it with `brink-feed publish --create`"
    )]
    Truncated {
        /// File concerned.
        path: PathBuf,
        /// Actual length.
        found: u64,
        /// Length implied by the header.
        expected: u64,
    },
    /// The first eight bytes are not `BRINKRNG`.
    #[error("{path} is not a Brink ring file: magic {found:#018x}, expected {expected:#018x} (\"BRINKRNG\")", expected = super::MAGIC)]
    BadMagic {
        /// File concerned.
        path: PathBuf,
        /// Magic found.
        found: u64,
    },
    /// Layout version mismatch.
    #[error(
        "ring file {path} has layout version {found}, this build speaks {expected}: rebuild the producer and the engine from the same source"
    )]
    BadVersion {
        /// File concerned.
        path: PathBuf,
        /// Version found.
        found: u32,
        /// Version of this build.
        expected: u32,
    },
    /// Record size mismatch.
    #[error("ring file {path} has {found}-byte records, expected {expected}")]
    BadRecordSize {
        /// File concerned.
        path: PathBuf,
        /// Record size found.
        found: u32,
        /// Record size of this build.
        expected: u32,
    },
    /// The header's capacity is not a power of two in the accepted range.
    #[error("ring file {path} declares capacity {found}, expected a power of two in {min}..={max}", min = super::MIN_CAPACITY, max = super::MAX_CAPACITY)]
    BadCapacity {
        /// File concerned.
        path: PathBuf,
        /// Capacity found.
        found: u64,
    },
    /// The capacity differs from the configured one.
    #[error(
        "ring file {path} has capacity {found}, the configuration expects {expected}: fix the configuration or recreate the ring"
    )]
    CapacityMismatch {
        /// File concerned.
        path: PathBuf,
        /// Capacity found.
        found: u64,
        /// Capacity configured.
        expected: u64,
    },
    /// Unknown ring kind code.
    #[error("ring file {path} has unknown kind code {found}, expected 1 (feed) or 2 (orders)")]
    BadKind {
        /// File concerned.
        path: PathBuf,
        /// Kind code found.
        found: u32,
    },
    /// A feed ring was opened as an orders ring or the reverse.
    #[error(
        "ring file {path} is of kind {found}, expected kind {expected}: check which path was passed"
    )]
    WrongKind {
        /// File concerned.
        path: PathBuf,
        /// Kind found.
        found: &'static str,
        /// Kind expected.
        expected: &'static str,
    },
    /// The money scale differs from this build's.
    #[error("ring file {path} uses money decimals {found}, this build uses {expected}")]
    BadMoneyDecimals {
        /// File concerned.
        path: PathBuf,
        /// Decimals found.
        found: u32,
        /// Decimals of this build.
        expected: u32,
    },
    /// Another process is still publishing into the ring.
    #[error(
        "ring file {path} has a live producer (pid {pid}, heartbeat {age_ms} ms ago): stop it first, or pass --create to replace the ring"
    )]
    LiveProducer {
        /// File concerned.
        path: PathBuf,
        /// The live producer's pid.
        pid: u32,
        /// Age of its last heartbeat in milliseconds.
        age_ms: u64,
    },
    /// A requested capacity is not usable.
    #[error("capacity {requested} is not a power of two in {min}..={max}; pick e.g. 65536", min = super::MIN_CAPACITY, max = super::MAX_CAPACITY)]
    InvalidCapacity {
        /// Capacity requested.
        requested: u64,
    },
}

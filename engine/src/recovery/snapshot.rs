//! The snapshot file: the risk state at an input boundary, with where it stands in the journal
//! and in the feed, written atomically.
//!
//! ## File layout (little-endian, layout version 2)
//! ```text
//! offset 0   8  magic "BRNKSNAP"
//!        8   4  layout version (2)
//!       12   4  reserved (0)
//!       16   8  inputs: input entries of the journal this state has applied
//!       24   8  next feed seq: the feed record after the last one applied (0: none yet)
//!       32   8  payload length n
//!       40   4  CRC-32 (IEEE) of the payload
//!       44   4  reserved (0)
//!       48   n  payload: the ingest resume state (per instrument: last accepted mark and
//!               publish stamp), then the risk state: the number of risk shards and each
//!               shard's state in shard order ([`crate::risk::shard::Shards::encode_state`])
//! ```
//!
//! ## Atomicity
//! [`write_atomic`] writes `PATH.tmp`, fsyncs it, renames it over `PATH` and fsyncs the folder:
//! after a crash at any point `PATH` holds either the previous snapshot or the new one, whole.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::codec::{DecodeError, Reader, Writer};
use crate::risk::shard::Shards;

/// The snapshot file's magic bytes.
pub const MAGIC: [u8; 8] = *b"BRNKSNAP";
/// The layout version this build reads and writes.
pub const VERSION: u32 = 3;
/// Bytes before the payload.
pub const HEADER_LEN: usize = 48;

/// Where a snapshot stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Input entries of the journal applied to the state.
    pub inputs: u64,
    /// The feed sequence number after the last feed record applied (0 when none was).
    pub next_feed_seq: u64,
}

/// The ingest stage's memory of one instrument, restored so that a restarted engine checks the
/// next records as an uninterrupted one would.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeenPrice {
    /// Last accepted mark, price units (0 before the first tick).
    pub last_mark_px: i64,
    /// Publish stamp of the last accepted record of the instrument.
    pub last_publish_ns: u64,
}

/// Why a snapshot could not be read or written. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading, writing, syncing or renaming failed.
    #[error("snapshot {path}: {source} (check the path, its permissions and free space)")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Not a snapshot of this layout.
    #[error(
        "snapshot {path}: bad header: found {found}, expected magic \"BRNKSNAP\" version {VERSION} \
         (point [snapshot] path at a Brink snapshot, or remove the file to replay the whole journal)"
    )]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What the header held.
        found: String,
    },
    /// The payload does not match its CRC or length: the file is damaged.
    #[error(
        "snapshot {path}: damaged ({what}); remove it to recover from the whole journal instead"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What did not match.
        what: String,
    },
    /// The payload is intact but does not fit this configuration.
    #[error(
        "snapshot {path}: {source} (was it taken with another scenario or accounts file? \
         restore that configuration, or remove the snapshot and the journal to start afresh)"
    )]
    State {
        /// The file.
        path: PathBuf,
        /// What did not fit.
        source: DecodeError,
    },
}

/// Encodes a snapshot file's bytes.
pub fn encode(meta: SnapshotMeta, seen: &[SeenPrice], shards: &Shards) -> Vec<u8> {
    encode_with(meta, seen, 0, |w| shards.encode_state(w))
}

/// As [`encode`], with the risk state written by `state` (the shards' state, or the parts
/// shard threads encoded, behind their count), reserving `capacity` bytes first (the size of
/// the previous snapshot saves the buffer's regrowth copies).
pub fn encode_with(
    meta: SnapshotMeta,
    seen: &[SeenPrice],
    capacity: usize,
    state: impl FnOnce(&mut Writer),
) -> Vec<u8> {
    let mut w = Writer::with_capacity(capacity.max(HEADER_LEN));
    // The header, its length and CRC patched in below.
    w.bytes(&MAGIC);
    w.u32(VERSION);
    w.u32(0);
    w.u64(meta.inputs);
    w.u64(meta.next_feed_seq);
    w.u64(0);
    w.u32(0);
    w.u32(0);
    debug_assert_eq!(w.len(), HEADER_LEN);
    w.len_of(seen.len());
    for s in seen {
        w.i64(s.last_mark_px);
        w.u64(s.last_publish_ns);
    }
    state(&mut w);
    let bytes = w.bytes_mut();
    let len = (bytes.len() - HEADER_LEN) as u64;
    let crc = crc32fast::hash(&bytes[HEADER_LEN..]);
    bytes[32..40].copy_from_slice(&len.to_le_bytes());
    bytes[40..44].copy_from_slice(&crc.to_le_bytes());
    w.into_bytes()
}

/// A decoded snapshot.
#[derive(Debug)]
pub struct Loaded {
    /// Where it stands.
    pub meta: SnapshotMeta,
    /// The ingest resume state.
    pub seen: Vec<SeenPrice>,
    /// The risk shards, restored.
    pub engine: Shards,
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Decodes a snapshot file's bytes onto `base`, the shards built from the configuration.
pub fn decode(path: &Path, bytes: &[u8], base: Shards) -> Result<Loaded, SnapshotError> {
    let bad = |found: String| SnapshotError::BadHeader {
        path: path.to_path_buf(),
        found,
    };
    if bytes.len() < HEADER_LEN {
        return Err(bad(format!(
            "a {}-byte file, shorter than the header",
            bytes.len()
        )));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if bytes[..8] != MAGIC || version != VERSION {
        return Err(bad(format!(
            "magic {:?} version {version}",
            String::from_utf8_lossy(&bytes[..8])
        )));
    }
    let meta = SnapshotMeta {
        inputs: le_u64(bytes, 16),
        next_feed_seq: le_u64(bytes, 24),
    };
    let len = le_u64(bytes, 32);
    let crc = u32::from_le_bytes([bytes[40], bytes[41], bytes[42], bytes[43]]);
    let payload = &bytes[HEADER_LEN..];
    let damaged = |what: String| SnapshotError::Damaged {
        path: path.to_path_buf(),
        what,
    };
    if payload.len() as u64 != len {
        return Err(damaged(format!(
            "payload of {} bytes where the header says {len}",
            payload.len()
        )));
    }
    if crc32fast::hash(payload) != crc {
        return Err(damaged("the payload's CRC does not match".to_string()));
    }
    let state = |source| SnapshotError::State {
        path: path.to_path_buf(),
        source,
    };
    let mut r = Reader::new(payload);
    let n = r.len_of(16).map_err(state)?;
    let mut seen = Vec::with_capacity(n);
    for _ in 0..n {
        seen.push(SeenPrice {
            last_mark_px: r.i64().map_err(state)?,
            last_publish_ns: r.u64().map_err(state)?,
        });
    }
    let engine = base.restore_state(&mut r).map_err(state)?;
    Ok(Loaded { meta, seen, engine })
}

/// Reads the snapshot at `path` onto `base`; `Ok(None)` (and `base` back) when there is none.
pub fn load(path: &Path, base: Shards) -> Result<Result<Loaded, Shards>, SnapshotError> {
    match std::fs::read(path) {
        Ok(bytes) => decode(path, &bytes, base).map(Ok),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Err(base)),
        Err(source) => Err(SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of the
/// folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let io_err = |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err)?;
    file.write_all(bytes).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io_err)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
    Ok(())
}

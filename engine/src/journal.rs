//! The durable journal: an append-only file of length-prefixed, CRC-checked records.
//!
//! The emitter appends every order to the journal *before* it writes the order to the output ring
//! and counts it as emitted, so a crash can lose no order that the gateway saw. It also journals
//! every input the risk stage consumed, staged ([`Journal::stage`]) and written with the next
//! order or batch ([`Journal::flush`]); the entries are described in [`crate::recovery::entry`]. On start the journal
//! is scanned: every complete record whose CRC matches is returned for replay; a torn tail (a record
//! cut short by a crash, or whose CRC does not match) is reported and cut off, and appending resumes
//! after the last good record.
//!
//! ## File layout (little-endian)
//! ```text
//! offset 0   8 bytes  magic "BRNKJRNL"
//!        8   4 bytes  layout version (1)
//!       12   4 bytes  reserved (0)
//!       16   records, each:
//!              4 bytes  payload length n (1 ..= MAX_PAYLOAD)
//!              4 bytes  CRC-32 (IEEE) of the payload
//!              n bytes  payload
//! ```
//!
//! ## Durability
//! Each append is one `write(2)` of the whole framed record, so after `append` returns the record
//! is in the kernel's page cache and survives a crash of this process. Surviving a crash of the
//! machine needs an `fsync`, chosen by [`FsyncPolicy`]. A failed write (for example a full file
//! system) is an error: the caller must stop emitting rather than emit what it could not journal.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The journal file's magic bytes.
pub const MAGIC: [u8; 8] = *b"BRNKJRNL";
/// The journal layout version this build reads and writes.
pub const VERSION: u32 = 2;
/// Bytes before the first record.
pub const HEADER_LEN: u64 = 16;
/// Bytes of framing before each payload (length + CRC).
pub const FRAME_LEN: usize = 8;
/// The largest payload a record may carry. A length field above this marks a torn record.
pub const MAX_PAYLOAD: usize = 1 << 20;

/// When the journal forces its records to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fsync` after every record: survives a power loss, costs a device flush per order.
    Always,
    /// `fsync` after every `n` records, and on [`Journal::sync`].
    EveryN(u32),
    /// Never `fsync` except on [`Journal::sync`]: survives a process crash, not a power loss.
    Never,
}

/// Errors of the journal. Each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be opened or created.
    #[error("journal {path}: cannot open: {source} (check the path and its permissions)")]
    Open {
        /// The journal file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file exists but is not a journal of this layout.
    #[error(
        "journal {path}: bad header: found {found}, expected magic \"BRNKJRNL\" version {VERSION} \
         (point the journal path at a Brink journal or at a new file)"
    )]
    BadHeader {
        /// The journal file.
        path: PathBuf,
        /// What the header held.
        found: String,
    },
    /// A payload was empty or larger than [`MAX_PAYLOAD`].
    #[error("journal record of {len} bytes is outside 1..={MAX_PAYLOAD}")]
    PayloadSize {
        /// The refused payload's length.
        len: usize,
    },
    /// Writing or syncing failed, for example because the file system is full. Nothing after the
    /// last successful append may be treated as journaled.
    #[error("journal {path}: write failed: {source} (free space or fix the device, then restart)")]
    Write {
        /// The journal file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
}

/// What [`Journal::open`] found in an existing file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Payloads of the good records, in order.
    pub records: Vec<Vec<u8>>,
    /// Bytes cut from the end because they held a torn or corrupt record (0 when clean).
    pub torn_bytes: u64,
    /// Why the tail was cut, when it was.
    pub torn_reason: Option<&'static str>,
}

/// An open journal, positioned after its last good record.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    policy: FsyncPolicy,
    /// Records appended since the last fsync; `< n` under `EveryN(n)`.
    unsynced: u32,
    /// Records in the file, recovered ones included.
    records: u64,
    /// Framed records staged for the next write; reused, so an append allocates nothing once
    /// warm.
    frame: Vec<u8>,
    /// Records in `frame`.
    staged: u32,
}

impl Journal {
    /// Opens or creates the journal at `path`, recovers its good records and cuts a torn tail.
    pub fn open(path: &Path, policy: FsyncPolicy) -> Result<(Self, Recovery), JournalError> {
        let open_err = |source| JournalError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(open_err)?;
        let len = file.metadata().map_err(open_err)?.len();
        let write_err = |source| JournalError::Write {
            path: path.to_path_buf(),
            source,
        };
        let recovery = if len == 0 {
            let mut header = [0u8; HEADER_LEN as usize];
            header[..8].copy_from_slice(&MAGIC);
            header[8..12].copy_from_slice(&VERSION.to_le_bytes());
            file.write_all(&header).map_err(write_err)?;
            file.sync_data().map_err(write_err)?;
            Recovery::default()
        } else {
            let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            file.read_to_end(&mut bytes).map_err(open_err)?;
            let (recovery, good_len) = scan(&bytes).map_err(|found| JournalError::BadHeader {
                path: path.to_path_buf(),
                found,
            })?;
            if good_len < len {
                file.set_len(good_len).map_err(write_err)?;
                file.sync_data().map_err(write_err)?;
            }
            recovery
        };
        file.seek(SeekFrom::End(0)).map_err(write_err)?;
        let journal = Self {
            file,
            path: path.to_path_buf(),
            policy,
            unsynced: 0,
            records: recovery.records.len() as u64,
            frame: Vec::with_capacity(256),
            staged: 0,
        };
        Ok((journal, recovery))
    }

    /// Appends one record with a single write (together with any staged records before it),
    /// then syncs as the policy says.
    pub fn append(&mut self, payload: &[u8]) -> Result<(), JournalError> {
        self.stage(payload)?;
        self.flush()
    }

    /// Frames a record into the write buffer without writing it: it reaches the file, in order,
    /// with the next [`flush`](Self::flush) or [`append`](Self::append). A staged record is not
    /// journaled until then.
    pub fn stage(&mut self, payload: &[u8]) -> Result<(), JournalError> {
        if payload.is_empty() || payload.len() > MAX_PAYLOAD {
            return Err(JournalError::PayloadSize { len: payload.len() });
        }
        // The length fits in u32: it is at most MAX_PAYLOAD.
        self.frame
            .extend_from_slice(&(payload.len() as u32).to_le_bytes());
        self.frame
            .extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        self.frame.extend_from_slice(payload);
        self.staged += 1;
        Ok(())
    }

    /// Writes every staged record with one `write(2)`, then syncs as the policy says.
    pub fn flush(&mut self) -> Result<(), JournalError> {
        if self.staged == 0 {
            return Ok(());
        }
        let write_err = |source| JournalError::Write {
            path: self.path.clone(),
            source,
        };
        let written = self.file.write_all(&self.frame).map_err(write_err);
        let staged = self.staged;
        self.frame.clear();
        self.staged = 0;
        written?;
        self.records += u64::from(staged);
        self.unsynced = self.unsynced.saturating_add(staged);
        let due = match self.policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::EveryN(n) => self.unsynced >= n.max(1),
            FsyncPolicy::Never => false,
        };
        if due {
            self.sync()?;
        }
        Ok(())
    }

    /// Records staged and not yet written.
    pub fn staged(&self) -> u32 {
        self.staged
    }

    /// Bytes staged and not yet written.
    pub fn staged_bytes(&self) -> usize {
        self.frame.len()
    }

    /// Writes the staged records, then forces every record to stable storage.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.flush()?;
        self.file
            .sync_data()
            .map_err(|source| JournalError::Write {
                path: self.path.clone(),
                source,
            })?;
        self.unsynced = 0;
        Ok(())
    }

    /// Records written to the journal, those recovered at open included (staged ones not).
    pub fn len(&self) -> u64 {
        self.records
    }

    /// Whether the journal holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// The journal's file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads a whole journal image: its good records and the length of the good prefix. A bad header
/// is an error (the string says what was found); a bad record ends the scan.
pub fn scan(bytes: &[u8]) -> Result<(Recovery, u64), String> {
    if bytes.len() < HEADER_LEN as usize {
        return Err(format!(
            "a {}-byte file, shorter than the header",
            bytes.len()
        ));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if bytes[..8] != MAGIC || version != VERSION {
        return Err(format!(
            "magic {:?} version {version}",
            String::from_utf8_lossy(&bytes[..8])
        ));
    }
    let mut recovery = Recovery::default();
    let mut at = HEADER_LEN as usize;
    while at < bytes.len() {
        let Some(frame) = bytes.get(at..at + FRAME_LEN) else {
            recovery.torn_reason = Some("a record header cut short");
            break;
        };
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if len == 0 || len > MAX_PAYLOAD {
            recovery.torn_reason = Some("a record length out of range");
            break;
        }
        let Some(payload) = bytes.get(at + FRAME_LEN..at + FRAME_LEN + len) else {
            recovery.torn_reason = Some("a record payload cut short");
            break;
        };
        if crc32fast::hash(payload) != crc {
            recovery.torn_reason = Some("a record whose CRC does not match");
            break;
        }
        recovery.records.push(payload.to_vec());
        at += FRAME_LEN + len;
    }
    recovery.torn_bytes = (bytes.len() - at) as u64;
    Ok((recovery, at as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                let len = 1 + (i * 37) % 120;
                (0..len).map(|j| (i * 7 + j) as u8).collect()
            })
            .collect()
    }

    #[test]
    fn appended_records_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let written = payloads(100);
        {
            let (mut j, rec) = Journal::open(&path, FsyncPolicy::EveryN(10)).unwrap();
            assert!(rec.records.is_empty());
            for p in &written {
                j.append(p).unwrap();
            }
            assert_eq!(j.len(), 100);
        }
        let (mut j, rec) = Journal::open(&path, FsyncPolicy::Always).unwrap();
        assert_eq!(rec.records, written);
        assert_eq!(rec.torn_bytes, 0);
        assert_eq!(rec.torn_reason, None);
        j.append(b"after").unwrap();
        drop(j);
        let (_, rec) = Journal::open(&path, FsyncPolicy::Never).unwrap();
        assert_eq!(rec.records.len(), 101);
        assert_eq!(rec.records[100], b"after");
    }

    #[test]
    fn truncation_at_every_byte_keeps_the_good_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let written = payloads(6);
        {
            let (mut j, _) = Journal::open(&path, FsyncPolicy::Never).unwrap();
            for p in &written {
                j.append(p).unwrap();
            }
        }
        let full = std::fs::read(&path).unwrap();
        // Record boundaries: where each record ends.
        let mut ends = vec![HEADER_LEN as usize];
        for p in &written {
            ends.push(ends.last().unwrap() + FRAME_LEN + p.len());
        }
        for cut in HEADER_LEN as usize..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (mut j, rec) = Journal::open(&path, FsyncPolicy::Never).unwrap();
            let whole = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(rec.records, written[..whole], "cut at {cut}");
            let good = ends[whole];
            assert_eq!(rec.torn_bytes, (cut - good) as u64, "cut at {cut}");
            assert_eq!(rec.torn_reason.is_some(), cut != good, "cut at {cut}");
            // Appending after recovery continues from the good prefix.
            j.append(b"next").unwrap();
            drop(j);
            let (_, again) = Journal::open(&path, FsyncPolicy::Never).unwrap();
            assert_eq!(again.records.len(), whole + 1);
            assert_eq!(again.torn_bytes, 0);
        }
    }

    #[test]
    fn a_flipped_bit_is_caught_by_the_crc() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        {
            let (mut j, _) = Journal::open(&path, FsyncPolicy::Never).unwrap();
            for p in payloads(3) {
                j.append(&p).unwrap();
            }
        }
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let (_, rec) = Journal::open(&path, FsyncPolicy::Never).unwrap();
        assert_eq!(rec.records.len(), 2);
        assert_eq!(rec.torn_reason, Some("a record whose CRC does not match"));
    }

    #[test]
    fn a_foreign_file_is_refused_with_what_was_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, b"hello, this is not a journal").unwrap();
        let err = Journal::open(&path, FsyncPolicy::Never).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, JournalError::BadHeader { .. }), "{msg}");
        assert!(msg.contains("hello, t"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }

    #[test]
    fn bad_payload_sizes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(&dir.path().join("j"), FsyncPolicy::Never).unwrap();
        assert!(matches!(
            j.append(&[]),
            Err(JournalError::PayloadSize { len: 0 })
        ));
        let big = vec![0u8; MAX_PAYLOAD + 1];
        assert!(matches!(
            j.append(&big),
            Err(JournalError::PayloadSize { .. })
        ));
        assert!(j.is_empty());
    }

    #[test]
    fn a_full_device_is_a_write_error() {
        // /dev/full accepts opens and fails every write with ENOSPC, like a full file system.
        let path = Path::new("/dev/full");
        if !path.exists() {
            println!("skipped: /dev/full is absent on this system");
            return;
        }
        let err = Journal::open(path, FsyncPolicy::Never).unwrap_err();
        assert!(matches!(err, JournalError::Write { .. }), "{err}");
        assert!(err.to_string().contains("/dev/full"), "{err}");
    }
}

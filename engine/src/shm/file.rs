//! A ring file mapped into this process: creation, header validation, raw word access.
//!
//! Mapped memory is touched only through raw pointers: atomics built with `AtomicU64::from_ptr`
//! for the words the other process writes concurrently, `ptr::read_volatile`/`write_volatile` for
//! record payload words, which the protocol hands from one side to the other through the commit
//! word. No `&T` or `&[u8]` is ever formed over the mapping.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::MmapMut;

use super::error::ShmError;
use super::layout::{
    HEADER_SIZE, LAYOUT_VERSION, MAGIC, MAX_CAPACITY, MIN_CAPACITY, MONEY_DECIMALS, RECORD_SIZE,
    RingKind, file_len, off,
};

/// What a reader expects of a file it opens. `None` fields accept any valid value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Expect {
    /// Required ring kind.
    pub kind: Option<RingKind>,
    /// Required capacity.
    pub capacity: Option<u64>,
}

/// The header as read at one moment (each word read atomically; the set is not one snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderView {
    /// Ring kind.
    pub kind: RingKind,
    /// Capacity in records.
    pub capacity: u64,
    /// Creation time (wall ns since the Unix epoch).
    pub created_wall_ns: u64,
    /// Producer pid.
    pub producer_pid: u32,
    /// Producer cursor (records published).
    pub producer_cursor: u64,
    /// Consumer cursor (records consumed).
    pub consumer_cursor: u64,
    /// Last producer heartbeat (CLOCK_MONOTONIC ns, 0 = never).
    pub producer_heartbeat_ns: u64,
    /// Total producer back-pressure wait.
    pub producer_wait_ns: u64,
    /// 0 while running, final cursor + 1 when closed.
    pub producer_closed: u64,
    /// Last consumer heartbeat (CLOCK_MONOTONIC ns, 0 = never).
    pub consumer_heartbeat_ns: u64,
    /// Consumer pid, 0 = none yet.
    pub consumer_pid: u32,
}

/// A mapped, validated ring file.
///
/// Invariants: the mapping is `file_len(capacity)` bytes long; `capacity` is a power of two in
/// `MIN_CAPACITY..=MAX_CAPACITY`; `base` points at the first byte of the mapping and stays valid as
/// long as `_map` lives (the protocol never truncates a ring file; replacement is by rename).
pub struct RingFile {
    _map: MmapMut,
    base: *mut u8,
    capacity: u64,
    kind: RingKind,
    created_wall_ns: u64,
    path: PathBuf,
    dev_ino: (u64, u64),
}

// SAFETY: the mapping is owned by this value and only accessed through atomics and volatile
// copies whose cross-process ordering the protocol defines; moving it to another thread is fine.
unsafe impl Send for RingFile {}

/// The default directory for ring files: `/dev/shm` when present, the temp dir otherwise.
pub fn default_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> ShmError + 'a {
    move |source| ShmError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

impl RingFile {
    /// Creates a fresh ring file at `path` (replacing any file there atomically: it is written
    /// under a temporary name in the same directory, then renamed), and maps it.
    pub fn create(path: &Path, kind: RingKind, capacity: u64) -> Result<RingFile, ShmError> {
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(ShmError::InvalidCapacity {
                requested: capacity,
            });
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err(&tmp, "create"))?;
        let mut head = [0u8; HEADER_SIZE];
        head[off::MAGIC..off::MAGIC + 8].copy_from_slice(&MAGIC.to_le_bytes());
        head[off::VERSION..off::VERSION + 4].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
        head[off::RECORD_SIZE..off::RECORD_SIZE + 4].copy_from_slice(&RECORD_SIZE.to_le_bytes());
        head[off::CAPACITY..off::CAPACITY + 8].copy_from_slice(&capacity.to_le_bytes());
        head[off::KIND..off::KIND + 4].copy_from_slice(&kind.code().to_le_bytes());
        head[off::MONEY_DECIMALS..off::MONEY_DECIMALS + 4]
            .copy_from_slice(&MONEY_DECIMALS.to_le_bytes());
        head[off::CREATED_WALL_NS..off::CREATED_WALL_NS + 8]
            .copy_from_slice(&crate::clock::wall_ns().to_le_bytes());
        head[off::PRODUCER_PID..off::PRODUCER_PID + 4]
            .copy_from_slice(&std::process::id().to_le_bytes());
        file.write_all(&head)
            .map_err(io_err(&tmp, "write header of"))?;
        file.set_len(file_len(capacity))
            .map_err(io_err(&tmp, "size"))?;
        std::fs::rename(&tmp, path).map_err(io_err(path, "rename into place"))?;
        RingFile::map(
            file,
            path,
            Expect {
                kind: Some(kind),
                capacity: Some(capacity),
            },
        )
    }

    /// Opens and validates an existing ring file.
    pub fn open(path: &Path, expect: Expect) -> Result<RingFile, ShmError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(path, "open"))?;
        RingFile::map(file, path, expect)
    }

    fn map(file: File, path: &Path, expect: Expect) -> Result<RingFile, ShmError> {
        let meta = file.metadata().map_err(io_err(path, "stat"))?;
        let len = meta.len();
        let p = path.to_path_buf();
        if len < HEADER_SIZE as u64 {
            return Err(ShmError::Truncated {
                path: p,
                found: len,
                expected: HEADER_SIZE as u64,
            });
        }
        // SAFETY: the file is a ring file shared with one other process that, by protocol, never
        // truncates it (replacement is by rename, which leaves this inode intact). Concurrent
        // writes by the other process are the point of the mapping; they are read only through
        // atomics and volatile copies.
        let mut map = unsafe { MmapMut::map_mut(&file) }.map_err(io_err(path, "map"))?;
        let base = map.as_mut_ptr();
        let read_u64 = |o: usize| {
            // SAFETY: o + 8 <= HEADER_SIZE <= len, and header offsets are 8-aligned in a
            // page-aligned mapping; the creator wrote these words before renaming the file.
            unsafe { core::ptr::read_volatile(base.add(o).cast::<u64>()) }
        };
        let read_u32 = |o: usize| {
            // SAFETY: as above, 4-aligned offsets inside the header page.
            unsafe { core::ptr::read_volatile(base.add(o).cast::<u32>()) }
        };
        let magic = read_u64(off::MAGIC);
        if magic != MAGIC {
            return Err(ShmError::BadMagic {
                path: p,
                found: magic,
            });
        }
        let version = read_u32(off::VERSION);
        if version != LAYOUT_VERSION {
            return Err(ShmError::BadVersion {
                path: p,
                found: version,
                expected: LAYOUT_VERSION,
            });
        }
        let record_size = read_u32(off::RECORD_SIZE);
        if record_size != RECORD_SIZE {
            return Err(ShmError::BadRecordSize {
                path: p,
                found: record_size,
                expected: RECORD_SIZE,
            });
        }
        let capacity = read_u64(off::CAPACITY);
        if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
            return Err(ShmError::BadCapacity {
                path: p,
                found: capacity,
            });
        }
        if let Some(want) = expect.capacity
            && want != capacity
        {
            return Err(ShmError::CapacityMismatch {
                path: p,
                found: capacity,
                expected: want,
            });
        }
        if len != file_len(capacity) {
            return Err(ShmError::Truncated {
                path: p,
                found: len,
                expected: file_len(capacity),
            });
        }
        let kind_code = read_u32(off::KIND);
        let kind = RingKind::from_code(kind_code).ok_or(ShmError::BadKind {
            path: p.clone(),
            found: kind_code,
        })?;
        if let Some(want) = expect.kind
            && want != kind
        {
            return Err(ShmError::WrongKind {
                path: p,
                found: kind.name(),
                expected: want.name(),
            });
        }
        let money = read_u32(off::MONEY_DECIMALS);
        if money != MONEY_DECIMALS {
            return Err(ShmError::BadMoneyDecimals {
                path: p,
                found: money,
                expected: MONEY_DECIMALS,
            });
        }
        let created_wall_ns = read_u64(off::CREATED_WALL_NS);
        Ok(RingFile {
            _map: map,
            base,
            capacity,
            kind,
            created_wall_ns,
            path: p,
            dev_ino: (meta.dev(), meta.ino()),
        })
    }

    /// The path the file was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Capacity in records (a power of two).
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Ring kind.
    pub fn kind(&self) -> RingKind {
        self.kind
    }

    /// Creation time recorded in the header (wall ns).
    pub fn created_wall_ns(&self) -> u64 {
        self.created_wall_ns
    }

    /// True when the file now at [`path`](Self::path) is no longer the one mapped here (it was
    /// replaced by a new producer) or is gone. One `stat` system call: keep off the hot path.
    pub fn replaced_on_disk(&self) -> bool {
        match std::fs::metadata(&self.path) {
            Ok(m) => (m.dev(), m.ino()) != self.dev_ino,
            Err(_) => true,
        }
    }

    /// An atomic view of the header's 8-byte word at `offset`.
    pub(crate) fn word(&self, offset: usize) -> &AtomicU64 {
        debug_assert!(offset.is_multiple_of(8) && offset + 8 <= HEADER_SIZE);
        // SAFETY: offset is 8-aligned and inside the header page of a live, page-aligned mapping;
        // the returned reference cannot outlive `self`, hence the mapping. All access to this word
        // from both processes is atomic.
        unsafe { AtomicU64::from_ptr(self.base.add(offset).cast::<u64>()) }
    }

    /// An atomic view of the header's 4-byte word at `offset`.
    pub(crate) fn word32(&self, offset: usize) -> &AtomicU32 {
        debug_assert!(offset.is_multiple_of(4) && offset + 4 <= HEADER_SIZE);
        // SAFETY: as in `word`, for a 4-aligned 4-byte word.
        unsafe { AtomicU32::from_ptr(self.base.add(offset).cast::<u32>()) }
    }

    /// Pointer to the first word of the slot holding position `pos`.
    pub(crate) fn slot(&self, pos: u64) -> *mut u64 {
        let index = (pos & (self.capacity - 1)) as usize;
        // SAFETY: index < capacity, so the slot lies within HEADER_SIZE + capacity * 64 = the
        // mapping's length; it is 64-aligned in a page-aligned mapping.
        unsafe {
            self.base
                .add(HEADER_SIZE + index * RECORD_SIZE as usize)
                .cast::<u64>()
        }
    }

    /// The commit word of the slot holding `pos`, as an atomic.
    pub(crate) fn commit_word(&self, pos: u64) -> &AtomicU64 {
        // SAFETY: `slot` returns an 8-aligned pointer inside the live mapping; the commit word is
        // accessed atomically by both sides.
        unsafe { AtomicU64::from_ptr(self.slot(pos)) }
    }

    /// Reads the whole header. Cursors and heartbeats are read with Acquire, pairing with the
    /// Release stores of their writers, so a view never shows a cursor ahead of the records it
    /// covers.
    pub fn header(&self) -> HeaderView {
        HeaderView {
            kind: self.kind,
            capacity: self.capacity,
            created_wall_ns: self.word(off::CREATED_WALL_NS).load(Ordering::Relaxed),
            producer_pid: self.word32(off::PRODUCER_PID).load(Ordering::Relaxed),
            // Acquire: pairs with the Release store in Producer::publish.
            producer_cursor: self.word(off::PRODUCER_CURSOR).load(Ordering::Acquire),
            // Acquire: pairs with the Release store in Consumer::release.
            consumer_cursor: self.word(off::CONSUMER_CURSOR).load(Ordering::Acquire),
            producer_heartbeat_ns: self
                .word(off::PRODUCER_HEARTBEAT_NS)
                .load(Ordering::Relaxed),
            producer_wait_ns: self.word(off::PRODUCER_WAIT_NS).load(Ordering::Relaxed),
            // Acquire: pairs with the Release store in Producer::close.
            producer_closed: self.word(off::PRODUCER_CLOSED).load(Ordering::Acquire),
            consumer_heartbeat_ns: self
                .word(off::CONSUMER_HEARTBEAT_NS)
                .load(Ordering::Relaxed),
            consumer_pid: self.word32(off::CONSUMER_PID).load(Ordering::Relaxed),
        }
    }

    /// Copies the record at `pos` out of the mapping without any protocol check (for `dump` and
    /// diagnostics). The commit word is read with Acquire first.
    pub fn read_raw(&self, pos: u64) -> super::Record {
        let slot = self.slot(pos);
        let mut w = [0u64; 8];
        // Acquire: pairs with the Release store of the commit word in Producer::publish, so the
        // payload words read below are at least as new as the commit word.
        w[0] = self.commit_word(pos).load(Ordering::Acquire);
        for (i, word) in w.iter_mut().enumerate().skip(1) {
            // SAFETY: slot + i (i < 8) is inside the slot; a volatile copy of a u64 never forms a
            // reference to the shared memory.
            *word = unsafe { core::ptr::read_volatile(slot.add(i)) };
        }
        super::Record::from_words(w)
    }
}

impl core::fmt::Debug for RingFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RingFile")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("capacity", &self.capacity)
            .finish()
    }
}

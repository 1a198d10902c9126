//! The writing side of a ring: publishes records, never overwrites unread ones.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_utils::Backoff;

use super::error::ShmError;
use super::file::{Expect, RingFile};
use super::layout::{Record, RingKind, off};
use crate::clock;

/// The ring was full; the record is handed back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full(pub Record);

/// How often the producer refreshes its heartbeat word while publishing or waiting.
const HEARTBEAT_EVERY_NS: u64 = 1_000_000;

/// A producer whose process exists and whose heartbeat is younger than this is considered live;
/// [`Producer::attach`] refuses to become a second producer beside it.
const LIVE_PRODUCER_NS: u64 = 2_000_000_000;

/// True when a process with this pid exists (`kill(pid, 0)` succeeds or is merely not permitted).
fn process_exists(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    match rustix::process::test_kill_process(pid) {
        Ok(()) => true,
        Err(e) => e == rustix::io::Errno::PERM,
    }
}

/// Single producer of a ring file.
///
/// Invariant: `consumer_seen <= cursor <= consumer_seen + capacity`, where `consumer_seen` is a
/// value the consumer cursor had at some point (it only grows), so a slot is written only after
/// the consumer released it. A consumer cursor ahead of the producer's (a corrupt header) counts as
/// an empty ring, never as an arithmetic overflow.
pub struct Producer {
    ring: RingFile,
    cursor: u64,
    consumer_seen: u64,
    wait_ns: u64,
    last_heartbeat_ns: u64,
}

impl Producer {
    /// Creates a fresh ring file at `path` (atomically replacing any old one) and becomes its
    /// producer.
    pub fn create(path: &Path, kind: RingKind, capacity: u64) -> Result<Producer, ShmError> {
        let ring = RingFile::create(path, kind, capacity)?;
        Ok(Producer::start(ring, 0))
    }

    /// Attaches to an existing ring file as its (new) producer and resumes at the header's
    /// producer cursor. The pid word is replaced, which the consumer reports as a restart.
    /// Refused while another live process is still producing into the ring.
    pub fn attach(path: &Path, kind: RingKind) -> Result<Producer, ShmError> {
        let ring = RingFile::open(
            path,
            Expect {
                kind: Some(kind),
                capacity: None,
            },
        )?;
        let h = ring.header();
        let age_ns = clock::now_ns().saturating_sub(h.producer_heartbeat_ns);
        if h.producer_closed == 0
            && h.producer_pid != std::process::id()
            && age_ns < LIVE_PRODUCER_NS
            && process_exists(h.producer_pid)
        {
            return Err(ShmError::LiveProducer {
                path: path.to_path_buf(),
                pid: h.producer_pid,
                age_ms: age_ns / 1_000_000,
            });
        }
        let mut cursor = h.producer_cursor;
        // A producer that died between committing a record and storing its cursor left the
        // record committed: skip it rather than publish that position twice.
        // Acquire: pairs with the Release store of the commit word in Producer::publish.
        while ring.commit_word(cursor).load(Ordering::Acquire) == cursor.wrapping_add(1) {
            cursor = cursor.wrapping_add(1);
        }
        // Release: pairs with the Acquire load of the closed word in RingFile::header; the ring
        // is open again before any new record appears.
        ring.word(off::PRODUCER_CLOSED).store(0, Ordering::Release);
        ring.word32(off::PRODUCER_PID)
            .store(std::process::id(), Ordering::Relaxed);
        Ok(Producer::start(ring, cursor))
    }

    fn start(ring: RingFile, cursor: u64) -> Producer {
        // Acquire: pairs with the Release store in Consumer::release.
        let consumer_seen = ring.word(off::CONSUMER_CURSOR).load(Ordering::Acquire);
        let now = clock::now_ns();
        ring.word(off::PRODUCER_HEARTBEAT_NS)
            .store(now, Ordering::Relaxed);
        // Release: pairs with the Acquire loads in RingFile::header and Consumer::peek.
        ring.word(off::PRODUCER_CURSOR)
            .store(cursor, Ordering::Release);
        Producer {
            ring,
            cursor,
            consumer_seen,
            wait_ns: 0,
            last_heartbeat_ns: now,
        }
    }

    /// The mapped file.
    pub fn ring(&self) -> &RingFile {
        &self.ring
    }

    /// Records published so far (the next record's sequence number).
    pub fn published(&self) -> u64 {
        self.cursor
    }

    /// Total nanoseconds spent waiting on a full ring.
    pub fn wait_ns(&self) -> u64 {
        self.wait_ns
    }

    /// Publishes `record` (its commit and publish stamp are set here) if a slot is free.
    /// Returns the record's sequence number.
    pub fn try_push(&mut self, record: Record) -> Result<u64, Full> {
        self.try_push_stamped(record, None)
    }

    /// As [`try_push`](Self::try_push), but the record's publish stamp is `publish_ns` instead of
    /// the time of writing. A paced publisher passes the time the record was *due* on its
    /// schedule, so that its own lateness counts as latency downstream (no coordinated omission).
    pub fn try_push_at(&mut self, record: Record, publish_ns: u64) -> Result<u64, Full> {
        self.try_push_stamped(record, Some(publish_ns))
    }

    fn try_push_stamped(&mut self, record: Record, stamp: Option<u64>) -> Result<u64, Full> {
        let cap = self.ring.capacity();
        if self.cursor.saturating_sub(self.consumer_seen) >= cap {
            // Acquire: pairs with the Release store in Consumer::release; after it, the consumer
            // has finished copying every slot below the loaded cursor.
            self.consumer_seen = self.ring.word(off::CONSUMER_CURSOR).load(Ordering::Acquire);
            if self.cursor.saturating_sub(self.consumer_seen) >= cap {
                return Err(Full(record));
            }
        }
        let now = match stamp {
            None => clock::now_ns(),
            Some(ns) => ns,
        };
        self.publish(record, now);
        if now.wrapping_sub(self.last_heartbeat_ns) >= HEARTBEAT_EVERY_NS {
            // A given stamp may lie in the past: the heartbeat always says when it was written.
            self.stamp_heartbeat(if stamp.is_some() {
                clock::now_ns()
            } else {
                now
            });
        }
        Ok(self.cursor.wrapping_sub(1))
    }

    /// Publishes `record`, waiting (spin, then yield, then short sleeps) while the ring is full.
    /// The time spent waiting is added to [`wait_ns`](Self::wait_ns). Returns the sequence number.
    pub fn push(&mut self, record: Record) -> u64 {
        self.push_stamped(record, None)
    }

    /// As [`push`](Self::push), with the publish stamp `publish_ns` (see
    /// [`try_push_at`](Self::try_push_at)); time spent waiting on a full ring is then part of the
    /// record's latency.
    pub fn push_at(&mut self, record: Record, publish_ns: u64) -> u64 {
        self.push_stamped(record, Some(publish_ns))
    }

    fn push_stamped(&mut self, record: Record, stamp: Option<u64>) -> u64 {
        let mut record = record;
        let mut waited_since = 0u64;
        let backoff = Backoff::new();
        let mut rounds = 0u32;
        loop {
            match self.try_push_stamped(record, stamp) {
                Ok(seq) => {
                    if waited_since != 0 {
                        self.wait_ns += clock::now_ns().saturating_sub(waited_since);
                        self.ring
                            .word(off::PRODUCER_WAIT_NS)
                            .store(self.wait_ns, Ordering::Relaxed);
                    }
                    return seq;
                }
                Err(Full(r)) => {
                    record = r;
                    if waited_since == 0 {
                        waited_since = clock::now_ns();
                    }
                    if !backoff.is_completed() {
                        backoff.snooze();
                    } else {
                        rounds += 1;
                        if rounds < 64 {
                            std::thread::yield_now();
                        } else {
                            std::thread::sleep(Duration::from_micros(50));
                        }
                        if rounds.is_multiple_of(64) {
                            // Still alive while blocked on a slow consumer.
                            self.stamp_heartbeat(clock::now_ns());
                        }
                    }
                }
            }
        }
    }

    fn publish(&mut self, record: Record, now: u64) {
        let seq = self.cursor;
        let mut words = record.to_words();
        words[0] = seq.wrapping_add(1);
        words[1] = now;
        let slot = self.ring.slot(seq);
        for (i, w) in words.iter().enumerate().skip(1) {
            // SAFETY: slot + i (i < 8) lies in this slot; the consumer released the slot (checked
            // in try_push) and will not read these words before the commit store below.
            unsafe { core::ptr::write_volatile(slot.add(i), *w) };
        }
        // Release: publishes the payload words; pairs with the Acquire load of the commit word in
        // Consumer::peek and RingFile::read_raw.
        self.ring
            .commit_word(seq)
            .store(words[0], Ordering::Release);
        self.cursor = seq.wrapping_add(1);
        // Release: pairs with the Acquire loads of the producer cursor in Consumer::peek and
        // RingFile::header (a cursor is never seen ahead of its committed records).
        self.ring
            .word(off::PRODUCER_CURSOR)
            .store(self.cursor, Ordering::Release);
    }

    /// Refreshes the heartbeat word with the current time.
    pub fn heartbeat(&mut self) {
        self.stamp_heartbeat(clock::now_ns());
    }

    fn stamp_heartbeat(&mut self, now: u64) {
        self.last_heartbeat_ns = now;
        // Relaxed: a liveness stamp only; readers order nothing else by it.
        self.ring
            .word(off::PRODUCER_HEARTBEAT_NS)
            .store(now, Ordering::Relaxed);
    }

    /// Marks the ring closed: the consumer knows no record will follow the last one.
    pub fn close(mut self) {
        self.heartbeat();
        // Release: pairs with the Acquire load of the closed word in RingFile::header; a reader
        // that sees it closed also sees every record before it.
        self.ring
            .word(off::PRODUCER_CLOSED)
            .store(self.cursor.wrapping_add(1), Ordering::Release);
    }
}

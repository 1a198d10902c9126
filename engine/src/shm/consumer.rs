//! The reading side of a ring: copies committed records out and releases their slots.

use std::path::Path;
use std::sync::atomic::{Ordering, fence};

use super::error::ShmError;
use super::file::{Expect, RingFile};
use super::layout::{Record, off};
use crate::clock;

/// What the slot at the consumer's position holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// The expected record, copied out intact.
    Ready(Record),
    /// Nothing published at this position yet.
    Empty,
    /// The producer's cursor says this position was published, but the slot's commit word does
    /// not match (a producer died mid-write, or the file was corrupted), or the commit word changed
    /// while the record was being copied. `commit` is the word found.
    Torn {
        /// Commit word found in the slot.
        commit: u64,
    },
    /// The slot holds a later lap's record: the producer overwrote records this consumer never
    /// read. `seq` is the sequence number found (a gap of `seq - position` records).
    Overrun {
        /// Sequence number found.
        seq: u64,
    },
}

/// Single consumer of a ring file.
///
/// Invariant: `released <= cursor`; `released` is the last value stored to the header's consumer
/// cursor, so the producer may overwrite only slots below it.
pub struct Consumer {
    ring: RingFile,
    cursor: u64,
    released: u64,
}

impl Consumer {
    /// Opens and validates `path`, registers this process as the consumer and resumes at the
    /// header's consumer cursor.
    pub fn open(path: &Path, expect: Expect) -> Result<Consumer, ShmError> {
        let ring = RingFile::open(path, expect)?;
        Ok(Consumer::from_ring(ring))
    }

    /// Becomes the consumer of an already-mapped ring.
    pub fn from_ring(ring: RingFile) -> Consumer {
        // Acquire: pairs with the Release store in Consumer::release of a previous consumer.
        let cursor = ring.word(off::CONSUMER_CURSOR).load(Ordering::Acquire);
        ring.word32(off::CONSUMER_PID)
            .store(std::process::id(), Ordering::Relaxed);
        ring.word(off::CONSUMER_HEARTBEAT_NS)
            .store(clock::now_ns(), Ordering::Relaxed);
        Consumer {
            ring,
            cursor,
            released: cursor,
        }
    }

    /// The mapped file.
    pub fn ring(&self) -> &RingFile {
        &self.ring
    }

    /// Position (sequence number) of the next record to read.
    pub fn position(&self) -> u64 {
        self.cursor
    }

    /// Inspects the slot at the current position without advancing.
    pub fn peek(&self) -> Slot {
        let pos = self.cursor;
        let want = pos.wrapping_add(1);
        if want == 0 {
            // Sequence space exhausted: reachable only through a corrupt cursor, and a commit word
            // of 0 means "never written", so nothing here can be ready.
            return Slot::Empty;
        }
        let commit_word = self.ring.commit_word(pos);
        // Acquire: pairs with the Release store of the commit word in Producer::publish; the
        // payload words read below were written before it.
        let mut commit = commit_word.load(Ordering::Acquire);
        if commit != want {
            // Acquire: pairs with the Release store of the producer cursor in Producer::publish.
            let published = self.ring.word(off::PRODUCER_CURSOR).load(Ordering::Acquire);
            if published <= pos {
                return Slot::Empty;
            }
            // The cursor covers `pos`, so the commit store that preceded it is visible now; the
            // first load may have raced with it.
            // Acquire: pairs with the Release store of the commit word in Producer::publish.
            commit = commit_word.load(Ordering::Acquire);
            if commit != want {
                let cap = self.ring.capacity();
                return if commit > want && (commit - want).is_multiple_of(cap) {
                    Slot::Overrun { seq: commit - 1 }
                } else {
                    Slot::Torn { commit }
                };
            }
        }
        let slot = self.ring.slot(pos);
        let mut w = [0u64; 8];
        w[0] = commit;
        for (i, word) in w.iter_mut().enumerate().skip(1) {
            // SAFETY: slot + i (i < 8) lies inside the slot; the producer does not write this
            // slot again before we release it (checked again below).
            *word = unsafe { core::ptr::read_volatile(slot.add(i)) };
        }
        // Acquire fence: orders the payload reads above before the re-check below, so a
        // producer that broke protocol and rewrote the slot meanwhile is caught.
        fence(Ordering::Acquire);
        let again = commit_word.load(Ordering::Relaxed);
        if again != commit {
            return Slot::Torn { commit: again };
        }
        Slot::Ready(Record::from_words(w))
    }

    /// Moves past the current position (after a `Ready` or `Torn` slot).
    pub fn advance(&mut self) {
        self.cursor = self.cursor.wrapping_add(1);
    }

    /// Jumps forward to `seq` (after an `Overrun`). Never moves backwards.
    pub fn skip_to(&mut self, seq: u64) {
        self.cursor = self.cursor.max(seq);
    }

    /// Hands every slot below the current position back to the producer.
    pub fn release(&mut self) {
        if self.released != self.cursor {
            self.released = self.cursor;
            // Release: our copies of those slots are complete; pairs with the Acquire load of the
            // consumer cursor in Producer::try_push.
            self.ring
                .word(off::CONSUMER_CURSOR)
                .store(self.cursor, Ordering::Release);
        }
    }

    /// Hands every slot below `limit` (and below the current position) back to the producer;
    /// never takes back a slot already released.
    pub fn release_to(&mut self, limit: u64) {
        let to = limit.min(self.cursor);
        if to > self.released {
            self.released = to;
            // Release: our copies of those slots are complete; pairs with the Acquire load of the
            // consumer cursor in Producer::try_push.
            self.ring
                .word(off::CONSUMER_CURSOR)
                .store(to, Ordering::Release);
        }
    }

    /// Stamps the consumer heartbeat word with `now_ns`.
    pub fn heartbeat(&self, now_ns: u64) {
        // Relaxed: a liveness stamp for `brink-feed stat`; it orders nothing.
        self.ring
            .word(off::CONSUMER_HEARTBEAT_NS)
            .store(now_ns, Ordering::Relaxed);
    }
}

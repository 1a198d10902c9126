//! How far the journal has got, shared by the three stages and the snapshot writer.
//!
//! The emit stage journals input entries in batches (staged, then written with the next output
//! or when it is idle). After each write it publishes here how many inputs the file holds
//! complete (with every output they caused) and the feed sequence number after the last feed
//! record it holds. Two readers depend on it:
//!
//! - **ingest** releases feed slots to the producer only up to that sequence number (or up to
//!   its read position once every record it handed on is journaled), so a record the journal does
//!   not hold yet is still in the feed ring after a crash and is read again on restart;
//! - **the snapshot writer** installs a snapshot only once the journal holds every input the
//!   snapshot applied, so a snapshot is never ahead of the journal.

use crate::ingest::{FeedBody, FeedEvent};
use crate::journal::{Journal, JournalError};
// Straight from std rather than `crate::sync`: this state is shared by long-lived threads of the
// live engine, outside the ring that loom models (as are `live`'s stop flags).
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::entry::Entry;

/// Staged input bytes that force a write even without an output (about 1,000 inputs).
const FLUSH_BYTES: usize = 64 * 1024;

/// See the module docs.
#[derive(Debug, Default)]
pub struct JournalProgress {
    /// Complete inputs in the journal file: the entry and every output it caused.
    inputs: AtomicU64,
    /// Feed sequence number after the last feed record in the journal file.
    next_feed_seq: AtomicU64,
    /// The journal failed: nothing more will be written.
    failed: AtomicBool,
}

impl JournalProgress {
    /// Progress starting from what a restart found.
    pub fn new(inputs: u64, next_feed_seq: u64) -> JournalProgress {
        JournalProgress {
            inputs: AtomicU64::new(inputs),
            next_feed_seq: AtomicU64::new(next_feed_seq),
            failed: AtomicBool::new(false),
        }
    }

    /// Complete inputs in the journal file (the entry and every output it caused).
    pub fn inputs(&self) -> u64 {
        // Acquire: pairs with the Release store in InputLog::written.
        self.inputs.load(Ordering::Acquire)
    }

    /// The feed sequence number below which every feed record is journaled or was refused.
    pub fn next_feed_seq(&self) -> u64 {
        // Acquire: pairs with the Release store in InputLog::written.
        self.next_feed_seq.load(Ordering::Acquire)
    }

    /// Whether the journal failed.
    pub fn failed(&self) -> bool {
        // Acquire: pairs with the Release store in InputLog::fail.
        self.failed.load(Ordering::Acquire)
    }
}

/// The emit stage's bookkeeping of input entries: what is staged, what is written, which input
/// still waits for its input-done entry.
#[derive(Debug)]
pub struct InputLog {
    progress: Arc<JournalProgress>,
    /// Input entries staged or written.
    inputs: u64,
    /// Whether the last input is still open: the risk stage has not closed it with its
    /// input-done entry, so outputs may follow (incomplete).
    open: bool,
    /// Whether an output was journaled since the last input entry (its input-done entry is then
    /// journaled too).
    had_output: bool,
    /// Entries staged since the last write.
    staged: bool,
    /// Feed seq after the last staged feed record, if one is staged.
    staged_next_feed: Option<u64>,
}

impl InputLog {
    /// Bookkeeping publishing into `progress`, starting from its current values.
    pub fn new(progress: Arc<JournalProgress>) -> InputLog {
        let inputs = progress.inputs();
        InputLog {
            progress,
            inputs,
            open: false,
            had_output: false,
            staged: false,
            staged_next_feed: None,
        }
    }

    /// The shared progress.
    pub fn progress(&self) -> &Arc<JournalProgress> {
        &self.progress
    }

    /// Stages the input entry of `event`; writes the batch when it has grown large. The input
    /// stays open (not complete) until [`close`](Self::close) is called for it.
    pub fn stage(&mut self, journal: &mut Journal, event: &FeedEvent) -> Result<(), JournalError> {
        journal.stage(&Entry::Input(*event).to_bytes())?;
        self.inputs += 1;
        self.open = true;
        self.had_output = false;
        self.staged = true;
        if matches!(event.body, FeedBody::Input(_)) {
            self.staged_next_feed = Some(event.seq.wrapping_add(1));
        }
        if journal.staged_bytes() >= FLUSH_BYTES {
            journal.flush()?;
            self.written();
        }
        Ok(())
    }

    /// Stages a reload entry's journal record ([`super::entry::reload_record`]): it counts as
    /// an input, open until [`close`](Self::close)d like one.
    pub fn stage_reload(
        &mut self,
        journal: &mut Journal,
        record: &[u8],
    ) -> Result<(), JournalError> {
        journal.stage(record)?;
        self.inputs += 1;
        self.open = true;
        self.had_output = false;
        self.staged = true;
        Ok(())
    }

    /// The risk stage has passed on every output of the current input: stages its input-done
    /// entry when it had outputs (an input without outputs needs none), and the input is
    /// complete once that is written.
    pub fn close(&mut self, journal: &mut Journal, seq: u64) -> Result<(), JournalError> {
        if self.had_output {
            journal.stage(&Entry::InputDone { seq }.to_bytes())?;
        }
        self.open = false;
        self.had_output = false;
        self.staged = true;
        Ok(())
    }

    /// An output was journaled (appended, so everything staged before it is written too).
    pub fn output_written(&mut self) {
        self.had_output = true;
        self.staged = true;
        self.written();
    }

    /// Writes the staged entries, if any, and publishes the progress.
    pub fn flush(&mut self, journal: &mut Journal) -> Result<(), JournalError> {
        if journal.staged() > 0 {
            journal.flush()?;
        }
        self.written();
        Ok(())
    }

    /// Everything staged reached the file (after a successful flush or append): publishes it.
    pub fn written(&mut self) {
        if !self.staged {
            return;
        }
        self.staged = false;
        if let Some(next) = self.staged_next_feed.take() {
            // Release: the journal write above happened before; pairs with the Acquire load in
            // JournalProgress::next_feed_seq (ingest's release gate).
            self.progress.next_feed_seq.store(next, Ordering::Release);
        }
        let complete = self.inputs - u64::from(self.open);
        // Release: pairs with the Acquire load in JournalProgress::inputs (snapshot writer).
        self.progress.inputs.store(complete, Ordering::Release);
    }

    /// The journal failed: staged entries are lost and nothing more will be written.
    pub fn fail(&mut self) {
        self.staged = false;
        self.staged_next_feed = None;
        // Release: pairs with the Acquire load in JournalProgress::failed.
        self.progress.failed.store(true, Ordering::Release);
    }
}

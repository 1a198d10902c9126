//! The emit stage on the runtime: journals each input risk consumed and each decision, then
//! writes the decision to the order ring.
//!
//! The journal append comes first: an order that could not be journaled is never published. On a
//! journal failure (for example a full file system) the stage stops emitting, counts every
//! decision it refuses from then on, and reports the failure; nothing is published that the
//! journal does not hold. Input entries are staged and written with the next decision, when
//! the stage is idle, or in 64 KiB batches; [`crate::recovery::InputLog`] publishes how far the
//! journal has got (the feed is released and snapshots installed only up to there).
//!
//! A full order ring (its consumer, the order gateway, stopped or fell a whole ring behind) is
//! waited out, never overwritten or dropped: the stage counts the episode
//! ([`EmitCounters::ring_full`]) and the time waited ([`EmitCounters::ring_wait_ns`]), logs a
//! warning naming the ring when the wait starts, and another with the time waited when the
//! consumer made room. The records then follow in their order.

use std::sync::{Arc, Mutex};

use crate::journal::{Journal, JournalError};
use crate::recovery::{Entry, InputLog, JournalProgress};
use crate::runtime::Sink;
use crate::shm::{Full, Producer, Record};
use crate::telemetry::{Hop, Recorder};

use super::Outbound;

/// What the emit stage did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmitCounters {
    /// Records journaled and written to the order ring.
    pub emitted: u64,
    /// Of those, by tag: margin calls, liquidation orders, ADL orders, settlements, alerts.
    pub by_kind: [u64; 5],
    /// Decisions refused because the journal had failed.
    pub refused: u64,
    /// The journal failure, if any.
    pub journal_error: Option<String>,
    /// Nanoseconds spent waiting for room in the order ring.
    pub ring_wait_ns: u64,
    /// Times a record found the order ring full and waited for its consumer.
    pub ring_full: u64,
}

/// Journal + order ring writer; see the module docs.
pub struct EmitSink {
    journal: Journal,
    producer: Producer,
    recorder: Option<Recorder>,
    counters: EmitCounters,
    shared: Arc<Mutex<EmitCounters>>,
    since_publish: u32,
    inputs: InputLog,
    /// Where the parameters of reloads wait to be journaled with their reload entries.
    control: Option<Arc<crate::ops::RiskControl>>,
}

impl EmitSink {
    /// A sink over an open journal and order-ring producer. Counters are published into
    /// `shared` every 256 records and at the end.
    pub fn new(
        journal: Journal,
        producer: Producer,
        recorder: Option<Recorder>,
        shared: Arc<Mutex<EmitCounters>>,
    ) -> EmitSink {
        EmitSink {
            journal,
            producer,
            recorder,
            counters: EmitCounters::default(),
            shared,
            since_publish: 0,
            inputs: InputLog::new(Arc::new(JournalProgress::default())),
            control: None,
        }
    }

    /// Journals reloads with the parameters the ops thread posted to `control`.
    pub fn with_control(mut self, control: Arc<crate::ops::RiskControl>) -> EmitSink {
        self.control = Some(control);
        self
    }

    /// Journals a reload entry with its parameters (it counts as an input). Parameters that
    /// cannot be found stop the journal: a restart could not apply the reload again.
    fn stage_reload(&mut self, after_seq: u64, generation: u64) {
        let params = self
            .control
            .as_ref()
            .and_then(|c| c.take_params_bytes(generation));
        let Some(params) = params else {
            tracing::error!(
                generation,
                "the parameters of reload {generation} are not at hand: emitting stopped"
            );
            self.counters.journal_error = Some(format!(
                "the parameters of reload {generation} could not be journaled"
            ));
            self.inputs.fail();
            self.publish();
            return;
        };
        let record = crate::recovery::entry::reload_record(after_seq, generation, &params);
        if let Err(e) = self.inputs.stage_reload(&mut self.journal, &record) {
            self.journal_failed(&e);
        }
    }

    /// Publishes the journal's progress into `progress` (read by ingest's release gate and the
    /// snapshot writer), starting from its current values.
    pub fn with_progress(mut self, progress: Arc<JournalProgress>) -> EmitSink {
        self.inputs = InputLog::new(progress);
        self
    }

    fn journal_failed(&mut self, e: &JournalError) {
        tracing::error!(error = %e, "journal write failed: emitting stopped");
        self.counters.journal_error = Some(e.to_string());
        self.inputs.fail();
        self.publish();
    }

    fn publish(&mut self) {
        self.counters.ring_wait_ns = self.producer.wait_ns();
        if let Ok(mut c) = self.shared.try_lock() {
            c.clone_from(&self.counters);
        }
        self.since_publish = 0;
    }
}

impl EmitSink {
    /// Publishes `record` into a full order ring: warns, waits for the consumer to make room
    /// (counted), and says when it did. Nothing is dropped; off the hot path by definition.
    fn wait_for_room(&mut self, record: Record) {
        self.counters.ring_full += 1;
        let h = self.producer.ring().header();
        let ring = self.producer.ring().path().display().to_string();
        tracing::warn!(
            ring = %ring,
            capacity = h.capacity,
            published = h.producer_cursor,
            consumed = h.consumer_cursor,
            consumer_pid = h.consumer_pid,
            episode = self.counters.ring_full,
            "order ring full: waiting for its consumer to read (nothing is dropped)"
        );
        // Live views (brink status, tests) see the wait while it lasts.
        self.publish();
        let before_ns = self.producer.wait_ns();
        self.producer.push(record);
        let waited_ms = self.producer.wait_ns().saturating_sub(before_ns) / 1_000_000;
        tracing::warn!(
            ring = %ring,
            waited_ms,
            episode = self.counters.ring_full,
            "order ring has room again: emitting resumed"
        );
    }
}

impl Sink for EmitSink {
    type In = Outbound;

    fn consume(&mut self, item: Outbound) {
        let output = match item.entry {
            Entry::Output(o) => o,
            Entry::Input(event) => {
                if self.counters.journal_error.is_none()
                    && let Err(e) = self.inputs.stage(&mut self.journal, &event)
                {
                    self.journal_failed(&e);
                }
                return;
            }
            // The risk stage closes every input; its input-done entry is journaled only when
            // the input had outputs.
            Entry::InputDone { seq } => {
                if self.counters.journal_error.is_none()
                    && let Err(e) = self.inputs.close(&mut self.journal, seq)
                {
                    self.journal_failed(&e);
                }
                return;
            }
            Entry::Reload {
                after_seq,
                generation,
            } => {
                if self.counters.journal_error.is_none() {
                    self.stage_reload(after_seq, generation);
                }
                return;
            }
            Entry::RingEpoch { .. } => return,
        };
        let emit_in = match self.recorder.as_mut() {
            Some(r) => r.stamp_since(Hop::RiskEmit, item.handoff_ns),
            None => 0,
        };
        if self.counters.journal_error.is_some() {
            self.counters.refused += 1;
            return;
        }
        let record = output.encode();
        if let Err(e) = self.journal.append(&record.to_le_bytes()) {
            self.counters.refused += 1;
            self.journal_failed(&e);
            return;
        }
        self.inputs.output_written();
        if let Err(Full(record)) = self.producer.try_push(record) {
            self.wait_for_room(record);
        }
        self.counters.emitted += 1;
        let kind = usize::from(
            record
                .tag
                .saturating_sub(crate::shm::output::TAG_MARGIN_CALL),
        )
        .min(4);
        self.counters.by_kind[kind] += 1;
        if let Some(r) = self.recorder.as_mut() {
            let written = r.stamp_since(Hop::Emit, emit_in);
            if item.publish_ns != 0 {
                r.record_span(Hop::E2e, item.publish_ns, written);
            }
        }
        self.since_publish += 1;
        if self.since_publish >= 256 {
            self.publish();
        }
    }

    fn idle(&mut self) {
        if self.counters.journal_error.is_none()
            && let Err(e) = self.inputs.flush(&mut self.journal)
        {
            self.journal_failed(&e);
        }
        self.producer.heartbeat();
        if let Some(r) = self.recorder.as_mut() {
            r.poll();
        }
        if self.since_publish > 0 {
            self.publish();
        }
    }

    fn finish(&mut self) {
        if self.counters.journal_error.is_none() {
            match self.journal.sync() {
                Ok(()) => self.inputs.written(),
                Err(e) => self.journal_failed(&e),
            }
        }
        if let Some(r) = self.recorder.as_mut() {
            r.flush();
        }
        self.producer.heartbeat();
        self.publish();
    }
}

//! The ingest stage on the runtime: polls the feed ring and hands validated events to risk.

use crate::clock;
use crate::ingest::{Ingest, IngestCounters, PollStatus};
use crate::runtime::{Emit, Poll, Source};
use crate::telemetry::{Hop, Recorder};

use super::Inbound;

/// Polls a feed ring through [`Ingest`]; see the module docs of [`super`].
pub struct IngestSource {
    ingest: Ingest,
    recorder: Option<Recorder>,
    /// End when the producer closes its ring (a replay), rather than wait for a new one.
    stop_on_close: bool,
    scratch: Vec<crate::ingest::FeedEvent>,
    counters: std::sync::Arc<std::sync::Mutex<IngestCounters>>,
    polls: u64,
    /// Records read since counters were last published (published at the next idle poll).
    unpublished: bool,
}

impl IngestSource {
    /// Wraps an open [`Ingest`]. Counters are published (off the hot path, every 1024 polls and
    /// at the end) into `counters`.
    pub fn new(
        ingest: Ingest,
        recorder: Option<Recorder>,
        stop_on_close: bool,
        counters: std::sync::Arc<std::sync::Mutex<IngestCounters>>,
    ) -> IngestSource {
        IngestSource {
            ingest,
            recorder,
            stop_on_close,
            scratch: Vec::with_capacity(crate::runtime::BATCH),
            counters,
            polls: 0,
            unpublished: false,
        }
    }

    fn publish_counters(&self) {
        if let Ok(mut c) = self.counters.try_lock() {
            *c = self.ingest.counters();
        }
    }
}

impl Source for IngestSource {
    type Out = Inbound;

    fn poll<E: Emit<Inbound>>(&mut self, out: &mut E) -> Poll {
        self.polls += 1;
        if self.polls.is_multiple_of(1024) {
            self.publish_counters();
        }
        let mut batch = std::mem::take(&mut self.scratch);
        batch.clear();
        let status = self
            .ingest
            .poll(crate::runtime::BATCH, |event| batch.push(event));
        for event in batch.drain(..) {
            let handoff_ns = match self.recorder.as_mut() {
                Some(r) => {
                    if event.publish_ns != 0 {
                        r.record_span(Hop::Feed, event.publish_ns, event.receive_ns);
                    }
                    clock::now_ns()
                }
                None => 0,
            };
            out.emit(Inbound { event, handoff_ns });
        }
        self.scratch = batch;
        if let Some(r) = self.recorder.as_mut() {
            r.poll();
        }
        if matches!(status, PollStatus::Data(_)) {
            self.unpublished = true;
        } else if std::mem::take(&mut self.unpublished) {
            // Idle: the operator view catches up now rather than after 1024 polls.
            self.publish_counters();
        }
        match status {
            PollStatus::Data(_) => Poll::Progress,
            PollStatus::Closed if self.stop_on_close => Poll::Done,
            PollStatus::Empty | PollStatus::Stale | PollStatus::Closed => Poll::Idle,
        }
    }

    fn finish<E: Emit<Inbound>>(&mut self, _out: &mut E) {
        self.publish_counters();
        if let Some(r) = self.recorder.as_mut() {
            r.flush();
        }
    }
}

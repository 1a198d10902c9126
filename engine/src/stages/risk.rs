//! The risk stage on the runtime: applies each event to the [`RiskEngine`] and hands its
//! decisions to emit.

use crate::recovery::{Entry, SnapshotTaker};
use crate::risk::{RiskCounters, RiskEngine};
use crate::runtime::{Emit, Stage};
use crate::telemetry::{Hop, Recorder};

use super::{Inbound, Outbound};

/// Owns the [`RiskEngine`]; see the module docs of [`super`].
pub struct RiskStage {
    engine: RiskEngine,
    recorder: Option<Recorder>,
    scratch: Vec<crate::shm::Output>,
    report: std::sync::Arc<std::sync::Mutex<Option<RiskEngine>>>,
    counters: std::sync::Arc<std::sync::Mutex<RiskCounters>>,
    processed: u64,
    /// Reload mailbox and gauges ([`crate::ops::control`]), if an ops thread listens.
    control: Option<std::sync::Arc<crate::ops::RiskControl>>,
    /// Seq of the last input applied.
    last_seq: u64,
    /// `processed` when counters were last published.
    published: u64,
    snapshots: Option<SnapshotTaker>,
}

impl RiskStage {
    /// Wraps an engine. On finish the engine is handed back through `report` (for the final
    /// summary); counters are published every 1024 events into `counters`.
    pub fn new(
        engine: RiskEngine,
        recorder: Option<Recorder>,
        report: std::sync::Arc<std::sync::Mutex<Option<RiskEngine>>>,
        counters: std::sync::Arc<std::sync::Mutex<RiskCounters>>,
    ) -> RiskStage {
        RiskStage {
            engine,
            recorder,
            scratch: Vec::with_capacity(64),
            report,
            counters,
            processed: 0,
            control: None,
            last_seq: 0,
            published: 0,
            snapshots: None,
        }
    }

    /// Lets an ops thread reload tiers and thresholds and read the gauges (see
    /// [`crate::ops::control`]): a waiting reload is applied every
    /// [`CHECK_EVERY`](crate::ops::control::CHECK_EVERY) inputs and when idle.
    pub fn with_control(mut self, control: std::sync::Arc<crate::ops::RiskControl>) -> RiskStage {
        self.control = Some(control);
        self
    }

    /// Applies a waiting reload between two inputs; its outputs go to emit like any decision.
    fn apply_reload<E: Emit<Outbound>>(&mut self, out: &mut E) {
        let Some(control) = self.control.as_ref() else {
            return;
        };
        if !control.is_pending() {
            return;
        }
        let handoff_ns = crate::clock::now_ns();
        control.apply_pending(&mut self.engine, self.last_seq, &mut |output| {
            out.emit(Outbound {
                entry: Entry::Output(output),
                publish_ns: 0,
                handoff_ns,
            })
        });
        self.publish();
    }

    /// Publishes counters and gauges (never waits for a reader).
    fn publish(&mut self) {
        self.published = self.processed;
        if let Ok(mut c) = self.counters.try_lock() {
            *c = self.engine.counters();
        }
        if let Some(control) = self.control.as_ref() {
            control.publish(&self.engine, self.last_seq, self.processed);
        }
    }

    /// Takes snapshots of the engine between inputs (see [`crate::recovery::taker`]).
    pub fn with_snapshots(mut self, taker: SnapshotTaker) -> RiskStage {
        self.snapshots = Some(taker);
        self
    }
}

impl Stage for RiskStage {
    type In = Inbound;
    type Out = Outbound;

    fn process<E: Emit<Outbound>>(&mut self, item: Inbound, out: &mut E) {
        let risk_in = match self.recorder.as_mut() {
            Some(r) => r.stamp_since(Hop::IngestRisk, item.handoff_ns),
            None => 0,
        };
        let mut outputs = std::mem::take(&mut self.scratch);
        outputs.clear();
        // Ingest's alerts (gap, stale or restarted producer, held prices) go to the order ring
        // for the operator, in order with the decisions.
        crate::recovery::apply(&mut self.engine, &item.event, &mut |o| outputs.push(o));
        if let Some(taker) = self.snapshots.as_mut() {
            taker.after(&self.engine, &item.event);
        }
        let handoff_ns = match self.recorder.as_mut() {
            Some(r) => r.stamp_since(Hop::Risk, risk_in),
            None => 0,
        };
        // The input is journaled before the decisions it caused.
        out.emit(Outbound {
            entry: Entry::Input(item.event),
            publish_ns: item.event.publish_ns,
            handoff_ns,
        });
        let any = !outputs.is_empty();
        for output in outputs.drain(..) {
            out.emit(Outbound {
                entry: Entry::Output(output),
                publish_ns: item.event.publish_ns,
                handoff_ns,
            });
        }
        if any {
            out.emit(Outbound {
                entry: Entry::InputDone {
                    seq: item.event.seq,
                },
                publish_ns: 0,
                handoff_ns,
            });
        }
        self.scratch = outputs;
        self.processed += 1;
        if matches!(item.event.body, crate::ingest::FeedBody::Input(_)) {
            self.last_seq = item.event.seq;
        }
        if self.processed.is_multiple_of(1024) {
            self.publish();
        }
        if self
            .processed
            .is_multiple_of(crate::ops::control::CHECK_EVERY)
        {
            self.apply_reload(out);
        }
    }

    fn idle<E: Emit<Outbound>>(&mut self, out: &mut E) {
        if let Some(r) = self.recorder.as_mut() {
            r.poll();
        }
        self.apply_reload(out);
        if self.published != self.processed {
            self.publish();
        }
    }

    fn finish<E: Emit<Outbound>>(&mut self, out: &mut E) {
        self.apply_reload(out);
        if let Ok(mut c) = self.counters.lock() {
            *c = self.engine.counters();
        }
        if let Some(control) = self.control.as_ref() {
            control.publish_final(&self.engine, self.last_seq, self.processed);
        }
        if let Some(r) = self.recorder.as_mut() {
            r.flush();
        }
        if let Some(taker) = self.snapshots.as_mut() {
            taker.finish(&self.engine);
        }
        let engine = std::mem::replace(
            &mut self.engine,
            RiskEngine::new(
                crate::margin::InstrumentTable::new(),
                crate::margin::MarkPrices::new(0),
                Vec::new(),
                crate::risk::RiskConfig::default(),
                crate::risk::Scan::Index,
            ),
        );
        if let Ok(mut slot) = self.report.lock() {
            *slot = Some(engine);
        }
    }
}

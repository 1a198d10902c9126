//! The risk stage on the runtime: applies each event to the risk [`Shards`] and hands their
//! decisions to emit.
//!
//! The shards run inline, one after another on this stage's thread (one shard: the unsharded
//! engine), or on threads of their own ([`super::shards`]), as the [`ShardPlan`] says. Either
//! way emit receives, for every input: its input entry, the outputs of each shard in shard
//! order, then an input-done entry that closes it (journaled only when there were outputs).

use std::sync::{Arc, Mutex};

use super::shards::{MergeCx, ShardPool};
use super::{Inbound, Outbound};
use crate::ops::RiskControl;
use crate::ops::control::ReloadApplied;
use crate::recovery::{Entry, SnapshotTaker};
use crate::risk::RiskCounters;
use crate::risk::shard::{ShardSummary, Shards};
use crate::runtime::{Emit, ShardPlan, Stage, WaitStrategy};
use crate::telemetry::{Hop, Recorder};

/// Where the shards run.
enum Exec {
    /// On this stage's thread.
    Inline(Shards),
    /// On threads of their own.
    Threads(ShardPool),
    /// Handed back (after `finish`).
    Finished,
}

/// Owns the risk shards; see the module docs of [`super`].
pub struct RiskStage {
    exec: Exec,
    /// The inline shards' recorder (shard threads have their own).
    recorder: Option<Recorder>,
    scratch: Vec<crate::shm::Output>,
    report: Arc<Mutex<Option<Shards>>>,
    counters: Arc<Mutex<RiskCounters>>,
    processed: u64,
    /// Reload mailbox and gauges ([`crate::ops::control`]), if an ops thread listens.
    control: Option<Arc<RiskControl>>,
    /// Seq of the last input applied.
    last_seq: u64,
    /// `processed` when counters were last published.
    published: u64,
    /// When counters were last published.
    published_ns: u64,
    snapshots: Option<SnapshotTaker>,
}

impl RiskStage {
    /// Runs `shards` inline on the stage's thread. On finish the shards are handed back through
    /// `report` (for the final summary); counters are published every 1024 events into
    /// `counters`.
    pub fn new(
        shards: Shards,
        recorder: Option<Recorder>,
        report: Arc<Mutex<Option<Shards>>>,
        counters: Arc<Mutex<RiskCounters>>,
    ) -> RiskStage {
        RiskStage {
            exec: Exec::Inline(shards),
            recorder,
            scratch: Vec::with_capacity(64),
            report,
            counters,
            processed: 0,
            control: None,
            last_seq: 0,
            published: 0,
            published_ns: 0,
            snapshots: None,
        }
    }

    /// Moves the shards onto threads of their own when `plan` gives them threads (each with
    /// one of `recorders`, rings of `capacity` items, waiting with `wait` where the plan does
    /// not say); otherwise they stay inline.
    pub fn on_threads(
        mut self,
        plan: &ShardPlan,
        recorders: Vec<Option<Recorder>>,
        capacity: usize,
        wait: WaitStrategy,
    ) -> std::io::Result<RiskStage> {
        if !plan.threaded() {
            return Ok(self);
        }
        let Exec::Inline(shards) = std::mem::replace(&mut self.exec, Exec::Finished) else {
            return Ok(self);
        };
        self.exec = Exec::Threads(ShardPool::spawn(shards, plan, recorders, capacity, wait)?);
        Ok(self)
    }

    /// Lets an ops thread reload tiers and thresholds and read the gauges (see
    /// [`crate::ops::control`]): a waiting reload is applied every
    /// [`CHECK_EVERY`](crate::ops::control::CHECK_EVERY) inputs and when idle.
    pub fn with_control(mut self, control: Arc<RiskControl>) -> RiskStage {
        self.control = Some(control);
        self
    }

    /// Takes snapshots of the shards between inputs (see [`crate::recovery::taker`]).
    pub fn with_snapshots(mut self, taker: SnapshotTaker) -> RiskStage {
        self.snapshots = Some(taker);
        self
    }

    /// Applies a waiting reload between two inputs. It goes to emit like an input: its entry
    /// (journaled with the parameters, so a restart applies it at the same place), the
    /// decisions it causes, its close.
    fn apply_reload<E: Emit<Outbound>>(&mut self, out: &mut E) {
        let Some(control) = self.control.as_ref() else {
            return;
        };
        if !control.is_pending() {
            return;
        }
        let Some(request) = control.take_pending() else {
            return;
        };
        if let Some(taker) = self.snapshots.as_mut() {
            taker.reloaded();
        }
        match &mut self.exec {
            Exec::Inline(shards) => {
                let handoff_ns = crate::clock::now_ns();
                let after_seq = self.last_seq;
                let entry = |entry| Outbound {
                    entry,
                    publish_ns: 0,
                    handoff_ns,
                };
                out.emit(entry(Entry::Reload {
                    after_seq,
                    generation: request.generation,
                }));
                let result = shards.reload(&request.params, after_seq, &mut |output| {
                    out.emit(entry(Entry::Output(output)))
                });
                out.emit(entry(Entry::InputDone { seq: after_seq }));
                control.record(ReloadApplied {
                    generation: request.generation,
                    after_seq,
                    result,
                });
            }
            Exec::Threads(pool) => {
                let mut cx = MergeCx {
                    taker: self.snapshots.as_mut(),
                    control: Some(control),
                };
                // The result is recorded when the merge has every shard's.
                pool.reload(
                    request.generation,
                    request.params,
                    self.last_seq,
                    out,
                    &mut cx,
                );
            }
            Exec::Finished => {}
        }
        self.publish();
    }

    fn summary(&self) -> Option<ShardSummary> {
        match &self.exec {
            Exec::Inline(shards) => Some(shards.summary()),
            Exec::Threads(pool) => Some(pool.summary()),
            Exec::Finished => None,
        }
    }

    /// Publishes counters and gauges (never waits for a reader).
    fn publish(&mut self) {
        self.published = self.processed;
        if matches!(self.exec, Exec::Threads(_)) {
            self.published_ns = crate::clock::now_ns();
        }
        let Some(summary) = self.summary() else {
            return;
        };
        if let Ok(mut c) = self.counters.try_lock() {
            *c = summary.counters;
        }
        if let Some(control) = self.control.as_ref() {
            control.publish(&summary, self.last_seq, self.processed);
        }
    }

    /// Applies one input inline: its entry, the shards' outputs, its close.
    fn process_inline<E: Emit<Outbound>>(&mut self, item: Inbound, out: &mut E) {
        let Exec::Inline(shards) = &mut self.exec else {
            return;
        };
        let risk_in = match self.recorder.as_mut() {
            Some(r) => r.stamp_since(Hop::IngestRisk, item.handoff_ns),
            None => 0,
        };
        let mut outputs = std::mem::take(&mut self.scratch);
        outputs.clear();
        // Ingest's alerts (gap, stale or restarted producer, held prices) go to the order ring
        // for the operator, in order with the decisions.
        shards.apply(&item.event, &mut |o| outputs.push(o));
        if let Some(taker) = self.snapshots.as_mut()
            && taker.after(&item.event)
        {
            taker.store_now(|w| shards.encode_state(w));
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
        for output in outputs.drain(..) {
            out.emit(Outbound {
                entry: Entry::Output(output),
                publish_ns: item.event.publish_ns,
                handoff_ns,
            });
        }
        out.emit(Outbound {
            entry: Entry::InputDone {
                seq: item.event.seq,
            },
            publish_ns: 0,
            handoff_ns,
        });
        self.scratch = outputs;
    }
}

impl Stage for RiskStage {
    type In = Inbound;
    type Out = Outbound;

    fn process<E: Emit<Outbound>>(&mut self, item: Inbound, out: &mut E) {
        match &mut self.exec {
            Exec::Inline(_) => self.process_inline(item, out),
            Exec::Threads(pool) => {
                let mut cx = MergeCx {
                    taker: self.snapshots.as_mut(),
                    control: self.control.as_deref(),
                };
                pool.dispatch(item, out, &mut cx);
                if let Some(taker) = cx.taker.as_deref_mut()
                    && taker.after(&item.event)
                {
                    let position = taker.position().clone();
                    pool.snapshot(position, false, out, &mut cx);
                }
            }
            Exec::Finished => return,
        }
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
        if let Exec::Threads(pool) = &mut self.exec {
            let mut cx = MergeCx {
                taker: self.snapshots.as_mut(),
                control: self.control.as_deref(),
            };
            pool.merge(out, &mut cx);
        }
        if let Some(r) = self.recorder.as_mut() {
            r.poll();
        }
        self.apply_reload(out);
        // Shard threads publish their own summaries (a reload changes them with no input):
        // their sum is refreshed at most every millisecond of idle time.
        let threaded = matches!(self.exec, Exec::Threads(_));
        if self.published != self.processed
            || (threaded && crate::clock::now_ns().saturating_sub(self.published_ns) >= 1_000_000)
        {
            self.publish();
        }
    }

    fn finish<E: Emit<Outbound>>(&mut self, out: &mut E) {
        self.apply_reload(out);
        let shards = match std::mem::replace(&mut self.exec, Exec::Finished) {
            Exec::Inline(shards) => {
                if let Some(taker) = self.snapshots.as_mut() {
                    taker.finish(|w| shards.encode_state(w));
                }
                Some(shards)
            }
            Exec::Threads(mut pool) => {
                let mut cx = MergeCx {
                    taker: self.snapshots.as_mut(),
                    control: self.control.as_deref(),
                };
                if let Some(taker) = cx.taker.as_deref() {
                    let position = taker.position().clone();
                    pool.snapshot(position, true, out, &mut cx);
                }
                match pool.finish(out, &mut cx) {
                    Ok(shards) => Some(shards),
                    Err(message) => panic!("{message}"),
                }
            }
            Exec::Finished => None,
        };
        if let Some(shards) = shards {
            let summary = shards.summary();
            if let Ok(mut c) = self.counters.lock() {
                *c = summary.counters;
            }
            if let Some(control) = self.control.as_ref() {
                control.publish_final(&summary, self.last_seq, self.processed);
            }
            if let Ok(mut slot) = self.report.lock() {
                *slot = Some(shards);
            }
        }
        if let Some(r) = self.recorder.as_mut() {
            r.flush();
        }
    }
}

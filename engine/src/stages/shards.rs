//! The risk stage's shard threads: the risk stage fans each input out to the shards that own it
//! ([`crate::risk::shard::route`]) over one SPSC ring per shard, each shard thread applies it to
//! its own [`RiskEngine`], and the risk stage merges the shards' outputs back over one SPSC ring
//! per shard, input by input, in shard order.
//!
//! ```text
//!                    ┌─ring─▶ [shard 0] ─ring─┐
//!  risk stage ──fan-out─ring─▶ [shard 1] ─ring─┼─merge──▶ emit
//!                    └─ring─▶ [shard 2] ─ring─┘
//! ```
//!
//! ## Merge order
//! The risk stage keeps the inputs it dispatched in a queue. For the oldest, it passes on the
//! input entry, then the outputs of the first shard that received it until that shard's end
//! marker, then the next shard's, and so on; then the input-done entry. A shard's ring holds its
//! outputs in its input order, so the merged stream is exactly [`Shards::apply`]'s, whatever the
//! threads' timing: a sharded run replays byte for byte.
//!
//! Reloads and snapshots travel through the same rings as inputs, between two inputs, so every
//! shard applies a reload (or encodes its state) at the same input boundary; a reload is merged
//! like an input (its entry, each shard's decisions, its close), a snapshot is the shards'
//! encoded parts put together in shard order.
//!
//! ## Never stuck
//! The risk stage never waits without merging: while a shard's input ring is full it drains
//! outputs, so a shard blocked on a full output ring always gets room. A shard thread that
//! stops unexpectedly (it would only panic on a bug) is noticed while the risk stage waits for
//! it and re-raised on the risk stage's thread, where the runtime reports it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::Inbound;
use super::Outbound;
use crate::ingest::FeedEvent;
use crate::ops::RiskControl;
use crate::ops::control::ReloadApplied;
use crate::recovery::codec::Writer;
use crate::recovery::{Entry, Position, SnapshotTaker};
use crate::ring::{self, Consumer, Producer};
use crate::risk::RiskEngine;
use crate::risk::reload::{ReloadError, ReloadOutcome, RiskParams};
use crate::risk::shard::{self, Route, ShardSummary, Shards};
use crate::runtime::{Emit, ShardPlan, ThreadPlan, Waiter};
use crate::shm::Output;
use crate::telemetry::{Hop, Recorder};

/// What the risk stage hands a shard thread.
pub(crate) enum ShardIn {
    /// An input to apply.
    Event(Inbound),
    /// New tiers and thresholds, applied after input `after_seq`.
    Reload {
        params: Arc<RiskParams>,
        after_seq: u64,
    },
    /// Encode the state as it stands (a snapshot at this input boundary).
    Snapshot,
}

/// What a shard thread hands back.
pub(crate) enum ShardOut {
    /// A decision, with the time the shard handed it on.
    Output { output: Output, handoff_ns: u64 },
    /// The end of an input's outputs.
    Done,
    /// The end of a reload's outputs, with its outcome.
    Reloaded(Result<ReloadOutcome, ReloadError>),
    /// The shard's state ([`shard::encode_one`]).
    State(Vec<u8>),
}

/// Something dispatched to the shards whose outputs are not all merged yet.
enum Pending {
    Input {
        event: FeedEvent,
        route: Route,
        /// The shard being merged.
        next: usize,
        started: bool,
    },
    Reload {
        generation: u64,
        after_seq: u64,
        next: usize,
        started: bool,
        outcome: Option<Result<ReloadOutcome, ReloadError>>,
    },
    Snapshot {
        position: Box<Position>,
        parts: Vec<Vec<u8>>,
        last: bool,
    },
}

/// What the merge needs from the risk stage.
pub(crate) struct MergeCx<'a> {
    pub taker: Option<&'a mut SnapshotTaker>,
    pub control: Option<&'a RiskControl>,
}

struct Worker {
    input: Option<Producer<ShardIn>>,
    output: Consumer<ShardOut>,
    handle: Option<JoinHandle<Result<RiskEngine, String>>>,
    summary: Arc<Mutex<ShardSummary>>,
}

/// The shard threads and the merge state; see the module docs.
pub(crate) struct ShardPool {
    workers: Vec<Worker>,
    fifo: VecDeque<Pending>,
    /// Most entries `fifo` holds before dispatching waits for the merge.
    fifo_cap: usize,
    waiter: Waiter,
}

impl ShardPool {
    /// Starts one thread per shard as `plan` says, each with its recorder (if any) and rings
    /// of `capacity` items.
    pub(crate) fn spawn(
        shards: Shards,
        plan: &ShardPlan,
        mut recorders: Vec<Option<Recorder>>,
        capacity: usize,
        wait: crate::runtime::WaitStrategy,
    ) -> std::io::Result<ShardPool> {
        let mut workers = Vec::with_capacity(shards.len());
        recorders.resize_with(shards.len(), || None);
        for (k, (engine, recorder)) in shards.into_engines().into_iter().zip(recorders).enumerate()
        {
            let (in_tx, in_rx) = ring::channel::<ShardIn>(capacity)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let (out_tx, out_rx) = ring::channel::<ShardOut>(capacity)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let summary = Arc::new(Mutex::new(ShardSummary::of(&engine)));
            let thread_plan = plan.threads.get(k).copied().unwrap_or(ThreadPlan {
                placement: crate::runtime::Placement::Unpinned,
                wait,
            });
            let shared = summary.clone();
            let handle = std::thread::Builder::new()
                .name(format!("brink-risk-{k}"))
                .spawn(move || {
                    shard_main(k, engine, in_rx, out_tx, thread_plan, recorder, &shared)
                })?;
            workers.push(Worker {
                input: Some(in_tx),
                output: out_rx,
                handle: Some(handle),
                summary,
            });
        }
        Ok(ShardPool {
            workers,
            fifo: VecDeque::with_capacity(capacity * 2),
            fifo_cap: capacity * 2,
            waiter: Waiter::new(wait),
        })
    }

    /// Hands `item`'s input to the shards that own it and merges what is ready.
    pub(crate) fn dispatch<E: Emit<Outbound>>(
        &mut self,
        item: Inbound,
        out: &mut E,
        cx: &mut MergeCx<'_>,
    ) {
        let route = shard::route(&item.event, self.workers.len());
        self.make_room(out, cx);
        for k in 0..self.workers.len() {
            if route.includes(k) {
                self.send(k, ShardIn::Event(item), out, cx);
            }
        }
        self.fifo.push_back(Pending::Input {
            event: item.event,
            route,
            next: 0,
            started: false,
        });
        self.merge(out, cx);
    }

    /// Hands a reload to every shard, after the inputs dispatched so far.
    pub(crate) fn reload<E: Emit<Outbound>>(
        &mut self,
        generation: u64,
        params: RiskParams,
        after_seq: u64,
        out: &mut E,
        cx: &mut MergeCx<'_>,
    ) {
        let params = Arc::new(params);
        self.make_room(out, cx);
        for k in 0..self.workers.len() {
            let item = ShardIn::Reload {
                params: params.clone(),
                after_seq,
            };
            self.send(k, item, out, cx);
        }
        self.fifo.push_back(Pending::Reload {
            generation,
            after_seq,
            next: 0,
            started: false,
            outcome: None,
        });
    }

    /// Asks every shard for its state at this input boundary; the merge hands the snapshot at
    /// `position` to the taker (`last`: the final snapshot of a clean stop).
    pub(crate) fn snapshot<E: Emit<Outbound>>(
        &mut self,
        position: Position,
        last: bool,
        out: &mut E,
        cx: &mut MergeCx<'_>,
    ) {
        self.make_room(out, cx);
        for k in 0..self.workers.len() {
            self.send(k, ShardIn::Snapshot, out, cx);
        }
        self.fifo.push_back(Pending::Snapshot {
            position: Box::new(position),
            parts: Vec::with_capacity(self.workers.len()),
            last,
        });
    }

    /// Waits until `fifo` has room for one more entry, merging meanwhile.
    fn make_room<E: Emit<Outbound>>(&mut self, out: &mut E, cx: &mut MergeCx<'_>) {
        while self.fifo.len() >= self.fifo_cap {
            if !self.merge(out, cx) {
                self.waiter.wait();
            }
        }
        self.waiter.reset();
    }

    /// Pushes `item` into shard `k`'s ring, merging while it is full.
    fn send<E: Emit<Outbound>>(
        &mut self,
        k: usize,
        mut item: ShardIn,
        out: &mut E,
        cx: &mut MergeCx<'_>,
    ) {
        loop {
            let Some(input) = self.workers[k].input.as_mut() else {
                return;
            };
            match input.try_push(item) {
                Ok(()) => {
                    self.waiter.reset();
                    return;
                }
                Err(ring::Full(back)) => item = back,
            }
            self.check_alive(k);
            if !self.merge(out, cx) {
                self.waiter.wait();
            }
        }
    }

    /// Re-raises the failure of shard `k` if its thread has ended.
    fn check_alive(&mut self, k: usize) {
        let ended = self.workers[k]
            .handle
            .as_ref()
            .is_some_and(JoinHandle::is_finished);
        if !ended {
            return;
        }
        let message = match self.workers[k].handle.take().map(JoinHandle::join) {
            Some(Ok(Err(message))) => message,
            Some(Err(_)) => "its thread panicked".to_string(),
            _ => "its thread ended before its input did".to_string(),
        };
        panic!("risk shard {k} stopped: {message}");
    }

    /// Merges the outputs that are ready, in order (see the module docs). Returns whether it
    /// passed anything on.
    pub(crate) fn merge<E: Emit<Outbound>>(&mut self, out: &mut E, cx: &mut MergeCx<'_>) -> bool {
        let mut progressed = false;
        while let Some(head) = self.fifo.front_mut() {
            let complete = match head {
                Pending::Input {
                    event,
                    route,
                    next,
                    started,
                } => {
                    if !*started {
                        out.emit(Outbound {
                            entry: Entry::Input(*event),
                            publish_ns: event.publish_ns,
                            handoff_ns: 0,
                        });
                        *started = true;
                        progressed = true;
                    }
                    let publish_ns = event.publish_ns;
                    let mut blocked = None;
                    while *next < self.workers.len() {
                        if !route.includes(*next) {
                            *next += 1;
                            continue;
                        }
                        match drain_outputs(&mut self.workers[*next].output, publish_ns, out) {
                            Drained::Marker(ShardOut::Done) => *next += 1,
                            Drained::Marker(_) => panic!(
                                "risk shard {}: a reload or snapshot marker where an input's \
                                 end was due",
                                *next
                            ),
                            Drained::Waiting(moved) => {
                                progressed |= moved;
                                blocked = Some(*next);
                                break;
                            }
                        }
                        progressed = true;
                    }
                    match blocked {
                        Some(k) => {
                            self.check_alive(k);
                            false
                        }
                        None => {
                            out.emit(Outbound {
                                entry: Entry::InputDone { seq: event.seq },
                                publish_ns: 0,
                                handoff_ns: 0,
                            });
                            true
                        }
                    }
                }
                Pending::Reload {
                    generation,
                    after_seq,
                    next,
                    started,
                    outcome,
                } => {
                    if !*started {
                        out.emit(Outbound {
                            entry: Entry::Reload {
                                after_seq: *after_seq,
                                generation: *generation,
                            },
                            publish_ns: 0,
                            handoff_ns: 0,
                        });
                        *started = true;
                        progressed = true;
                    }
                    let mut blocked = None;
                    while *next < self.workers.len() {
                        match drain_outputs(&mut self.workers[*next].output, 0, out) {
                            Drained::Marker(ShardOut::Reloaded(result)) => {
                                *outcome = Some(match (outcome.take(), result) {
                                    (None, r) => r,
                                    (Some(Ok(a)), Ok(b)) => Ok(a.plus(&b)),
                                    (Some(Err(e)), _) | (Some(Ok(_)), Err(e)) => Err(e),
                                });
                                *next += 1;
                                progressed = true;
                            }
                            Drained::Marker(_) => panic!(
                                "risk shard {}: another marker where a reload's end was due",
                                *next
                            ),
                            Drained::Waiting(moved) => {
                                progressed |= moved;
                                blocked = Some(*next);
                                break;
                            }
                        }
                    }
                    if let Some(k) = blocked {
                        self.check_alive(k);
                        false
                    } else {
                        out.emit(Outbound {
                            entry: Entry::InputDone { seq: *after_seq },
                            publish_ns: 0,
                            handoff_ns: 0,
                        });
                        if let (Some(control), Some(result)) = (cx.control, outcome.take()) {
                            control.record(ReloadApplied {
                                generation: *generation,
                                after_seq: *after_seq,
                                result,
                            });
                        }
                        true
                    }
                }
                Pending::Snapshot {
                    position,
                    parts,
                    last,
                } => {
                    let mut blocked = None;
                    while parts.len() < self.workers.len() {
                        let k = parts.len();
                        match self.workers[k].output.try_pop() {
                            Some(ShardOut::State(bytes)) => {
                                parts.push(bytes);
                                progressed = true;
                            }
                            Some(_) => panic!(
                                "risk shard {k}: another record where its snapshot state was due"
                            ),
                            None => {
                                blocked = Some(k);
                                break;
                            }
                        }
                    }
                    if let Some(k) = blocked {
                        self.check_alive(k);
                        false
                    } else {
                        if let Some(taker) = cx.taker.as_deref_mut() {
                            let state = |w: &mut Writer| {
                                w.len_of(parts.len());
                                for p in parts.iter() {
                                    w.bytes(p);
                                }
                            };
                            if *last {
                                taker.finish(state);
                            } else {
                                taker.store(position, state);
                            }
                        }
                        true
                    }
                }
            };
            if !complete {
                break;
            }
            self.fifo.pop_front();
        }
        progressed
    }

    /// Merges until everything dispatched is passed on.
    pub(crate) fn drain<E: Emit<Outbound>>(&mut self, out: &mut E, cx: &mut MergeCx<'_>) {
        while !self.fifo.is_empty() {
            if self.merge(out, cx) {
                self.waiter.reset();
            } else {
                self.waiter.wait();
            }
        }
    }

    /// The shards' counters, fund and breaker as they last published them.
    pub(crate) fn summary(&self) -> ShardSummary {
        let parts: Vec<ShardSummary> = self
            .workers
            .iter()
            .filter_map(|w| w.summary.lock().ok().map(|s| *s))
            .collect();
        ShardSummary::sum(&parts)
    }

    /// Merges everything, ends the shard threads and hands their engines back.
    pub(crate) fn finish<E: Emit<Outbound>>(
        mut self,
        out: &mut E,
        cx: &mut MergeCx<'_>,
    ) -> Result<Shards, String> {
        self.drain(out, cx);
        for w in &mut self.workers {
            // Dropping the producer tells the shard its input has ended.
            w.input = None;
        }
        let mut engines = Vec::with_capacity(self.workers.len());
        for (k, w) in self.workers.iter_mut().enumerate() {
            let Some(handle) = w.handle.take() else {
                return Err(format!("risk shard {k} already stopped"));
            };
            match handle.join() {
                Ok(Ok(engine)) => engines.push(engine),
                Ok(Err(message)) => return Err(format!("risk shard {k}: {message}")),
                Err(_) => return Err(format!("risk shard {k} panicked")),
            }
        }
        Shards::from_engines(engines).ok_or_else(|| "risk shards out of order".to_string())
    }
}

impl Drop for ShardPool {
    fn drop(&mut self) {
        for w in &mut self.workers {
            w.input = None;
        }
        // Shard threads see their input end and stop; an un-merged output ring is dropped
        // with this pool, so none of them can wait for room.
        let handles: Vec<_> = self
            .workers
            .iter_mut()
            .filter_map(|w| w.handle.take())
            .collect();
        self.workers.clear();
        for h in handles {
            let _ = h.join();
        }
    }
}

enum Drained {
    /// The marker that ended the outputs.
    Marker(ShardOut),
    /// The ring is empty before the marker (whether any output was passed on).
    Waiting(bool),
}

/// Passes on `ring`'s outputs up to the next marker.
fn drain_outputs<E: Emit<Outbound>>(
    ring: &mut Consumer<ShardOut>,
    publish_ns: u64,
    out: &mut E,
) -> Drained {
    let mut moved = false;
    loop {
        match ring.try_pop() {
            Some(ShardOut::Output { output, handoff_ns }) => {
                out.emit(Outbound {
                    entry: Entry::Output(output),
                    publish_ns,
                    handoff_ns,
                });
                moved = true;
            }
            Some(marker) => return Drained::Marker(marker),
            None => return Drained::Waiting(moved),
        }
    }
}

/// Publishes a shard's summary every this many inputs (and when idle).
const PUBLISH_EVERY: u64 = 1024;

/// A shard thread: applies what its ring brings until the risk stage drops the ring.
fn shard_main(
    k: usize,
    engine: RiskEngine,
    input: Consumer<ShardIn>,
    output: Producer<ShardOut>,
    plan: ThreadPlan,
    recorder: Option<Recorder>,
    summary: &Mutex<ShardSummary>,
) -> Result<RiskEngine, String> {
    if let Err(core) = crate::runtime::pin_current(plan.placement) {
        return Err(format!(
            "cannot pin to core {core}: it is not a core this process may use"
        ));
    }
    let mut shard = ShardThread {
        k,
        engine,
        output,
        recorder,
        waiter: Waiter::new(plan.wait),
        scratch: Vec::with_capacity(64),
        processed: 0,
        published: 0,
    };
    let mut input = input;
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        loop {
            match input.try_pop() {
                Some(item) => {
                    shard.waiter.reset();
                    shard.handle(item);
                    if shard.processed - shard.published >= PUBLISH_EVERY {
                        shard.publish(summary, false);
                    }
                }
                None if input.is_abandoned() => {
                    // Abandoned is read after the last push: one more look drains the rest.
                    match input.try_pop() {
                        Some(item) => shard.handle(item),
                        None => break,
                    }
                }
                None => {
                    if let Some(r) = shard.recorder.as_mut() {
                        r.poll();
                    }
                    if shard.published != shard.processed {
                        shard.publish(summary, false);
                    }
                    shard.waiter.wait();
                }
            }
        }
    }));
    if let Err(payload) = ran {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(non-string panic payload)".to_string());
        return Err(format!("panicked: {message}"));
    }
    shard.publish(summary, true);
    if let Some(r) = shard.recorder.as_mut() {
        r.flush();
    }
    Ok(shard.engine)
}

struct ShardThread {
    k: usize,
    engine: RiskEngine,
    output: Producer<ShardOut>,
    recorder: Option<Recorder>,
    waiter: Waiter,
    scratch: Vec<Output>,
    processed: u64,
    published: u64,
}

impl ShardThread {
    fn handle(&mut self, item: ShardIn) {
        match item {
            ShardIn::Event(item) => {
                let risk_in = match self.recorder.as_mut() {
                    Some(r) => r.stamp_since(Hop::IngestRisk, item.handoff_ns),
                    None => 0,
                };
                let mut outputs = std::mem::take(&mut self.scratch);
                outputs.clear();
                shard::apply_one(&mut self.engine, &item.event, &mut |o| outputs.push(o));
                let handoff_ns = match self.recorder.as_mut() {
                    Some(r) => r.stamp_since(Hop::Risk, risk_in),
                    None => 0,
                };
                for output in outputs.drain(..) {
                    self.push(ShardOut::Output { output, handoff_ns });
                }
                self.scratch = outputs;
                self.push(ShardOut::Done);
                self.processed += 1;
            }
            ShardIn::Reload { params, after_seq } => {
                let mut outputs = Vec::new();
                let result =
                    shard::reload_one(&mut self.engine, self.k, &params, after_seq, &mut |o| {
                        outputs.push(o)
                    });
                let handoff_ns = crate::clock::now_ns();
                for output in outputs {
                    self.push(ShardOut::Output { output, handoff_ns });
                }
                self.push(ShardOut::Reloaded(result));
                // Counts as work: the summary changed and is published when idle.
                self.processed += 1;
            }
            ShardIn::Snapshot => {
                let bytes = shard::encode_one(&self.engine);
                self.push(ShardOut::State(bytes));
            }
        }
    }

    /// Pushes into the output ring, waiting while it is full (the risk stage merges while it
    /// waits, so room comes); drops the item if the risk stage is gone.
    fn push(&mut self, mut item: ShardOut) {
        loop {
            match self.output.try_push(item) {
                Ok(()) => {
                    self.waiter.reset();
                    return;
                }
                Err(ring::Full(back)) => item = back,
            }
            if self.output.is_abandoned() {
                return;
            }
            self.waiter.wait();
        }
    }

    fn publish(&mut self, summary: &Mutex<ShardSummary>, wait: bool) {
        let current = ShardSummary::of(&self.engine);
        let slot = if wait {
            summary.lock().ok()
        } else {
            summary.try_lock().ok()
        };
        if let Some(mut s) = slot {
            *s = current;
            self.published = self.processed;
        }
    }
}

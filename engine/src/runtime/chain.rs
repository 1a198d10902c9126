//! The inside of a stage thread: the chain of hand-offs after its first stage, and the two thread
//! loops (source-led and ring-led).
//!
//! A thread runs either a source or a ring consumer at its head, followed by a chain of
//! [`Downstream`] links: [`Fused`] (call the next stage directly), [`SinkOut`] (call the sink) or
//! [`RingOut`] (push into the next thread's ring). Each link is an [`Emit`], so stage code does not
//! know which one it is talking to, and the whole chain is monomorphised into direct calls.

use core::cell::Cell;
use std::any::Any;

use crossbeam_utils::CachePadded;

use super::link::{LinkRx, LinkTx};
use super::wait::Waiter;
use super::{BATCH, Emit, IDLE_EVERY_TURNS, Poll, SINK, SOURCE, Sink, Source, Stage, WaitStrategy};
use crate::ring::Full;
use crate::sync::{AtomicBool, AtomicU64, Ordering};

/// State shared by every thread of one pipeline.
#[derive(Debug)]
pub(crate) struct Control {
    /// Graceful stop, set from outside; read by the source-led thread once per turn.
    pub(crate) stop: super::StopSignal,
    /// Set by a thread whose stage panicked (or that failed to start): every thread leaves its loop.
    abort: AtomicBool,
    /// Per-stage item counts (source: emitted; stage and sink: received). Each is written by one
    /// thread only; readers get a recent value.
    counts: [CachePadded<AtomicU64>; 3],
}

impl Control {
    pub(crate) fn new(stop: super::StopSignal) -> Self {
        Self {
            stop,
            abort: AtomicBool::new(false),
            counts: core::array::from_fn(|_| CachePadded::new(AtomicU64::new(0))),
        }
    }

    pub(crate) fn abort(&self) {
        // Release: pairs with the Acquire load in `aborted`; a thread that sees the flag also sees
        // everything the aborting thread did before (its last ring stores).
        self.abort.store(true, Ordering::Release);
    }

    #[inline(always)]
    pub(crate) fn aborted(&self) -> bool {
        // Acquire: pairs with the Release store in `abort`.
        self.abort.load(Ordering::Acquire)
    }

    #[inline(always)]
    fn set_count(&self, stage: usize, n: u64) {
        // Relaxed: a statistic with a single writer; no other memory depends on it.
        self.counts[stage].store(n, Ordering::Relaxed);
    }

    pub(crate) fn counts(&self) -> [u64; 3] {
        // Relaxed: statistics only.
        core::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed))
    }
}

/// What one thread knows about itself.
pub(crate) struct ThreadCx<'a> {
    pub(crate) ctl: &'a Control,
    pub(crate) wait: WaitStrategy,
    /// Index of the stage whose code is running right now, for naming it if it panics.
    pub(crate) current: Cell<usize>,
}

impl ThreadCx<'_> {
    /// Runs a thread's loop, catching a panic from stage code. On panic the pipeline's abort flag
    /// is set *before* the caller drops its chain, so downstream threads see the abort, not a
    /// clean end of input, when the dropped ring reports itself abandoned.
    pub(crate) fn guarded(&self, run: impl FnOnce()) -> Result<(), Box<dyn Any + Send>> {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run));
        if result.is_err() {
            self.ctl.abort();
        }
        result
    }
}

/// A link after the head of a thread.
pub(crate) trait Downstream<T>: Emit<T> {
    /// Runs the idle hooks of every stage in the rest of the chain.
    fn idle(&mut self);
    /// Runs the finish hooks of every stage in the rest of the chain, in order.
    fn finish(&mut self);
    /// True when a hand-off failed because the pipeline is aborting.
    fn broken(&self) -> bool;
    /// Items this link has received.
    fn received(&self) -> u64;
    /// Writes this chain's stage counts into the shared counters.
    fn publish(&self, ctl: &Control);
}

/// Pushes into the next thread's link (a ring, or the baseline channel), waiting while it is full.
pub(crate) struct RingOut<'a, P> {
    producer: P,
    waiter: Waiter,
    ctl: &'a Control,
    pushed: u64,
    /// Set when the consumer side is gone or the pipeline aborts; later items are dropped.
    broken: bool,
}

impl<'a, P: LinkTx> RingOut<'a, P> {
    pub(crate) fn new(producer: P, cx: &ThreadCx<'a>) -> Self {
        Self {
            producer,
            waiter: Waiter::new(cx.wait),
            ctl: cx.ctl,
            pushed: 0,
            broken: false,
        }
    }

    /// The ring is full: wait for room, unless the pipeline is going down.
    #[cold]
    #[inline(never)]
    fn push_slow(&mut self, mut item: P::Item) {
        self.waiter.reset();
        loop {
            if self.ctl.aborted() || self.producer.is_abandoned() {
                self.broken = true;
                return;
            }
            self.waiter.wait();
            match self.producer.try_push(item) {
                Ok(()) => {
                    self.pushed += 1;
                    return;
                }
                Err(Full(back)) => item = back,
            }
        }
    }
}

impl<P: LinkTx> Emit<P::Item> for RingOut<'_, P> {
    #[inline(always)]
    fn emit(&mut self, item: P::Item) {
        if self.broken {
            return;
        }
        match self.producer.try_push(item) {
            Ok(()) => self.pushed += 1,
            Err(Full(item)) => self.push_slow(item),
        }
    }
}

impl<P: LinkTx> Downstream<P::Item> for RingOut<'_, P> {
    fn idle(&mut self) {}
    fn finish(&mut self) {}
    #[inline(always)]
    fn broken(&self) -> bool {
        self.broken
    }
    fn received(&self) -> u64 {
        self.pushed
    }
    fn publish(&self, _ctl: &Control) {}
}

/// A stage fused into this thread: emitting to it calls its `process` directly.
pub(crate) struct Fused<'a, S: Stage, D> {
    stage: S,
    next: D,
    /// This stage's index (for counters and panic attribution).
    index: usize,
    current: &'a Cell<usize>,
    received: u64,
}

impl<'a, S: Stage, D: Downstream<S::Out>> Fused<'a, S, D> {
    pub(crate) fn new(stage: S, index: usize, next: D, cx: &'a ThreadCx<'_>) -> Self {
        Self {
            stage,
            next,
            index,
            current: &cx.current,
            received: 0,
        }
    }
}

impl<S: Stage, D: Downstream<S::Out>> Emit<S::In> for Fused<'_, S, D> {
    #[inline(always)]
    fn emit(&mut self, item: S::In) {
        self.received += 1;
        let caller = self.current.replace(self.index);
        self.stage.process(item, &mut self.next);
        self.current.set(caller);
    }
}

impl<S: Stage, D: Downstream<S::Out>> Downstream<S::In> for Fused<'_, S, D> {
    fn idle(&mut self) {
        let caller = self.current.replace(self.index);
        self.stage.idle(&mut self.next);
        self.current.set(caller);
        self.next.idle();
    }
    fn finish(&mut self) {
        let caller = self.current.replace(self.index);
        self.stage.finish(&mut self.next);
        self.current.set(caller);
        self.next.finish();
    }
    #[inline(always)]
    fn broken(&self) -> bool {
        self.next.broken()
    }
    fn received(&self) -> u64 {
        self.received
    }
    fn publish(&self, ctl: &Control) {
        ctl.set_count(self.index, self.received);
        self.next.publish(ctl);
    }
}

/// The sink, called directly.
pub(crate) struct SinkOut<'a, K> {
    sink: K,
    current: &'a Cell<usize>,
    received: u64,
}

impl<'a, K: Sink> SinkOut<'a, K> {
    pub(crate) fn new(sink: K, cx: &'a ThreadCx<'_>) -> Self {
        Self {
            sink,
            current: &cx.current,
            received: 0,
        }
    }
}

impl<K: Sink> Emit<K::In> for SinkOut<'_, K> {
    #[inline(always)]
    fn emit(&mut self, item: K::In) {
        self.received += 1;
        let caller = self.current.replace(SINK);
        self.sink.consume(item);
        self.current.set(caller);
    }
}

impl<K: Sink> Downstream<K::In> for SinkOut<'_, K> {
    fn idle(&mut self) {
        let caller = self.current.replace(SINK);
        self.sink.idle();
        self.current.set(caller);
    }
    fn finish(&mut self) {
        let caller = self.current.replace(SINK);
        self.sink.finish();
        self.current.set(caller);
    }
    fn broken(&self) -> bool {
        false
    }
    fn received(&self) -> u64 {
        self.received
    }
    fn publish(&self, ctl: &Control) {
        ctl.set_count(SINK, self.received);
    }
}

/// The loop of a thread that starts with the source.
pub(crate) fn run_source<S: Source, D: Downstream<S::Out>>(
    source: &mut S,
    out: &mut D,
    cx: &ThreadCx<'_>,
) {
    let mut waiter = Waiter::new(cx.wait);
    let mut turns = 0_u32;
    let publish = |out: &D| {
        cx.ctl.set_count(SOURCE, out.received());
        out.publish(cx.ctl);
    };
    loop {
        if cx.ctl.stop.is_stopped() || cx.ctl.aborted() {
            break;
        }
        cx.current.set(SOURCE);
        let poll = source.poll(out);
        if out.broken() {
            break;
        }
        match poll {
            Poll::Progress => {
                waiter.reset();
                turns = turns.wrapping_add(1);
                if turns.is_multiple_of(IDLE_EVERY_TURNS) {
                    out.idle();
                    publish(out);
                }
            }
            Poll::Idle => {
                out.idle();
                publish(out);
                waiter.wait();
            }
            Poll::Done => break,
        }
    }
    if !cx.ctl.aborted() && !out.broken() {
        cx.current.set(SOURCE);
        source.finish(out);
        out.finish();
    }
    publish(out);
}

/// The loop of a thread that starts with an input ring (or the baseline channel).
pub(crate) fn run_ring<R: LinkRx, D: Downstream<R::Item>>(
    input: &mut R,
    out: &mut D,
    cx: &ThreadCx<'_>,
) {
    let mut waiter = Waiter::new(cx.wait);
    let mut turns = 0_u32;
    let ended = loop {
        let n = input.drain(BATCH, |item| out.emit(item));
        if out.broken() || cx.ctl.aborted() {
            break false;
        }
        if n > 0 {
            waiter.reset();
            turns = turns.wrapping_add(1);
            if turns.is_multiple_of(IDLE_EVERY_TURNS) {
                out.idle();
                out.publish(cx.ctl);
            }
            continue;
        }
        if input.is_abandoned() {
            // Every item pushed before the producer was dropped is visible now: drain them.
            while input.drain(BATCH, |item| out.emit(item)) > 0 {
                if out.broken() {
                    break;
                }
            }
            // An upstream that panicked set `abort` before dropping its ring.
            break !cx.ctl.aborted() && !out.broken();
        }
        out.idle();
        out.publish(cx.ctl);
        waiter.wait();
    };
    if ended {
        out.finish();
    }
    out.publish(cx.ctl);
}

//! Stages, pinning, wait strategies, fused topologies, shutdown.
//!
//! A pipeline is a [`Source`] (polls an external input, e.g. the shared-memory feed), a [`Stage`]
//! (e.g. risk) and a [`Sink`] (e.g. emit). [`Pipeline::launch`] starts them on threads as a
//! [`TopologyPlan`] says:
//!
//! ```text
//!  Threads3     [source] ─ring─▶ [stage] ─ring─▶ [sink]      3 threads
//!  FuseFirst2   [source → stage] ─ring─▶ [sink]              2 threads
//!  FuseLast2    [source] ─ring─▶ [stage → sink]              2 threads
//!  Fused1       [source → stage → sink]                      1 thread
//! ```
//!
//! Inside a thread, fused stages are connected by direct calls (`→`): the same stage code sees the
//! same [`Emit`] interface either way, so the engine runs on machines with fewer cores than stages.
//! [`TopologyPlan::auto`] chooses the topology, pinning and [`WaitStrategy`] from the cores
//! available and says why.
//!
//! The rings between threads are Brink's SPSC rings; [`Pipeline::links`] swaps them for bounded
//! `crossbeam::channel`s of the same capacity ([`LinkKind::Channel`]), the baseline that
//! `brink bench --baseline` measures the rings against. The choice is made once at launch and each
//! thread's loop is compiled for it, so the ring path pays nothing for the option.
//!
//! ## Shutdown
//! - **Graceful:** [`PipelineHandle::stop`] (or the [`StopSignal`] given to the pipeline, e.g. from a
//!   signal handler) makes the source thread stop polling; it calls [`Source::finish`], drops its
//!   ring; each downstream thread sees its input abandoned, drains what is left, calls `finish`, and
//!   exits. Nothing in flight is dropped. A source returning [`Poll::Done`] does the same.
//! - **On panic:** a panic in any stage (`poll`, `process`, `idle`, `finish`) is caught on its
//!   thread, which sets the pipeline's abort flag; every other thread leaves its loop at its next
//!   turn, including a producer waiting on a full ring. Items still in rings are dropped.
//!   [`PipelineHandle::join`] returns [`RuntimeError::StagePanicked`] naming the stage.
//! - Every thread is always joined; dropping an un-joined handle stops and joins it.
//!
//! ## Back-pressure
//! A hand-off into a full ring waits with the thread's [`WaitStrategy`] until there is room; it
//! never drops the item unless the pipeline is aborting (downstream panicked), so it cannot hang.

mod chain;
mod link;
mod pipeline;
mod topology;
mod wait;

#[cfg(all(test, not(loom)))]
mod tests;

pub use link::LinkKind;
pub(crate) use pipeline::pin_current;
pub use pipeline::{
    DEFAULT_RING_CAPACITY, Outcome, Pipeline, PipelineHandle, RuntimeError, StageReport, StopSignal,
};
pub use topology::{Placement, ShardPlan, ThreadPlan, Topology, TopologyPlan, available_cores};
pub(crate) use wait::Waiter;
pub use wait::{PARK, SPIN_TURNS, WaitStrategy};

/// Where a stage puts its output: the next ring, or (fused) the next stage's `process`.
pub trait Emit<T> {
    /// Hands `item` downstream. Waits (with the thread's wait strategy) while the next ring is
    /// full. During an abort the item is dropped and the call returns at once.
    fn emit(&mut self, item: T);
}

/// What one [`Source::poll`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Emitted something (or did useful work): poll again at once.
    Progress,
    /// Nothing available: the thread waits one turn with its wait strategy, runs the idle hooks of
    /// any stages fused after the source, then polls again.
    Idle,
    /// The input is finished: the pipeline drains and ends.
    Done,
}

/// The first stage: polls an external input and emits items.
pub trait Source: Send + 'static {
    /// What it emits.
    type Out: Send + 'static;

    /// Polls the input once, emitting zero or more items.
    fn poll<E: Emit<Self::Out>>(&mut self, out: &mut E) -> Poll;

    /// Called once when the source stops (stop signal or [`Poll::Done`]), before its output is
    /// closed; may emit final items. Not called when the pipeline aborts.
    fn finish<E: Emit<Self::Out>>(&mut self, out: &mut E) {
        let _ = out;
    }
}

/// A middle stage: turns each input item into zero or more output items.
pub trait Stage: Send + 'static {
    /// What it receives.
    type In: Send + 'static;
    /// What it emits.
    type Out: Send + 'static;

    /// Handles one item.
    fn process<E: Emit<Self::Out>>(&mut self, item: Self::In, out: &mut E);

    /// Called when no input is waiting, and at least every [`IDLE_EVERY_TURNS`] turns under load:
    /// the place for timers and heartbeats.
    fn idle<E: Emit<Self::Out>>(&mut self, out: &mut E) {
        let _ = out;
    }

    /// Called once after the last input item on a graceful stop; may emit final items. Not called
    /// when the pipeline aborts.
    fn finish<E: Emit<Self::Out>>(&mut self, out: &mut E) {
        let _ = out;
    }
}

/// The last stage: consumes items (writes them out).
pub trait Sink: Send + 'static {
    /// What it receives.
    type In: Send + 'static;

    /// Handles one item.
    fn consume(&mut self, item: Self::In);

    /// As [`Stage::idle`].
    fn idle(&mut self) {}

    /// As [`Stage::finish`]: after the last item on a graceful stop (e.g. flush a journal).
    fn finish(&mut self) {}
}

/// Items a ring-fed thread takes from its input ring per turn (one `head` publish per batch).
pub const BATCH: usize = 64;

/// Under constant load, idle hooks still run once per this many turns (a turn is one `poll` of a
/// source or one batch of up to [`BATCH`] items from a ring).
pub const IDLE_EVERY_TURNS: u32 = 64;

/// Index of the source in per-stage arrays.
pub(crate) const SOURCE: usize = 0;
/// Index of the middle stage in per-stage arrays.
pub(crate) const STAGE: usize = 1;
/// Index of the sink in per-stage arrays.
pub(crate) const SINK: usize = 2;

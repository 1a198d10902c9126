//! Building, launching, stopping and joining a source → stage → sink pipeline.

use core::cell::Cell;
use core::fmt;
use std::any::Any;
use std::thread::JoinHandle;

use super::chain::{Control, Fused, RingOut, SinkOut, ThreadCx, run_ring, run_source};
use super::link::{ChannelLink, Link, LinkKind, RingLink};
use super::topology::{Placement, Topology, TopologyPlan};
use super::{SINK, STAGE, Sink, Source, Stage};
use crate::ring::{self, RingError};
use crate::sync::{Arc, AtomicBool, Ordering};

/// A graceful-stop flag shared between whoever decides to stop (a signal handler, a test, the
/// [`PipelineHandle`]) and the pipeline's source thread. Cloning shares the flag.
#[derive(Debug, Clone)]
pub struct StopSignal(Arc<AtomicBool>);

impl Default for StopSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl StopSignal {
    /// A flag not yet set.
    pub fn new() -> Self {
        Self(Arc::new(AtomicBool::new(false)))
    }

    /// Asks the pipeline to stop: the source stops polling and everything in flight drains.
    pub fn stop(&self) {
        // Release: pairs with the Acquire load in `is_stopped`; whatever the stopper wrote before
        // is visible to the source when it stops.
        self.0.store(true, Ordering::Release);
    }

    /// True once [`StopSignal::stop`] was called (or the flag was set through [`StopSignal::flag`]).
    #[inline(always)]
    pub fn is_stopped(&self) -> bool {
        // Acquire: pairs with the Release store in `stop`.
        self.0.load(Ordering::Acquire)
    }

    /// The underlying flag, e.g. for `signal_hook::flag::register(SIGINT, flag)`.
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }
}

/// Why a pipeline could not start or did not finish cleanly. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// A stage panicked; the pipeline was aborted and every thread joined.
    #[error(
        "stage `{stage}` panicked: {message}; the pipeline was stopped and every thread joined \
         (items still in rings were dropped): fix the stage, its input, or its configuration"
    )]
    StagePanicked {
        /// The stage's name as given to [`Pipeline::names`].
        stage: &'static str,
        /// The panic message, when it was a string.
        message: String,
    },
    /// A thread could not be pinned to its core.
    #[error(
        "thread `{thread}` could not be pinned to core {core}: it is not a core this process may \
         use; pick one from `runtime::available_cores()` (read once, before pinning) or use \
         `Placement::Unpinned`"
    )]
    Pin {
        /// The thread's name.
        thread: String,
        /// The core asked for.
        core: usize,
    },
    /// The OS refused to start a thread.
    #[error("could not start thread `{thread}`: {source}; lower the thread count (fuse stages)")]
    Spawn {
        /// The thread's name.
        thread: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The plan's thread list does not fit its topology.
    #[error(
        "the plan lists {got} thread(s) but topology {topology} runs {want}: give one ThreadPlan \
         per thread, or build the plan with `TopologyPlan::auto`/`unpinned`"
    )]
    PlanMismatch {
        /// The plan's topology.
        topology: Topology,
        /// Threads listed.
        got: usize,
        /// Threads needed.
        want: usize,
    },
    /// The ring capacity is unusable.
    #[error("bad ring capacity for the pipeline: {0}")]
    Ring(#[from] RingError),
    /// A thread died outside any stage's code (a bug in the runtime or in a stage's `Drop`).
    #[error("thread `{thread}` died outside stage code: {message}; report it with the message")]
    ThreadPanicked {
        /// The thread's name.
        thread: String,
        /// The panic message, when it was a string.
        message: String,
    },
}

impl RuntimeError {
    /// Ranks errors so that the root cause wins when several threads fail.
    fn rank(&self) -> u8 {
        match self {
            RuntimeError::StagePanicked { .. } => 0,
            RuntimeError::Pin { .. } => 1,
            RuntimeError::ThreadPanicked { .. } => 2,
            _ => 3,
        }
    }
}

/// Counts for one stage after the pipeline ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageReport {
    /// The stage's name.
    pub name: &'static str,
    /// Items emitted (source) or received (stage, sink).
    pub items: u64,
    /// Index of the thread that ran it.
    pub thread: usize,
}

/// How a pipeline ended cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Source, stage, sink, in that order.
    pub stages: [StageReport; 3],
    /// The plan it ran with.
    pub plan: TopologyPlan,
    /// For each thread, whether it was pinned to its core.
    pub pinned: Vec<bool>,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.stages {
            writeln!(f, "{}: {} items (thread {})", s.name, s.items, s.thread)?;
        }
        Ok(())
    }
}

/// A source → stage → sink pipeline, ready to launch.
pub struct Pipeline<S, M, K> {
    source: S,
    stage: M,
    sink: K,
    names: [&'static str; 3],
    ring_capacity: usize,
    links: LinkKind,
    stop: StopSignal,
}

/// Ring capacity when none is given.
pub const DEFAULT_RING_CAPACITY: usize = 1024;

impl<S, M, K> Pipeline<S, M, K>
where
    S: Source,
    M: Stage<In = S::Out>,
    K: Sink<In = M::Out>,
{
    /// A pipeline named `source`, `stage`, `sink`, with rings of [`DEFAULT_RING_CAPACITY`].
    pub fn new(source: S, stage: M, sink: K) -> Self {
        Self {
            source,
            stage,
            sink,
            names: ["source", "stage", "sink"],
            ring_capacity: DEFAULT_RING_CAPACITY,
            links: LinkKind::Ring,
            stop: StopSignal::new(),
        }
    }

    /// Names the three stages (used in thread names, reports and errors).
    pub fn names(mut self, names: [&'static str; 3]) -> Self {
        self.names = names;
        self
    }

    /// Slots per ring (a power of two; checked at launch).
    pub fn ring_capacity(mut self, capacity: usize) -> Self {
        self.ring_capacity = capacity;
        self
    }

    /// Connects the threads with `links` instead of Brink's SPSC rings (the default). The
    /// [`LinkKind::Channel`] baseline exists to be measured against; the capacity is the same.
    pub fn links(mut self, links: LinkKind) -> Self {
        self.links = links;
        self
    }

    /// Uses `stop` as the graceful-stop flag (e.g. one registered with a signal handler).
    pub fn stop_signal(mut self, stop: StopSignal) -> Self {
        self.stop = stop;
        self
    }

    /// Starts the threads as `plan` says and returns at once.
    ///
    /// # Errors
    /// [`RuntimeError::PlanMismatch`], [`RuntimeError::Ring`] or [`RuntimeError::Spawn`]; threads
    /// already started are aborted and joined first. Pinning failures surface from
    /// [`PipelineHandle::join`].
    pub fn launch(self, plan: &TopologyPlan) -> Result<PipelineHandle, RuntimeError> {
        match self.links {
            LinkKind::Ring => self.launch_on::<RingLink>(plan),
            LinkKind::Channel => self.launch_on::<ChannelLink>(plan),
        }
    }

    /// [`Pipeline::launch`] with the threads connected by `L`.
    fn launch_on<L: Link>(self, plan: &TopologyPlan) -> Result<PipelineHandle, RuntimeError> {
        let topology = plan.topology;
        if plan.threads.len() != topology.threads() {
            return Err(RuntimeError::PlanMismatch {
                topology,
                got: plan.threads.len(),
                want: topology.threads(),
            });
        }
        match topology {
            Topology::Threads3 => {
                ring::check_capacity::<S::Out>(self.ring_capacity)?;
                ring::check_capacity::<M::Out>(self.ring_capacity)?;
            }
            Topology::FuseLast2 => ring::check_capacity::<S::Out>(self.ring_capacity)?,
            Topology::FuseFirst2 => ring::check_capacity::<M::Out>(self.ring_capacity)?,
            Topology::Fused1 => {}
        }
        tracing::info!(names = ?self.names, links = %self.links, "pipeline plan: {plan}");
        let Self {
            source,
            stage,
            sink,
            names,
            ring_capacity: cap,
            links: _,
            stop,
        } = self;
        let mut launcher = Launcher {
            ctl: Arc::new(Control::new(stop)),
            names,
            plan: plan.clone(),
            threads: Vec::new(),
        };
        match topology {
            Topology::Threads3 => {
                let (p1, mut c1) = L::pair::<S::Out>(cap)?;
                let (p2, mut c2) = L::pair::<M::Out>(cap)?;
                let (mut source, stage, sink) = (source, stage, sink);
                launcher.spawn(move |cx| {
                    let mut out = RingOut::new(p1, cx);
                    cx.guarded(|| run_source(&mut source, &mut out, cx))
                })?;
                launcher.spawn(move |cx| {
                    let mut out = Fused::new(stage, STAGE, RingOut::new(p2, cx), cx);
                    cx.guarded(|| run_ring(&mut c1, &mut out, cx))
                })?;
                launcher.spawn(move |cx| {
                    let mut out = SinkOut::new(sink, cx);
                    cx.guarded(|| run_ring(&mut c2, &mut out, cx))
                })?;
            }
            Topology::FuseFirst2 => {
                let (p1, mut c1) = L::pair::<M::Out>(cap)?;
                let (mut source, stage, sink) = (source, stage, sink);
                launcher.spawn(move |cx| {
                    let mut out = Fused::new(stage, STAGE, RingOut::new(p1, cx), cx);
                    cx.guarded(|| run_source(&mut source, &mut out, cx))
                })?;
                launcher.spawn(move |cx| {
                    let mut out = SinkOut::new(sink, cx);
                    cx.guarded(|| run_ring(&mut c1, &mut out, cx))
                })?;
            }
            Topology::FuseLast2 => {
                let (p1, mut c1) = L::pair::<S::Out>(cap)?;
                let (mut source, stage, sink) = (source, stage, sink);
                launcher.spawn(move |cx| {
                    let mut out = RingOut::new(p1, cx);
                    cx.guarded(|| run_source(&mut source, &mut out, cx))
                })?;
                launcher.spawn(move |cx| {
                    let mut out = Fused::new(stage, STAGE, SinkOut::new(sink, cx), cx);
                    cx.guarded(|| run_ring(&mut c1, &mut out, cx))
                })?;
            }
            Topology::Fused1 => {
                let (mut source, stage, sink) = (source, stage, sink);
                launcher.spawn(move |cx| {
                    let mut out = Fused::new(stage, STAGE, SinkOut::new(sink, cx), cx);
                    cx.guarded(|| run_source(&mut source, &mut out, cx))
                })?;
            }
        }
        let Launcher {
            ctl,
            names,
            plan,
            threads,
        } = launcher;
        Ok(PipelineHandle {
            ctl,
            names,
            plan,
            threads,
        })
    }
}

type ThreadResult = Result<bool, RuntimeError>;

/// A thread body: builds its chain, runs it under `ThreadCx::guarded`, returns the panic if any.
type Body = Box<dyn FnOnce(&ThreadCx<'_>) -> Result<(), Box<dyn Any + Send>> + Send>;

/// Starts the threads of one pipeline, in order; on failure aborts and joins those started.
struct Launcher {
    ctl: Arc<Control>,
    names: [&'static str; 3],
    plan: TopologyPlan,
    threads: Vec<(String, JoinHandle<ThreadResult>)>,
}

impl Launcher {
    fn spawn(
        &mut self,
        body: impl FnOnce(&ThreadCx<'_>) -> Result<(), Box<dyn Any + Send>> + Send + 'static,
    ) -> Result<(), RuntimeError> {
        let index = self.threads.len();
        let group = self.plan.topology.groups()[index];
        let thread_plan = self.plan.threads[index];
        let name = thread_name(&self.names, group);
        let ctl = Arc::clone(&self.ctl);
        let names = self.names;
        let first = group[0];
        let body: Body = Box::new(body);
        let thread_name = name.clone();
        let spawned = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || thread_main(&ctl, &names, first, thread_plan, thread_name, body));
        match spawned {
            Ok(handle) => {
                self.threads.push((name, handle));
                Ok(())
            }
            Err(source) => {
                self.ctl.abort();
                for (_, handle) in self.threads.drain(..) {
                    let _ = handle.join();
                }
                Err(RuntimeError::Spawn {
                    thread: name,
                    source,
                })
            }
        }
    }
}

/// `brink-` and the stage names joined by `+`.
fn thread_name(names: &[&'static str; 3], group: &[usize]) -> String {
    let parts: Vec<&str> = group.iter().map(|&i| names[i]).collect();
    format!("brink-{}", parts.join("+"))
}

/// Cores representable in the OS's CPU set (Linux `CPU_SETSIZE`); higher ids are refused.
const CPU_SET_SIZE: usize = 1024;

/// Sets the abort flag if the thread unwinds past it (a panic outside stage code).
struct AbortOnUnwind<'a>(&'a Control);

impl Drop for AbortOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.abort();
        }
    }
}

/// Pins the calling thread as `placement` says: `Ok(true)` pinned, `Ok(false)` unpinned,
/// `Err(core)` when the core cannot be used.
pub(crate) fn pin_current(placement: Placement) -> Result<bool, usize> {
    match placement {
        Placement::Unpinned => Ok(false),
        Placement::Core(id) => {
            // `core_affinity` indexes a fixed-size CPU set and aborts the process beyond it.
            if id >= CPU_SET_SIZE || !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                Err(id)
            } else {
                Ok(true)
            }
        }
    }
}

fn thread_main(
    ctl: &Control,
    names: &[&'static str; 3],
    first_stage: usize,
    plan: super::ThreadPlan,
    thread: String,
    body: Body,
) -> ThreadResult {
    let _abort_on_unwind = AbortOnUnwind(ctl);
    let pinned = match pin_current(plan.placement) {
        Ok(pinned) => pinned,
        Err(core) => {
            ctl.abort();
            return Err(RuntimeError::Pin { thread, core });
        }
    };
    let cx = ThreadCx {
        ctl,
        wait: plan.wait,
        current: Cell::new(first_stage),
    };
    match body(&cx) {
        Ok(()) => Ok(pinned),
        Err(payload) => Err(RuntimeError::StagePanicked {
            stage: names[cx.current.get()],
            message: panic_message(payload.as_ref()),
        }),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

/// A running pipeline. Dropping it without [`PipelineHandle::join`] stops and joins it.
pub struct PipelineHandle {
    ctl: Arc<Control>,
    names: [&'static str; 3],
    plan: TopologyPlan,
    /// Thread name and handle, in pipeline order; emptied by `join`.
    threads: Vec<(String, JoinHandle<ThreadResult>)>,
}

impl PipelineHandle {
    /// Asks for a graceful stop and wakes parked threads; returns at once (then call `join`).
    pub fn stop(&self) {
        self.ctl.stop.stop();
        for (_, handle) in &self.threads {
            handle.thread().unpark();
        }
    }

    /// The pipeline's stop flag, for stopping it from elsewhere.
    pub fn stop_signal(&self) -> StopSignal {
        self.ctl.stop.clone()
    }

    /// Items so far: source emitted, stage received, sink received (updated once per turn).
    pub fn counts(&self) -> [u64; 3] {
        self.ctl.counts()
    }

    /// True when every thread has ended (then `join` does not block).
    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|(_, h)| h.is_finished())
    }

    /// The plan it runs with.
    pub fn plan(&self) -> &TopologyPlan {
        &self.plan
    }

    /// Waits for every thread to end (after `stop`, a `Done` source, or an abort).
    ///
    /// # Errors
    /// The most telling failure among the threads: a stage panic (naming the stage) first, then a
    /// pinning failure, then anything else.
    pub fn join(mut self) -> Result<Outcome, RuntimeError> {
        let mut pinned = Vec::new();
        let mut error: Option<RuntimeError> = None;
        for (thread, handle) in self.threads.drain(..) {
            let result = handle.join().unwrap_or_else(|payload| {
                Err(RuntimeError::ThreadPanicked {
                    thread,
                    message: panic_message(payload.as_ref()),
                })
            });
            match result {
                Ok(p) => pinned.push(p),
                Err(e) => {
                    pinned.push(false);
                    if error.as_ref().is_none_or(|old| e.rank() < old.rank()) {
                        error = Some(e);
                    }
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        let counts = self.ctl.counts();
        let groups = self.plan.topology.groups();
        let thread_of = |stage: usize| {
            groups
                .iter()
                .position(|g| g.contains(&stage))
                .unwrap_or_default()
        };
        let stages = core::array::from_fn(|i| StageReport {
            name: self.names[i],
            items: counts[i],
            thread: thread_of(i),
        });
        debug_assert_eq!(stages[SINK].thread, groups.len() - 1);
        Ok(Outcome {
            stages,
            plan: self.plan.clone(),
            pinned,
        })
    }
}

impl Drop for PipelineHandle {
    fn drop(&mut self) {
        if self.threads.is_empty() {
            return;
        }
        self.stop();
        for (_, handle) in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl fmt::Debug for PipelineHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineHandle")
            .field("names", &self.names)
            .field("topology", &self.plan.topology)
            .field("threads", &self.threads.len())
            .finish()
    }
}

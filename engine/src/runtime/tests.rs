//! Every topology and wait strategy on this machine: delivery in order, graceful stop, panics named
//! by stage, pinning, the `auto` plan.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

const NAMES: [&str; 3] = ["ingest", "risk", "emit"];
/// Emitted by the stage's `finish`, so tests can see that it ran and that its output still arrived.
const SENTINEL: u64 = u64::MAX;

/// Emits `0, 1, 2, …` up to three per poll; idles every `idle_every` polls.
struct Counter {
    next: u64,
    end: Option<u64>,
    idle_every: u64,
    polls: u64,
    panic_at: Option<u64>,
    emitted: Arc<AtomicU64>,
    finished: Arc<AtomicBool>,
    /// When set, after `end` the source idles until every flag is true, then reports `Done`.
    wait_for: Vec<Arc<AtomicBool>>,
}

impl Counter {
    fn new(end: Option<u64>) -> Self {
        Self {
            next: 0,
            end,
            idle_every: 7,
            polls: 0,
            panic_at: None,
            emitted: Arc::default(),
            finished: Arc::default(),
            wait_for: Vec::new(),
        }
    }
}

impl Source for Counter {
    type Out = u64;

    fn poll<E: Emit<u64>>(&mut self, out: &mut E) -> Poll {
        self.polls += 1;
        if self.end == Some(self.next) {
            let all = self.wait_for.iter().all(|f| f.load(Ordering::Acquire));
            return if all { Poll::Done } else { Poll::Idle };
        }
        if self.idle_every > 0 && self.polls.is_multiple_of(self.idle_every) {
            return Poll::Idle;
        }
        for _ in 0..3 {
            if self.end == Some(self.next) {
                break;
            }
            if self.panic_at == Some(self.next) {
                panic!("source fails at item {}", self.next);
            }
            out.emit(self.next);
            self.next += 1;
        }
        self.emitted.store(self.next, Ordering::Release);
        Poll::Progress
    }

    fn finish<E: Emit<u64>>(&mut self, _out: &mut E) {
        self.finished.store(true, Ordering::Release);
    }
}

/// The stage's mapping: drops multiples of 5, doubles multiples of 7 into two items.
fn fan(x: u64) -> impl Iterator<Item = u64> {
    let n = if x.is_multiple_of(5) {
        0
    } else if x.is_multiple_of(7) {
        2
    } else {
        1
    };
    (0..n).map(move |k| 2 * x + k)
}

fn expected(items: u64) -> Vec<u64> {
    let mut v: Vec<u64> = (0..items).flat_map(fan).collect();
    v.push(SENTINEL);
    v
}

#[derive(Default)]
struct Fan {
    panic_at: Option<u64>,
    idled: Arc<AtomicBool>,
}

impl Stage for Fan {
    type In = u64;
    type Out = u64;

    fn process<E: Emit<u64>>(&mut self, item: u64, out: &mut E) {
        if self.panic_at == Some(item) {
            panic!("stage fails at item {item}");
        }
        for y in fan(item) {
            out.emit(y);
        }
    }

    fn idle<E: Emit<u64>>(&mut self, _out: &mut E) {
        self.idled.store(true, Ordering::Release);
    }

    fn finish<E: Emit<u64>>(&mut self, out: &mut E) {
        out.emit(SENTINEL);
    }
}

#[derive(Default)]
struct Collect {
    got: Vec<u64>,
    panic_at: Option<usize>,
    idled: Arc<AtomicBool>,
    result: Arc<Mutex<Option<Vec<u64>>>>,
}

impl Sink for Collect {
    type In = u64;

    fn consume(&mut self, item: u64) {
        if self.panic_at == Some(self.got.len()) {
            panic!("sink fails at item {}", self.got.len());
        }
        self.got.push(item);
    }

    fn idle(&mut self) {
        self.idled.store(true, Ordering::Release);
    }

    fn finish(&mut self) {
        let got = std::mem::take(&mut self.got);
        *self.result.lock().expect("result lock") = Some(got);
    }
}

fn take_result(result: &Mutex<Option<Vec<u64>>>) -> Vec<u64> {
    result
        .lock()
        .expect("result lock")
        .take()
        .expect("sink finish ran")
}

/// Fails the test (instead of hanging it) if `cond` stays false for a minute.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn every_topology_and_wait_strategy_delivers_in_order() {
    const ITEMS: u64 = 20_000;
    for topology in Topology::ALL {
        for wait in WaitStrategy::ALL {
            let source = Counter::new(Some(ITEMS));
            let sink = Collect::default();
            let result = Arc::clone(&sink.result);
            let finished = Arc::clone(&source.finished);
            let outcome = Pipeline::new(source, Fan::default(), sink)
                .names(NAMES)
                // Busy-spinning three threads on two cores moves one ring-full per time slice:
                // a ring much smaller than this makes that case take seconds.
                .ring_capacity(256)
                .launch(&TopologyPlan::unpinned(topology, wait))
                .expect("launch")
                .join()
                .unwrap_or_else(|e| panic!("{topology} {wait}: {e}"));
            let want = expected(ITEMS);
            assert_eq!(take_result(&result), want, "{topology} {wait}");
            assert!(finished.load(Ordering::Acquire));
            let items: Vec<u64> = outcome.stages.iter().map(|s| s.items).collect();
            assert_eq!(
                items,
                [ITEMS, ITEMS, want.len() as u64],
                "{topology} {wait}"
            );
            assert_eq!(outcome.stages[1].name, "risk");
            assert_eq!(outcome.pinned, vec![false; topology.threads()]);
        }
    }
}

#[test]
fn stop_drains_everything_in_flight() {
    for topology in Topology::ALL {
        let mut source = Counter::new(None);
        source.idle_every = 0;
        let emitted = Arc::clone(&source.emitted);
        let sink = Collect::default();
        let result = Arc::clone(&sink.result);
        let handle = Pipeline::new(source, Fan::default(), sink)
            .names(NAMES)
            .ring_capacity(8)
            .launch(&TopologyPlan::unpinned(topology, WaitStrategy::SpinYield))
            .expect("launch");
        wait_until("items to flow", || handle.counts()[2] > 1_000);
        handle.stop();
        let outcome = handle.join().expect("clean stop");
        let sent = emitted.load(Ordering::Acquire);
        assert!(sent > 1_000);
        assert_eq!(take_result(&result), expected(sent), "{topology}");
        assert_eq!(outcome.stages[0].items, sent);
    }
}

#[test]
fn external_stop_signal_stops_the_pipeline() {
    let stop = StopSignal::new();
    let mut source = Counter::new(None);
    source.idle_every = 0;
    let handle = Pipeline::new(source, Fan::default(), Collect::default())
        .stop_signal(stop.clone())
        .launch(&TopologyPlan::unpinned(
            Topology::FuseLast2,
            WaitStrategy::BackoffPark,
        ))
        .expect("launch");
    wait_until("items to flow", || handle.counts()[0] > 100);
    stop.flag().store(true, Ordering::Release);
    wait_until("threads to end", || handle.is_finished());
    handle.join().expect("clean stop");
}

#[test]
fn dropping_the_handle_stops_and_joins() {
    let mut source = Counter::new(None);
    source.idle_every = 0;
    let finished = Arc::clone(&source.finished);
    let handle = Pipeline::new(source, Fan::default(), Collect::default())
        .launch(&TopologyPlan::unpinned(
            Topology::Threads3,
            WaitStrategy::SpinYield,
        ))
        .expect("launch");
    drop(handle);
    assert!(finished.load(Ordering::Acquire), "the source was stopped");
}

#[test]
fn a_panic_names_its_stage_in_every_topology() {
    for topology in Topology::ALL {
        for (culprit, culprit_name) in NAMES.iter().enumerate() {
            let mut source = Counter::new(None);
            let mut stage = Fan::default();
            let mut sink = Collect::default();
            match culprit {
                0 => source.panic_at = Some(500),
                1 => stage.panic_at = Some(501),
                _ => sink.panic_at = Some(300),
            }
            // A tiny ring, so that upstream threads are blocked on a full ring when it happens.
            let err = Pipeline::new(source, stage, sink)
                .names(NAMES)
                .ring_capacity(2)
                .launch(&TopologyPlan::unpinned(topology, WaitStrategy::SpinYield))
                .expect("launch")
                .join()
                .expect_err("a stage panicked");
            match err {
                RuntimeError::StagePanicked { stage, message } => {
                    assert_eq!(stage, *culprit_name, "{topology}");
                    assert!(message.contains("fails at item"), "{message}");
                }
                other => panic!("{topology}: expected a stage panic, got {other}"),
            }
        }
    }
}

#[test]
fn idle_hooks_run_in_every_topology() {
    for topology in Topology::ALL {
        let mut source = Counter::new(Some(10));
        let stage = Fan::default();
        let sink = Collect::default();
        source.wait_for = vec![Arc::clone(&stage.idled), Arc::clone(&sink.idled)];
        let result = Arc::clone(&sink.result);
        Pipeline::new(source, stage, sink)
            .launch(&TopologyPlan::unpinned(topology, WaitStrategy::BackoffPark))
            .expect("launch")
            .join()
            .expect("finishes once both idle hooks ran");
        assert_eq!(take_result(&result), expected(10));
    }
}

#[test]
fn pinned_threads_run_on_the_available_cores() {
    let cores = available_cores();
    if cores.is_empty() {
        println!("skipped: core list unavailable on this platform");
        return;
    }
    for topology in Topology::ALL {
        let threads = (0..topology.threads())
            .map(|i| ThreadPlan {
                placement: Placement::Core(cores[i % cores.len()]),
                wait: WaitStrategy::SpinYield,
            })
            .collect();
        let sink = Collect::default();
        let result = Arc::clone(&sink.result);
        let outcome = Pipeline::new(Counter::new(Some(5_000)), Fan::default(), sink)
            .launch(&TopologyPlan::manual(topology, threads))
            .expect("launch")
            .join()
            .expect("pinned run");
        assert_eq!(outcome.pinned, vec![true; topology.threads()]);
        assert_eq!(take_result(&result), expected(5_000));
    }
}

#[test]
fn pinning_to_a_missing_core_is_an_error() {
    let plan = TopologyPlan::manual(
        Topology::FuseLast2,
        vec![
            ThreadPlan {
                placement: Placement::Unpinned,
                wait: WaitStrategy::BackoffPark,
            },
            ThreadPlan {
                placement: Placement::Core(1000),
                wait: WaitStrategy::BackoffPark,
            },
        ],
    );
    let err = Pipeline::new(Counter::new(None), Fan::default(), Collect::default())
        .names(NAMES)
        .launch(&plan)
        .expect("launch")
        .join()
        .expect_err("core 1000 does not exist here");
    assert!(
        matches!(&err, RuntimeError::Pin { thread, core: 1000 } if thread == "brink-risk+emit"),
        "{err}"
    );
    // Beyond the OS's CPU set: refused without calling into the OS.
    let plan = TopologyPlan::manual(
        Topology::Fused1,
        vec![ThreadPlan {
            placement: Placement::Core(1 << 20),
            wait: WaitStrategy::BackoffPark,
        }],
    );
    let err = Pipeline::new(Counter::new(None), Fan::default(), Collect::default())
        .launch(&plan)
        .expect("launch")
        .join()
        .expect_err("core 2^20 cannot exist");
    assert!(matches!(err, RuntimeError::Pin { .. }), "{err}");
}

#[test]
fn bad_plans_and_capacities_are_refused_before_starting() {
    let plan = TopologyPlan::manual(Topology::Threads3, Vec::new());
    let err = Pipeline::new(Counter::new(None), Fan::default(), Collect::default())
        .launch(&plan)
        .expect_err("no threads listed");
    assert!(matches!(
        err,
        RuntimeError::PlanMismatch {
            got: 0,
            want: 3,
            ..
        }
    ));
    let err = Pipeline::new(Counter::new(None), Fan::default(), Collect::default())
        .ring_capacity(1000)
        .launch(&TopologyPlan::unpinned(
            Topology::Threads3,
            WaitStrategy::BusySpin,
        ))
        .expect_err("1000 is not a power of two");
    assert!(err.to_string().contains("1024"), "{err}");
}

#[test]
fn auto_fits_the_plan_to_the_cores() {
    for n in 0..=8_usize {
        let cores: Vec<usize> = (10..10 + n).collect();
        let plan = TopologyPlan::auto(&cores);
        assert_eq!(plan.threads.len(), plan.topology.threads(), "{n} cores");
        assert!(!plan.reasons.is_empty());
        let used: Vec<usize> = plan
            .threads
            .iter()
            .filter_map(|t| match t.placement {
                Placement::Core(id) => Some(id),
                Placement::Unpinned => None,
            })
            .collect();
        assert!(used.iter().all(|id| cores.contains(id)), "{n}: {used:?}");
        let mut distinct = used.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), used.len(), "one thread per core");
        let expected_topology = match n {
            0 | 1 => Topology::Fused1,
            2 => Topology::FuseLast2,
            _ => Topology::Threads3,
        };
        assert_eq!(plan.topology, expected_topology, "{n} cores");
        if n >= 4 {
            assert!(!used.contains(&cores[0]), "first core left to the OS");
            assert!(
                plan.threads
                    .iter()
                    .all(|t| t.wait == WaitStrategy::BusySpin)
            );
        } else {
            assert!(
                plan.threads
                    .iter()
                    .all(|t| t.wait != WaitStrategy::BusySpin)
            );
        }
        let text = plan.to_string();
        assert!(text.contains("because"), "{text}");
    }
}

#[test]
fn the_auto_plan_runs_on_this_machine() {
    let plan = TopologyPlan::auto(&available_cores());
    println!("{plan}");
    let sink = Collect::default();
    let result = Arc::clone(&sink.result);
    let outcome = Pipeline::new(Counter::new(Some(50_000)), Fan::default(), sink)
        .names(NAMES)
        .launch(&plan)
        .expect("launch")
        .join()
        .expect("auto run");
    assert_eq!(take_result(&result), expected(50_000));
    assert_eq!(outcome.plan, plan);
}

#[test]
fn the_channel_baseline_keeps_the_runtime_contract() {
    const ITEMS: u64 = 5_000;
    for topology in Topology::ALL {
        // Delivery in order, every stage's count.
        let source = Counter::new(Some(ITEMS));
        let sink = Collect::default();
        let result = Arc::clone(&sink.result);
        let outcome = Pipeline::new(source, Fan::default(), sink)
            .names(NAMES)
            .ring_capacity(64)
            .links(LinkKind::Channel)
            .launch(&TopologyPlan::unpinned(topology, WaitStrategy::SpinYield))
            .expect("launch")
            .join()
            .unwrap_or_else(|e| panic!("{topology}: {e}"));
        let want = expected(ITEMS);
        assert_eq!(take_result(&result), want, "{topology}");
        assert_eq!(outcome.stages[2].items, want.len() as u64, "{topology}");

        // A graceful stop drains what is in flight.
        let mut source = Counter::new(None);
        source.idle_every = 0;
        let emitted = Arc::clone(&source.emitted);
        let sink = Collect::default();
        let result = Arc::clone(&sink.result);
        let handle = Pipeline::new(source, Fan::default(), sink)
            .names(NAMES)
            .ring_capacity(8)
            .links(LinkKind::Channel)
            .launch(&TopologyPlan::unpinned(topology, WaitStrategy::SpinYield))
            .expect("launch");
        wait_until("items to flow", || handle.counts()[2] > 1_000);
        handle.stop();
        handle.join().expect("clean stop");
        let sent = emitted.load(Ordering::Acquire);
        assert_eq!(take_result(&result), expected(sent), "{topology}");

        // A panic downstream of a blocked producer is still named and every thread joined.
        let sink = Collect {
            panic_at: Some(300),
            ..Collect::default()
        };
        let err = Pipeline::new(Counter::new(None), Fan::default(), sink)
            .names(NAMES)
            .ring_capacity(2)
            .links(LinkKind::Channel)
            .launch(&TopologyPlan::unpinned(topology, WaitStrategy::SpinYield))
            .expect("launch")
            .join()
            .expect_err("the sink panicked");
        assert!(
            matches!(err, RuntimeError::StagePanicked { stage: "emit", .. }),
            "{topology}: {err}"
        );
    }
}

//! The risk stage with its shards on threads passes on exactly what it passes on with them
//! inline: the same entries in the same order, reloads included, whatever the threads' timing.

use std::sync::{Arc, Mutex};

use super::{Inbound, Outbound, RiskStage};
use crate::ingest::{FeedBody, FeedEvent};
use crate::margin::Rate;
use crate::ops::RiskControl;
use crate::ops::control::ReloadRequest;
use crate::recovery::Entry;
use crate::risk::shard::Shards;
use crate::risk::shard::tests::{drive_recorded, loaded};
use crate::runtime::{Emit, ShardPlan, Stage, WaitStrategy};

/// Collects what the stage passes on.
struct Collect(Vec<Entry>);

impl Emit<Outbound> for Collect {
    fn emit(&mut self, item: Outbound) {
        self.0.push(item.entry);
    }
}

/// Inputs of a closed-loop run (ticks, funding, collateral, fills of the orders), with an
/// ingest alert every 500 inputs.
fn inputs() -> Vec<FeedEvent> {
    let mut events = Vec::new();
    let mut scratch = Shards::split(loaded(1_000_000), 3);
    drive_recorded(&mut scratch, 29, 2_500, &mut |e| events.push(*e));
    for (i, e) in events.iter_mut().enumerate() {
        if i % 500 == 499 {
            e.body = FeedBody::Alert(crate::shm::Alert {
                code: crate::shm::alert_code::SEQUENCE_GAP,
                arg0: i as u64,
                arg1: 1,
            });
        }
    }
    events
}

/// Runs `events` through a risk stage over 3 shards as `plan` says, with a reload (a lower call
/// level) waiting from the start; returns what it passed on and what the control recorded.
fn run(plan: &ShardPlan, events: &[FeedEvent], ring: usize) -> (Vec<Entry>, u64, Shards) {
    let shards = Shards::split(loaded(1_000_000), 3);
    let control = Arc::new(RiskControl::default());
    let mut params = shards.first().params();
    params.config.call_level = Rate(700_000_000);
    params.config.rearm_level = Rate(600_000_000);
    control.post(ReloadRequest {
        generation: 1,
        params,
    });
    let report = Arc::new(Mutex::new(None));
    let mut stage = RiskStage::new(shards, None, report.clone(), Arc::default())
        .on_threads(plan, Vec::new(), ring, WaitStrategy::SpinYield)
        .expect("threads start")
        .with_control(control.clone());
    let mut out = Collect(Vec::new());
    for (i, &event) in events.iter().enumerate() {
        stage.process(
            Inbound {
                event,
                handoff_ns: 0,
            },
            &mut out,
        );
        if i % 97 == 0 {
            stage.idle(&mut out);
        }
    }
    stage.finish(&mut out);
    let applied = control.take_applied();
    assert_eq!(applied.len(), 1, "the reload is recorded once");
    assert!(applied[0].result.is_ok());
    let shards = report.lock().unwrap().take().expect("handed back");
    (out.0, applied[0].after_seq, shards)
}

#[test]
fn shard_threads_pass_on_what_inline_shards_do() {
    let events = inputs();
    let (inline, inline_after, inline_shards) = run(&ShardPlan::inline(3), &events, 64);
    let outputs = inline
        .iter()
        .filter(|e| matches!(e, Entry::Output(_)))
        .count();
    assert!(
        outputs > 200,
        "only {outputs} outputs: too little to compare"
    );
    // Every input is passed on and closed, in order.
    let inputs = inline
        .iter()
        .filter(|e| matches!(e, Entry::Input(_)))
        .count();
    let closes = inline
        .iter()
        .filter(|e| matches!(e, Entry::InputDone { .. }))
        .count();
    let reloads = inline
        .iter()
        .filter(|e| matches!(e, Entry::Reload { generation: 1, .. }))
        .count();
    // The reload is passed on like an input: its entry, its decisions, its close.
    assert_eq!(
        (inputs, reloads, closes),
        (events.len(), 1, events.len() + 1)
    );
    for ring in [2usize, 64] {
        let plan = ShardPlan::threads(3, WaitStrategy::SpinYield, &[]);
        let (threaded, after, shards) = run(&plan, &events, ring);
        assert_eq!(after, inline_after, "ring {ring}: the reload's place");
        assert_eq!(threaded.len(), inline.len(), "ring {ring}");
        for (i, (a, b)) in threaded.iter().zip(&inline).enumerate() {
            assert_eq!(a, b, "ring {ring}: entry {i}");
        }
        assert_eq!(shards.counters(), inline_shards.counters());
        let bytes = |s: &Shards| {
            let mut w = crate::recovery::codec::Writer::new();
            s.encode_state(&mut w);
            w.into_bytes()
        };
        assert_eq!(bytes(&shards), bytes(&inline_shards), "ring {ring}");
    }
}

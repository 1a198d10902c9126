//! The risk stage's operator link: a one-slot reload mailbox and the gauges `brink status`
//! shows (insurance fund, circuit breaker, open jobs, last input).
//!
//! The ops thread [`post`](RiskControl::post)s validated parameters; the risk stage looks at the
//! `pending` flag every [`CHECK_EVERY`] inputs and when idle, and only when it is set takes the
//! slot's lock, applies the parameters at that input boundary
//! ([`Shards::reload`](crate::risk::shard::Shards::reload)) and leaves the result for the ops
//! thread. The parameters, encoded when posted, wait here for the emit stage, which journals
//! them with the reload entry so that a restart applies them at the same place. The per-input cost is one
//! Acquire load every [`CHECK_EVERY`] inputs; no lock is taken unless a reload is
//! waiting. Gauges are published with `try_lock` where the stage already publishes its
//! counters (never waiting on the ops thread).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::recovery::codec::Writer;
use crate::risk::reload::{ReloadError, ReloadOutcome, RiskParams};
use crate::risk::shard::ShardSummary;
use crate::shm::MONEY_DECIMALS;

/// The risk stage looks for a waiting reload every this many inputs (and whenever idle).
pub const CHECK_EVERY: u64 = 64;

/// A reload waiting for the risk stage.
#[derive(Debug, Clone)]
pub struct ReloadRequest {
    /// Numbered by the ops thread from 1.
    pub generation: u64,
    /// The new parameters (already validated against the running instruments).
    pub params: RiskParams,
}

/// What the risk stage did with a [`ReloadRequest`].
#[derive(Debug, Clone)]
pub struct ReloadApplied {
    /// The request's generation.
    pub generation: u64,
    /// Seq of the last input applied before the reload.
    pub after_seq: u64,
    /// The outcome, or why the engine refused it.
    pub result: Result<ReloadOutcome, ReloadError>,
}

/// Risk-stage state shown by `brink status`, published off the hot path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RiskGauges {
    /// Insurance fund balance, 10^-8 units (`i64::MIN` when it does not fit).
    pub fund_money: i64,
    /// Times the fund's circuit breaker tripped.
    pub breaker_trips: u64,
    /// Whether it is tripped now.
    pub breaker_tripped: bool,
    /// Liquidation jobs open.
    pub open_jobs: u64,
    /// Seq of the last input applied (0 before the first).
    pub last_seq: u64,
    /// Inputs applied.
    pub inputs: u64,
}

/// Shared between the ops thread and the risk stage; see the module docs.
#[derive(Debug, Default)]
pub struct RiskControl {
    /// Set after a request is put in `slot`; cleared by the stage before it takes the slot.
    pending: AtomicBool,
    /// At most one request: a newer one replaces an older one not yet taken.
    slot: Mutex<Option<ReloadRequest>>,
    /// Results not yet collected by the ops thread, oldest first.
    applied: Mutex<Vec<ReloadApplied>>,
    /// Encoded parameters of posted reloads the emit stage has not journaled yet.
    records: Mutex<Vec<(u64, Vec<u8>)>>,
    gauges: Mutex<RiskGauges>,
}

impl RiskControl {
    /// Hands a request to the risk stage (replacing one it has not taken yet), with its
    /// parameters encoded for the journal.
    pub fn post(&self, request: ReloadRequest) {
        let mut w = Writer::new();
        request.params.encode(&mut w);
        if let Ok(mut slot) = self.slot.lock() {
            if let (Some(old), Ok(mut records)) = (slot.as_ref(), self.records.lock()) {
                records.retain(|(g, _)| *g != old.generation);
            }
            if let Ok(mut records) = self.records.lock() {
                records.push((request.generation, w.into_bytes()));
            }
            *slot = Some(request);
        }
        // Release: pairs with the Acquire swap in `take_pending`; the request itself travels
        // under the slot's lock.
        self.pending.store(true, Ordering::Release);
    }

    /// Whether a request waits (one atomic load).
    #[inline]
    pub fn is_pending(&self) -> bool {
        // Acquire: pairs with the Release store in `post`.
        self.pending.load(Ordering::Acquire)
    }

    /// The risk stage's side: the waiting request, if any, taken out of the slot. The stage
    /// applies it to every shard at an input boundary and [`record`](Self::record)s the result.
    pub fn take_pending(&self) -> Option<ReloadRequest> {
        // Acquire: pairs with the Release store in `post`. Cleared before the slot is taken, so
        // a request posted meanwhile sets it again and is seen next time.
        if !self.pending.swap(false, Ordering::Acquire) {
            return None;
        }
        self.slot.lock().ok().and_then(|mut s| s.take())
    }

    /// Records what the risk stage did with a request, for the ops thread.
    pub fn record(&self, applied: ReloadApplied) {
        if let Ok(mut a) = self.applied.lock() {
            a.push(applied);
        }
    }

    /// The emit stage's side: the encoded parameters of reload `generation`, to journal with
    /// its reload entry (taken once).
    pub fn take_params_bytes(&self, generation: u64) -> Option<Vec<u8>> {
        let mut records = self.records.lock().ok()?;
        let at = records.iter().position(|(g, _)| *g == generation)?;
        Some(records.remove(at).1)
    }

    /// The ops thread's side: results of the reloads applied since the last call.
    pub fn take_applied(&self) -> Vec<ReloadApplied> {
        self.applied
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default()
    }

    /// Publishes the risk stage's gauges unless the ops thread holds the lock right now.
    pub fn publish(&self, summary: &ShardSummary, last_seq: u64, inputs: u64) {
        if let Ok(mut g) = self.gauges.try_lock() {
            *g = Self::gauges_of(summary, last_seq, inputs);
        }
    }

    /// Publishes the risk stage's gauges, waiting for the lock (at shutdown).
    pub fn publish_final(&self, summary: &ShardSummary, last_seq: u64, inputs: u64) {
        if let Ok(mut g) = self.gauges.lock() {
            *g = Self::gauges_of(summary, last_seq, inputs);
        }
    }

    fn gauges_of(summary: &ShardSummary, last_seq: u64, inputs: u64) -> RiskGauges {
        RiskGauges {
            fund_money: summary
                .fund
                .balance()
                .to_scaled_floor(MONEY_DECIMALS)
                .and_then(|v| i64::try_from(v).ok())
                .unwrap_or(i64::MIN),
            breaker_trips: summary.breaker_trips,
            breaker_tripped: summary.breaker_tripped,
            open_jobs: summary.open_jobs,
            last_seq,
            inputs,
        }
    }

    /// The gauges as last published.
    pub fn gauges(&self) -> RiskGauges {
        self.gauges.lock().map(|g| *g).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::margin::{InstrumentTable, MarkPrices, Money};
    use crate::risk::shard::Shards;
    use crate::risk::{RiskConfig, RiskEngine, Scan};

    fn empty_engine() -> Shards {
        Shards::single(
            RiskEngine::new(
                InstrumentTable::new(),
                MarkPrices::new(0),
                Vec::new(),
                RiskConfig::default(),
                Scan::Index,
            )
            .with_fund(Money::from_int(12)),
        )
    }

    #[test]
    fn a_posted_reload_is_taken_once_with_its_journal_bytes() {
        let control = RiskControl::default();
        let mut engine = empty_engine();
        assert!(control.take_pending().is_none());
        let config = RiskConfig {
            rearm_level: crate::margin::Rate(600_000_000),
            ..RiskConfig::default()
        };
        for generation in [1, 2] {
            control.post(ReloadRequest {
                generation,
                params: RiskParams {
                    instruments: Vec::new(),
                    config,
                },
            });
        }
        assert!(control.is_pending());
        let request = control.take_pending().expect("a request waits");
        assert!(control.take_pending().is_none());
        // The newer request replaced the older one, and its parameters wait for the journal.
        assert_eq!(request.generation, 2);
        assert!(control.take_params_bytes(1).is_none());
        let bytes = control.take_params_bytes(2).expect("encoded when posted");
        let decoded =
            RiskParams::decode(&mut crate::recovery::codec::Reader::new(&bytes)).expect("decodes");
        assert_eq!(decoded.config, config);
        assert!(control.take_params_bytes(2).is_none(), "taken once");
        let mut outs = Vec::new();
        let result = engine.reload(&request.params, 5, &mut |o| outs.push(o));
        control.record(ReloadApplied {
            generation: request.generation,
            after_seq: 5,
            result,
        });
        let applied = control.take_applied();
        assert_eq!(applied.len(), 1);
        assert_eq!((applied[0].generation, applied[0].after_seq), (2, 5));
        assert!(
            applied[0]
                .result
                .as_ref()
                .is_ok_and(|o| o.thresholds_changed)
        );
        assert_eq!(engine.first().config().rearm_level.0, 600_000_000);
        assert_eq!(outs.len(), 1, "the reload alert: {outs:?}");
        assert!(control.take_applied().is_empty());
        control.publish(&engine.summary(), 5, 9);
        let g = control.gauges();
        assert_eq!((g.fund_money, g.last_seq, g.inputs), (1_200_000_000, 5, 9));
    }
}

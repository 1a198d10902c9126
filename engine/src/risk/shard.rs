//! Accounts partitioned by id over N risk engines ("shards"), so that N threads can share the
//! risk stage's work on one machine.
//!
//! ## Who owns what
//! - **Accounts** belong to shard [`shard_of`]`(id, n)` (a SplitMix64 mix of the id, modulo n,
//!   so structured ids still spread evenly). Each shard is a whole [`RiskEngine`] over its own
//!   accounts: its own band index, liquidation jobs and ADL rankings.
//! - **Instruments, marks and thresholds** are the same in every shard: every shard sees every
//!   tick, status, funding and heartbeat record, and every reload.
//! - **The insurance fund is split into slices**, one per shard: the configured fund is divided
//!   evenly (the remainder of the division goes to shard 0), and each shard's liquidation fees,
//!   surpluses, covers, takeovers and circuit breaker work on its own slice. The venue's fund
//!   is the sum of the slices. A slice never lends to another, so a shard whose slice is
//!   exhausted sends remainders to ADL while another slice could still have carried them.
//! - **ADL** ranks the opposite-side holders of the bankrupt account's shard only.
//!
//! With one shard nothing changes: [`Shards::single`] is the engine as it was. The partition is
//! what a venue gets from N brink processes each owning an account range, on one machine.
//!
//! ## Routing ([`route`])
//! | input | shards |
//! |---|---|
//! | tick, status, funding, heartbeat | all, in shard order |
//! | ordinary fill, collateral change | the account's shard |
//! | fill of a liquidation order | the shard whose number the order id carries (`id % n`) |
//! | ingest alert | shard 0 (it is passed through once) |
//!
//! Order ids carry their shard: every order id a shard emits is congruent to the shard's number
//! modulo n ([`ShardTag::tag`]), so the fill of the fund's own orders (account
//! [`FUND_ACCOUNT_ID`](super::takeover::FUND_ACCOUNT_ID) in every shard) finds its shard, and no
//! two shards can emit the same id.
//!
//! ## Determinism
//! The outputs of one input are those of shard 0, then shard 1, and so on ([`Shards::apply`]).
//! The risk stage merges the outputs of shard threads in that order, whatever their timing, so a
//! sharded run is a pure function of its input sequence and replays byte for byte.

use crate::ingest::{FeedBody, FeedEvent};
use crate::margin::Money;
use crate::recovery::codec::{DecodeError, Reader, Writer};
use crate::shm::{Input, Output, alert_code};

use super::fund::InsuranceFund;
use super::reload::{ReloadError, ReloadOutcome, RiskParams};
use super::{RiskCounters, RiskEngine};

/// Most shards a risk stage runs.
pub const MAX_SHARDS: usize = 64;

/// The shard that owns account `id` among `n` (0 when `n` ≤ 1).
pub fn shard_of(id: u64, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let mut z = id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z % n as u64) as usize
}

/// Which shards an input goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Every shard, in shard order.
    All,
    /// One shard.
    One(usize),
}

impl Route {
    /// Whether shard `k` receives the input.
    #[inline]
    pub fn includes(self, k: usize) -> bool {
        match self {
            Route::All => true,
            Route::One(s) => s == k,
        }
    }
}

/// Where `event` goes among `n` shards (see the module docs).
pub fn route(event: &FeedEvent, n: usize) -> Route {
    if n <= 1 {
        return Route::One(0);
    }
    match event.body {
        FeedBody::Alert(_) => Route::One(0),
        FeedBody::Input(Input::Fill(f)) if f.liquidation_order_id != 0 => {
            Route::One((f.liquidation_order_id % n as u64) as usize)
        }
        FeedBody::Input(Input::Fill(f)) => Route::One(shard_of(f.account, n)),
        FeedBody::Input(Input::Collateral(c)) => Route::One(shard_of(c.account, n)),
        FeedBody::Input(
            Input::Tick(_) | Input::Status(_) | Input::Funding(_) | Input::Heartbeat(_),
        ) => Route::All,
    }
}

/// A shard's number and the shard count, which its order ids carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardTag {
    /// This shard, `0..count`.
    pub index: u32,
    /// Shards in the risk stage (1: unsharded).
    pub count: u32,
}

impl Default for ShardTag {
    fn default() -> Self {
        ShardTag { index: 0, count: 1 }
    }
}

impl ShardTag {
    /// `id` moved to the nearest value congruent to `index` modulo `count` (unchanged with one
    /// shard; never 0).
    #[inline]
    pub fn tag(self, id: u64) -> u64 {
        if self.count <= 1 {
            return id.max(1);
        }
        let (c, k) = (u64::from(self.count), u64::from(self.index));
        let base = id - id % c;
        let tagged = match base.checked_add(k) {
            Some(t) => t,
            None => base - c + k,
        };
        if tagged == 0 { c } else { tagged }
    }

    /// The next id after `id` that carries the same tag (for collision avoidance).
    #[inline]
    pub fn next(self, id: u64) -> u64 {
        self.tag(id.wrapping_add(u64::from(self.count.max(1))))
    }
}

/// What a risk stage shows of its shards: counters summed, fund slices summed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSummary {
    /// Counters of every shard, summed; counts of per-instrument events that every shard sees
    /// (ticks, refused ticks, settlements, rescales) are shard 0's.
    pub counters: RiskCounters,
    /// The insurance fund: the slices' buckets summed.
    pub fund: InsuranceFund,
    /// Circuit-breaker trips, summed over the slices.
    pub breaker_trips: u64,
    /// Whether any slice's breaker is tripped now.
    pub breaker_tripped: bool,
    /// Liquidation jobs open, summed.
    pub open_jobs: u64,
}

impl ShardSummary {
    /// One engine's summary.
    pub fn of(engine: &RiskEngine) -> ShardSummary {
        ShardSummary {
            counters: engine.counters(),
            fund: *engine.fund(),
            breaker_trips: engine.breaker().trips(),
            breaker_tripped: engine.breaker().tripped(),
            open_jobs: engine.open_jobs() as u64,
        }
    }

    /// Adds the summary of another shard (`self` holds shard 0's or the sum so far).
    pub fn absorb(&mut self, other: &ShardSummary) {
        let (c, o) = (&mut self.counters, &other.counters);
        c.evaluations += o.evaluations;
        c.margin_calls += o.margin_calls;
        c.liquidations += o.liquidations;
        c.unevaluable += o.unevaluable;
        c.collateral += o.collateral;
        c.orders += o.orders;
        c.liquidation_fills += o.liquidation_fills;
        c.fills += o.fills;
        c.fills_refused += o.fills_refused;
        c.adl += o.adl;
        c.adl_shortfall += o.adl_shortfall;
        c.takeovers += o.takeovers;
        c.funding += o.funding;
        self.fund = self.fund.plus(&other.fund);
        self.breaker_trips += other.breaker_trips;
        self.breaker_tripped |= other.breaker_tripped;
        self.open_jobs += other.open_jobs;
    }

    /// The summary of several shards, in shard order.
    pub fn sum<'a>(parts: impl IntoIterator<Item = &'a ShardSummary>) -> ShardSummary {
        let mut parts = parts.into_iter();
        let mut total = parts.next().copied().unwrap_or(ShardSummary {
            counters: RiskCounters::default(),
            fund: InsuranceFund::new(Money::ZERO),
            breaker_trips: 0,
            breaker_tripped: false,
            open_jobs: 0,
        });
        for p in parts {
            total.absorb(p);
        }
        total
    }
}

/// The risk stage's engines: one per shard, in shard order. Invariant: at least one engine,
/// engine `k` tagged `ShardTag { index: k, count: len }`.
#[derive(Debug)]
pub struct Shards {
    engines: Vec<RiskEngine>,
}

impl Shards {
    /// One engine, unsharded.
    pub fn single(engine: RiskEngine) -> Shards {
        Shards {
            engines: vec![engine],
        }
    }

    /// Splits a freshly loaded engine (no input applied yet) into `n` shards (clamped to
    /// `1..=MAX_SHARDS`): accounts by [`shard_of`], the fund in even slices (the remainder to
    /// shard 0), instruments, marks and thresholds copied. Each shard evaluates and bands its
    /// accounts as a new engine does.
    pub fn split(engine: RiskEngine, n: usize) -> Shards {
        let n = n.clamp(1, MAX_SHARDS);
        if n == 1 {
            return Shards::single(engine);
        }
        let parts = engine.into_load_parts();
        // Each shard's accounts are copied shard by shard, so that a shard's positions lie
        // together in memory rather than interleaved with the other shards' (a tick walks them
        // in order).
        let owner: Vec<usize> = parts.accounts.iter().map(|a| shard_of(a.id(), n)).collect();
        let accounts: Vec<Vec<crate::margin::Account>> = (0..n)
            .map(|k| {
                parts
                    .accounts
                    .iter()
                    .zip(&owner)
                    .filter(|&(_, &o)| o == k)
                    .map(|(a, _)| a.clone())
                    .collect()
            })
            .collect();
        drop(parts.accounts);
        let slices = fund_slices(parts.fund, n);
        let engines = accounts
            .into_iter()
            .zip(slices)
            .enumerate()
            .map(|(k, (accounts, fund))| {
                RiskEngine::new(
                    parts.table.clone(),
                    parts.marks.clone(),
                    accounts,
                    parts.config,
                    parts.scan,
                )
                .with_fund(fund)
                .with_shard(ShardTag {
                    index: k as u32,
                    count: n as u32,
                })
            })
            .collect();
        Shards { engines }
    }

    /// Rebuilds from engines in shard order (as [`Shards::into_engines`] left them).
    pub fn from_engines(engines: Vec<RiskEngine>) -> Option<Shards> {
        let n = engines.len();
        let tagged = engines.iter().enumerate().all(|(k, e)| {
            n == 1
                || e.shard()
                    == ShardTag {
                        index: k as u32,
                        count: n as u32,
                    }
        });
        (n >= 1 && tagged).then_some(Shards { engines })
    }

    /// Number of shards.
    pub fn len(&self) -> usize {
        self.engines.len()
    }

    /// Never true (there is always one engine); for the `len` convention.
    pub fn is_empty(&self) -> bool {
        self.engines.is_empty()
    }

    /// The engines, in shard order.
    pub fn engines(&self) -> &[RiskEngine] {
        &self.engines
    }

    /// The engines, in shard order, mutably.
    pub fn engines_mut(&mut self) -> &mut [RiskEngine] {
        &mut self.engines
    }

    /// The engines, in shard order.
    pub fn into_engines(self) -> Vec<RiskEngine> {
        self.engines
    }

    /// Shard 0 (the only one when unsharded).
    pub fn first(&self) -> &RiskEngine {
        &self.engines[0]
    }

    /// Applies one input the way the risk stage does: an ingest alert passes through once; a
    /// feed record goes to the shards [`route`] names, in shard order, each passing its
    /// decisions to `out`.
    pub fn apply(&mut self, event: &FeedEvent, out: &mut impl FnMut(Output)) {
        let route = route(event, self.engines.len());
        for (k, engine) in self.engines.iter_mut().enumerate() {
            if route.includes(k) {
                apply_one(engine, event, out);
            }
        }
    }

    /// Reloads tiers and thresholds in every shard after input `seq` (see
    /// [`RiskEngine::reload`]): one `config_reloaded` alert (shard 0's), then each shard's
    /// decisions in shard order. Every shard checks the same instruments, so all accept or all
    /// refuse; the outcome's counts are summed.
    pub fn reload(
        &mut self,
        params: &RiskParams,
        seq: u64,
        out: &mut impl FnMut(Output),
    ) -> Result<ReloadOutcome, ReloadError> {
        self.engines[0].check_reload(params)?;
        let mut total: Option<ReloadOutcome> = None;
        for (k, engine) in self.engines.iter_mut().enumerate() {
            let outcome = reload_one(engine, k, params, seq, out)?;
            total = Some(match total {
                None => outcome,
                Some(t) => t.plus(&outcome),
            });
        }
        Ok(total.unwrap_or_default())
    }

    /// Counters, fund and breaker of every shard together.
    pub fn summary(&self) -> ShardSummary {
        let parts: Vec<ShardSummary> = self.engines.iter().map(ShardSummary::of).collect();
        ShardSummary::sum(&parts)
    }

    /// Counters of every shard together (see [`ShardSummary::counters`]).
    pub fn counters(&self) -> RiskCounters {
        self.summary().counters
    }

    /// The insurance fund: every slice's buckets summed.
    pub fn fund(&self) -> InsuranceFund {
        self.summary().fund
    }

    /// Positions the fund's slices have taken over and still hold, shard by shard.
    pub fn fund_inventory(&self) -> Vec<crate::margin::Position> {
        self.engines
            .iter()
            .flat_map(|e| e.fund_inventory().iter().copied())
            .collect()
    }

    /// Every account, shard by shard.
    pub fn accounts(&self) -> impl Iterator<Item = &crate::margin::Account> + '_ {
        self.engines.iter().flat_map(|e| e.accounts().iter())
    }

    /// Writes every shard's state: the count, then each engine's
    /// [`encode_state`](RiskEngine::encode_state) in shard order. Call it between two inputs.
    pub fn encode_state(&self, w: &mut Writer) {
        w.len_of(self.engines.len());
        for e in &self.engines {
            e.encode_state(w);
        }
    }

    /// Replaces every shard's state with one written by [`encode_state`](Self::encode_state)
    /// (or assembled from [`encode_one`] parts), onto shards built from the same configuration.
    pub fn restore_state(self, r: &mut Reader) -> Result<Shards, DecodeError> {
        let n = r.len_of(8)?;
        if n != self.engines.len() {
            return Err(r.invalid(
                "the state has another number of risk shards than the configuration \
                 (topology.shards): restore that setting, or start afresh",
            ));
        }
        let mut engines = Vec::with_capacity(n);
        for e in self.engines {
            engines.push(e.restore_state_part(r)?);
        }
        r.finish()?;
        Ok(Shards { engines })
    }
}

/// One shard's part of [`Shards::encode_state`] (a shard thread encodes its own).
pub fn encode_one(engine: &RiskEngine) -> Vec<u8> {
    let mut w = Writer::new();
    engine.encode_state(&mut w);
    w.into_bytes()
}

/// Applies one input to one shard the way the risk stage does (an ingest alert passes through).
pub fn apply_one(engine: &mut RiskEngine, event: &FeedEvent, out: &mut impl FnMut(Output)) {
    match event.body {
        FeedBody::Alert(alert) => out(Output::Alert(alert)),
        FeedBody::Input(_) => engine.on_event(event, out),
    }
}

/// Reloads shard `k`: shard 0 passes the `config_reloaded` alert on, the others keep only their
/// decisions (the reload is announced once).
pub fn reload_one(
    engine: &mut RiskEngine,
    k: usize,
    params: &RiskParams,
    seq: u64,
    out: &mut impl FnMut(Output),
) -> Result<ReloadOutcome, ReloadError> {
    engine.reload(params, seq, &mut |o| match o {
        Output::Alert(a) if k > 0 && a.code == alert_code::CONFIG_RELOADED => {}
        _ => out(o),
    })
}

/// `fund` in `n` even slices, the remainder of the division (in the smallest money unit) to
/// the first.
fn fund_slices(fund: Money, n: usize) -> Vec<Money> {
    let bits = fund.to_bits();
    let share = bits / n as i128;
    let rest = bits - share * n as i128;
    (0..n)
        .map(|k| Money::from_bits(if k == 0 { share + rest } else { share }))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests;

//! Liquidation: sizing the reduction, working it as sliced IOC orders priced at the bankruptcy
//! price, booking the fills, and auto-deleveraging what the market would not take.
//!
//! ## Sizing (`RiskEngine::plan_reduction`)
//! At `equity ≤ MM` the unit is reduced until its margin ratio `MM/E` is back at the configured
//! target *after* the liquidation fee (evaluated at the mark). It is closed in full instead when
//! its ratio is at or above the full-liquidation ratio (or its equity is gone), when a partial
//! remainder would be below the instrument's minimum quantity, or for a position whose MMR is at
//! or below the liquidation fee rate (such a position is bankrupt at its own liquidation price).
//! A cross unit with several positions is reduced in [`Priority`] order: the first position is
//! cut by the least quantity (a binary search over lots, each step an exact evaluation) that
//! restores the target; if closing it whole is not enough, the next position follows.
//!
//! ## Working the orders
//! Each reduced position becomes a job. On every tick of its instrument a job with no child order
//! outstanding sends one: immediate-or-cancel, closing side, quantity at most `slice_share` of the
//! size shown at the best level it trades against, and a limit at the position's bankruptcy
//! price *as of that moment* (fees and earlier fills move it), rounded to the tick against the
//! account, so no liquidation order is ever priced worse than bankruptcy when it is sent. A short
//! bankrupt at every price sends nothing and waits for its deadline. No job ever closes more
//! than the position still holds (an ordinary fill may have reduced it meanwhile). While the
//! fund's circuit breaker ([`super::breaker`]) is tripped, jobs skip the market and go to ADL.
//! While the spread is wider than `max_spread`, the job holds. A child with no fill within
//! `child_timeout_ns` is taken as cancelled (the venue cancels the rest of an IOC at once) and the
//! next tick sends another. A full close-out whose unit is bankrupt at the mark (its limit cannot
//! fill) is taken over by the insurance fund at its limit when the fund can carry the loss
//! ([`super::takeover`]), and auto-deleveraged otherwise; a job whose last progress is older than
//! `fill_deadline_ns` is auto-deleveraged.
//!
//! ## Fills and the fund
//! A liquidation fill realises PnL at the fill price and pays the liquidation fee
//! (`rate · notional`) to the insurance fund. In a full liquidation the account is closed out at
//! the bankruptcy limit: a fill better than the limit moves the difference to the fund (a worse
//! one, impossible for an order limited there but booked if a venue reports it, is paid by the
//! fund); for an isolated position, the margin it hands back on closing goes to the fund. A cross wallet left negative is reset to zero by the fund; an isolated position's loss
//! beyond its margin is paid by the fund. What the fund cannot pay is recorded as bad debt.
//!
//! ## Auto-deleveraging
//! What the fund does not take over (its breaker is tripped, or the loss would exceed what it
//! can carry), a job past its deadline, and the fund's own inventory once its breaker trips: the
//! remaining quantity is closed at its limit against the opposite side's positions on the
//! instrument, ranked by `profit% × effective leverage` (`profit% ÷ effective leverage` when
//! losing), where `effective leverage = |mark value| / (mark value − bankruptcy value)`: the most
//! profitable, most leveraged first, ties by account id. Each counterparty gets an ADL record at
//! the bankrupt position's limit price; both sides are booked at that price with no fee, so the
//! proceeds of the two sides cancel exactly. The ranking and the closes: `risk::adl`.

use super::takeover::FUND;
use super::units::UnitState;
use super::{Book, RiskEngine};
use crate::margin::{
    Fill, Instrument, InstrumentId, MarginMode, MarginStatus, MarginSummary, Money, Price, Qty,
    Rate, to_tick_against,
};
use crate::num::wide;
use crate::shm::{self, Output, Side};

/// Order in which a cross unit's positions are reduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    /// Lower realised volatility first, then the deeper book (top-of-book notional), then the
    /// instrument id.
    #[default]
    CalmDeepFirst,
    /// Largest notional first, then the instrument id.
    LargestFirst,
    /// In the order the account holds them.
    AsHeld,
}

/// Thresholds of the liquidation procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiquidationConfig {
    /// Margin ratio a partial liquidation restores (after its fee). Default 0.6.
    pub target_ratio: Rate,
    /// Margin ratio at or above which the unit is closed in full. Default 2.0 (equity at or
    /// below half the maintenance margin).
    pub full_ratio: Rate,
    /// Largest child order as a share of the best level's size. Default 0.25.
    pub slice_share: Rate,
    /// Widest spread, relative to the mid, at which orders are sent. Default 0.01.
    pub max_spread: Rate,
    /// A child order without a fill for this long is taken as cancelled. Default 1 s.
    pub child_timeout_ns: u64,
    /// A job without progress for this long is auto-deleveraged. Default 5 s.
    pub fill_deadline_ns: u64,
    /// Order of reduction of a cross unit's positions.
    pub priority: Priority,
    /// The insurance fund's circuit breaker.
    pub breaker: super::breaker::BreakerConfig,
}

impl Default for LiquidationConfig {
    fn default() -> Self {
        LiquidationConfig {
            target_ratio: Rate(600_000_000),
            full_ratio: Rate(2_000_000_000),
            slice_share: Rate(250_000_000),
            max_spread: Rate(10_000_000),
            child_timeout_ns: 1_000_000_000,
            fill_deadline_ns: 5_000_000_000,
            priority: Priority::CalmDeepFirst,
            breaker: super::breaker::BreakerConfig::default(),
        }
    }
}

/// The child order a job has out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Child {
    pub order_id: u64,
    pub qty: i64,
    pub sent_ns: u64,
    /// Its limit: the bankruptcy price when it was sent, rounded against the account.
    pub limit_px: i64,
}

/// A position being liquidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Job {
    pub unit: u32,
    pub account: u32,
    pub instrument: u32,
    /// The closing side (sell for a long).
    pub side: Side,
    /// Quantity still to close, lots, > 0.
    pub remaining: i64,
    /// Limit: the bankruptcy price on the tick, against the account.
    pub limit_px: i64,
    /// Closed out at the limit (surplus to the fund) rather than partially reduced.
    pub full: bool,
    /// Input sequence that started it (for order ids and records).
    pub seq: u64,
    /// Children sent so far (for order ids).
    pub children: u32,
    /// Last start or fill time.
    pub progress_ns: u64,
    pub child: Option<Child>,
}

/// An open liquidation child order, as [`RiskEngine::liquidation_order`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOrder {
    /// Account id.
    pub account: u64,
    /// Instrument.
    pub instrument: u32,
    /// Closing side.
    pub side: Side,
    /// Quantity still open on the child, lots.
    pub qty: i64,
    /// Its limit price.
    pub limit_px: i64,
    /// Whether its fills close the account out at the limit: the difference between fill and
    /// limit (or, isolated, the margin handed back) goes to the insurance fund.
    pub full: bool,
}

/// One planned reduction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cut {
    pub position: usize,
    /// The position's instrument (positions may shift before the cut is acted on).
    pub instrument: InstrumentId,
    pub qty: i64,
    pub full: bool,
}

const E9: u128 = 1_000_000_000;

/// A deterministic 64-bit order id from the account, instrument, input sequence and child
/// number (SplitMix64 finaliser over their combination; never 0).
pub fn order_id(account: u64, instrument: u32, seq: u64, n: u32) -> u64 {
    let mut z = account
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(instrument).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_add(seq.wrapping_mul(0x1656_67B1_9E37_79F9))
        .wrapping_add(u64::from(n));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z.max(1)
}

/// Maintenance margin of `qty_abs` lots at `mark`, rounded up.
fn maintenance_at(inst: &Instrument, qty_abs: i64, mark: Price) -> Option<Money> {
    if qty_abs == 0 {
        return Some(Money::ZERO);
    }
    let notional = Instrument::notional(Qty(qty_abs), mark);
    let tier = &inst.tiers()[inst.tier_index(notional)];
    Money::from_scaled_ceil(tier.maintenance_exact(notional)?, inst.margin_decimals())
}

/// The liquidation fee of `qty_abs` lots at `price`, rounded up.
pub(crate) fn fee_at(inst: &Instrument, qty_abs: i64, price: Price) -> Option<Money> {
    let notional = Instrument::notional(Qty(qty_abs), price);
    let exact = notional.checked_mul(i128::from(inst.liquidation_fee.0))?;
    Money::from_scaled_ceil(exact, inst.margin_decimals())
}

/// `MM/E ≤ ratio` with `E > 0`, exactly.
fn ratio_at_most(mm: Money, equity: Money, ratio: Rate) -> bool {
    if !equity.is_positive() {
        return false;
    }
    if !mm.is_positive() {
        return true;
    }
    wide::cmp_products(
        mm.to_bits().unsigned_abs(),
        E9,
        equity.to_bits().unsigned_abs(),
        u128::from(ratio.0),
    ) != std::cmp::Ordering::Greater
}

impl RiskEngine {
    /// Plans the reduction of a liquidatable unit (see the module docs) into `cuts`, with
    /// `order` as scratch (both cleared first; reused so that planning allocates nothing once
    /// warm). Empty on an evaluation error, which leaves the unit for a later tick.
    pub(crate) fn plan_reduction(
        &self,
        unit: u32,
        summary: &MarginSummary,
        order: &mut Vec<usize>,
        cuts: &mut Vec<Cut>,
    ) {
        cuts.clear();
        order.clear();
        let Some(u) = self.units.get(unit) else {
            return;
        };
        let account = &self.accounts[u.account as usize];
        let mode = if u.is_cross() {
            MarginMode::Cross
        } else {
            MarginMode::Isolated
        };
        order.extend(
            account
                .positions()
                .iter()
                .enumerate()
                .filter(|(_, p)| {
                    p.mode() == mode && (u.is_cross() || p.instrument().0 == u.instrument)
                })
                .map(|(i, _)| i),
        );
        let cfg = self.config.liquidation;
        let full_unit = !ratio_at_most(summary.maintenance, summary.equity, cfg.full_ratio)
            || summary.status(crate::margin::CallLevel(self.config.call_level))
                == MarginStatus::Bankrupt;
        if full_unit {
            cuts.extend(order.iter().map(|&position| {
                let p = &account.positions()[position];
                Cut {
                    position,
                    instrument: p.instrument(),
                    qty: p.qty().0.abs(),
                    full: true,
                }
            }));
            return;
        }
        self.sort_by_priority(order, account.positions());
        let (mut equity, mut mm) = (summary.equity, summary.maintenance);
        for &position in order.iter() {
            let p = &account.positions()[position];
            let id = p.instrument();
            let (Some(inst), Some(mark)) = (self.table.get(id), self.marks.get(id)) else {
                cuts.clear();
                return;
            };
            let q = p.qty().0.abs();
            let Some(mm_now) = maintenance_at(inst, q, mark) else {
                cuts.clear();
                return;
            };
            let tier_mmr = inst.tiers()[inst.tier_index(Instrument::notional(Qty(q), mark))].mmr;
            let step = inst.min_qty.0.max(1);
            // After closing x lots at the mark: (equity', MM').
            let after = |x: i64| -> Option<(Money, Money)> {
                let mm_left = maintenance_at(inst, q - x, mark)?;
                let mm2 = mm.checked_sub(mm_now)?.checked_add(mm_left)?;
                let e2 = equity.checked_sub(fee_at(inst, x, mark)?)?;
                Some((e2, mm2))
            };
            let ok =
                |x: i64| after(x).is_some_and(|(e2, mm2)| ratio_at_most(mm2, e2, cfg.target_ratio));
            let whole = tier_mmr <= inst.liquidation_fee || !ok(q);
            let mut x = q;
            if !whole {
                // Smallest multiple of the step (or q) that restores the target.
                let (mut lo, mut hi) = (0i64, (q + step - 1) / step);
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if ok((mid * step).min(q)) {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
                x = (hi * step).min(q);
                if q - x < inst.min_qty.0 {
                    x = q;
                }
            }
            cuts.push(Cut {
                position,
                instrument: id,
                qty: x,
                full: x == q && whole && tier_mmr <= inst.liquidation_fee,
            });
            if x < q || !whole {
                break;
            }
            match after(x) {
                Some((e2, mm2)) => {
                    equity = e2;
                    mm = mm2;
                }
                None => break,
            }
            if ratio_at_most(mm, equity, cfg.target_ratio) {
                break;
            }
        }
    }

    fn sort_by_priority(&self, order: &mut [usize], positions: &[crate::margin::Position]) {
        match self.config.liquidation.priority {
            Priority::AsHeld => {}
            Priority::LargestFirst => order.sort_by_key(|&i| {
                let p = &positions[i];
                let mark = self.marks.get(p.instrument()).unwrap_or(Price(0));
                (
                    std::cmp::Reverse(Instrument::notional(p.qty(), mark)),
                    p.instrument().0,
                )
            }),
            Priority::CalmDeepFirst => order.sort_by_key(|&i| {
                let id = positions[i].instrument();
                let vol = self.vol.get(id.0 as usize).copied().unwrap_or(0);
                let depth = self
                    .books
                    .get(id.0 as usize)
                    .map(Book::top_notional)
                    .unwrap_or(0);
                (vol, std::cmp::Reverse(depth), id.0)
            }),
        }
    }

    /// Hands a liquidatable unit to liquidation: plans the cuts and opens a job per position.
    /// Returns whether any job was opened.
    pub(crate) fn start_liquidation(
        &mut self,
        unit: u32,
        summary: &MarginSummary,
        seq: u64,
        now_ns: u64,
    ) -> bool {
        let mut order = std::mem::take(&mut self.scratch.order);
        let mut cuts = std::mem::take(&mut self.scratch.cuts);
        self.plan_reduction(unit, summary, &mut order, &mut cuts);
        let opened = self.open_cut_jobs(unit, summary, &cuts, seq, now_ns);
        order.clear();
        cuts.clear();
        self.scratch.order = order;
        self.scratch.cuts = cuts;
        opened > 0
    }

    /// Opens a job for each of a unit's cuts (or deleverages it at once); returns how many
    /// jobs were opened.
    fn open_cut_jobs(
        &mut self,
        unit: u32,
        summary: &MarginSummary,
        cuts: &[Cut],
        seq: u64,
        now_ns: u64,
    ) -> usize {
        let Some(&u) = self.units.get(unit) else {
            return 0;
        };
        let mut opened = 0;
        // ADL below may close positions and shift indices: find each cut by its instrument.
        for &cut in cuts {
            let mut cut = cut;
            let id = cut.instrument;
            let account = &self.accounts[u.account as usize];
            let Some(position) = account.position_index(id) else {
                continue;
            };
            cut.position = position;
            let p = account.positions()[position];
            cut.qty = cut.qty.min(p.qty().0.abs());
            let Some(inst) = self.table.get(id) else {
                continue;
            };
            let bp = account
                .bankruptcy_price(cut.position, &self.table, &self.marks)
                .ok()
                .flatten();
            // No bankruptcy price: a long that never goes bankrupt (limit at the lowest tick)
            // or a short bankrupt at every price (limit unreachable: straight to ADL).
            let limit = match bp {
                Some(bp) => to_tick_against(bp, inst, p.side()).map(|px| px.0),
                None if p.side() > 0 => Some(inst.tick.0),
                None => None,
            };
            let Some(limit_px) = limit.filter(|&px| px > 0) else {
                let mut closed = self.take_over(u.account, id.0, p.side(), cut.qty, i64::MAX, seq);
                if closed < cut.qty {
                    closed +=
                        self.adl_now(u.account, id.0, p.side(), cut.qty - closed, i64::MAX, seq);
                }
                if closed == cut.qty {
                    continue;
                }
                // Could not be deleveraged in full: keep working it at the mark as a limit.
                let Some(mark) = self.marks.get(id) else {
                    continue;
                };
                self.jobs.insert(Job {
                    unit,
                    account: u.account,
                    instrument: id.0,
                    side: if p.side() > 0 { Side::Sell } else { Side::Buy },
                    remaining: cut.qty - closed,
                    limit_px: mark.0,
                    full: true,
                    seq,
                    children: 0,
                    progress_ns: now_ns,
                    child: None,
                });
                opened += 1;
                continue;
            };
            if self.breaker.tripped() {
                // The fund does not absorb: straight to ADL at the bankruptcy limit.
                let closed = self.adl_now(u.account, id.0, p.side(), cut.qty, limit_px, seq);
                cut.qty -= closed;
                if cut.qty <= 0 {
                    continue;
                }
            }
            let side = if p.side() > 0 { Side::Sell } else { Side::Buy };
            self.jobs.insert(Job {
                unit,
                account: u.account,
                instrument: id.0,
                side,
                remaining: cut.qty,
                limit_px,
                full: cut.full
                    || summary.status(crate::margin::CallLevel(self.config.call_level))
                        == MarginStatus::Bankrupt,
                seq,
                children: 0,
                progress_ns: now_ns,
                child: None,
            });
            opened += 1;
        }
        opened
    }

    /// Works the jobs of an instrument after a tick: children out for `child_timeout_ns` are
    /// taken as cancelled; then every job with no child out (see [`super::jobs`]) is deleveraged
    /// if it is past its deadline or the market is past its limit, or sends its next child, or
    /// holds (spread too wide, no limit) until the next tick.
    pub(crate) fn work_jobs(
        &mut self,
        instrument: u32,
        seq: u64,
        now_ns: u64,
        out: &mut impl FnMut(Output),
    ) {
        let cfg = self.config.liquidation;
        let book = self
            .books
            .get(instrument as usize)
            .copied()
            .unwrap_or_default();
        let mark = self.marks.get(InstrumentId(instrument));
        self.jobs.expire(instrument, now_ns, cfg.child_timeout_ns);
        let (mut queue, mut kept) = self.jobs.take_ready(instrument);
        while let Some(slot) = queue.pop_front() {
            let Some(&job) = self.jobs.get(slot) else {
                continue;
            };
            if job.child.is_some() {
                continue;
            }
            let mut job = job;
            if job.account == FUND {
                // The fund works whatever its inventory holds now.
                let q = self.fund_position(instrument);
                job.side = if q > 0 { Side::Sell } else { Side::Buy };
                job.remaining = q.abs();
            }
            // An ordinary fill may have reduced the position meanwhile: never close more than
            // is held.
            job.remaining = job
                .remaining
                .min(self.held(job.account, instrument, job.side));
            if job.remaining <= 0 {
                self.finish_job(slot, seq, now_ns, out);
                continue;
            }
            // The market is past the limit (the mark is beyond bankruptcy): the order cannot
            // fill; nor can one whose deadline has passed.
            let beyond = mark.is_some_and(|m| match job.side {
                Side::Sell => m.0 < job.limit_px,
                Side::Buy => m.0 > job.limit_px,
            });
            let fund = job.account == FUND;
            let late = if fund {
                // The fund's own inventory has no deadline: it goes to ADL only when the
                // breaker trips.
                self.breaker.tripped()
            } else {
                now_ns.saturating_sub(job.progress_ns) >= cfg.fill_deadline_ns
                    || self.breaker.tripped()
            };
            if late || (beyond && job.full && !fund) {
                let side = if job.side == Side::Sell { 1 } else { -1 };
                // A full close-out the market is already past: the fund takes over what it can
                // carry. A job past its deadline (or the breaker tripped) goes to ADL. ADL closes
                // the rest.
                let limit = if fund { i64::MAX } else { job.limit_px };
                let mut closed = if late {
                    0
                } else {
                    self.take_over(job.account, instrument, side, job.remaining, limit, seq)
                };
                if closed < job.remaining {
                    closed += self.adl_now(
                        job.account,
                        instrument,
                        side,
                        job.remaining - closed,
                        limit,
                        seq,
                    );
                }
                job.remaining =
                    (job.remaining - closed).min(self.held(job.account, instrument, job.side));
                if job.remaining <= 0 {
                    self.finish_job(slot, seq, now_ns, out);
                    continue;
                }
                // Not enough opposite quantity: wait for the next deadline, keep working it.
                job.progress_ns = now_ns;
            }
            // The limit follows the bankruptcy price as fills and fees move it, so no child is
            // ever priced worse than bankruptcy when it is sent.
            let limit = if fund {
                self.fund_limit(instrument, job.side, &book)
            } else {
                self.current_limit(job.account, instrument)
            };
            if let Some(limit_px) = limit
                && let Some(qty) = slice_qty(&book, job.side, job.remaining, &cfg)
            {
                job.limit_px = limit_px;
                let account_id = self.acct(job.account).id();
                let mut id = self.order_id(account_id, instrument, job.seq, job.children);
                while self.jobs.has_order(id) {
                    id = self.shard.next(id);
                }
                job.children += 1;
                job.child = Some(Child {
                    order_id: id,
                    qty,
                    sent_ns: now_ns,
                    limit_px,
                });
                if let Some(j) = self.jobs.get_mut(slot) {
                    *j = job;
                }
                self.jobs
                    .child_sent(slot, id, now_ns.saturating_add(cfg.child_timeout_ns));
                self.counters.orders += 1;
                out(Output::Liquidation(shm::Liquidation {
                    order_id: id,
                    account: account_id,
                    instrument,
                    side: job.side,
                    qty,
                    limit_px,
                    input_seq: seq,
                }));
            } else {
                if let Some(j) = self.jobs.get_mut(slot) {
                    *j = job;
                }
                kept.push_back(slot);
            }
        }
        self.jobs.restore_ready(instrument, queue, kept);
    }

    /// Removes a finished job; when it was its unit's last, the unit is evaluated afresh.
    fn finish_job(&mut self, slot: u32, seq: u64, now_ns: u64, out: &mut impl FnMut(Output)) {
        match self.jobs.remove(slot) {
            Some((job, _)) if job.account == FUND => {
                if let Some(x) = self.fund_jobs.get_mut(job.instrument as usize) {
                    *x = None;
                }
            }
            Some((job, 0)) => self.unit_jobs_done(job.unit, seq, now_ns, out),
            _ => {}
        }
    }

    /// Books a fill of one of our liquidation orders. Returns false when the order is unknown
    /// (the caller then treats it as an ordinary fill).
    pub(crate) fn on_liquidation_fill(
        &mut self,
        order_id: u64,
        qty: i64,
        price: Price,
        seq: u64,
        now_ns: u64,
        out: &mut impl FnMut(Output),
    ) -> bool {
        let Some(slot) = self.jobs.by_order(order_id) else {
            return false;
        };
        let Some(&job) = self.jobs.get(slot) else {
            return false;
        };
        let (account, instrument) = (job.account, job.instrument);
        let mut job = job;
        let signed = if job.side == Side::Sell { -1 } else { 1 };
        let x = if account == FUND {
            // The fund's fills are booked as the venue reports them, up to what its child has
            // out: its inventory may have changed since the child was sent.
            qty.unsigned_abs()
                .min(job.child.map_or(0, |c| c.qty).max(0) as u64) as i64
        } else {
            qty.unsigned_abs()
                .min(job.remaining as u64)
                .min(self.held(account, instrument, job.side) as u64) as i64
        };
        if x == 0 || qty.signum() != signed {
            self.counters.fills_refused += 1;
            return true;
        }
        let id = InstrumentId(instrument);
        let Some(inst) = self.table.get(id) else {
            return true;
        };
        let fund = account == FUND;
        // The fund pays no liquidation fee: it would be paid to itself.
        let fee = if fund {
            Money::ZERO
        } else {
            fee_at(inst, x, price).unwrap_or(Money::ZERO)
        };
        let nd = inst.notional_decimals();
        let mode = self
            .acct(account)
            .position_index(id)
            .map(|i| self.acct(account).positions()[i].mode())
            .unwrap_or(MarginMode::Cross);
        let fill = Fill {
            instrument: id,
            qty: Qty(signed * x),
            price,
            fee,
            mode,
        };
        let Ok(outcome) = self.apply_fill_to(account, fill) else {
            self.counters.fills_refused += 1;
            return true;
        };
        self.counters.liquidation_fills += 1;
        if fund {
            self.sweep_fund_book();
            job.progress_ns = now_ns;
            let child_left = job.child.map_or(0, |c| c.qty - x);
            if let Some(c) = job.child.as_mut() {
                c.qty = child_left;
            }
            job.remaining = self.held(FUND, instrument, job.side);
            if let Some(j) = self.jobs.get_mut(slot) {
                *j = job;
            }
            // The job takes its side and size from the inventory when it is next worked, and
            // ends there when the inventory is flat.
            if child_left <= 0 {
                self.jobs.child_done(slot);
            }
            return true;
        }
        self.fund.add_fee(fee);
        if job.full && mode == MarginMode::Isolated {
            // Closed out: whatever margin the closed isolated position hands back is the fund's.
            if outcome.released_margin.is_positive() {
                let released = neg(outcome.released_margin);
                let _ = self.accounts.update(account, |a| a.change_wallet(released));
                self.fund.add_surplus(outcome.released_margin);
            }
        } else if job.full {
            // Closed out at the limit: the difference to the fill price is the fund's.
            let diff = i128::from(x) * i128::from(price.0 - job.limit_px) * i128::from(-signed);
            if let Some(amount) = Money::from_scaled_floor(diff, nd) {
                if amount.is_positive() {
                    let taken = neg(amount);
                    let _ = self.accounts.update(account, |a| a.change_wallet(taken));
                    self.fund.add_surplus(amount);
                } else if amount.is_negative() {
                    let paid = self.fund.cover(neg(amount));
                    let _ = self.accounts.update(account, |a| a.change_wallet(paid));
                }
            }
        }
        if outcome.isolated_shortfall.is_positive() {
            self.fund.cover(outcome.isolated_shortfall);
        }
        self.reset_negative_wallet(account);
        // Margin an isolated close hands back changes the account's cross unit too.
        self.readmit.push(account);
        job.remaining -= x;
        job.progress_ns = now_ns;
        let child_left = job.child.map_or(0, |c| c.qty - x);
        if let Some(c) = job.child.as_mut() {
            c.qty = child_left;
        }
        if self.accounts[account as usize].position_index(id).is_none() {
            job.remaining = 0;
            if mode == MarginMode::Isolated {
                self.units.release_isolated(account, instrument);
            }
        }
        if let Some(j) = self.jobs.get_mut(slot) {
            *j = job;
        }
        if job.remaining <= 0 {
            self.finish_job(slot, seq, now_ns, out);
        } else if child_left <= 0 {
            // The child is filled: the job is ready for its next one.
            self.jobs.child_done(slot);
        }
        true
    }

    /// The limit a new child of `account`'s position on `instrument` gets now: its bankruptcy
    /// price rounded to the tick against the account (the lowest tick for a long that never goes
    /// bankrupt); `None` (hold) for a short bankrupt at every price or on an evaluation error.
    fn current_limit(&self, account: u32, instrument: u32) -> Option<i64> {
        let id = InstrumentId(instrument);
        let a = &self.accounts[account as usize];
        let i = a.position_index(id)?;
        let inst = self.table.get(id)?;
        let side = a.positions()[i].side();
        match a.bankruptcy_price(i, &self.table, &self.marks).ok()? {
            Some(bp) => to_tick_against(bp, inst, side)
                .map(|px| px.0)
                .filter(|&px| px > 0),
            None if side > 0 => Some(inst.tick.0),
            None => None,
        }
    }

    /// Lots of `account`'s position on `instrument` that an order of side `closing` reduces.
    pub(crate) fn held(&self, account: u32, instrument: u32, closing: Side) -> i64 {
        let a = self.acct(account);
        a.position_index(InstrumentId(instrument))
            .map(|i| a.positions()[i].qty().0)
            .map_or(0, |q| match closing {
                Side::Sell => q.max(0),
                Side::Buy => (-q).max(0),
            })
    }

    /// The open liquidation child order `order_id`, if any: what a ledger replaying the output
    /// records needs beyond them (whether its fills close the account out at the limit).
    pub fn liquidation_order(&self, order_id: u64) -> Option<OpenOrder> {
        let job = self.jobs.get(self.jobs.by_order(order_id)?)?;
        let child = job.child?;
        Some(OpenOrder {
            account: self.acct(job.account).id(),
            instrument: job.instrument,
            side: job.side,
            qty: child.qty,
            limit_px: child.limit_px,
            full: job.full,
        })
    }

    /// A cross wallet below zero is reset to zero by the fund.
    pub(crate) fn reset_negative_wallet(&mut self, account: u32) {
        if account == FUND {
            self.sweep_fund_book();
            return;
        }
        let wallet = self.accounts[account as usize].wallet();
        if wallet.is_negative() {
            let paid = self.fund.cover(neg(wallet));
            let _ = self.accounts.update(account, |a| a.change_wallet(paid));
        }
    }

    /// The last job of a unit finished: the unit is evaluated afresh.
    fn unit_jobs_done(&mut self, unit: u32, seq: u64, now_ns: u64, out: &mut impl FnMut(Output)) {
        let state = if self.unit_has_positions(unit) {
            UnitState::Healthy
        } else {
            UnitState::Flat
        };
        self.units.set_state(unit, state);
        if state == UnitState::Healthy {
            self.evaluate(unit, seq, now_ns, out);
        }
    }
}

/// The size of the next child: at most `slice_share` of the size at the level it trades against
/// (all of it when the book shows no size), or `None` to hold (spread too wide, or no price).
fn slice_qty(book: &Book, side: Side, remaining: i64, cfg: &LiquidationConfig) -> Option<i64> {
    if book.bid_px > 0 && book.ask_px > 0 {
        let spread = u128::try_from(book.ask_px.saturating_sub(book.bid_px)).unwrap_or(0);
        let mid = (book.ask_px as u128 + book.bid_px as u128) / 2;
        if spread * E9 > u128::from(cfg.max_spread.0) * mid {
            return None;
        }
    }
    let shown = match side {
        Side::Sell => book.bid_qty,
        Side::Buy => book.ask_qty,
    };
    if shown == 0 {
        return Some(remaining);
    }
    let cap = (u128::from(shown) * u128::from(cfg.slice_share.0) / E9) as i64;
    Some(remaining.min(cap.max(1)))
}

fn neg(m: Money) -> Money {
    m.checked_neg().unwrap_or(Money::ZERO)
}

//! Expiry of dated futures: the settlement price and the settlement itself.
//!
//! ## Engine wall time
//! The engine never reads a clock. Its notion of time is the publish stamp of each input
//! (`publish_ns`, CLOCK_MONOTONIC of the producer), which is not wall time; nor is a heartbeat's
//! `sent` field. Wall time is therefore an explicit mapping, [`ClockSource`]:
//! `PublishNsIsUnixNs` for a backtest whose stamps are Unix nanoseconds, or `Offset(d)` with
//! `unix_ns = publish_ns + d` for a live feed whose producer's offset is known. A future whose
//! `expiry_unix_s` is reached on that clock settles automatically, before the input that reached
//! it is applied. Independently of the clock, a `Status` record with state `Settling` settles its
//! instrument at once: at its `settle_px` when non-zero, else at the TWAP below.
//!
//! ## Settlement price
//! For each future the engine keeps a time-weighted average of the index price (the tick's
//! `index_px`, or its mark when that is 0) over the window `twap_window_ns` before expiry: each
//! price counts for the time it held, clipped to the window. The TWAP is the floor of the
//! weighted sum over the time covered; with no tick inside the window, the last index price.
//!
//! ## Settlement
//! Every open position on the instrument is closed at the settlement price with no fee: its PnL
//! is realised (into the wallet, or into the isolated margin which then returns to the wallet;
//! an isolated loss beyond its margin is the insurance fund's), one [`shm::Settlement`] record
//! per position. Open liquidation jobs on it end. Later ticks and fills of the instrument are
//! refused and counted.

use super::RiskEngine;
use super::takeover::FUND;
use super::units::UnitState;
use crate::margin::{Fill, InstrumentId, InstrumentKind, MarginMode, Money, Price, Qty};
use crate::shm::{self, Output};

/// How engine time (input publish stamps) maps to wall time; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockSource {
    /// Publish stamps are Unix nanoseconds (backtests, replays of recorded data).
    #[default]
    PublishNsIsUnixNs,
    /// `unix_ns = publish_ns + offset`.
    Offset(i64),
}

impl ClockSource {
    /// Unix nanoseconds of a publish stamp.
    pub fn unix_ns(self, publish_ns: u64) -> i128 {
        match self {
            ClockSource::PublishNsIsUnixNs => i128::from(publish_ns),
            ClockSource::Offset(d) => i128::from(publish_ns) + i128::from(d),
        }
    }
}

/// Time-weighted average state of one instrument's index price.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Twap {
    /// Last index price seen (0: none) and when (Unix ns).
    pub(super) last_px: i64,
    pub(super) last_ns: i128,
    /// Σ price · ns and Σ ns inside the window.
    pub(super) sum: i128,
    pub(super) span: i128,
}

impl Twap {
    /// Adds the interval the last price held until `now_ns`, clipped to `[from, to]`.
    fn close(&mut self, now_ns: i128, from: i128, to: i128) {
        if self.last_px > 0 {
            let start = self.last_ns.max(from);
            let end = now_ns.min(to);
            if end > start {
                self.sum += i128::from(self.last_px) * (end - start);
                self.span += end - start;
            }
        }
    }

    /// The average so far (up to `to`), or the last price with nothing in the window.
    fn average(&self) -> i64 {
        if self.span > 0 {
            (self.sum / self.span) as i64
        } else {
            self.last_px
        }
    }
}

impl RiskEngine {
    fn expiry_ns(&self, instrument: u32) -> Option<i128> {
        match self.table.get(InstrumentId(instrument))?.kind {
            InstrumentKind::Future { expiry_unix_s } => {
                Some(i128::from(expiry_unix_s) * 1_000_000_000)
            }
            InstrumentKind::Perpetual => None,
        }
    }

    /// Feeds a tick's index price into the instrument's TWAP.
    pub(crate) fn record_index(&mut self, instrument: u32, index_px: i64, publish_ns: u64) {
        let Some(expiry) = self.expiry_ns(instrument) else {
            return;
        };
        let now = self.config.clock.unix_ns(publish_ns);
        let from = expiry - i128::from(self.config.twap_window_ns);
        let Some(t) = self.twap.get_mut(instrument as usize) else {
            return;
        };
        t.close(now, from, expiry);
        t.last_px = index_px;
        t.last_ns = now;
    }

    /// Settles every unsettled future whose expiry the clock has reached.
    pub(crate) fn settle_due(&mut self, seq: u64, publish_ns: u64, out: &mut impl FnMut(Output)) {
        let now = self.config.clock.unix_ns(publish_ns);
        if now < self.next_expiry_ns {
            return;
        }
        for i in 0..self.table.len() as u32 {
            if !self.settled[i as usize] && self.expiry_ns(i).is_some_and(|x| x <= now) {
                self.settle(i, 0, seq, publish_ns, out);
            }
        }
    }

    /// The earliest expiry of an unsettled future (`i128::MAX` when none).
    pub(crate) fn compute_next_expiry(&self) -> i128 {
        (0..self.table.len() as u32)
            .filter(|&i| !self.settled[i as usize])
            .filter_map(|i| self.expiry_ns(i))
            .min()
            .unwrap_or(i128::MAX)
    }

    /// Whether an instrument has settled (its ticks and fills are refused).
    pub fn is_settled(&self, instrument: u32) -> bool {
        self.settled
            .get(instrument as usize)
            .copied()
            .unwrap_or(false)
    }

    /// Settles `instrument` at `settle_px` (0: at the TWAP) and closes every position on it.
    pub(crate) fn settle(
        &mut self,
        instrument: u32,
        settle_px: i64,
        seq: u64,
        publish_ns: u64,
        out: &mut impl FnMut(Output),
    ) {
        let Some(slot) = self.settled.get(instrument as usize) else {
            self.counters.fills_refused += 1;
            return;
        };
        if *slot {
            return;
        }
        let price = if settle_px > 0 {
            settle_px
        } else {
            let now = self.config.clock.unix_ns(publish_ns);
            let expiry = self.expiry_ns(instrument).unwrap_or(now);
            let from = expiry - i128::from(self.config.twap_window_ns);
            let mut t = self.twap[instrument as usize];
            t.close(now, from, expiry);
            let avg = t.average();
            if avg > 0 {
                avg
            } else {
                match self.marks.get(InstrumentId(instrument)) {
                    Some(m) => m.0,
                    None => {
                        self.counters.fills_refused += 1;
                        return;
                    }
                }
            }
        };
        self.settled[instrument as usize] = true;
        self.next_expiry_ns = self.compute_next_expiry();
        self.counters.settlements += 1;
        // Jobs on it end: there is nothing left to liquidate.
        let slots: Vec<u32> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.instrument == instrument)
            .map(|(slot, _)| slot)
            .collect();
        let mut ended = Vec::new();
        for slot in slots {
            if let Some((job, 0)) = self.jobs.remove(slot) {
                ended.push(job.unit);
            }
        }
        let id = InstrumentId(instrument);
        // Every account, then the fund's inventory, which settles like every position (its PnL
        // is swept into the fund).
        let everyone = (0..self.accounts.len() as u32).chain([FUND]);
        for a in everyone {
            let Some(i) = self.acct(a).position_index(id) else {
                continue;
            };
            let p = self.acct(a).positions()[i];
            let fill = Fill {
                instrument: id,
                qty: Qty(-p.qty().0),
                price: Price(price),
                fee: Money::ZERO,
                mode: p.mode(),
            };
            let Ok(outcome) = self.apply_fill_to(a, fill) else {
                self.counters.fills_refused += 1;
                continue;
            };
            if outcome.isolated_shortfall.is_positive() {
                self.fund.cover(outcome.isolated_shortfall);
            }
            if p.mode() == MarginMode::Isolated {
                if let Some(u) = self.units.isolated(a, instrument) {
                    self.index.unband(u);
                }
                self.units.release_isolated(a, instrument);
            }
            out(Output::Settlement(shm::Settlement {
                account: self.acct(a).id(),
                instrument,
                qty: p.qty().0,
                price_px: price,
                pnl_money: outcome
                    .realised_pnl
                    .to_scaled_floor(shm::MONEY_DECIMALS)
                    .and_then(|v| i64::try_from(v).ok())
                    .unwrap_or(i64::MIN),
                input_seq: seq,
            }));
            if a == FUND {
                self.sweep_fund_book();
            } else {
                self.readmit.push(a);
            }
        }
        if let Some(x) = self.fund_jobs.get_mut(instrument as usize) {
            *x = None;
        }
        for unit in ended {
            if self.units.get(unit).map(|u| u.state) == Some(UnitState::Liquidating) {
                self.units.set_state(unit, UnitState::Healthy);
                self.retry.push(unit);
            }
        }
    }
}

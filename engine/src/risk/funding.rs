//! Funding payments of perpetuals.
//!
//! `Input::Funding { instrument, rate_e9 }` charges every open position on the instrument
//! `qty · mark · rate` (the notional at the current mark times the rate, 10^-9 units): with a
//! positive rate longs pay and shorts receive, with a negative rate the reverse. Each payment is
//! booked exactly once, rounded toward −∞ for the account (a payer pays the ceiling, a receiver
//! gets the floor of the exact amount), into the cross wallet or, for an isolated position, into
//! its margin. An isolated margin cannot go below zero: what it cannot pay is the insurance
//! fund's, like any other isolated loss beyond its margin. The venue is the counterparty, so
//! payments need not sum to zero. Holders are then evaluated again (in unit order, so the index
//! and the brute-force scan decide identically), which also bands them afresh.

use super::RiskEngine;
use crate::margin::{InstrumentId, MarginMode, Money};
use crate::shm::Output;

/// The funding payment of a position of `qty` lots at `mark` for `rate_e9`, as booked on the
/// account: `−qty·mark·rate` floored to money, `None` on overflow.
pub fn funding_payment(qty: i64, mark: i64, rate_e9: i64, margin_decimals: u32) -> Option<Money> {
    let exact = i128::from(qty)
        .checked_mul(i128::from(mark))?
        .checked_mul(i128::from(rate_e9))?
        .checked_neg()?;
    Money::from_scaled_floor(exact, margin_decimals)
}

impl RiskEngine {
    /// Applies a funding rate to every holder of `instrument` (see the module docs).
    pub(crate) fn on_funding(
        &mut self,
        instrument: u32,
        rate_e9: i64,
        seq: u64,
        now_ns: u64,
        out: &mut impl FnMut(Output),
    ) {
        let id = InstrumentId(instrument);
        let (Some(inst), Some(mark)) = (self.table.get(id), self.marks.get(id)) else {
            self.counters.fills_refused += 1;
            return;
        };
        let decimals = inst.margin_decimals();
        let mut units: Vec<u32> = self
            .holders
            .get(instrument as usize)
            .cloned()
            .unwrap_or_default();
        units.sort_unstable();
        units.dedup();
        let mut accounts: Vec<u32> = units
            .iter()
            .filter_map(|&u| self.units.get(u).map(|u| u.account))
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        for a in accounts {
            let account = &self.accounts[a as usize];
            let Some(i) = account.position_index(id) else {
                continue;
            };
            let p = account.positions()[i];
            let Some(pay) = funding_payment(p.qty().0, mark.0, rate_e9, decimals) else {
                self.counters.fills_refused += 1;
                continue;
            };
            if pay == Money::ZERO {
                continue;
            }
            match p.mode() {
                MarginMode::Cross => {
                    if self
                        .accounts
                        .update(a, |account| account.change_wallet(pay))
                        .is_err()
                    {
                        self.counters.fills_refused += 1;
                        continue;
                    }
                }
                MarginMode::Isolated => {
                    // Through the wallet and back, so the wallet is unchanged; a margin that
                    // cannot pay in full pays what it has, the fund the rest.
                    let floor = p.isolated_margin().checked_neg().unwrap_or(Money::ZERO);
                    let booked = pay.max(floor);
                    let refused = self.accounts.update(a, |account| {
                        let refused = account.change_wallet(booked).is_err()
                            || account.transfer_isolated_margin(id, booked).is_err();
                        if refused {
                            let _ =
                                account.change_wallet(booked.checked_neg().unwrap_or(Money::ZERO));
                        }
                        refused
                    });
                    if refused {
                        self.counters.fills_refused += 1;
                        continue;
                    }
                    if pay < booked {
                        self.fund
                            .cover(booked.checked_sub(pay).unwrap_or(Money::ZERO));
                    }
                }
            }
            self.counters.funding += 1;
        }
        for u in units {
            if self
                .units
                .get(u)
                .is_some_and(|x| x.is_cross() || x.instrument == instrument)
            {
                self.readmit_unit(u, seq, now_ns, out);
            }
        }
    }
}

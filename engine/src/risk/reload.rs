//! Live reload of instrument tiers and thresholds (`brink run` on SIGHUP).
//!
//! [`RiskEngine::reload`] replaces the maintenance tiers and liquidation fee of the instruments
//! and the whole [`RiskConfig`] between two inputs. Tier changes apply to open positions, as
//! exchanges do: every unit holding a changed instrument is evaluated again at the current
//! marks and banded afresh (in unit order), which may raise margin calls and start liquidations
//! at once; the liquidation jobs of the changed instruments are then worked, so their first
//! orders go out without waiting for the next tick. A change of the call or re-arm level moves
//! every unit's band edges, so every unit is evaluated again.
//!
//! The reload is one event in the decision stream: it emits an
//! [`alert_code::CONFIG_RELOADED`](crate::shm::alert_code::CONFIG_RELOADED) alert first (with
//! the seq of the last input applied before it), then whatever the new parameters decide. A
//! replay that applies the same parameters after the same input decides identically.
//!
//! What cannot change live is refused as a whole ([`ReloadError`]): the instrument list (ids are
//! positions in it), an instrument's kind, decimals, tick or minimum quantity.

use crate::margin::{Instrument, InstrumentTable};
use crate::shm::{self, Output};

use super::{RiskConfig, RiskEngine};

/// The parameters a reload may change.
#[derive(Debug, Clone)]
pub struct RiskParams {
    /// Every instrument, in id order, as the configuration now defines it. Only the tiers and
    /// the liquidation fee may differ from the running ones.
    pub instruments: Vec<Instrument>,
    /// The thresholds.
    pub config: RiskConfig,
}

/// Why a reload was refused. The running parameters stay in force.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// Instruments were added or removed.
    #[error(
        "the configuration now lists {found} instrument(s), the engine runs {running}: \
         instruments are added or removed only with a restart"
    )]
    InstrumentCount {
        /// Instruments in the new configuration.
        found: usize,
        /// Instruments in the running engine.
        running: usize,
    },
    /// An instrument was renamed or the list reordered.
    #[error(
        "instrument {id} is {found:?} in the configuration but {running:?} in the engine: \
         keep the instruments in their order (ids are positions in the list), or restart"
    )]
    Renamed {
        /// Instrument id.
        id: u32,
        /// Symbol in the new configuration.
        found: String,
        /// Symbol running.
        running: String,
    },
    /// A field other than the tiers or the liquidation fee changed.
    #[error(
        "instrument {symbol}: {field} changed from {running} to {found}: only tiers and the \
         liquidation fee change live; restore it, or restart to change it"
    )]
    FixedField {
        /// Instrument symbol.
        symbol: String,
        /// The field.
        field: &'static str,
        /// Running value.
        running: String,
        /// New value.
        found: String,
    },
    /// The new tiers cannot be scaled by the instrument's current volatility scale.
    #[error(
        "instrument {symbol}: the new tiers overflow at the current volatility scale; lower them"
    )]
    Scale {
        /// Instrument symbol.
        symbol: String,
    },
}

/// What a reload did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadOutcome {
    /// Instruments whose tiers or liquidation fee changed.
    pub instruments_changed: u32,
    /// Whether the thresholds changed.
    pub thresholds_changed: bool,
    /// Units evaluated again.
    pub units_evaluated: u64,
    /// Margin calls the new parameters raised.
    pub margin_calls: u64,
    /// Units the new parameters handed to liquidation.
    pub liquidations: u64,
}

impl ReloadOutcome {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.instruments_changed > 0 || self.thresholds_changed
    }

    /// This outcome and another shard's together: the same change, the work summed.
    pub fn plus(&self, other: &ReloadOutcome) -> ReloadOutcome {
        ReloadOutcome {
            instruments_changed: self.instruments_changed,
            thresholds_changed: self.thresholds_changed,
            units_evaluated: self.units_evaluated + other.units_evaluated,
            margin_calls: self.margin_calls + other.margin_calls,
            liquidations: self.liquidations + other.liquidations,
        }
    }
}

/// The instrument fields that cannot change live, as (name, running, new) when they differ.
fn fixed_difference(
    running: &Instrument,
    new: &Instrument,
) -> Option<(&'static str, String, String)> {
    if running.kind != new.kind {
        return Some((
            "kind",
            format!("{:?}", running.kind),
            format!("{:?}", new.kind),
        ));
    }
    let fields = [
        (
            "price_decimals",
            i128::from(running.price_decimals),
            i128::from(new.price_decimals),
        ),
        (
            "qty_decimals",
            i128::from(running.qty_decimals),
            i128::from(new.qty_decimals),
        ),
        ("tick", i128::from(running.tick.0), i128::from(new.tick.0)),
        (
            "min_qty",
            i128::from(running.min_qty.0),
            i128::from(new.min_qty.0),
        ),
    ];
    fields
        .into_iter()
        .find(|(_, a, b)| a != b)
        .map(|(name, a, b)| (name, a.to_string(), b.to_string()))
}

/// Checks that `new` differs from `running` (instruments in id order, as loaded) only where a
/// reload may change them: tiers and liquidation fees.
pub fn check_instruments(running: &[Instrument], new: &[Instrument]) -> Result<(), ReloadError> {
    if new.len() != running.len() {
        return Err(ReloadError::InstrumentCount {
            found: new.len(),
            running: running.len(),
        });
    }
    for (id, (running, new)) in running.iter().zip(new).enumerate() {
        if running.symbol != new.symbol {
            return Err(ReloadError::Renamed {
                id: id as u32,
                found: new.symbol.to_string(),
                running: running.symbol.to_string(),
            });
        }
        if let Some((field, running_value, found)) = fixed_difference(running, new) {
            return Err(ReloadError::FixedField {
                symbol: new.symbol.to_string(),
                field,
                running: running_value,
                found,
            });
        }
    }
    Ok(())
}

impl RiskEngine {
    /// Checks that `params` can be applied live (see [`ReloadError`]) without applying them.
    pub fn check_reload(&self, params: &RiskParams) -> Result<(), ReloadError> {
        check_instruments(&self.base_instruments, &params.instruments)
    }

    /// Applies new tiers and thresholds after the input of sequence `seq` (see the module docs),
    /// passing the reload alert and every decision it causes to `out` in order. On an error
    /// nothing changes and nothing is emitted.
    pub fn reload(
        &mut self,
        params: &RiskParams,
        seq: u64,
        out: &mut impl FnMut(Output),
    ) -> Result<ReloadOutcome, ReloadError> {
        self.check_reload(params)?;
        let changed: Vec<usize> = self
            .base_instruments
            .iter()
            .zip(&params.instruments)
            .enumerate()
            .filter(|(_, (running, new))| {
                running.tiers() != new.tiers() || running.liquidation_fee != new.liquidation_fee
            })
            .map(|(i, _)| i)
            .collect();
        // Build the new table first, so that a failure leaves everything as it was.
        let mut table = InstrumentTable::new();
        for (id, inst) in self.table.iter() {
            let i = id.0 as usize;
            let next = if changed.contains(&i) {
                let base = &params.instruments[i];
                let scale = self.mmr_scale(id.0);
                if scale == crate::margin::Rate::ONE {
                    base.clone()
                } else {
                    super::vol::scaled_instrument(base, scale).ok_or_else(|| {
                        ReloadError::Scale {
                            symbol: base.symbol.to_string(),
                        }
                    })?
                }
            } else {
                inst.clone()
            };
            // Cannot fail: the table holds as many instruments as it did.
            let _ = table.push(next);
        }
        let thresholds_changed = params.config != self.config;
        let now_ns = self.now_ns;
        if !self.pending_out.is_empty() {
            self.flush(seq, now_ns, out);
        }
        out(Output::Alert(shm::Alert {
            code: shm::alert_code::CONFIG_RELOADED,
            arg0: seq,
            arg1: changed.len() as u64 | (u64::from(thresholds_changed) << 32),
        }));
        for &i in &changed {
            self.base_instruments[i] = params.instruments[i].clone();
        }
        self.table = table;
        self.config = params.config;
        let before = self.counters;
        let mut units: Vec<u32> = if thresholds_changed {
            (0..self.units.len() as u32).collect()
        } else {
            changed
                .iter()
                .flat_map(|&i| self.holders.get(i).into_iter().flatten().copied())
                .collect()
        };
        units.sort_unstable();
        units.dedup();
        for &unit in &units {
            self.readmit_unit(unit, seq, now_ns, out);
        }
        self.flush(seq, now_ns, out);
        if !self.jobs.is_empty() {
            let instruments: Vec<u32> = if thresholds_changed {
                (0..self.table.len() as u32).collect()
            } else {
                changed.iter().map(|&i| i as u32).collect()
            };
            for instrument in instruments {
                self.work_jobs(instrument, seq, now_ns, out);
            }
            self.flush(seq, now_ns, out);
        }
        let after = self.counters;
        Ok(ReloadOutcome {
            instruments_changed: changed.len() as u32,
            thresholds_changed,
            units_evaluated: after.evaluations - before.evaluations,
            margin_calls: after.margin_calls - before.margin_calls,
            liquidations: after.liquidations - before.liquidations,
        })
    }

    /// The tiers, liquidation fees and thresholds in force (as loaded or last reloaded; tiers
    /// before volatility scaling).
    pub fn params(&self) -> RiskParams {
        RiskParams {
            instruments: self.base_instruments.clone(),
            config: self.config,
        }
    }

    /// The thresholds in force.
    pub fn config(&self) -> &RiskConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::margin::{
        Account, InstrumentId, InstrumentKind, InstrumentSpec, MarginMode, MarkPrices, Money,
        Position, Price, Qty, Rate, TierSpec,
    };
    use crate::risk::units::UnitState;
    use crate::risk::{Book, Scan};

    /// BTCUSDT: prices in 0.01, quantities in 0.001, one tier (notional cap 10^9) at `mmr`.
    fn btc(mmr: u64, fee: u64) -> Instrument {
        Instrument::new(InstrumentSpec {
            symbol: "BTCUSDT".to_string(),
            kind: InstrumentKind::Perpetual,
            price_decimals: 2,
            qty_decimals: 3,
            tick: Price(1),
            min_qty: Qty(1),
            liquidation_fee: Rate(fee),
            tiers: vec![TierSpec {
                min_notional: None,
                max_notional: 1_000_000_000 * 100_000,
                mmr: Rate(mmr),
                imr: Rate(mmr.max(10_000_000) * 2),
                amount: None,
            }],
        })
        .expect("valid instrument")
    }

    fn eth() -> Instrument {
        Instrument::new(InstrumentSpec {
            symbol: "ETHUSDT".to_string(),
            kind: InstrumentKind::Perpetual,
            price_decimals: 2,
            qty_decimals: 3,
            tick: Price(1),
            min_qty: Qty(1),
            liquidation_fee: Rate(5_000_000),
            tiers: vec![TierSpec {
                min_notional: None,
                max_notional: 1_000_000_000 * 100_000,
                mmr: Rate(5_000_000),
                imr: Rate(10_000_000),
                amount: None,
            }],
        })
        .expect("valid instrument")
    }

    /// Account 1: 1 BTC long at 50,000 on a 10,000 wallet (cross); account 2: 10 ETH long at
    /// 3,000 on a 3,000 wallet (cross), not affected by BTC's tiers.
    fn engine(btc_mmr: u64) -> RiskEngine {
        let mut table = InstrumentTable::new();
        table.push(btc(btc_mmr, 5_000_000));
        table.push(eth());
        let mut marks = MarkPrices::new(2);
        marks.set(InstrumentId(0), Price(5_000_000));
        marks.set(InstrumentId(1), Price(300_000));
        let mut a1 = Account::new(1, Money::from_int(10_000));
        a1.push_position(
            Position::open(
                InstrumentId(0),
                Qty(1_000),
                Price(5_000_000),
                MarginMode::Cross,
                Money::ZERO,
            )
            .expect("position"),
        )
        .expect("position");
        let mut a2 = Account::new(2, Money::from_int(3_000));
        a2.push_position(
            Position::open(
                InstrumentId(1),
                Qty(10_000),
                Price(300_000),
                MarginMode::Cross,
                Money::ZERO,
            )
            .expect("position"),
        )
        .expect("position");
        let mut e = RiskEngine::new(
            table,
            marks,
            vec![a1, a2],
            RiskConfig::default(),
            Scan::Index,
        );
        // Give both instruments a book so liquidation orders can go out.
        let book = |px: i64| Book {
            bid_px: px - 1,
            ask_px: px + 1,
            bid_qty: 0,
            ask_qty: 0,
        };
        let mut sink = |_o| {};
        e.on_tick_at(0, Price(5_000_000), book(5_000_000), 1, 1, &mut sink);
        e.on_tick_at(1, Price(300_000), book(300_000), 2, 2, &mut sink);
        e
    }

    fn params(btc_mmr: u64, config: RiskConfig) -> RiskParams {
        RiskParams {
            instruments: vec![btc(btc_mmr, 5_000_000), eth()],
            config,
        }
    }

    fn reload(e: &mut RiskEngine, p: &RiskParams) -> (ReloadOutcome, Vec<Output>) {
        let mut outs = Vec::new();
        let outcome = e.reload(p, 7, &mut |o| outs.push(o)).expect("applies");
        (outcome, outs)
    }

    #[test]
    fn higher_tiers_call_open_positions_at_once() {
        // MM 0.4 % of 50,000 = 200 on 10,000 equity: ratio 0.02.
        let mut e = engine(4_000_000);
        assert_eq!(e.unit_state(0), Some(UnitState::Healthy));
        // MMR 17 %: MM 8,500, ratio 0.85 ≥ 0.8: a margin call, no liquidation.
        let p = params(170_000_000, RiskConfig::default());
        let (outcome, outs) = reload(&mut e, &p);
        assert_eq!(outcome.instruments_changed, 1);
        assert!(!outcome.thresholds_changed);
        assert_eq!((outcome.margin_calls, outcome.liquidations), (1, 0));
        assert!(
            matches!(outs[0], Output::Alert(a) if a.code == shm::alert_code::CONFIG_RELOADED && a.arg0 == 7 && a.arg1 == 1),
            "{outs:?}"
        );
        let calls: Vec<_> = outs
            .iter()
            .filter_map(|o| match o {
                Output::MarginCall(c) => Some(*c),
                _ => None,
            })
            .collect();
        assert_eq!(calls.len(), 1, "{outs:?}");
        assert_eq!((calls[0].account, calls[0].input_seq), (1, 7));
        // MM 8,500 (money in 10^-8); the ratio 0.85 is rounded up, against the account.
        assert_eq!(calls[0].mm_money, 850_000_000_000);
        assert!(
            (850_000_000..=850_000_001).contains(&calls[0].ratio_e9),
            "{calls:?}"
        );
        assert_eq!(e.unit_state(0), Some(UnitState::Called));
        // Only the holder of BTC was evaluated; ETH's holder stays untouched.
        assert_eq!(outcome.units_evaluated, 1);
        assert_eq!(e.unit_state(1), Some(UnitState::Healthy));
        assert_eq!(
            e.instruments().get(InstrumentId(0)).unwrap().tiers()[0].mmr,
            Rate(170_000_000)
        );
    }

    #[test]
    fn tiers_above_equity_liquidate_at_once_with_an_order() {
        let mut e = engine(4_000_000);
        // MMR 25 %: MM 12,500 > equity 10,000: liquidation, and its first order goes out now.
        let p = params(250_000_000, RiskConfig::default());
        let (outcome, outs) = reload(&mut e, &p);
        assert_eq!(outcome.liquidations, 1, "{outs:?}");
        assert_eq!(e.unit_state(0), Some(UnitState::Liquidating));
        let order = outs.iter().find_map(|o| match o {
            Output::Liquidation(l) => Some(*l),
            _ => None,
        });
        let order = order.expect("a liquidation order");
        assert_eq!(
            (order.account, order.instrument, order.side),
            (1, 0, shm::Side::Sell)
        );
        assert_eq!(order.input_seq, 7);
    }

    #[test]
    fn a_lower_call_level_calls_and_a_higher_one_rearms() {
        // MMR 10 %: MM 5,000 on 10,000: ratio 0.5, healthy at the default 0.8.
        let mut e = engine(100_000_000);
        assert_eq!(e.unit_state(0), Some(UnitState::Healthy));
        let config = RiskConfig {
            call_level: Rate(400_000_000),
            rearm_level: Rate(300_000_000),
            ..RiskConfig::default()
        };
        let p = params(100_000_000, config);
        let (outcome, outs) = reload(&mut e, &p);
        assert!(outcome.thresholds_changed);
        assert_eq!(outcome.instruments_changed, 0);
        assert_eq!(outcome.margin_calls, 1, "{outs:?}");
        // Every unit is evaluated again when the levels move.
        assert_eq!(outcome.units_evaluated, 2);
        assert_eq!(e.unit_state(0), Some(UnitState::Called));
        assert!(
            matches!(outs[0], Output::Alert(a) if a.arg1 == 1 << 32),
            "{outs:?}"
        );
        assert_eq!(e.config().call_level, Rate(400_000_000));
        // Back to the defaults: 0.5 is below the re-arm level 0.7, the call re-arms, no output.
        let p = params(100_000_000, RiskConfig::default());
        let (outcome, outs) = reload(&mut e, &p);
        assert_eq!(outcome.margin_calls, 0);
        assert_eq!(outs.len(), 1, "only the reload alert: {outs:?}");
        assert_eq!(e.unit_state(0), Some(UnitState::Healthy));
        // The band follows the new level: a fall to a ratio of 0.85 calls again on the tick.
        // Equity 10,000 + (p − 50,000); MM = 0.1 p; 0.1 p / (p − 40,000) ≥ 0.8 for p ≤ 45,714.
        let mut outs = Vec::new();
        e.on_tick(0, Price(4_550_000), 8, &mut |o| outs.push(o));
        assert!(
            outs.iter()
                .any(|o| matches!(o, Output::MarginCall(c) if c.account == 1)),
            "{outs:?}"
        );
    }

    #[test]
    fn an_unchanged_configuration_changes_nothing_but_says_so() {
        let mut e = engine(4_000_000);
        let p = params(4_000_000, RiskConfig::default());
        let (outcome, outs) = reload(&mut e, &p);
        assert!(!outcome.changed());
        assert_eq!(outcome.units_evaluated, 0);
        assert!(
            matches!(outs.as_slice(), [Output::Alert(a)] if a.code == shm::alert_code::CONFIG_RELOADED && a.arg1 == 0),
            "{outs:?}"
        );
    }

    #[test]
    fn changes_that_need_a_restart_are_refused_and_nothing_moves() {
        let mut e = engine(4_000_000);
        let mut outs = Vec::new();
        let mut p = params(250_000_000, RiskConfig::default());
        p.instruments.pop();
        let err = e.reload(&p, 7, &mut |o| outs.push(o)).unwrap_err();
        assert_eq!(
            err,
            ReloadError::InstrumentCount {
                found: 1,
                running: 2
            }
        );
        let mut p = params(250_000_000, RiskConfig::default());
        p.instruments.swap(0, 1);
        let err = e.reload(&p, 7, &mut |o| outs.push(o)).unwrap_err();
        assert!(matches!(err, ReloadError::Renamed { id: 0, .. }), "{err}");
        let mut spec_btc = params(250_000_000, RiskConfig::default());
        let t = spec_btc.instruments[0].tiers()[0];
        spec_btc.instruments[0] = Instrument::new(InstrumentSpec {
            symbol: "BTCUSDT".to_string(),
            kind: InstrumentKind::Perpetual,
            price_decimals: 1,
            qty_decimals: 3,
            tick: Price(1),
            min_qty: Qty(1),
            liquidation_fee: Rate(5_000_000),
            tiers: vec![TierSpec {
                min_notional: None,
                max_notional: t.max_notional,
                mmr: t.mmr,
                imr: t.imr,
                amount: None,
            }],
        })
        .expect("valid");
        let err = e.reload(&spec_btc, 7, &mut |o| outs.push(o)).unwrap_err();
        assert!(
            matches!(
                &err,
                ReloadError::FixedField {
                    field: "price_decimals",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("restart"), "{err}");
        assert!(outs.is_empty(), "{outs:?}");
        assert_eq!(e.unit_state(0), Some(UnitState::Healthy));
        assert_eq!(
            e.instruments().get(InstrumentId(0)).unwrap().tiers()[0].mmr,
            Rate(4_000_000)
        );
    }
}

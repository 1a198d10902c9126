//! Volatility-aware maintenance margin (optional, off by default).
//!
//! With [`VolScaling`] configured, each instrument's maintenance rates are multiplied by a
//! scale derived from its realised volatility, the EWMA of `|Δp|/p` over its ticks that the
//! engine keeps anyway: `scale = vol / reference`, clamped to `[min_scale, max_scale]` and
//! rounded down to a multiple of `step`. Every tier's MMR becomes `⌈mmr · scale⌉` (kept below 1;
//! the IMR is raised to it when lower), and the maintenance amounts are derived again, so
//! maintenance stays continuous across tiers.
//!
//! Because the maintenance margin of every holder changes with the scale, the scale moves in
//! discrete steps: it is recomputed at most once every `interval_ns` of engine time per
//! instrument, on a tick, and applied only when it differs from the current one by at least
//! `step`. When it changes, every holder of the instrument is evaluated again and banded afresh
//! (in unit order), so the index stays exact: the index and the brute-force scan apply the same
//! scale at the same tick and decide identically.

use super::RiskEngine;
use crate::margin::{Instrument, InstrumentSpec, Rate, TierSpec};
use crate::shm::Output;

/// Configuration of the volatility scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolScaling {
    /// Volatility (EWMA of `|Δp|/p` per tick, 10^-9 units) at which the scale is 1.
    pub reference_e9: u64,
    /// Lowest scale. Must be positive.
    pub min_scale: Rate,
    /// Highest scale.
    pub max_scale: Rate,
    /// Granularity of the scale, and least change applied.
    pub step: Rate,
    /// Least engine time between two recomputations for an instrument.
    pub interval_ns: u64,
}

impl Default for VolScaling {
    fn default() -> Self {
        VolScaling {
            reference_e9: 1_000_000,
            min_scale: Rate(1_000_000_000),
            max_scale: Rate(3_000_000_000),
            step: Rate(250_000_000),
            interval_ns: 60_000_000_000,
        }
    }
}

/// The scale for a volatility (see the module docs).
pub fn scale_for(config: &VolScaling, vol_e9: u64) -> Rate {
    let raw = u128::from(vol_e9) * 1_000_000_000 / u128::from(config.reference_e9.max(1));
    let clamped = raw.clamp(
        u128::from(config.min_scale.0),
        u128::from(config.max_scale.0.max(config.min_scale.0)),
    );
    let step = u128::from(config.step.0.max(1));
    let stepped = (clamped / step * step).max(u128::from(config.min_scale.0));
    Rate(stepped as u64)
}

/// `base` with every tier's MMR multiplied by `scale` (see the module docs).
pub fn scaled_instrument(base: &Instrument, scale: Rate) -> Option<Instrument> {
    let mut prev_cap = None;
    let tiers = base
        .tiers()
        .iter()
        .map(|t| {
            let mmr = (u128::from(t.mmr.0) * u128::from(scale.0)).div_ceil(1_000_000_000);
            let mmr = mmr.min(999_999_999) as u64;
            let spec = TierSpec {
                min_notional: prev_cap,
                max_notional: t.max_notional,
                mmr: Rate(mmr),
                imr: Rate(t.imr.0.max(mmr)),
                amount: None,
            };
            prev_cap = Some(t.max_notional);
            spec
        })
        .collect();
    Instrument::new(InstrumentSpec {
        symbol: base.symbol.to_string(),
        kind: base.kind,
        price_decimals: base.price_decimals,
        qty_decimals: base.qty_decimals,
        tick: base.tick,
        min_qty: base.min_qty,
        liquidation_fee: base.liquidation_fee,
        tiers,
    })
    .ok()
}

impl RiskEngine {
    /// After a tick: moves the instrument's MMR scale when due and re-bands its holders.
    pub(crate) fn rescale(
        &mut self,
        instrument: u32,
        seq: u64,
        now_ns: u64,
        out: &mut impl FnMut(Output),
    ) {
        let Some(config) = self.config.vol_scaling else {
            return;
        };
        let i = instrument as usize;
        let (Some(&vol), Some(&(last_ns, current))) = (self.vol.get(i), self.scales.get(i)) else {
            return;
        };
        if last_ns != 0 && now_ns.saturating_sub(last_ns) < config.interval_ns {
            return;
        }
        self.scales[i].0 = now_ns.max(1);
        let next = scale_for(&config, vol);
        if next.0.abs_diff(current.0) < config.step.0.max(1) {
            return;
        }
        let Some(base) = self.base_instruments.get(i) else {
            return;
        };
        let Some(scaled) = scaled_instrument(base, next) else {
            self.counters.unevaluable += 1;
            return;
        };
        // Rebuilt whole (rare: at most once per interval per instrument), ids unchanged.
        let mut table = crate::margin::InstrumentTable::new();
        for (id, inst) in self.table.iter() {
            let inst = if id.0 == instrument {
                scaled.clone()
            } else {
                inst.clone()
            };
            if table.push(inst).is_none() {
                return;
            }
        }
        self.table = table;
        self.scales[i].1 = next;
        self.counters.rescales += 1;
        let mut units = self.holders.get(i).cloned().unwrap_or_default();
        units.sort_unstable();
        units.dedup();
        for u in units {
            self.readmit_unit(u, seq, now_ns, out);
        }
    }

    /// The current MMR scale of an instrument (1 when scaling is off).
    pub fn mmr_scale(&self, instrument: u32) -> Rate {
        self.scales
            .get(instrument as usize)
            .map_or(Rate::ONE, |s| s.1)
    }
}

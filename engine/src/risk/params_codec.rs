//! The byte codec of [`RiskParams`]: what a SIGHUP reload applied, as the journal keeps it so
//! that a restart applies the same parameters at the same place (see
//! [`crate::recovery::entry`]).
//!
//! Little-endian, in the snapshot codec's conventions ([`crate::recovery::codec`]): the
//! instruments (symbol, kind and expiry, decimals, tick, minimum quantity, liquidation fee, and
//! each tier's cap, rates and maintenance amount), then every field of [`RiskConfig`]. Decoding
//! validates each instrument again ([`Instrument::new`]).

use crate::margin::{Instrument, InstrumentKind, InstrumentSpec, Price, Qty, Rate, TierSpec};
use crate::recovery::codec::{DecodeError, Reader, Writer};

use super::RiskConfig;
use super::breaker::BreakerConfig;
use super::expiry::ClockSource;
use super::liquidation::{LiquidationConfig, Priority};
use super::reload::RiskParams;
use super::vol::VolScaling;

impl RiskParams {
    /// Writes the parameters (see the module docs).
    pub fn encode(&self, w: &mut Writer) {
        w.len_of(self.instruments.len());
        for i in &self.instruments {
            w.len_of(i.symbol.len());
            w.bytes(i.symbol.as_bytes());
            match i.kind {
                InstrumentKind::Perpetual => w.u8(0),
                InstrumentKind::Future { expiry_unix_s } => {
                    w.u8(1);
                    w.i64(expiry_unix_s);
                }
            }
            w.u32(i.price_decimals);
            w.u32(i.qty_decimals);
            w.i64(i.tick.0);
            w.i64(i.min_qty.0);
            w.u64(i.liquidation_fee.0);
            w.len_of(i.tiers().len());
            for t in i.tiers() {
                w.i128(t.max_notional);
                w.u64(t.mmr.0);
                w.u64(t.imr.0);
                w.i128(t.amount);
            }
        }
        encode_config(&self.config, w);
    }

    /// Reads parameters written by [`encode`](Self::encode); the whole input must be consumed.
    pub fn decode(r: &mut Reader) -> Result<RiskParams, DecodeError> {
        let params = Self::decode_part(r)?;
        r.finish()?;
        Ok(params)
    }

    /// As [`decode`](Self::decode), leaving what follows in `r`.
    pub fn decode_part(r: &mut Reader) -> Result<RiskParams, DecodeError> {
        let n = r.len_of(8)?;
        let mut instruments = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.len_of(1)?;
            let symbol = std::str::from_utf8(r.take(len)?)
                .map_err(|_| r.invalid("an instrument symbol that is not UTF-8"))?
                .to_string();
            let kind = match r.u8()? {
                0 => InstrumentKind::Perpetual,
                1 => InstrumentKind::Future {
                    expiry_unix_s: r.i64()?,
                },
                _ => return Err(r.invalid("an unknown instrument kind")),
            };
            let price_decimals = r.u32()?;
            let qty_decimals = r.u32()?;
            let tick = Price(r.i64()?);
            let min_qty = Qty(r.i64()?);
            let liquidation_fee = Rate(r.u64()?);
            let tiers_len = r.len_of(48)?;
            let mut tiers = Vec::with_capacity(tiers_len);
            for _ in 0..tiers_len {
                tiers.push(TierSpec {
                    min_notional: None,
                    max_notional: r.i128()?,
                    mmr: Rate(r.u64()?),
                    imr: Rate(r.u64()?),
                    amount: Some(r.i128()?),
                });
            }
            let inst = Instrument::new(InstrumentSpec {
                symbol,
                kind,
                price_decimals,
                qty_decimals,
                tick,
                min_qty,
                liquidation_fee,
                tiers,
            })
            .map_err(|_| r.invalid("an instrument its own checks refuse"))?;
            instruments.push(inst);
        }
        let config = decode_config(r)?;
        Ok(RiskParams {
            instruments,
            config,
        })
    }
}

fn encode_config(c: &RiskConfig, w: &mut Writer) {
    w.u64(c.call_level.0);
    w.u64(c.rearm_level.0);
    let l = &c.liquidation;
    for rate in [l.target_ratio, l.full_ratio, l.slice_share, l.max_spread] {
        w.u64(rate.0);
    }
    w.u64(l.child_timeout_ns);
    w.u64(l.fill_deadline_ns);
    w.u8(match l.priority {
        Priority::CalmDeepFirst => 0,
        Priority::LargestFirst => 1,
        Priority::AsHeld => 2,
    });
    w.u64(l.breaker.max_loss_share.0);
    w.u64(l.breaker.window_ns);
    match c.clock {
        ClockSource::PublishNsIsUnixNs => w.u8(0),
        ClockSource::Offset(d) => {
            w.u8(1);
            w.i64(d);
        }
    }
    w.u64(c.twap_window_ns);
    match &c.vol_scaling {
        None => w.u8(0),
        Some(v) => {
            w.u8(1);
            w.u64(v.reference_e9);
            w.u64(v.min_scale.0);
            w.u64(v.max_scale.0);
            w.u64(v.step.0);
            w.u64(v.interval_ns);
        }
    }
}

fn decode_config(r: &mut Reader) -> Result<RiskConfig, DecodeError> {
    let call_level = Rate(r.u64()?);
    let rearm_level = Rate(r.u64()?);
    let liquidation = LiquidationConfig {
        target_ratio: Rate(r.u64()?),
        full_ratio: Rate(r.u64()?),
        slice_share: Rate(r.u64()?),
        max_spread: Rate(r.u64()?),
        child_timeout_ns: r.u64()?,
        fill_deadline_ns: r.u64()?,
        priority: match r.u8()? {
            0 => Priority::CalmDeepFirst,
            1 => Priority::LargestFirst,
            2 => Priority::AsHeld,
            _ => return Err(r.invalid("an unknown liquidation priority")),
        },
        breaker: BreakerConfig {
            max_loss_share: Rate(r.u64()?),
            window_ns: r.u64()?,
        },
    };
    let clock = match r.u8()? {
        0 => ClockSource::PublishNsIsUnixNs,
        1 => ClockSource::Offset(r.i64()?),
        _ => return Err(r.invalid("an unknown clock source")),
    };
    let twap_window_ns = r.u64()?;
    let vol_scaling = match r.u8()? {
        0 => None,
        1 => Some(VolScaling {
            reference_e9: r.u64()?,
            min_scale: Rate(r.u64()?),
            max_scale: Rate(r.u64()?),
            step: Rate(r.u64()?),
            interval_ns: r.u64()?,
        }),
        _ => return Err(r.invalid("an unknown volatility-scaling flag")),
    };
    Ok(RiskConfig {
        call_level,
        rearm_level,
        liquidation,
        clock,
        twap_window_ns,
        vol_scaling,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk::synth;

    fn params() -> RiskParams {
        let (table, _) = synth::instruments(4, 11);
        let mut config = RiskConfig {
            clock: ClockSource::Offset(-1_234),
            vol_scaling: Some(VolScaling::default()),
            ..RiskConfig::default()
        };
        config.liquidation.priority = Priority::AsHeld;
        config.liquidation.fill_deadline_ns = 777;
        RiskParams {
            instruments: table.iter().map(|(_, i)| i.clone()).collect(),
            config,
        }
    }

    fn bytes(p: &RiskParams) -> Vec<u8> {
        let mut w = Writer::new();
        p.encode(&mut w);
        w.into_bytes()
    }

    #[test]
    fn parameters_round_trip_exactly() {
        let p = params();
        let b = bytes(&p);
        let back = RiskParams::decode(&mut Reader::new(&b)).expect("decodes");
        assert_eq!(back.config, p.config);
        assert_eq!(back.instruments.len(), p.instruments.len());
        for (a, b) in back.instruments.iter().zip(&p.instruments) {
            assert_eq!(a.symbol, b.symbol);
            assert_eq!(a.kind, b.kind);
            assert_eq!(a.tiers(), b.tiers());
            assert_eq!(a.liquidation_fee, b.liquidation_fee);
            assert_eq!((a.tick, a.min_qty), (b.tick, b.min_qty));
        }
        assert_eq!(
            bytes(&back),
            b,
            "bytes → parameters → bytes is the identity"
        );
    }

    #[test]
    fn damaged_parameters_are_errors_never_panics() {
        let b = bytes(&params());
        for cut in [0, 1, 9, b.len() / 2, b.len() - 1] {
            assert!(
                RiskParams::decode(&mut Reader::new(&b[..cut])).is_err(),
                "cut {cut}"
            );
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(RiskParams::decode(&mut Reader::new(&longer)).is_err());
        for i in 0..b.len() {
            let mut flipped = b.clone();
            flipped[i] ^= 0xA5;
            // Decodes to something valid or refuses; never panics.
            let _ = RiskParams::decode(&mut Reader::new(&flipped));
        }
    }
}

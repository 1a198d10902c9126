//! Output record kinds carried by an orders ring (the engine's decisions), and their encoding.
//!
//! Same units as [`super::input`]: `_px` price, `_qty` quantity (instrument scales), `_money` money
//! (10^-8), `_e9` ratio scaled by 10^9. `side` is the record's `aux` byte: 1 buy, 2 sell.
//!
//! ```text
//!  tag  kind               instr.  aux   p0          p1              p2           p3           p4
//!  16   margin call        0       0     account     ratio_e9 MM/eq  equity_money mm_money     input seq
//!  17   liquidation order  yes     side  order id    account         qty (>0)     limit_px     input seq
//!  18   ADL order          yes     side  order id    account         qty (>0)     price_px     bankrupt account
//!  19   settlement         yes     0     account     qty (signed)    price_px     pnl_money    input seq
//!  20   alert              0       0     code        arg0            arg1
//! ```

use super::layout::Record;

/// Tag of [`Output::MarginCall`].
pub const TAG_MARGIN_CALL: u8 = 16;
/// Tag of [`Output::Liquidation`].
pub const TAG_LIQUIDATION: u8 = 17;
/// Tag of [`Output::Adl`].
pub const TAG_ADL: u8 = 18;
/// Tag of [`Output::Settlement`].
pub const TAG_SETTLEMENT: u8 = 19;
/// Tag of [`Output::Alert`].
pub const TAG_ALERT: u8 = 20;

/// Order side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// Buy (closes a short).
    Buy,
    /// Sell (closes a long).
    Sell,
}

impl Side {
    /// Wire code.
    pub const fn code(self) -> u8 {
        match self {
            Side::Buy => 1,
            Side::Sell => 2,
        }
    }

    /// Decodes a wire code.
    pub const fn from_code(code: u8) -> Option<Side> {
        match code {
            1 => Some(Side::Buy),
            2 => Some(Side::Sell),
            _ => None,
        }
    }

    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}

/// The account's margin ratio crossed the call level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarginCall {
    /// Account id.
    pub account: u64,
    /// Maintenance margin / equity, scaled by 10^9.
    pub ratio_e9: i64,
    /// Equity.
    pub equity_money: i64,
    /// Maintenance margin.
    pub mm_money: i64,
    /// Sequence number of the input record that caused it.
    pub input_seq: u64,
}

/// An order that reduces a liquidated account's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liquidation {
    /// Deterministic order id.
    pub order_id: u64,
    /// Account id.
    pub account: u64,
    /// Instrument id.
    pub instrument: u32,
    /// Side.
    pub side: Side,
    /// Quantity (positive).
    pub qty: i64,
    /// Worst acceptable price (never worse than bankruptcy).
    pub limit_px: i64,
    /// Sequence number of the input record that caused it.
    pub input_seq: u64,
}

/// An auto-deleveraging order against an opposite-side account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adl {
    /// Deterministic order id.
    pub order_id: u64,
    /// The deleveraged account.
    pub account: u64,
    /// Instrument id.
    pub instrument: u32,
    /// Side of the deleveraged account's trade.
    pub side: Side,
    /// Quantity (positive).
    pub qty: i64,
    /// Price (the bankrupt account's bankruptcy price).
    pub price_px: i64,
    /// The bankrupt account on the other side.
    pub bankrupt_account: u64,
}

/// A position settled (expiry or delisting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settlement {
    /// Account id.
    pub account: u64,
    /// Instrument id.
    pub instrument: u32,
    /// Signed quantity settled.
    pub qty: i64,
    /// Settlement price.
    pub price_px: i64,
    /// Realised pnl.
    pub pnl_money: i64,
    /// Sequence number of the input record that caused it.
    pub input_seq: u64,
}

/// A numbered condition worth an operator's attention; see [`alert_code`] for the codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Alert {
    /// Alert code.
    pub code: u32,
    /// First argument (meaning set by the code).
    pub arg0: u64,
    /// Second argument.
    pub arg1: u64,
}

/// Alert codes. 1..=99 come from the ingest stage, 100.. from risk and emit.
pub mod alert_code {
    /// Sequence gap: arg0 = expected seq, arg1 = seq found.
    pub const SEQUENCE_GAP: u32 = 1;
    /// No producer heartbeat within the stale limit: arg0 = age of the last heartbeat in ns.
    pub const PRODUCER_STALE: u32 = 2;
    /// Heartbeats resumed after a stale period: arg0 = stale duration in ns.
    pub const PRODUCER_RESUMED: u32 = 3;
    /// The producer restarted: arg0 = old pid, arg1 = new pid.
    pub const PRODUCER_RESTARTED: u32 = 4;
    /// A record was rejected: arg0 = rejection reason code, arg1 = seq.
    pub const RECORD_REJECTED: u32 = 5;
    /// A mark outside the price band is held until confirmed: arg0 = instrument, arg1 = mark.
    pub const PRICE_HELD: u32 = 6;
    /// A held move was confirmed (it persisted, or the index agreed) and accepted: arg0 =
    /// instrument, arg1 = mark.
    pub const PRICE_CONFIRMED: u32 = 7;
    /// The insurance fund cannot cover a loss: arg0 = account, arg1 = shortfall money.
    pub const INSURANCE_FUND_SHORT: u32 = 100;
    /// A liquidation order got no fill within its deadline: arg0 = order id.
    pub const LIQUIDATION_UNFILLED: u32 = 101;
    /// New instrument tiers or thresholds were applied (SIGHUP) after the input of seq arg0;
    /// arg1 = instruments whose tiers changed, plus 2^32 when the thresholds changed.
    pub const CONFIG_RELOADED: u32 = 102;

    /// Name of a known code.
    pub const fn name(code: u32) -> &'static str {
        match code {
            SEQUENCE_GAP => "sequence_gap",
            PRODUCER_STALE => "producer_stale",
            PRODUCER_RESUMED => "producer_resumed",
            PRODUCER_RESTARTED => "producer_restarted",
            RECORD_REJECTED => "record_rejected",
            PRICE_HELD => "price_held",
            PRICE_CONFIRMED => "price_confirmed",
            INSURANCE_FUND_SHORT => "insurance_fund_short",
            LIQUIDATION_UNFILLED => "liquidation_unfilled",
            CONFIG_RELOADED => "config_reloaded",
            _ => "unknown",
        }
    }
}

/// One decoded output record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// See [`MarginCall`].
    MarginCall(MarginCall),
    /// See [`Liquidation`].
    Liquidation(Liquidation),
    /// See [`Adl`].
    Adl(Adl),
    /// See [`Settlement`].
    Settlement(Settlement),
    /// See [`Alert`].
    Alert(Alert),
}

/// Why a record could not be decoded as an output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OutputDecodeError {
    /// The tag is not an output kind.
    #[error(
        "unknown output tag {0}; the writer speaks another layout version or wrote an input record into an orders ring"
    )]
    UnknownTag(u8),
    /// The side byte is neither 1 (buy) nor 2 (sell).
    #[error("unknown side code {0}; expected 1 (buy) or 2 (sell)")]
    UnknownSide(u8),
}

impl Output {
    /// The record's tag.
    pub const fn tag(&self) -> u8 {
        match self {
            Output::MarginCall(_) => TAG_MARGIN_CALL,
            Output::Liquidation(_) => TAG_LIQUIDATION,
            Output::Adl(_) => TAG_ADL,
            Output::Settlement(_) => TAG_SETTLEMENT,
            Output::Alert(_) => TAG_ALERT,
        }
    }

    /// Lower-case kind name.
    pub const fn kind_name(&self) -> &'static str {
        match self {
            Output::MarginCall(_) => "margin_call",
            Output::Liquidation(_) => "liquidation",
            Output::Adl(_) => "adl",
            Output::Settlement(_) => "settlement",
            Output::Alert(_) => "alert",
        }
    }

    /// Encodes the body into a record (commit and publish stamp left 0 for the producer to set).
    pub const fn encode(&self) -> Record {
        let mut r = Record {
            commit: 0,
            publish_ns: 0,
            tag: self.tag(),
            aux: 0,
            reserved: 0,
            instrument: 0,
            payload: [0; 5],
        };
        match *self {
            Output::MarginCall(m) => {
                r.payload = [
                    m.account,
                    m.ratio_e9 as u64,
                    m.equity_money as u64,
                    m.mm_money as u64,
                    m.input_seq,
                ];
            }
            Output::Liquidation(l) => {
                r.instrument = l.instrument;
                r.aux = l.side.code();
                r.payload = [
                    l.order_id,
                    l.account,
                    l.qty as u64,
                    l.limit_px as u64,
                    l.input_seq,
                ];
            }
            Output::Adl(a) => {
                r.instrument = a.instrument;
                r.aux = a.side.code();
                r.payload = [
                    a.order_id,
                    a.account,
                    a.qty as u64,
                    a.price_px as u64,
                    a.bankrupt_account,
                ];
            }
            Output::Settlement(s) => {
                r.instrument = s.instrument;
                r.payload = [
                    s.account,
                    s.qty as u64,
                    s.price_px as u64,
                    s.pnl_money as u64,
                    s.input_seq,
                ];
            }
            Output::Alert(a) => {
                r.payload = [a.code as u64, a.arg0, a.arg1, 0, 0];
            }
        }
        r
    }

    /// Decodes a record's body.
    pub const fn decode(r: &Record) -> Result<Output, OutputDecodeError> {
        let p = r.payload;
        let side = match r.tag {
            TAG_LIQUIDATION | TAG_ADL => match Side::from_code(r.aux) {
                Some(s) => s,
                None => return Err(OutputDecodeError::UnknownSide(r.aux)),
            },
            _ => Side::Buy,
        };
        Ok(match r.tag {
            TAG_MARGIN_CALL => Output::MarginCall(MarginCall {
                account: p[0],
                ratio_e9: p[1] as i64,
                equity_money: p[2] as i64,
                mm_money: p[3] as i64,
                input_seq: p[4],
            }),
            TAG_LIQUIDATION => Output::Liquidation(Liquidation {
                order_id: p[0],
                account: p[1],
                instrument: r.instrument,
                side,
                qty: p[2] as i64,
                limit_px: p[3] as i64,
                input_seq: p[4],
            }),
            TAG_ADL => Output::Adl(Adl {
                order_id: p[0],
                account: p[1],
                instrument: r.instrument,
                side,
                qty: p[2] as i64,
                price_px: p[3] as i64,
                bankrupt_account: p[4],
            }),
            TAG_SETTLEMENT => Output::Settlement(Settlement {
                account: p[0],
                instrument: r.instrument,
                qty: p[1] as i64,
                price_px: p[2] as i64,
                pnl_money: p[3] as i64,
                input_seq: p[4],
            }),
            TAG_ALERT => Output::Alert(Alert {
                code: p[0] as u32,
                arg0: p[1],
                arg1: p[2],
            }),
            other => return Err(OutputDecodeError::UnknownTag(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_words() {
        let all = [
            Output::MarginCall(MarginCall {
                account: 1,
                ratio_e9: 950_000_000,
                equity_money: -4,
                mm_money: 5,
                input_seq: 6,
            }),
            Output::Liquidation(Liquidation {
                order_id: 7,
                account: 8,
                instrument: 9,
                side: Side::Sell,
                qty: 10,
                limit_px: 11,
                input_seq: 12,
            }),
            Output::Adl(Adl {
                order_id: 13,
                account: 14,
                instrument: 15,
                side: Side::Buy,
                qty: 16,
                price_px: 17,
                bankrupt_account: 18,
            }),
            Output::Settlement(Settlement {
                account: 19,
                instrument: 20,
                qty: -21,
                price_px: 22,
                pnl_money: -23,
                input_seq: 24,
            }),
            Output::Alert(Alert {
                code: alert_code::SEQUENCE_GAP,
                arg0: 25,
                arg1: 26,
            }),
        ];
        for out in all {
            let back = Output::decode(&Record::from_words(out.encode().to_words()));
            assert_eq!(back, Ok(out));
        }
    }

    #[test]
    fn bad_side_and_tag_are_errors() {
        let mut r = Output::Liquidation(Liquidation {
            order_id: 1,
            account: 1,
            instrument: 1,
            side: Side::Buy,
            qty: 1,
            limit_px: 1,
            input_seq: 1,
        })
        .encode();
        r.aux = 0;
        assert_eq!(Output::decode(&r), Err(OutputDecodeError::UnknownSide(0)));
        r.tag = 1;
        assert_eq!(Output::decode(&r), Err(OutputDecodeError::UnknownTag(1)));
    }
}

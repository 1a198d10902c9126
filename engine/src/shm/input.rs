//! Input record kinds carried by a feed ring, and their encoding into a 64-byte [`Record`].
//!
//! Field suffixes carry units: `_px` is a price scaled by 10^price_decimals of the instrument,
//! `_qty` a quantity scaled by 10^qty_decimals, `_money` a money amount scaled by
//! 10^[`MONEY_DECIMALS`](super::MONEY_DECIMALS), `_e9` a rate scaled by 10^9.
//!
//! ```text
//!  tag  kind        instr.  aux     p0            p1           p2         p3          p4
//!  1    tick        yes     0       mark_px       index_px     bid_px     ask_px      bid_qty:u32 | ask_qty:u32<<32
//!  2    fill        yes     0       account       qty (signed) price_px   fee_money   liquidation order id (0 none)
//!  3    collateral  0       0       account       amount_money
//!  4    funding     yes     0       rate_e9
//!  5    status      yes     status  settle_px (0 none)
//!  6    heartbeat   0       0       sent          wait_ns
//! ```
//! A zero `index_px`, `bid_px` or `ask_px` means "not published"; top-of-book sizes are 32-bit and
//! saturate at `u32::MAX` (a lower bound on the real size).

use super::layout::Record;

/// Tag of [`Input::Tick`].
pub const TAG_TICK: u8 = 1;
/// Tag of [`Input::Fill`].
pub const TAG_FILL: u8 = 2;
/// Tag of [`Input::Collateral`].
pub const TAG_COLLATERAL: u8 = 3;
/// Tag of [`Input::Funding`].
pub const TAG_FUNDING: u8 = 4;
/// Tag of [`Input::Status`].
pub const TAG_STATUS: u8 = 5;
/// Tag of [`Input::Heartbeat`].
pub const TAG_HEARTBEAT: u8 = 6;

/// A market tick: mark, index and top of book for one instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Tick {
    /// Instrument id.
    pub instrument: u32,
    /// Mark price (must be positive).
    pub mark_px: i64,
    /// Index price, 0 when not published.
    pub index_px: i64,
    /// Best bid, 0 when not published.
    pub bid_px: i64,
    /// Best ask, 0 when not published.
    pub ask_px: i64,
    /// Size at the best bid (saturated at `u32::MAX`).
    pub bid_qty: u32,
    /// Size at the best ask (saturated at `u32::MAX`).
    pub ask_qty: u32,
}

/// A fill of an account's order (including the engine's own liquidation orders).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Fill {
    /// Account id.
    pub account: u64,
    /// Instrument id.
    pub instrument: u32,
    /// Signed quantity: positive buys, negative sells.
    pub qty: i64,
    /// Fill price.
    pub price_px: i64,
    /// Fee charged to the account (negative = rebate).
    pub fee_money: i64,
    /// The liquidation order this fill answers, 0 for an ordinary fill.
    pub liquidation_order_id: u64,
}

/// A deposit (positive) or withdrawal (negative) of collateral.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Collateral {
    /// Account id.
    pub account: u64,
    /// Signed amount.
    pub amount_money: i64,
}

/// A funding rate to apply to every position of an instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Funding {
    /// Instrument id.
    pub instrument: u32,
    /// Rate per funding interval, scaled by 10^9 (longs pay when positive).
    pub rate_e9: i64,
}

/// Trading state of an instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InstrumentState {
    /// Normal trading.
    Trading,
    /// Trading halted; marks may still move.
    Halted,
    /// Settling (dated future at expiry).
    Settling,
}

impl InstrumentState {
    /// Wire code (the record's `aux` byte).
    pub const fn code(self) -> u8 {
        match self {
            InstrumentState::Trading => 0,
            InstrumentState::Halted => 1,
            InstrumentState::Settling => 2,
        }
    }

    /// Decodes a wire code.
    pub const fn from_code(code: u8) -> Option<InstrumentState> {
        match code {
            0 => Some(InstrumentState::Trading),
            1 => Some(InstrumentState::Halted),
            2 => Some(InstrumentState::Settling),
            _ => None,
        }
    }

    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            InstrumentState::Trading => "trading",
            InstrumentState::Halted => "halted",
            InstrumentState::Settling => "settling",
        }
    }
}

/// A change of an instrument's trading state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// Instrument id.
    pub instrument: u32,
    /// New state.
    pub state: InstrumentState,
    /// Settlement price when settling, 0 otherwise.
    pub settle_px: i64,
}

/// A liveness record from the producer (also carries its counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Heartbeat {
    /// Records the producer had published before this one.
    pub sent: u64,
    /// Total nanoseconds the producer has waited on a full ring.
    pub wait_ns: u64,
}

/// One decoded input record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// See [`Tick`].
    Tick(Tick),
    /// See [`Fill`].
    Fill(Fill),
    /// See [`Collateral`].
    Collateral(Collateral),
    /// See [`Funding`].
    Funding(Funding),
    /// See [`Status`].
    Status(Status),
    /// See [`Heartbeat`].
    Heartbeat(Heartbeat),
}

/// Why a record could not be decoded as an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InputDecodeError {
    /// The tag is not an input kind.
    #[error(
        "unknown input tag {0}; the producer speaks another layout version or wrote an output record into a feed ring"
    )]
    UnknownTag(u8),
    /// A status record carries an unknown state code.
    #[error("unknown instrument state code {0} in a status record")]
    UnknownState(u8),
}

impl Input {
    /// The record's tag.
    pub const fn tag(&self) -> u8 {
        match self {
            Input::Tick(_) => TAG_TICK,
            Input::Fill(_) => TAG_FILL,
            Input::Collateral(_) => TAG_COLLATERAL,
            Input::Funding(_) => TAG_FUNDING,
            Input::Status(_) => TAG_STATUS,
            Input::Heartbeat(_) => TAG_HEARTBEAT,
        }
    }

    /// Lower-case kind name.
    pub const fn kind_name(&self) -> &'static str {
        match self {
            Input::Tick(_) => "tick",
            Input::Fill(_) => "fill",
            Input::Collateral(_) => "collateral",
            Input::Funding(_) => "funding",
            Input::Status(_) => "status",
            Input::Heartbeat(_) => "heartbeat",
        }
    }

    /// The instrument the record is about, if any.
    pub const fn instrument(&self) -> Option<u32> {
        match self {
            Input::Tick(t) => Some(t.instrument),
            Input::Fill(f) => Some(f.instrument),
            Input::Funding(f) => Some(f.instrument),
            Input::Status(s) => Some(s.instrument),
            Input::Collateral(_) | Input::Heartbeat(_) => None,
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
            Input::Tick(t) => {
                r.instrument = t.instrument;
                r.payload = [
                    t.mark_px as u64,
                    t.index_px as u64,
                    t.bid_px as u64,
                    t.ask_px as u64,
                    (t.bid_qty as u64) | ((t.ask_qty as u64) << 32),
                ];
            }
            Input::Fill(f) => {
                r.instrument = f.instrument;
                r.payload = [
                    f.account,
                    f.qty as u64,
                    f.price_px as u64,
                    f.fee_money as u64,
                    f.liquidation_order_id,
                ];
            }
            Input::Collateral(c) => {
                r.payload = [c.account, c.amount_money as u64, 0, 0, 0];
            }
            Input::Funding(f) => {
                r.instrument = f.instrument;
                r.payload = [f.rate_e9 as u64, 0, 0, 0, 0];
            }
            Input::Status(s) => {
                r.instrument = s.instrument;
                r.aux = s.state.code();
                r.payload = [s.settle_px as u64, 0, 0, 0, 0];
            }
            Input::Heartbeat(h) => {
                r.payload = [h.sent, h.wait_ns, 0, 0, 0];
            }
        }
        r
    }

    /// Decodes a record's body. Only the tag and state code can make this fail; value checks
    /// (prices, instruments, time) belong to the ingest stage.
    pub const fn decode(r: &Record) -> Result<Input, InputDecodeError> {
        let p = r.payload;
        Ok(match r.tag {
            TAG_TICK => Input::Tick(Tick {
                instrument: r.instrument,
                mark_px: p[0] as i64,
                index_px: p[1] as i64,
                bid_px: p[2] as i64,
                ask_px: p[3] as i64,
                bid_qty: p[4] as u32,
                ask_qty: (p[4] >> 32) as u32,
            }),
            TAG_FILL => Input::Fill(Fill {
                account: p[0],
                instrument: r.instrument,
                qty: p[1] as i64,
                price_px: p[2] as i64,
                fee_money: p[3] as i64,
                liquidation_order_id: p[4],
            }),
            TAG_COLLATERAL => Input::Collateral(Collateral {
                account: p[0],
                amount_money: p[1] as i64,
            }),
            TAG_FUNDING => Input::Funding(Funding {
                instrument: r.instrument,
                rate_e9: p[0] as i64,
            }),
            TAG_STATUS => match InstrumentState::from_code(r.aux) {
                Some(state) => Input::Status(Status {
                    instrument: r.instrument,
                    state,
                    settle_px: p[0] as i64,
                }),
                None => return Err(InputDecodeError::UnknownState(r.aux)),
            },
            TAG_HEARTBEAT => Input::Heartbeat(Heartbeat {
                sent: p[0],
                wait_ns: p[1],
            }),
            other => return Err(InputDecodeError::UnknownTag(other)),
        })
    }
}

/// Saturating conversion of a scaled quantity to the 32-bit top-of-book size field.
pub const fn book_qty(qty: i64) -> u32 {
    if qty <= 0 {
        0
    } else if qty >= u32::MAX as i64 {
        u32::MAX
    } else {
        qty as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> [Input; 6] {
        [
            Input::Tick(Tick {
                instrument: 3,
                mark_px: 1_234_567,
                index_px: -1,
                bid_px: 1_234_500,
                ask_px: 1_234_600,
                bid_qty: u32::MAX,
                ask_qty: 7,
            }),
            Input::Fill(Fill {
                account: u64::MAX,
                instrument: 1,
                qty: -5,
                price_px: 100,
                fee_money: -3,
                liquidation_order_id: 42,
            }),
            Input::Collateral(Collateral {
                account: 9,
                amount_money: i64::MIN,
            }),
            Input::Funding(Funding {
                instrument: 2,
                rate_e9: -100_000,
            }),
            Input::Status(Status {
                instrument: 4,
                state: InstrumentState::Settling,
                settle_px: 55,
            }),
            Input::Heartbeat(Heartbeat {
                sent: 10,
                wait_ns: 20,
            }),
        ]
    }

    #[test]
    fn every_kind_round_trips_through_words() {
        for input in all() {
            let words = input.encode().to_words();
            let back = Input::decode(&Record::from_words(words)).expect("decodes");
            assert_eq!(back, input);
        }
    }

    #[test]
    fn unknown_tag_and_state_are_errors() {
        let mut r = Record {
            tag: 200,
            ..Record::default()
        };
        assert_eq!(Input::decode(&r), Err(InputDecodeError::UnknownTag(200)));
        r.tag = TAG_STATUS;
        r.aux = 9;
        assert_eq!(Input::decode(&r), Err(InputDecodeError::UnknownState(9)));
    }

    #[test]
    fn book_qty_saturates() {
        assert_eq!(book_qty(-1), 0);
        assert_eq!(book_qty(5), 5);
        assert_eq!(book_qty(i64::MAX), u32::MAX);
    }
}

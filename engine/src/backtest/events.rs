//! One JSON object per line for each decision and each fill of a backtest (`events.jsonl`).
//!
//! | `type` | fields besides `seq`, `ts`, `type` |
//! |---|---|
//! | `margin_call` | `account`, `margin_ratio` (MM/equity), `equity`, `maintenance_margin` |
//! | `liquidation` | `order_id`, `account`, `symbol`, `side`, `qty`, `limit_price`, `mark`, `equity`, `maintenance_margin`, `bankruptcy_price` |
//! | `fill` | `order_id`, `account`, `symbol`, `side`, `qty`, `price` |
//! | `adl` | `order_id`, `account`, `symbol`, `side`, `qty`, `price`, `bankrupt_account`, `fund_takeover` (the counterparty is the insurance fund, account `u64::MAX`) |
//! | `settlement` | `account`, `symbol`, `qty` (signed, as held), `price`, `pnl` |
//!
//! `seq` is the sequence number of the input that caused the record (0: found when the accounts
//! were loaded); `ts` its time, Unix ns (the data's own timestamp). Prices and quantities are
//! exact decimals at the instrument's decimals; money has 8 decimals, as on the order ring
//! (equity rounded down, maintenance margin up: against the account); the bankruptcy price is
//! at the nearest tick, `null` when none exists. A liquidation's `mark`, `equity`,
//! `maintenance_margin` and `bankruptcy_price` are those of the margin unit holding the position
//! (the position alone when isolated) right after the input was applied. All numbers except
//! `seq`, `ts`, `account`, `order_id` and `bankrupt_account` are strings.

use std::fmt::Write as _;

use crate::margin::{Instrument, InstrumentTable, MarginSummary, Money, to_tick_nearest};
use crate::num::format_scaled;
use crate::shm::{self, MONEY_DECIMALS, Output, Side};

/// What a liquidation line adds to its record: the state of the position's unit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnitView {
    /// The instrument's mark, price units.
    pub mark_px: Option<i64>,
    /// The unit's summary, if it could be evaluated.
    pub summary: Option<MarginSummary>,
    /// The position's bankruptcy price, if any.
    pub bankruptcy: Option<Money>,
}

/// Formats event lines; symbols are quoted once.
#[derive(Debug)]
pub struct EventFormat {
    /// Per instrument: the JSON-quoted symbol, price and quantity decimals.
    instruments: Vec<(String, Instrument)>,
}

impl EventFormat {
    /// A formatter for `table`'s instruments.
    pub fn new(table: &InstrumentTable) -> EventFormat {
        EventFormat {
            instruments: table
                .iter()
                .map(|(_, i)| {
                    let quoted = serde_json::to_string(i.symbol.as_ref())
                        .unwrap_or_else(|_| "\"?\"".to_string());
                    (quoted, i.clone())
                })
                .collect(),
        }
    }

    fn inst(&self, instrument: u32) -> Option<&(String, Instrument)> {
        self.instruments.get(instrument as usize)
    }

    fn price(&self, instrument: u32, px: i64) -> String {
        let d = self.inst(instrument).map_or(0, |(_, i)| i.price_decimals);
        format_scaled(i128::from(px), d)
    }

    fn qty(&self, instrument: u32, qty: i64) -> String {
        let d = self.inst(instrument).map_or(0, |(_, i)| i.qty_decimals);
        format_scaled(i128::from(qty), d)
    }

    fn symbol(&self, instrument: u32) -> &str {
        self.inst(instrument).map_or("null", |(s, _)| s.as_str())
    }

    fn head(line: &mut String, seq: u64, ts: u64, kind: &str) {
        let _ = write!(line, "{{\"seq\":{seq},\"ts\":{ts},\"type\":\"{kind}\"");
    }

    /// Appends the line of a fill input (without the newline).
    pub fn fill(&self, line: &mut String, seq: u64, ts: u64, f: &shm::Fill) {
        Self::head(line, seq, ts, "fill");
        let side = if f.qty < 0 { Side::Sell } else { Side::Buy };
        let _ = write!(
            line,
            ",\"order_id\":{},\"account\":{},\"symbol\":{},\"side\":\"{}\",\"qty\":\"{}\",\"price\":\"{}\"}}",
            f.liquidation_order_id,
            f.account,
            self.symbol(f.instrument),
            side.name(),
            self.qty(f.instrument, f.qty.saturating_abs()),
            self.price(f.instrument, f.price_px),
        );
    }

    /// Appends the line of an output record (without the newline); `false` for records that
    /// have no line (alerts). `seq` is the input being applied; `unit` annotates liquidations.
    pub fn output(
        &self,
        line: &mut String,
        seq: u64,
        ts: u64,
        o: &Output,
        unit: &UnitView,
    ) -> bool {
        let money =
            |units: i64| format!("\"{}\"", format_scaled(i128::from(units), MONEY_DECIMALS));
        match o {
            Output::MarginCall(m) => {
                Self::head(line, m.input_seq, ts, "margin_call");
                let _ = write!(
                    line,
                    ",\"account\":{},\"margin_ratio\":\"{}\",\"equity\":{},\"maintenance_margin\":{}}}",
                    m.account,
                    format_scaled(i128::from(m.ratio_e9), 9),
                    money(m.equity_money),
                    money(m.mm_money),
                );
            }
            Output::Liquidation(l) => {
                Self::head(line, l.input_seq, ts, "liquidation");
                let _ = write!(
                    line,
                    ",\"order_id\":{},\"account\":{},\"symbol\":{},\"side\":\"{}\",\"qty\":\"{}\",\"limit_price\":\"{}\"",
                    l.order_id,
                    l.account,
                    self.symbol(l.instrument),
                    l.side.name(),
                    self.qty(l.instrument, l.qty),
                    self.price(l.instrument, l.limit_px),
                );
                let text = |v: Option<String>| v.map_or("null".to_string(), |s| format!("\"{s}\""));
                let mark = unit.mark_px.map(|px| self.price(l.instrument, px));
                let scaled = |m: Money, up: bool| {
                    let v = if up {
                        m.to_scaled_ceil(MONEY_DECIMALS)
                    } else {
                        m.to_scaled_floor(MONEY_DECIMALS)
                    };
                    v.map(|v| format_scaled(v, MONEY_DECIMALS))
                };
                let equity = unit.summary.and_then(|s| scaled(s.equity, false));
                let mm = unit.summary.and_then(|s| scaled(s.maintenance, true));
                let bp = self.inst(l.instrument).and_then(|(_, inst)| {
                    let t = to_tick_nearest(unit.bankruptcy?, inst)?;
                    Some(format_scaled(i128::from(t.0), inst.price_decimals))
                });
                let _ = write!(
                    line,
                    ",\"mark\":{},\"equity\":{},\"maintenance_margin\":{},\"bankruptcy_price\":{}}}",
                    text(mark),
                    text(equity),
                    text(mm),
                    text(bp),
                );
            }
            Output::Adl(a) => {
                Self::head(line, seq, ts, "adl");
                let _ = write!(
                    line,
                    ",\"order_id\":{},\"account\":{},\"symbol\":{},\"side\":\"{}\",\"qty\":\"{}\",\"price\":\"{}\",\"bankrupt_account\":{},\"fund_takeover\":{}}}",
                    a.order_id,
                    a.account,
                    self.symbol(a.instrument),
                    a.side.name(),
                    self.qty(a.instrument, a.qty),
                    self.price(a.instrument, a.price_px),
                    a.bankrupt_account,
                    a.account == crate::risk::takeover::FUND_ACCOUNT_ID,
                );
            }
            Output::Settlement(s) => {
                Self::head(line, s.input_seq, ts, "settlement");
                let _ = write!(
                    line,
                    ",\"account\":{},\"symbol\":{},\"qty\":\"{}\",\"price\":\"{}\",\"pnl\":{}}}",
                    s.account,
                    self.symbol(s.instrument),
                    self.qty(s.instrument, s.qty),
                    self.price(s.instrument, s.price_px),
                    money(s.pnl_money),
                );
            }
            Output::Alert(_) => return false,
        }
        true
    }
}

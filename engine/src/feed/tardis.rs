//! Tardis.dev trades and quotes rows.

use super::{FeedError, FileSource, time_ns};
use crate::shm::{Input, Tick, input::book_qty};

/// `exchange,symbol,timestamp,local_timestamp,id,side,price,amount` → a tick whose mark is the
/// trade price (no book).
pub(super) fn trade(src: &mut FileSource, row: &csv::StringRecord) -> Result<(), FeedError> {
    src.need(row, 8)?;
    src.set_symbol(row);
    let price_px = src.field(row, 6, "price", src.scaling.price_decimals)?;
    let amount = src.field(row, 7, "amount", src.scaling.qty_decimals)?;
    src.trade_qty = Some(amount);
    if price_px <= 0 {
        return Err(src.no_price());
    }
    let tick = Tick {
        instrument: src.scaling.instrument,
        mark_px: price_px,
        ..Tick::default()
    };
    src.set_pending(&[Input::Tick(tick)], &[time_ns(row.get(2), 1_000)]);
    Ok(())
}

/// `exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount` → a
/// tick with the top of book; mark = floor of the mid, or the one side present.
pub(super) fn quote(src: &mut FileSource, row: &csv::StringRecord) -> Result<(), FeedError> {
    src.need(row, 8)?;
    src.set_symbol(row);
    let (pd, qd) = (src.scaling.price_decimals, src.scaling.qty_decimals);
    let ask_qty = src.field(row, 4, "ask_amount", qd)?;
    let ask_px = src.field(row, 5, "ask_price", pd)?;
    let bid_px = src.field(row, 6, "bid_price", pd)?;
    let bid_qty = src.field(row, 7, "bid_amount", qd)?;
    let (bid_px, ask_px) = (bid_px.max(0), ask_px.max(0));
    let mark_px = match (bid_px > 0, ask_px > 0) {
        (true, true) => bid_px + (ask_px - bid_px).div_euclid(2),
        (true, false) => bid_px,
        (false, true) => ask_px,
        (false, false) => return Err(src.no_price()),
    };
    let tick = Tick {
        instrument: src.scaling.instrument,
        mark_px,
        index_px: 0,
        bid_px,
        ask_px,
        bid_qty: book_qty(bid_qty),
        ask_qty: book_qty(ask_qty),
    };
    src.set_pending(&[Input::Tick(tick)], &[time_ns(row.get(2), 1_000)]);
    Ok(())
}

impl FileSource {
    /// Keeps the row's `symbol` column (column 1), reusing the buffer.
    fn set_symbol(&mut self, row: &csv::StringRecord) {
        self.symbol.clear();
        self.symbol.push_str(row.get(1).unwrap_or("").trim());
    }
}

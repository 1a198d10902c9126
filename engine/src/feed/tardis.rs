//! Tardis.dev trades and quotes rows.

use super::{FeedError, FileSource};
use crate::shm::{Input, Tick, input::book_qty};

/// `exchange,symbol,timestamp,local_timestamp,id,side,price,amount` → a tick whose mark is the
/// trade price (no book).
pub(super) fn trade(src: &mut FileSource, row: &csv::StringRecord) -> Result<(), FeedError> {
    src.need(row, 8)?;
    let price_px = src.field(row, 6, "price", src.scaling.price_decimals)?;
    src.field(row, 7, "amount", src.scaling.qty_decimals)?;
    if price_px <= 0 {
        return Err(src.no_price());
    }
    let tick = Tick {
        instrument: src.scaling.instrument,
        mark_px: price_px,
        ..Tick::default()
    };
    src.set_pending(&[Input::Tick(tick)]);
    Ok(())
}

/// `exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount` → a
/// tick with the top of book; mark = floor of the mid, or the one side present.
pub(super) fn quote(src: &mut FileSource, row: &csv::StringRecord) -> Result<(), FeedError> {
    src.need(row, 8)?;
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
    src.set_pending(&[Input::Tick(tick)]);
    Ok(())
}

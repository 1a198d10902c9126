//! Binance kline rows (`open_time,open,high,low,close,...`), each expanded into four ticks.

use super::{FeedError, FileSource, time_ns};
use crate::shm::{Input, Tick};

/// The order in which a bar's prices are replayed: open, then whichever of high and low is nearer
/// the open (high on a tie), then the other, then close. The nearer extreme is the more plausible
/// first visit for a path that starts at the open.
pub fn bar_path(open: i64, high: i64, low: i64, close: i64) -> [i64; 4] {
    let up = (i128::from(high) - i128::from(open)).abs();
    let down = (i128::from(open) - i128::from(low)).abs();
    if up <= down {
        [open, high, low, close]
    } else {
        [open, low, high, close]
    }
}

pub(super) fn bar(src: &mut FileSource, row: &csv::StringRecord) -> Result<(), FeedError> {
    src.need(row, 5)?;
    let pd = src.scaling.price_decimals;
    let open = src.field(row, 1, "open", pd)?;
    let high = src.field(row, 2, "high", pd)?;
    let low = src.field(row, 3, "low", pd)?;
    let close = src.field(row, 4, "close", pd)?;
    if open <= 0 || high <= 0 || low <= 0 || close <= 0 {
        return Err(src.no_price());
    }
    let instrument = src.scaling.instrument;
    let ticks = bar_path(open, high, low, close).map(|mark_px| {
        Input::Tick(Tick {
            instrument,
            mark_px,
            ..Tick::default()
        })
    });
    let times = bar_times(row.get(0), row.get(6));
    src.set_pending(&ticks, &times);
    Ok(())
}

/// Times of a bar's four points, Unix ns: open at `open_time`, close at `close_time`, the
/// extremes at the thirds between (all at `open_time` without a readable `close_time`). Binance
/// writes milliseconds, newer files microseconds: a value of 10^14 or more is taken as µs.
fn bar_times(open_time: Option<&str>, close_time: Option<&str>) -> [Option<u64>; 4] {
    let unit = |text: Option<&str>| {
        let raw = time_ns(text, 1)?;
        raw.checked_mul(if raw >= 100_000_000_000_000 {
            1_000
        } else {
            1_000_000
        })
    };
    let Some(open) = unit(open_time) else {
        return [None; 4];
    };
    let close = unit(close_time).filter(|&c| c >= open).unwrap_or(open);
    let step = (close - open) / 3;
    [
        Some(open),
        Some(open + step),
        Some(open + 2 * step),
        Some(close),
    ]
}

//! The demo's ingredients: an embedded instrument, an embedded real price path (Binance BTCUSDT
//! mark price, 2025-10-10, the day of the crash), and the venue process that replays it.
//!
//! The venue is a separate process (the `brink` executable run again with `demo --venue`). It is
//! the feed's only producer and the order ring's only consumer, as a venue's feed handler and
//! order gateway would be: it publishes the price path as ticks at a paced rate, reads the
//! engine's liquidation orders, fills them against the book of the last tick it published, and
//! publishes those fills into the feed, where they reach the engine on the path real fills take.

use std::path::Path;
use std::time::Duration;

use crate::clock;
use crate::feed::{FeedError, FileSource, Scaling};
use crate::shm::{
    self, Consumer, Expect, Input, Output, Producer, RingKind, ShmError, Side, Slot, Tick,
};

/// The demo's instrument: BTCUSDT with Binance's published March-2021 maintenance tiers.
pub const SCENARIO: &str = r#"
[[instrument]]
symbol = "BTCUSDT"
kind = "perpetual"
price_decimals = 2
qty_decimals = 3
liquidation_fee = "0.003"
tiers = [ { max_notional = "50000", mmr = "0.004", imr = "0.008" },
          { max_notional = "250000", mmr = "0.005", imr = "0.01" },
          { max_notional = "1000000", mmr = "0.01", imr = "0.02" },
          { max_notional = "10000000", mmr = "0.025", imr = "0.05" },
          { max_notional = "20000000", mmr = "0.05", imr = "0.1" },
          { max_notional = "50000000", mmr = "0.1", imr = "0.2" } ]

[[price]]
symbol = "BTCUSDT"
mark = "121582.79"
"#;

/// Binance USDⓈ-M BTCUSDT mark-price 5-minute klines of 2025-10-10 (see `engine/fixtures/`).
pub const KLINES_ZIP: &[u8] =
    include_bytes!("../fixtures/binance-um_BTCUSDT_markprice_5m_2025-10-10.zip");

/// Size shown at each best level of the demo's book, lots (5 BTC).
pub const DEPTH_LOTS: u32 = 5_000;

/// The embedded klines as a tick path (prices in 0.01): each bar's open, extremes and close,
/// with `steps` evenly spaced points between consecutive ones.
pub fn price_path(dir: &Path, steps: u32) -> Result<Vec<i64>, FeedError> {
    let file = dir.join("BTCUSDT-5m-2025-10-10.zip");
    std::fs::write(&file, KLINES_ZIP).map_err(|source| FeedError::Io {
        path: file.clone(),
        source,
    })?;
    let source = FileSource::open(
        &file,
        Scaling {
            instrument: 0,
            price_decimals: 2,
            qty_decimals: 3,
        },
    )?;
    let mut points = Vec::new();
    for input in source {
        if let Input::Tick(t) = input? {
            points.push(t.mark_px);
        }
    }
    let steps = i64::from(steps.max(1));
    let mut path = Vec::with_capacity(points.len() * steps as usize);
    for pair in points.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        for k in 0..steps {
            path.push(a + (b - a) * k / steps);
        }
    }
    if let Some(&last) = points.last() {
        path.push(last);
    }
    Ok(path)
}

/// What the venue did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VenueSummary {
    /// Ticks published.
    pub ticks: u64,
    /// Liquidation orders received.
    pub orders: u64,
    /// Fills published.
    pub fills: u64,
    /// Orders left unfilled (the book was beyond their limit).
    pub unfilled: u64,
}

/// Runs the venue: creates the feed ring, attaches to the engine's order ring, publishes `path`
/// at `rate` ticks per second, fills orders, and closes the feed after a quiet `grace`.
pub fn run_venue(
    feed: &Path,
    orders: &Path,
    path: &[i64],
    rate: f64,
    grace: Duration,
) -> Result<VenueSummary, ShmError> {
    let mut producer = Producer::create(feed, RingKind::Feed, 1 << 16)?;
    let mut consumer = open_orders(orders)?;
    let mut summary = VenueSummary::default();
    let period_ns = if rate > 0.0 { 1e9 / rate } else { 0.0 };
    let start = clock::now_ns();
    let mut book = Tick::default();
    for (k, &price) in path.iter().enumerate() {
        let deadline = start + (k as f64 * period_ns) as u64;
        while clock::now_ns() < deadline {
            drain_orders(&mut consumer, &mut producer, &book, &mut summary);
            std::hint::spin_loop();
        }
        book = Tick {
            instrument: 0,
            mark_px: price,
            index_px: price,
            bid_px: price,
            ask_px: price,
            bid_qty: DEPTH_LOTS,
            ask_qty: DEPTH_LOTS,
        };
        producer.push(Input::Tick(book).encode());
        summary.ticks += 1;
        drain_orders(&mut consumer, &mut producer, &book, &mut summary);
    }
    // Answer the orders the last ticks caused, then close the feed.
    let mut quiet_since = clock::now_ns();
    while clock::now_ns() - quiet_since < grace.as_nanos() as u64 {
        if drain_orders(&mut consumer, &mut producer, &book, &mut summary) > 0 {
            quiet_since = clock::now_ns();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    producer.close();
    Ok(summary)
}

fn open_orders(path: &Path) -> Result<Consumer, ShmError> {
    let expect = Expect {
        kind: Some(RingKind::Orders),
        capacity: None,
    };
    let mut tries = 0;
    loop {
        match Consumer::open(path, expect) {
            Ok(c) => return Ok(c),
            Err(ShmError::Io { .. }) if tries < 2_000 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads every order published so far and answers each liquidation order with a fill at the
/// best level, when the level is not beyond the order's limit. Returns how many records it read.
fn drain_orders(
    consumer: &mut Consumer,
    producer: &mut Producer,
    book: &Tick,
    summary: &mut VenueSummary,
) -> usize {
    let mut read = 0;
    while let Slot::Ready(record) = consumer.peek() {
        consumer.advance();
        read += 1;
        let Ok(Output::Liquidation(order)) = Output::decode(&record) else {
            continue;
        };
        summary.orders += 1;
        let (level, fills) = match order.side {
            Side::Sell => (book.bid_px, book.bid_px >= order.limit_px),
            Side::Buy => (book.ask_px, book.ask_px <= order.limit_px),
        };
        if !fills || level <= 0 {
            summary.unfilled += 1;
            continue;
        }
        let qty = match order.side {
            Side::Sell => -order.qty,
            Side::Buy => order.qty,
        };
        producer.push(
            Input::Fill(shm::Fill {
                account: order.account,
                instrument: order.instrument,
                qty,
                price_px: level,
                fee_money: 0,
                liquidation_order_id: order.order_id,
            })
            .encode(),
        );
        summary.fills += 1;
    }
    if read > 0 {
        consumer.release();
    }
    read
}

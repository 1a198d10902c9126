//! The demo's ingredients: an embedded instrument, an embedded real price path (Binance BTCUSDT
//! mark price, 2025-10-10, the day of the crash), and the venue process that replays it.
//!
//! The venue is a separate process (the `brink` executable run again with `demo --venue`). It is
//! the feed's only producer and the order ring's only consumer, as a venue's feed handler and
//! order gateway would be: it publishes the price path as ticks at a paced rate, reads the
//! engine's liquidation orders, fills them against the book of the last tick it published, and
//! publishes those fills into the feed, where they reach the engine on the path real fills take.
//! `brink bench` runs the same venue over a longer stretch of the path.
//!
//! ## Stamps: the time a record was due
//! The venue publishes tick `k` at `start + k/rate` ([`Pace`]) and stamps it with that *due*
//! time, not with the time it managed to write it. A venue that falls behind (descheduled, or
//! waiting on a full feed ring) then shows its lateness as latency in the engine's `feed` and
//! `e2e` hops instead of hiding it (no coordinated omission). A fill is stamped with the time it
//! was written, but never later than the next tick's due time, so stamps stay in order (the
//! ingest stage refuses a stamp older than the instrument's previous one).

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use crate::clock;
use crate::feed::{FeedError, FileSource, Scaling};
use crate::shm::{
    self, Consumer, Expect, Input, Output, Producer, Record, RingKind, ShmError, Side, Slot, Tick,
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

/// A paced schedule: record `k` is due at `start_ns + k·10^9/rate` ns (CLOCK_MONOTONIC).
///
/// Invariant: `period_ns` is finite and `>= 0` (0: every record is due at the start, i.e. as
/// fast as possible).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    start_ns: u64,
    period_ns: f64,
}

impl Pace {
    /// A schedule starting at `start_ns` at `rate_per_s` records per second; a rate that is not
    /// a positive finite number means no pacing.
    pub fn new(start_ns: u64, rate_per_s: f64) -> Pace {
        let period_ns = if rate_per_s.is_finite() && rate_per_s > 0.0 {
            1e9 / rate_per_s
        } else {
            0.0
        };
        Pace {
            start_ns,
            period_ns,
        }
    }

    /// When record `k` is due. Non-decreasing in `k` (saturates at `u64::MAX`).
    pub fn due_ns(&self, k: u64) -> u64 {
        // f64 → u64 saturates; the product is monotone in k, so is the schedule.
        self.start_ns
            .saturating_add((k as f64 * self.period_ns) as u64)
    }
}

/// A tick written more than this long after its due time counts as late in
/// [`VenueSummary::late_ticks`].
pub const LATE_NS: u64 = 100_000;

/// What the venue did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VenueSummary {
    /// Ticks published.
    pub ticks: u64,
    /// Liquidation orders received.
    pub orders: u64,
    /// Fills published.
    pub fills: u64,
    /// Orders left unfilled (the book was beyond their limit, or the order came after the feed
    /// closed).
    pub unfilled: u64,
    /// Largest delay between a tick's due time and its writing, ns.
    pub max_late_ns: u64,
    /// Ticks written more than [`LATE_NS`] after their due time.
    pub late_ticks: u64,
    /// Time spent waiting on a full feed ring, ns.
    pub wait_ns: u64,
}

impl VenueSummary {
    /// One line of numbers, as the venue process prints it for its parent.
    pub fn to_line(&self) -> String {
        format!(
            "{} {} {} {} {} {} {}",
            self.ticks,
            self.orders,
            self.fills,
            self.unfilled,
            self.max_late_ns,
            self.late_ticks,
            self.wait_ns
        )
    }

    /// Reads a line written by [`VenueSummary::to_line`]; `None` if it is not one.
    pub fn parse_line(text: &str) -> Option<VenueSummary> {
        let v: Vec<u64> = text
            .split_whitespace()
            .map(|w| w.parse().ok())
            .collect::<Option<_>>()?;
        match v[..] {
            [
                ticks,
                orders,
                fills,
                unfilled,
                max_late_ns,
                late_ticks,
                wait_ns,
            ] => Some(VenueSummary {
                ticks,
                orders,
                fills,
                unfilled,
                max_late_ns,
                late_ticks,
                wait_ns,
            }),
            _ => None,
        }
    }
}

/// Runs the venue: creates the feed ring, attaches to the engine's order ring, publishes `path`
/// at `rate` ticks per second, each tick stamped with its due time (see the module docs), fills
/// orders, closes the feed once the engine has read all of it and `grace` passed without an
/// order, and returns when the engine's order-ring heartbeat has stopped.
///
/// The venue never blocks on a full feed ring while orders wait to be read: the engine may itself
/// be waiting for room in the order ring, and each would wait for the other forever. It keeps
/// reading orders (queueing their fills) until the feed has room.
pub fn run_venue(
    feed: &Path,
    orders: &Path,
    path: &[i64],
    rate: f64,
    grace: Duration,
) -> Result<VenueSummary, ShmError> {
    let producer = Producer::create(feed, RingKind::Feed, 1 << 16)?;
    let consumer = open_orders(orders)?;
    wait_for_reader(&producer, Duration::from_secs(10));
    let mut venue = Venue {
        producer,
        consumer,
        book: Tick::default(),
        stamps: Stamps::default(),
        pending: VecDeque::new(),
        summary: VenueSummary::default(),
    };
    let pace = Pace::new(clock::now_ns(), rate);
    for (k, &price) in path.iter().enumerate() {
        let due = pace.due_ns(k as u64);
        // Fills written while waiting for tick k are stamped no later than its due time.
        venue.stamps.cap = due;
        let mut now = clock::now_ns();
        while now < due {
            venue.pump();
            if due - now > YIELD_AHEAD_NS {
                // Far from the next tick: let the engine's threads have the core (on a machine
                // with fewer cores than threads they share it).
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
            now = clock::now_ns();
        }
        let late = now - due;
        venue.summary.max_late_ns = venue.summary.max_late_ns.max(late);
        venue.summary.late_ticks += u64::from(late > LATE_NS);
        venue.publish_tick(
            Tick {
                instrument: 0,
                mark_px: price,
                index_px: price,
                bid_px: price,
                ask_px: price,
                bid_qty: DEPTH_LOTS,
                ask_qty: DEPTH_LOTS,
            },
            due,
        );
        venue.stamps.cap = pace.due_ns(k as u64 + 1);
        venue.pump();
    }
    // Answer the orders the last ticks caused: until the engine has read the whole feed, every
    // queued fill is out, and no order came for `grace`. Then close the feed.
    venue.stamps.cap = u64::MAX;
    let mut quiet_since = clock::now_ns();
    loop {
        if venue.pump() > 0 {
            quiet_since = clock::now_ns();
        }
        let read_all = venue.producer.ring().header().consumer_cursor >= venue.producer.published();
        if read_all
            && venue.pending.is_empty()
            && clock::now_ns() - quiet_since >= grace.as_nanos() as u64
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let Venue {
        producer,
        mut consumer,
        book,
        mut pending,
        mut summary,
        ..
    } = venue;
    summary.wait_ns += producer.wait_ns();
    producer.close();
    // The engine drains and stops once it sees the feed closed; until then it may still emit
    // orders, and it would wait forever on a full order ring nobody reads. Keep reading (those
    // orders go unanswered) until its heartbeat stops.
    loop {
        let read = drain_orders(&mut consumer, &book, &mut pending, &mut summary);
        summary.unfilled += pending.len() as u64;
        pending.clear();
        let beat = consumer.ring().header().producer_heartbeat_ns;
        if read == 0 && clock::now_ns().saturating_sub(beat) > ENGINE_GONE_NS {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(summary)
}

/// An order ring whose producer heartbeat is older than this belongs to an engine that stopped.
const ENGINE_GONE_NS: u64 = 2_000_000_000;

/// The venue's state while it runs.
///
/// Invariant: `pending` holds fills (in order) read from orders but not yet published; they are
/// published before the next tick whenever the feed ring has room.
struct Venue {
    producer: Producer,
    consumer: Consumer,
    /// The last tick published: the book orders are filled against.
    book: Tick,
    stamps: Stamps,
    pending: VecDeque<Record>,
    summary: VenueSummary,
}

impl Venue {
    /// Reads the orders published so far (queueing their fills), then publishes as many queued
    /// fills as the feed ring has room for. Returns how many order records it read.
    fn pump(&mut self) -> usize {
        let read = drain_orders(
            &mut self.consumer,
            &self.book,
            &mut self.pending,
            &mut self.summary,
        );
        while let Some(&fill) = self.pending.front() {
            let stamp = self.stamps.fill_stamp();
            if self.producer.try_push_at(fill, stamp).is_err() {
                break;
            }
            self.stamps.last = stamp;
            self.pending.pop_front();
            self.summary.fills += 1;
        }
        read
    }

    /// Publishes `tick` stamped `due` once the feed ring has room, after the fills queued
    /// before it; reads orders while it waits. The wait is added to `summary.wait_ns`.
    fn publish_tick(&mut self, tick: Tick, due: u64) {
        let record = Input::Tick(tick).encode();
        let mut waiting_since = None;
        loop {
            self.pump();
            if self.pending.is_empty() && self.producer.try_push_at(record, due).is_ok() {
                break;
            }
            waiting_since.get_or_insert_with(clock::now_ns);
            std::thread::yield_now();
        }
        if let Some(since) = waiting_since {
            self.summary.wait_ns += clock::now_ns().saturating_sub(since);
        }
        self.stamps.last = self.stamps.last.max(due);
        self.book = tick;
        self.summary.ticks += 1;
    }
}

/// The venue's stamp bounds for fills.
///
/// Invariant: `last` is the largest stamp published so far; a fill gets
/// `max(last, min(now, cap))`, so stamps never decrease.
#[derive(Debug, Default)]
struct Stamps {
    last: u64,
    cap: u64,
}

impl Stamps {
    /// The stamp for a fill written now (the caller sets `last` once it is published).
    fn fill_stamp(&self) -> u64 {
        clock::now_ns().min(self.cap).max(self.last)
    }
}

/// While the next tick is further away than this, the waiting venue yields its core instead of
/// spinning.
const YIELD_AHEAD_NS: u64 = 20_000;

/// Waits until a consumer has opened the feed ring (or `limit` passed), so that the paced
/// schedule starts when someone reads it rather than counting the engine's start-up as latency.
fn wait_for_reader(producer: &Producer, limit: Duration) {
    let started = std::time::Instant::now();
    while producer.ring().header().consumer_pid == 0 && started.elapsed() < limit {
        std::thread::sleep(Duration::from_micros(200));
    }
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
/// best level of `book`, when the level is not beyond the order's limit; fills are queued in
/// `pending`. Returns how many records it read.
fn drain_orders(
    consumer: &mut Consumer,
    book: &Tick,
    pending: &mut VecDeque<Record>,
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
        pending.push_back(
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
    }
    if read > 0 {
        consumer.release();
    }
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_start_plus_k_periods_and_never_goes_back() {
        let pace = Pace::new(1_000, 1_000_000.0);
        assert_eq!(pace.due_ns(0), 1_000);
        assert_eq!(pace.due_ns(1), 2_000);
        assert_eq!(pace.due_ns(10_000_000), 1_000 + 10_000_000_000);
        let odd = Pace::new(7, 3.0);
        assert_eq!(odd.due_ns(3), 7 + 1_000_000_000);
        let mut last = 0;
        for k in 0..100_000 {
            let due = odd.due_ns(k);
            assert!(due >= last, "k = {k}");
            last = due;
        }
    }

    #[test]
    fn no_rate_means_everything_is_due_at_once() {
        for rate in [0.0, -5.0, f64::NAN, f64::INFINITY] {
            let pace = Pace::new(42, rate);
            assert_eq!(pace.due_ns(0), 42);
            assert_eq!(pace.due_ns(1 << 40), 42, "{rate}");
        }
        assert_eq!(Pace::new(u64::MAX - 1, 1.0).due_ns(5), u64::MAX);
    }

    #[test]
    fn fill_stamps_stay_between_the_last_stamp_and_the_next_due_time() {
        let now = clock::now_ns();
        let mut stamps = Stamps {
            last: now + 1_000_000_000,
            cap: u64::MAX,
        };
        assert_eq!(
            stamps.fill_stamp(),
            now + 1_000_000_000,
            "never before the last"
        );
        stamps.last = 0;
        stamps.cap = 5;
        assert_eq!(
            stamps.fill_stamp(),
            5,
            "never after the next tick's due time"
        );
        stamps.cap = u64::MAX;
        let s = stamps.fill_stamp();
        assert!(
            s >= now && s <= clock::now_ns(),
            "otherwise the time of writing"
        );
    }

    #[test]
    fn the_venue_summary_line_round_trips() {
        let v = VenueSummary {
            ticks: 1,
            orders: 2,
            fills: 3,
            unfilled: 4,
            max_late_ns: 5,
            late_ticks: 6,
            wait_ns: 7,
        };
        assert_eq!(VenueSummary::parse_line(&v.to_line()), Some(v));
        assert_eq!(VenueSummary::parse_line("1 2 3 4"), None);
        assert_eq!(VenueSummary::parse_line("1 2 3 4 5 6 x"), None);
    }

    /// The engine blocked on a full order ring while the venue is blocked on a full feed ring
    /// would wait for each other forever: the venue must keep reading orders while the feed is
    /// full, and still publish every tick and every fill once the engine reads the feed.
    #[test]
    fn a_full_feed_never_stops_the_venue_reading_orders() {
        const TICKS: usize = (1 << 16) + 500;
        const ORDERS: u64 = 20;
        let dir = tempfile::tempdir().expect("temp dir");
        let feed = dir.path().join("feed.ring");
        let orders = dir.path().join("orders.ring");
        let mut engine_out = Producer::create(&orders, RingKind::Orders, 4).expect("orders ring");
        let venue = {
            let (feed, orders) = (feed.clone(), orders.clone());
            std::thread::spawn(move || {
                let path = vec![10_000_i64; TICKS];
                run_venue(&feed, &orders, &path, 0.0, Duration::from_millis(20))
            })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut engine_in = loop {
            if let Ok(c) = Consumer::open(&feed, Expect::default()) {
                break c;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the venue made no feed"
            );
            std::thread::sleep(Duration::from_millis(1));
        };
        // Let the venue fill the feed ring while nobody reads it.
        while engine_in.ring().header().producer_cursor < 1 << 16 {
            assert!(
                std::time::Instant::now() < deadline,
                "the feed never filled"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // Now the order ring (4 slots) only takes 20 orders if the venue keeps reading it.
        for id in 0..ORDERS {
            let mut record = Output::Liquidation(shm::Liquidation {
                order_id: id + 1,
                account: id + 1,
                instrument: 0,
                side: Side::Sell,
                qty: 1,
                limit_px: 1,
                input_seq: 0,
            })
            .encode();
            loop {
                match engine_out.try_push(record) {
                    Ok(_) => break,
                    Err(shm::Full(r)) => record = r,
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the venue stopped reading orders while its feed was full"
                );
                std::thread::yield_now();
            }
        }
        // Read the whole feed, keeping the order ring's heartbeat alive until it closes.
        let (mut ticks, mut fills) = (0_u64, 0_u64);
        while engine_in.ring().header().producer_closed == 0
            || matches!(engine_in.peek(), Slot::Ready(_))
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the feed never closed"
            );
            engine_out.heartbeat();
            while let Slot::Ready(record) = engine_in.peek() {
                engine_in.advance();
                match Input::decode(&record) {
                    Ok(Input::Tick(_)) => ticks += 1,
                    Ok(Input::Fill(_)) => fills += 1,
                    _ => {}
                }
            }
            engine_in.release();
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(engine_out);
        let summary = venue.join().expect("venue thread").expect("venue ran");
        assert_eq!(ticks, TICKS as u64);
        assert_eq!(summary.ticks, TICKS as u64);
        assert_eq!(summary.orders, ORDERS);
        assert_eq!(fills, ORDERS, "every order was filled at the book");
        assert_eq!(summary.fills, ORDERS);
    }
}

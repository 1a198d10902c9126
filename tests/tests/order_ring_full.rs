//! A stopped order gateway: `brink run` with a 16-record order ring and a feed that liquidates
//! 200 accounts, while this test (the gateway, another process than the engine) does not read.
//! The engine must wait on the full ring rather than drop or overwrite, say so on stderr and
//! count the wait; once the gateway reads again, every output arrives exactly once and in
//! sequence order, the same records as the journal's. The gateway stops twice.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Child;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use brink::shm::{Consumer, Expect, Output, Record, RingFile, RingKind, Slot};
use brink_tests::run::RunFiles;
use brink_tests::signal;
use rustix::process::Signal;

/// Order ring capacity: small, so that a few dozen decisions fill it.
const CAPACITY: u64 = 16;
const ACCOUNTS: usize = 200;

/// One BTCUSDT perpetual at 50,000 and `ACCOUNTS` cross longs of 0.02 BTC from 50,000 whose
/// wallets (482.50 to 521.30) put their liquidation prices between about 26,000 and 24,000.
fn scenario() -> String {
    let mut s = String::from(
        "[[instrument]]\nsymbol = \"BTCUSDT\"\nkind = \"perpetual\"\nprice_decimals = 2\n\
         qty_decimals = 3\nliquidation_fee = \"0.003\"\n\
         tiers = [ { max_notional = \"50000\", mmr = \"0.004\", imr = \"0.008\" } ]\n\n\
         [[price]]\nsymbol = \"BTCUSDT\"\nmark = \"50000\"\n",
    );
    for k in 0..ACCOUNTS {
        let cents = 48_250 + 19 * k as u64 + (k as u64 % 7);
        s.push_str(&format!(
            "\n[[account]]\nid = {}\nwallet = \"{}.{:02}\"\n\
             positions = [ {{ symbol = \"BTCUSDT\", qty = \"0.02\", entry = \"50000\", mode = \"cross\" }} ]\n",
            k + 1,
            cents / 100,
            cents % 100
        ));
    }
    s
}

/// Stderr lines of a child, collected by a thread.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits until `stderr` has shown `needle` `times` times in all, keeping every line in `seen`.
fn wait_line(stderr: &Receiver<String>, seen: &mut Vec<String>, needle: &str, times: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.iter().filter(|l| l.contains(needle)).count() < times {
        let left = deadline.saturating_duration_since(Instant::now());
        match stderr.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("no {needle:?} (#{times}) on the engine's stderr: {seen:#?}"),
        }
    }
}

/// The gateway: reads the order ring in order, checking each slot holds the next sequence.
struct Gateway {
    consumer: Consumer,
    records: Vec<Record>,
}

impl Gateway {
    /// Reads everything available now; returns how many records it read.
    fn drain(&mut self) -> usize {
        let mut n = 0;
        loop {
            let pos = self.consumer.position();
            match self.consumer.peek() {
                Slot::Ready(r) => {
                    assert_eq!(r.seq(), Some(pos), "the slot holds the next sequence");
                    self.records.push(r);
                    self.consumer.advance();
                    n += 1;
                }
                Slot::Empty => break,
                other => panic!("order ring slot {pos}: {other:?} (overwritten or torn)"),
            }
            if n % 4 == 0 {
                self.consumer.release();
            }
        }
        self.consumer.release();
        n
    }
}

/// The ring's producer cursor, once the engine created the ring.
fn published(orders: &Path) -> Option<u64> {
    let expect = Expect {
        kind: Some(RingKind::Orders),
        capacity: Some(CAPACITY),
    };
    RingFile::open(orders, expect)
        .ok()
        .map(|r| r.header().producer_cursor)
}

/// Waits until the ring holds `CAPACITY` unread records past `consumed`, and stays so.
fn wait_full(orders: &Path, consumed: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while published(orders) != Some(consumed + CAPACITY) {
        assert!(
            Instant::now() < deadline,
            "the order ring never filled (published {:?}, read {consumed})",
            published(orders)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The engine waits: nothing past the ring's capacity is written while nobody reads.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(published(orders), Some(consumed + CAPACITY));
}

#[test]
fn a_full_order_ring_is_waited_out_and_nothing_is_dropped() {
    let klines = brink_tests::falling_klines(26_500, 23_500, 10);
    let run = RunFiles::new(&scenario(), &klines, CAPACITY, 100_000, "ring_capacity = 4");
    let (feed, orders) = (&run.feed, &run.orders);
    let mut engine = run.start_engine();
    let stderr = lines_of(&mut engine);
    let mut seen = Vec::new();
    run.publish(20_000);

    // First stop: nobody reads yet. The ring fills, the engine waits and warns.
    wait_full(orders, 0);
    wait_line(&stderr, &mut seen, "order ring full", 1);
    let consumer = Consumer::open(
        orders,
        Expect {
            kind: Some(RingKind::Orders),
            capacity: Some(CAPACITY),
        },
    )
    .expect("the gateway attaches");
    let mut gateway = Gateway {
        consumer,
        records: Vec::new(),
    };

    // Read three ringfuls, then stop again until the ring is full once more.
    let deadline = Instant::now() + Duration::from_secs(60);
    while (gateway.records.len() as u64) < 3 * CAPACITY {
        gateway.drain();
        assert!(
            Instant::now() < deadline,
            "outputs stopped after {}",
            gateway.records.len()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    wait_line(&stderr, &mut seen, "emitting resumed", 1);
    wait_full(orders, gateway.records.len() as u64);
    wait_line(&stderr, &mut seen, "order ring full", 2);

    // Read on until the engine has taken the whole feed and gone quiet, then stop it (it drains
    // its rings into the order ring, which the gateway keeps reading).
    let feed_ring = RingFile::open(
        feed,
        Expect {
            kind: Some(RingKind::Feed),
            capacity: None,
        },
    )
    .expect("feed ring");
    let mut quiet = 0;
    while quiet < 50 {
        let h = feed_ring.header();
        let all_read = h.consumer_cursor == h.producer_cursor;
        quiet = if gateway.drain() == 0 && all_read {
            quiet + 1
        } else {
            0
        };
        assert!(
            Instant::now() < deadline + Duration::from_secs(60),
            "the feed was never read to its end"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    signal(engine.id(), Signal::TERM);
    let status = loop {
        gateway.drain();
        if let Some(status) = engine.try_wait().expect("wait") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    gateway.drain();
    let stdout = std::io::read_to_string(engine.stdout.take().expect("piped")).expect("stdout");
    seen.extend(stderr.iter());
    assert_eq!(status.code(), Some(0), "{stdout}\n{seen:#?}");

    // Counted and reported: at least the two stops, with the time waited.
    let report = stdout
        .lines()
        .find(|l| l.starts_with("order ring: full "))
        .unwrap_or_else(|| panic!("no order ring line: {stdout}"));
    let full: u64 = report["order ring: full ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    assert!(full >= 2, "{report}");
    assert_eq!(
        seen.iter()
            .filter(|l| l.contains("order ring full"))
            .count() as u64,
        full,
        "one warning per wait: {seen:#?}"
    );

    // Nothing dropped or repeated: the gateway read sequences 0..n, n is everything the engine
    // published, and the journal holds the same decisions in the same order.
    let n = gateway.records.len() as u64;
    println!("gateway read {n} records; engine: {report}");
    assert_eq!(published(orders), Some(n));
    assert!(n > 4 * CAPACITY, "only {n} outputs");
    for (k, r) in gateway.records.iter().enumerate() {
        assert_eq!(r.seq(), Some(k as u64));
    }
    let journaled = run.journaled();
    let read: Vec<Output> = gateway
        .records
        .iter()
        .map(|r| Output::decode(r).expect("decodes"))
        .collect();
    assert_eq!(read, journaled);
    let liquidated: std::collections::BTreeSet<u64> = read
        .iter()
        .filter_map(|o| match o {
            Output::Liquidation(l) => Some(l.account),
            _ => None,
        })
        .collect();
    assert!(
        liquidated.len() > ACCOUNTS / 2,
        "{} accounts liquidated",
        liquidated.len()
    );
}

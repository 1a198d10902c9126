//! Fuzzing of every input decoder, on the stable toolchain: proptest generates arbitrary bytes and
//! structure-aware mutations of valid inputs ([`brink_tests::mutate`]) for the feed record
//! decoder, the ingest stage's checks over a real ring file, the scenario parser, the run
//! configuration parser, the bulk accounts loader, the journal reader and the file feed readers
//! (Tardis trades and quotes CSV, Binance klines).
//!
//! Each target asserts that no input panics and that every input either decodes or yields a
//! typed error that names the file, line, field or offset its API promises, plus the invariants
//! of what decoded. Each prints `fuzz <target>: N inputs, k ok, m errors`.
//!
//! Bounded for CI: `BRINK_FUZZ_CASES` cases per target (default below) and at most
//! `BRINK_FUZZ_SECS` seconds per target; `BRINK_FUZZ_SEED` (a number or `random`) changes the
//! generator's seed. A longer run:
//!
//! ```sh
//! BRINK_FUZZ_CASES=1000000 BRINK_FUZZ_SECS=60 BRINK_FUZZ_SEED=random \
//!     cargo test -p brink-tests --release --test fuzz -- --nocapture
//! ```
//! A failure prints the smallest failing input as an escaped byte string; keep it as a case in
//! `regressions` below.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::time::Instant;

use brink::config::{ConfigError, RunConfig};
use brink::feed::{FeedError, FileSource, Scaling};
use brink::journal::{self, FsyncPolicy, Journal, JournalError};
use brink::scenario::{Scenario, ScenarioError};
use brink::shm::{Input, Output, Record};
use brink_tests::mutate::{Budget, Bytes, binary_op, inputs, text_op};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestCaseError;

mod fuzz_support;

use fuzz_support::{bulk_seed, fix_bulk_crc, fix_journal_crcs, ingest_case, journal_seed};

/// Cases per target when `BRINK_FUZZ_CASES` is not set.
const DEFAULT_CASES: u32 = 4_000;
/// Seconds per target when `BRINK_FUZZ_SECS` is not set.
const DEFAULT_SECS: f64 = 6.0;

/// What one target saw.
#[derive(Default)]
struct Tally {
    ok: Cell<u64>,
    errors: Cell<u64>,
}

impl Tally {
    fn ok(&self) {
        self.ok.set(self.ok.get() + 1);
    }
    fn error(&self) {
        self.errors.set(self.errors.get() + 1);
    }
}

/// Runs `check` over the target's inputs until the budget's cases or seconds are spent; on a
/// failed check or a panic, shrinks the input and panics with the smallest failing one.
fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    check: impl Fn(S::Value, &Tally) -> Result<(), TestCaseError>,
) -> (u64, u64) {
    let budget = Budget::from_env(DEFAULT_CASES, DEFAULT_SECS);
    let mut runner = budget.runner(name);
    let tally = Tally::default();
    let start = Instant::now();
    let run = |value: S::Value, tally: &Tally| -> Result<(), String> {
        match std::panic::catch_unwind(AssertUnwindSafe(|| check(value, tally))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(panic) => Err(panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".to_string())),
        }
    };
    for _ in 0..budget.cases {
        if start.elapsed().as_secs_f64() > budget.secs {
            break;
        }
        let mut tree = match strategy.new_tree(&mut runner) {
            Ok(t) => t,
            Err(e) => panic!("fuzz {name}: cannot generate inputs: {e}"),
        };
        let Err(mut why) = run(tree.current(), &tally) else {
            continue;
        };
        // Shrink as proptest does: simplify while it still fails, complicate back when not.
        let mut smallest = tree.current();
        let scratch = Tally::default();
        let mut steps = 0;
        if tree.simplify() {
            while steps < 4096 {
                steps += 1;
                match run(tree.current(), &scratch) {
                    Err(e) => {
                        why = e;
                        smallest = tree.current();
                        if !tree.simplify() {
                            break;
                        }
                    }
                    Ok(()) => {
                        if !tree.complicate() {
                            break;
                        }
                    }
                }
            }
        }
        panic!("fuzz {name}: {why}\nminimal failing input: {smallest:?}");
    }
    let (ok, errors) = (tally.ok.get(), tally.errors.get());
    println!(
        "fuzz {name}: {} inputs, {ok} ok, {errors} errors ({:.1} s, seed {})",
        ok + errors,
        start.elapsed().as_secs_f64(),
        budget.seed
    );
    assert!(ok + errors > 0, "fuzz {name}: no input ran");
    (ok, errors)
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(&b.0).into_owned()
}

fn newlines(t: &str) -> usize {
    t.bytes().filter(|&b| b == b'\n').count()
}

// ---------------------------------------------------------------------------------------------
// feed records

/// A record's 64 bytes (or a wrong length) decode as an input or an output, or yield a typed
/// error; a record round-trips through its bytes.
fn check_record(bytes: &[u8], tally: &Tally) -> Result<(), TestCaseError> {
    let Some(record) = Record::from_le_bytes(bytes) else {
        prop_assert_ne!(bytes.len(), 64);
        tally.error();
        return Ok(());
    };
    prop_assert_eq!(&record.to_le_bytes()[..], bytes);
    prop_assert_eq!(Record::from_words(record.to_words()), record);
    match (Input::decode(&record), Output::decode(&record)) {
        (Ok(input), _) => {
            prop_assert_eq!(input.tag(), record.tag);
            // Re-encoding keeps every field the kind carries.
            let again = Input::decode(&input.encode());
            prop_assert_eq!(again, Ok(input));
            tally.ok();
        }
        (_, Ok(output)) => {
            prop_assert_eq!(output.tag(), record.tag);
            prop_assert_eq!(Output::decode(&output.encode()), Ok(output));
            tally.ok();
        }
        (Err(a), Err(b)) => {
            prop_assert!(!a.to_string().is_empty() && !b.to_string().is_empty());
            tally.error();
        }
    }
    Ok(())
}

#[test]
fn fuzz_feed_records() {
    let valid: Vec<Vec<u8>> = [
        Input::Tick(brink::shm::Tick {
            instrument: 1,
            mark_px: 5_000_000,
            index_px: 5_000_100,
            bid_px: 4_999_900,
            ask_px: 5_000_100,
            bid_qty: 7,
            ask_qty: 9,
        })
        .encode(),
        Input::Status(brink::shm::Status {
            instrument: 0,
            state: brink::shm::InstrumentState::Settling,
            settle_px: 1,
        })
        .encode(),
        Output::Liquidation(brink::shm::Liquidation {
            order_id: 1,
            account: 2,
            instrument: 0,
            side: brink::shm::Side::Sell,
            qty: 3,
            limit_px: 4,
            input_seq: 5,
        })
        .encode(),
    ]
    .iter()
    .map(|r| r.to_le_bytes().to_vec())
    .collect();
    let strategy = prop_oneof![
        1 => inputs(valid, &[], binary_op().boxed(), 2),
        2 => prop::collection::vec(any::<u8>(), 64).prop_map(Bytes),
    ];
    let (ok, errors) = fuzz("feed_records", strategy, |b, t| check_record(&b.0, t));
    assert!(ok > 0 && errors > 0, "both outcomes are reachable");
}

#[test]
fn fuzz_ingest_checks() {
    let dir = fuzz_support::ring_dir();
    let n = Cell::new(0u64);
    fuzz("ingest", fuzz_support::ring_case(), |case, tally| {
        n.set(n.get() + 1);
        let path = dir.path().join(format!("feed-{}", n.get()));
        let outcome = ingest_case(&path, &case);
        let _ = std::fs::remove_file(&path);
        match outcome? {
            true => tally.ok(),
            false => tally.error(),
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// scenario

const SCENARIO_TOKENS: &[&str] = &[
    "\n[[instrument]]\n",
    "\n[[price]]\n",
    "\n[[account]]\n",
    "symbol = \"BTCUSDT\"\n",
    "kind = \"future\"\n",
    "expiry = \"99999999999-12-31T23:59:60Z\"\n",
    "expiry = \"2026-02-29T00:00:00Z\"\n",
    "price_decimals = 30\n",
    "qty_decimals = 4294967295\n",
    "tiers = []\n",
    "{ max_notional = \"1\", mmr = \"0.5\", imr = \"0.9\" }, ",
    "maintenance_amount = \"-1\", ",
    "min_notional = \"0\", ",
    "mode = \"isolated\", margin = \"1e9\" ",
    "positions = [ { symbol = \"ETHUSDT\", qty = \"1\", entry = \"1\", mode = \"cross\" } ]\n",
    "call_level = \"1\"\n",
    "id = 18446744073709551615\n",
    "\\u0000",
];

fn scenario_seeds() -> Vec<Vec<u8>> {
    let root = brink_tests::workspace_root();
    let mut seeds = vec![std::fs::read(root.join("examples/scenario.toml")).expect("example")];
    for f in [
        "btc_2021.toml",
        "five_instruments.toml",
        "issue_example.toml",
    ] {
        seeds.push(std::fs::read(brink_tests::fixture(f)).expect("fixture"));
    }
    seeds
}

#[test]
fn fuzz_scenario_parser() {
    let file = Path::new("/fuzz/scenario.toml");
    let strategy = inputs(scenario_seeds(), SCENARIO_TOKENS, text_op().boxed(), 8);
    let (ok, _) = fuzz("scenario", strategy, |b, tally| {
        let t = text(&b);
        match Scenario::parse(&t, file) {
            Ok(s) => {
                fuzz_support::evaluate(&s.instruments, &s.marks, &s.accounts, s.call_level);
                tally.ok();
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with("/fuzz/scenario.toml:"), "{}", msg);
                match &e {
                    ScenarioError::Syntax { line, .. } => {
                        prop_assert!((1..=newlines(&t) + 1).contains(line), "{}", msg);
                    }
                    ScenarioError::Invalid { line, field, .. } => {
                        prop_assert!((1..=newlines(&t) + 1).contains(line), "{}", msg);
                        prop_assert!(!field.is_empty(), "{}", msg);
                    }
                    ScenarioError::Read { .. } => prop_assert!(false, "parse never reads: {}", msg),
                }
                tally.error();
            }
        }
        Ok(())
    });
    assert!(ok > 0, "no mutated scenario stayed valid");
}

// ---------------------------------------------------------------------------------------------
// run configuration

const CONFIG_TOKENS: &[&str] = &[
    "\n[feed]\n",
    "\n[orders]\n",
    "\n[journal]\n",
    "\n[accounts]\n",
    "\n[topology]\n",
    "\n[thresholds]\n",
    "\n[telemetry]\n",
    "capacity = 3\n",
    "fsync = \"every\"\nfsync_every = 0\n",
    "mode = \"threads3\"\nwait = \"busy-spin\"\ncores = [0, 18446744073709551615, 2]\n",
    "mode = \"fused1\"\ncores = [999999]\n",
    "ring_capacity = 18446744073709551615\n",
    "margin_call = \"1.5\"\n",
    "rearm = \"0\"\n",
    "insurance_fund = -1\n",
    "insurance_fund = 1.5\n",
    "stale_after_ms = 18446744073709551615\n",
    "interval_ms = 0\n",
    "report_every_s = 18446744073709551615\n",
    "scenario = \"\"\n",
    "path = \"/\"\n",
];

fn config_seeds() -> Vec<Vec<u8>> {
    let root = brink_tests::workspace_root();
    vec![
        std::fs::read(root.join("examples/brink.toml")).expect("example config"),
        b"[accounts]\nscenario = \"s.toml\"\n[topology]\nmode = \"threads3\"\nwait = \"backoff\"\ncores = [0, 1, 0]\n[journal]\nfsync = \"every\"\nfsync_every = 8\n".to_vec(),
    ]
}

#[test]
fn fuzz_run_config() {
    let file = Path::new("/fuzz/etc/brink.toml");
    let strategy = inputs(config_seeds(), CONFIG_TOKENS, text_op().boxed(), 8);
    let (ok, _) = fuzz("config", strategy, |b, tally| {
        let t = text(&b);
        match RunConfig::parse(&t, file) {
            Ok(c) => {
                prop_assert!(c.orders_capacity.is_power_of_two() && c.orders_capacity >= 2);
                prop_assert!(c.ring_capacity.is_power_of_two() && c.ring_capacity >= 2);
                prop_assert!(c.risk.rearm_level < c.risk.call_level);
                prop_assert!(c.scenario.starts_with("/fuzz/etc") || c.scenario.is_absolute());
                let _ = c.plan();
                tally.ok();
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with("/fuzz/etc/brink.toml"), "{}", msg);
                match &e {
                    ConfigError::Syntax { line, .. } => {
                        prop_assert!(*line <= newlines(&t) + 1, "{}", msg);
                    }
                    ConfigError::Invalid { key, .. } => {
                        prop_assert!(key.contains('.'), "{}", msg);
                    }
                    ConfigError::Read { .. } => prop_assert!(false, "parse never reads: {}", msg),
                }
                tally.error();
            }
        }
        Ok(())
    });
    assert!(ok > 0, "no mutated configuration stayed valid");
}

/// Binary mutations of `seed`, all but one in `keep_broken` passed through `fix` (which
/// recomputes the format's checksums).
fn checksummed(seed: Vec<u8>, fix: fn(&mut [u8]), keep_broken: u8) -> impl Strategy<Value = Bytes> {
    (
        inputs(vec![seed], &[], binary_op().boxed(), 12),
        any::<u8>(),
    )
        .prop_map(move |(mut b, pick)| {
            if pick % keep_broken != 0 {
                fix(&mut b.0);
            }
            b
        })
}

// ---------------------------------------------------------------------------------------------
// bulk accounts

#[test]
fn fuzz_bulk_loader() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (table, marks, seed) = bulk_seed(dir.path());
    let file = Path::new("/fuzz/accounts.bin");
    // Three mutations in four get a fresh CRC, so that they reach the records instead of
    // stopping at the header's checksum.
    let strategy = checksummed(seed, fix_bulk_crc, 4);
    let (ok, _) = fuzz("bulk", strategy, |b, tally| {
        match brink::bulk::parse(&b.0, file, &table) {
            Ok(accounts) => {
                prop_assert!(accounts.windows(2).all(|w| w[0].id() < w[1].id()));
                fuzz_support::evaluate(&table, &marks, &accounts, Default::default());
                tally.ok();
            }
            Err(e) => {
                let msg = e.to_string();
                prop_assert!(msg.starts_with("/fuzz/accounts.bin"), "{}", msg);
                if let brink::bulk::BulkError::Record { offset, .. } = &e {
                    prop_assert!(*offset <= b.0.len() as u64, "{}", msg);
                }
                tally.error();
            }
        }
        Ok(())
    });
    assert!(ok > 0, "no mutated bulk file stayed valid");
}

// ---------------------------------------------------------------------------------------------
// journal

#[test]
fn fuzz_journal_reader() {
    let dir = tempfile::tempdir().expect("temp dir");
    let seed = journal_seed(dir.path());
    // Half the mutations get their frames' CRCs recomputed, to reach the frame walk.
    let strategy = checksummed(seed, fix_journal_crcs, 2);
    let n = Cell::new(0u64);
    fuzz("journal", strategy, |b, tally| {
        let bytes = &b.0;
        let header_ok = bytes.len() >= journal::HEADER_LEN as usize
            && bytes[..8] == journal::MAGIC
            && bytes[8..12] == journal::VERSION.to_le_bytes();
        match journal::scan(bytes) {
            Ok((rec, good)) => {
                prop_assert!(header_ok);
                prop_assert!(good <= bytes.len() as u64);
                prop_assert_eq!(rec.torn_bytes, bytes.len() as u64 - good);
                prop_assert_eq!(rec.torn_reason.is_some(), rec.torn_bytes > 0);
                for payload in &rec.records {
                    // Payloads are 64-byte records in the engine's journal; anything else is
                    // refused by from_le_bytes, never a panic.
                    if let Some(r) = Record::from_le_bytes(payload) {
                        let _ = Output::decode(&r);
                    }
                }
                tally.ok();
            }
            Err(found) => {
                prop_assert!(!header_ok && !found.is_empty());
                tally.error();
            }
        }
        // One case in eight also goes through the file API: open, recover, append after.
        n.set(n.get() + 1);
        if n.get().is_multiple_of(8) {
            let path = dir.path().join("j");
            std::fs::write(&path, bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
            match Journal::open(&path, FsyncPolicy::Never) {
                Ok((mut j, rec)) => {
                    prop_assert!(header_ok || bytes.is_empty());
                    let before = rec.records.len();
                    prop_assert!(j.append(b"after").is_ok());
                    drop(j);
                    let (_, again) = Journal::open(&path, FsyncPolicy::Never)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(again.records.len(), before + 1);
                    prop_assert_eq!(again.torn_bytes, 0);
                }
                Err(e @ JournalError::BadHeader { .. }) => {
                    prop_assert!(!header_ok, "{}", e);
                    prop_assert!(e.to_string().contains(&path.display().to_string()));
                }
                Err(e) => prop_assert!(false, "unexpected journal error {}", e),
            }
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// file feeds

const CSV_TOKENS: &[&str] = &[
    "\"\"", "-", ".", "e", "1e5", "nan", " ", "\u{feff}", ",,,,,,,,",
];

fn csv_seeds() -> Vec<Vec<u8>> {
    vec![
        b"exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n\
          binance,BTCUSDT,1,2,10,buy,579.8,3\n\
          binance,BTCUSDT,2,3,11,sell,579.75,0.001\n"
            .to_vec(),
        b"exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n\
          binance,BTCUSDT,1,2,0.84,9682,9681.92,0.67\n\
          binance,BTCUSDT,2,3,,9682.5,,\n"
            .to_vec(),
        b"open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n\
          1700000000000,26000,26010,25990,26000.5,1,1700000059999,0,60,0,0,0\n"
            .to_vec(),
        b"1700000000000,26000,26010,25990,26000.5,1,1700000059999,0,60,0,0,0\n\
          1700000060000,26000.5,26001,25000,25100,1,1700000119999,0,60,0,0,0\n"
            .to_vec(),
    ]
}

#[test]
fn fuzz_file_feeds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("feed.csv");
    let strategy = (
        inputs(csv_seeds(), CSV_TOKENS, text_op().boxed(), 8),
        prop_oneof![3 => 0u8..=8, 1 => any::<u8>()],
        prop_oneof![3 => 0u8..=8, 1 => any::<u8>()],
    );
    fuzz(
        "file_feeds",
        strategy,
        |(b, price_decimals, qty_decimals), tally| {
            std::fs::write(&path, &b.0).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let scaling = Scaling {
                instrument: 2,
                price_decimals,
                qty_decimals,
            };
            let lines = b.0.iter().filter(|&&c| c == b'\n' || c == b'\r').count() as u64 + 1;
            let source = match FileSource::open(&path, scaling) {
                Ok(s) => s,
                Err(e) => {
                    prop_assert!(
                        matches!(e, FeedError::UnknownFormat { .. } | FeedError::Io { .. }),
                        "{}",
                        e
                    );
                    prop_assert!(e.to_string().contains("feed.csv"), "{}", e);
                    tally.error();
                    return Ok(());
                }
            };
            let (mut good, mut bad) = (0u64, 0u64);
            for item in source.take(100_000) {
                match item {
                    Ok(Input::Tick(t)) => {
                        prop_assert!(t.mark_px > 0, "{:?}", t);
                        prop_assert!(t.bid_px >= 0 && t.ask_px >= 0, "{:?}", t);
                        prop_assert_eq!(t.instrument, 2);
                        good += 1;
                    }
                    Ok(other) => {
                        prop_assert!(false, "a file feed yields ticks only, got {:?}", other)
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        prop_assert!(msg.contains("feed.csv"), "{}", msg);
                        let line = match &e {
                            FeedError::Csv { line, .. }
                            | FeedError::Columns { line, .. }
                            | FeedError::Field { line, .. }
                            | FeedError::NoPrice { line, .. } => *line,
                            other => {
                                return Err(TestCaseError::fail(format!("mid-stream {other}")));
                            }
                        };
                        prop_assert!((1..=lines).contains(&line), "{}", msg);
                        bad += 1;
                    }
                }
            }
            if bad == 0 && good > 0 {
                tally.ok()
            } else {
                tally.error()
            }
            Ok(())
        },
    );
}

// ---------------------------------------------------------------------------------------------
// regressions: inputs that once panicked, kept as plain tests.

mod regressions {
    use super::*;

    /// A short of exactly i64::MIN units: its size has no i64 absolute value, and the risk
    /// engine's liquidation planning negated it (an overflow panic in debug builds). Refused at
    /// load now, naming the position.
    #[test]
    fn a_quantity_of_i64_min_is_refused_at_load() {
        let text = "[[instrument]]\nsymbol = \"X\"\nkind = \"perpetual\"\nprice_decimals = 0\n\
                    qty_decimals = 0\nliquidation_fee = \"0.01\"\n\
                    tiers = [ { max_notional = \"1000000\", mmr = \"0.01\", imr = \"0.02\" } ]\n\
                    [[price]]\nsymbol = \"X\"\nmark = \"100\"\n\
                    [[account]]\nid = 1\nwallet = \"10\"\n\
                    positions = [ { symbol = \"X\", qty = \"-9223372036854775808\", entry = \"100\", mode = \"cross\" } ]\n";
        let err = Scenario::parse(text, Path::new("x.toml")).expect_err("refused");
        let msg = err.to_string();
        assert!(
            msg.starts_with("x.toml:14: account[0].positions[0]"),
            "{msg}"
        );
        assert!(msg.contains("quantity overflows"), "{msg}");
        // One unit less is a valid (if absurd) short that loads and evaluates without a panic.
        let ok = text.replace("-9223372036854775808", "-9223372036854775807");
        let s = Scenario::parse(&ok, Path::new("x.toml")).expect("loads");
        fuzz_support::evaluate(&s.instruments, &s.marks, &s.accounts, s.call_level);
    }

    /// A future expiring in year 2^63 - 1: the day count overflowed (a panic in debug builds).
    #[test]
    fn an_expiry_year_beyond_9999_is_refused() {
        let text = "[[instrument]]\nsymbol = \"F\"\nkind = \"future\"\n\
                    expiry = \"9223372036854775807-12-25T08:00:00Z\"\nprice_decimals = 1\n\
                    qty_decimals = 3\nliquidation_fee = \"0.01\"\n\
                    tiers = [ { max_notional = \"50000\", mmr = \"0.004\", imr = \"0.008\" } ]\n";
        let err = Scenario::parse(text, Path::new("f.toml")).expect_err("refused");
        let msg = err.to_string();
        assert!(msg.starts_with("f.toml:4: instrument[0].expiry"), "{msg}");
    }

    /// The same quantity in a bulk accounts file is a record error at the position.
    #[test]
    fn a_bulk_quantity_of_i64_min_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (table, _, mut bytes) = bulk_seed(dir.path());
        // The seed's second account (id 4) has one position; its qty is at +8 in the record.
        let mut at = 48;
        for _ in 0..5 {
            at += 3 + usize::from(bytes[at]);
        }
        at += 24; // account 0 (no position)
        at += 24; // account 1's header
        bytes[at + 8..at + 16].copy_from_slice(&i64::MIN.to_le_bytes());
        fix_bulk_crc(&mut bytes);
        let err = brink::bulk::parse(&bytes, Path::new("a.bin"), &table).expect_err("refused");
        assert!(
            matches!(
                &err,
                brink::bulk::BulkError::Record {
                    record: 1,
                    position: Some(0),
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("quantity overflows"), "{err}");
    }
}

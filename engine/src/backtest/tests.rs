//! Backtests of small generated files: events, determinism, refused rows, symbol and format
//! checks, and a money check that notices a missing unit.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::*;
use crate::scenario::Scenario;
use crate::shm::Side;

const SCENARIO: &str = r#"
[[instrument]]
symbol = "BTCUSDT"
kind = "perpetual"
price_decimals = 2
qty_decimals = 3
liquidation_fee = "0.005"
tiers = [ { max_notional = "50000", mmr = "0.004", imr = "0.008" },
          { max_notional = "250000", mmr = "0.005", imr = "0.01" } ]

[[price]]
symbol = "BTCUSDT"
mark = "50000"

# 25x long, cross.
[[account]]
id = 1
wallet = "2000"
positions = [ { symbol = "BTCUSDT", qty = "1", entry = "50000", mode = "cross" } ]

# 10x long, isolated.
[[account]]
id = 2
wallet = "100"
positions = [ { symbol = "BTCUSDT", qty = "0.5", entry = "50000", mode = "isolated", margin = "2500" } ]

# The well-funded short on the other side.
[[account]]
id = 3
wallet = "60000"
positions = [ { symbol = "BTCUSDT", qty = "-1.5", entry = "50000", mode = "cross" } ]
"#;

const HEADER: &str = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n";

fn scenario() -> Scenario {
    Scenario::parse(SCENARIO, Path::new("test.toml")).expect("scenario")
}

/// A slide from 50,000 to 47,600 in steps of 40 (one trade a second, 0.2 BTC each), then a gap
/// to 44,000 and a recovery to 46,000.
fn crash_csv() -> String {
    let mut text = HEADER.to_string();
    let t0 = 1_760_054_400_000_000u64;
    let mut k = 0u64;
    let mut row = |price: i64, text: &mut String| {
        let _ = writeln!(
            text,
            "binance-futures,BTCUSDT,{},{},{k},sell,{}.{:02},0.2",
            t0 + k * 1_000_000,
            t0 + k * 1_000_000 + 5,
            price / 100,
            price % 100
        );
        k += 1;
    };
    for step in 0..=60 {
        row(5_000_000 - step * 4_000, &mut text);
    }
    row(4_400_000, &mut text);
    for step in 0..=20 {
        row(4_400_000 + step * 10_000, &mut text);
    }
    text
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn run_file(path: &Path, config: &BacktestConfig) -> Result<(Outcome, Vec<u8>), BacktestError> {
    let s = scenario();
    let src = open_ticks(
        &s.instruments,
        path,
        Format::TardisTrades,
        config.instrument,
    )?;
    let mut events = Vec::new();
    let outcome = run(
        &s.instruments,
        &s.marks,
        s.accounts.clone(),
        src,
        config,
        EventSink {
            writer: &mut events,
            path: Path::new("events.jsonl"),
        },
        &mut |_, _| {},
    )?;
    Ok((outcome, events))
}

#[test]
fn a_crash_gives_calls_liquidations_fills_and_adl_and_the_money_adds_up() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(&dir, "crash.csv", &crash_csv());
    let mut config = BacktestConfig::new(0);
    config.fund = Money::from_int(1_000);
    let (outcome, events) = run_file(&path, &config).expect("run");
    let text = String::from_utf8(events).expect("utf-8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let count = |kind: &str| lines.iter().filter(|l| l["type"] == kind).count() as u64;
    for kind in ["margin_call", "liquidation", "fill", "adl"] {
        assert!(count(kind) > 0, "no {kind} in\n{text}");
        assert_eq!(outcome.tally.events.get(kind).copied(), Some(count(kind)));
    }
    // Times are the file's, and never go back; seq never goes back either.
    let ts: Vec<u64> = lines
        .iter()
        .map(|l| l["ts"].as_u64().expect("ts"))
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]));
    assert!(ts.iter().all(|&t| t >= 1_760_054_400_000_000_000));
    let seq: Vec<u64> = lines
        .iter()
        .map(|l| l["seq"].as_u64().expect("seq"))
        .collect();
    assert!(seq.windows(2).all(|w| w[0] <= w[1]));
    // A liquidation line carries the unit's state; decimals are exact strings.
    let liq = lines
        .iter()
        .find(|l| l["type"] == "liquidation")
        .expect("a liquidation");
    for key in [
        "account",
        "symbol",
        "side",
        "qty",
        "limit_price",
        "mark",
        "equity",
        "maintenance_margin",
        "bankruptcy_price",
    ] {
        assert!(!liq[key].is_null(), "{key} missing in {liq}");
    }
    assert_eq!(liq["symbol"], "BTCUSDT");
    assert_eq!(liq["side"], "sell");
    assert!(liq["qty"].as_str().is_some_and(|q| q.contains('.')));
    // Each fill answers an order sent before it.
    let orders: Vec<u64> = lines
        .iter()
        .filter(|l| l["type"] == "liquidation")
        .map(|l| l["order_id"].as_u64().expect("id"))
        .collect();
    assert!(
        lines
            .iter()
            .filter(|l| l["type"] == "fill")
            .all(|f| orders.contains(&f["order_id"].as_u64().expect("id")))
    );
    assert_eq!(outcome.tally.ticks, 83);
    assert!(outcome.tally.rejected.is_empty());
    assert!(
        outcome.money_ok(),
        "{:?} {:?}",
        outcome.agreement,
        outcome.identity
    );
    assert!(outcome.fund.fees().is_positive());
}

#[test]
fn the_same_input_gives_the_same_bytes() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(&dir, "crash.csv", &crash_csv());
    let mut config = BacktestConfig::new(0);
    config.matcher = MatcherConfig {
        max_slippage_bps: 50,
        partial_per_mille: 400,
        no_fill_per_mille: 100,
        seed: 5,
    };
    let s = scenario();
    let (a, events_a) = run_file(&path, &config).expect("run a");
    let (b, events_b) = run_file(&path, &config).expect("run b");
    assert!(!events_a.is_empty());
    assert_eq!(events_a, events_b);
    let report =
        |o: &Outcome| report::build(&s.instruments, o, "crash.csv", "tardis-trades").to_string();
    assert_eq!(report(&a), report(&b));
    assert!(a.money_ok(), "{:?} {:?}", a.agreement, a.identity);
    // Another matcher seed decides other partial fills: the output is not fixed by accident.
    config.matcher.seed = 6;
    let (_, events_c) = run_file(&path, &config).expect("run c");
    assert_ne!(events_a, events_c);
}

#[test]
fn bad_rows_are_counted_by_reason_with_their_first_line() {
    let dir = tempfile::tempdir().expect("dir");
    let text = format!(
        "{HEADER}\
         x,BTCUSDT,1760054400000000,0,1,buy,50000,0.1\n\
         x,BTCUSDT,1760054401000000,0,2,buy,5O000,0.1\n\
         x,BTCUSDT,1760054402000000,0,3,buy,50010,0.1\n\
         x,BTCUSDT,1760054401500000,0,4,buy,50020,0.1\n\
         x,ETHUSDT,1760054403000000,0,5,buy,3000,0.1\n\
         x,BTCUSDT,soon,0,6,buy,50030,0.1\n\
         x,BTCUSDT,1760054404000000\n\
         x,BTCUSDT,1760054405000000,0,8,buy,-1,0.1\n\
         x,BTCUSDT,1760054406000000,0,9,buy,5O000,0.1\n\
         x,BTCUSDT,1760054407000000,0,10,buy,50040,0.1\n"
    );
    let path = write(&dir, "bad.csv", &text);
    let (outcome, _) = run_file(&path, &BacktestConfig::new(0)).expect("run");
    let got: Vec<(&str, u64, u64)> = outcome
        .tally
        .rejected
        .iter()
        .map(|(k, v)| (k.as_str(), v.0, v.1))
        .collect();
    assert_eq!(
        got,
        [
            ("columns", 1, 8),
            ("field_price", 2, 3),
            ("no_price", 1, 9),
            ("symbol", 1, 6),
            ("time_backwards", 1, 5),
            ("timestamp", 1, 7),
        ]
    );
    assert_eq!(outcome.tally.rows, 10);
    assert_eq!(outcome.tally.ticks, 3);
    let s = scenario();
    let report = report::build(&s.instruments, &outcome, "bad.csv", "tardis-trades");
    assert_eq!(report["inputs"]["rejected"]["field_price"]["first_line"], 3);
    assert_eq!(report["inputs"]["rejected_total"], 7);
}

#[test]
fn a_limit_stops_the_replay() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(&dir, "crash.csv", &crash_csv());
    let mut config = BacktestConfig::new(0);
    config.limit = Some(10);
    let (outcome, _) = run_file(&path, &config).expect("run");
    assert_eq!(outcome.tally.ticks, 10);
    assert!(outcome.tally.limited);
}

#[test]
fn the_file_must_name_a_scenario_instrument_in_the_format_asked_for() {
    let dir = tempfile::tempdir().expect("dir");
    let s = scenario();
    let eth = write(
        &dir,
        "eth.csv",
        &format!("{HEADER}x,ETHUSDT,1760054400000000,0,1,buy,3000,1\n"),
    );
    let e = resolve_instrument(&s.instruments, &eth, None).expect_err("no ETHUSDT");
    let msg = e.to_string();
    assert!(
        msg.contains("eth.csv")
            && msg.contains("\"ETHUSDT\"")
            && msg.contains("BTCUSDT")
            && msg.contains("--symbol"),
        "{msg}"
    );
    // --symbol maps it anyway; an unknown --symbol is refused.
    assert_eq!(
        resolve_instrument(&s.instruments, &eth, Some("BTCUSDT")).ok(),
        Some(0)
    );
    assert!(resolve_instrument(&s.instruments, &eth, Some("XRP")).is_err());
    let btc = write(&dir, "btc.csv", &crash_csv());
    assert_eq!(resolve_instrument(&s.instruments, &btc, None).ok(), Some(0));
    // Klines carry no symbol: the file name must.
    let bar = "1760054400000,100,110,95,105,0,1760054699999,0,60,0,0,0\n";
    let named = write(&dir, "BTCUSDT-5m.csv", bar);
    assert_eq!(
        resolve_instrument(&s.instruments, &named, None).ok(),
        Some(0)
    );
    let anon = write(&dir, "bars.csv", bar);
    assert!(
        resolve_instrument(&s.instruments, &anon, None)
            .expect_err("no symbol")
            .to_string()
            .contains("bars.csv")
    );
    // The format asked for must be the file's.
    let Err(e) = open_ticks(&s.instruments, &btc, Format::BinanceKlines, 0) else {
        panic!("a trades file read as klines");
    };
    let msg = e.to_string();
    assert!(
        msg.contains("btc.csv") && msg.contains("tardis-trades") && msg.contains("binance-klines"),
        "{msg}"
    );
    // A missing file is named.
    let Err(e) = open_ticks(
        &s.instruments,
        &dir.path().join("gone.csv"),
        Format::TardisTrades,
        0,
    ) else {
        panic!("a missing file opened");
    };
    assert!(e.to_string().contains("gone.csv"));
}

#[test]
fn the_money_check_notices_a_missing_unit_and_a_booking_the_engine_did_not_make() {
    let s = scenario();
    let fund = Money::from_int(10);
    let engine = RiskEngine::new(
        s.instruments.clone(),
        s.marks.clone(),
        s.accounts.clone(),
        RiskConfig::default(),
        Scan::Index,
    )
    .with_fund(fund);
    let mut ledger = Ledger::new(&s.instruments, &s.accounts, fund);
    let before = Totals::of(&s.accounts, fund, 1);
    let after = Totals::of(engine.accounts(), engine.fund().balance(), 1);
    let ag = ledger.compare(&engine);
    assert_eq!((ag.accounts, ag.differing, ag.fund_agrees), (3, 0, true));
    assert!(ledger::identity(&s.instruments, &before, &after, &ledger).holds);
    // One unit of 2^-48 more in the fund than the flows explain: the identity breaks.
    let mut richer = after.clone();
    richer.fund = richer.fund.checked_add(Money::ULP).expect("in range");
    assert!(!ledger::identity(&s.instruments, &before, &richer, &ledger).holds);
    // A fill the engine never booked: the ledger no longer agrees with it.
    let order = shm::Liquidation {
        order_id: 77,
        account: 1,
        instrument: 0,
        side: Side::Sell,
        qty: 100,
        limit_px: 4_800_000,
        input_seq: 1,
    };
    ledger.order_sent(&order, false);
    ledger.fill(&shm::Fill {
        account: 1,
        instrument: 0,
        qty: -100,
        price_px: 4_900_000,
        fee_money: 0,
        liquidation_order_id: 77,
    });
    let ag = ledger.compare(&engine);
    assert_eq!(
        (ag.differing, ag.first_differing, ag.fund_agrees),
        (1, Some(1), false)
    );
    assert_eq!(ledger.fills(), (1, 0));
}

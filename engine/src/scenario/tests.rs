//! Scenario parsing: the published example, and every kind of bad input.

use std::path::Path;

use super::*;
use crate::margin::{InstrumentId, MarginStatus};

const EXAMPLE: &str = include_str!("../../../tests/fixtures/issue_example.toml");
const BTC: &str = include_str!("../../../tests/fixtures/btc_2021.toml");

fn parse(text: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(text, Path::new("case.toml"))
}

/// Asserts an error points at `line` and mentions every one of `words`.
fn expect_error(text: &str, line: usize, words: &[&str]) {
    let err = parse(text).expect_err("the scenario must be refused");
    let msg = err.to_string();
    assert_eq!(err.line(), Some(line), "{msg}");
    assert!(msg.starts_with(&format!("case.toml:{line}: ")), "{msg}");
    for w in words {
        assert!(msg.contains(w), "`{msg}` lacks `{w}`");
    }
}

const HEAD: &str = r#"
[[instrument]]
symbol = "BTCUSDT"
kind = "perpetual"
price_decimals = 2
qty_decimals = 3
liquidation_fee = "0.003"
tiers = [ { max_notional = "50000", mmr = "0.004", imr = "0.008" },
          { max_notional = "250000", mmr = "0.005", imr = "0.01" } ]

[[price]]
symbol = "BTCUSDT"
mark = "50000"
"#;

fn with_position(pos: &str) -> String {
    format!("{HEAD}\n[[account]]\nid = 1\nwallet = \"500\"\npositions = [ {pos} ]\n")
}

#[test]
fn the_published_example_loads_as_written() {
    let s = parse(EXAMPLE).unwrap();
    assert_eq!(s.instruments.len(), 2);
    assert_eq!(s.accounts.len(), 1);
    let a = &s.accounts[0];
    assert_eq!(a.wallet(), Money::from_int(500));
    assert_eq!(a.positions()[0].qty(), Qty(20));
    assert_eq!(a.positions()[1].qty(), Qty(-1000));
    assert_eq!(a.positions()[1].mode(), MarginMode::Isolated);
    assert_eq!(a.positions()[1].isolated_margin(), Money::from_int(300));
    assert_eq!(s.marks.get(InstrumentId(1)), Some(Price(300_000)));
    let lp = a
        .liquidation_price(0, &s.instruments, &s.marks)
        .unwrap()
        .unwrap();
    let inst = s.instruments.get(InstrumentId(0)).unwrap();
    assert_eq!(
        crate::margin::to_tick_nearest(lp, inst),
        Some(Price(2_510_040))
    );
}

#[test]
fn numbers_and_strings_agree_and_futures_have_expiries() {
    let s = parse(BTC).unwrap();
    let btc = s.instruments.get(InstrumentId(0)).unwrap();
    assert_eq!(btc.tiers().len(), 6);
    assert_eq!(btc.tiers()[5].amount, 1_266_300 * 100_000 * 1_000_000_000);
    assert_eq!(btc.liquidation_fee, Rate(5_000_000));
    let fut = s.instruments.get(InstrumentId(1)).unwrap();
    assert_eq!(
        fut.kind,
        InstrumentKind::Future {
            expiry_unix_s: parse_utc("2026-12-25T08:00:00Z").unwrap()
        }
    );
    assert_eq!(s.call_level, CallLevel::default());
    let status = |i: usize| {
        s.accounts[i]
            .evaluate(&s.instruments, &s.marks, s.call_level)
            .unwrap()
            .worst
    };
    assert_eq!(status(3), MarginStatus::Bankrupt);
    assert_eq!(status(4), MarginStatus::MarginCall);
    assert_eq!(status(5), MarginStatus::Liquidatable);
}

#[test]
fn unknown_symbol_is_refused_with_its_line() {
    let text = with_position(r#"{ symbol = "DOGEUSDT", qty = "1", entry = "1", mode = "cross" }"#);
    let line = text.lines().position(|l| l.contains("DOGEUSDT")).unwrap() + 1;
    expect_error(
        &text,
        line,
        &[
            "account[0].positions[0].symbol",
            "unknown symbol `DOGEUSDT`",
            "BTCUSDT",
        ],
    );
}

#[test]
fn negative_price_is_refused() {
    let text = with_position(r#"{ symbol = "BTCUSDT", qty = "1", entry = "-5", mode = "cross" }"#);
    let line = text.lines().count();
    expect_error(&text, line, &["positions[0].entry", "positive price"]);
    let text = HEAD.replace("mark = \"50000\"", "mark = -1");
    let line = text.lines().position(|l| l.contains("mark =")).unwrap() + 1;
    expect_error(&text, line, &["price[0].mark", "positive"]);
}

#[test]
fn malformed_decimals_are_refused() {
    let text =
        with_position(r#"{ symbol = "BTCUSDT", qty = "1.2.3", entry = "50000", mode = "cross" }"#);
    expect_error(
        &text,
        text.lines().count(),
        &["positions[0].qty", "not a decimal number"],
    );
    let text =
        with_position(r#"{ symbol = "BTCUSDT", qty = "0.0001", entry = "50000", mode = "cross" }"#);
    expect_error(
        &text,
        text.lines().count(),
        &["positions[0].qty", "more than 3 decimal places"],
    );
    let text = HEAD.replace("\"0.003\"", "\"0.3%\"");
    expect_error(
        &text,
        7,
        &["instrument[0].liquidation_fee", "not a decimal"],
    );
}

#[test]
fn unordered_and_overlapping_tiers_are_refused() {
    let text = HEAD.replace("max_notional = \"250000\"", "max_notional = \"40000\"");
    expect_error(
        &text,
        9,
        &["instrument[0].tiers[1].max_notional", "ascending"],
    );
    let text = HEAD.replace(
        "{ max_notional = \"250000\"",
        "{ min_notional = \"40000\", max_notional = \"250000\"",
    );
    expect_error(
        &text,
        9,
        &["instrument[0].tiers[1].min_notional", "overlaps", "50000"],
    );
    let text = HEAD.replace(
        "mmr = \"0.005\"",
        "mmr = \"0.005\", maintenance_amount = \"60\"",
    );
    expect_error(&text, 9, &["tiers[1].maintenance_amount", "expected 50"]);
}

#[test]
fn missing_and_unknown_fields_are_refused() {
    let text = with_position(r#"{ symbol = "BTCUSDT", entry = "50000", mode = "cross" }"#);
    expect_error(&text, text.lines().count(), &["missing field `qty`"]);
    let text = HEAD.replace("kind = \"perpetual\"\n", "");
    expect_error(&text, 2, &["missing field `kind`"]);
    let text = HEAD.replace(
        "kind = \"perpetual\"",
        "kind = \"perpetual\"\ncolour = \"red\"",
    );
    expect_error(&text, 5, &["unknown field `colour`"]);
    let text =
        with_position(r#"{ symbol = "BTCUSDT", qty = "1", entry = "50000", mode = "isolated" }"#);
    expect_error(
        &text,
        text.lines().count(),
        &["positions[0].margin", "missing field `margin`"],
    );
    let text = HEAD.replace("kind = \"perpetual\"", "kind = \"future\"");
    expect_error(
        &text,
        2,
        &["instrument[0].expiry", "missing field `expiry`"],
    );
}

#[test]
fn other_bad_values_are_refused() {
    expect_error("[[instrument]\n", 1, &[]);
    let text = format!("{HEAD}\n[[price]]\nsymbol = \"ETHUSDT\"\nmark = \"1\"\n");
    expect_error(
        &text,
        text.lines().count() - 1,
        &["price[1].symbol", "unknown symbol"],
    );
    let text =
        with_position(r#"{ symbol = "BTCUSDT", qty = "1", entry = "50000", mode = "hedge" }"#);
    expect_error(
        &text,
        text.lines().count(),
        &["positions[0].mode", "\"cross\" or \"isolated\""],
    );
    let text =
        with_position(r#"{ symbol = "BTCUSDT", qty = "0", entry = "50000", mode = "cross" }"#);
    expect_error(
        &text,
        text.lines().count(),
        &["positions[0].qty", "non-zero"],
    );
    let text = HEAD.replace("mmr = \"0.004\"", "mmr = \"1.5\"");
    expect_error(&text, 8, &["tiers[0].mmr", "0 < mmr < 1"]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// Any one-character change of a valid scenario loads or is a typed error with a line.
    #[test]
    fn edited_scenarios_never_panic(at in 0usize..2000, c in proptest::sample::select(vec!['-', '.', '0', '9', '"', '[', ']', '{', ',', '=', 'x', '\n', ' '])) {
        let mut chars: Vec<char> = BTC.chars().collect();
        let i = at % chars.len();
        chars[i] = c;
        let text: String = chars.into_iter().collect();
        if let Err(e) = parse(&text) {
            proptest::prop_assert!(e.line().is_some(), "{e}");
        }
    }
}

//! The orders ring (the engine's output) in the same file format: every output kind written by
//! the library is read back by a separate `brink-feed dump` process.

mod feed_support;

use anyhow::Result;
use brink::shm::{
    Adl, Alert, Liquidation, MarginCall, Output, Producer, RingKind, Settlement, Side, alert_code,
};
use feed_support::{ring_dir, run, run_json, s, u};
use serde_json::Value;

#[test]
fn every_output_kind_is_dumped_by_another_process() -> Result<()> {
    let dir = ring_dir();
    let path = dir.path().join("orders");
    let outputs = [
        Output::MarginCall(MarginCall {
            account: 11,
            ratio_e9: 850_000_000,
            equity_money: 100_000_000_000,
            mm_money: 85_000_000_000,
            input_seq: 41,
        }),
        Output::Liquidation(Liquidation {
            order_id: 1,
            account: 11,
            instrument: 2,
            side: Side::Sell,
            qty: 1_500,
            limit_px: 10_187_769,
            input_seq: 42,
        }),
        Output::Adl(Adl {
            order_id: 2,
            account: 12,
            instrument: 2,
            side: Side::Buy,
            qty: 300,
            price_px: 10_100_000,
            bankrupt_account: 11,
        }),
        Output::Settlement(Settlement {
            account: 13,
            instrument: 1,
            qty: -7,
            price_px: 99,
            pnl_money: -12_345,
            input_seq: 43,
        }),
        Output::Alert(Alert {
            code: alert_code::INSURANCE_FUND_SHORT,
            arg0: 11,
            arg1: 5,
        }),
    ];
    let mut producer = Producer::create(&path, RingKind::Orders, 8)?;
    for out in outputs {
        producer.push(out.encode());
    }
    producer.close();

    let dump = run(&["dump", "--ring", s(&path), "--json"])?;
    assert!(dump.status.success());
    let lines: Vec<Value> = String::from_utf8(dump.stdout)?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["margin_call", "liquidation", "adl", "settlement", "alert"]
    );
    assert_eq!(lines[1]["side"], "sell");
    assert_eq!(u(&lines[1], "limit_px"), 10_187_769);
    assert_eq!(u(&lines[2], "bankrupt_account"), 11);
    assert_eq!(lines[3]["pnl_money"].as_i64(), Some(-12_345));
    assert_eq!(lines[4]["name"], "insurance_fund_short");

    let stat = run_json(&["stat", "--ring", s(&path), "--json"])?;
    assert_eq!(stat["kind"], "orders");
    assert_eq!(u(&stat, "producer_cursor"), 5);
    assert_eq!(stat["closed"], true);
    // An orders ring is not a feed: the ingest stage refuses it, saying why.
    let out = run(&["consume", "--feed", s(&path), "--wait-ms", "0"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("is of kind orders, expected kind feed"),
        "{err}"
    );
    Ok(())
}

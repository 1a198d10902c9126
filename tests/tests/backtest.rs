//! `brink backtest` end to end: the committed BTCUSDT crash klines and (when ../shared/data is
//! present) the BCHUSD_PERP trades of 2025-10-10 replayed against generated accounts, twice each:
//! the outputs must be byte-identical and the money check must pass. Bad arguments exit 2 and
//! name the file; bad rows are counted, not fatal.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result};
use brink_tests::{bin, fixture, shared_data, workspace_root};
use serde_json::Value;

fn backtest(args: &[&str], out: &Path) -> Result<Output> {
    Command::new(bin("brink"))
        .arg("backtest")
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .context("running brink backtest")
}

fn klines() -> PathBuf {
    workspace_root().join("engine/fixtures/binance-um_BTCUSDT_markprice_5m_2025-10-10.zip")
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("utf-8 path")
}

/// Runs the same backtest into two folders; checks success, identical bytes and the money check;
/// returns the report and the event lines.
fn twice(args: &[&str]) -> Result<(Value, Vec<Value>)> {
    let dir = tempfile::tempdir()?;
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let o = backtest(args, out)?;
        assert!(
            o.status.success(),
            "exit {:?}\nstdout:\n{}\nstderr:\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("money check: pass"));
    }
    for name in ["events.jsonl", "report.json", "report.svg"] {
        let x = std::fs::read(a.join(name)).with_context(|| format!("reading {name}"))?;
        let y = std::fs::read(b.join(name))?;
        assert!(!x.is_empty(), "{name} is empty");
        assert!(
            x == y,
            "{name} differs between two runs of the same backtest"
        );
    }
    let svg = std::fs::read_to_string(a.join("report.svg"))?;
    assert!(svg.starts_with("<svg") && svg.contains("insurance fund"));
    let report: Value = serde_json::from_slice(&std::fs::read(a.join("report.json"))?)?;
    let events = std::fs::read_to_string(a.join("events.jsonl"))?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<Vec<Value>, _>>()
        .context("every events line is JSON")?;
    assert_eq!(report["money"]["check"], "pass", "{}", report["money"]);
    assert_eq!(report["money"]["ledger"]["accounts_differing"], 0);
    assert_eq!(report["money"]["identity"]["holds"], true);
    // The counts in the report are the lines written.
    for kind in ["margin_call", "liquidation", "fill", "adl", "settlement"] {
        let n = events.iter().filter(|e| e["type"] == kind).count() as u64;
        assert_eq!(report["events"][kind].as_u64(), Some(n), "{kind}");
    }
    Ok((report, events))
}

fn kinds_present(events: &[Value]) -> Vec<&str> {
    let mut kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    kinds.sort_unstable();
    kinds.dedup();
    kinds
}

#[test]
fn the_committed_crash_klines_replay_identically_and_the_money_adds_up() -> Result<()> {
    let scenario = fixture("backtest_btcusdt.toml");
    let ticks = klines();
    let (report, events) = twice(&[
        "--scenario",
        path_str(&scenario)?,
        "--ticks",
        path_str(&ticks)?,
        "--format",
        "binance-klines",
        "--synth-accounts",
        "20000",
        "--seed",
        "3",
        "--fund",
        "100000",
        "--depth",
        "5",
        "--slippage-bps",
        "20",
        "--partial-per-mille",
        "200",
    ])?;
    let kinds = kinds_present(&events);
    for kind in ["margin_call", "liquidation", "fill", "adl"] {
        assert!(kinds.contains(&kind), "no {kind} event; kinds {kinds:?}");
    }
    assert_eq!(report["inputs"]["rows"], 288);
    assert_eq!(report["inputs"]["ticks"], 4 * 288);
    assert_eq!(report["inputs"]["rejected_total"], 0);
    assert_eq!(report["symbol"], "BTCUSDT");
    // Event times are the klines' own (2025-10-10 UTC), never the machine's.
    let day = 1_760_054_400_000_000_000u64..1_760_140_800_000_000_000;
    assert!(
        events
            .iter()
            .all(|e| e["ts"].as_u64().is_some_and(|t| day.contains(&t)))
    );
    // The fund series is sampled and bounded.
    let series = report["insurance_fund"]["series"]
        .as_array()
        .context("series")?;
    assert!(!series.is_empty() && series.len() <= 1_000);
    // The crash liquidates longs: sells dominate.
    let sells = events
        .iter()
        .filter(|e| e["type"] == "liquidation" && e["side"] == "sell")
        .count();
    let liquidations = report["events"]["liquidation"].as_u64().context("count")?;
    assert!(sells as u64 * 2 > liquidations, "{sells} of {liquidations}");
    Ok(())
}

#[test]
fn bchusd_trades_of_the_crash_replay_identically_against_generated_accounts() -> Result<()> {
    let Some(data) = shared_data() else {
        return Ok(());
    };
    let ticks = data.join("binance-cm_BCHUSD_PERP_trades_2025-10-10.csv.gz");
    if !ticks.is_file() {
        println!("skipped: {} is absent", ticks.display());
        return Ok(());
    }
    let scenario = fixture("backtest_bchusd.toml");
    // The whole day (206,692 trades, the −20 % wick at 21:19) against 5,000 accounts.
    let (report, events) = twice(&[
        "--scenario",
        path_str(&scenario)?,
        "--ticks",
        path_str(&ticks)?,
        "--format",
        "tardis-trades",
        "--synth-accounts",
        "5000",
        "--seed",
        "25",
        "--fund",
        "0",
        "--slippage-bps",
        "100",
        "--partial-per-mille",
        "300",
    ])?;
    assert_eq!(report["inputs"]["ticks"], 206_692);
    assert_eq!(report["inputs"]["rejected_total"], 0);
    let liquidations = report["events"]["liquidation"].as_u64().context("count")?;
    assert!(liquidations > 0, "no liquidation in the crash");
    let kinds = kinds_present(&events);
    assert!(
        kinds.contains(&"fill") && kinds.contains(&"margin_call"),
        "{kinds:?}"
    );
    // Liquidations happen around the wick (21:00–21:40 UTC) too, not only at the start.
    let wick = 1_760_130_000_000_000_000u64..1_760_132_400_000_000_000;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "liquidation"
                && e["ts"].as_u64().is_some_and(|t| wick.contains(&t)))
    );
    Ok(())
}

#[test]
fn bad_arguments_exit_2_naming_the_file_and_bad_rows_are_counted() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let scenario = fixture("backtest_btcusdt.toml");
    let out = dir.path().join("out");
    let sc = path_str(&scenario)?;
    // A missing ticks file.
    let gone = dir.path().join("gone.csv");
    let o = backtest(
        &[
            "--scenario",
            sc,
            "--ticks",
            path_str(&gone)?,
            "--format",
            "tardis-trades",
        ],
        &out,
    )?;
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("gone.csv"));
    // A file of another instrument.
    let eth = dir.path().join("eth.csv");
    std::fs::write(
        &eth,
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n\
         x,ETHUSDT,1760054400000000,0,1,buy,3000,1\n",
    )?;
    let o = backtest(
        &[
            "--scenario",
            sc,
            "--ticks",
            path_str(&eth)?,
            "--format",
            "tardis-trades",
        ],
        &out,
    )?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("eth.csv") && err.contains("ETHUSDT") && err.contains("BTCUSDT"),
        "{err}"
    );
    // The wrong format.
    let ticks = klines();
    let o = backtest(
        &[
            "--scenario",
            sc,
            "--ticks",
            path_str(&ticks)?,
            "--format",
            "tardis-quotes",
        ],
        &out,
    )?;
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("binance-klines") && err.contains("tardis-quotes"),
        "{err}"
    );
    // Bad rows: counted by reason with their first line, the rest replayed.
    let trades = dir.path().join("btc.csv");
    std::fs::write(
        &trades,
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n\
         x,BTCUSDT,1760054400000000,0,1,buy,50000,1\n\
         x,BTCUSDT,1760054401000000,0,2,buy,fifty,1\n\
         x,BTCUSDT,1760054402000000,0,3,buy,50010\n\
         x,BTCUSDT,1760054403000000,0,4,buy,50020,1\n",
    )?;
    let o = backtest(
        &[
            "--scenario",
            sc,
            "--ticks",
            path_str(&trades)?,
            "--format",
            "tardis-trades",
            "--synth-accounts",
            "100",
        ],
        &out,
    )?;
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json"))?)?;
    let rejected = &report["inputs"]["rejected"];
    assert_eq!(rejected["field_price"]["first_line"], 3);
    assert_eq!(rejected["columns"]["first_line"], 4);
    assert_eq!(report["inputs"]["ticks"], 2);
    Ok(())
}

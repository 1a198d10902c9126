//! `brink risk` end to end: the published liquidation prices, the JSON document, the table, bad
//! input (exit code 2, file and line named), and bulk accounts from `brink-accounts`.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result};
use brink_tests::{bin, fixture};
use serde_json::Value;

fn risk(args: &[&str]) -> Result<Output> {
    Command::new(bin("brink"))
        .arg("risk")
        .args(args)
        .output()
        .context("running brink risk")
}

fn risk_json(scenario: &Path) -> Result<Value> {
    let out = risk(&[
        "--scenario",
        scenario.to_str().context("utf-8 path")?,
        "--json",
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn published_binance_cases_print_their_liquidation_prices() -> Result<()> {
    let doc = risk_json(&fixture("btc_2021.toml"))?;
    let accounts = doc["accounts"].as_array().context("accounts array")?;
    let ids: Vec<u64> = accounts.iter().filter_map(|a| a["id"].as_u64()).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5, 6], "account order as given");
    // Cross: wallet 500, long 0.02 at 50,000.
    let p = &accounts[0]["positions"][0];
    assert_eq!(p["liquidation_price"], "25100.40");
    assert_eq!(p["bankruptcy_price"], "25000.00");
    assert_eq!(p["notional"], "1000");
    assert_eq!(p["mmr"], "0.004");
    assert_eq!(p["qty"], "0.02");
    // Isolated: margin 5,000, long 1 at 50,000.
    let p = &accounts[1]["positions"][0];
    assert_eq!(p["liquidation_price"], "45180.72");
    assert_eq!(p["mode"], "isolated");
    assert_eq!(p["status"], "healthy");
    // A fully collateralised long has neither price.
    let p = &accounts[2]["positions"][0];
    assert!(p["liquidation_price"].is_null() && p["bankruptcy_price"].is_null());
    let statuses: Vec<&str> = accounts
        .iter()
        .filter_map(|a| a["status"].as_str())
        .collect();
    assert_eq!(
        statuses,
        [
            "healthy",
            "healthy",
            "healthy",
            "bankrupt",
            "margin_call",
            "liquidatable"
        ]
    );
    Ok(())
}

#[test]
fn the_issue_example_gives_one_document_with_decimal_strings() -> Result<()> {
    let doc = risk_json(&fixture("issue_example.toml"))?;
    let a = &doc["accounts"][0];
    assert_eq!(a["id"], 1);
    for key in ["equity", "maintenance_margin", "margin_ratio", "status"] {
        assert!(a[key].is_string(), "{key} is a string: {a}");
    }
    assert_eq!(a["equity"], "500.00000000");
    // MM = 0.02 · 50,000 · 0.004 = 4; ratio 4/500.
    assert_eq!(a["maintenance_margin"], "4.00000000");
    assert_eq!(a["margin_ratio"], "0.00800000");
    let ps = a["positions"].as_array().context("positions")?;
    let symbols: Vec<&str> = ps.iter().filter_map(|p| p["symbol"].as_str()).collect();
    assert_eq!(symbols, ["BTCUSDT", "ETHUSDT"]);
    for p in ps {
        for key in [
            "qty",
            "mode",
            "notional",
            "mmr",
            "liquidation_price",
            "bankruptcy_price",
        ] {
            assert!(p[key].is_string(), "{key} is a string: {p}");
        }
    }
    assert_eq!(ps[0]["liquidation_price"], "25100.40");
    // Short 1 ETH at 3,000, isolated 300: bankrupt at 3,300; LP = 3,300 / 1.005.
    assert_eq!(ps[1]["bankruptcy_price"], "3300.00");
    assert_eq!(ps[1]["liquidation_price"], "3283.58");
    Ok(())
}

#[test]
fn the_default_output_is_a_table() -> Result<()> {
    let out = risk(&[
        "--scenario",
        fixture("btc_2021.toml").to_str().context("path")?,
    ])?;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout)?;
    assert!(text.contains("account 1"));
    assert!(text.contains("25100.40") && text.contains("45180.72"));
    Ok(())
}

/// Writes `text` to a temp file, runs `brink risk` on it and checks exit code 2 and an error
/// naming the file, the line and every one of `words`.
fn refused(text: &str, line: usize, words: &[&str]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text)?;
    let out = risk(&["--scenario", path.to_str().context("path")?, "--json"])?;
    let err = String::from_utf8(out.stderr)?;
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(out.stdout.is_empty());
    assert!(err.contains(&format!("bad.toml:{line}: ")), "{err}");
    for w in words {
        assert!(err.contains(w), "`{err}` lacks `{w}`");
    }
    assert!(!err.contains("panicked"), "{err}");
    Ok(())
}

fn example_with(from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(fixture("issue_example.toml")).unwrap_or_default();
    assert!(text.contains(from), "fixture contains {from}");
    text.replacen(from, to, 1)
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(0, |i| i + 1)
}

#[test]
fn bad_scenarios_exit_2_naming_file_line_and_field() -> Result<()> {
    let t = example_with("symbol = \"ETHUSDT\", qty", "symbol = \"ADAUSDT\", qty");
    refused(
        &t,
        line_of(&t, "ADAUSDT"),
        &["positions[1].symbol", "unknown symbol `ADAUSDT`"],
    )?;

    let t = example_with("mark = \"3000\"", "mark = \"-3000\"");
    refused(
        &t,
        line_of(&t, "-3000"),
        &["price[1].mark", "positive price"],
    )?;

    let t = example_with("qty = \"0.02\"", "qty = \"0,02\"");
    refused(
        &t,
        line_of(&t, "0,02"),
        &["positions[0].qty", "not a decimal number"],
    )?;

    let t = example_with("max_notional = \"250000\"", "max_notional = \"20000\"");
    refused(
        &t,
        line_of(&t, "20000\""),
        &["tiers[1].max_notional", "ascending"],
    )?;

    let t = example_with(
        "{ max_notional = \"250000\"",
        "{ min_notional = \"10000\", max_notional = \"250000\"",
    );
    refused(
        &t,
        line_of(&t, "min_notional"),
        &["tiers[1].min_notional", "overlaps"],
    )?;

    let t = example_with("wallet = \"500\"\n", "");
    refused(&t, line_of(&t, "[[account]]"), &["missing field `wallet`"])?;

    let t = example_with(
        "kind = \"perpetual\"",
        "kind = \"perpetual\"\nleverage = 20",
    );
    refused(&t, line_of(&t, "leverage"), &["unknown field `leverage`"])?;
    Ok(())
}

#[test]
fn a_missing_file_exits_2() -> Result<()> {
    let out = risk(&["--scenario", "/nonexistent/scenario.toml"])?;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8(out.stderr)?.contains("/nonexistent/scenario.toml"));
    Ok(())
}

#[test]
fn generated_bulk_accounts_load_and_evaluate() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out_path = dir.path().join("accounts.bin");
    let scenario = fixture("five_instruments.toml");
    let generate = |path: &Path, seed: &str| -> Result<()> {
        let st = Command::new(bin("brink-accounts"))
            .args(["gen", "--count", "2000", "--seed", seed, "--instruments"])
            .arg(&scenario)
            .arg("--out")
            .arg(path)
            .status()?;
        assert!(st.success());
        Ok(())
    };
    generate(&out_path, "42")?;
    let again = dir.path().join("again.bin");
    generate(&again, "42")?;
    assert_eq!(
        std::fs::read(&out_path)?,
        std::fs::read(&again)?,
        "same seed, same file"
    );

    let out = risk(&[
        "--scenario",
        scenario.to_str().context("path")?,
        "--accounts",
        out_path.to_str().context("path")?,
        "--json",
    ])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(doc["accounts"], 2000);
    assert_eq!(doc["positions"], 6000);
    assert_eq!(doc["evaluation_errors"], 0);
    let st = &doc["status"];
    let total: u64 = ["healthy", "margin_call", "liquidatable", "bankrupt"]
        .iter()
        .filter_map(|k| st[k].as_u64())
        .sum();
    assert_eq!(total, 2000);
    assert!(
        st["healthy"].as_u64().unwrap_or(0) > 1000,
        "most generated accounts are healthy: {st}"
    );

    // A damaged copy is refused with exit code 2 and the file named.
    let mut bytes = std::fs::read(&out_path)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let bad = dir.path().join("bad.bin");
    std::fs::write(&bad, &bytes)?;
    let out = risk(&[
        "--scenario",
        scenario.to_str().context("path")?,
        "--accounts",
        bad.to_str().context("path")?,
    ])?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr)?;
    assert!(err.contains("bad.bin") && err.contains("crc32"), "{err}");
    Ok(())
}

#[test]
fn generated_accounts_have_a_realistic_leverage_spread() -> Result<()> {
    use brink::margin::MarginMode;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("accounts.bin");
    let scenario_path = fixture("five_instruments.toml");
    let st = Command::new(bin("brink-accounts"))
        .args(["gen", "--count", "5000", "--seed", "3", "--instruments"])
        .arg(&scenario_path)
        .arg("--out")
        .arg(&path)
        .status()?;
    assert!(st.success());
    let scenario = brink::scenario::Scenario::load(&scenario_path)?;
    let accounts = brink::bulk::load(&path, &scenario.instruments)?;
    assert_eq!(accounts.len(), 5000);
    let (mut longs, mut shorts, mut cross, mut isolated, mut in_band) = (0, 0, 0, 0, 0);
    for a in &accounts {
        assert_eq!(a.positions().len(), 3);
        let mut cross_value = 0f64;
        for p in a.positions() {
            let inst = scenario
                .instruments
                .get(p.instrument())
                .context("instrument")?;
            // Entry value in currency units (display arithmetic only).
            let value =
                p.cost().unsigned_abs() as f64 / 10f64.powi(inst.notional_decimals() as i32);
            if p.qty().0 > 0 {
                longs += 1
            } else {
                shorts += 1
            }
            match p.mode() {
                MarginMode::Cross => {
                    cross += 1;
                    cross_value += value;
                }
                MarginMode::Isolated => {
                    isolated += 1;
                    let lev = value / p.isolated_margin().to_f64_lossy();
                    assert!((0.99..=126.0).contains(&lev), "isolated leverage {lev}");
                    if (5.0..=20.0).contains(&lev) {
                        in_band += 1;
                    }
                }
            }
        }
        if cross_value > 0.0 {
            let lev = cross_value / a.wallet().to_f64_lossy();
            assert!((0.99..=126.0).contains(&lev), "cross leverage {lev}");
        }
    }
    assert!(
        longs > 6000 && shorts > 6000,
        "{longs} longs, {shorts} shorts"
    );
    assert!(
        cross > 8000 && isolated > 3000,
        "{cross} cross, {isolated} isolated"
    );
    let share = f64::from(in_band) / f64::from(isolated);
    assert!(
        share > 0.6,
        "only {share:.2} of isolated positions between 5x and 20x"
    );
    Ok(())
}

#[test]
fn every_position_shows_its_adl_quantile() -> Result<()> {
    let doc = risk_json(&fixture("issue_example.toml"))?;
    let mut seen = 0;
    for a in doc["accounts"].as_array().context("accounts")? {
        for p in a["positions"].as_array().context("positions")? {
            let q = p["adl_quantile"].as_u64().context("adl_quantile")?;
            assert!((1..=5).contains(&q), "quantile {q} out of 1..=5");
            seen += 1;
        }
    }
    assert!(seen > 0);
    Ok(())
}

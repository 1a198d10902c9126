//! `brink risk --scenario FILE [--json] [--accounts BULK]`: evaluates every account of a scenario.
//!
//! Per account: equity, maintenance and initial margin, margin ratio and status of the cross part
//! (wallet + cross positions), and the worst status including isolated positions. Per position:
//! quantity, mode, entry and mark price, uPnL, notional, tier (1-based), MMR, maintenance margin,
//! liquidation and bankruptcy price (nearest tick; `null` when none exists), and for isolated
//! positions their own margin, equity, ratio and status.
//!
//! Money and margin ratios are shown with 8 decimals rounded to nearest: display only. Decisions
//! (status) use the values rounded against the account, which differ from the exact ones by less
//! than 10^-13 (see the precision budget in `brink::margin`), so a value that is exactly an
//! 8-decimal number (e.g. a wallet of 500.1, held as the `Money` just below it) prints as itself.
//! Prices print at the nearest tick (see `brink::margin::to_tick_nearest`). JSON object keys are
//! sorted; arrays keep the file's account and position order. With `--accounts`, the bulk file's accounts are evaluated too
//! and only a summary (counts per status, load and evaluation time) is printed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::{Value, json};

use brink::margin::{
    Account, InstrumentTable, MarginError, MarginMode, MarginStatus, MarginSummary, MarkPrices,
    to_tick_nearest,
};
use brink::num::{Money, format_scaled, format_scaled_trimmed};
use brink::risk::{RiskConfig, RiskEngine, Scan};
use brink::scenario::Scenario;

/// Decimal places of money in reports.
const MONEY_DECIMALS: u32 = 8;

/// Arguments of `brink risk`.
#[derive(Debug, clap::Args)]
pub struct RiskArgs {
    /// Scenario file (TOML): instruments, mark prices, accounts.
    #[arg(long)]
    scenario: PathBuf,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Also load a bulk accounts file (see `brink::bulk`) and print a summary of it.
    #[arg(long)]
    accounts: Option<PathBuf>,
}

/// Runs the command: 0 on success, 2 on bad input.
pub fn run(args: RiskArgs) -> ExitCode {
    let scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &args.accounts {
        return run_bulk(&scenario, path, args.json);
    }
    // The risk stage over the scenario ranks positions for ADL.
    let engine = RiskEngine::new(
        scenario.instruments.clone(),
        scenario.marks.clone(),
        scenario.accounts.clone(),
        RiskConfig::default(),
        Scan::Index,
    );
    let mut reports = Vec::with_capacity(scenario.accounts.len());
    for (k, acct) in scenario.accounts.iter().enumerate() {
        match account_report(&scenario, acct, &engine, k as u32) {
            Ok(r) => reports.push(r),
            Err(e) => {
                eprintln!(
                    "error: {}: account {}: {e}",
                    args.scenario.display(),
                    acct.id()
                );
                return ExitCode::from(2);
            }
        }
    }
    let doc = json!({ "accounts": reports });
    if args.json {
        emit(serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n")
    } else {
        emit(table(&doc))
    }
}

/// Writes the report to stdout. A closed pipe (e.g. `| head`) ends quietly; other write errors
/// exit with 1.
fn emit(text: String) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing the report: {e}");
            ExitCode::from(1)
        }
    }
}

fn money(m: Money) -> Value {
    Value::String(m.to_string_nearest(MONEY_DECIMALS))
}

fn ratio(s: &MarginSummary) -> Value {
    if !s.equity.is_positive() {
        return Value::Null;
    }
    s.maintenance
        .ratio_scaled_nearest(s.equity, MONEY_DECIMALS)
        .map_or(Value::Null, |r| {
            Value::String(format_scaled(r, MONEY_DECIMALS))
        })
}

fn summary_fields(s: &MarginSummary, status: MarginStatus) -> [(&'static str, Value); 5] {
    [
        ("equity", money(s.equity)),
        ("maintenance_margin", money(s.maintenance)),
        ("initial_margin", money(s.initial)),
        ("margin_ratio", ratio(s)),
        ("status", Value::String(status.as_str().to_string())),
    ]
}

fn price_value(p: Option<Money>, inst: &brink::margin::Instrument) -> Value {
    p.and_then(|p| to_tick_nearest(p, inst))
        .map_or(Value::Null, |t| {
            Value::String(format_scaled(i128::from(t.0), inst.price_decimals))
        })
}

fn account_report(
    s: &Scenario,
    acct: &Account,
    engine: &RiskEngine,
    index: u32,
) -> Result<Value, MarginError> {
    let (table, marks): (&InstrumentTable, &MarkPrices) = (&s.instruments, &s.marks);
    let risk = acct.evaluate(table, marks, s.call_level)?;
    let mut positions = Vec::with_capacity(acct.positions().len());
    for (i, p) in acct.positions().iter().enumerate() {
        let inst = table
            .get(p.instrument())
            .ok_or(MarginError::UnknownInstrument {
                instrument: p.instrument().0,
            })?;
        let mark = marks.get(p.instrument()).ok_or(MarginError::NoMark {
            instrument: p.instrument().0,
        })?;
        let r = p.risk(inst, mark)?;
        let mut obj = serde_json::Map::new();
        obj.insert("symbol".into(), json!(inst.symbol.as_ref()));
        obj.insert(
            "qty".into(),
            json!(format_scaled_trimmed(
                i128::from(p.qty().0),
                inst.qty_decimals
            )),
        );
        obj.insert("mode".into(), json!(p.mode().as_str()));
        obj.insert(
            "entry_price".into(),
            p.entry_price_floor(table).map_or(Value::Null, |e| {
                json!(e.to_string_nearest(inst.price_decimals))
            }),
        );
        obj.insert(
            "mark_price".into(),
            json!(format_scaled(i128::from(mark.0), inst.price_decimals)),
        );
        obj.insert("upnl".into(), money(r.upnl));
        obj.insert(
            "notional".into(),
            json!(format_scaled_trimmed(r.notional, inst.notional_decimals())),
        );
        obj.insert("tier".into(), json!(r.tier + 1));
        obj.insert("mmr".into(), json!(r.mmr.to_decimal_string()));
        obj.insert("maintenance_margin".into(), money(r.maintenance));
        obj.insert(
            "liquidation_price".into(),
            price_value(acct.liquidation_price(i, table, marks)?, inst),
        );
        obj.insert(
            "bankruptcy_price".into(),
            price_value(acct.bankruptcy_price(i, table, marks)?, inst),
        );
        obj.insert(
            "adl_quantile".into(),
            engine
                .adl_quantile(index, p.instrument().0)
                .map_or(Value::Null, |q| json!(q)),
        );
        if p.mode() == MarginMode::Isolated {
            let iso = p.isolated_summary(&r)?;
            obj.insert("margin".into(), money(p.isolated_margin()));
            for (k, v) in summary_fields(&iso, iso.status(s.call_level)) {
                if k != "maintenance_margin" {
                    obj.insert(k.into(), v);
                }
            }
        }
        positions.push(Value::Object(obj));
    }
    let mut obj = serde_json::Map::new();
    obj.insert("id".into(), json!(acct.id()));
    obj.insert("wallet".into(), money(acct.wallet()));
    for (k, v) in summary_fields(&risk.cross, risk.cross_status) {
        obj.insert(k.into(), v);
    }
    obj.insert("worst_status".into(), json!(risk.worst.as_str()));
    obj.insert("positions".into(), Value::Array(positions));
    Ok(Value::Object(obj))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn table(doc: &Value) -> String {
    let mut out = String::new();
    let empty = Vec::new();
    let accounts = doc["accounts"].as_array().unwrap_or(&empty);
    for a in accounts {
        let _ = writeln!(
            out,
            "account {}  wallet {}  equity {}  MM {}  ratio {}  status {}  (worst {})",
            text(&a["id"]),
            text(&a["wallet"]),
            text(&a["equity"]),
            text(&a["maintenance_margin"]),
            text(&a["margin_ratio"]),
            text(&a["status"]),
            text(&a["worst_status"]),
        );
        let _ = writeln!(
            out,
            "  {:<16} {:>12} {:<8} {:>18} {:>20} {:>4} {:>8} {:>18} {:>14} {:>14} {:>3} {:>12}",
            "symbol",
            "qty",
            "mode",
            "upnl",
            "notional",
            "tier",
            "mmr",
            "maint. margin",
            "liq. price",
            "bankr. price",
            "adl",
            "status"
        );
        for p in a["positions"].as_array().unwrap_or(&empty) {
            let _ = writeln!(
                out,
                "  {:<16} {:>12} {:<8} {:>18} {:>20} {:>4} {:>8} {:>18} {:>14} {:>14} {:>3} {:>12}",
                text(&p["symbol"]),
                text(&p["qty"]),
                text(&p["mode"]),
                text(&p["upnl"]),
                text(&p["notional"]),
                text(&p["tier"]),
                text(&p["mmr"]),
                text(&p["maintenance_margin"]),
                text(&p["liquidation_price"]),
                text(&p["bankruptcy_price"]),
                text(&p["adl_quantile"]),
                p.get("status").map_or_else(|| "(cross)".to_string(), text),
            );
        }
    }
    out
}

/// Resident memory of this process in bytes (Linux `/proc/self/statm`), if available.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn run_bulk(scenario: &Scenario, path: &std::path::Path, as_json: bool) -> ExitCode {
    let rss_before = resident_bytes();
    let t0 = Instant::now();
    let accounts = match brink::bulk::load(path, &scenario.instruments) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let load_s = t0.elapsed().as_secs_f64();
    let rss_growth = rss_before
        .zip(resident_bytes())
        .map(|(a, b)| b.saturating_sub(a));
    let positions: usize = accounts.iter().map(|a| a.positions().len()).sum();
    let t1 = Instant::now();
    let mut counts = [0u64; 4];
    let mut errors = 0u64;
    for a in &accounts {
        match a.evaluate(&scenario.instruments, &scenario.marks, scenario.call_level) {
            Ok(r) => counts[r.worst as usize] += 1,
            Err(_) => errors += 1,
        }
    }
    let eval_s = t1.elapsed().as_secs_f64();
    let bytes = brink::bulk::heap_bytes(&accounts);
    let doc = json!({
        "accounts": accounts.len(),
        "positions": positions,
        "load_seconds": load_s,
        "evaluate_seconds": eval_s,
        "bytes_per_position": if positions > 0 { bytes as f64 / positions as f64 } else { 0.0 },
        "resident_bytes_per_position": rss_growth.map(|g| g as f64 / positions.max(1) as f64),
        "status": {
            "healthy": counts[MarginStatus::Healthy as usize],
            "margin_call": counts[MarginStatus::MarginCall as usize],
            "liquidatable": counts[MarginStatus::Liquidatable as usize],
            "bankrupt": counts[MarginStatus::Bankrupt as usize],
        },
        "evaluation_errors": errors,
    });
    if as_json {
        emit(serde_json::to_string_pretty(&doc).unwrap_or_default() + "\n")
    } else {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} accounts, {} positions: loaded in {:.3} s, evaluated in {:.3} s ({:.0} ns/account), {:.1} bytes/position ({:.1} resident)",
            accounts.len(),
            positions,
            load_s,
            eval_s,
            eval_s * 1e9 / accounts.len().max(1) as f64,
            doc["bytes_per_position"].as_f64().unwrap_or(0.0),
            doc["resident_bytes_per_position"]
                .as_f64()
                .unwrap_or(f64::NAN),
        );
        let _ = writeln!(
            out,
            "healthy {}  margin_call {}  liquidatable {}  bankrupt {}  errors {}",
            counts[0], counts[1], counts[2], counts[3], errors
        );
        emit(out)
    }
}

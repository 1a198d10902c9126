//! `report.json`: what a backtest read, decided and booked, and its money check.
//!
//! Keys are sorted (serde_json's map is ordered), money is shown with 8 decimals rounded to
//! nearest (display; the check itself is exact), quantities of exact integers (external cash,
//! position costs) in full. Nothing here depends on the machine or the wall clock, so two runs
//! of the same backtest write the same bytes.
//!
//! ```text
//! inputs          rows, ticks, fills fed back, rejected {reason: {count, first_line}}, limited
//! events          lines of events.jsonl per type (all five types present), alerts by name
//! risk            the risk stage's counters
//! insurance_fund  initial, final, fees, surplus, covered, bad_debt, series [{ts, fund}]
//! price_series    [{ts, low, high, close, liquidations}] (sampled, bounded)
//! money           check (pass/fail), ledger agreement, totals before/after, external cash,
//!                 identity residual (units of 2^-48) and bound
//! ```

use serde_json::{Map, Value, json};

use super::Outcome;
use super::ledger::Totals;
use crate::margin::{InstrumentTable, Money};
use crate::num::format_scaled;

/// Decimals of money in the report.
const MONEY_DECIMALS: u32 = 8;

fn money(m: Money) -> Value {
    Value::String(m.to_string_nearest(MONEY_DECIMALS))
}

/// Σ per-instrument exact amounts (`10^-notional_decimals` units each) as one decimal string
/// at the largest notional decimals; `null` on overflow.
fn exact_sum(table: &InstrumentTable, per_instrument: &[i128]) -> Value {
    let nd: Vec<u32> = table.iter().map(|(_, i)| i.notional_decimals()).collect();
    let scale = nd.iter().copied().max().unwrap_or(0);
    let mut total: Option<i128> = Some(0);
    for (v, d) in per_instrument.iter().zip(&nd) {
        total = total.and_then(|t| t.checked_add(v.checked_mul(10i128.checked_pow(scale - d)?)?));
    }
    total.map_or(Value::Null, |t| Value::String(format_scaled(t, scale)))
}

fn totals(table: &InstrumentTable, t: &Totals) -> Value {
    json!({
        "wallets": money(t.wallets),
        "isolated_margin": money(t.isolated),
        "insurance_fund": money(t.fund),
        "negative_wallets": money(t.negative_wallets),
        "position_cost": exact_sum(table, &t.cost),
        "net_position_lots": t.net_qty.iter().sum::<i64>(),
    })
}

/// Builds the report of `outcome`; `ticks_file` and `format` are shown as given.
pub fn build(table: &InstrumentTable, outcome: &Outcome, ticks_file: &str, format: &str) -> Value {
    let t = &outcome.tally;
    let mut rejected = Map::new();
    for (reason, (count, first_line)) in &t.rejected {
        rejected.insert(
            reason.clone(),
            json!({ "count": count, "first_line": first_line }),
        );
    }
    let mut events = Map::new();
    for kind in ["margin_call", "liquidation", "fill", "adl", "settlement"] {
        events.insert(kind.into(), json!(t.events.get(kind).copied().unwrap_or(0)));
    }
    let alerts: Map<String, Value> = t
        .alerts
        .iter()
        .map(|(k, v)| ((*k).to_string(), json!(v)))
        .collect();
    let c = &outcome.counters;
    let f = &outcome.fund;
    let pd = outcome.price_decimals;
    let px = |p: i64| format_scaled(i128::from(p), pd);
    let buckets = outcome.series.buckets();
    let fund_series: Vec<Value> = buckets
        .iter()
        .map(|b| json!({ "ts": b.ts_ns, "fund": money(b.fund) }))
        .collect();
    let price_series: Vec<Value> = buckets
        .iter()
        .map(|b| {
            json!({
                "ts": b.ts_ns,
                "low": px(b.low_px),
                "high": px(b.high_px),
                "close": px(b.close_px),
                "liquidations": b.sells + b.buys,
            })
        })
        .collect();
    let id = &outcome.identity;
    let residual = id.residual_scaled.map_or(Value::Null, |r| {
        Value::String(format_scaled(r, id.scale_decimals))
    });
    let ag = &outcome.agreement;
    json!({
        "ticks_file": ticks_file,
        "format": format,
        "symbol": outcome.symbol,
        "time": { "first_ns": t.first_ns, "last_ns": t.last_ns },
        "inputs": {
            "rows": t.rows,
            "ticks": t.ticks,
            "fills": t.fills,
            "rejected": rejected,
            "rejected_total": t.rejected.values().map(|v| v.0).sum::<u64>(),
            "limited": t.limited,
        },
        "events": events,
        "alerts": alerts,
        "risk": {
            "evaluations": c.evaluations,
            "margin_calls": c.margin_calls,
            "units_liquidated": c.liquidations,
            "orders": c.orders,
            "liquidation_fills": c.liquidation_fills,
            "fills_refused": c.fills_refused,
            "fund_takeovers": c.takeovers,
            "adl_closes": c.adl,
            "adl_shortfalls": c.adl_shortfall,
            "unevaluable": c.unevaluable,
            "settlements": c.settlements,
            "orders_unfilled_by_matcher": t.unfilled,
            "open_liquidations_at_end": outcome.open_jobs,
        },
        "insurance_fund": {
            "initial": money(f.initial()),
            "final": money(f.balance()),
            "fees": money(f.fees()),
            "surplus": money(f.surplus()),
            "covered": money(f.covered()),
            "bad_debt": money(f.uncovered()),
            "series": fund_series,
        },
        "bad_debt": money(f.uncovered()),
        "price_series": {
            "ticks_per_point": outcome.series.stride(),
            "points": price_series,
        },
        "money": {
            "check": if outcome.money_ok() { "pass" } else { "fail" },
            "ledger": {
                "accounts_checked": ag.accounts,
                "accounts_differing": ag.differing,
                "first_differing_account": ag.first_differing,
                "fund_agrees": ag.fund_agrees,
            },
            "before": totals(table, &outcome.before),
            "after": totals(table, &outcome.after),
            "external_cash": exact_sum(table, &id.external),
            "unpaid_loss": money(id.unpaid_loss),
            "identity": {
                "rule": "(wallets + isolated + fund - cost) before + external cash + unpaid loss - the same after, in units of 2^-48, within [0, bookings]",
                "residual_units": residual,
                "bookings": id.bookings,
                "holds": id.holds,
            },
        },
    })
}

//! The index agrees with brute force: on every tick of random price paths, the engine that
//! evaluates only the units whose band the tick left reaches exactly the same unit states and
//! emits exactly the same decisions as the engine that evaluates every unit.

use proptest::prelude::*;

use super::*;
use crate::margin::{
    Instrument, InstrumentKind, InstrumentSpec, MarginMode, Position, Qty, TierSpec,
};

/// BTC-like tiers (Binance's March-2021 BTCUSDT table, in units of 10^-(2+3)) with a price of 2
/// decimals and quantities of 3, and a smaller-tier alt.
pub(crate) fn test_table() -> InstrumentTable {
    let tier = |cap: i128, mmr: u64, imr: u64| TierSpec {
        min_notional: None,
        max_notional: cap * 100_000,
        mmr: Rate(mmr),
        imr: Rate(imr),
        amount: None,
    };
    let mut table = InstrumentTable::new();
    let specs = [
        (
            "BTCUSDT",
            vec![
                tier(50_000, 4_000_000, 8_000_000),
                tier(250_000, 5_000_000, 10_000_000),
                tier(1_000_000, 10_000_000, 20_000_000),
                tier(10_000_000, 25_000_000, 50_000_000),
                tier(20_000_000, 50_000_000, 100_000_000),
                tier(50_000_000, 100_000_000, 200_000_000),
            ],
        ),
        (
            "ETHUSDT",
            vec![
                tier(10_000, 5_000_000, 10_000_000),
                tier(100_000, 10_000_000, 20_000_000),
                tier(500_000, 50_000_000, 100_000_000),
            ],
        ),
        ("SOLUSDT", vec![tier(1_000_000_000, 20_000_000, 40_000_000)]),
    ];
    for (symbol, tiers) in specs {
        let inst = Instrument::new(InstrumentSpec {
            symbol: symbol.to_string(),
            kind: InstrumentKind::Perpetual,
            price_decimals: 2,
            qty_decimals: 3,
            tick: Price(1),
            min_qty: Qty(1),
            liquidation_fee: Rate(5_000_000),
            tiers,
        })
        .expect("valid test instrument");
        table.push(inst);
    }
    table
}

/// Base prices of the test instruments, in units of 0.01.
pub(crate) const BASE: [i64; 3] = [5_000_000, 300_000, 15_000];

#[derive(Debug, Clone)]
struct PositionPlan {
    instrument: u32,
    /// Notional in units of 1/1000 of the base price (so quantities are exact lots).
    lots: i64,
    long: bool,
    isolated: bool,
    /// Isolated margin as a fraction of notional, percent.
    margin_pct: u32,
}

fn account_strategy() -> impl Strategy<Value = (u32, Vec<PositionPlan>)> {
    let position = (0u32..3, 1i64..4_000, any::<bool>(), any::<bool>(), 1u32..60).prop_map(
        |(instrument, lots, long, isolated, margin_pct)| PositionPlan {
            instrument,
            lots,
            long,
            isolated,
            margin_pct,
        },
    );
    // Wallet as a percentage of the first position's notional: 1 % .. 120 %.
    (1u32..120, proptest::collection::vec(position, 1..4))
}

fn build_accounts(plans: &[(u32, Vec<PositionPlan>)]) -> Vec<Account> {
    plans
        .iter()
        .enumerate()
        .map(|(i, (wallet_pct, positions))| {
            let first = &positions[0];
            let notional = BASE[first.instrument as usize] as i128 * first.lots as i128 / 100;
            let wallet = Money::from_int((notional * *wallet_pct as i128 / 100 / 1000) as i64);
            let mut account = Account::new(1000 + i as u64, wallet);
            for plan in positions {
                if account
                    .position_index(InstrumentId(plan.instrument))
                    .is_some()
                {
                    continue;
                }
                let qty = if plan.long { plan.lots } else { -plan.lots };
                let entry = Price(BASE[plan.instrument as usize]);
                let (mode, margin) = if plan.isolated {
                    let notional = BASE[plan.instrument as usize] as i128 * plan.lots as i128;
                    let m = notional * plan.margin_pct as i128 / 100 / 100_000;
                    (MarginMode::Isolated, Money::from_int(m as i64 + 1))
                } else {
                    (MarginMode::Cross, Money::ZERO)
                };
                let p =
                    Position::open(InstrumentId(plan.instrument), Qty(qty), entry, mode, margin)
                        .expect("valid test position");
                account
                    .push_position(p)
                    .expect("one position per instrument");
            }
            account
        })
        .collect()
}

fn marks() -> MarkPrices {
    let mut m = MarkPrices::new(3);
    for (i, p) in BASE.iter().enumerate() {
        m.set(InstrumentId(i as u32), Price(*p));
    }
    m
}

/// A price path step: which instrument and a move in basis points (jumps up to ±50 %).
fn step_strategy() -> impl Strategy<Value = (u32, i32)> {
    (
        0u32..3,
        prop_oneof![
            8 => -150i32..150,
            2 => -1_500i32..1_500,
            1 => -5_000i32..5_000,
        ],
    )
}

fn run_both(accounts: Vec<Account>, steps: &[(u32, i32)]) -> Result<(), TestCaseError> {
    run_both_with(accounts, steps, RiskConfig::default())
}

fn run_both_with(
    accounts: Vec<Account>,
    steps: &[(u32, i32)],
    config: RiskConfig,
) -> Result<(), TestCaseError> {
    let table = test_table();
    let mut fast = RiskEngine::new(
        table.clone(),
        marks(),
        accounts.clone(),
        config,
        Scan::Index,
    );
    let mut slow = RiskEngine::new(table, marks(), accounts, config, Scan::All);
    prop_assert_eq!(
        fast.unit_states().collect::<Vec<_>>(),
        slow.unit_states().collect::<Vec<_>>()
    );
    let mut prices = BASE;
    for (seq, &(instrument, bps)) in steps.iter().enumerate() {
        let p = &mut prices[instrument as usize];
        *p = (*p + *p * bps as i64 / 10_000).max(1);
        let mut got = Vec::new();
        let mut want = Vec::new();
        fast.on_tick(instrument, Price(*p), seq as u64, &mut |o| got.push(o));
        slow.on_tick(instrument, Price(*p), seq as u64, &mut |o| want.push(o));
        got.sort_by_key(|o| format!("{o:?}"));
        want.sort_by_key(|o| format!("{o:?}"));
        prop_assert_eq!(&got, &want, "outputs differ at step {}", seq);
        prop_assert_eq!(
            fast.unit_states().collect::<Vec<_>>(),
            slow.unit_states().collect::<Vec<_>>(),
            "states differ at step {}",
            seq
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn index_flags_exactly_what_brute_force_flags(
        plans in proptest::collection::vec(account_strategy(), 1..40),
        steps in proptest::collection::vec(step_strategy(), 1..120),
    ) {
        run_both(build_accounts(&plans), &steps)?;
    }

    #[test]
    fn index_flags_exactly_what_brute_force_flags_with_volatility_scaling(
        plans in proptest::collection::vec(account_strategy(), 1..40),
        steps in proptest::collection::vec(step_strategy(), 1..120),
    ) {
        // Every tick may rescale (time 0, interval 0), in steps of 0.25 between 1 and 3.
        let config = RiskConfig {
            vol_scaling: Some(vol::VolScaling {
                reference_e9: 2_000_000,
                interval_ns: 0,
                ..vol::VolScaling::default()
            }),
            ..RiskConfig::default()
        };
        run_both_with(build_accounts(&plans), &steps, config)?;
    }
}

#[test]
fn the_index_touches_few_units_on_small_moves() {
    // 2,000 accounts at 5x-20x: a 0.1 % move must not evaluate most of them.
    let plans: Vec<(u32, Vec<PositionPlan>)> = (0..2000u32)
        .map(|i| {
            (
                5 + i % 15,
                vec![PositionPlan {
                    instrument: 0,
                    lots: 100 + i as i64,
                    long: i % 2 == 0,
                    isolated: i % 3 == 0,
                    margin_pct: 5 + i % 15,
                }],
            )
        })
        .collect();
    let mut engine = RiskEngine::new(
        test_table(),
        marks(),
        build_accounts(&plans),
        RiskConfig::default(),
        Scan::Index,
    );
    let before = engine.counters().evaluations;
    let mut p = BASE[0];
    for i in 0..100 {
        p += if i % 2 == 0 { 50 } else { -50 };
        engine.on_tick(0, Price(p), i, &mut |_| {});
    }
    let evaluated = engine.counters().evaluations - before;
    assert!(
        evaluated < 2000,
        "100 ticks of ±0.01 % evaluated {evaluated} units out of 2000"
    );
}

#[test]
fn a_crash_calls_then_liquidates_longs_and_spares_shorts() {
    let plans = vec![
        (
            10,
            vec![PositionPlan {
                instrument: 0,
                lots: 1000,
                long: true,
                isolated: false,
                margin_pct: 0,
            }],
        ),
        (
            10,
            vec![PositionPlan {
                instrument: 0,
                lots: 1000,
                long: false,
                isolated: false,
                margin_pct: 0,
            }],
        ),
    ];
    let mut engine = RiskEngine::new(
        test_table(),
        marks(),
        build_accounts(&plans),
        RiskConfig::default(),
        Scan::Index,
    );
    let mut outs = Vec::new();
    // Wallet 10 % of notional: equity hits 1.25·MM near −9.5 %, MM near −9.6 %.
    let mut p = BASE[0];
    let mut seq = 0;
    while p > BASE[0] * 85 / 100 {
        p -= 500;
        seq += 1;
        engine.on_tick(0, Price(p), seq, &mut |o| outs.push((seq, o)));
    }
    let calls: Vec<_> = outs
        .iter()
        .filter(|(_, o)| matches!(o, Output::MarginCall(_)))
        .collect();
    assert_eq!(calls.len(), 1, "{outs:?}");
    assert!(matches!(calls[0].1, Output::MarginCall(c) if c.account == 1000));
    assert_eq!(engine.unit_state(0), Some(UnitState::Liquidating));
    assert_eq!(engine.unit_state(1), Some(UnitState::Healthy));
    assert_eq!(engine.counters().liquidations, 1);
}

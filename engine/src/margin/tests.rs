//! Published cases and unit tests of the margin model.

use super::*;
use crate::num::parse_scaled;

/// Binance USDⓈ-M BTCUSDT tiers of March 2021 (cap, MMR, IMR), maintenance amounts computed.
pub(crate) const BTC_2021: [(&str, &str, &str); 6] = [
    ("50000", "0.004", "0.008"),
    ("250000", "0.005", "0.01"),
    ("1000000", "0.01", "0.02"),
    ("10000000", "0.025", "0.05"),
    ("20000000", "0.05", "0.1"),
    ("50000000", "0.1", "0.2"),
];

/// The published maintenance amounts of those tiers.
const BTC_2021_AMOUNTS: [&str; 6] = ["0", "50", "1300", "16300", "266300", "1266300"];

pub(crate) fn instrument(
    symbol: &str,
    pd: u32,
    qd: u32,
    tiers: &[(&str, &str, &str)],
) -> Instrument {
    let nd = pd + qd;
    Instrument::new(InstrumentSpec {
        symbol: symbol.to_string(),
        kind: InstrumentKind::Perpetual,
        price_decimals: pd,
        qty_decimals: qd,
        tick: Price(1),
        min_qty: Qty(1),
        liquidation_fee: Rate::parse("0.005").unwrap(),
        tiers: tiers
            .iter()
            .map(|(cap, mmr, imr)| TierSpec {
                min_notional: None,
                max_notional: parse_scaled(cap, nd).unwrap(),
                mmr: Rate::parse(mmr).unwrap(),
                imr: Rate::parse(imr).unwrap(),
                amount: None,
            })
            .collect(),
    })
    .unwrap()
}

fn btc_table() -> (InstrumentTable, MarkPrices, InstrumentId) {
    let mut table = InstrumentTable::new();
    let id = table.push(instrument("BTCUSDT", 2, 3, &BTC_2021)).unwrap();
    let mut marks = MarkPrices::new(1);
    assert!(marks.set(id, Price(5_000_000)));
    (table, marks, id)
}

fn money(text: &str) -> Money {
    Money::from_scaled_floor(parse_scaled(text, 8).unwrap(), 8).unwrap()
}

fn price_text(p: Price) -> String {
    crate::num::format_scaled(i128::from(p.0), 2)
}

#[test]
fn computed_maintenance_amounts_match_the_published_ones() {
    let (table, _, id) = btc_table();
    let inst = table.get(id).unwrap();
    for (tier, published) in inst.tiers().iter().zip(BTC_2021_AMOUNTS) {
        assert_eq!(tier.amount, parse_scaled(published, 5 + 9).unwrap());
    }
}

#[test]
fn published_cross_case_liquidates_at_25100_40() {
    let (table, marks, id) = btc_table();
    let mut acct = Account::new(1, Money::from_int(500));
    acct.push_position(
        Position::open(
            id,
            Qty(20),
            Price(5_000_000),
            MarginMode::Cross,
            Money::ZERO,
        )
        .unwrap(),
    )
    .unwrap();
    let lp = acct.liquidation_price(0, &table, &marks).unwrap().unwrap();
    let inst = table.get(id).unwrap();
    assert_eq!(price_text(to_tick_nearest(lp, inst).unwrap()), "25100.40");
    // The conservative tick for a long is above.
    assert_eq!(
        price_text(to_tick_against(lp, inst, 1).unwrap()),
        "25100.41"
    );
    let risk = acct.evaluate(&table, &marks, CallLevel::default()).unwrap();
    assert_eq!(risk.cross.equity, Money::from_int(500));
    assert_eq!(risk.cross.maintenance, Money::from_int(4));
    assert_eq!(risk.cross_status, MarginStatus::Healthy);
    // Bankruptcy: (1000 − 500) / 0.02 = 25,000 exactly.
    let bp = acct.bankruptcy_price(0, &table, &marks).unwrap().unwrap();
    assert_eq!(bp, Money::from_int(25_000));
}

#[test]
fn published_isolated_case_liquidates_at_45180_72() {
    let (table, marks, id) = btc_table();
    let mut acct = Account::new(1, Money::ZERO);
    acct.push_position(
        Position::open(
            id,
            Qty(1000),
            Price(5_000_000),
            MarginMode::Isolated,
            Money::from_int(5000),
        )
        .unwrap(),
    )
    .unwrap();
    let lp = acct.liquidation_price(0, &table, &marks).unwrap().unwrap();
    let inst = table.get(id).unwrap();
    assert_eq!(price_text(to_tick_nearest(lp, inst).unwrap()), "45180.72");
    let bp = acct.bankruptcy_price(0, &table, &marks).unwrap().unwrap();
    assert_eq!(bp, Money::from_int(45_000));
}

/// `(num, den)` of the textbook formula with one given tier, in currency per BTC.
fn textbook_lp(
    wb: i128,
    cum: i128,
    q_milli: i128,
    entry: i128,
    mmr_e9: i128,
    side: i128,
) -> (i128, i128) {
    // Numerator in 10^-12 currency: wb·10^12 + cum·10^12 − side·|q|·EP, with |q|·EP in 10^-3.
    let num = (wb + cum) * 1_000_000_000_000 - side * q_milli * entry * 1_000_000_000;
    // Denominator in 10^-12: |q|·(MMR − side), |q| in 10^-3 and MMR in 10^-9.
    let den = q_milli * (mmr_e9 - side * 1_000_000_000);
    (num, den)
}

#[test]
fn tier_re_evaluation_moves_the_liquidation_price_to_the_lower_tier() {
    // Isolated long 5.5 BTC at 50,000 with 50,000 margin: notional 275,000 is tier 3 (1 %), but
    // at the tier-3 root the notional falls into tier 2 (0.5 %, amount 50).
    let (table, marks, id) = btc_table();
    let mut acct = Account::new(1, Money::ZERO);
    acct.push_position(
        Position::open(
            id,
            Qty(5500),
            Price(5_000_000),
            MarginMode::Isolated,
            Money::from_int(50_000),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(acct.position_risk(0, &table, &marks).unwrap().tier, 2);
    let (n3, d3) = textbook_lp(50_000, 1300, 5500, 50_000, 10_000_000, 1);
    let (n2, d2) = textbook_lp(50_000, 50, 5500, 50_000, 5_000_000, 1);
    // Tier 3's root has a notional (5.5·P) below 250,000, outside tier 3; tier 2's is inside.
    assert!(5500 * n3 / d3 < 250_000_000);
    assert!(5500 * n2 / d2 <= 250_000_000 && 5500 * n2 / d2 > 50_000_000);
    let lp = acct.liquidation_price(0, &table, &marks).unwrap().unwrap();
    let inst = table.get(id).unwrap();
    let got = to_tick_nearest(lp, inst).unwrap();
    // Nearest cent of n2/d2.
    let expected = (200 * n2 / d2 + 1) / 2;
    assert_eq!(i128::from(got.0), expected);
}

#[test]
fn short_isolated_and_fully_collateralised_long() {
    let (table, marks, id) = btc_table();
    let mut acct = Account::new(1, Money::from_int(1_000_000));
    acct.push_position(
        Position::open(
            id,
            Qty(-1000),
            Price(5_000_000),
            MarginMode::Isolated,
            Money::from_int(5000),
        )
        .unwrap(),
    )
    .unwrap();
    let lp = acct.liquidation_price(0, &table, &marks).unwrap().unwrap();
    // Tier 1's root (55,000 / 1.004 ≈ 54,781) has a notional above 50,000, so tier 2 applies.
    let (n1, d1) = textbook_lp(5000, 0, 1000, 50_000, 4_000_000, -1);
    assert!(n1 / d1 > 50_000);
    let (n, d) = textbook_lp(5000, 50, 1000, 50_000, 5_000_000, -1);
    assert!(n / d > 50_000 && n / d <= 250_000);
    let inst = table.get(id).unwrap();
    assert_eq!(
        i128::from(to_tick_nearest(lp, inst).unwrap().0),
        (200 * n / d + 1) / 2
    );
    // The short's conservative tick is below.
    assert!(to_tick_against(lp, inst, -1).unwrap() <= to_tick_nearest(lp, inst).unwrap());
    // A 1 BTC cross long backed by a 1,000,000 wallet is never liquidated: no price.
    let mut rich = Account::new(2, Money::from_int(1_000_000));
    rich.push_position(
        Position::open(
            id,
            Qty(1000),
            Price(5_000_000),
            MarginMode::Cross,
            Money::ZERO,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(rich.liquidation_price(0, &table, &marks).unwrap(), None);
    assert_eq!(rich.bankruptcy_price(0, &table, &marks).unwrap(), None);
}

#[test]
fn maintenance_is_continuous_at_every_published_border() {
    let (table, _, id) = btc_table();
    let inst = table.get(id).unwrap();
    let tiers = inst.tiers();
    for w in tiers.windows(2) {
        let border = w[0].max_notional;
        assert_eq!(
            w[0].maintenance_exact(border),
            w[1].maintenance_exact(border)
        );
    }
}

#[test]
fn statuses_follow_the_thresholds() {
    let level = CallLevel::default();
    let s = |e: i64, mm: i64| {
        MarginSummary {
            equity: Money::from_int(e),
            maintenance: Money::from_int(mm),
            initial: Money::ZERO,
        }
        .status(level)
    };
    assert_eq!(s(100, 0), MarginStatus::Healthy);
    assert_eq!(s(-1, 0), MarginStatus::Bankrupt);
    assert_eq!(s(100, 79), MarginStatus::Healthy);
    assert_eq!(s(100, 80), MarginStatus::MarginCall);
    assert_eq!(s(100, 100), MarginStatus::Liquidatable);
    assert_eq!(s(0, 10), MarginStatus::Bankrupt);
}

#[test]
fn fills_realise_exact_pnl_and_conserve_money() {
    let (table, _, id) = btc_table();
    let mut acct = Account::new(7, Money::from_int(1000));
    let fill = |qty, price, fee: &str| Fill {
        instrument: id,
        qty: Qty(qty),
        price: Price(price),
        fee: money(fee),
        mode: MarginMode::Cross,
    };
    let o = acct.apply_fill(&table, fill(3, 5_000_000, "0.06")).unwrap();
    assert_eq!((o.opened, o.closed, o.realised_exact), (Qty(3), Qty(0), 0));
    // Sell 2 of 3 at 50,100: realised = 0.002·100 = 0.2 exactly (10^-5 units: 20,000).
    let o = acct
        .apply_fill(&table, fill(-2, 5_010_000, "0.04"))
        .unwrap();
    assert_eq!(o.realised_exact, 20_000);
    assert_eq!((o.closed, o.opened), (Qty(-2), Qty(0)));
    assert_eq!(acct.positions()[0].qty(), Qty(1));
    // Flip: sell 2 at 49,900: closes 1 (−0.1), opens a 0.001 short.
    let o = acct.apply_fill(&table, fill(-2, 4_990_000, "0")).unwrap();
    assert_eq!(o.realised_exact, -10_000);
    assert_eq!((o.closed, o.opened), (Qty(-1), Qty(-1)));
    assert_eq!(acct.positions()[0].cost(), -4_990_000);
    let expected = money("1000")
        .checked_sub(money("0.1"))
        .and_then(|m| m.checked_add(Money::from_scaled_floor(20_000, 5).unwrap()))
        .and_then(|m| m.checked_add(Money::from_scaled_floor(-10_000, 5).unwrap()))
        .unwrap();
    assert_eq!(acct.wallet(), expected);
}

#[test]
fn isolated_losses_stop_at_the_margin() {
    let (table, _, id) = btc_table();
    let mut acct = Account::new(1, Money::from_int(10_000));
    acct.push_position(
        Position::open(
            id,
            Qty(1000),
            Price(5_000_000),
            MarginMode::Isolated,
            Money::from_int(1000),
        )
        .unwrap(),
    )
    .unwrap();
    // Closed at 45,000: a 5,000 loss against 1,000 margin.
    let o = acct
        .apply_fill(
            &table,
            Fill {
                instrument: id,
                qty: Qty(-1000),
                price: Price(4_500_000),
                fee: Money::ZERO,
                mode: MarginMode::Cross,
            },
        )
        .unwrap();
    assert_eq!(o.realised_pnl, Money::from_int(-5000));
    assert_eq!(o.isolated_shortfall, Money::from_int(4000));
    assert_eq!(o.released_margin, Money::ZERO);
    assert_eq!(acct.wallet(), Money::from_int(10_000));
    assert!(acct.positions().is_empty());
}

#[test]
fn bad_tier_tables_are_refused_with_the_reason() {
    let spec = |tiers: Vec<TierSpec>| InstrumentSpec {
        symbol: "X".into(),
        kind: InstrumentKind::Perpetual,
        price_decimals: 2,
        qty_decimals: 3,
        tick: Price(1),
        min_qty: Qty(1),
        liquidation_fee: Rate(0),
        tiers,
    };
    let t = |cap: i128, mmr: u64, amount: Option<i128>| TierSpec {
        min_notional: None,
        max_notional: cap,
        mmr: Rate(mmr),
        imr: Rate(mmr * 2),
        amount,
    };
    assert!(matches!(
        Instrument::new(spec(vec![])),
        Err(InstrumentError::NoTiers)
    ));
    assert!(matches!(
        Instrument::new(spec(vec![t(100, 4, None), t(100, 5, None)])),
        Err(InstrumentError::Unordered { tier: 1, .. })
    ));
    assert!(matches!(
        Instrument::new(spec(vec![t(100, 5, None), t(200, 4, None)])),
        Err(InstrumentError::Rate {
            tier: 1,
            field: "mmr",
            ..
        })
    ));
    assert!(matches!(
        Instrument::new(spec(vec![t(100, 4, None), t(200, 5, Some(7))])),
        Err(InstrumentError::Discontinuous { tier: 1, .. })
    ));
    let mut overlap = t(200, 5, None);
    overlap.min_notional = Some(50);
    assert!(matches!(
        Instrument::new(spec(vec![t(100, 4, None), overlap])),
        Err(InstrumentError::Overlap { tier: 1, .. })
    ));
}

/// A magnitude spread over every power of two below `2^bits` (0 included), so that small,
/// realistic and overflowing amounts all come up.
fn spread(rng: &mut rand::rngs::StdRng, bits: u32) -> u128 {
    use rand::Rng;
    let b = rng.random_range(0..=bits);
    if b == 0 {
        return 0;
    }
    let top = 1u128 << (b - 1);
    top | (rng.random::<u128>() & (top - 1))
}

#[test]
fn the_lean_bankruptcy_price_equals_the_full_one_bit_for_bit() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let mut rng = StdRng::seed_from_u64(11);
    let (mut prices, mut nones, mut errors) = (0u32, 0u32, 0u32);
    for _ in 0..200_000 {
        let mut table = InstrumentTable::new();
        let mut marks = MarkPrices::new(3);
        for i in 0..3u32 {
            let (pd, qd) = (rng.random_range(0..=12), rng.random_range(0..=12));
            let (mut cap, mut mmr) = (0i128, 0u64);
            let tiers: Vec<TierSpec> = (0..rng.random_range(1..4))
                .map(|_| {
                    cap += spread(&mut rng, 100) as i128 + 1;
                    mmr = (mmr + rng.random_range(0..300_000_000)).min(999_999_999);
                    TierSpec {
                        min_notional: None,
                        max_notional: cap,
                        mmr: Rate(mmr),
                        imr: Rate(mmr + rng.random_range(0..3_000_000_000)),
                        amount: None,
                    }
                })
                .collect();
            let spec = InstrumentSpec {
                symbol: format!("I{i}"),
                kind: InstrumentKind::Perpetual,
                price_decimals: pd,
                qty_decimals: qd,
                tick: Price(1),
                min_qty: Qty(1),
                liquidation_fee: Rate(0),
                tiers,
            };
            let Ok(inst) = Instrument::new(spec) else {
                continue;
            };
            table.push(inst).unwrap();
            // Now and then an instrument without a mark.
            if rng.random_range(0..20) != 0 {
                let mark = (spread(&mut rng, 63) as i64).max(1);
                marks.set(InstrumentId(table.len() as u32 - 1), Price(mark));
            }
        }
        let wallet_bits = spread(&mut rng, 126) as i128;
        let wallet = Money::from_bits(if rng.random_bool(0.3) {
            -wallet_bits
        } else {
            wallet_bits
        });
        let mut acct = Account::new(1, wallet);
        for i in 0..table.len() as u32 {
            if rng.random_bool(0.2) {
                continue;
            }
            let qty = (spread(&mut rng, 62) as i64).max(1);
            let cost = (spread(&mut rng, 125) as i128).max(1);
            let (qty, cost) = if rng.random_bool(0.5) {
                (qty, cost)
            } else {
                (-qty, -cost)
            };
            let (mode, margin) = if rng.random_bool(0.3) {
                (
                    MarginMode::Isolated,
                    Money::from_bits(spread(&mut rng, 120) as i128),
                )
            } else {
                (MarginMode::Cross, Money::ZERO)
            };
            let p = Position::from_parts(InstrumentId(i), Qty(qty), cost, mode, margin).unwrap();
            acct.push_position(p).unwrap();
        }
        for i in 0..acct.positions().len() + 1 {
            let full = acct.bankruptcy_price(i, &table, &marks);
            match full {
                Ok(Some(_)) => prices += 1,
                Ok(None) => nones += 1,
                Err(_) => errors += 1,
            }
            assert_eq!(
                acct.bankruptcy_price_lean(i, &table, &marks),
                full.ok().flatten(),
                "position {i} of {acct:?}"
            );
        }
    }
    // Every outcome came up many times.
    assert!(
        prices > 10_000 && nones > 10_000 && errors > 10_000,
        "{prices} prices, {nones} none, {errors} errors"
    );
}

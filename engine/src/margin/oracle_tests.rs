//! Property tests of the margin model against an exact integer oracle.
//!
//! The oracle works in exact `i128` multiples of `V = 10^-14 / 2^48` currency units, a unit in
//! which wallet bits, exact uPnL (`10^-5`), exact margins (`10^-14`) and `qty · price-bits` are all
//! integers, for instruments with 2 price and 3 quantity decimals. Maintenance margin is computed
//! independently of the tier lookup, as the upper envelope `max_t(n·MMR_t − cum_t)`.

use proptest::prelude::*;

use super::*;

const ULP_V: i128 = 100_000_000_000_000; // one Money ulp (2^-48) in V units: 10^14.
const TWO48: i128 = 1 << 48;

#[derive(Debug, Clone)]
struct Case {
    tiers: Vec<Vec<(i128, u64)>>, // per instrument: (cap in 10^-5, mmr in 10^-9)
    wallet_cents: i64,
    positions: Vec<(usize, i64, i64, bool, i64)>, // (instrument, qty, entry, isolated, margin cents)
    marks: Vec<i64>,
}

fn tier_table() -> impl Strategy<Value = Vec<(i128, u64)>> {
    prop::collection::vec((1_000i128..400_000, 0u64..15_000_000), 1..5).prop_map(|steps| {
        let (mut cap, mut mmr) = (0i128, 1_000_000u64);
        steps
            .into_iter()
            .map(|(dcap, dmmr)| {
                cap += dcap * 100_000;
                mmr += dmmr;
                (cap, mmr)
            })
            .collect()
    })
}

fn case() -> impl Strategy<Value = Case> {
    let pos = (
        -100_000i64..100_000,
        10_000i64..20_000_000,
        prop::bool::weighted(0.3),
        0i64..100_000_000,
    )
        .prop_filter("non-zero qty", |p| p.0 != 0);
    (
        prop::collection::vec(tier_table(), 3),
        0i64..1_000_000_000,
        prop::collection::vec(pos, 1..=3),
        prop::collection::vec(10_000i64..20_000_000, 3),
    )
        .prop_map(|(tiers, wallet_cents, ps, marks)| Case {
            tiers,
            wallet_cents,
            positions: ps
                .into_iter()
                .enumerate()
                .map(|(i, (q, e, iso, m))| (i, q, e, iso, m))
                .collect(),
            marks,
        })
}

fn build(c: &Case) -> (InstrumentTable, MarkPrices, Account) {
    let mut table = InstrumentTable::new();
    for (i, tiers) in c.tiers.iter().enumerate() {
        let spec = InstrumentSpec {
            symbol: format!("I{i}"),
            kind: InstrumentKind::Perpetual,
            price_decimals: 2,
            qty_decimals: 3,
            tick: Price(1),
            min_qty: Qty(1),
            liquidation_fee: Rate(0),
            tiers: tiers
                .iter()
                .map(|&(cap, mmr)| TierSpec {
                    min_notional: None,
                    max_notional: cap,
                    mmr: Rate(mmr),
                    imr: Rate(mmr * 2),
                    amount: None,
                })
                .collect(),
        };
        table.push(Instrument::new(spec).unwrap()).unwrap();
    }
    let mut marks = MarkPrices::new(3);
    for (i, &m) in c.marks.iter().enumerate() {
        assert!(marks.set(InstrumentId(i as u32), Price(m)));
    }
    let wallet = Money::from_scaled_floor(i128::from(c.wallet_cents), 2).unwrap();
    let mut acct = Account::new(1, wallet);
    for &(i, q, e, iso, m) in &c.positions {
        let (mode, margin) = if iso {
            (
                MarginMode::Isolated,
                Money::from_scaled_floor(i128::from(m), 2).unwrap(),
            )
        } else {
            (MarginMode::Cross, Money::ZERO)
        };
        acct.push_position(
            Position::open(InstrumentId(i as u32), Qty(q), Price(e), mode, margin).unwrap(),
        )
        .unwrap();
    }
    (table, marks, acct)
}

/// Exact cumulative amounts (10^-14) of a tier table, Binance's way.
fn amounts(tiers: &[(i128, u64)]) -> Vec<i128> {
    let (mut floor, mut prev, mut cum) = (0i128, 0u64, 0i128);
    tiers
        .iter()
        .map(|&(cap, mmr)| {
            cum += floor * i128::from(mmr - prev);
            (floor, prev) = (cap, mmr);
            cum
        })
        .collect()
}

/// Exact MM in V of a notional given in V·10^-9 ... expressed as `notional_v_rate(mmr)`.
fn mm_envelope_v(tiers: &[(i128, u64)], notional_times_rate: impl Fn(u64) -> i128) -> i128 {
    let cums = amounts(tiers);
    tiers
        .iter()
        .zip(cums)
        .map(|(&(_, mmr), cum)| notional_times_rate(mmr) - cum * TWO48)
        .max()
        .unwrap()
}

/// Oracle values of position `j` at its mark: (uPnL in V, MM in V).
fn oracle_position(c: &Case, j: usize) -> (i128, i128) {
    let (i, q, e, _, _) = c.positions[j];
    let mark = i128::from(c.marks[i]);
    let (q, e) = (i128::from(q), i128::from(e));
    let upnl = (q * mark - q * e) * 1_000_000_000 * TWO48;
    let notional = q.abs() * mark; // 10^-5
    let mm = mm_envelope_v(&c.tiers[i], |mmr| notional * i128::from(mmr) * TWO48);
    (upnl, mm)
}

fn margin_v(cents: i64) -> i128 {
    Money::from_scaled_floor(i128::from(cents), 2)
        .unwrap()
        .to_bits()
        * ULP_V
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn equity_and_maintenance_are_within_bound_and_conservative(c in case()) {
        let (table, marks, acct) = build(&c);
        let s = acct.cross_summary(&table, &marks).unwrap();
        let (mut e, mut mm, mut n) = (margin_v(c.wallet_cents), 0i128, 0i128);
        for (j, p) in c.positions.iter().enumerate() {
            if !p.3 {
                let (u, m) = oracle_position(&c, j);
                e += u;
                mm += m;
                n += 1;
            }
        }
        let e_got = s.equity.to_bits() * ULP_V;
        let mm_got = s.maintenance.to_bits() * ULP_V;
        prop_assert!(e_got <= e && e - e_got <= n * ULP_V, "equity {e_got} vs {e}");
        prop_assert!(mm_got >= mm && mm_got - mm <= n * ULP_V, "mm {mm_got} vs {mm}");
        // The status is never better than the exact one (call level 0.8).
        let exact_status = if mm == 0 {
            if e < 0 { MarginStatus::Bankrupt } else { MarginStatus::Healthy }
        } else if e <= 0 {
            MarginStatus::Bankrupt
        } else if e <= mm {
            MarginStatus::Liquidatable
        } else if mm * 10 >= e * 8 {
            MarginStatus::MarginCall
        } else {
            MarginStatus::Healthy
        };
        prop_assert!(s.status(CallLevel::default()) >= exact_status);
    }

    #[test]
    fn liquidation_price_solves_equity_equals_mm_on_the_unfavourable_side(c in case(), pick in 0usize..3) {
        let (table, marks, acct) = build(&c);
        let i = pick % c.positions.len();
        let (inst, q, e, iso, m) = c.positions[i];
        let (q, e) = (i128::from(q), i128::from(e));
        // Base W' and W'' in V.
        let (mut w_liq, mut w_bank, mut n) = if iso {
            (margin_v(m), margin_v(m), 1i128)
        } else {
            let w = margin_v(c.wallet_cents);
            (w, w, 1i128)
        };
        if !iso {
            for (j, p) in c.positions.iter().enumerate() {
                if j != i && !p.3 {
                    let (u, mm) = oracle_position(&c, j);
                    w_liq += u - mm;
                    w_bank += u;
                    n += 1;
                }
            }
        }
        let cost_v = q * e * 1_000_000_000 * TWO48;
        let q_btc_ceil = q.abs() / 1000 + 1;
        // f(P) = W' + q·P − C − MM_i(P) for P given as Money bits.
        let f = |bits: i128| {
            let qp = q * bits * 100_000_000_000;
            let mm = mm_envelope_v(&c.tiers[inst], |mmr| q.abs() * bits * 100 * i128::from(mmr));
            w_liq + qp - cost_v - mm
        };
        // |D| = |q|·(1 ∓ MMR) < 2|q|: the bound 2n·ulp + |D|·ulp of the module docs.
        let bound = (2 * n + 2 * q_btc_ceil) * ULP_V;
        match acct.liquidation_price(i, &table, &marks).unwrap() {
            Some(lp) => {
                let v = f(lp.to_bits());
                prop_assert!(v >= 0, "favourable side: f = {v}");
                prop_assert!(v <= bound, "f = {v} > {bound}");
            }
            None if q > 0 => prop_assert!(f(0) >= 0),
            None => prop_assert!(f(0) <= bound),
        }
        let g = |bits: i128| w_bank + q * bits * 100_000_000_000 - cost_v;
        // n·ulp + |q|·ulp.
        let bound = (n + q_btc_ceil) * ULP_V;
        match acct.bankruptcy_price(i, &table, &marks).unwrap() {
            Some(bp) => {
                let v = g(bp.to_bits());
                prop_assert!(v >= 0 && v <= bound, "g = {v}");
            }
            None if q > 0 => prop_assert!(g(0) >= 0),
            None => prop_assert!(g(0) <= bound),
        }
    }

    #[test]
    fn maintenance_is_continuous_and_equals_the_envelope(tiers in tier_table(), units in 0i128..3_000_000_000_000) {
        let c = Case { tiers: vec![tiers.clone(); 3], wallet_cents: 0, positions: vec![], marks: vec![1; 3] };
        let (table, _, _) = build(&c);
        let inst = table.get(InstrumentId(0)).unwrap();
        for w in inst.tiers().windows(2) {
            let b = w[0].max_notional;
            prop_assert_eq!(w[0].maintenance_exact(b), w[1].maintenance_exact(b));
            // One unit either side moves MM by at most one unit times the larger MMR.
            let below = w[0].maintenance_exact(b - 1).unwrap();
            let above = w[1].maintenance_exact(b + 1).unwrap();
            prop_assert!(above - below <= 2 * i128::from(w[1].mmr.0));
        }
        let t = &inst.tiers()[inst.tier_index(units)];
        let envelope = mm_envelope_v(&tiers, |mmr| units * i128::from(mmr) * TWO48);
        prop_assert_eq!(t.maintenance_exact(units).unwrap() * TWO48, envelope);
    }

    #[test]
    fn fills_conserve_money_exactly(
        fills in prop::collection::vec((-5_000i64..5_000, 1_000_000i64..9_000_000, 0i64..1000), 1..20),
        mark in 1_000_000i64..9_000_000,
    ) {
        let c = Case { tiers: vec![vec![(1_000_000_000_000, 5_000_000)]; 3], wallet_cents: 0, positions: vec![], marks: vec![mark; 3] };
        let (table, _, _) = build(&c);
        let id = InstrumentId(0);
        let mut acct = Account::new(1, Money::from_int(1_000_000));
        let (mut realised, mut cash, mut wallet) = (0i128, 0i128, acct.wallet());
        for (q, px, fee_cents) in fills {
            if q == 0 { continue; }
            let fee = Money::from_scaled_floor(i128::from(fee_cents), 2).unwrap();
            let o = acct.apply_fill(&table, Fill { instrument: id, qty: Qty(q), price: Price(px), fee, mode: MarginMode::Cross }).unwrap();
            prop_assert_eq!(o.closed.0 + o.opened.0, q);
            realised += o.realised_exact;
            cash -= i128::from(q) * i128::from(px);
            wallet = wallet.checked_add(o.realised_pnl).unwrap().checked_sub(o.fee).unwrap();
            prop_assert_eq!(acct.wallet(), wallet);
        }
        // Realised + unrealised = Σ cash flows + position value, exactly.
        let (q_end, upnl) = acct.positions().first().map_or((0, 0), |p| (i128::from(p.qty().0), p.upnl_exact(Price(mark))));
        prop_assert_eq!(realised + upnl, cash + q_end * i128::from(mark));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Cross and isolated, with margin transfers: wallet plus isolated margins change by exactly
    /// realised PnL − fee + isolated shortfall on every fill, and isolated margin never goes
    /// negative.
    #[test]
    fn fills_conserve_money_in_both_modes(
        steps in prop::collection::vec((-5_000i64..5_000, 1_000_000i64..9_000_000, 0i64..1000, any::<bool>(), 0i64..50_000), 1..25),
    ) {
        let c = Case { tiers: vec![vec![(1_000_000_000_000, 5_000_000)]; 3], wallet_cents: 0, positions: vec![], marks: vec![1; 3] };
        let (table, _, _) = build(&c);
        let id = InstrumentId(0);
        let mut acct = Account::new(1, Money::from_int(100_000));
        let total = |a: &Account| a.positions().iter().fold(a.wallet(), |m, p| m.checked_add(p.isolated_margin()).unwrap());
        for (q, px, fee_cents, isolated, transfer) in steps {
            if q == 0 { continue; }
            let mode = if isolated { MarginMode::Isolated } else { MarginMode::Cross };
            let before = total(&acct);
            let fee = Money::from_scaled_floor(i128::from(fee_cents), 2).unwrap();
            let o = acct.apply_fill(&table, Fill { instrument: id, qty: Qty(q), price: Price(px), fee, mode }).unwrap();
            let expected = before
                .checked_add(o.realised_pnl).unwrap()
                .checked_sub(o.fee).unwrap()
                .checked_add(o.isolated_shortfall).unwrap();
            prop_assert_eq!(total(&acct), expected);
            prop_assert!(!o.isolated_shortfall.is_negative());
            // Top up an isolated position from the wallet: the total does not move.
            if let Some(p) = acct.positions().first().copied() {
                prop_assert!(!p.isolated_margin().is_negative());
                if p.mode() == MarginMode::Isolated {
                    let before = total(&acct);
                    acct.transfer_isolated_margin(id, Money::from_int(transfer)).unwrap();
                    prop_assert_eq!(total(&acct), before);
                } else {
                    prop_assert_eq!(p.isolated_margin(), Money::ZERO);
                    prop_assert!(acct.transfer_isolated_margin(id, Money::from_int(1)).is_err());
                }
            }
        }
    }
}

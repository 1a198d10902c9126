//! Scenario tests of the liquidation procedure, with exact expected numbers.
//!
//! Instrument 2 of the test table is SOLUSDT: prices in 0.01, quantities in 0.001, one tier with
//! MMR 2 % (IMR 4 %), liquidation fee 0.5 %, base mark 150.00.

use super::tests::{BASE, test_table};
use super::*;
use crate::ingest::{FeedBody, FeedEvent};
use crate::margin::{MarginMode, Position, Qty};
use crate::shm::Side;

const SOL: u32 = 2;
const ETH: u32 = 1;

fn marks() -> MarkPrices {
    let mut m = MarkPrices::new(3);
    for (i, p) in BASE.iter().enumerate() {
        m.set(InstrumentId(i as u32), Price(*p));
    }
    m
}

fn money(text: &str) -> Money {
    let units = crate::num::decimal::parse_scaled(text, 8).expect("test decimal");
    Money::from_scaled_floor(units, 8).expect("in range")
}

fn account(id: u64, wallet: &str, positions: &[(u32, i64, i64, MarginMode, &str)]) -> Account {
    let mut a = Account::new(id, money(wallet));
    for &(instrument, qty, entry, mode, margin) in positions {
        let p = Position::open(
            InstrumentId(instrument),
            Qty(qty),
            Price(entry),
            mode,
            money(margin),
        )
        .expect("test position");
        a.push_position(p).expect("distinct instruments");
    }
    a
}

fn engine(accounts: Vec<Account>) -> RiskEngine {
    RiskEngine::new(
        test_table(),
        marks(),
        accounts,
        RiskConfig::default(),
        Scan::Index,
    )
}

fn tick(
    e: &mut RiskEngine,
    instrument: u32,
    mark: i64,
    book: Book,
    seq: u64,
    now_ns: u64,
) -> Vec<Output> {
    let mut outs = Vec::new();
    e.on_tick_at(instrument, Price(mark), book, seq, now_ns, &mut |o| {
        outs.push(o)
    });
    outs
}

fn fill(
    e: &mut RiskEngine,
    order: u64,
    account: u64,
    qty: i64,
    price: i64,
    seq: u64,
    now_ns: u64,
) -> Vec<Output> {
    let mut outs = Vec::new();
    let event = FeedEvent {
        seq,
        publish_ns: now_ns,
        receive_ns: now_ns,
        body: FeedBody::Input(Input::Fill(shm::Fill {
            account,
            instrument: SOL,
            qty,
            price_px: price,
            fee_money: 0,
            liquidation_order_id: order,
        })),
    };
    e.on_event(&event, &mut |o| outs.push(o));
    outs
}

fn adls(outs: &[Output]) -> Vec<shm::Adl> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Adl(a) => Some(*a),
            _ => None,
        })
        .collect()
}

fn liquidations(outs: &[Output]) -> Vec<shm::Liquidation> {
    outs.iter()
        .filter_map(|o| match o {
            Output::Liquidation(l) => Some(*l),
            _ => None,
        })
        .collect()
}

/// 100 SOL long at 150.00 on a 1,500 wallet (10x): liquidatable below 137.755.
fn sol_long(id: u64) -> Account {
    account(
        id,
        "1500",
        &[(SOL, 100_000, 15_000, MarginMode::Cross, "0")],
    )
}

#[test]
fn partial_liquidation_restores_the_target_ratio_with_the_least_quantity() {
    let mut e = engine(vec![sol_long(7)]);
    // At 137.70: equity 270.00, MM 275.40, ratio 1.02: partial. Closing x SOL at the mark:
    // MM' = 275.4 − 2.754x ≤ 0.6·(270 − 0.6885x) ⇔ x ≥ 48.4429…: 48.443 SOL.
    let outs = tick(&mut e, SOL, 13_770, Book::default(), 1, 1_000);
    let liq = liquidations(&outs);
    assert_eq!(liq.len(), 1, "{outs:?}");
    assert_eq!(liq[0].qty, 48_443);
    assert_eq!(liq[0].side, Side::Sell);
    // Bankruptcy: 100·p − 13,500 = 0 at exactly 135.00.
    assert_eq!(liq[0].limit_px, 13_500);
    assert_eq!(liq[0].account, 7);
    assert_eq!(liq[0].input_seq, 1);
    // One lot less would not do: the planner's answer is minimal.
    let cfg = LiquidationConfig::default();
    assert_eq!(cfg.target_ratio, Rate(600_000_000));
    // Filled at 137.60 (better than the limit, worse than the mark).
    let outs = fill(&mut e, liq[0].order_id, 7, -48_443, 13_760, 2, 2_000);
    assert!(liquidations(&outs).is_empty());
    // 48.443 · 137.60 · 0.005 = 33.328784, rounded up into binary fixed point.
    let fee = Money::from_scaled_ceil(3_332_878_400, 8).expect("in range");
    assert_eq!(e.fund().fees(), fee);
    assert_eq!(e.fund().surplus(), Money::ZERO);
    // Realised (137.60 − 150)·48.443 = −600.6932; wallet 1500 − 600.6932 − 33.328784.
    let wallet = e.accounts()[0].wallet();
    assert_eq!(wallet.to_scaled_nearest(8), Some(86_597_801_600));
    assert_eq!(e.accounts()[0].positions()[0].qty(), Qty(51_557));
    // Back to healthy (ratio ≈ 0.61 < 0.8) and banded again.
    assert_eq!(e.unit_state(0), Some(UnitState::Healthy));
    assert!(e.index().is_banded(0));
    assert_eq!(e.open_jobs(), 0);
}

#[test]
fn a_deep_breach_is_closed_in_full_and_the_surplus_goes_to_the_fund() {
    let mut e = engine(vec![sol_long(7)]);
    // Jump to 136.00: equity 100, MM 272, ratio 2.72 ≥ 2: full.
    let liq = liquidations(&tick(&mut e, SOL, 13_600, Book::default(), 1, 1_000));
    assert_eq!(liq.len(), 1);
    assert_eq!(liq[0].qty, 100_000);
    assert_eq!(liq[0].limit_px, 13_500);
    // Filled at 135.50: fee 67.75 to the fund; closed out at 135.00, the 50.00 above it is the
    // fund's; the wallet left at −67.75 is reset by the fund.
    fill(&mut e, liq[0].order_id, 7, -100_000, 13_550, 2, 2_000);
    assert_eq!(e.fund().fees(), money("67.75"));
    assert_eq!(e.fund().surplus(), money("50"));
    assert_eq!(e.fund().covered(), money("67.75"));
    assert_eq!(e.fund().balance(), money("50"));
    assert_eq!(e.accounts()[0].wallet(), Money::ZERO);
    assert!(e.accounts()[0].positions().is_empty());
    assert_eq!(e.unit_state(0), Some(UnitState::Flat));
}

#[test]
fn children_are_sliced_by_the_visible_size_and_held_on_a_wide_spread() {
    let mut e = engine(vec![sol_long(7)]);
    // Spread 137.00–139.50: 1.8 % of the mid, wider than 1 %: hold.
    let wide = Book {
        bid_px: 13_700,
        ask_px: 13_950,
        bid_qty: 10_000,
        ask_qty: 10_000,
    };
    let outs = tick(&mut e, SOL, 13_770, wide, 1, 1_000);
    assert!(liquidations(&outs).is_empty(), "{outs:?}");
    assert_eq!(e.open_jobs(), 1);
    // Narrow spread, 10 SOL at the bid: a child of 25 % of it, 2.5 SOL.
    let narrow = Book {
        bid_px: 13_765,
        ask_px: 13_775,
        bid_qty: 10_000,
        ask_qty: 10_000,
    };
    let liq = liquidations(&tick(&mut e, SOL, 13_770, narrow, 2, 2_000));
    assert_eq!(liq.len(), 1);
    assert_eq!(liq[0].qty, 2_500);
    assert_eq!(liq[0].limit_px, 13_500);
    // While it is out (no fill, not timed out), no second child.
    assert!(liquidations(&tick(&mut e, SOL, 13_770, narrow, 3, 3_000)).is_empty());
    // Filled: the next tick sends the next slice.
    fill(&mut e, liq[0].order_id, 7, -2_500, 13_765, 4, 4_000);
    let next = liquidations(&tick(&mut e, SOL, 13_770, narrow, 5, 5_000));
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].qty, 2_500);
    assert_ne!(next[0].order_id, liq[0].order_id);
}

#[test]
fn an_isolated_liquidation_leaves_the_rest_of_the_account_alone() {
    // Cross ETH long on a big wallet, and an isolated SOL long with 1,500 margin.
    let a = account(
        9,
        "100000",
        &[
            (ETH, 1_000, 300_000, MarginMode::Cross, "0"),
            (SOL, 100_000, 15_000, MarginMode::Isolated, "1500"),
        ],
    );
    let mut e = engine(vec![a]);
    let liq = liquidations(&tick(&mut e, SOL, 13_600, Book::default(), 1, 1_000));
    assert_eq!(liq.len(), 1);
    assert_eq!(liq[0].qty, 100_000);
    fill(&mut e, liq[0].order_id, 9, -100_000, 13_550, 2, 2_000);
    let acc = &e.accounts()[0];
    assert_eq!(acc.wallet(), money("100000"), "the wallet is untouched");
    assert_eq!(acc.positions().len(), 1);
    assert_eq!(acc.positions()[0].instrument(), InstrumentId(ETH));
    assert_eq!(acc.positions()[0].qty(), Qty(1_000));
    assert_eq!(e.unit_state(0), Some(UnitState::Healthy));
    // (135.50 − 150)·100 = −1450 and the 67.75 fee against 1,500 of margin leave −17.75: paid
    // by the fund. The fund ends 50 up, as in the cross case: the position closed out at 135.00.
    assert_eq!(e.fund().fees(), money("67.75"));
    assert_eq!(e.fund().covered(), money("17.75"));
    assert_eq!(e.fund().balance(), money("50"));
}

#[test]
fn a_bankrupt_position_is_deleveraged_against_the_best_ranked_counterparty() {
    // Bankrupt long (BP 135.00) and three shorts of 40 SOL entered at 160, 155 and 150.
    let shorts = [(11, 16_000), (12, 15_500), (13, 15_000)];
    let mut accounts = vec![sol_long(7)];
    for (id, entry) in shorts {
        accounts.push(account(
            id,
            "2000",
            &[(SOL, -40_000, entry, MarginMode::Cross, "0")],
        ));
    }
    let mut e = engine(accounts);
    // A gap to 130.00: the long is beyond bankruptcy; its order at 135.00 cannot fill: ADL now.
    let outs = tick(&mut e, SOL, 13_000, Book::default(), 1, 1_000);
    let adl = adls(&outs);
    // Highest profit first: the short from 160 (profit 18.75 %), then 155, then 150.
    assert_eq!(
        adl.iter().map(|a| a.account).collect::<Vec<_>>(),
        vec![11, 12, 13]
    );
    assert_eq!(
        adl.iter().map(|a| a.qty).collect::<Vec<_>>(),
        vec![40_000, 40_000, 20_000]
    );
    assert!(
        adl.iter()
            .all(|a| a.price_px == 13_500 && a.bankrupt_account == 7)
    );
    assert!(adl.iter().all(|a| a.side == Side::Buy));
    assert!(e.accounts()[0].positions().is_empty());
    assert_eq!(e.accounts()[3].positions()[0].qty(), Qty(-20_000));
    // The long closed at its bankruptcy price: nothing left, nothing owed.
    assert_eq!(e.accounts()[0].wallet(), Money::ZERO);
    assert_eq!(e.fund().covered(), Money::ZERO);
    // Short from 160 realised (160 − 135)·40 = 1,000.
    assert_eq!(e.accounts()[1].wallet(), money("3000"));
}

#[test]
fn a_funded_insurance_fund_takes_a_bankrupt_position_over_and_works_it_out() {
    use super::takeover::FUND_ACCOUNT_ID;
    // The same bankrupt long (BP 135.00) and a short counterparty, with a fund of 10,000.
    let accounts = vec![
        sol_long(7),
        account(
            11,
            "2000",
            &[(SOL, -40_000, 16_000, MarginMode::Cross, "0")],
        ),
    ];
    let mut e = engine(accounts).with_fund(money("10000"));
    // A gap to 130.00: the order at 135.00 cannot fill. The fund can carry the loss at the
    // mark ((135 − 130) · 100 = 500): it takes the long over at 135.00; no trader is deleveraged.
    let book = Book {
        bid_px: 12_990,
        bid_qty: 1_000_000,
        ask_px: 13_010,
        ask_qty: 1_000_000,
    };
    let outs = tick(&mut e, SOL, 13_000, book, 1, 1_000);
    let adl = adls(&outs);
    assert_eq!(adl.len(), 1, "{outs:?}");
    assert_eq!(
        (
            adl[0].account,
            adl[0].side,
            adl[0].qty,
            adl[0].price_px,
            adl[0].bankrupt_account
        ),
        (FUND_ACCOUNT_ID, Side::Buy, 100_000, 13_500, 7)
    );
    assert_eq!(e.counters().takeovers, 1);
    assert_eq!(e.counters().adl, 0);
    assert!(e.accounts()[0].positions().is_empty());
    assert_eq!(e.accounts()[0].wallet(), Money::ZERO);
    assert_eq!(e.accounts()[1].positions()[0].qty(), Qty(-40_000));
    assert_eq!(e.fund_inventory()[0].qty(), Qty(100_000));
    // Nothing paid at the hand-over.
    assert_eq!(e.fund().balance(), money("10000"));
    // The next tick, the fund sells at the touch, sliced to a quarter of the bid's size.
    let outs = tick(&mut e, SOL, 13_000, book, 2, 2_000);
    let liq = liquidations(&outs);
    assert_eq!(liq.len(), 1, "{outs:?}");
    assert_eq!(
        (liq[0].account, liq[0].side, liq[0].qty, liq[0].limit_px),
        (FUND_ACCOUNT_ID, Side::Sell, 100_000, 12_990)
    );
    // Filled at 129.90: the fund realises (129.90 − 135.00) · 100 = −510, with no fee.
    fill(
        &mut e,
        liq[0].order_id,
        FUND_ACCOUNT_ID,
        -100_000,
        12_990,
        3,
        3_000,
    );
    assert!(e.fund_inventory().is_empty());
    assert_eq!(e.fund().balance(), money("9490"));
    assert_eq!(e.fund().covered(), money("510"));
    // Its job ends when next worked, with nothing left to send.
    assert_eq!(e.open_jobs(), 1);
    assert!(liquidations(&tick(&mut e, SOL, 13_000, book, 4, 4_000)).is_empty());
    assert_eq!(e.open_jobs(), 0);
}

#[test]
fn an_empty_fund_takes_nothing_over_and_the_position_goes_to_adl() {
    let accounts = vec![
        sol_long(7),
        account(
            11,
            "2000",
            &[(SOL, -100_000, 16_000, MarginMode::Cross, "0")],
        ),
    ];
    // A fund of 100 cannot carry a loss of 500 at the mark.
    let mut e = engine(accounts).with_fund(money("100"));
    let outs = tick(&mut e, SOL, 13_000, Book::default(), 1, 1_000);
    let adl = adls(&outs);
    assert_eq!(adl.len(), 1, "{outs:?}");
    assert_eq!((adl[0].account, adl[0].qty), (11, 100_000));
    assert_eq!(e.counters().takeovers, 0);
    assert!(e.fund_inventory().is_empty());
}

#[test]
fn an_unfilled_job_is_deleveraged_after_the_deadline() {
    let mut accounts = vec![sol_long(7)];
    accounts.push(account(
        11,
        "5000",
        &[(SOL, -100_000, 15_000, MarginMode::Cross, "0")],
    ));
    let mut e = engine(accounts);
    let liq = liquidations(&tick(
        &mut e,
        SOL,
        13_770,
        Book::default(),
        1,
        1_000_000_000,
    ));
    assert_eq!(liq.len(), 1);
    // No fill. 4 s later: still waiting (the child timed out, a new one goes out).
    let again = liquidations(&tick(
        &mut e,
        SOL,
        13_770,
        Book::default(),
        2,
        5_000_000_000,
    ));
    assert_eq!(again.len(), 1);
    assert!(e.accounts()[0].positions()[0].qty() == Qty(100_000));
    // After the 5 s deadline without progress (and the child timed out): ADL at the limit.
    let outs = tick(&mut e, SOL, 13_770, Book::default(), 3, 6_100_000_000);
    let adl: Vec<_> = outs
        .iter()
        .filter(|o| matches!(o, Output::Adl(_)))
        .collect();
    assert_eq!(adl.len(), 1, "{outs:?}");
    assert_eq!(e.accounts()[0].positions()[0].qty(), Qty(100_000 - 48_443));
}

#[test]
fn a_cross_account_is_cut_in_the_calm_instrument_first() {
    // ETH and SOL longs; ETH made volatile by a few swings before the crash.
    let a = account(
        5,
        "2400",
        &[
            (ETH, 5_000, 300_000, MarginMode::Cross, "0"),
            (SOL, 100_000, 15_000, MarginMode::Cross, "0"),
        ],
    );
    let mut e = engine(vec![a]);
    for (i, p) in [306_000, 294_000, 306_000, 300_000].into_iter().enumerate() {
        tick(&mut e, ETH, p, Book::default(), i as u64, 0);
    }
    // SOL falls until the account is liquidatable.
    let mut liq = Vec::new();
    let mut p = 15_000;
    while liq.is_empty() && p > 10_000 {
        p -= 20;
        liq = liquidations(&tick(&mut e, SOL, p, Book::default(), 10, 0));
    }
    assert_eq!(liq.len(), 1, "one position is enough to restore the target");
    assert_eq!(
        liq[0].instrument, SOL,
        "SOL moved in small steps, ETH swung"
    );
}

#[test]
fn margin_calls_fire_once_per_crossing_and_rearm_below_the_lower_level() {
    let mut e = engine(vec![sol_long(7)]);
    let calls = |outs: &[Output]| {
        outs.iter()
            .filter(|o| matches!(o, Output::MarginCall(_)))
            .count()
    };
    // Ratio = 2p / (100p − 13,500). 0.8 at p ≈ 138.46; 0.7 at p ≈ 138.99.
    assert_eq!(calls(&tick(&mut e, SOL, 13_840, Book::default(), 1, 0)), 1);
    assert_eq!(calls(&tick(&mut e, SOL, 13_830, Book::default(), 2, 0)), 0);
    // Back to 0.75 (between the levels): not re-armed.
    assert_eq!(calls(&tick(&mut e, SOL, 13_870, Book::default(), 3, 0)), 0);
    assert_eq!(calls(&tick(&mut e, SOL, 13_840, Book::default(), 4, 0)), 0);
    // Below 0.7: re-armed; crossing 0.8 again calls again.
    assert_eq!(calls(&tick(&mut e, SOL, 14_000, Book::default(), 5, 0)), 0);
    assert_eq!(e.unit_state(0), Some(UnitState::Healthy));
    assert_eq!(calls(&tick(&mut e, SOL, 13_840, Book::default(), 6, 0)), 1);
    assert_eq!(e.counters().margin_calls, 2);
}

fn send(e: &mut RiskEngine, input: Input, seq: u64, now_ns: u64) -> Vec<Output> {
    let mut outs = Vec::new();
    let event = FeedEvent {
        seq,
        publish_ns: now_ns,
        receive_ns: now_ns,
        body: FeedBody::Input(input),
    };
    e.on_event(&event, &mut |o| outs.push(o));
    outs
}

fn sol_tick(mark: i64) -> Input {
    Input::Tick(shm::Tick {
        instrument: SOL,
        mark_px: mark,
        index_px: mark,
        bid_px: 0,
        ask_px: 0,
        bid_qty: 0,
        ask_qty: 0,
    })
}

#[test]
fn the_breaker_trips_on_a_fund_drawdown_sends_jobs_to_adl_and_rearms_after_the_window() {
    let accounts = vec![
        sol_long(7),
        // 100 SOL long at 150.00 on 2,000: bankrupt at 130.00.
        account(8, "2000", &[(SOL, 100_000, 15_000, MarginMode::Cross, "0")]),
        account(
            9,
            "100000",
            &[(SOL, -300_000, 15_000, MarginMode::Cross, "0")],
        ),
    ];
    let mut config = RiskConfig::default();
    config.liquidation.breaker = breaker::BreakerConfig {
        max_loss_share: Rate(100_000_000),
        window_ns: 60_000_000_000,
    };
    let mut e = RiskEngine::new(test_table(), marks(), accounts, config, Scan::Index)
        .with_fund(money("1000"));
    let s = 1_000_000_000;
    // 136.00: account 7 is closed out in full at its bankruptcy price 135.00.
    let liq = liquidations(&send(&mut e, sol_tick(13_600), 1, s));
    assert_eq!(liq.len(), 1);
    assert_eq!((liq[0].account, liq[0].limit_px), (7, 13_500));
    // The venue reports a fill at 133.00, 2.00 worse than the limit: the fund takes the fee
    // 66.50, pays the 200.00 below the limit and the 66.50 the fee left negative: 800.00, a
    // 20 % drawdown from 1,000.00, over the 10 % allowed. One alert.
    let outs = send(
        &mut e,
        Input::Fill(shm::Fill {
            account: 7,
            instrument: SOL,
            qty: -100_000,
            price_px: 13_300,
            fee_money: 0,
            liquidation_order_id: liq[0].order_id,
        }),
        2,
        2 * s,
    );
    assert_eq!(e.fund().balance(), money("800"));
    let alerts: Vec<shm::Alert> = outs
        .iter()
        .filter_map(|o| match o {
            Output::Alert(a) => Some(*a),
            _ => None,
        })
        .collect();
    assert_eq!(
        alerts,
        vec![shm::Alert {
            code: breaker::FUND_BREAKER_TRIPPED,
            arg0: 200 * 100_000_000,
            arg1: 800 * 100_000_000,
        }]
    );
    assert!(e.breaker().tripped());
    // 131.00: account 8 (equity 100, MM 262) is closed in full; with the breaker tripped it
    // goes straight to ADL at 130.00 against the short, with no order to the market.
    let outs = send(&mut e, sol_tick(13_100), 3, 3 * s);
    assert!(liquidations(&outs).is_empty(), "{outs:?}");
    let adl = adls(&outs);
    assert_eq!(adl.len(), 1);
    assert_eq!(
        (
            adl[0].account,
            adl[0].side,
            adl[0].qty,
            adl[0].price_px,
            adl[0].bankrupt_account
        ),
        (9, Side::Buy, 100_000, 13_000, 8)
    );
    assert_eq!(e.accounts()[1].wallet(), Money::ZERO);
    assert!(e.accounts()[1].positions().is_empty());
    // The short realised (150 − 130) · 100 = 2,000 on the third it gave up.
    assert_eq!(e.accounts()[2].wallet(), money("102000"));
    assert_eq!(e.accounts()[2].positions()[0].qty(), Qty(-200_000));
    assert_eq!(e.fund().balance(), money("800"));
    // No second alert while tripped; re-armed once the window has passed since the trip.
    assert!(send(&mut e, sol_tick(13_150), 4, 61 * s).is_empty());
    assert!(e.breaker().tripped());
    assert!(send(&mut e, sol_tick(13_160), 5, 62 * s).is_empty());
    assert!(!e.breaker().tripped());
    assert_eq!(e.breaker().trips(), 1);
}

#[test]
fn funding_is_paid_by_longs_to_shorts_at_the_mark_and_rebands_the_holders() {
    let accounts = vec![
        sol_long(7),
        account(
            8,
            "10",
            &[(SOL, -50_000, 15_000, MarginMode::Isolated, "100")],
        ),
    ];
    let mut e = engine(accounts);
    // Mark 150.00, rate 0.01 %: the long pays 100 · 150 · 0.0001 = 1.50 from its wallet; the
    // isolated short receives 50 · 150 · 0.0001 = 0.75 into its margin, its wallet untouched.
    let funding = Input::Funding(shm::Funding {
        instrument: SOL,
        rate_e9: 100_000,
    });
    assert!(send(&mut e, funding, 1, 1_000).is_empty());
    assert_eq!(e.accounts()[0].wallet(), money("1498.5"));
    assert_eq!(e.accounts()[1].wallet(), money("10"));
    assert_eq!(
        e.accounts()[1].positions()[0].isolated_margin(),
        money("100.75")
    );
    assert_eq!(e.counters().funding, 2);
    // Re-banded: the long's liquidation level moved up by 1.50 / (100 · 0.98) = 0.0153…, so
    // 137.77 (liquidatable before only below 137.755) now liquidates it.
    let outs = send(&mut e, sol_tick(13_770), 2, 2_000);
    assert_eq!(e.unit_state(0), Some(UnitState::Liquidating), "{outs:?}");
}

#[test]
fn a_future_settles_at_the_index_twap_at_expiry_and_refuses_later_ticks() {
    // SOL as a future expiring at Unix second 10,000; TWAP window 30 min (from 8,200 s).
    let mut table = InstrumentTable::new();
    for (id, inst) in test_table().iter() {
        let mut inst = inst.clone();
        if id.0 == SOL {
            inst.kind = crate::margin::InstrumentKind::Future {
                expiry_unix_s: 10_000,
            };
        }
        table.push(inst);
    }
    let accounts = vec![
        sol_long(7),
        account(
            8,
            "10",
            &[(SOL, -100_000, 15_000, MarginMode::Isolated, "1000")],
        ),
    ];
    let mut e = RiskEngine::new(table, marks(), accounts, RiskConfig::default(), Scan::Index);
    let s = 1_000_000_000u64;
    let tick = |index: i64| {
        Input::Tick(shm::Tick {
            instrument: SOL,
            mark_px: 15_000,
            index_px: index,
            bid_px: 0,
            ask_px: 0,
            bid_qty: 0,
            ask_qty: 0,
        })
    };
    // Index 140.00 from 8,000 s (counts from 8,200 s: 800 s), 160.00 from 9,000 s (600 s),
    // 145.00 from 9,600 s (400 s): TWAP = (140·800 + 160·600 + 145·400) / 1800 = 147.777…,
    // floored to 147.77.
    assert!(send(&mut e, tick(14_000), 1, 8_000 * s).is_empty());
    assert!(send(&mut e, tick(16_000), 2, 9_000 * s).is_empty());
    assert!(send(&mut e, tick(14_500), 3, 9_600 * s).is_empty());
    // The first input past expiry settles before it is applied; the tick itself is refused.
    let outs = send(&mut e, tick(20_000), 4, 10_001 * s);
    assert_eq!(
        outs,
        vec![
            Output::Settlement(shm::Settlement {
                account: 7,
                instrument: SOL,
                qty: 100_000,
                price_px: 14_777,
                pnl_money: -22_300_000_000,
                input_seq: 4,
            }),
            Output::Settlement(shm::Settlement {
                account: 8,
                instrument: SOL,
                qty: -100_000,
                price_px: 14_777,
                pnl_money: 22_300_000_000,
                input_seq: 4,
            }),
        ]
    );
    // Long: 1,500 − 223 = 1,277. Isolated short: margin 1,000 + 223 back to a wallet of 10.
    assert_eq!(e.accounts()[0].wallet(), money("1277"));
    assert_eq!(e.accounts()[1].wallet(), money("1233"));
    assert!(e.accounts().iter().all(|a| a.positions().is_empty()));
    assert!(e.is_settled(SOL));
    assert_eq!(e.counters().ticks_refused, 1);
    assert!(send(&mut e, tick(15_000), 5, 10_002 * s).is_empty());
    assert_eq!(e.counters().ticks_refused, 2);
    assert_eq!(e.counters().settlements, 1);
    assert_eq!(e.unit_state(0), Some(UnitState::Flat));
}

#[test]
fn adl_quantiles_rank_same_side_positions_in_fifths() {
    // Five SOL shorts at 160.00 (in profit at 150.00) on wallets of decreasing size: the
    // smaller the wallet, the higher the effective leverage, the higher the score.
    let accounts: Vec<Account> = (0..5u64)
        .map(|k| {
            let wallet = ["5000", "4000", "3000", "2000", "1000"][k as usize];
            account(
                20 + k,
                wallet,
                &[(SOL, -10_000, 16_000, MarginMode::Cross, "0")],
            )
        })
        .chain(std::iter::once(sol_long(7)))
        .collect();
    let e = engine(accounts);
    let q: Vec<Option<u8>> = (0..6).map(|a| e.adl_quantile(a, SOL)).collect();
    // Ranked 1,000 (top) … 5,000 (last): 5, 4, 3, 2, 1; the lone long is the top of its side.
    assert_eq!(
        q,
        vec![Some(1), Some(2), Some(3), Some(4), Some(5), Some(5)]
    );
    assert_eq!(e.adl_quantile(0, ETH), None);
}

#[test]
fn the_built_in_matcher_fills_children_on_the_real_fill_path() {
    use crate::matcher::{Matcher, MatcherConfig};
    let mut e = engine(vec![sol_long(7)]);
    let mut m = Matcher::new(MatcherConfig::default(), 3);
    let t = shm::Tick {
        instrument: SOL,
        mark_px: 13_770,
        index_px: 13_770,
        bid_px: 13_765,
        ask_px: 13_775,
        bid_qty: 10_000,
        ask_qty: 10_000,
    };
    m.on_tick(&t);
    let outs = send(&mut e, Input::Tick(t), 1, 1_000);
    let liq = liquidations(&outs);
    assert_eq!((liq[0].qty, liq[0].limit_px), (2_500, 13_500));
    // 2.5 SOL at the bid 137.65, fed back as an input.
    let f = m.on_output(&outs[0]).expect("the bid is above the limit");
    assert_eq!((f.qty, f.price_px), (-2_500, 13_765));
    send(&mut e, Input::Fill(f), 2, 2_000);
    assert_eq!(e.counters().liquidation_fills, 1);
    assert_eq!(e.accounts()[0].positions()[0].qty(), Qty(97_500));
    // Fee 0.5 % of 344.125 = 1.720625 to the fund (rounded up to the fixed-point unit).
    assert_eq!(
        e.fund().fees(),
        Money::from_scaled_ceil(1_720_625, 6).unwrap()
    );
}

#[test]
fn volatility_scaling_steps_the_mmr_and_rebands_the_holders() {
    let cfg = vol::VolScaling::default();
    // Reference 0.1 %: scale = vol / 0.1 %, clamped to [1, 3], floored to a multiple of 0.25.
    assert_eq!(vol::scale_for(&cfg, 0), Rate(1_000_000_000));
    assert_eq!(vol::scale_for(&cfg, 1_600_000), Rate(1_500_000_000));
    assert_eq!(vol::scale_for(&cfg, 5_000_000), Rate(3_000_000_000));
    let sol = test_table().get(InstrumentId(SOL)).unwrap().clone();
    let scaled = vol::scaled_instrument(&sol, Rate(1_500_000_000)).unwrap();
    assert_eq!(scaled.tiers()[0].mmr, Rate(30_000_000));
    assert_eq!(scaled.tiers()[0].imr, Rate(40_000_000));
    // 150.00 → 140.00: |Δp|/p = 6.67 %, EWMA 6.67 % / 32 = 0.2083 %: scale 2, MMR 4 %. The long
    // (equity 500) now needs 560 and is liquidated; unscaled it needs 280 (ratio 0.56, healthy).
    for (scaling, state) in [
        (Some(cfg), UnitState::Liquidating),
        (None, UnitState::Healthy),
    ] {
        let config = RiskConfig {
            vol_scaling: scaling,
            ..RiskConfig::default()
        };
        let mut e = RiskEngine::new(
            test_table(),
            marks(),
            vec![sol_long(7)],
            config,
            Scan::Index,
        );
        send(&mut e, sol_tick(14_000), 1, 1_000);
        assert_eq!(e.unit_state(0), Some(state));
        let want = if scaling.is_some() {
            2_000_000_000
        } else {
            1_000_000_000
        };
        assert_eq!(e.mmr_scale(SOL), Rate(want));
    }
}

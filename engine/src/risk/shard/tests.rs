//! Sharding: the partition, the order-id tags, the routing, and that splitting the accounts
//! over shards changes no account's decisions or balances while no fund slice runs short.

use std::collections::HashMap;

use super::*;
use crate::bulk::synth;
use crate::margin::{Account, InstrumentId, Position};
use crate::matcher::{Matcher, MatcherConfig};
use crate::risk::takeover::FUND_ACCOUNT_ID;
use crate::risk::{RiskConfig, Scan};
use crate::shm::{Collateral, Fill, Funding, Tick};

#[test]
fn accounts_spread_evenly_and_stay_put() {
    for n in [2usize, 3, 4, 7] {
        let mut counts = vec![0u32; n];
        for id in 1..=20_000u64 {
            let k = shard_of(id, n);
            assert_eq!(k, shard_of(id, n), "the same shard every time");
            counts[k] += 1;
        }
        let even = 20_000 / n as u32;
        for (k, &c) in counts.iter().enumerate() {
            assert!(
                c > even * 9 / 10 && c < even * 11 / 10,
                "{n} shards: shard {k} holds {c} of 20000"
            );
        }
    }
    assert_eq!(shard_of(12345, 1), 0);
}

#[test]
fn tagged_order_ids_carry_their_shard_and_are_never_zero() {
    for count in [1u32, 2, 3, 5, 64] {
        for index in 0..count {
            let tag = ShardTag { index, count };
            for id in [
                0u64,
                1,
                2,
                63,
                64,
                1 << 40,
                u64::MAX - 64,
                u64::MAX - 1,
                u64::MAX,
            ] {
                let t = tag.tag(id);
                assert_ne!(t, 0);
                if count > 1 {
                    assert_eq!(t % u64::from(count), u64::from(index), "{id} in {tag:?}");
                    assert!(t.abs_diff(id) < u64::from(count) * 2, "{id} moved to {t}");
                    let next = tag.next(t);
                    assert_ne!(next, t);
                    assert_eq!(next % u64::from(count), u64::from(index));
                } else {
                    assert_eq!(t, id.max(1));
                }
            }
        }
    }
}

fn event(seq: u64, input: Input) -> FeedEvent {
    FeedEvent {
        seq,
        publish_ns: 1_000_000_000 + seq * 50_000_000,
        receive_ns: 0,
        body: FeedBody::Input(input),
    }
}

#[test]
fn inputs_go_to_the_shards_that_own_them() {
    let n = 4;
    let tick = event(1, Input::Tick(Tick::default()));
    assert_eq!(route(&tick, n), Route::All);
    assert_eq!(route(&tick, 1), Route::One(0));
    let collateral = event(
        2,
        Input::Collateral(Collateral {
            account: 77,
            amount_money: 5,
        }),
    );
    assert_eq!(route(&collateral, n), Route::One(shard_of(77, n)));
    let trade = event(
        3,
        Input::Fill(Fill {
            account: 78,
            ..Fill::default()
        }),
    );
    assert_eq!(route(&trade, n), Route::One(shard_of(78, n)));
    // A liquidation fill goes by its order id, whatever account it names (the fund's orders
    // carry the same account id in every shard).
    let liquidation = event(
        4,
        Input::Fill(Fill {
            account: u64::MAX,
            liquidation_order_id: ShardTag { index: 3, count: 4 }.tag(987_654_321),
            ..Fill::default()
        }),
    );
    assert_eq!(route(&liquidation, n), Route::One(3));
    let alert = FeedEvent {
        body: FeedBody::Alert(crate::shm::Alert {
            code: 1,
            arg0: 0,
            arg1: 0,
        }),
        ..tick
    };
    assert_eq!(route(&alert, n), Route::One(0));
    let funding = event(5, Input::Funding(Funding::default()));
    assert_eq!(route(&funding, n), Route::All);
}

const INSTRUMENTS: usize = 3;

/// 400 accounts over 3 instruments. A stuck liquidation never reaches its fill deadline, so no
/// remainder goes to ADL (whose ranking is per shard by design).
pub(crate) fn loaded(fund: i64) -> RiskEngine {
    let (table, marks) = synth::instruments(INSTRUMENTS, 5);
    let accounts = synth::generate(&table, &marks, 400, 9, 2).expect("accounts");
    let mut config = RiskConfig::default();
    config.liquidation.fill_deadline_ns = u64::MAX / 4;
    RiskEngine::new(table, marks, accounts, config, Scan::Index).with_fund(Money::from_int(fund))
}

#[test]
fn a_split_keeps_every_account_once_and_the_whole_fund() {
    let whole = loaded(1_000_003);
    let ids: Vec<u64> = whole.accounts().iter().map(Account::id).collect();
    let shards = Shards::split(loaded(1_000_003), 3);
    assert_eq!(shards.len(), 3);
    let mut seen: Vec<u64> = Vec::new();
    for (k, e) in shards.engines().iter().enumerate() {
        assert_eq!(
            e.shard(),
            ShardTag {
                index: k as u32,
                count: 3
            }
        );
        assert!(!e.accounts().is_empty());
        for a in e.accounts() {
            assert_eq!(shard_of(a.id(), 3), k);
            seen.push(a.id());
        }
    }
    seen.sort_unstable();
    let mut expected = ids;
    expected.sort_unstable();
    assert_eq!(seen, expected);
    assert_eq!(shards.fund().balance(), Money::from_int(1_000_003));
    assert_eq!(shards.fund().initial(), Money::from_int(1_000_003));
    // Slices differ by at most the division's remainder.
    let slices: Vec<Money> = shards
        .engines()
        .iter()
        .map(|e| e.fund().balance())
        .collect();
    assert!(slices[0] >= slices[1] && slices[1] == slices[2]);
}

/// One account-level decision, without the order id (shards tag theirs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Decision {
    Call(u64),
    Order {
        account: u64,
        instrument: u32,
        sell: bool,
        qty: i64,
        limit_px: i64,
    },
    /// An ADL close or a takeover by the fund (account `FUND_ACCOUNT_ID`).
    Adl {
        account: u64,
        bankrupt: u64,
        instrument: u32,
        qty: i64,
        price_px: i64,
    },
    FundOrder,
    Other(u8),
}

fn decision(o: &Output) -> Decision {
    match o {
        Output::MarginCall(c) => Decision::Call(c.account),
        // The fund works its taken-over inventory out per slice: its own orders may be sliced
        // differently from one book's.
        Output::Liquidation(l) if l.account == FUND_ACCOUNT_ID => Decision::FundOrder,
        Output::Liquidation(l) => Decision::Order {
            account: l.account,
            instrument: l.instrument,
            sell: l.side == crate::shm::Side::Sell,
            qty: l.qty,
            limit_px: l.limit_px,
        },
        Output::Adl(a) => Decision::Adl {
            account: a.account,
            bankrupt: a.bankrupt_account,
            instrument: a.instrument,
            qty: a.qty,
            price_px: a.price_px,
        },
        other => Decision::Other(other.encode().tag),
    }
}

/// Drives `engine` along a seeded path of small moves (the books are deep, so liquidations
/// fill before bankruptcy), with collateral changes and funding, the matcher answering every
/// liquidation order; fills go back in a canonical order (by account and instrument) so two
/// engines that decide alike see the same inputs. Returns each input's decisions, sorted.
fn drive(engine: &mut Shards, seed: u64, steps: usize) -> Vec<Vec<Decision>> {
    drive_recorded(engine, seed, steps, &mut |_| {})
}

/// As [`drive`], passing every input event to `record` as it is applied.
pub(crate) fn drive_recorded(
    engine: &mut Shards,
    seed: u64,
    steps: usize,
    record: &mut impl FnMut(&FeedEvent),
) -> Vec<Vec<Decision>> {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut marks: Vec<i64> = (0..INSTRUMENTS)
        .map(|i| {
            engine
                .first()
                .marks()
                .get(InstrumentId(i as u32))
                .map_or(1_000, |p| p.0)
        })
        .collect();
    let mut matcher = Matcher::new(MatcherConfig::default(), INSTRUMENTS);
    let mut ids: Vec<u64> = engine.accounts().map(Account::id).collect();
    ids.sort_unstable();
    let mut decisions = Vec::with_capacity(steps);
    let mut seq = 0u64;
    for _ in 0..steps {
        let r = next() % 100;
        let i = (next() % INSTRUMENTS as u64) as usize;
        let input = if r < 90 {
            let bp = 5 + (next() % 26) as i64;
            let down = next() % 5 < 3;
            let mv = marks[i] * bp / 10_000;
            marks[i] = (marks[i] + if down { -mv } else { mv }).max(10);
            let m = marks[i];
            let tick = Tick {
                instrument: i as u32,
                mark_px: m,
                index_px: m,
                bid_px: m,
                ask_px: m,
                bid_qty: 10_000_000,
                ask_qty: 10_000_000,
            };
            matcher.on_tick(&tick);
            Input::Tick(tick)
        } else if r < 95 {
            Input::Funding(Funding {
                instrument: i as u32,
                rate_e9: (next() % 200_000) as i64 - 100_000,
            })
        } else {
            Input::Collateral(Collateral {
                account: ids[(next() % ids.len() as u64) as usize],
                amount_money: (next() % 200_000_000_000) as i64 - 100_000_000_000,
            })
        };
        // The input, then the fills of the orders it caused (at once, so no deadline passes),
        // and of the orders those caused, until none is left.
        let mut queued = vec![input];
        while !queued.is_empty() {
            let mut fills = Vec::new();
            for input in queued.drain(..) {
                seq += 1;
                let mut outputs = Vec::new();
                let at = FeedEvent {
                    publish_ns: 1_000_000_000 + decisions.len() as u64 * 50_000_000,
                    ..event(seq, input)
                };
                record(&at);
                engine.apply(&at, &mut |o| outputs.push(o));
                fills.extend(outputs.iter().filter_map(|o| matcher.on_output(o)));
                let mut d: Vec<Decision> = outputs.iter().map(decision).collect();
                d.sort_unstable();
                decisions.push(d);
            }
            fills.sort_by_key(|f| (f.account, f.instrument));
            queued.extend(fills.into_iter().map(Input::Fill));
        }
    }
    decisions
}

fn by_id(engine: &Shards) -> HashMap<u64, (Money, Vec<Position>)> {
    engine
        .accounts()
        .map(|a| (a.id(), (a.wallet(), a.positions().to_vec())))
        .collect()
}

/// Net quantity per instrument of the fund's inventory, over every slice.
fn inventory(engine: &Shards) -> Vec<i64> {
    let mut net = vec![0i64; INSTRUMENTS];
    for p in engine.fund_inventory() {
        net[p.instrument().0 as usize] += p.qty().0;
    }
    net
}

/// The counts sharding must not change (the fund's own orders and fills may be sliced
/// differently per slice).
fn account_counts(c: RiskCounters) -> [u64; 8] {
    [
        c.margin_calls,
        c.liquidations,
        c.takeovers,
        c.adl,
        c.fills,
        c.collateral,
        c.funding,
        c.unevaluable,
    ]
}

#[test]
fn sharding_changes_no_decision_or_balance_while_the_fund_suffices() {
    let mut takeovers = 0;
    for seed in [3u64, 17, 101] {
        let mut whole = Shards::single(loaded(1_000_000_000));
        let expected = drive(&mut whole, seed, 3_000);
        for n in [2usize, 3, 5] {
            let mut shards = Shards::split(loaded(1_000_000_000), n);
            let got = drive(&mut shards, seed, 3_000);
            assert_eq!(got.len(), expected.len(), "seed {seed}, {n} shards");
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert_eq!(g, e, "seed {seed}, {n} shards: input {}", i + 1);
            }
            assert_eq!(by_id(&shards), by_id(&whole), "seed {seed}, {n} shards");
            let (a, b) = (shards.summary(), whole.summary());
            assert_eq!(
                account_counts(a.counters),
                account_counts(b.counters),
                "seed {seed}, {n} shards"
            );
            // Fees come from the accounts' liquidations: the same to the last unit. What the
            // fund's inventory realised is booked per slice, each booking floored, so the
            // balance may differ by a unit per fill of the fund's orders.
            assert_eq!(a.fund.fees(), b.fund.fees(), "seed {seed}, {n} shards");
            assert_eq!(a.fund.initial(), b.fund.initial());
            assert_eq!(inventory(&shards), inventory(&whole), "seed {seed}");
            let diff = a
                .fund
                .balance()
                .to_bits()
                .abs_diff(b.fund.balance().to_bits());
            let fund_fills = a.counters.liquidation_fills + b.counters.liquidation_fills;
            assert!(
                diff <= u128::from(fund_fills),
                "seed {seed}, {n} shards: fund {:?} vs {:?}",
                a.fund,
                b.fund
            );
        }
        let c = whole.counters();
        assert!(
            c.liquidations > 0 && c.margin_calls > 0 && c.liquidation_fills > 0,
            "seed {seed}: the path must call and liquidate ({c:?})"
        );
        assert_eq!(c.adl, 0, "seed {seed}: no remainder goes to ADL");
        takeovers += c.takeovers;
    }
    assert!(takeovers > 0, "the fund's slices take remainders over");
}

#[test]
fn a_reload_is_announced_once_and_applied_in_every_shard() {
    let mut shards = Shards::split(loaded(1_000_000), 3);
    let mut params = shards.first().params();
    params.config.call_level = crate::margin::Rate(500_000_000);
    params.config.rearm_level = crate::margin::Rate(400_000_000);
    let mut outputs = Vec::new();
    let outcome = shards
        .reload(&params, 7, &mut |o| outputs.push(o))
        .expect("accepted");
    let announced = outputs
        .iter()
        .filter(|o| matches!(o, Output::Alert(a) if a.code == alert_code::CONFIG_RELOADED))
        .count();
    assert_eq!(announced, 1);
    assert!(matches!(outputs[0], Output::Alert(a) if a.code == alert_code::CONFIG_RELOADED));
    for e in shards.engines() {
        assert_eq!(e.config().call_level, params.config.call_level);
    }
    // Every shard evaluated its own units again: together, what one engine evaluates.
    let mut whole = Shards::single(loaded(1_000_000));
    let alone = whole.reload(&params, 7, &mut |_| {}).expect("accepted");
    assert_eq!(outcome, alone);
    assert!(outcome.margin_calls > 0, "a lower call level raises calls");
    // Refused as a whole: nothing changes, nothing is emitted.
    params.instruments.pop();
    let mut refused = Vec::new();
    assert!(shards.reload(&params, 8, &mut |o| refused.push(o)).is_err());
    assert!(refused.is_empty());
}

//! ADL rankings against the full sort they replace.
//!
//! The oracle is the ranking as it was first written: every opposite-side holder deduplicated
//! through a `BTreeSet`, scored by the original `profit% × effective leverage` (the position's
//! bankruptcy price from [`Account::bankruptcy_price`], every step in `I80F48`), and fully sorted
//! by descending score then ascending account id (a stable sort). Random books (cross and
//! isolated, some accounts copies of others under another id so that scores tie, ids out of
//! index order) are driven through random ticks with jumps, fills that close, flip and reopen
//! positions (so holder lists hold duplicates and stale units), collateral changes and ADL with
//! an empty fund; after every input, for every instrument and side, the lazy ranking must give
//! the oracle's entries one by one for every prefix, whether read from the start or after a
//! rebuild in a used ranking's buffers, and every position's score must equal the oracle's to
//! the bit.

use std::collections::BTreeSet;

use fixed::types::I80F48;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::adl::{AdlRanking, AdlScratch};
use super::tests::{BASE, test_table};
use super::*;
use crate::ingest::{FeedBody, FeedEvent};
use crate::margin::{Instrument, Position, Qty};

/// The original score of position `i` of account `a` (the oracle).
fn first_score(e: &RiskEngine, a: u32, i: usize, mark: Price) -> Option<I80F48> {
    let account = &e.accounts[a as usize];
    let p = &account.positions()[i];
    let inst = e.table.get(p.instrument())?;
    let nd = inst.notional_decimals();
    let upnl = Money::from_scaled_floor(p.upnl_exact(mark), nd)?.to_fixed();
    let cost = Money::from_scaled_floor(p.cost().abs(), nd)?.to_fixed();
    let value = Money::from_scaled_floor(Instrument::notional(p.qty(), mark), nd)?.to_fixed();
    if cost <= 0 || value <= 0 {
        return None;
    }
    let profit = upnl.checked_div(cost)?;
    let bp = account
        .bankruptcy_price(i, &e.table, &e.marks)
        .ok()
        .flatten()
        .map(Money::to_fixed)
        .unwrap_or(I80F48::ZERO);
    let qty = I80F48::from_num(p.qty().0.unsigned_abs())
        .checked_div(I80F48::from_num(10u64.checked_pow(inst.qty_decimals)?))?;
    let bank_value = bp.checked_mul(qty)?;
    let margin = (value - bank_value).abs().max(I80F48::DELTA);
    let leverage = value.checked_div(margin)?;
    if profit >= 0 {
        profit.checked_mul(leverage)
    } else {
        profit.checked_div(leverage)
    }
}

/// Whether the account's position on the instrument is in a unit being liquidated (the oracle).
fn first_liquidating(e: &RiskEngine, account: u32, instrument: u32) -> bool {
    let a = &e.accounts[account as usize];
    let Some(i) = a.position_index(InstrumentId(instrument)) else {
        return false;
    };
    let holder = match a.positions()[i].mode() {
        MarginMode::Cross => Some(account),
        MarginMode::Isolated => e.units.isolated(account, instrument),
    };
    holder.and_then(|h| e.units.get(h)).map(|h| h.state) == Some(units::UnitState::Liquidating)
}

/// The original ranking: dedupe through a `BTreeSet`, score every holder, sort them all.
fn full_sort(e: &RiskEngine, instrument: u32, sign: i8) -> Vec<(I80F48, u32)> {
    let id = InstrumentId(instrument);
    let Some(mark) = e.marks.get(id) else {
        return Vec::new();
    };
    let mut ranked: Vec<(I80F48, u32)> = Vec::new();
    let mut seen = BTreeSet::new();
    for &unit in e.holders.get(instrument as usize).into_iter().flatten() {
        let Some(u) = e.units.get(unit) else {
            continue;
        };
        let a = u.account;
        if !seen.insert(a) {
            continue;
        }
        let account = &e.accounts[a as usize];
        let Some(i) = account.position_index(id) else {
            continue;
        };
        if account.positions()[i].side() != sign {
            continue;
        }
        if first_liquidating(e, a, instrument) {
            continue;
        }
        ranked.push((first_score(e, a, i, mark).unwrap_or(I80F48::MIN), a));
    }
    ranked.sort_by(|x, y| {
        y.0.cmp(&x.0)
            .then(
                e.accounts[x.1 as usize]
                    .id()
                    .cmp(&e.accounts[y.1 as usize].id()),
            )
            .then(x.1.cmp(&y.1))
    });
    ranked
}

fn money(units: i64) -> Money {
    Money::from_scaled_floor(i128::from(units), 8).expect("in range")
}

/// A random book: some accounts are copies of an earlier one under another id (equal scores),
/// and ids are not in index order.
fn random_accounts(rng: &mut StdRng) -> Vec<Account> {
    let n = rng.random_range(10..120);
    random_accounts_of(rng, n)
}

/// [`random_accounts`] with `n` accounts.
fn random_accounts_of(rng: &mut StdRng, n: u64) -> Vec<Account> {
    let mut ids: Vec<u64> = (0..n).map(|k| 500 + 7 * k).collect();
    for k in (1..ids.len()).rev() {
        ids.swap(k, rng.random_range(0..=k));
    }
    let mut out: Vec<Account> = Vec::with_capacity(n as usize);
    for &id in &ids {
        if !out.is_empty() && rng.random_bool(0.2) {
            let twin = &out[rng.random_range(0..out.len())];
            let mut a = Account::new(id, twin.wallet());
            for p in twin.positions() {
                a.push_position(*p).expect("distinct instruments");
            }
            out.push(a);
            continue;
        }
        let mut a = Account::new(id, money(rng.random_range(50..20_000) * 100_000_000));
        for _ in 0..rng.random_range(1..4) {
            let instrument = rng.random_range(0..3u32);
            if a.position_index(InstrumentId(instrument)).is_some() {
                continue;
            }
            let base = BASE[instrument as usize];
            let lots = (rng.random_range(2_000i64..80_000) * 100_000 / base).max(1);
            let qty = if rng.random_bool(0.5) { lots } else { -lots };
            let entry = base + base * rng.random_range(-400..400) / 10_000;
            let isolated = rng.random_bool(0.35);
            let (mode, margin) = if isolated {
                let notional = i128::from(lots) * i128::from(entry);
                let pct = rng.random_range(1..40);
                (
                    MarginMode::Isolated,
                    Money::from_scaled_floor(notional * pct / 100, 5).expect("in range"),
                )
            } else {
                (MarginMode::Cross, Money::ZERO)
            };
            let p = Position::open(
                InstrumentId(instrument),
                Qty(qty),
                Price(entry),
                mode,
                margin,
            )
            .expect("valid position");
            a.push_position(p).expect("distinct instruments");
        }
        out.push(a);
    }
    out
}

fn marks() -> MarkPrices {
    let mut m = MarkPrices::new(3);
    for (i, p) in BASE.iter().enumerate() {
        m.set(InstrumentId(i as u32), Price(*p));
    }
    m
}

/// What a run checked, so that the test can tell it exercised what it claims.
#[derive(Debug, Default)]
struct Seen {
    rankings: u64,
    entries: u64,
    /// Adjacent entries of an oracle ranking with equal scores (ordered by id).
    ties: u64,
    adl: u64,
    /// Positions left out of the rankings as being liquidated: cross, isolated.
    liquidating: [u64; 2],
    /// Positions bounded: finitely, and by `+∞`.
    bounds: [u64; 2],
    /// Candidates bounded and scored exactly by the rankings read whole.
    bounded: u64,
    scored: u64,
    /// The same, by the rankings read only as far as their first 3 entries.
    bounded_top: u64,
    scored_top: u64,
}

/// Checks every ranking of `e` against the oracle, reading it entry by entry, and every bound
/// against its exact score; `used` is a ranking built earlier whose buffers the rebuild reuses.
fn check_rankings(
    e: &RiskEngine,
    rng: &mut StdRng,
    scratch: &mut AdlScratch,
    used: &mut AdlRanking,
    seen: &mut Seen,
    context: &str,
) {
    e.accounts.check_copies();
    for instrument in 0..3u32 {
        for sign in [1i8, -1] {
            let want = full_sort(e, instrument, sign);
            let mut got = e.adl_ranking(instrument, sign, scratch, AdlRanking::default());
            // Entry by entry, as `adl_now` reads them, every prefix.
            for (k, w) in want.iter().enumerate() {
                assert_eq!(
                    got.get(e, k),
                    Some(*w),
                    "{context}: {instrument}/{sign} entry {k}"
                );
            }
            assert_eq!(got.get(e, want.len()), None);
            assert_eq!(got.in_order(e), want, "{context}: {instrument}/{sign}");
            let (bounded, scored) = got.work();
            seen.bounded += u64::from(bounded);
            seen.scored += u64::from(scored);
            // A rebuild into a partly read ranking's buffers gives the same, read partly, then
            // listed whole.
            let reused = std::mem::take(used);
            let mut again = e.adl_ranking(instrument, sign, scratch, reused);
            let read = rng.random_range(0..=want.len());
            for (k, w) in want.iter().enumerate().take(read) {
                assert_eq!(again.get(e, k), Some(*w), "{context}: rebuilt entry {k}");
            }
            assert_eq!(again.in_order(e), want, "{context}: rebuilt, {read} read");
            *used = again;
            // Read as far as ADL usually reads.
            let mut top = e.adl_ranking(instrument, sign, scratch, AdlRanking::default());
            for k in 0..3 {
                assert_eq!(top.get(e, k), want.get(k).copied(), "{context}: top {k}");
            }
            let (bounded, scored) = top.work();
            seen.bounded_top += u64::from(bounded);
            seen.scored_top += u64::from(scored);
            seen.rankings += 1;
            seen.entries += want.len() as u64;
            seen.ties += want.windows(2).filter(|w| w[0].0 == w[1].0).count() as u64;
        }
    }
    let raw: Vec<f64> = (0..3u32)
        .map(|i| e.marks.get(InstrumentId(i)).map_or(0.0, |m| m.0 as f64))
        .collect();
    for (a, account) in e.accounts.as_slice().iter().enumerate() {
        for (i, p) in account.positions().iter().enumerate() {
            if first_liquidating(e, a as u32, p.instrument().0) {
                seen.liquidating[usize::from(p.mode() == MarginMode::Isolated)] += 1;
            }
            let Some(mark) = e.marks.get(p.instrument()) else {
                continue;
            };
            // Every score, to the bit.
            let score = e.adl_score(a as u32, i, mark);
            assert_eq!(
                score,
                first_score(e, a as u32, i, mark),
                "{context}: score of account {a} position {i}"
            );
            // Every bound at least its score.
            let bound = e
                .accounts
                .adl_bound(a as u32, p.instrument().0, p.side(), mark.0 as f64, &raw)
                .expect("a held position is a candidate");
            let score = score.unwrap_or(I80F48::MIN);
            assert!(
                at_most(score, bound),
                "{context}: account {a} position {i}: score {score} above its bound {bound}"
            );
            seen.bounds[usize::from(bound.is_infinite())] += 1;
        }
    }
}

/// Whether `score ≤ bound`, exactly: `bits·2^-48 ≤ b` ⇔ `bits ≤ ⌊b·2^48⌋` for whole `bits`.
fn at_most(score: I80F48, bound: f64) -> bool {
    bound == f64::INFINITY || score.to_bits() <= (bound * (1u64 << 48) as f64).floor() as i128
}

/// One random run of `events` inputs; checks after every input.
fn run(seed: u64, events: usize, seen: &mut Seen) {
    let mut rng = StdRng::seed_from_u64(seed);
    let accounts = random_accounts(&mut rng);
    let mut config = RiskConfig::default();
    config.liquidation.fill_deadline_ns = rng.random_range(1..4) * 1_000_000_000;
    let mut e = RiskEngine::new(test_table(), marks(), accounts.clone(), config, Scan::Index);
    let mut scratch = AdlScratch::default();
    let mut used = AdlRanking::default();
    check_rankings(&e, &mut rng, &mut scratch, &mut used, seen, "at load");
    let mut prices = BASE;
    let mut now_ns = 1_000u64;
    let before = e.counters().adl;
    for seq in 1..=events as u64 {
        now_ns += rng.random_range(10_000_000..1_500_000_000);
        let roll = rng.random_range(0..100);
        let input = if roll < 25 {
            // Opens, adds to, closes or flips a position (holder lists gain duplicates).
            let a = &accounts[rng.random_range(0..accounts.len())];
            let instrument = rng.random_range(0..3u32);
            let p = prices[instrument as usize];
            let held = e.accounts[e.account_index[&a.id()] as usize]
                .position_index(InstrumentId(instrument))
                .map_or(0, |i| {
                    e.accounts[e.account_index[&a.id()] as usize].positions()[i]
                        .qty()
                        .0
                });
            let lots = (rng.random_range(1..30_000) * 100_000 / BASE[instrument as usize]).max(1);
            let qty = match rng.random_range(0..3) {
                0 if held != 0 => -held,
                1 if held != 0 => -2 * held,
                _ if rng.random_bool(0.5) => lots,
                _ => -lots,
            };
            Input::Fill(shm::Fill {
                account: a.id(),
                instrument,
                qty,
                price_px: p + p * rng.random_range(-50..50) / 10_000,
                fee_money: rng.random_range(0..500_000_000),
                liquidation_order_id: 0,
            })
        } else if roll < 32 {
            let a = &accounts[rng.random_range(0..accounts.len())];
            Input::Collateral(shm::Collateral {
                account: a.id(),
                amount_money: rng.random_range(-2_000i64..3_000) * 100_000_000,
            })
        } else {
            let instrument = rng.random_range(0..3u32);
            let p = &mut prices[instrument as usize];
            let bps = match rng.random_range(0..20) {
                0 => rng.random_range(-3_000..3_000),
                1..=4 => rng.random_range(-800..800),
                _ => rng.random_range(-150..150),
            };
            *p = (*p + *p * bps / 10_000).max(10);
            Input::Tick(shm::Tick {
                instrument,
                mark_px: *p,
                index_px: *p,
                bid_px: *p,
                ask_px: *p,
                bid_qty: 0,
                ask_qty: 0,
            })
        };
        let event = FeedEvent {
            seq,
            publish_ns: now_ns,
            receive_ns: now_ns,
            body: FeedBody::Input(input),
        };
        e.on_event(&event, &mut |_| {});
        let context = format!("seed {seed} seq {seq} after {input:?}");
        check_rankings(&e, &mut rng, &mut scratch, &mut used, seen, &context);
    }
    seen.adl += e.counters().adl - before;
}

#[test]
fn lazy_rankings_read_like_the_full_sort_in_random_books() {
    let mut seen = Seen::default();
    for seed in 0..40 {
        run(seed, 150, &mut seen);
    }
    // The runs exercise what they claim to check: long rankings, ties broken by id, ADL, and
    // cross and isolated positions being liquidated.
    assert!(
        seen.rankings > 10_000
            && seen.entries > 100_000
            && seen.ties > 1_000
            && seen.adl > 100
            && seen.liquidating.iter().all(|&n| n > 1_000),
        "{seen:?}"
    );
    // Nearly every bound is finite, and a ranking read to its third entry scores under a third
    // of its candidates.
    assert!(seen.bounds[0] > 50 * seen.bounds[1], "{seen:?}");
    assert!(seen.scored_top * 3 < seen.bounded_top, "{seen:?}");
    // Read whole, a ranking scores every entry it gives, and no listed account twice.
    assert!(
        seen.entries <= seen.scored && seen.scored <= seen.bounded,
        "{seen:?}"
    );
}

/// Instruments with decimals far apart, so that the bound's conversions meet every scale.
fn edge_table() -> InstrumentTable {
    let mut table = InstrumentTable::new();
    for (k, (price_decimals, qty_decimals)) in
        [(2, 3), (8, 0), (0, 8), (6, 6)].into_iter().enumerate()
    {
        let inst = Instrument::new(crate::margin::InstrumentSpec {
            symbol: format!("EDGE{k}"),
            kind: crate::margin::InstrumentKind::Perpetual,
            price_decimals,
            qty_decimals,
            tick: Price(1),
            min_qty: Qty(1),
            liquidation_fee: crate::num::Rate(5_000_000),
            tiers: vec![crate::margin::TierSpec {
                min_notional: None,
                max_notional: i128::from(i64::MAX),
                mmr: crate::num::Rate(5_000_000),
                imr: crate::num::Rate(10_000_000),
                amount: None,
            }],
        })
        .expect("valid edge instrument");
        table.push(inst);
    }
    table
}

/// The amount nearest `x` (zero when out of range).
fn money_f64(x: f64) -> Money {
    I80F48::checked_from_num(x).map_or(Money::ZERO, |f| Money::from_bits(f.to_bits()))
}

/// A raw amount spread over many magnitudes: `1` to about `10^max`.
fn spread(rng: &mut StdRng, max: u32) -> i64 {
    let digits = rng.random_range(0..=max);
    rng.random_range(1..=10i64.pow(digits))
}

#[test]
fn bounds_hold_at_the_edges() {
    let table = edge_table();
    let mut rng = StdRng::seed_from_u64(11);
    let (mut finite, mut infinite, mut near_zero) = (0u64, 0u64, 0u64);
    let (mut ranked, mut wide) = (0usize, 0usize);
    for round in 0..300 {
        let mut marks = MarkPrices::new(4);
        let raw: Vec<i64> = (0..4).map(|_| spread(&mut rng, 11)).collect();
        for (i, &m) in raw.iter().enumerate() {
            marks.set(InstrumentId(i as u32), Price(m));
        }
        let mut accounts = Vec::new();
        for k in 0..40u64 {
            let mut a = Account::new(k, Money::ZERO);
            // Up to 5 positions: rows hold 3, the rest overflow.
            let mut upnl = 0.0f64;
            for instrument in 0..rng.random_range(1..=4u32) {
                let inst = table
                    .get(InstrumentId(instrument))
                    .expect("edge instrument");
                let mark = raw[instrument as usize];
                let lots = spread(&mut rng, 9);
                let qty = if rng.random_bool(0.5) { lots } else { -lots };
                let entry = match rng.random_range(0..4) {
                    0 => mark,
                    1 => (mark + rng.random_range(-3..=3)).max(1),
                    2 => spread(&mut rng, 11),
                    _ => (mark as f64 * rng.random_range(0.5..1.5)) as i64 + 1,
                };
                let nd = inst.notional_decimals() as i32;
                let position_upnl =
                    (qty as f64 * mark as f64 - qty as f64 * entry as f64) / 10f64.powi(nd);
                let isolated = rng.random_bool(0.3);
                // Isolated margin around what makes the position's equity nearly zero.
                let margin = if isolated {
                    let target =
                        -position_upnl * rng.random_range(0.9..1.1) + rng.random_range(0.0..1e-6);
                    money_f64(target.max(0.0))
                } else {
                    upnl += position_upnl;
                    Money::ZERO
                };
                let mode = if isolated {
                    MarginMode::Isolated
                } else {
                    MarginMode::Cross
                };
                let Ok(p) = Position::open(
                    InstrumentId(instrument),
                    Qty(qty),
                    Price(entry),
                    mode,
                    margin,
                ) else {
                    continue;
                };
                let _ = a.push_position(p);
            }
            // A wallet that puts the cross equity near zero, one 2^-48 either side, or anywhere.
            let wallet = match rng.random_range(0..4) {
                0 => -upnl,
                1 => -upnl + rng.random_range(-1e-9..1e-9),
                2 => -upnl * rng.random_range(0.0..3.0),
                _ => rng.random_range(-1e6..1e9),
            };
            let wallet = money_f64(wallet);
            let _ = a.change_wallet(wallet);
            accounts.push(a);
        }
        let e = RiskEngine::new(
            table.clone(),
            marks.clone(),
            accounts,
            RiskConfig::default(),
            Scan::Index,
        );
        e.accounts.check_copies();
        // Accounts of 4 positions have no copies and come through the second list.
        for instrument in 0..4u32 {
            for sign in [1i8, -1] {
                let mut r = e.adl_ranking(
                    instrument,
                    sign,
                    &mut AdlScratch::default(),
                    AdlRanking::default(),
                );
                let want = full_sort(&e, instrument, sign);
                assert_eq!(r.in_order(&e), want, "round {round} {instrument}/{sign}");
                ranked += want.len();
            }
        }
        wide += e
            .accounts
            .as_slice()
            .iter()
            .filter(|a| a.positions().len() == 4)
            .count();
        let raw_f: Vec<f64> = raw.iter().map(|&m| m as f64).collect();
        for (a, account) in e.accounts.as_slice().iter().enumerate() {
            for (i, p) in account.positions().iter().enumerate() {
                let mark = marks.get(p.instrument()).expect("every mark set");
                let score = e.adl_score(a as u32, i, mark).unwrap_or(I80F48::MIN);
                let bound = e
                    .accounts
                    .adl_bound(a as u32, p.instrument().0, p.side(), mark.0 as f64, &raw_f)
                    .expect("a held position is a candidate");
                assert!(
                    at_most(score, bound),
                    "round {round} account {a} position {i}: score {score} above its bound {bound}"
                );
                if bound.is_finite() {
                    finite += 1;
                    if score.abs() > I80F48::from_num(1000) {
                        near_zero += 1;
                    }
                } else {
                    infinite += 1;
                }
            }
        }
    }
    // Both kinds of bound, and finite bounds on positions so leveraged (equity so near zero)
    // that their scores exceed 1,000.
    assert!(
        finite > 5_000 && infinite > 1_000 && near_zero > 100,
        "{finite} {infinite} {near_zero}"
    );
    // Rankings long enough to mean something, with accounts of 4 positions among them.
    assert!(ranked > 5_000 && wide > 1_000, "{ranked} {wide}");
}

#[test]
fn rankings_of_many_holders_read_like_the_full_sort() {
    // Sides of hundreds of positions: most candidates wait unordered outside the `BEST` kept,
    // and reading far enough orders them.
    let mut rng = StdRng::seed_from_u64(17);
    let (mut read, mut outside) = (0usize, 0usize);
    for round in 0..6 {
        let accounts = random_accounts_of(&mut rng, 1_500);
        let mut e = RiskEngine::new(
            test_table(),
            marks(),
            accounts,
            RiskConfig::default(),
            Scan::Index,
        );
        let mut prices = BASE;
        for seq in 1..=20u64 {
            let instrument = rng.random_range(0..3u32);
            let p = &mut prices[instrument as usize];
            *p = (*p + *p * rng.random_range(-300..300) / 10_000).max(10);
            e.on_tick_at(
                instrument,
                Price(*p),
                Book::default(),
                seq,
                seq * 1_000_000,
                &mut |_| {},
            );
            for instrument in 0..3u32 {
                for sign in [1i8, -1] {
                    let want = full_sort(&e, instrument, sign);
                    let mut r = e.adl_ranking(
                        instrument,
                        sign,
                        &mut AdlScratch::default(),
                        AdlRanking::default(),
                    );
                    let depth = rng.random_range(0..=want.len().min(100));
                    for (k, w) in want.iter().enumerate().take(depth) {
                        assert_eq!(r.get(&e, k), Some(*w), "round {round} seq {seq} entry {k}");
                    }
                    assert_eq!(r.in_order(&e), want, "round {round} seq {seq}");
                    read += depth;
                    outside += want.len().saturating_sub(super::adl::BEST);
                }
            }
        }
    }
    assert!(read > 10_000 && outside > 100_000, "{read} {outside}");
}

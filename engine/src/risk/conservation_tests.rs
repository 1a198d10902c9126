//! Money is accounted for: random scenarios (cross and isolated accounts on three instruments,
//! one of them, on odd seeds, a future that expires mid-run and settles at its index TWAP;
//! funds from empty to large, so bankrupt remainders go to the fund's takeover or to ADL;
//! price paths with jumps, liquidation orders filled fully, partly or not at all at random prices
//! no worse than their limits, deadlines and ADL, ordinary fills, collateral changes) are driven
//! through [`RiskEngine::on_event`]; a small ledger then replays the input and output records
//! alone, from the initial state, and must find every wallet, every position (quantity, cost,
//! isolated margin) and the insurance fund equal to the engine's to the last fixed-point unit.
//!
//! The ledger books, in record order: collateral changes; ordinary fills (PnL and the record's
//! fee; an isolated loss beyond its margin is covered by the fund); fills of liquidation orders
//! (PnL, the fee at the instrument's rate to the fund, for a full close-out the difference to the
//! order's limit or the handed-back isolated margin to the fund, a negative wallet reset by the
//! fund); ADL records (both sides closed at the record's price with no fee, then the bankrupt
//! wallet reset). The one fact the records do not carry is whether a liquidation order is a full
//! close-out; the ledger reads it from [`RiskEngine::liquidation_order`] when the order is sent.
//!
//! Along the way: every liquidation order's limit is no worse than its position's bankruptcy
//! price when sent; ADL moves no open interest and its cash flows cancel; an isolated position's
//! liquidation fill changes nothing else in its account; and an engine that scans every unit
//! emits exactly the same records as the indexed one.

use std::collections::{HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::takeover::FUND_ACCOUNT_ID;
use super::tests::{BASE, test_table};
use super::*;
use crate::ingest::{FeedBody, FeedEvent};
use crate::margin::{Fill, Instrument, Position, Qty};
use crate::shm::Side;

/// The replaying ledger: its own accounts and fund, fed with records only.
struct Ledger {
    table: InstrumentTable,
    accounts: HashMap<u64, Account>,
    fund: Money,
    /// Liquidation orders seen in the outputs: id → (record, full close-out).
    orders: HashMap<u64, (shm::Liquidation, bool)>,
    /// Last mark of each instrument, from the tick records.
    marks: [i64; 3],
    /// Instruments a `Settling` status record closed: their fills are refused.
    settled: [bool; 3],
}

fn neg(m: Money) -> Money {
    m.checked_neg().expect("in range")
}

impl Ledger {
    fn cover(&mut self, amount: Money) -> Money {
        let paid = if amount <= self.fund {
            amount
        } else {
            self.fund.max(Money::ZERO)
        };
        self.fund = self.fund.checked_sub(paid).expect("in range");
        paid
    }

    /// The fund's inventory realised PnL: into (or out of) the fund, as the engine sweeps it.
    fn sweep(&mut self) {
        let w = self.accounts[&FUND_ACCOUNT_ID].wallet();
        if w.is_positive() {
            self.fund = self.fund.checked_add(w).expect("in range");
        } else if w.is_negative() {
            self.cover(neg(w));
        }
        self.wallet(FUND_ACCOUNT_ID, neg(w));
    }

    fn reset_negative(&mut self, account: u64) {
        if account == FUND_ACCOUNT_ID {
            self.sweep();
            return;
        }
        let wallet = self.accounts[&account].wallet();
        if wallet.is_negative() {
            let paid = self.cover(neg(wallet));
            self.wallet(account, paid);
        }
    }

    fn wallet(&mut self, account: u64, delta: Money) {
        self.accounts
            .get_mut(&account)
            .expect("known account")
            .change_wallet(delta)
            .expect("in range");
    }

    fn mode(&self, account: u64, instrument: u32) -> MarginMode {
        let a = &self.accounts[&account];
        a.position_index(InstrumentId(instrument))
            .map_or(MarginMode::Cross, |i| a.positions()[i].mode())
    }

    fn input(&mut self, input: &Input) {
        match *input {
            Input::Collateral(c) => {
                let amount = Money::from_scaled_floor(i128::from(c.amount_money), 8).unwrap();
                if self.accounts.contains_key(&c.account) {
                    self.wallet(c.account, amount);
                }
            }
            Input::Status(st) if st.state == shm::InstrumentState::Settling => {
                self.settled[st.instrument as usize] = true;
            }
            Input::Fill(f) if self.settled[f.instrument as usize] => {}
            Input::Tick(t) if t.mark_px > 0 => self.marks[t.instrument as usize] = t.mark_px,
            Input::Funding(f) => {
                let inst = self.table.get(InstrumentId(f.instrument)).unwrap().clone();
                let mark = self.marks[f.instrument as usize];
                let mut ids: Vec<u64> = self.accounts.keys().copied().collect();
                ids.sort_unstable();
                // The fund's inventory pays no funding.
                for id in ids.into_iter().filter(|&id| id != FUND_ACCOUNT_ID) {
                    let a = self.accounts.get_mut(&id).unwrap();
                    let Some(i) = a.position_index(InstrumentId(f.instrument)) else {
                        continue;
                    };
                    let p = a.positions()[i];
                    // −qty · mark · rate, floored.
                    let pay = Money::from_scaled_floor(
                        -i128::from(p.qty().0) * i128::from(mark) * i128::from(f.rate_e9),
                        inst.margin_decimals(),
                    )
                    .unwrap();
                    if p.mode() == MarginMode::Cross {
                        a.change_wallet(pay).unwrap();
                    } else {
                        let booked = pay.max(neg(p.isolated_margin()));
                        a.change_wallet(booked).unwrap();
                        a.transfer_isolated_margin(InstrumentId(f.instrument), booked)
                            .unwrap();
                        if pay < booked {
                            self.cover(booked.checked_sub(pay).unwrap());
                        }
                    }
                }
            }
            Input::Fill(f) if self.orders.contains_key(&f.liquidation_order_id) => {
                self.liquidation_fill(&f);
            }
            Input::Fill(f) => {
                let Some(a) = self.accounts.get_mut(&f.account) else {
                    return;
                };
                let id = InstrumentId(f.instrument);
                let mode = a
                    .position_index(id)
                    .map_or(MarginMode::Cross, |i| a.positions()[i].mode());
                let fill = Fill {
                    instrument: id,
                    qty: Qty(f.qty),
                    price: Price(f.price_px),
                    fee: Money::from_scaled_floor(i128::from(f.fee_money), 8).unwrap(),
                    mode,
                };
                if let Ok(outcome) = a.apply_fill(&self.table, fill)
                    && outcome.isolated_shortfall.is_positive()
                {
                    self.cover(outcome.isolated_shortfall);
                }
            }
            _ => {}
        }
    }

    /// Books a liquidation fill; returns the wallet change it caused.
    fn liquidation_fill(&mut self, f: &shm::Fill) -> Money {
        let (order, full) = self.orders[&f.liquidation_order_id];
        let id = InstrumentId(order.instrument);
        let inst = self.table.get(id).expect("known instrument").clone();
        let signed: i64 = if order.side == Side::Sell { -1 } else { 1 };
        let a = &self.accounts[&order.account];
        let held = a
            .position_index(id)
            .map_or(0, |i| a.positions()[i].qty().0 * -signed)
            .max(0);
        let price = Price(f.price_px);
        if order.account == FUND_ACCOUNT_ID {
            // Booked as reported (the generator never fills more than the child has out).
            let x = f.qty.abs();
            // The fund's own order: no fee, its PnL swept into the fund.
            self.accounts
                .get_mut(&order.account)
                .unwrap()
                .apply_fill(
                    &self.table,
                    Fill {
                        instrument: id,
                        qty: Qty(signed * x),
                        price,
                        fee: Money::ZERO,
                        mode: MarginMode::Cross,
                    },
                )
                .expect("a fund fill books");
            self.sweep();
            return Money::ZERO;
        }
        let x = f.qty.abs().min(held);
        if x == 0 {
            return Money::ZERO;
        }
        // The liquidation fee: rate · notional, rounded up.
        let fee = Money::from_scaled_ceil(
            Instrument::notional(Qty(x), price) * i128::from(inst.liquidation_fee.0),
            inst.margin_decimals(),
        )
        .unwrap();
        let mode = self.mode(order.account, order.instrument);
        let before = self.accounts[&order.account].wallet();
        let outcome = self
            .accounts
            .get_mut(&order.account)
            .unwrap()
            .apply_fill(
                &self.table,
                Fill {
                    instrument: id,
                    qty: Qty(signed * x),
                    price,
                    fee,
                    mode,
                },
            )
            .expect("a liquidation fill books");
        self.fund = self.fund.checked_add(fee).unwrap();
        if full && mode == MarginMode::Isolated {
            if outcome.released_margin.is_positive() {
                self.wallet(order.account, neg(outcome.released_margin));
                self.fund = self.fund.checked_add(outcome.released_margin).unwrap();
            }
        } else if full {
            let diff = i128::from(x) * i128::from(price.0 - order.limit_px) * i128::from(-signed);
            let amount = Money::from_scaled_floor(diff, inst.notional_decimals()).unwrap();
            if amount.is_positive() {
                self.wallet(order.account, neg(amount));
                self.fund = self.fund.checked_add(amount).unwrap();
            } else if amount.is_negative() {
                let paid = self.cover(neg(amount));
                self.wallet(order.account, paid);
            }
        }
        if outcome.isolated_shortfall.is_positive() {
            self.cover(outcome.isolated_shortfall);
        }
        self.reset_negative(order.account);
        self.accounts[&order.account]
            .wallet()
            .checked_sub(before)
            .unwrap()
    }

    /// Books a run of ADL records of one bankrupt position; returns the sum of the signed cash
    /// flows of both sides (zero when the proceeds cancel).
    fn adl(&mut self, run: &[shm::Adl]) -> i128 {
        let mut cash = 0i128;
        for r in run {
            let id = InstrumentId(r.instrument);
            let q = if r.side == Side::Sell { -r.qty } else { r.qty };
            for (account, qty) in [(r.account, q), (r.bankrupt_account, -q)] {
                cash += i128::from(qty) * i128::from(r.price_px);
                let outcome = self
                    .accounts
                    .get_mut(&account)
                    .unwrap()
                    .apply_fill(
                        &self.table,
                        Fill {
                            instrument: id,
                            qty: Qty(qty),
                            price: Price(r.price_px),
                            fee: Money::ZERO,
                            mode: MarginMode::Cross,
                        },
                    )
                    .expect("an ADL close books");
                if outcome.isolated_shortfall.is_positive() {
                    self.cover(outcome.isolated_shortfall);
                }
            }
        }
        if let Some(r) = run.first() {
            if r.account == FUND_ACCOUNT_ID {
                self.sweep();
            }
            self.reset_negative(r.bankrupt_account);
        }
        cash
    }

    fn outputs(&mut self, outs: &[Output]) -> i128 {
        let adl: Vec<shm::Adl> = outs
            .iter()
            .filter_map(|o| match o {
                Output::Adl(a) => Some(*a),
                _ => None,
            })
            .collect();
        for o in outs {
            if let Output::Settlement(st) = o {
                let a = self.accounts.get_mut(&st.account).unwrap();
                let id = InstrumentId(st.instrument);
                let mode = a.positions()[a.position_index(id).unwrap()].mode();
                let outcome = a
                    .apply_fill(
                        &self.table,
                        Fill {
                            instrument: id,
                            qty: Qty(-st.qty),
                            price: Price(st.price_px),
                            fee: Money::ZERO,
                            mode,
                        },
                    )
                    .expect("a settlement books");
                if outcome.isolated_shortfall.is_positive() {
                    self.cover(outcome.isolated_shortfall);
                }
                if st.account == FUND_ACCOUNT_ID {
                    self.sweep();
                }
            }
        }
        let mut cash = 0;
        for run in adl.chunk_by(|a, b| {
            (a.bankrupt_account, a.instrument) == (b.bankrupt_account, b.instrument)
        }) {
            cash += self.adl(run);
        }
        cash
    }
}

fn money(units: i64) -> Money {
    Money::from_scaled_floor(i128::from(units), 8).unwrap()
}

fn random_accounts(rng: &mut StdRng) -> Vec<Account> {
    let n = rng.random_range(4..14);
    (0..n)
        .map(|k| {
            let mut a = Account::new(100 + k, money(rng.random_range(100..20_000) * 100_000_000));
            let count = rng.random_range(1..4);
            for _ in 0..count {
                let instrument = rng.random_range(0..3u32);
                if a.position_index(InstrumentId(instrument)).is_some() {
                    continue;
                }
                let base = BASE[instrument as usize];
                // 2,000–60,000 units of currency of notional.
                let lots = rng.random_range(2_000i64..60_000) * 100_000 / base;
                let lots = lots.max(1);
                let qty = if rng.random_bool(0.5) { lots } else { -lots };
                let entry = base + base * rng.random_range(-300..300) / 10_000;
                let isolated = rng.random_bool(0.35);
                let margin = if isolated {
                    let notional = i128::from(lots) * i128::from(entry);
                    let pct = rng.random_range(2..30);
                    Money::from_scaled_floor(notional * pct / 100, 5).unwrap()
                } else {
                    Money::ZERO
                };
                let mode = if isolated {
                    MarginMode::Isolated
                } else {
                    MarginMode::Cross
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
            a
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

fn total_qty(e: &RiskEngine, instrument: u32) -> i64 {
    e.accounts()
        .iter()
        .flat_map(|a| a.positions())
        .chain(e.fund_inventory())
        .filter(|p| p.instrument().0 == instrument)
        .map(|p| p.qty().0)
        .sum()
}

/// One random scenario; panics on the first discrepancy.
fn run(seed: u64, events: usize) -> (RiskCounters, bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    // Odd seeds make one instrument a dated future that expires mid-run (engine time is the
    // publish stamp, read as Unix ns): it settles at its index TWAP without any status record.
    let table = if seed % 2 == 1 {
        let expiring = (seed / 2 % 3) as u32;
        let mut t = InstrumentTable::new();
        for (id, inst) in test_table().iter() {
            let mut inst = inst.clone();
            if id.0 == expiring {
                inst.kind = crate::margin::InstrumentKind::Future {
                    expiry_unix_s: rng.random_range(100..400),
                };
            }
            t.push(inst);
        }
        t
    } else {
        test_table()
    };
    let accounts = random_accounts(&mut rng);
    let fund0 = money(rng.random_range(0..3) * rng.random_range(0..2_000) * 100_000_000);
    let config = RiskConfig::default();
    let mut e = RiskEngine::new(
        table.clone(),
        marks(),
        accounts.clone(),
        config,
        Scan::Index,
    )
    .with_fund(fund0);
    let mut brute = RiskEngine::new(table.clone(), marks(), accounts.clone(), config, Scan::All)
        .with_fund(fund0);
    if e.accounts() != accounts.as_slice() || e.fund().balance() != fund0 {
        // Something was booked before the first record: nothing to replay it from.
        return (RiskCounters::default(), false);
    }
    let mut ledger = Ledger {
        table: table.clone(),
        accounts: accounts
            .iter()
            .map(|a| (a.id(), a.clone()))
            .chain([(FUND_ACCOUNT_ID, Account::new(FUND_ACCOUNT_ID, Money::ZERO))])
            .collect(),
        fund: fund0,
        orders: HashMap::new(),
        marks: BASE,
        settled: [false; 3],
    };
    let mut prices = BASE;
    let mut now_ns = 1_000u64;
    // Positions liquidation touched: no ordinary fill on them (a venue blocks those).
    let mut liquidated: HashSet<(u64, u32)> = HashSet::new();
    let mut open: Vec<u64> = Vec::new();
    for seq in 1..=events as u64 {
        now_ns += rng.random_range(50_000_000..2_500_000_000);
        open.retain(|id| e.liquidation_order(*id).is_some());
        let roll = rng.random_range(0..100);
        let input = if roll < 12 && !open.is_empty() {
            let id = open[rng.random_range(0..open.len())];
            let o = e.liquidation_order(id).unwrap();
            let q = if rng.random_bool(0.5) {
                o.qty
            } else {
                rng.random_range(1..=o.qty)
            };
            let better = o.limit_px * rng.random_range(0..300) / 10_000;
            let (qty, price) = match o.side {
                Side::Sell => (-q, o.limit_px + better),
                Side::Buy => (q, (o.limit_px - better).max(1)),
            };
            Input::Fill(shm::Fill {
                account: o.account,
                instrument: o.instrument,
                qty,
                price_px: price,
                fee_money: 0,
                liquidation_order_id: id,
            })
        } else if roll < 40 {
            let a = &accounts[rng.random_range(0..accounts.len())];
            let instrument = rng.random_range(0..3u32);
            if liquidated.contains(&(a.id(), instrument)) {
                continue;
            }
            let p = prices[instrument as usize];
            let lots = (rng.random_range(1..20_000) * 100_000 / BASE[instrument as usize]).max(1);
            Input::Fill(shm::Fill {
                account: a.id(),
                instrument,
                qty: if rng.random_bool(0.5) { lots } else { -lots },
                price_px: p + p * rng.random_range(-50..50) / 10_000,
                fee_money: rng.random_range(0..500_000_000),
                liquidation_order_id: 0,
            })
        } else if seq == 350 && seed.is_multiple_of(2) {
            let instrument = (seed / 2 % 3) as u32;
            let p = prices[instrument as usize];
            Input::Status(shm::Status {
                instrument,
                state: shm::InstrumentState::Settling,
                settle_px: if rng.random_bool(0.5) { p + p / 50 } else { 0 },
            })
        } else if roll < 50 {
            Input::Funding(shm::Funding {
                instrument: rng.random_range(0..3),
                rate_e9: rng.random_range(-3_000_000..3_000_000),
            })
        } else if roll < 56 {
            let a = &accounts[rng.random_range(0..accounts.len())];
            Input::Collateral(shm::Collateral {
                account: a.id(),
                amount_money: rng.random_range(-2_000i64..5_000) * 100_000_000,
            })
        } else {
            let instrument = rng.random_range(0..3u32);
            let p = &mut prices[instrument as usize];
            let bps = match rng.random_range(0..20) {
                0 => rng.random_range(-4_000..4_000),
                1..=3 => rng.random_range(-1_000..1_000),
                _ => rng.random_range(-150..150),
            };
            *p = (*p + *p * bps / 10_000).max(10);
            let spread = (*p / 2_000).max(1);
            let size = |rng: &mut StdRng| {
                if rng.random_bool(0.2) {
                    0
                } else {
                    rng.random_range(1..200_000)
                }
            };
            Input::Tick(shm::Tick {
                instrument,
                mark_px: *p,
                index_px: *p,
                bid_px: *p - spread,
                ask_px: *p + spread,
                bid_qty: size(&mut rng),
                ask_qty: size(&mut rng),
            })
        };
        let event = FeedEvent {
            seq,
            publish_ns: now_ns,
            receive_ns: now_ns,
            body: FeedBody::Input(input),
        };
        let before: Vec<Account> = e.accounts().to_vec();
        let oi_before: Vec<i64> = (0..3).map(|i| total_qty(&e, i)).collect();
        let mut outs = Vec::new();
        e.on_event(&event, &mut |o| outs.push(o));
        let mut outs_brute = Vec::new();
        brute.on_event(&event, &mut |o| outs_brute.push(o));
        assert_eq!(
            outs, outs_brute,
            "seed {seed} seq {seq}: index and brute force differ on {input:?}"
        );

        assert_eq!(
            e.unit_states().collect::<Vec<_>>(),
            brute.unit_states().collect::<Vec<_>>(),
            "seed {seed} seq {seq}: unit states differ after {input:?} → {outs:?}"
        );
        // A future whose expiry the event's time reached settled before the input applied.
        for (id, inst) in table.iter() {
            if let crate::margin::InstrumentKind::Future { expiry_unix_s } = inst.kind
                && i128::from(now_ns) >= i128::from(expiry_unix_s) * 1_000_000_000
            {
                ledger.settled[id.0 as usize] = true;
            }
        }
        // The replay, from the records alone (plus each new order's full flag).
        let isolated_fill = match input {
            Input::Fill(f) => ledger
                .orders
                .get(&f.liquidation_order_id)
                .map(|(o, _)| (o.account, o.instrument))
                .filter(|&(a, i)| ledger.mode(a, i) == MarginMode::Isolated),
            _ => None,
        };
        let wallet_change = match input {
            Input::Fill(f)
                if ledger.orders.contains_key(&f.liquidation_order_id)
                    && !ledger.settled[f.instrument as usize] =>
            {
                Some(ledger.liquidation_fill(&f))
            }
            _ => {
                ledger.input(&input);
                None
            }
        };
        let cash = ledger.outputs(&outs);
        assert_eq!(cash, 0, "seed {seed} seq {seq}: ADL proceeds do not cancel");
        for o in &outs {
            match o {
                Output::Liquidation(l) => {
                    let info = e
                        .liquidation_order(l.order_id)
                        .expect("a sent order is open");
                    assert_eq!((info.limit_px, info.qty), (l.limit_px, l.qty));
                    ledger.orders.insert(l.order_id, (*l, info.full));
                    liquidated.insert((l.account, l.instrument));
                    open.push(l.order_id);
                    if l.account == FUND_ACCOUNT_ID {
                        // The fund's own order: at the touch, not bound by a bankruptcy price.
                        assert!(l.limit_px > 0, "seed {seed}: a fund order without a price");
                        continue;
                    }
                    // Never worse than the bankruptcy price at the time it is sent.
                    let a = e.accounts().iter().find(|a| a.id() == l.account).unwrap();
                    let i = a.position_index(InstrumentId(l.instrument)).unwrap();
                    let bp = a.bankruptcy_price(i, e.instruments(), e.marks()).unwrap();
                    let limit = Money::from_scaled_floor(i128::from(l.limit_px), 2).unwrap();
                    match (l.side, bp) {
                        (Side::Sell, Some(bp)) => {
                            assert!(limit >= bp, "seed {seed}: sell below bankruptcy")
                        }
                        (Side::Buy, Some(bp)) => assert!(
                            limit <= bp,
                            "seed {seed} seq {seq}: buy above bankruptcy {bp:?} {l:?} {a:?} {input:?} {outs:?}"
                        ),
                        (Side::Sell, None) => {}
                        (Side::Buy, None) => {
                            panic!("seed {seed}: a buy sent with no bankruptcy price")
                        }
                    }
                }
                Output::Adl(a) => {
                    liquidated.insert((a.bankrupt_account, a.instrument));
                }
                _ => {}
            }
        }
        if !matches!(input, Input::Fill(_) | Input::Status(_))
            && !outs.iter().any(|o| matches!(o, Output::Settlement(_)))
        {
            let oi_after: Vec<i64> = (0..3).map(|i| total_qty(&e, i)).collect();
            assert_eq!(
                oi_before, oi_after,
                "seed {seed} seq {seq}: ADL moved open interest"
            );
        }
        // An isolated liquidation fill touches nothing else of its account.
        if let (Some((account, instrument)), Some(change)) = (isolated_fill, wallet_change) {
            let involved = outs.iter().any(|o| {
                matches!(o, Output::Adl(a) if a.account == account || a.bankrupt_account == account)
            });
            if !involved {
                let was = before.iter().find(|a| a.id() == account).unwrap();
                let is = e.accounts().iter().find(|a| a.id() == account).unwrap();
                assert!(
                    !change.is_negative(),
                    "seed {seed}: an isolated loss reached the wallet"
                );
                assert_eq!(is.wallet().checked_sub(was.wallet()).unwrap(), change);
                let others = |a: &Account| -> Vec<Position> {
                    a.positions()
                        .iter()
                        .filter(|p| p.instrument().0 != instrument)
                        .copied()
                        .collect()
                };
                assert_eq!(
                    others(was),
                    others(is),
                    "seed {seed}: other positions changed"
                );
            }
        }
        // Every balance, to the last unit.
        for a in e.accounts() {
            let mine = &ledger.accounts[&a.id()];
            assert_eq!(
                (a.wallet(), a.positions()),
                (mine.wallet(), mine.positions()),
                "seed {seed} seq {seq}: account {} differs after {input:?} → {outs:?}; before {:?}",
                a.id(),
                before.iter().find(|b| b.id() == a.id())
            );
        }
        assert_eq!(
            e.fund().balance(),
            ledger.fund,
            "seed {seed} seq {seq}: the fund differs after {input:?} → {outs:?}"
        );
        let fund_book = &ledger.accounts[&FUND_ACCOUNT_ID];
        assert_eq!(
            (e.fund_inventory(), Money::ZERO),
            (fund_book.positions(), fund_book.wallet()),
            "seed {seed} seq {seq}: the fund's inventory differs"
        );
    }
    (e.counters(), e.fund().covered().is_positive())
}

#[test]
fn money_is_accounted_for_in_random_scenarios() {
    let (mut fills, mut adl, mut orders, mut fund_paid, mut funding, mut settled) =
        (0, 0, 0, 0, 0, 0);
    let mut takeovers = 0;
    let mut expired = 0;
    for seed in 0..40 {
        let (c, paid) = run(seed, 400);
        fills += c.liquidation_fills;
        adl += c.adl;
        orders += c.orders;
        funding += c.funding;
        fund_paid += u64::from(paid);
        settled += c.settlements;
        takeovers += c.takeovers;
        if seed % 2 == 1 {
            expired += c.settlements;
        }
    }
    // The scenarios exercise what they claim to check.
    assert!(
        orders > 0
            && fills > 0
            && adl > 0
            && fund_paid > 0
            && funding > 0
            && settled > 0
            && takeovers > 0
            && expired > 0,
        "orders {orders} fills {fills} adl {adl} fund covers {fund_paid} funding {funding} settled {settled} takeovers {takeovers} expired {expired}"
    );
}

//! The money check of a backtest: a ledger that rebuilds every balance from the records alone,
//! and an accounting identity over the whole population.
//!
//! ## The ledger
//! The same notion as the risk stage's conservation test: starting from the accounts and fund as
//! loaded, the ledger books, in record order, the fills of liquidation orders (PnL at the fill
//! price, the fee at the instrument's rate to the fund, for a full close-out the difference to
//! the order's limit or the handed-back isolated margin to the fund, a negative wallet reset by
//! the fund), the ADL records (both sides closed at the record's price with no fee, then the
//! bankrupt wallet reset) and the settlement records. The one fact the records do not carry is
//! whether an order is a full close-out: it is read from
//! [`crate::risk::RiskEngine::liquidation_order`] when the order is sent. At the end every
//! account (wallet, positions, costs, isolated margins) and the fund must equal the engine's to
//! the last fixed-point unit.
//!
//! A backtest's inputs are ticks and the fills the built-in matcher answers with; the ledger
//! books nothing else (no funding, collateral or ordinary fills).
//!
//! ## The identity
//! Let `B = Σ wallets + Σ isolated margins + fund − Σ position costs` (a cost is `qty × entry`,
//! exact). Liquidation fees, fund transfers, negative-wallet resets and ADL move money inside
//! `B`; only trades with the market change it, by exactly `−qty × price` each ("external cash").
//! Two things make the booked `B` differ from that: realised PnL is floored to the money grid
//! once per booking (at most one unit of 2^-48 each, always against the account), and a loss
//! that the fund could not pay and that no wallet carries leaves the books unpaid (that part of
//! the bad debt): an isolated loss beyond its margin, or a loss of the fund's own inventory (the
//! positions it took over) beyond its balance. So
//!
//! The fund's inventory is booked like an account with id `u64::MAX` whose realised PnL is swept
//! into the fund at once; its positions count in `Σ position costs`.
//!
//! `residual = (B_before + external cash + unpaid loss) − B_after`
//!
//! must lie in `[0, bookings]` units of 2^-48. It is computed exactly, in integers.

use std::collections::HashMap;

use crate::margin::{
    Account, Fill, Instrument, InstrumentId, InstrumentTable, MarginMode, Money, Price, Qty,
};
use crate::risk::RiskEngine;
use crate::risk::takeover::FUND_ACCOUNT_ID;
use crate::shm::{self, Output, Side};

/// Money totals of a population (for the identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Σ cross wallets.
    pub wallets: Money,
    /// Σ isolated margins.
    pub isolated: Money,
    /// Insurance fund balance.
    pub fund: Money,
    /// Σ wallets below zero (part of the bad debt when the fund could not reset them).
    pub negative_wallets: Money,
    /// Per instrument: Σ position costs, `10^-notional_decimals` units, exact.
    pub cost: Vec<i128>,
    /// Per instrument: Σ signed quantities (open interest balance), lots.
    pub net_qty: Vec<i64>,
}

impl Totals {
    /// Sums `accounts` (saturating: such totals are not real money) with the fund `fund`.
    pub fn of(accounts: &[Account], fund: Money, instruments: usize) -> Totals {
        let add = |a: Money, b: Money| a.checked_add(b).unwrap_or(Money::MAX);
        let mut t = Totals {
            wallets: Money::ZERO,
            isolated: Money::ZERO,
            fund,
            negative_wallets: Money::ZERO,
            cost: vec![0; instruments],
            net_qty: vec![0; instruments],
        };
        for a in accounts {
            t.wallets = add(t.wallets, a.wallet());
            if a.wallet().is_negative() {
                t.negative_wallets = add(t.negative_wallets, a.wallet());
            }
            for p in a.positions() {
                t.isolated = add(t.isolated, p.isolated_margin());
                let i = p.instrument().0 as usize;
                if let Some(c) = t.cost.get_mut(i) {
                    *c = c.saturating_add(p.cost());
                }
                if let Some(q) = t.net_qty.get_mut(i) {
                    *q = q.saturating_add(p.qty().0);
                }
            }
        }
        t
    }

    /// Adds the insurance fund's inventory (taken-over positions: cost and quantity; its wallet
    /// is always swept into the fund).
    pub fn with_inventory(mut self, positions: &[crate::margin::Position]) -> Totals {
        for p in positions {
            let i = p.instrument().0 as usize;
            if let Some(c) = self.cost.get_mut(i) {
                *c = c.saturating_add(p.cost());
            }
            if let Some(q) = self.net_qty.get_mut(i) {
                *q = q.saturating_add(p.qty().0);
            }
        }
        self
    }

    /// `wallets + isolated + fund` (saturating).
    pub fn cash(&self) -> Money {
        self.wallets
            .checked_add(self.isolated)
            .and_then(|v| v.checked_add(self.fund))
            .unwrap_or(Money::MAX)
    }
}

/// Whether the ledger and the engine agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// Accounts compared.
    pub accounts: u64,
    /// Accounts whose wallet or positions differ (or that only one side knows).
    pub differing: u64,
    /// The first differing account id, if any.
    pub first_differing: Option<u64>,
    /// Whether the fund balances agree.
    pub fund_agrees: bool,
}

/// The rebuilt books; see the module docs.
#[derive(Debug)]
pub struct Ledger {
    table: InstrumentTable,
    accounts: HashMap<u64, Account>,
    fund: Money,
    /// Liquidation orders sent: id → (record, full close-out).
    orders: HashMap<u64, (shm::Liquidation, bool)>,
    settled: Vec<bool>,
    /// `apply_fill` calls made (each may floor realised PnL by one unit).
    bookings: u64,
    /// Losses no wallet carries that the fund could not pay: isolated losses beyond margin,
    /// and the fund inventory's losses beyond the fund.
    unpaid_loss: Money,
    /// All losses the fund could not pay (bad debt).
    uncovered: Money,
    /// Per instrument: Σ −qty·price of trades with the market, `10^-notional_decimals` units.
    external: Vec<i128>,
    /// Liquidation fills booked, and those that booked nothing.
    fills_booked: u64,
    fills_ignored: u64,
}

fn neg(m: Money) -> Money {
    m.checked_neg().unwrap_or(Money::ZERO)
}

impl Ledger {
    /// A ledger starting from `accounts` and a fund of `fund`.
    pub fn new(table: &InstrumentTable, accounts: &[Account], fund: Money) -> Ledger {
        Ledger {
            table: table.clone(),
            accounts: accounts
                .iter()
                .map(|a| (a.id(), a.clone()))
                .chain([(FUND_ACCOUNT_ID, Account::new(FUND_ACCOUNT_ID, Money::ZERO))])
                .collect(),
            fund,
            orders: HashMap::new(),
            settled: vec![false; table.len()],
            bookings: 0,
            unpaid_loss: Money::ZERO,
            uncovered: Money::ZERO,
            external: vec![0; table.len()],
            fills_booked: 0,
            fills_ignored: 0,
        }
    }

    /// Notes a liquidation order as it is sent, with whether it closes the account out.
    pub fn order_sent(&mut self, order: &shm::Liquidation, full: bool) {
        self.orders.insert(order.order_id, (*order, full));
    }

    fn cover(&mut self, amount: Money) -> Money {
        let paid = if amount <= self.fund {
            amount
        } else {
            self.fund.max(Money::ZERO)
        };
        self.fund = self.fund.checked_sub(paid).unwrap_or(Money::ZERO);
        let rest = amount.checked_sub(paid).unwrap_or(Money::ZERO);
        self.uncovered = self.uncovered.checked_add(rest).unwrap_or(Money::MAX);
        paid
    }

    fn cover_isolated(&mut self, shortfall: Money) {
        if shortfall.is_positive() {
            let paid = self.cover(shortfall);
            let rest = shortfall.checked_sub(paid).unwrap_or(Money::ZERO);
            self.unpaid_loss = self.unpaid_loss.checked_add(rest).unwrap_or(Money::MAX);
        }
    }

    fn wallet(&mut self, account: u64, delta: Money) {
        if let Some(a) = self.accounts.get_mut(&account) {
            let _ = a.change_wallet(delta);
        }
    }

    /// The fund's inventory realised PnL: into (or out of) the fund, as the engine sweeps it.
    fn sweep(&mut self) {
        let Some(w) = self.accounts.get(&FUND_ACCOUNT_ID).map(Account::wallet) else {
            return;
        };
        if w.is_positive() {
            self.fund = self.fund.checked_add(w).unwrap_or(Money::MAX);
        } else if w.is_negative() {
            let paid = self.cover(neg(w));
            let rest = neg(w).checked_sub(paid).unwrap_or(Money::ZERO);
            self.unpaid_loss = self.unpaid_loss.checked_add(rest).unwrap_or(Money::MAX);
        }
        self.wallet(FUND_ACCOUNT_ID, neg(w));
    }

    fn reset_negative(&mut self, account: u64) {
        if account == FUND_ACCOUNT_ID {
            self.sweep();
            return;
        }
        let Some(wallet) = self.accounts.get(&account).map(Account::wallet) else {
            return;
        };
        if wallet.is_negative() {
            let paid = self.cover(neg(wallet));
            self.wallet(account, paid);
        }
    }

    /// Books `qty` lots of `account`'s position at `price` with `fee`; `None` when refused.
    fn book(
        &mut self,
        account: u64,
        instrument: u32,
        qty: i64,
        price: i64,
        fee: Money,
        external: bool,
    ) -> Option<crate::margin::FillOutcome> {
        let a = self.accounts.get_mut(&account)?;
        let id = InstrumentId(instrument);
        let mode = a
            .position_index(id)
            .map_or(MarginMode::Cross, |i| a.positions()[i].mode());
        let fill = Fill {
            instrument: id,
            qty: Qty(qty),
            price: Price(price),
            fee,
            mode,
        };
        let outcome = a.apply_fill(&self.table, fill).ok()?;
        self.bookings += 1;
        if external && let Some(e) = self.external.get_mut(instrument as usize) {
            *e = e.saturating_sub(i128::from(qty) * i128::from(price));
        }
        Some(outcome)
    }

    /// Books a fill input answering one of the liquidation orders (unknown orders are ignored:
    /// the backtest sends fills only for orders it saw).
    pub fn fill(&mut self, f: &shm::Fill) {
        let Some(&(order, full)) = self.orders.get(&f.liquidation_order_id) else {
            self.fills_ignored += 1;
            return;
        };
        if self.settled.get(order.instrument as usize) == Some(&true) {
            self.fills_ignored += 1;
            return;
        }
        let id = InstrumentId(order.instrument);
        let Some(inst) = self.table.get(id).cloned() else {
            self.fills_ignored += 1;
            return;
        };
        let signed: i64 = if order.side == Side::Sell { -1 } else { 1 };
        let Some(a) = self.accounts.get(&order.account) else {
            self.fills_ignored += 1;
            return;
        };
        let mode = a
            .position_index(id)
            .map_or(MarginMode::Cross, |i| a.positions()[i].mode());
        let held = a
            .position_index(id)
            .map_or(0, |i| a.positions()[i].qty().0 * -signed)
            .max(0);
        if order.account == FUND_ACCOUNT_ID {
            // The fund's own order: booked as reported up to the order's size, no fee, its PnL
            // swept into the fund.
            let x = f.qty.unsigned_abs().min(order.qty.max(0) as u64) as i64;
            if x == 0
                || f.qty.signum() != signed
                || self
                    .book(
                        order.account,
                        order.instrument,
                        signed * x,
                        f.price_px,
                        Money::ZERO,
                        true,
                    )
                    .is_none()
            {
                self.fills_ignored += 1;
                return;
            }
            self.fills_booked += 1;
            self.sweep();
            return;
        }
        let x = f.qty.unsigned_abs().min(held as u64) as i64;
        if x == 0 || f.qty.signum() != signed {
            self.fills_ignored += 1;
            return;
        }
        let price = Price(f.price_px);
        // The liquidation fee: rate · notional, rounded up.
        let fee = Instrument::notional(Qty(x), price)
            .checked_mul(i128::from(inst.liquidation_fee.0))
            .and_then(|v| Money::from_scaled_ceil(v, inst.margin_decimals()))
            .unwrap_or(Money::ZERO);
        let Some(outcome) = self.book(
            order.account,
            order.instrument,
            signed * x,
            price.0,
            fee,
            true,
        ) else {
            self.fills_ignored += 1;
            return;
        };
        self.fills_booked += 1;
        self.fund = self.fund.checked_add(fee).unwrap_or(Money::MAX);
        if full && mode == MarginMode::Isolated {
            if outcome.released_margin.is_positive() {
                self.wallet(order.account, neg(outcome.released_margin));
                self.fund = self
                    .fund
                    .checked_add(outcome.released_margin)
                    .unwrap_or(Money::MAX);
            }
        } else if full {
            let diff = i128::from(x) * i128::from(price.0 - order.limit_px) * i128::from(-signed);
            if let Some(amount) = Money::from_scaled_floor(diff, inst.notional_decimals()) {
                if amount.is_positive() {
                    self.wallet(order.account, neg(amount));
                    self.fund = self.fund.checked_add(amount).unwrap_or(Money::MAX);
                } else if amount.is_negative() {
                    let paid = self.cover(neg(amount));
                    self.wallet(order.account, paid);
                }
            }
        }
        self.cover_isolated(outcome.isolated_shortfall);
        self.reset_negative(order.account);
    }

    /// Books the ADL and settlement records among one input's outputs.
    pub fn outputs(&mut self, outs: &[Output]) {
        for o in outs {
            if let Output::Settlement(st) = o {
                if let Some(s) = self.settled.get_mut(st.instrument as usize) {
                    *s = true;
                }
                if let Some(outcome) = self.book(
                    st.account,
                    st.instrument,
                    -st.qty,
                    st.price_px,
                    Money::ZERO,
                    true,
                ) {
                    self.cover_isolated(outcome.isolated_shortfall);
                }
                if st.account == FUND_ACCOUNT_ID {
                    self.sweep();
                }
            }
        }
        let adl: Vec<shm::Adl> = outs
            .iter()
            .filter_map(|o| match o {
                Output::Adl(a) => Some(*a),
                _ => None,
            })
            .collect();
        for run in adl.chunk_by(|a, b| {
            (a.bankrupt_account, a.instrument) == (b.bankrupt_account, b.instrument)
        }) {
            for r in run {
                let q = if r.side == Side::Sell { -r.qty } else { r.qty };
                for (account, qty) in [(r.account, q), (r.bankrupt_account, -q)] {
                    if let Some(outcome) =
                        self.book(account, r.instrument, qty, r.price_px, Money::ZERO, false)
                    {
                        self.cover_isolated(outcome.isolated_shortfall);
                    }
                }
            }
            if let Some(r) = run.first() {
                if r.account == FUND_ACCOUNT_ID {
                    self.sweep();
                }
                self.reset_negative(r.bankrupt_account);
            }
        }
    }

    /// Compares every account and the fund with the engine's.
    pub fn compare(&self, engine: &RiskEngine) -> Agreement {
        let mut ag = Agreement {
            accounts: 0,
            differing: 0,
            first_differing: None,
            fund_agrees: engine.fund().balance() == self.fund,
        };
        for a in engine.accounts() {
            ag.accounts += 1;
            let same = self.accounts.get(&a.id()).is_some_and(|mine| {
                mine.wallet() == a.wallet() && mine.positions() == a.positions()
            });
            if !same {
                ag.differing += 1;
                ag.first_differing.get_or_insert(a.id());
            }
        }
        // The fund's inventory: the same positions, and a wallet swept to zero.
        let fund_book = self.accounts.get(&FUND_ACCOUNT_ID);
        if !fund_book
            .is_some_and(|f| f.positions() == engine.fund_inventory() && f.wallet() == Money::ZERO)
        {
            ag.differing += 1;
            ag.first_differing.get_or_insert(FUND_ACCOUNT_ID);
        }
        if self.accounts.len() as u64 != ag.accounts + 1 {
            ag.differing += 1;
        }
        ag
    }

    /// The fund as the ledger has it.
    pub fn fund(&self) -> Money {
        self.fund
    }

    /// Losses the fund could not pay, as the ledger booked them.
    pub fn uncovered(&self) -> Money {
        self.uncovered
    }

    /// Liquidation fills that booked something, and those that booked nothing.
    pub fn fills(&self) -> (u64, u64) {
        (self.fills_booked, self.fills_ignored)
    }
}

/// The identity's terms (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Per instrument: Σ −qty·price of trades with the market, `10^-notional_decimals` units.
    pub external: Vec<i128>,
    /// Losses that nobody paid: isolated losses beyond margin, inventory losses beyond the fund.
    pub unpaid_loss: Money,
    /// Bookings (each may floor by one unit).
    pub bookings: u64,
    /// `residual` in units of `2^-48 / 10^scale_decimals`, exact; `None` on overflow.
    pub residual_scaled: Option<i128>,
    /// Decimals of `residual_scaled` beyond the money unit 2^-48 (the largest notional decimals).
    pub scale_decimals: u32,
    /// Whether `0 ≤ residual ≤ bookings` units of 2^-48.
    pub holds: bool,
}

/// Evaluates the identity between `before` and `after` with the ledger's flows.
pub fn identity(
    table: &InstrumentTable,
    before: &Totals,
    after: &Totals,
    ledger: &Ledger,
) -> Identity {
    let nd: Vec<u32> = table.iter().map(|(_, i)| i.notional_decimals()).collect();
    let scale = nd.iter().copied().max().unwrap_or(0);
    let residual = (|| -> Option<i128> {
        let pow = |d: u32| 10i128.checked_pow(d);
        // residual · 2^48 · 10^scale
        let mut r: i128 = 0;
        for (i, &d) in nd.iter().enumerate() {
            let ext = *ledger.external.get(i)?;
            let dcost = after.cost.get(i)?.checked_sub(*before.cost.get(i)?)?;
            let term = ext
                .checked_add(dcost)?
                .checked_mul(pow(scale - d)?)?
                .checked_mul(1i128 << crate::num::MONEY_FRAC_BITS)?;
            r = r.checked_add(term)?;
        }
        let cash = ledger
            .unpaid_loss
            .to_bits()
            .checked_add(before.cash().to_bits())?
            .checked_sub(after.cash().to_bits())?;
        r.checked_add(cash.checked_mul(pow(scale)?)?)
    })();
    let bound = i128::from(ledger.bookings).checked_mul(10i128.pow(scale.min(30)));
    let holds = match (residual, bound) {
        (Some(r), Some(b)) => r >= 0 && r <= b,
        _ => false,
    };
    Identity {
        external: ledger.external.clone(),
        unpaid_loss: ledger.unpaid_loss,
        bookings: ledger.bookings,
        residual_scaled: residual,
        scale_decimals: scale,
        holds,
    }
}

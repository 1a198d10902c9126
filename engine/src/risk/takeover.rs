//! The insurance fund takes over what the market will not: a bankrupt remainder goes to the fund
//! first, and to auto-deleveraging only when the fund cannot carry it.
//!
//! When a full close-out cannot be worked in the market (the mark is already past its bankruptcy
//! limit, or the position is bankrupt at every price) and the fund's circuit breaker is not
//! tripped, the fund *takes the position over*: the bankrupt account's quantity is closed at its
//! bankruptcy limit (no fee, so its equity ends at zero, any rounding residue reset by the fund
//! like every negative wallet), and the same quantity opens, at the same price, in the fund's own
//! inventory. Nothing is paid at the hand-over: the two sides' proceeds cancel exactly, as in ADL.
//! The hand-over is recorded as an ADL record whose counterparty is [`FUND_ACCOUNT_ID`], so the
//! output format needs no new kind and a ledger replaying the records books it like any ADL.
//!
//! The fund then works its inventory out in the market like any liquidation: one job per
//! instrument, immediate-or-cancel children sliced by the book, priced at the touch they trade
//! against (the fund is not bound by a bankruptcy price; it takes the market's price and the loss
//! or gain with it), with no liquidation fee (it would be paid to itself). Each fill realises PnL
//! in the inventory, which is swept into the fund at once: a gain is booked as surplus, a loss is
//! paid by the fund, and what the fund cannot pay is recorded as bad debt.
//!
//! The fund takes over only what it can carry: the loss it takes on at the mark (how far the mark
//! is past the limit, times the quantity) must fit in its balance less the unrealised loss of the
//! inventory it already holds. Otherwise, and while the breaker is tripped, the position goes to
//! ADL as before. A tripped breaker also sends the fund's own inventory to ADL at the mark, so
//! the counterparties, not the fund, carry what is left. At expiry the inventory is settled like
//! every position (a settlement record for [`FUND_ACCOUNT_ID`]). The inventory pays no funding.

use super::liquidation::{Child, Job};
use super::{Book, RiskEngine};
use crate::margin::{Account, Fill, InstrumentId, MarginMode, Money, Price, Qty};
use crate::shm::{self, Output, Side};

/// The fund's place in job and ADL bookkeeping, where an account index is expected (it is not an
/// index into the accounts).
pub(crate) const FUND: u32 = u32::MAX;

/// The account id that the insurance fund's records (takeovers, its liquidation orders and
/// settlements) carry. No trader's account may use it.
pub const FUND_ACCOUNT_ID: u64 = u64::MAX;

impl RiskEngine {
    /// The account at `a`, or the fund's inventory for [`FUND`].
    pub(crate) fn acct(&self, a: u32) -> &Account {
        if a == FUND {
            &self.fund_book
        } else {
            &self.accounts[a as usize]
        }
    }

    /// Books `fill` on the account at `a`, or on the fund's inventory for [`FUND`].
    pub(crate) fn apply_fill_to(
        &mut self,
        a: u32,
        fill: Fill,
    ) -> Result<crate::margin::FillOutcome, crate::margin::MarginError> {
        let table = &self.table;
        if a == FUND {
            self.fund_book.apply_fill(table, fill)
        } else {
            self.accounts
                .update(a, |account| account.apply_fill(table, fill))
        }
    }

    /// The positions the insurance fund has taken over and not yet worked out.
    pub fn fund_inventory(&self) -> &[crate::margin::Position] {
        self.fund_book.positions()
    }

    /// Moves the PnL the inventory has realised into the fund: a gain as surplus, a loss paid by
    /// the fund (what it cannot pay becomes bad debt). The inventory's wallet is left at zero.
    pub(crate) fn sweep_fund_book(&mut self) {
        let w = self.fund_book.wallet();
        if w.is_positive() {
            self.fund.add_surplus(w);
        } else if w.is_negative() {
            self.fund.cover(w.checked_neg().unwrap_or(Money::ZERO));
        } else {
            return;
        }
        let _ = self
            .fund_book
            .change_wallet(w.checked_neg().unwrap_or(Money::ZERO));
    }

    /// What the fund can still lose: its balance less the unrealised loss of its inventory at
    /// the marks (`None` when a mark is missing or on overflow: take nothing over).
    fn fund_headroom(&self) -> Option<Money> {
        let mut headroom = self.fund.balance();
        for p in self.fund_book.positions() {
            let mark = self.marks.get(p.instrument())?;
            let inst = self.table.get(p.instrument())?;
            let upnl = Money::from_scaled_floor(p.upnl_exact(mark), inst.notional_decimals())?;
            if upnl.is_negative() {
                headroom = headroom.checked_add(upnl)?;
            }
        }
        Some(headroom)
    }

    /// Hands up to `qty` lots of `account`'s position on `instrument` (a position of sign `side`)
    /// to the fund at `limit_px` (`i64::MAX`: at the mark), if the fund can carry it (see the
    /// module docs). Returns the quantity taken over.
    pub(crate) fn take_over(
        &mut self,
        account: u32,
        instrument: u32,
        side: i8,
        qty: i64,
        limit_px: i64,
        seq: u64,
    ) -> i64 {
        if account == FUND || self.breaker.tripped() {
            return 0;
        }
        let id = InstrumentId(instrument);
        let (Some(mark), Some(inst)) = (self.marks.get(id), self.table.get(id)) else {
            return 0;
        };
        let price = if limit_px == i64::MAX {
            mark.0
        } else {
            limit_px
        };
        let closing = if side > 0 { Side::Sell } else { Side::Buy };
        let qty = qty.min(self.held(account, instrument, closing));
        if qty <= 0 || price <= 0 {
            return 0;
        }
        // The loss taken on at the mark: how far the mark is past the price, times the quantity.
        let past = (i128::from(price) - i128::from(mark.0)) * i128::from(side);
        let Some(loss) =
            Money::from_scaled_ceil(past.max(0) * i128::from(qty), inst.notional_decimals())
        else {
            return 0;
        };
        match self.fund_headroom() {
            Some(h) if h.is_positive() && loss <= h => {}
            _ => return 0,
        }
        let mode = {
            let a = self.acct(account);
            a.position_index(id)
                .map_or(MarginMode::Cross, |i| a.positions()[i].mode())
        };
        let signed = i64::from(side) * qty;
        let close = |q: i64, mode| Fill {
            instrument: id,
            qty: Qty(q),
            price: Price(price),
            fee: Money::ZERO,
            mode,
        };
        // Both sides book, or neither: the fund's side on a copy of its inventory (a few
        // positions), installed once the account's side has booked too.
        // The copy is made in a spare account with room for every instrument, which then
        // trades places with the inventory: nothing is allocated once warm.
        let mut fund_book = self.scratch.fund_book.take().unwrap_or_else(|| {
            Account::with_capacity(FUND_ACCOUNT_ID, Money::ZERO, self.fund_jobs.len())
        });
        fund_book.copy_from(&self.fund_book);
        if fund_book
            .apply_fill(&self.table, close(signed, MarginMode::Cross))
            .is_err()
        {
            self.scratch.fund_book = Some(fund_book);
            return 0;
        }
        let table = &self.table;
        let Ok(outcome) = self
            .accounts
            .update(account, |a| a.apply_fill(table, close(-signed, mode)))
        else {
            self.scratch.fund_book = Some(fund_book);
            return 0;
        };
        self.scratch.fund_book = Some(std::mem::replace(&mut self.fund_book, fund_book));
        if outcome.isolated_shortfall.is_positive() {
            self.fund.cover(outcome.isolated_shortfall);
        }
        if mode == MarginMode::Isolated
            && self.accounts[account as usize].position_index(id).is_none()
        {
            self.units.release_isolated(account, instrument);
        }
        self.sweep_fund_book();
        self.reset_negative_wallet(account);
        self.readmit.push(account);
        self.counters.takeovers += 1;
        self.pending_out.push(Output::Adl(shm::Adl {
            order_id: self.order_id(
                FUND_ACCOUNT_ID,
                instrument,
                seq,
                u32::MAX - self.counters.takeovers as u32,
            ),
            account: FUND_ACCOUNT_ID,
            instrument,
            side: if side > 0 { Side::Buy } else { Side::Sell },
            qty,
            price_px: price,
            bankrupt_account: self.accounts[account as usize].id(),
        }));
        self.sync_fund_job(instrument, seq);
        qty
    }

    /// The fund's inventory on `instrument`, signed lots.
    pub(crate) fn fund_position(&self, instrument: u32) -> i64 {
        let id = InstrumentId(instrument);
        self.fund_book
            .position_index(id)
            .map_or(0, |i| self.fund_book.positions()[i].qty().0)
    }

    /// Keeps the fund's job on `instrument` in step with its inventory there: opens one, or
    /// resizes it (turning its side if the inventory flipped) unless a child is out; a job with
    /// a child out takes its side and size from the inventory when it is next worked, and ends
    /// there when the inventory is flat (so a late fill of the child still finds it).
    pub(crate) fn sync_fund_job(&mut self, instrument: u32, seq: u64) {
        let q = self.fund_position(instrument);
        let slot = self
            .fund_jobs
            .get(instrument as usize)
            .copied()
            .flatten()
            .filter(|&s| self.jobs.get(s).is_some_and(|j| j.account == FUND));
        let side = if q > 0 { Side::Sell } else { Side::Buy };
        if let Some(s) = slot {
            // A flat inventory ends the job when it is next worked (it may be in a ready queue
            // being worked right now, so it is not removed here).
            if let Some(job) = self.jobs.get_mut(s)
                && job.child.is_none()
            {
                job.side = side;
                job.remaining = q.abs();
                job.progress_ns = self.now_ns;
            }
            return;
        }
        if q == 0 {
            return;
        }
        let s = self.jobs.insert(Job {
            unit: FUND,
            account: FUND,
            instrument,
            side,
            remaining: q.abs(),
            limit_px: 0,
            full: false,
            seq,
            children: 0,
            progress_ns: self.now_ns,
            child: None::<Child>,
        });
        if let Some(x) = self.fund_jobs.get_mut(instrument as usize) {
            *x = Some(s);
        }
    }

    /// The limit of the fund's next child: the touch it trades against (the bid for a sell),
    /// or the mark when the book shows no price there.
    pub(crate) fn fund_limit(&self, instrument: u32, side: Side, book: &Book) -> Option<i64> {
        let touch = match side {
            Side::Sell => book.bid_px,
            Side::Buy => book.ask_px,
        };
        if touch > 0 {
            return Some(touch);
        }
        self.marks.get(InstrumentId(instrument)).map(|m| m.0)
    }
}

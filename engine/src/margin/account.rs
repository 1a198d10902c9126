//! Accounts and positions: compact storage, opening, and applying fills with exact realised PnL.

use crate::num::{Money, Price, Qty, wide};

use super::{InstrumentId, InstrumentTable, MarginError};

/// Cross (shares the wallet) or isolated (its own margin, its loss capped at that margin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MarginMode {
    /// Margined by the account's wallet together with the other cross positions.
    Cross = 0,
    /// Margined by its own `isolated_margin` only.
    Isolated = 1,
}

impl MarginMode {
    /// `"cross"` or `"isolated"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            MarginMode::Cross => "cross",
            MarginMode::Isolated => "isolated",
        }
    }
}

/// An open position: 48 bytes.
///
/// The position keeps its exact **cost** `Σ qty·price` (signed like `qty`, in
/// `10^-notional_decimals` units of its instrument) instead of a rounded entry price, so
/// `uPnL = qty·mark − cost` is exact before its one conversion to [`Money`]. The average entry
/// price is derived for display ([`Position::entry_price_floor`]).
///
/// Invariants: `qty != 0` and `qty != i64::MIN` (so `|qty|` fits in `i64`); `cost` has the sign
/// of `qty` (prices are positive); `isolated_margin == 0` when `mode == Cross`, `≥ 0` when
/// isolated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    cost: i128,
    isolated_margin: Money,
    qty: Qty,
    instrument: InstrumentId,
    mode: MarginMode,
}

impl Position {
    /// A position of `qty` bought (or sold, when negative) at `entry`.
    pub fn open(
        instrument: InstrumentId,
        qty: Qty,
        entry: Price,
        mode: MarginMode,
        isolated_margin: Money,
    ) -> Result<Position, MarginError> {
        if qty.0 == 0 {
            return Err(MarginError::ZeroQty);
        }
        // |qty| must fit in i64: the liquidation and ADL paths work with the absolute size.
        if qty.0 == i64::MIN {
            return Err(MarginError::Overflow { what: "quantity" });
        }
        if entry.0 <= 0 {
            return Err(MarginError::NonPositivePrice { price: entry.0 });
        }
        match mode {
            MarginMode::Cross if isolated_margin != Money::ZERO => {
                return Err(MarginError::MarginOnCross);
            }
            MarginMode::Isolated if isolated_margin.is_negative() => {
                return Err(MarginError::NegativeMargin);
            }
            _ => {}
        }
        Ok(Position {
            cost: i128::from(qty.0) * i128::from(entry.0),
            isolated_margin,
            qty,
            instrument,
            mode,
        })
    }

    /// A position from its stored fields (a snapshot), checked against the invariants above.
    pub(crate) fn from_parts(
        instrument: InstrumentId,
        qty: Qty,
        cost: i128,
        mode: MarginMode,
        isolated_margin: Money,
    ) -> Option<Position> {
        let margin_ok = match mode {
            MarginMode::Cross => isolated_margin == Money::ZERO,
            MarginMode::Isolated => !isolated_margin.is_negative(),
        };
        let sign_ok = (qty.0 > 0 && cost > 0) || (qty.0 < 0 && cost < 0);
        (margin_ok && sign_ok).then_some(Position {
            cost,
            isolated_margin,
            qty,
            instrument,
            mode,
        })
    }

    /// The instrument.
    pub const fn instrument(&self) -> InstrumentId {
        self.instrument
    }

    /// Signed quantity.
    pub const fn qty(&self) -> Qty {
        self.qty
    }

    /// Exact cost `Σ qty·price`, `10^-notional_decimals` units, signed like the quantity.
    pub const fn cost(&self) -> i128 {
        self.cost
    }

    /// Cross or isolated.
    pub const fn mode(&self) -> MarginMode {
        self.mode
    }

    /// The isolated margin (zero for cross positions).
    pub const fn isolated_margin(&self) -> Money {
        self.isolated_margin
    }

    /// `+1` long, `-1` short.
    pub const fn side(&self) -> i8 {
        if self.qty.0 > 0 { 1 } else { -1 }
    }

    /// Exact unrealised PnL `qty·mark − cost`, `10^-notional_decimals` units.
    pub fn upnl_exact(&self, mark: Price) -> i128 {
        // |qty·mark| < 2^126 and |cost| ≤ |qty|·max price accumulations are kept < 2^126 by
        // `apply_fill`'s checks, so the difference cannot overflow.
        i128::from(self.qty.0) * i128::from(mark.0) - self.cost
    }

    /// Average entry price `cost / qty` rounded toward −∞, for display.
    pub fn entry_price_floor(&self, table: &InstrumentTable) -> Option<Money> {
        let inst = table.get(self.instrument)?;
        let den = u128::from(self.qty.0.unsigned_abs()) * wide::pow10(inst.price_decimals)?;
        let bits = wide::mul_div(
            self.cost.unsigned_abs(),
            1u128 << crate::num::MONEY_FRAC_BITS,
            den,
            wide::Round::Down,
        )?;
        Some(Money::from_bits(i128::try_from(bits).ok()?))
    }
}

// The memory budget (≤ 256 bytes per position including the risk index) relies on these sizes.
const _: () = assert!(std::mem::size_of::<Position>() == 48);
const _: () = assert!(std::mem::size_of::<Account>() == 48);

/// One fill applied to an account (a trade, a liquidation fill or an ADL close).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Instrument traded.
    pub instrument: InstrumentId,
    /// Signed quantity: positive buys, negative sells.
    pub qty: Qty,
    /// Execution price (positive).
    pub price: Price,
    /// Fee paid by the account (negative: a rebate).
    pub fee: Money,
    /// Mode of a position this fill opens (ignored when it adds to or reduces an existing one).
    pub mode: MarginMode,
}

/// What a fill did, so that later stages can check money conservation.
///
/// Conservation: `Δwallet + Δ(isolated margin of this position) = realised_pnl − fee +
/// isolated_shortfall`. `realised_exact` is the exact realised PnL; `realised_pnl` is it rounded
/// toward −∞ (against the account), the amount actually booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FillOutcome {
    /// Exact realised PnL, `10^-notional_decimals` units of the instrument.
    pub realised_exact: i128,
    /// Realised PnL booked (floor of the exact amount).
    pub realised_pnl: Money,
    /// Fee booked.
    pub fee: Money,
    /// Quantity that reduced the old position (signed like the fill).
    pub closed: Qty,
    /// Quantity that opened or increased a position (signed like the fill).
    pub opened: Qty,
    /// Isolated margin returned to the wallet because the isolated position closed.
    pub released_margin: Money,
    /// Loss of an isolated position beyond its margin, not charged to the account (the insurance
    /// fund's business).
    pub isolated_shortfall: Money,
}

/// An account: cross wallet and positions (at most one per instrument, one-way mode).
///
/// 48 bytes plus 48 per position on the heap. Invariant: no two positions share an instrument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    wallet: Money,
    id: u64,
    positions: Vec<Position>,
}

impl Account {
    /// An account with a wallet and no position.
    pub fn new(id: u64, wallet: Money) -> Account {
        Account {
            wallet,
            id,
            positions: Vec::new(),
        }
    }

    /// An account with room for `capacity` positions (no reallocation until it holds more).
    pub fn with_capacity(id: u64, wallet: Money, capacity: usize) -> Account {
        Account {
            wallet,
            id,
            positions: Vec::with_capacity(capacity),
        }
    }

    /// Makes this account a copy of `other`, reusing its own room for positions.
    pub fn copy_from(&mut self, other: &Account) {
        self.wallet = other.wallet;
        self.id = other.id;
        self.positions.clone_from(&other.positions);
    }

    /// Account id.
    pub const fn id(&self) -> u64 {
        self.id
    }

    /// Cross wallet balance (excludes isolated margins).
    pub const fn wallet(&self) -> Money {
        self.wallet
    }

    /// Positions in the order they were added.
    pub fn positions(&self) -> &[Position] {
        &self.positions
    }

    /// Index of the position on an instrument.
    pub fn position_index(&self, instrument: InstrumentId) -> Option<usize> {
        self.positions
            .iter()
            .position(|p| p.instrument == instrument)
    }

    /// Adds a position; refused if the account already holds the instrument.
    pub fn push_position(&mut self, position: Position) -> Result<(), MarginError> {
        if self.position_index(position.instrument).is_some() {
            return Err(MarginError::DuplicatePosition {
                instrument: position.instrument.0,
            });
        }
        self.positions.push(position);
        Ok(())
    }

    /// Deposits (positive) or withdraws (negative) collateral on the cross wallet.
    pub fn change_wallet(&mut self, delta: Money) -> Result<(), MarginError> {
        self.wallet = self
            .wallet
            .checked_add(delta)
            .ok_or(MarginError::Overflow { what: "wallet" })?;
        Ok(())
    }

    /// Moves `amount` from the wallet to an isolated position's margin (negative: back).
    /// Refused when the position is not isolated or its margin would go negative.
    pub fn transfer_isolated_margin(
        &mut self,
        instrument: InstrumentId,
        amount: Money,
    ) -> Result<(), MarginError> {
        let i = self
            .position_index(instrument)
            .ok_or(MarginError::NoPosition {
                instrument: instrument.0,
            })?;
        let p = &mut self.positions[i];
        if p.mode != MarginMode::Isolated {
            return Err(MarginError::MarginOnCross);
        }
        let overflow = MarginError::Overflow {
            what: "isolated margin",
        };
        let margin = p.isolated_margin.checked_add(amount).ok_or(overflow)?;
        if margin.is_negative() {
            return Err(MarginError::NegativeMargin);
        }
        let wallet = self.wallet.checked_sub(amount).ok_or(overflow)?;
        p.isolated_margin = margin;
        self.wallet = wallet;
        Ok(())
    }

    /// Applies a fill: reduces, closes, flips or opens the position on the fill's instrument,
    /// books the realised PnL (rounded down) and the fee, and returns what happened.
    ///
    /// Cross positions book into the wallet. Isolated positions book into their own margin; a
    /// margin driven below zero is reset to zero and the difference reported as
    /// `isolated_shortfall` (it never reaches the wallet); when the position closes, its
    /// remaining margin returns to the wallet. On error nothing changes.
    ///
    /// A partial close releases cost in proportion `cost·closed/qty`, rounding the *remaining*
    /// cost toward +∞ (the remaining position never looks better than it is); realised plus
    /// remaining uPnL is always exactly the total.
    pub fn apply_fill(
        &mut self,
        table: &InstrumentTable,
        fill: Fill,
    ) -> Result<FillOutcome, MarginError> {
        let inst = table
            .get(fill.instrument)
            .ok_or(MarginError::UnknownInstrument {
                instrument: fill.instrument.0,
            })?;
        if fill.qty.0 == 0 {
            return Err(MarginError::ZeroQty);
        }
        if fill.price.0 <= 0 {
            return Err(MarginError::NonPositivePrice {
                price: fill.price.0,
            });
        }
        let nd = inst.notional_decimals();
        let overflow = |what| MarginError::Overflow { what };
        let fq = i128::from(fill.qty.0);
        let px = i128::from(fill.price.0);
        let index = self.position_index(fill.instrument);
        let old = index.map(|i| self.positions[i]);
        let (old_qty, old_cost) = old.map_or((0i128, 0i128), |p| (i128::from(p.qty.0), p.cost));

        // Split the fill into the part that reduces the old position and the part that opens.
        let reducing = old_qty != 0 && (old_qty > 0) != (fq > 0);
        let closed = if reducing {
            fq.abs().min(old_qty.abs())
        } else {
            0
        };
        let opened = fq.abs() - closed;
        let fill_sign = fq.signum();

        let mut realised_exact = 0i128;
        let mut remaining_cost = old_cost;
        let mut remaining_qty = old_qty;
        if closed > 0 {
            let left = old_qty.abs() - closed;
            // Remaining cost = ceil(cost·left/|qty|), toward +∞ for either sign.
            remaining_cost = if left == 0 {
                0
            } else {
                let num = old_cost.checked_mul(left).ok_or(overflow("cost"))?;
                div_ceil(num, old_qty.abs())
            };
            let released = old_cost - remaining_cost;
            // The closed slice had the old position's sign: its value at the fill price.
            let closed_signed = closed * old_qty.signum();
            realised_exact = closed_signed
                .checked_mul(px)
                .and_then(|v| v.checked_sub(released))
                .ok_or(overflow("realised PnL"))?;
            remaining_qty = old_qty.signum() * left;
        }
        if opened > 0 {
            let add = (fill_sign * opened)
                .checked_mul(px)
                .ok_or(overflow("cost"))?;
            remaining_cost = remaining_cost
                .checked_add(add)
                .filter(|c| c.unsigned_abs() < 1u128 << 126)
                .ok_or(overflow("cost"))?;
            remaining_qty += fill_sign * opened;
        }
        // As in `Position::open`: |qty| must fit in i64, so i64::MIN is refused too.
        let new_qty = i64::try_from(remaining_qty)
            .ok()
            .filter(|q| *q != i64::MIN)
            .ok_or(overflow("quantity"))?;
        let realised_pnl =
            Money::from_scaled_floor(realised_exact, nd).ok_or(overflow("realised PnL"))?;
        let booked = realised_pnl
            .checked_sub(fill.fee)
            .ok_or(overflow("realised PnL"))?;

        let mut outcome = FillOutcome {
            realised_exact,
            realised_pnl,
            fee: fill.fee,
            closed: Qty((fill_sign * closed) as i64),
            opened: Qty((fill_sign * opened) as i64),
            ..FillOutcome::default()
        };
        // The mode of the position that remains: the old one's unless it flipped or is new.
        let old_mode = old.map(|p| p.mode);
        let mode = match old_mode {
            Some(m) if opened == 0 || closed == 0 => m,
            _ => fill.mode,
        };
        let old_isolated = old_mode == Some(MarginMode::Isolated);
        let mut wallet = self.wallet;
        let mut margin = old.map_or(Money::ZERO, |p| p.isolated_margin);
        if old_isolated {
            margin = margin
                .checked_add(booked)
                .ok_or(overflow("isolated margin"))?;
            if margin.is_negative() {
                outcome.isolated_shortfall = margin.checked_neg().ok_or(overflow("shortfall"))?;
                margin = Money::ZERO;
            }
            if closed > 0 && closed == old_qty.abs() {
                outcome.released_margin = margin;
                wallet = wallet.checked_add(margin).ok_or(overflow("wallet"))?;
                margin = Money::ZERO;
            }
        } else {
            wallet = wallet.checked_add(booked).ok_or(overflow("wallet"))?;
        }
        if !old_isolated && mode == MarginMode::Isolated {
            margin = Money::ZERO;
        }

        // Commit.
        self.wallet = wallet;
        match (index, new_qty) {
            (Some(i), 0) => {
                self.positions.remove(i);
            }
            (Some(i), q) => {
                let p = &mut self.positions[i];
                p.qty = Qty(q);
                p.cost = remaining_cost;
                p.mode = mode;
                p.isolated_margin = if mode == MarginMode::Isolated {
                    margin
                } else {
                    Money::ZERO
                };
            }
            (None, q) => self.positions.push(Position {
                cost: remaining_cost,
                isolated_margin: Money::ZERO,
                qty: Qty(q),
                instrument: fill.instrument,
                mode,
            }),
        }
        Ok(outcome)
    }
}

/// `ceil(a / b)` for `b > 0`.
fn div_ceil(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b != 0 && a > 0 { q + 1 } else { q }
}

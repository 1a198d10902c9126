//! The insurance fund: liquidation fees and full-liquidation surpluses flow in; negative balances
//! left by liquidations flow out.
//!
//! Every movement is booked against a named bucket, so that a conservation check can rebuild the
//! balance from the outputs alone: `balance = initial + fees + surplus − covered`.

use crate::margin::Money;

/// The fund's balance and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsuranceFund {
    pub(super) balance: Money,
    pub(super) initial: Money,
    pub(super) fees: Money,
    pub(super) surplus: Money,
    pub(super) covered: Money,
    /// Losses the fund could not cover (bad debt), recorded rather than hidden.
    pub(super) uncovered: Money,
}

impl InsuranceFund {
    /// A fund starting with `initial`.
    pub fn new(initial: Money) -> InsuranceFund {
        InsuranceFund {
            balance: initial,
            initial,
            fees: Money::ZERO,
            surplus: Money::ZERO,
            covered: Money::ZERO,
            uncovered: Money::ZERO,
        }
    }

    /// Current balance.
    pub fn balance(&self) -> Money {
        self.balance
    }

    /// Starting balance.
    pub fn initial(&self) -> Money {
        self.initial
    }

    /// Liquidation fees received.
    pub fn fees(&self) -> Money {
        self.fees
    }

    /// Surpluses of full liquidations filled better than the bankruptcy price.
    pub fn surplus(&self) -> Money {
        self.surplus
    }

    /// Losses paid out.
    pub fn covered(&self) -> Money {
        self.covered
    }

    /// Losses left uncovered (bad debt).
    pub fn uncovered(&self) -> Money {
        self.uncovered
    }

    /// Books a liquidation fee (saturating: a balance this large is not a real fund).
    pub fn add_fee(&mut self, fee: Money) {
        self.fees = self.fees.checked_add(fee).unwrap_or(Money::MAX);
        self.balance = self.balance.checked_add(fee).unwrap_or(Money::MAX);
    }

    /// Books a surplus.
    pub fn add_surplus(&mut self, amount: Money) {
        self.surplus = self.surplus.checked_add(amount).unwrap_or(Money::MAX);
        self.balance = self.balance.checked_add(amount).unwrap_or(Money::MAX);
    }

    /// Pays a loss of `amount` (≥ 0) as far as the balance allows; returns what it paid. The
    /// rest is recorded as uncovered.
    pub fn cover(&mut self, amount: Money) -> Money {
        let paid = if amount <= self.balance {
            amount
        } else {
            self.balance.max(Money::ZERO)
        };
        self.balance = self.balance.checked_sub(paid).unwrap_or(Money::ZERO);
        self.covered = self.covered.checked_add(paid).unwrap_or(Money::MAX);
        let rest = amount.checked_sub(paid).unwrap_or(Money::ZERO);
        self.uncovered = self.uncovered.checked_add(rest).unwrap_or(Money::MAX);
        paid
    }

    /// Two funds' buckets added (the slices of a sharded fund, summed; saturating).
    pub fn plus(&self, other: &InsuranceFund) -> InsuranceFund {
        let add = |a: Money, b: Money| a.checked_add(b).unwrap_or(Money::MAX);
        InsuranceFund {
            balance: add(self.balance, other.balance),
            initial: add(self.initial, other.initial),
            fees: add(self.fees, other.fees),
            surplus: add(self.surplus, other.surplus),
            covered: add(self.covered, other.covered),
            uncovered: add(self.uncovered, other.uncovered),
        }
    }

    /// Whether the fund can pay `amount` in full.
    pub fn can_cover(&self, amount: Money) -> bool {
        amount <= self.balance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_balance_is_the_sum_of_its_buckets() {
        let mut f = InsuranceFund::new(Money::from_int(100));
        f.add_fee(Money::from_int(5));
        f.add_surplus(Money::from_int(7));
        assert_eq!(f.cover(Money::from_int(30)), Money::from_int(30));
        assert_eq!(f.balance(), Money::from_int(82));
        assert!(f.can_cover(Money::from_int(82)));
        assert!(!f.can_cover(Money::from_int(83)));
        // Paying more than it has: pays the balance, records the rest as uncovered.
        assert_eq!(f.cover(Money::from_int(100)), Money::from_int(82));
        assert_eq!(f.balance(), Money::ZERO);
        assert_eq!(f.uncovered(), Money::from_int(18));
        let rebuilt = f
            .initial()
            .checked_add(f.fees())
            .and_then(|v| v.checked_add(f.surplus()))
            .and_then(|v| v.checked_sub(f.covered()))
            .unwrap();
        assert_eq!(rebuilt, f.balance());
    }
}

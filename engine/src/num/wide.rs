//! Exact `a·b/c` on unsigned 128-bit integers with a 256-bit intermediate and directed rounding.
//!
//! Every conversion between the exact decimal world (prices, quantities, rates) and binary fixed
//! point (`Money`) is one call to [`mul_div`]: `bits = v·2^48 / 10^k` into `Money`,
//! `v = bits·10^k / 2^48` out of it, and the liquidation-price quotient. Doing it in one step with a
//! wide intermediate means each conversion rounds exactly once, in the direction its caller names.
//!
//! Cost: when `a·b` fits in 128 bits (the common case: amounts below ~10^9 with ≤ 14 decimals) it
//! is one `u128` multiply and one `u128` division; otherwise a 128-step shift-subtract division
//! (a few hundred nanoseconds), used by large liquidation-price quotients only.

/// Rounding direction of a quotient's magnitude.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Toward zero.
    Down,
    /// Away from zero.
    Up,
}

/// `a·b/c` rounded as asked, or `None` when `c == 0` or the quotient does not fit in `u128`.
pub fn mul_div(a: u128, b: u128, c: u128, round: Round) -> Option<u128> {
    if c == 0 {
        return None;
    }
    let (q, r) = match a.checked_mul(b) {
        Some(p) => (p / c, p % c),
        None => {
            let (hi, lo) = mul_wide(a, b);
            div_wide(hi, lo, c)?
        }
    };
    match round {
        Round::Up if r != 0 => q.checked_add(1),
        _ => Some(q),
    }
}

/// The 256-bit product `a·b` as `(high, low)` halves.
pub fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    const MASK: u128 = u64::MAX as u128;
    let (a1, a0) = (a >> 64, a & MASK);
    let (b1, b0) = (b >> 64, b & MASK);
    let lo = a0 * b0;
    let mid1 = a0 * b1;
    let mid2 = a1 * b0;
    let hi = a1 * b1;
    // Sum the middle terms with their carries into the high half.
    let (mid, mid_carry) = mid1.overflowing_add(mid2);
    let (low, low_carry) = lo.overflowing_add(mid << 64);
    let high = hi + (mid >> 64) + ((mid_carry as u128) << 64) + low_carry as u128;
    (high, low)
}

/// `(high·2^128 + low) / c` as `(quotient, remainder)`, `None` when the quotient exceeds `u128`.
fn div_wide(high: u128, low: u128, c: u128) -> Option<(u128, u128)> {
    if high >= c {
        return None;
    }
    let mut rem = high;
    let mut q: u128 = 0;
    for i in (0..128).rev() {
        let carry = rem >> 127;
        rem = (rem << 1) | ((low >> i) & 1);
        q <<= 1;
        // With the carry set the true remainder is 2^128 + rem ≥ c, and the difference is < c,
        // so the wrapping subtraction yields it exactly.
        if carry == 1 || rem >= c {
            rem = rem.wrapping_sub(c);
            q |= 1;
        }
    }
    Some((q, rem))
}

/// Compares `a·b` with `c·d` exactly.
pub fn cmp_products(a: u128, b: u128, c: u128, d: u128) -> core::cmp::Ordering {
    mul_wide(a, b).cmp(&mul_wide(c, d))
}

/// `10^k` for `k ≤ 38`.
pub fn pow10(k: u32) -> Option<u128> {
    10u128.checked_pow(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wide_path_matches_a_known_product() {
        // (2^100 · 3^40) / 3^38 = 2^100 · 9, forced through the wide path.
        let a = 1u128 << 100;
        let b = 3u128.pow(40);
        assert!(a.checked_mul(b).is_none());
        assert_eq!(mul_div(a, b, 3u128.pow(38), Round::Down), Some(a * 9));
        assert_eq!(mul_div(u128::MAX, u128::MAX, 1, Round::Down), None);
        assert_eq!(mul_div(7, 1, 2, Round::Down), Some(3));
        assert_eq!(mul_div(7, 1, 2, Round::Up), Some(4));
        assert_eq!(mul_div(1, 1, 0, Round::Up), None);
    }

    proptest! {
        #[test]
        fn wide_division_agrees_with_split_arithmetic(a in any::<u64>(), b in any::<u128>(), c in 1u128..u128::MAX) {
            // a·b = a·(b_hi·2^64 + b_lo); check q·c + r == a·b via the wide product itself.
            let (hi, lo) = mul_wide(a as u128, b);
            if let Some((q, r)) = div_wide(hi, lo, c) {
                prop_assert!(r < c);
                let (qh, ql) = mul_wide(q, c);
                let (sum, carry) = ql.overflowing_add(r);
                prop_assert_eq!(sum, lo);
                prop_assert_eq!(qh + carry as u128, hi);
            } else {
                prop_assert!(hi >= c);
            }
        }
    }
}

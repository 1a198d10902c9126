//! Exact decimal text: parsing into scaled integers and formatting scaled integers back.
//!
//! A decimal is `[-+]digits[.digits]` (at least one digit, no exponent, no separators). It is read
//! exactly into an integer count of `10^-decimals` units. Digits beyond `decimals` are accepted by
//! [`parse_scaled`] only when they are zeros, so `"50000.000"` is two-decimal `5000000` but
//! `"0.0001"` is not three-decimal; [`parse_scaled_rounded`] (market data files) rounds them half
//! away from zero and says that it did. One parser, [`parse_scaled_with`], does both.

use thiserror::Error;

/// Why a decimal text was refused. Each variant says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecimalError {
    /// Not of the form `[-]digits[.digits]`.
    #[error(
        "`{text}` is not a decimal number: expected digits with an optional sign and one `.`, e.g. \"50000.5\""
    )]
    Malformed {
        /// The offending text.
        text: String,
    },
    /// More significant decimal places than the field allows.
    #[error("`{text}` has more than {decimals} decimal places: round it to at most {decimals}")]
    TooPrecise {
        /// The offending text.
        text: String,
        /// Decimal places allowed.
        decimals: u32,
    },
    /// Larger than the field can hold.
    #[error("`{text}` is too large for this field")]
    TooLarge {
        /// The offending text.
        text: String,
    },
}

/// What to do with nonzero digits beyond the scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excess {
    /// Refuse them ([`DecimalError::TooPrecise`]): configuration and scenario values are exact.
    Refuse,
    /// Round half away from zero and say so ([`Scaled::rounded`]): market data files may carry
    /// more digits than the instrument's scale.
    RoundHalfAway,
}

/// A decimal read into `10^-decimals` units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scaled {
    /// The value in `10^-decimals` units.
    pub value: i128,
    /// True when nonzero digits past the scale were rounded away (only under
    /// [`Excess::RoundHalfAway`]).
    pub rounded: bool,
}

/// Parses `text` into an exact count of `10^-decimals` units; digits past the scale must be
/// zeros.
pub fn parse_scaled(text: &str, decimals: u32) -> Result<i128, DecimalError> {
    parse_scaled_with(text, decimals, Excess::Refuse).map(|s| s.value)
}

/// Parses `text` into `10^-decimals` units, rounding digits past the scale half away from zero.
pub fn parse_scaled_rounded(text: &str, decimals: u32) -> Result<Scaled, DecimalError> {
    parse_scaled_with(text, decimals, Excess::RoundHalfAway)
}

/// Parses `text` into `10^-decimals` units, treating digits past the scale as `excess` says.
/// Work is linear in the text's length whatever `decimals` is.
pub fn parse_scaled_with(
    text: &str,
    decimals: u32,
    excess: Excess,
) -> Result<Scaled, DecimalError> {
    let malformed = || DecimalError::Malformed {
        text: text.to_string(),
    };
    let t = text.trim();
    let (negative, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(malformed());
    }
    let too_large = || DecimalError::TooLarge {
        text: text.to_string(),
    };
    let push = |value: i128, digit: u8| {
        value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(digit - b'0')))
    };
    let frac = frac_part.as_bytes();
    let scale = usize::try_from(decimals).unwrap_or(usize::MAX);
    let (kept, past) = frac.split_at(frac.len().min(scale));
    let mut value: i128 = 0;
    for &b in int_part.as_bytes().iter().chain(kept) {
        value = push(value, b).ok_or_else(too_large)?;
    }
    // The scale's remaining places are zeros: one multiplication by a power of ten.
    let missing = u32::try_from(scale - kept.len()).unwrap_or(u32::MAX);
    if value != 0 {
        value = 10i128
            .checked_pow(missing)
            .and_then(|p| value.checked_mul(p))
            .ok_or_else(too_large)?;
    }
    let rounded = past.iter().any(|&b| b != b'0');
    if rounded {
        match excess {
            Excess::Refuse => {
                return Err(DecimalError::TooPrecise {
                    text: text.to_string(),
                    decimals,
                });
            }
            Excess::RoundHalfAway if past[0] >= b'5' => {
                value = value.checked_add(1).ok_or_else(too_large)?;
            }
            Excess::RoundHalfAway => {}
        }
    }
    Ok(Scaled {
        value: if negative { -value } else { value },
        rounded,
    })
}

/// Formats `units` counted in `10^-decimals` as a decimal with exactly `decimals` places.
pub fn format_scaled(units: i128, decimals: u32) -> String {
    let sign = if units < 0 { "-" } else { "" };
    let digits = units.unsigned_abs().to_string();
    if decimals == 0 {
        return format!("{sign}{digits}");
    }
    let d = decimals as usize;
    let padded = if digits.len() <= d {
        format!("{}{}", "0".repeat(d + 1 - digits.len()), digits)
    } else {
        digits
    };
    let (int_part, frac_part) = padded.split_at(padded.len() - d);
    format!("{sign}{int_part}.{frac_part}")
}

/// Like [`format_scaled`] with trailing fractional zeros (and a bare `.`) removed.
pub fn format_scaled_trimmed(units: i128, decimals: u32) -> String {
    let s = format_scaled(units, decimals);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_exact_decimals_and_refuses_the_rest() {
        assert_eq!(parse_scaled("50000", 2), Ok(5_000_000));
        assert_eq!(parse_scaled("0.004", 9), Ok(4_000_000));
        assert_eq!(parse_scaled("-1", 3), Ok(-1000));
        assert_eq!(parse_scaled("50000.000", 2), Ok(5_000_000));
        assert_eq!(parse_scaled(".5", 1), Ok(5));
        assert!(matches!(
            parse_scaled("0.0001", 3),
            Err(DecimalError::TooPrecise { .. })
        ));
        for bad in [
            "", "-", ".", "1.2.3", "1e5", "abc", "1,000", "--1", "0x10", "nan",
        ] {
            for excess in [Excess::Refuse, Excess::RoundHalfAway] {
                assert!(
                    matches!(
                        parse_scaled_with(bad, 2, excess),
                        Err(DecimalError::Malformed { .. })
                    ),
                    "{bad}"
                );
            }
        }
        assert!(matches!(
            parse_scaled("1000000000000000000000000000000000000000", 2),
            Err(DecimalError::TooLarge { .. })
        ));
    }

    fn rounded(text: &str, d: u32) -> (i128, bool) {
        let s = parse_scaled_rounded(text, d).expect(text);
        (s.value, s.rounded)
    }

    #[test]
    fn market_data_digits_past_the_scale_round_half_away() {
        assert_eq!(rounded("579.8", 2), (57_980, false));
        assert_eq!(rounded("9682", 2), (968_200, false));
        assert_eq!(rounded("0.003", 3), (3, false));
        assert_eq!(rounded("-1.50", 1), (-15, false));
        assert_eq!(rounded("121582.79100450", 2), (12_158_279, true));
        assert_eq!(rounded("0.125", 2), (13, true));
        assert_eq!(rounded("-0.125", 2), (-13, true));
        assert_eq!(rounded("0.124", 2), (12, true));
        assert_eq!(rounded(".5", 0), (1, true));
        assert_eq!(rounded("7.", 1), (70, false));
        assert_eq!(rounded("0", 4_000_000_000), (0, false));
        assert!(matches!(
            parse_scaled_rounded("1", 39),
            Err(DecimalError::TooLarge { .. })
        ));
        assert!(matches!(
            parse_scaled_rounded("170141183460469231731687303715884105727.5", 0),
            Err(DecimalError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(units in any::<i64>(), decimals in 0u32..12) {
            let text = format_scaled(i128::from(units), decimals);
            prop_assert_eq!(parse_scaled(&text, decimals), Ok(i128::from(units)));
            let trimmed = format_scaled_trimmed(i128::from(units), decimals);
            prop_assert_eq!(parse_scaled(&trimmed, decimals), Ok(i128::from(units)));
        }
    }
}

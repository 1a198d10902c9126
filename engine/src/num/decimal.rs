//! Exact decimal text: parsing into scaled integers and formatting scaled integers back.
//!
//! A decimal is `[-+]digits[.digits]` (at least one digit, no exponent, no separators). It is read
//! exactly into an integer count of `10^-decimals` units; digits beyond `decimals` are accepted only
//! when they are zeros, so `"50000.000"` is two-decimal `5000000` but `"0.0001"` is not three-decimal.

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

/// Parses `text` into an exact count of `10^-decimals` units.
pub fn parse_scaled(text: &str, decimals: u32) -> Result<i128, DecimalError> {
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
        || (body.contains('.') && frac_part.is_empty() && int_part.is_empty())
    {
        return Err(malformed());
    }
    let too_large = || DecimalError::TooLarge {
        text: text.to_string(),
    };
    let mut value: i128 = 0;
    for b in int_part.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(b - b'0')))
            .ok_or_else(too_large)?;
    }
    let frac = frac_part.as_bytes();
    for i in 0..decimals as usize {
        let digit = frac.get(i).map_or(0, |b| b - b'0');
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(digit)))
            .ok_or_else(too_large)?;
    }
    if frac.iter().skip(decimals as usize).any(|&b| b != b'0') {
        return Err(DecimalError::TooPrecise {
            text: text.to_string(),
            decimals,
        });
    }
    Ok(if negative { -value } else { value })
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
        for bad in ["", "-", ".", "1.2.3", "1e5", "abc", "1,000", "--1", "0x10"] {
            assert!(
                matches!(parse_scaled(bad, 2), Err(DecimalError::Malformed { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_scaled("1000000000000000000000000000000000000000", 2),
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

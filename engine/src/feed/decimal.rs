//! Exact conversion of decimal text ("579.8", "-0.003") into integers scaled by a power of ten.

/// Why a decimal field could not be converted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not a plain decimal number.
    #[error("not a decimal number (expected digits with an optional sign and point)")]
    Syntax,
    /// The scaled value does not fit in an i64.
    #[error("value does not fit in 64 bits at this scale; lower the decimals")]
    Overflow,
}

/// A scaled value and whether digits beyond the scale were rounded away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scaled {
    /// The value times 10^decimals, rounded half away from zero.
    pub value: i64,
    /// True when nonzero digits past `decimals` were rounded away.
    pub rounded: bool,
}

/// Parses `text` as a decimal and scales it by 10^`decimals` (at most 18), rounding half away
/// from zero when the text has more fractional digits than `decimals`.
pub fn parse_scaled(text: &str, decimals: u8) -> Result<Scaled, DecimalError> {
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
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
        || decimals > 18
    {
        return Err(DecimalError::Syntax);
    }
    let mut value: i128 = 0;
    for b in int_part.bytes() {
        value = value * 10 + i128::from(b - b'0');
        if value > i128::from(i64::MAX) {
            return Err(DecimalError::Overflow);
        }
    }
    let frac = frac_part.as_bytes();
    for i in 0..usize::from(decimals) {
        let digit = frac.get(i).map_or(0, |b| b - b'0');
        value = value * 10 + i128::from(digit);
    }
    let rest = frac.get(usize::from(decimals)..).unwrap_or(&[]);
    let rounded = rest.iter().any(|&b| b != b'0');
    if rest.first().is_some_and(|&b| b >= b'5') {
        value += 1;
    }
    if negative {
        value = -value;
    }
    let value = i64::try_from(value).map_err(|_| DecimalError::Overflow)?;
    Ok(Scaled { value, rounded })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str, d: u8) -> (i64, bool) {
        let s = parse_scaled(text, d).expect(text);
        (s.value, s.rounded)
    }

    #[test]
    fn scales_exactly_and_rounds_half_away() {
        assert_eq!(v("579.8", 2), (57_980, false));
        assert_eq!(v("9682", 2), (968_200, false));
        assert_eq!(v("0.003", 3), (3, false));
        assert_eq!(v("-1.50", 1), (-15, false));
        assert_eq!(v("121582.79100450", 2), (12_158_279, true));
        assert_eq!(v("0.125", 2), (13, true));
        assert_eq!(v("-0.125", 2), (-13, true));
        assert_eq!(v(".5", 0), (1, true));
        assert_eq!(v("7.", 1), (70, false));
    }

    #[test]
    fn rejects_garbage_and_overflow() {
        for bad in ["", "-", ".", "1e5", "abc", "1.2.3", "nan"] {
            assert_eq!(parse_scaled(bad, 2), Err(DecimalError::Syntax), "{bad}");
        }
        assert_eq!(
            parse_scaled("99999999999999999999", 0),
            Err(DecimalError::Overflow)
        );
        assert_eq!(
            parse_scaled("9223372036854775807", 1),
            Err(DecimalError::Overflow)
        );
    }
}

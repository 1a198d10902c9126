//! The scenario file as written: serde structures with spans, before validation.

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

/// A decimal written as a string (`"0.004"`) or a TOML number (`0.004`, `50000`).
///
/// Numbers are taken through their shortest round-trip text, which equals what was written for
/// any literal of up to 15 significant digits; strings are taken verbatim (recommended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dec(pub String);

impl<'de> Deserialize<'de> for Dec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dec, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a decimal as a string (\"0.004\") or a number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dec, E> {
                Ok(Dec(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dec, E> {
                Ok(Dec(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dec, E> {
                Ok(Dec(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Dec, E> {
                if v.is_finite() {
                    Ok(Dec(format!("{v}")))
                } else {
                    Err(E::custom("expected a finite decimal, found inf or nan"))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    /// `[[instrument]]` tables.
    #[serde(default)]
    pub instrument: Vec<Spanned<RawInstrument>>,
    /// `[[price]]` tables.
    #[serde(default)]
    pub price: Vec<Spanned<RawPrice>>,
    /// `[[account]]` tables.
    #[serde(default)]
    pub account: Vec<Spanned<RawAccount>>,
    /// Optional margin-call level (margin ratio), default 0.8.
    pub call_level: Option<Spanned<Dec>>,
}

/// One `[[instrument]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInstrument {
    pub symbol: Spanned<String>,
    pub kind: Spanned<String>,
    pub expiry: Option<Spanned<String>>,
    pub price_decimals: Spanned<u32>,
    pub qty_decimals: Spanned<u32>,
    pub tick_size: Option<Spanned<Dec>>,
    pub min_qty: Option<Spanned<Dec>>,
    pub liquidation_fee: Spanned<Dec>,
    pub tiers: Spanned<Vec<Spanned<RawTier>>>,
}

/// One tier of `tiers = [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    pub min_notional: Option<Spanned<Dec>>,
    pub max_notional: Spanned<Dec>,
    pub mmr: Spanned<Dec>,
    pub imr: Spanned<Dec>,
    pub maintenance_amount: Option<Spanned<Dec>>,
}

/// One `[[price]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrice {
    pub symbol: Spanned<String>,
    pub mark: Spanned<Dec>,
    pub index: Option<Spanned<Dec>>,
}

/// One `[[account]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub id: Spanned<u64>,
    pub wallet: Spanned<Dec>,
    #[serde(default)]
    pub positions: Vec<Spanned<RawPosition>>,
}

/// One position of `positions = [...]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPosition {
    pub symbol: Spanned<String>,
    pub qty: Spanned<Dec>,
    pub entry: Spanned<Dec>,
    pub mode: Spanned<String>,
    pub margin: Option<Spanned<Dec>>,
}

/// Seconds since the Unix epoch of an RFC 3339 UTC time `YYYY-MM-DDTHH:MM:SSZ`.
pub fn parse_utc(text: &str) -> Option<i64> {
    let t = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = t.split_once(['T', ' '])?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut h = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (h.next()??, h.next()??, h.next()??);
    let days_in_month = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    // Four-digit years, as RFC 3339 writes them; larger ones would overflow the arithmetic below.
    if !(0..=9999).contains(&y)
        || !(1..=days_in_month).contains(&day)
        || hh > 23
        || mm > 59
        || ss > 60
        || hh < 0
        || mm < 0
        || ss < 0
    {
        return None;
    }
    // Days from civil (proleptic Gregorian), H. Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

#[cfg(test)]
mod tests {
    use super::parse_utc;

    #[test]
    fn utc_times_parse_to_epoch_seconds() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2000-03-01T00:00:00Z"), Some(951_868_800));
        // 2026-12-25T08:00:00Z: 20,812 days after the epoch, plus 8 h.
        assert_eq!(
            parse_utc("2026-12-25T08:00:00Z"),
            Some(20_812 * 86_400 + 8 * 3600)
        );
        assert_eq!(parse_utc("2026-02-29T00:00:00Z"), None);
        assert_eq!(parse_utc("2026-12-25 08:00:00"), None);
        assert_eq!(parse_utc("tomorrow"), None);
        // Found by fuzzing: a year this large overflowed the day count.
        assert_eq!(parse_utc("9223372036854775807-12-25T08:00:00Z"), None);
        assert_eq!(parse_utc("10000-01-01T00:00:00Z"), None);
        assert_eq!(parse_utc("9999-12-31T23:59:59Z"), Some(253_402_300_799));
    }
}

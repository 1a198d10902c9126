//! The bulk accounts file: a compact, versioned, little-endian binary format for loading
//! millions of accounts in seconds.
//!
//! ## Layout (version 1)
//! ```text
//! header, 48 bytes
//!   0  magic           [u8; 8]  b"BRINKACC"
//!   8  version         u32      1
//!  12  flags           u32      0
//!  16  account_count   u64
//!  24  position_count  u64
//!  32  symbol_count    u32
//!  36  money_decimals  u32      8: wallet and margin count 10^-8 currency units
//!  40  crc32           u32      CRC-32 (IEEE) of every byte after the header
//!  44  reserved        u32      0
//! symbol table, symbol_count entries
//!      len u8, price_decimals u8, qty_decimals u8, symbol [u8; len] (ASCII)
//! account_count accounts, each
//!      account, 24 bytes:  id u64, wallet i64, position_count u16, reserved [u8; 6]
//!      position_count positions, 32 bytes each:
//!                          symbol u32 (index in the symbol table), mode u8 (0 cross,
//!                          1 isolated), reserved [u8; 3], qty i64, entry i64, margin i64
//! ```
//! Quantities and prices are the instrument's scaled integers (as on the wire); the symbol table
//! carries the decimals the file was written with, and loading refuses a file whose decimals
//! differ from the scenario's. Account ids are strictly ascending. Money is rounded down into
//! `Money` on load.
//!
//! Every record is validated; a bad file is a [`BulkError`] naming the file, the account record
//! (0-based), the position within it, the byte offset, the field and what was expected.

use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

pub mod synth;

use crate::margin::{Account, InstrumentId, InstrumentTable, MarginMode, Position};
use crate::num::{Money, Price, Qty};

/// File magic.
pub const MAGIC: [u8; 8] = *b"BRINKACC";
/// Format version written and read.
pub const VERSION: u32 = 1;
/// Decimal places of money fields.
pub const MONEY_DECIMALS: u32 = 8;
const HEADER_LEN: usize = 48;
const ACCOUNT_LEN: usize = 24;
const POSITION_LEN: usize = 32;

/// A bulk file that could not be read or used.
#[derive(Debug, Error)]
pub enum BulkError {
    /// I/O failure.
    #[error("{file}: {source}")]
    Io {
        /// File.
        file: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A header field that does not match the format.
    #[error("{file}: header field {field}: {problem}")]
    Header {
        /// File.
        file: PathBuf,
        /// Field.
        field: &'static str,
        /// What was found and what was expected.
        problem: String,
    },
    /// A bad record.
    #[error("{file}: account record {record}{}, byte {offset}: {field}: {problem}", position.map(|p| format!(" position {p}")).unwrap_or_default())]
    Record {
        /// File.
        file: PathBuf,
        /// 0-based account record.
        record: u64,
        /// 0-based position within the account, if the error is in one.
        position: Option<u16>,
        /// Byte offset of the field.
        offset: u64,
        /// Field name.
        field: &'static str,
        /// What was found and what was expected.
        problem: String,
    },
}

/// One position to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkPosition {
    /// Instrument (index in the table given to the writer).
    pub instrument: InstrumentId,
    /// Cross or isolated.
    pub mode: MarginMode,
    /// Signed quantity.
    pub qty: Qty,
    /// Entry price.
    pub entry: Price,
    /// Isolated margin in `10^-8` units (0 for cross).
    pub margin_units: i64,
}

/// Streams accounts into a bulk file.
pub struct BulkWriter {
    out: BufWriter<std::fs::File>,
    file: PathBuf,
    crc: crc32fast::Hasher,
    accounts: u64,
    positions: u64,
    symbols: u32,
}

impl BulkWriter {
    /// Creates `path` and writes the symbol table of `table`.
    pub fn create(path: &Path, table: &InstrumentTable) -> Result<BulkWriter, BulkError> {
        let io = |source| BulkError::Io {
            file: path.to_path_buf(),
            source,
        };
        let f = std::fs::File::create(path).map_err(io)?;
        let mut w = BulkWriter {
            out: BufWriter::with_capacity(1 << 20, f),
            file: path.to_path_buf(),
            crc: crc32fast::Hasher::new(),
            accounts: 0,
            positions: 0,
            symbols: u32::try_from(table.len()).unwrap_or(u32::MAX),
        };
        w.out.write_all(&[0u8; HEADER_LEN]).map_err(io)?;
        for (_, inst) in table.iter() {
            let sym = inst.symbol.as_bytes();
            let len = u8::try_from(sym.len()).map_err(|_| BulkError::Header {
                file: path.to_path_buf(),
                field: "symbol",
                problem: format!("`{}` is longer than 255 bytes", inst.symbol),
            })?;
            let mut rec = vec![len, inst.price_decimals as u8, inst.qty_decimals as u8];
            rec.extend_from_slice(sym);
            w.put(&rec)?;
        }
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), BulkError> {
        self.crc.update(bytes);
        self.out.write_all(bytes).map_err(|source| BulkError::Io {
            file: self.file.clone(),
            source,
        })
    }

    /// Appends one account (ids must ascend; the loader checks).
    pub fn push(
        &mut self,
        id: u64,
        wallet_units: i64,
        positions: &[BulkPosition],
    ) -> Result<(), BulkError> {
        let mut rec = [0u8; ACCOUNT_LEN];
        rec[0..8].copy_from_slice(&id.to_le_bytes());
        rec[8..16].copy_from_slice(&wallet_units.to_le_bytes());
        let n = u16::try_from(positions.len()).unwrap_or(u16::MAX);
        rec[16..18].copy_from_slice(&n.to_le_bytes());
        self.put(&rec)?;
        for p in positions.iter().take(usize::from(n)) {
            let mut rec = [0u8; POSITION_LEN];
            rec[0..4].copy_from_slice(&p.instrument.0.to_le_bytes());
            rec[4] = p.mode as u8;
            rec[8..16].copy_from_slice(&p.qty.0.to_le_bytes());
            rec[16..24].copy_from_slice(&p.entry.0.to_le_bytes());
            rec[24..32].copy_from_slice(&p.margin_units.to_le_bytes());
            self.put(&rec)?;
        }
        self.accounts += 1;
        self.positions += u64::from(n);
        Ok(())
    }

    /// Writes the header (counts, CRC) and flushes.
    pub fn finish(mut self) -> Result<(), BulkError> {
        let io = |source| BulkError::Io {
            file: self.file.clone(),
            source,
        };
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[16..24].copy_from_slice(&self.accounts.to_le_bytes());
        h[24..32].copy_from_slice(&self.positions.to_le_bytes());
        h[32..36].copy_from_slice(&self.symbols.to_le_bytes());
        h[36..40].copy_from_slice(&MONEY_DECIMALS.to_le_bytes());
        h[40..44].copy_from_slice(&self.crc.clone().finalize().to_le_bytes());
        self.out.flush().map_err(io)?;
        let f = self.out.get_mut();
        f.seek(SeekFrom::Start(0)).map_err(io)?;
        f.write_all(&h).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(())
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    u64_at(b, at) as i64
}

/// Loads every account of a bulk file, resolving its symbols against `table`.
pub fn load(path: &Path, table: &InstrumentTable) -> Result<Vec<Account>, BulkError> {
    let bytes = std::fs::read(path).map_err(|source| BulkError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    parse(&bytes, path, table)
}

/// Parses bulk file bytes; `file` is used in error messages.
pub fn parse(b: &[u8], file: &Path, table: &InstrumentTable) -> Result<Vec<Account>, BulkError> {
    let header = |field, problem: String| BulkError::Header {
        file: file.to_path_buf(),
        field,
        problem,
    };
    if b.len() < HEADER_LEN {
        return Err(header(
            "length",
            format!(
                "the file has {} bytes: expected at least the {HEADER_LEN}-byte header",
                b.len()
            ),
        ));
    }
    if b[0..8] != MAGIC {
        return Err(header(
            "magic",
            format!(
                "found {:?}: expected \"BRINKACC\" (not a bulk accounts file)",
                &b[0..8]
            ),
        ));
    }
    let version = u32_at(b, 8);
    if version != VERSION {
        return Err(header(
            "version",
            format!("found {version}: this build reads version {VERSION}"),
        ));
    }
    let money_decimals = u32_at(b, 36);
    if money_decimals != MONEY_DECIMALS {
        return Err(header(
            "money_decimals",
            format!("found {money_decimals}: expected {MONEY_DECIMALS}"),
        ));
    }
    let crc = crc32fast::hash(&b[HEADER_LEN..]);
    if crc != u32_at(b, 40) {
        return Err(header(
            "crc32",
            format!(
                "the body's CRC is {crc:#010x}, the header says {:#010x}: the file is damaged or truncated",
                u32_at(b, 40)
            ),
        ));
    }
    let accounts = u64_at(b, 16);
    let positions = u64_at(b, 24);
    let symbols = u32_at(b, 32);

    // Symbol table → instrument ids.
    let mut at = HEADER_LEN;
    let mut ids = Vec::with_capacity(symbols as usize);
    for s in 0..symbols {
        let rec = |problem: String| BulkError::Record {
            file: file.to_path_buf(),
            record: u64::from(s),
            position: None,
            offset: at as u64,
            field: "symbol table",
            problem,
        };
        let len = usize::from(
            *b.get(at)
                .ok_or_else(|| rec("truncated: expected a symbol entry".into()))?,
        );
        let entry = b
            .get(at..at + 3 + len)
            .ok_or_else(|| rec("truncated: expected a symbol entry".into()))?;
        let sym =
            std::str::from_utf8(&entry[3..]).map_err(|_| rec("symbol is not UTF-8".into()))?;
        let id = table.id_of(sym).ok_or_else(|| {
            rec(format!(
                "unknown symbol `{sym}`: expected one of the scenario's instruments"
            ))
        })?;
        let inst = table
            .get(id)
            .ok_or_else(|| rec(format!("unknown symbol `{sym}`")))?;
        if u32::from(entry[1]) != inst.price_decimals || u32::from(entry[2]) != inst.qty_decimals {
            return Err(rec(format!(
                "`{sym}` was written with price/qty decimals {}/{}: the scenario says {}/{}",
                entry[1], entry[2], inst.price_decimals, inst.qty_decimals
            )));
        }
        ids.push(id);
        at += 3 + len;
    }

    let body = (b.len() - at) as u64;
    let expected = accounts
        .checked_mul(ACCOUNT_LEN as u64)
        .and_then(|a| a.checked_add(positions.checked_mul(POSITION_LEN as u64)?));
    if expected != Some(body) {
        return Err(header(
            "account_count/position_count",
            format!(
                "{accounts} accounts and {positions} positions need {} bytes of records, the file has {body}",
                expected.map_or_else(|| "too many".to_string(), |e| e.to_string())
            ),
        ));
    }

    let mut out = Vec::with_capacity(accounts as usize);
    let mut last_id: Option<u64> = None;
    for r in 0..accounts {
        let base = at;
        let err =
            |position: Option<u16>, offset: usize, field, problem: String| BulkError::Record {
                file: file.to_path_buf(),
                record: r,
                position,
                offset: offset as u64,
                field,
                problem,
            };
        if b.len() - at < ACCOUNT_LEN {
            return Err(err(
                None,
                base,
                "account",
                format!(
                    "the file ends inside this record: the header promises {accounts} accounts (an earlier position_count may be wrong)"
                ),
            ));
        }
        let id = u64_at(b, at);
        if last_id.is_some_and(|l| id <= l) {
            return Err(err(
                None,
                base,
                "id",
                format!(
                    "{id} is not above the previous id {}: ids must ascend",
                    last_id.unwrap_or(0)
                ),
            ));
        }
        if id == crate::risk::takeover::FUND_ACCOUNT_ID {
            return Err(err(
                None,
                base,
                "id",
                format!("{id} is reserved for the insurance fund: use a smaller id"),
            ));
        }
        last_id = Some(id);
        let wallet = Money::from_scaled_floor(i128::from(i64_at(b, at + 8)), MONEY_DECIMALS)
            .ok_or_else(|| err(None, base + 8, "wallet", "out of range".into()))?;
        let n = u16_at(b, at + 16);
        at += ACCOUNT_LEN;
        if (b.len() - at) < usize::from(n) * POSITION_LEN {
            return Err(err(
                None,
                base + 16,
                "position_count",
                format!("{n} positions run past the end of the file"),
            ));
        }
        let mut acct = Account::with_capacity(id, wallet, usize::from(n));
        for k in 0..n {
            let p = at;
            let e = |offset, field, problem: String| err(Some(k), offset, field, problem);
            let sym = u32_at(b, p);
            let id = *ids.get(sym as usize).ok_or_else(|| {
                e(
                    p,
                    "symbol",
                    format!("index {sym} is outside the symbol table: expected < {symbols}"),
                )
            })?;
            let mode = match b[p + 4] {
                0 => MarginMode::Cross,
                1 => MarginMode::Isolated,
                m => {
                    return Err(e(
                        p + 4,
                        "mode",
                        format!("{m}: expected 0 (cross) or 1 (isolated)"),
                    ));
                }
            };
            let qty = i64_at(b, p + 8);
            if qty == 0 {
                return Err(e(
                    p + 8,
                    "qty",
                    "0: expected a non-zero signed quantity".into(),
                ));
            }
            let entry = i64_at(b, p + 16);
            if entry <= 0 {
                return Err(e(
                    p + 16,
                    "entry",
                    format!("{entry}: expected a positive price"),
                ));
            }
            let margin_units = i64_at(b, p + 24);
            let margin = match mode {
                MarginMode::Cross if margin_units != 0 => {
                    return Err(e(
                        p + 24,
                        "margin",
                        format!("{margin_units}: a cross position's margin must be 0"),
                    ));
                }
                MarginMode::Isolated if margin_units < 0 => {
                    return Err(e(
                        p + 24,
                        "margin",
                        format!("{margin_units}: expected an isolated margin ≥ 0"),
                    ));
                }
                _ => Money::from_scaled_floor(i128::from(margin_units), MONEY_DECIMALS)
                    .ok_or_else(|| e(p + 24, "margin", "out of range".into()))?,
            };
            let pos = Position::open(id, Qty(qty), Price(entry), mode, margin)
                .map_err(|x| e(p, "position", x.to_string()))?;
            acct.push_position(pos).map_err(|_| {
                e(
                    p,
                    "symbol",
                    format!(
                        "index {sym} appears twice in this account: one position per instrument"
                    ),
                )
            })?;
            at += POSITION_LEN;
        }
        out.push(acct);
    }
    Ok(out)
}

/// Bytes held by loaded accounts: the account structs plus their position arrays (capacity),
/// excluding allocator overhead.
pub fn heap_bytes(accounts: &[Account]) -> usize {
    std::mem::size_of_val(accounts)
        + accounts
            .iter()
            .map(|a| std::mem::size_of_val(a.positions()))
            .sum::<usize>()
}

#[cfg(test)]
mod tests;

//! Market-data sources turned into feed records ([`Input`]s): Tardis trades and quotes CSV (plain
//! or gzip), Binance kline CSV or zip, and a seeded synthetic generator. Used by the `brink-feed`
//! publisher, and reusable by demos and backtests.
//!
//! Replayed files carry one instrument; the caller gives its wire id and decimals ([`Scaling`]).
//! Values with more fractional digits than the decimals are rounded half away from zero and
//! counted ([`FileSource::rounded`]), never silently truncated.
//!
//! | format | detected by | one row becomes |
//! |---|---|---|
//! | Tardis trades | header `exchange,symbol,timestamp,local_timestamp,id,side,price,amount` | a tick, mark = trade price |
//! | Tardis quotes | header `...,ask_amount,ask_price,bid_price,bid_amount` | a tick with the book; mark = mid (floor) |
//! | Binance klines | header `open_time,...` or a numeric first field; `.zip` holding one CSV | 4 ticks: open, the high/low nearer the open, the other, close |
//!
//! Each input also carries the data's own time ([`FileSource::exchange_ns`]): a Tardis row's
//! exchange `timestamp` (µs), a kline's `open_time` for its open, `close_time` for its close and
//! the thirds of the bar between them for its two extremes (ms, or µs when the value is that
//! large). Replays that must not depend on the wall clock (backtests) use it as the event time.
//! A Tardis row's `symbol` and a trade's `amount` are exposed too ([`FileSource::symbol`],
//! [`FileSource::trade_qty`]).

mod kline;
mod synthetic;
mod tardis;

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

pub use kline::bar_path;
pub use synthetic::{Synthetic, SyntheticConfig};

pub use crate::num::DecimalError;
use crate::num::parse_scaled_rounded;
use crate::shm::Input;

/// How a replayed file maps onto the wire: its instrument id and decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scaling {
    /// Wire instrument id (index in the scenario's `[[instrument]]` list).
    pub instrument: u32,
    /// Prices are scaled by 10^price_decimals.
    pub price_decimals: u8,
    /// Quantities are scaled by 10^qty_decimals.
    pub qty_decimals: u8,
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            instrument: 0,
            price_decimals: 2,
            qty_decimals: 3,
        }
    }
}

/// A market-data file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
    /// The zip archive is unreadable or holds no CSV.
    #[error(
        "cannot use zip archive {path}: {reason}; expected a Binance kline zip holding one .csv"
    )]
    Zip {
        /// File concerned.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The first line matches no known format.
    #[error(
        "{path}: unknown format, first line {first_line:?}; expected a Tardis trades/quotes header or Binance kline rows"
    )]
    UnknownFormat {
        /// File concerned.
        path: PathBuf,
        /// The first line read.
        first_line: String,
    },
    /// The CSV layer failed.
    #[error("{path} line {line}: {source}")]
    Csv {
        /// File concerned.
        path: PathBuf,
        /// Line number (1-based).
        line: u64,
        /// CSV error.
        source: csv::Error,
    },
    /// A row has too few columns.
    #[error("{path} line {line}: {found} columns, expected at least {expected}")]
    Columns {
        /// File concerned.
        path: PathBuf,
        /// Line number (1-based).
        line: u64,
        /// Columns found.
        found: usize,
        /// Columns needed.
        expected: usize,
    },
    /// A numeric field is malformed.
    #[error("{path} line {line}: field {field}: {source}")]
    Field {
        /// File concerned.
        path: PathBuf,
        /// Line number (1-based).
        line: u64,
        /// Column name.
        field: &'static str,
        /// Parse error.
        source: DecimalError,
    },
    /// A row has no usable price (e.g. a quote with neither side).
    #[error("{path} line {line}: no positive price in the row")]
    NoPrice {
        /// File concerned.
        path: PathBuf,
        /// Line number (1-based).
        line: u64,
    },
}

/// Which file format a [`FileSource`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Tardis `trades` CSV.
    TardisTrades,
    /// Tardis `quotes` CSV.
    TardisQuotes,
    /// Binance kline CSV.
    BinanceKlines,
}

impl Format {
    /// Lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Format::TardisTrades => "tardis-trades",
            Format::TardisQuotes => "tardis-quotes",
            Format::BinanceKlines => "binance-klines",
        }
    }

    fn detect(first_line: &str) -> Option<(Format, bool)> {
        let l = first_line.trim();
        if l.starts_with("exchange,symbol,timestamp,local_timestamp,") {
            if l.contains("ask_amount") && l.contains("bid_price") {
                return Some((Format::TardisQuotes, true));
            }
            if l.ends_with("id,side,price,amount") {
                return Some((Format::TardisTrades, true));
            }
            return None;
        }
        if l.starts_with("open_time,open,high,low,close") {
            return Some((Format::BinanceKlines, true));
        }
        let first = l.split(',').next().unwrap_or("");
        if !first.is_empty()
            && first.bytes().all(|b| b.is_ascii_digit())
            && l.split(',').count() >= 5
        {
            return Some((Format::BinanceKlines, false));
        }
        None
    }
}

type Rows = csv::StringRecordsIntoIter<Box<dyn Read + Send>>;

/// Reads a market-data file as a stream of [`Input`] records.
pub struct FileSource {
    format: Format,
    path: PathBuf,
    rows: Rows,
    line: u64,
    scaling: Scaling,
    rounded: u64,
    pending: [Input; 4],
    /// Exchange time of each pending input, Unix ns (`None`: the row's time is unreadable).
    pending_ns: [Option<u64>; 4],
    pending_len: usize,
    pending_at: usize,
    /// Symbol column of the last row read (Tardis formats; empty otherwise). Reused, so reading
    /// rows allocates nothing once warm.
    symbol: String,
    /// Trade size of the last row read (Tardis trades), quantity units.
    trade_qty: Option<i64>,
    /// Set after an I/O error (e.g. corrupt gzip): the stream cannot be trusted past it.
    failed: bool,
}

impl FileSource {
    /// Opens `path` (`.gz` is decompressed, `.zip` must hold one CSV) and detects its format.
    pub fn open(path: &Path, scaling: Scaling) -> Result<FileSource, FeedError> {
        let p = path.to_path_buf();
        let io = |source| FeedError::Io {
            path: p.clone(),
            source,
        };
        let name = path.to_string_lossy().to_ascii_lowercase();
        let raw: Box<dyn Read + Send> = if name.ends_with(".zip") {
            Box::new(Cursor::new(read_zip_csv(path)?))
        } else if name.ends_with(".gz") {
            Box::new(flate2::read::MultiGzDecoder::new(
                File::open(path).map_err(io)?,
            ))
        } else {
            Box::new(File::open(path).map_err(io)?)
        };
        let mut reader = BufReader::new(raw);
        let mut first = String::new();
        reader
            .read_line(&mut first)
            .map_err(|source| FeedError::Io {
                path: p.clone(),
                source,
            })?;
        let Some((format, has_header)) = Format::detect(&first) else {
            return Err(FeedError::UnknownFormat {
                path: p,
                first_line: first.trim_end().chars().take(120).collect(),
            });
        };
        let (stream, line): (Box<dyn Read + Send>, u64) = if has_header {
            (Box::new(reader), 1)
        } else {
            (Box::new(Cursor::new(first.into_bytes()).chain(reader)), 0)
        };
        let rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(stream)
            .into_records();
        Ok(FileSource {
            format,
            path: p,
            rows,
            line,
            scaling,
            rounded: 0,
            pending: [Input::Heartbeat(crate::shm::Heartbeat::default()); 4],
            pending_ns: [None; 4],
            pending_len: 0,
            pending_at: 0,
            failed: false,
            symbol: String::new(),
            trade_qty: None,
        })
    }

    /// The detected format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// How many values had digits beyond the configured decimals (rounded half away from zero).
    pub fn rounded(&self) -> u64 {
        self.rounded
    }

    /// Line number of the last row read (1-based, header included).
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Exchange time of the input last returned, Unix ns (see the module docs); `None` before
    /// the first input or when the row's time field is missing or not a whole number.
    pub fn exchange_ns(&self) -> Option<u64> {
        self.pending_ns
            .get(self.pending_at.checked_sub(1)?)
            .copied()
            .flatten()
    }

    /// The `symbol` column of the last row read (Tardis formats), `None` for klines.
    pub fn symbol(&self) -> Option<&str> {
        match self.format {
            Format::TardisTrades | Format::TardisQuotes => Some(self.symbol.as_str()),
            Format::BinanceKlines => None,
        }
    }

    /// The `amount` of the last trade row read (Tardis trades), in quantity units.
    pub fn trade_qty(&self) -> Option<i64> {
        self.trade_qty
    }

    fn field(
        &mut self,
        row: &csv::StringRecord,
        index: usize,
        name: &'static str,
        decimals: u8,
    ) -> Result<i64, FeedError> {
        let text = row.get(index).unwrap_or("");
        if text.trim().is_empty() {
            return Ok(0);
        }
        let field_err = |source| FeedError::Field {
            path: self.path.clone(),
            line: self.line,
            field: name,
            source,
        };
        let s = parse_scaled_rounded(text, u32::from(decimals)).map_err(field_err)?;
        // Wire prices and quantities are i64.
        let value = i64::try_from(s.value).map_err(|_| {
            field_err(DecimalError::TooLarge {
                text: text.to_string(),
            })
        })?;
        if s.rounded {
            self.rounded += 1;
        }
        Ok(value)
    }

    fn need(&self, row: &csv::StringRecord, expected: usize) -> Result<(), FeedError> {
        if row.len() < expected {
            return Err(FeedError::Columns {
                path: self.path.clone(),
                line: self.line,
                found: row.len(),
                expected,
            });
        }
        Ok(())
    }

    fn no_price(&self) -> FeedError {
        FeedError::NoPrice {
            path: self.path.clone(),
            line: self.line,
        }
    }

    /// Converts one CSV row into `self.pending`.
    fn convert(&mut self, row: &csv::StringRecord) -> Result<(), FeedError> {
        match self.format {
            Format::TardisTrades => tardis::trade(self, row),
            Format::TardisQuotes => tardis::quote(self, row),
            Format::BinanceKlines => kline::bar(self, row),
        }
    }

    fn set_pending(&mut self, inputs: &[Input], times_ns: &[Option<u64>]) {
        let n = inputs.len().min(4);
        self.pending[..n].copy_from_slice(&inputs[..n]);
        for (k, slot) in self.pending_ns[..n].iter_mut().enumerate() {
            *slot = times_ns.get(k).copied().flatten();
        }
        self.pending_len = n;
        self.pending_at = 0;
    }
}

impl Iterator for FileSource {
    type Item = Result<Input, FeedError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pending_at < self.pending_len {
            self.pending_at += 1;
            return Some(Ok(self.pending[self.pending_at - 1]));
        }
        if self.failed {
            return None;
        }
        let row = match self.rows.next()? {
            Ok(row) => row,
            Err(source) => {
                self.line += 1;
                self.failed = source.is_io_error();
                return Some(Err(FeedError::Csv {
                    path: self.path.clone(),
                    line: self.line,
                    source,
                }));
            }
        };
        self.line += 1;
        self.pending_len = 0;
        self.pending_at = 0;
        self.trade_qty = None;
        if let Err(e) = self.convert(&row) {
            return Some(Err(e));
        }
        self.next()
    }
}

/// A whole number of `unit_ns` nanoseconds in `text`, or `None`.
fn time_ns(text: Option<&str>, unit_ns: u64) -> Option<u64> {
    text?.trim().parse::<u64>().ok()?.checked_mul(unit_ns)
}

fn read_zip_csv(path: &Path) -> Result<Vec<u8>, FeedError> {
    let zip_err = |reason: String| FeedError::Zip {
        path: path.to_path_buf(),
        reason,
    };
    let file = File::open(path).map_err(|source| FeedError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(file).map_err(|e| zip_err(e.to_string()))?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(|e| zip_err(e.to_string()))?;
        let name = entry
            .name()
            .map_err(|e| zip_err(e.to_string()))?
            .to_ascii_lowercase();
        if name.ends_with(".csv") {
            let mut bytes = Vec::with_capacity(entry.size().min(1 << 28) as usize);
            entry
                .read_to_end(&mut bytes)
                .map_err(|e| zip_err(e.to_string()))?;
            return Ok(bytes);
        }
    }
    Err(zip_err("no .csv entry".to_string()))
}

#[cfg(test)]
mod tests;

//! Backtests: a market-data file replayed through the risk stage, deterministically.
//!
//! One thread applies, in file order, one tick per trade, quote or kline path point to the same
//! [`RiskEngine::on_event`] that `brink run` drives, and answers each liquidation order with the
//! built-in [`Matcher`]; the fills go back in as the next inputs, ahead of the next file record,
//! as a venue's fills would reach the feed. Every input is stamped with the data's own time
//! ([`FileSource::exchange_ns`]), which is the engine's clock (child timeouts, fill deadlines,
//! ADL refresh, expiry): no wall clock, thread or hash-map order enters, so the same file,
//! accounts and settings give byte-identical `events.jsonl` and `report.json`.
//!
//! ## Ticks
//! A trade (or kline path point) is the instrument's mark, index and best bid and ask; the size
//! at both best levels is the trade's size, or the configured depth ([`BacktestConfig::depth`]),
//! or none (0: unlimited) for klines without a depth. A quote keeps its book; its mark and index
//! are the mid. Input sequence numbers count the inputs applied (file ticks and fills), from 1.
//!
//! ## Refused input
//! A row that cannot be read (bad number, too few columns, no price, a CSV error), whose time is
//! unreadable or goes backwards, whose book is crossed, or whose symbol differs from the file's
//! first, is counted by reason with the first line it happened on ([`Rejections`]) and skipped;
//! an unreadable compressed stream ends the replay there (counted as `io`). Nothing panics.
//!
//! ## Outputs
//! [`events`] formats the lines of `events.jsonl`, [`report`] builds `report.json` and
//! [`plot`] draws `report.svg`; [`ledger`] is the money check.

pub mod events;
pub mod ledger;
pub mod plot;
pub mod report;
mod series;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::feed::{FeedError, FileSource, Format, Scaling};
use crate::ingest::{FeedBody, FeedEvent};
use crate::margin::{Account, InstrumentId, InstrumentTable, MarginMode, MarkPrices, Money};
use crate::matcher::{Matcher, MatcherConfig};
use crate::risk::{RiskConfig, RiskCounters, RiskEngine, Scan};
use crate::shm::{self, Input, Output, Tick, alert_code, input::book_qty};
use events::{EventFormat, UnitView};
use ledger::{Agreement, Identity, Ledger, Totals};
pub use series::{Bucket, Series};

/// A backtest could not start or could not write its outputs.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// The ticks file could not be opened or recognised.
    #[error(transparent)]
    Feed(#[from] FeedError),
    /// The file's format is not the one asked for.
    #[error(
        "{path}: the file reads as {found}, not {expected}; pass --format {found} or another file"
    )]
    FormatMismatch {
        /// The ticks file.
        path: PathBuf,
        /// Format asked for.
        expected: &'static str,
        /// Format detected.
        found: &'static str,
    },
    /// The file's instrument is not in the scenario.
    #[error(
        "{path}: {found} matches no instrument of the scenario (expected one of: {expected}); name the instrument with --symbol"
    )]
    SymbolMismatch {
        /// The ticks file.
        path: PathBuf,
        /// What the file names (its symbol column, or its file name for klines).
        found: String,
        /// The scenario's symbols.
        expected: String,
    },
    /// The file holds no usable record.
    #[error("{path}: no readable tick in the file; check it is a {format} file")]
    Empty {
        /// The ticks file.
        path: PathBuf,
        /// Format read.
        format: &'static str,
    },
    /// An output file could not be written.
    #[error("cannot write {path}: {source}; check the --out folder is writable")]
    Write {
        /// File concerned.
        path: PathBuf,
        /// OS error.
        source: std::io::Error,
    },
}

/// Settings of a backtest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacktestConfig {
    /// The scenario instrument the file's ticks are for.
    pub instrument: u32,
    /// Size at each best level, lots, replacing the file's (trade size or quoted sizes).
    pub depth: Option<u32>,
    /// Stop after this many file ticks.
    pub limit: Option<u64>,
    /// The insurance fund's starting balance.
    pub fund: Money,
    /// Risk thresholds.
    pub risk: RiskConfig,
    /// The built-in matcher's behaviour.
    pub matcher: MatcherConfig,
    /// The sampled series keep between this many and twice this many points.
    pub series_points: usize,
}

impl BacktestConfig {
    /// Defaults for `instrument`: no depth override, no limit, an empty fund, default
    /// thresholds and matcher, 500 series points.
    pub fn new(instrument: u32) -> BacktestConfig {
        BacktestConfig {
            instrument,
            depth: None,
            limit: None,
            fund: Money::ZERO,
            risk: RiskConfig::default(),
            matcher: MatcherConfig::default(),
            series_points: 500,
        }
    }
}

/// Refused rows by reason: `(count, first line)`, sorted by reason.
pub type Rejections = BTreeMap<String, (u64, u64)>;

/// Counts of the lines written, by type, and the rest of the run's tallies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Data rows read from the file (refused ones included, a header not).
    pub rows: u64,
    /// Ticks applied.
    pub ticks: u64,
    /// Fills fed back by the matcher.
    pub fills: u64,
    /// Lines written per type (`margin_call`, `liquidation`, `fill`, `adl`, `settlement`).
    pub events: BTreeMap<&'static str, u64>,
    /// Alerts raised, by name.
    pub alerts: BTreeMap<&'static str, u64>,
    /// Liquidation orders the matcher left unfilled (book beyond the limit).
    pub unfilled: u64,
    /// Refused rows.
    pub rejected: Rejections,
    /// Whether the replay stopped at `--limit`.
    pub limited: bool,
    /// Time of the first tick applied, Unix ns.
    pub first_ns: u64,
    /// Time of the last tick applied, Unix ns.
    pub last_ns: u64,
}

/// Everything a finished backtest reports.
#[derive(Debug)]
pub struct Outcome {
    /// Tallies.
    pub tally: Tally,
    /// The risk stage's counters.
    pub counters: RiskCounters,
    /// The fund at the end: initial, fees, surplus, covered, uncovered.
    pub fund: crate::risk::fund::InsuranceFund,
    /// Totals before the first input.
    pub before: Totals,
    /// Totals after the last.
    pub after: Totals,
    /// Ledger against engine.
    pub agreement: Agreement,
    /// The accounting identity.
    pub identity: Identity,
    /// Price path, liquidations and fund, sampled.
    pub series: Series,
    /// Liquidation orders still open at the end.
    pub open_jobs: usize,
    /// The instrument's symbol and decimals.
    pub symbol: String,
    /// Price decimals of the instrument.
    pub price_decimals: u32,
}

impl Outcome {
    /// Whether the money check passed: the ledger agrees with the engine on every account and
    /// the fund, and the identity holds.
    pub fn money_ok(&self) -> bool {
        self.agreement.differing == 0 && self.agreement.fund_agrees && self.identity.holds
    }
}

/// The scenario instrument a file is for: `symbol` when given, else the file's symbol column
/// (Tardis) or the longest scenario symbol its file name contains (klines).
pub fn resolve_instrument(
    table: &InstrumentTable,
    path: &Path,
    symbol: Option<&str>,
) -> Result<u32, BacktestError> {
    let expected = || {
        table
            .iter()
            .map(|(_, i)| i.symbol.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let by_symbol = |s: &str| {
        table
            .iter()
            .find(|(_, i)| i.symbol.as_ref() == s)
            .map(|(id, _)| id.0)
    };
    let mismatch = |found: String| BacktestError::SymbolMismatch {
        path: path.to_path_buf(),
        found,
        expected: expected(),
    };
    if let Some(s) = symbol {
        return by_symbol(s).ok_or_else(|| mismatch(format!("--symbol {s}")));
    }
    let mut src = FileSource::open(path, Scaling::default())?;
    if src.format() == Format::BinanceKlines {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return table
            .iter()
            .filter(|(_, i)| !i.symbol.is_empty() && name.contains(i.symbol.as_ref()))
            .max_by_key(|(id, i)| (i.symbol.len(), std::cmp::Reverse(id.0)))
            .map(|(id, _)| id.0)
            .ok_or_else(|| mismatch(format!("file name {name:?} (kline rows carry no symbol)")));
    }
    while let Some(row) = src.next() {
        if row.is_ok() {
            let s = src.symbol().unwrap_or("").to_string();
            return by_symbol(&s).ok_or_else(|| mismatch(format!("symbol {s:?}")));
        }
    }
    Err(BacktestError::Empty {
        path: path.to_path_buf(),
        format: src.format().name(),
    })
}

/// Opens the ticks file for `instrument` and checks its format.
pub fn open_ticks(
    table: &InstrumentTable,
    path: &Path,
    format: Format,
    instrument: u32,
) -> Result<FileSource, BacktestError> {
    let inst =
        table
            .get(InstrumentId(instrument))
            .ok_or_else(|| BacktestError::SymbolMismatch {
                path: path.to_path_buf(),
                found: format!("instrument {instrument}"),
                expected: format!("0..{}", table.len()),
            })?;
    let scaling = Scaling {
        instrument,
        price_decimals: u8::try_from(inst.price_decimals).unwrap_or(u8::MAX),
        qty_decimals: u8::try_from(inst.qty_decimals).unwrap_or(u8::MAX),
    };
    let src = FileSource::open(path, scaling)?;
    if src.format() != format {
        return Err(BacktestError::FormatMismatch {
            path: path.to_path_buf(),
            expected: format.name(),
            found: src.format().name(),
        });
    }
    Ok(src)
}

/// The reason name of a row the reader refused.
fn reason(e: &FeedError) -> String {
    match e {
        FeedError::Io { .. } | FeedError::Zip { .. } => "io".to_string(),
        FeedError::UnknownFormat { .. } => "format".to_string(),
        FeedError::Csv { source, .. } if source.is_io_error() => "io".to_string(),
        FeedError::Csv { .. } => "csv".to_string(),
        FeedError::Columns { .. } => "columns".to_string(),
        FeedError::Field { field, .. } => format!("field_{field}"),
        FeedError::NoPrice { .. } => "no_price".to_string(),
    }
}

/// The replay's state: the engine, the matcher, the ledger and the writers.
struct Replay<'w, W: Write> {
    engine: RiskEngine,
    matcher: Matcher,
    ledger: Ledger,
    format: EventFormat,
    events: &'w mut W,
    events_path: PathBuf,
    account_index: HashMap<u64, u32>,
    tally: Tally,
    series: Series,
    seq: u64,
    line: String,
    outs: Vec<Output>,
    fills: VecDeque<shm::Fill>,
}

impl<W: Write> Replay<'_, W> {
    fn write_line(&mut self) -> Result<(), BacktestError> {
        self.line.push('\n');
        self.events
            .write_all(self.line.as_bytes())
            .map_err(|source| BacktestError::Write {
                path: self.events_path.clone(),
                source,
            })?;
        self.line.clear();
        Ok(())
    }

    /// The state of the unit holding `account`'s position on `instrument`.
    fn unit_view(&self, account: u64, instrument: u32) -> UnitView {
        let (table, marks) = (self.engine.instruments(), self.engine.marks());
        let id = InstrumentId(instrument);
        let mut view = UnitView {
            mark_px: marks.get(id).map(|p| p.0),
            ..UnitView::default()
        };
        let Some(a) = self
            .account_index
            .get(&account)
            .and_then(|&k| self.engine.accounts().get(k as usize))
        else {
            return view;
        };
        let Some(i) = a.position_index(id) else {
            return view;
        };
        view.summary = match a.positions()[i].mode() {
            MarginMode::Cross => a.cross_summary(table, marks).ok(),
            MarginMode::Isolated => a
                .position_risk(i, table, marks)
                .and_then(|r| a.positions()[i].isolated_summary(&r))
                .ok(),
        };
        view.bankruptcy = a.bankruptcy_price(i, table, marks).ok().flatten();
        view
    }

    /// Applies one input at `ts`, writes its lines, and queues the matcher's fills.
    fn apply(&mut self, input: Input, ts: u64) -> Result<(), BacktestError> {
        self.seq += 1;
        let seq = self.seq;
        match input {
            Input::Tick(t) => self.matcher.on_tick(&t),
            Input::Fill(f) => {
                self.ledger.fill(&f);
                self.format.fill(&mut self.line, seq, ts, &f);
                self.write_line()?;
                *self.tally.events.entry("fill").or_default() += 1;
            }
            _ => {}
        }
        let event = FeedEvent {
            seq,
            publish_ns: ts,
            receive_ns: ts,
            body: FeedBody::Input(input),
        };
        let mut outs = std::mem::take(&mut self.outs);
        outs.clear();
        self.engine.on_event(&event, &mut |o| outs.push(o));
        self.ledger.outputs(&outs);
        for o in &outs {
            let view = match o {
                Output::Liquidation(l) => self.unit_view(l.account, l.instrument),
                _ => UnitView::default(),
            };
            if self.format.output(&mut self.line, seq, ts, o, &view) {
                self.write_line()?;
                *self.tally.events.entry(o.kind_name()).or_default() += 1;
            } else if let Output::Alert(a) = o {
                *self
                    .tally
                    .alerts
                    .entry(alert_code::name(a.code))
                    .or_default() += 1;
            }
            if let Output::Liquidation(l) = o {
                self.series.liquidation(l.side);
                // Only orders still open reach the venue (an ADL in the same input may have
                // taken the position already).
                if let Some(open) = self.engine.liquidation_order(l.order_id) {
                    self.ledger.order_sent(l, open.full);
                    match self.matcher.on_output(o) {
                        Some(f) => self.fills.push_back(f),
                        None => self.tally.unfilled += 1,
                    }
                }
            }
        }
        self.outs = outs;
        Ok(())
    }

    fn reject(&mut self, reason: String, line: u64) {
        let e = self.tally.rejected.entry(reason).or_insert((0, line));
        e.0 += 1;
    }
}

/// Where the event lines go: a writer, and the file name its errors are reported under.
pub struct EventSink<'a, W: Write> {
    /// The writer (buffered by the caller).
    pub writer: &'a mut W,
    /// The file behind it.
    pub path: &'a Path,
}

/// Runs a backtest of `source` (opened with [`open_ticks`]) against `accounts`, writing one line
/// per event to `events`. `progress` is called every 4,096 rows with the rows read and the risk
/// counters.
pub fn run<W: Write>(
    table: &InstrumentTable,
    marks: &MarkPrices,
    accounts: Vec<Account>,
    mut source: FileSource,
    config: &BacktestConfig,
    events: EventSink<'_, W>,
    progress: &mut dyn FnMut(u64, &RiskCounters),
) -> Result<Outcome, BacktestError> {
    let events_path = events.path;
    let events = events.writer;
    let instruments = table.len();
    let before = Totals::of(&accounts, config.fund, instruments);
    let ledger = Ledger::new(table, &accounts, config.fund);
    let account_index = accounts
        .iter()
        .enumerate()
        .map(|(k, a)| (a.id(), k as u32))
        .collect();
    let engine = RiskEngine::new(
        table.clone(),
        marks.clone(),
        accounts,
        config.risk,
        Scan::Index,
    )
    .with_fund(config.fund);
    let inst = table.get(InstrumentId(config.instrument));
    let mut replay = Replay {
        engine,
        matcher: Matcher::new(config.matcher, instruments),
        ledger,
        format: EventFormat::new(table),
        events,
        events_path: events_path.to_path_buf(),
        account_index,
        tally: Tally::default(),
        series: Series::new(config.series_points),
        seq: 0,
        line: String::with_capacity(512),
        outs: Vec::new(),
        fills: VecDeque::new(),
    };
    let format = source.format();
    let mut file_symbol: Option<String> = None;
    let mut last_line = 0;
    let mut last_ns = 0u64;
    while let Some(row) = source.next() {
        if source.line() != last_line {
            last_line = source.line();
            replay.tally.rows += 1;
            if replay.tally.rows.is_multiple_of(4096) {
                progress(replay.tally.rows, &replay.engine.counters());
            }
        }
        if config.limit.is_some_and(|l| replay.tally.ticks >= l) {
            replay.tally.limited = true;
            break;
        }
        let line = source.line();
        let tick = match row {
            Ok(Input::Tick(t)) => t,
            Ok(_) => continue,
            Err(e) => {
                replay.reject(reason(&e), line);
                continue;
            }
        };
        let Some(ts) = source.exchange_ns() else {
            replay.reject("timestamp".to_string(), line);
            continue;
        };
        if let Some(s) = source.symbol() {
            match &file_symbol {
                None => file_symbol = Some(s.to_string()),
                Some(first) if first != s => {
                    replay.reject("symbol".to_string(), line);
                    continue;
                }
                Some(_) => {}
            }
        }
        if ts < last_ns {
            replay.reject("time_backwards".to_string(), line);
            continue;
        }
        let tick = match format {
            Format::TardisQuotes => Tick {
                index_px: tick.mark_px,
                bid_qty: config.depth.unwrap_or(tick.bid_qty),
                ask_qty: config.depth.unwrap_or(tick.ask_qty),
                ..tick
            },
            Format::TardisTrades | Format::BinanceKlines => {
                let size = config
                    .depth
                    .unwrap_or_else(|| book_qty(source.trade_qty().unwrap_or(0)));
                Tick {
                    instrument: config.instrument,
                    mark_px: tick.mark_px,
                    index_px: tick.mark_px,
                    bid_px: tick.mark_px,
                    ask_px: tick.mark_px,
                    bid_qty: size,
                    ask_qty: size,
                }
            }
        };
        if tick.bid_px > 0 && tick.ask_px > 0 && tick.bid_px > tick.ask_px {
            replay.reject("crossed_book".to_string(), line);
            continue;
        }
        last_ns = ts;
        if replay.tally.ticks == 0 {
            replay.tally.first_ns = ts;
        }
        replay.tally.ticks += 1;
        replay.tally.last_ns = ts;
        replay.apply(Input::Tick(tick), ts)?;
        while let Some(fill) = replay.fills.pop_front() {
            replay.tally.fills += 1;
            replay.apply(Input::Fill(fill), ts)?;
        }
        replay
            .series
            .tick(ts, tick.mark_px, replay.engine.fund().balance());
    }
    if replay.tally.ticks == 0 {
        return Err(BacktestError::Empty {
            path: source.path().to_path_buf(),
            format: format.name(),
        });
    }
    progress(replay.tally.rows, &replay.engine.counters());
    replay
        .events
        .flush()
        .map_err(|source| BacktestError::Write {
            path: events_path.to_path_buf(),
            source,
        })?;
    let engine = &replay.engine;
    let after = Totals::of(engine.accounts(), engine.fund().balance(), instruments)
        .with_inventory(engine.fund_inventory());
    let agreement = replay.ledger.compare(engine);
    let identity = ledger::identity(table, &before, &after, &replay.ledger);
    Ok(Outcome {
        counters: engine.counters(),
        fund: *engine.fund(),
        open_jobs: engine.open_jobs(),
        before,
        after,
        agreement,
        identity,
        series: replay.series,
        tally: replay.tally,
        symbol: inst.map_or_else(String::new, |i| i.symbol.to_string()),
        price_decimals: inst.map_or(0, |i| i.price_decimals),
    })
}

#[cfg(test)]
mod tests;

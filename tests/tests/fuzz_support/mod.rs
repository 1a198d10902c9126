//! Seeds, checksum fixers and the ring-file target of `tests/tests/fuzz.rs`.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use brink::bulk::{BulkPosition, BulkWriter};
use brink::ingest::{FeedBody, Ingest, IngestConfig, IngestError};
use brink::journal::{self, FsyncPolicy, Journal};
use brink::margin::{Account, CallLevel, InstrumentId, InstrumentTable, MarginMode, MarkPrices};
use brink::num::{Price, Qty};
use brink::risk::{RiskConfig, RiskEngine, Scan};
use brink::scenario::Scenario;
use brink::shm::{
    self, HEADER_SIZE, Input, Liquidation, MarginCall, Output, Producer, RECORD_SIZE, Record,
    RingKind, Side,
};
use brink_tests::mutate::EDGE_INTS;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// A fresh directory for ring files: under /dev/shm when present, the temp dir otherwise.
pub fn ring_dir() -> tempfile::TempDir {
    let mut b = tempfile::Builder::new();
    b.prefix("brink-fuzz-");
    if Path::new("/dev/shm").is_dir() {
        b.tempdir_in("/dev/shm").expect("temp dir in /dev/shm")
    } else {
        b.tempdir().expect("temp dir")
    }
}

/// Everything the engine does with loaded accounts before the first tick: per-account
/// evaluation, liquidation and bankruptcy prices, and the risk engine's banding. Errors are
/// fine (typed); a panic fails the target.
pub fn evaluate(
    table: &InstrumentTable,
    marks: &MarkPrices,
    accounts: &[Account],
    level: CallLevel,
) {
    for a in accounts {
        let _ = a.evaluate(table, marks, level);
        for i in 0..a.positions().len() {
            let _ = a.liquidation_price(i, table, marks);
            let _ = a.bankruptcy_price(i, table, marks);
        }
    }
    let engine = RiskEngine::new(
        table.clone(),
        marks.clone(),
        accounts.to_vec(),
        RiskConfig::default(),
        Scan::Index,
    );
    let _ = engine.heap_bytes();
}

// ---------------------------------------------------------------------------------------------
// bulk

/// The five-instrument fixture's table and marks, and a valid bulk file over them (accounts with
/// cross and isolated positions, long and short, on every instrument).
pub fn bulk_seed(dir: &Path) -> (InstrumentTable, MarkPrices, Vec<u8>) {
    let scenario = Scenario::load(&brink_tests::fixture("five_instruments.toml")).expect("fixture");
    let path = dir.join("seed.bin");
    let mut w = BulkWriter::create(&path, &scenario.instruments).expect("create bulk");
    let marks: Vec<i64> = (0..scenario.instruments.len() as u32)
        .map(|i| scenario.marks.get(InstrumentId(i)).map_or(1, |p| p.0))
        .collect();
    for id in 0..12u64 {
        let positions: Vec<BulkPosition> = (0..(id % 4) as u32)
            .map(|k| {
                let inst = (k + id as u32) % marks.len() as u32;
                let isolated = (id + u64::from(k)) % 3 == 0;
                BulkPosition {
                    instrument: InstrumentId(inst),
                    mode: if isolated {
                        MarginMode::Isolated
                    } else {
                        MarginMode::Cross
                    },
                    qty: Qty(if id % 2 == 0 { 1_000 } else { -250 } * (i64::from(k) + 1)),
                    entry: Price(marks[inst as usize] + 17 * id as i64),
                    margin_units: if isolated { 50_000_000_000 } else { 0 },
                }
            })
            .collect();
        w.push(id * 3 + 1, 1_000_000_000 * (id as i64 + 1), &positions)
            .expect("push");
    }
    w.finish().expect("finish");
    (
        scenario.instruments,
        scenario.marks,
        std::fs::read(&path).expect("read seed"),
    )
}

/// Recomputes a bulk file's body CRC (header bytes 40..44), when it has a header.
pub fn fix_bulk_crc(b: &mut [u8]) {
    if b.len() >= 48 {
        let crc = crc32fast::hash(&b[48..]);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
    }
}

// ---------------------------------------------------------------------------------------------
// journal

/// A valid journal of output records, as the emit stage writes it.
pub fn journal_seed(dir: &Path) -> Vec<u8> {
    let path = dir.join("seed.journal");
    let (mut j, _) = Journal::open(&path, FsyncPolicy::Never).expect("journal");
    for k in 0..6u64 {
        let out = if k % 2 == 0 {
            Output::MarginCall(MarginCall {
                account: k,
                ratio_e9: 850_000_000,
                equity_money: 1_000,
                mm_money: 850,
                input_seq: k * 10,
            })
        } else {
            Output::Liquidation(Liquidation {
                order_id: k,
                account: k,
                instrument: 0,
                side: Side::Sell,
                qty: 5,
                limit_px: 4_900_000,
                input_seq: k * 10,
            })
        };
        j.append(&out.encode().to_le_bytes()).expect("append");
    }
    drop(j);
    std::fs::read(&path).expect("read seed")
}

/// Walks a journal's frames and rewrites each CRC to match its payload, so that mutations of
/// lengths and payloads reach the frame walk instead of stopping at the first checksum.
pub fn fix_journal_crcs(b: &mut [u8]) {
    let mut at = journal::HEADER_LEN as usize;
    while at + journal::FRAME_LEN <= b.len() {
        let len = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        let end = at + journal::FRAME_LEN + len;
        if len == 0 || len > journal::MAX_PAYLOAD || end > b.len() {
            return;
        }
        let crc = crc32fast::hash(&b[at + journal::FRAME_LEN..end]);
        b[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
}

// ---------------------------------------------------------------------------------------------
// ring files through the ingest stage

/// A slot's commit word.
#[derive(Clone, Copy, Debug)]
pub enum Commit {
    /// `seq + 1`: a proper record.
    Right,
    /// `seq + 1 + laps × capacity`: a later lap (an overrun).
    Lap(u8),
    /// Anything (torn).
    Raw(u64),
}

/// One slot written into the ring file.
#[derive(Clone, Debug)]
pub struct SlotSpec {
    commit: Commit,
    /// Added to the previous record's publish stamp, or taken as is when `absolute`.
    publish_step: u64,
    absolute: bool,
    tag: u8,
    aux: u8,
    instrument: u32,
    payload: [u64; 5],
}

/// A ring file and an ingest configuration.
#[derive(Clone, Debug)]
pub struct RingCase {
    capacity_log2: u8,
    start: u64,
    slots: Vec<SlotSpec>,
    /// Producer cursor override (default: every slot written is published).
    producer_cursor: Option<u64>,
    closed: bool,
    /// Header words overwritten: (field index, value).
    header: Vec<(usize, u64)>,
    /// Bytes added to (positive) or cut from the file's length.
    resize: i64,
    instruments: u32,
    band_bps: u32,
    confirm_ticks: u32,
    index_agree_bps: u32,
    release_every: u32,
    pin_capacity: bool,
}

/// Header fields a case may overwrite: (offset, width in bytes).
const HEADER_FIELDS: [(u64, usize); 15] = [
    (0, 8),
    (8, 4),
    (12, 4),
    (16, 8),
    (24, 4),
    (28, 4),
    (32, 8),
    (40, 4),
    (128, 8),
    (256, 8),
    (384, 8),
    (392, 8),
    (400, 8),
    (512, 8),
    (520, 4),
];

fn word() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => (0..EDGE_INTS.len()).prop_map(|k| EDGE_INTS[k]),
        3 => (-20i64..20).prop_map(|v| v as u64),
        4 => (4_000_000i64..6_000_000).prop_map(|v| v as u64),
        2 => any::<u64>(),
    ]
}

fn slot() -> impl Strategy<Value = SlotSpec> {
    let commit = prop_oneof![
        12 => Just(Commit::Right),
        1 => (1u8..4).prop_map(Commit::Lap),
        1 => word().prop_map(Commit::Raw),
    ];
    let tag = prop_oneof![12 => 1u8..=6, 1 => 16u8..=20, 1 => any::<u8>()];
    let aux = prop_oneof![6 => Just(0u8), 2 => 0u8..=3, 1 => any::<u8>()];
    let instrument =
        prop_oneof![8 => 0u32..4, 1 => (0..EDGE_INTS.len()).prop_map(|k| EDGE_INTS[k] as u32)];
    let publish = prop_oneof![
        8 => (0u64..1_000_000, Just(false)),
        1 => (any::<u64>(), Just(true)),
        1 => (Just(0u64), Just(true)),
    ];
    (
        commit,
        publish,
        tag,
        aux,
        instrument,
        prop::array::uniform5(word()),
    )
        .prop_map(
            |(commit, (publish_step, absolute), tag, aux, instrument, payload)| SlotSpec {
                commit,
                publish_step,
                absolute,
                tag,
                aux,
                instrument,
                payload,
            },
        )
}

/// Ring cases: capacity 2..=64, up to 80 slots (so laps overlap), a few header overwrites in one
/// case out of four, and the ingest checks' settings.
pub fn ring_case() -> impl Strategy<Value = RingCase> {
    let header = prop_oneof![
        3 => Just(Vec::new()),
        1 => prop::collection::vec((0..HEADER_FIELDS.len(), word()), 1..3),
    ];
    let resize = prop_oneof![12 => Just(0i64), 1 => -4096i64..4096];
    let producer_cursor = prop_oneof![10 => Just(None), 1 => word().prop_map(Some)];
    let start = prop_oneof![8 => Just(0u64), 1 => 0u64..1_000, 1 => word()];
    (
        (
            1u8..=6,
            start,
            prop::collection::vec(slot(), 0..80),
            producer_cursor,
            any::<bool>(),
        ),
        (header, resize),
        (
            1u32..5,
            prop_oneof![Just(0u32), 1u32..20_000],
            0u32..5,
            prop_oneof![Just(0u32), 1u32..500],
        ),
        (1u32..300, any::<bool>()),
    )
        .prop_map(
            |(
                (capacity_log2, start, slots, producer_cursor, closed),
                (header, resize),
                (instruments, band_bps, confirm_ticks, index_agree_bps),
                (release_every, pin_capacity),
            )| RingCase {
                capacity_log2,
                start,
                slots,
                producer_cursor,
                closed,
                header,
                resize,
                instruments,
                band_bps,
                confirm_ticks,
                index_agree_bps,
                release_every,
                pin_capacity,
            },
        )
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Writes the case's ring file at `path`, opens it with the ingest stage and polls it dry.
/// Returns whether the file opened (true) or was refused with a typed error (false); fails the
/// case when an accepted record breaks a check the stage promises, or the counters do not add up.
pub fn ingest_case(path: &Path, case: &RingCase) -> Result<bool, TestCaseError> {
    let capacity = 1u64 << case.capacity_log2;
    drop(Producer::create(path, RingKind::Feed, capacity).map_err(fail)?);
    let file = OpenOptions::new().write(true).open(path).map_err(fail)?;
    let mut publish_ns = 1_000_000u64;
    for (i, s) in case.slots.iter().enumerate() {
        let seq = case.start.wrapping_add(i as u64);
        publish_ns = if s.absolute {
            s.publish_step
        } else {
            publish_ns.wrapping_add(s.publish_step)
        };
        let commit = match s.commit {
            Commit::Right => seq.wrapping_add(1),
            Commit::Lap(k) => seq.wrapping_add(1).wrapping_add(u64::from(k) * capacity),
            Commit::Raw(v) => v,
        };
        let record = Record {
            commit,
            publish_ns,
            tag: s.tag,
            aux: s.aux,
            reserved: 0,
            instrument: s.instrument,
            payload: s.payload,
        };
        let at = HEADER_SIZE as u64 + (seq & (capacity - 1)) * u64::from(RECORD_SIZE);
        file.write_all_at(&record.to_le_bytes(), at).map_err(fail)?;
    }
    let published = case
        .producer_cursor
        .unwrap_or_else(|| case.start.wrapping_add(case.slots.len() as u64));
    let put =
        |offset: u64, width: usize, v: u64| file.write_all_at(&v.to_le_bytes()[..width], offset);
    put(128, 8, published).map_err(fail)?;
    put(256, 8, case.start).map_err(fail)?;
    put(384, 8, brink::clock::now_ns()).map_err(fail)?;
    if case.closed {
        put(400, 8, published.wrapping_add(1)).map_err(fail)?;
    }
    for &(field, value) in &case.header {
        let (offset, width) = HEADER_FIELDS[field];
        put(offset, width, value).map_err(fail)?;
    }
    if case.resize != 0 {
        let len = shm::file_len(capacity).saturating_add_signed(case.resize);
        file.set_len(len).map_err(fail)?;
    }
    drop(file);

    let config = IngestConfig {
        instruments: case.instruments,
        band_bps: case.band_bps,
        confirm_ticks: case.confirm_ticks,
        index_agree_bps: case.index_agree_bps,
        stale_after_ns: 1_000_000_000,
        restart_check_ns: 1_000_000,
        capacity: case.pin_capacity.then_some(capacity),
        release_every: case.release_every,
    };
    let mut ingest = match Ingest::open(path, config) {
        Ok(i) => i,
        Err(IngestError::Shm(e)) => {
            prop_assert!(e.to_string().contains(&path.display().to_string()), "{}", e);
            return Ok(false);
        }
        Err(e) => return Err(fail(format!("a valid configuration was refused: {e}"))),
    };
    let first = ingest.position();
    let mut events = Vec::new();
    for _ in 0..64 {
        let status = ingest.poll(64, |e| events.push(e));
        if !matches!(status, brink::ingest::PollStatus::Data(_)) {
            break;
        }
    }
    let n = case.instruments;
    let mut last_seq = None;
    for e in &events {
        let FeedBody::Input(input) = e.body else {
            continue;
        };
        prop_assert!(
            last_seq.is_none_or(|s| e.seq > s),
            "input seqs ascend: {:?}",
            events
        );
        last_seq = Some(e.seq);
        if let Some(i) = input.instrument() {
            prop_assert!(i < n, "instrument {} of {}", i, n);
        }
        match input {
            Input::Tick(t) => {
                prop_assert!(
                    t.mark_px > 0 && t.index_px >= 0 && t.bid_px >= 0 && t.ask_px >= 0,
                    "{:?}",
                    t
                );
                prop_assert!(
                    t.bid_px == 0 || t.ask_px == 0 || t.bid_px <= t.ask_px,
                    "{:?}",
                    t
                );
            }
            Input::Fill(f) => prop_assert!(f.price_px > 0 && f.qty != 0, "{:?}", f),
            Input::Status(s) => prop_assert!(s.settle_px >= 0, "{:?}", s),
            Input::Collateral(_) | Input::Funding(_) | Input::Heartbeat(_) => {}
        }
    }
    let c = ingest.counters();
    let moved = ingest.position().wrapping_sub(first);
    prop_assert_eq!(
        c.accepted
            .wrapping_add(c.rejected.total())
            .wrapping_add(c.gap_records),
        moved,
        "every slot passed is accepted, rejected or counted in a gap: {:?}",
        c
    );
    Ok(true)
}

//! Bulk file round trip and bad files.

use std::path::Path;

use super::*;
use crate::scenario::Scenario;

const BTC: &str = include_str!("../../../tests/fixtures/btc_2021.toml");

fn table() -> InstrumentTable {
    Scenario::parse(BTC, Path::new("btc.toml"))
        .unwrap()
        .instruments
}

fn sample(dir: &Path) -> (PathBuf, Vec<u8>) {
    let path = dir.join("a.bin");
    let t = table();
    let mut w = BulkWriter::create(&path, &t).unwrap();
    let cross = |q, e| BulkPosition {
        instrument: InstrumentId(0),
        mode: MarginMode::Cross,
        qty: Qty(q),
        entry: Price(e),
        margin_units: 0,
    };
    w.push(1, 50_000_000_000, &[cross(20, 5_000_000)]).unwrap();
    w.push(
        2,
        0,
        &[
            BulkPosition {
                instrument: InstrumentId(1),
                mode: MarginMode::Isolated,
                qty: Qty(-500),
                entry: Price(520_000),
                margin_units: 100_000_000_000,
            },
            cross(1000, 5_000_000),
        ],
    )
    .unwrap();
    w.finish().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

fn fix_crc(b: &mut [u8]) {
    let crc = crc32fast::hash(&b[HEADER_LEN..]);
    b[40..44].copy_from_slice(&crc.to_le_bytes());
}

/// Offset of the first account record in `sample`'s file.
fn first_account(b: &[u8]) -> usize {
    let mut at = HEADER_LEN;
    for _ in 0..u32_at(b, 32) {
        at += 3 + usize::from(b[at]);
    }
    at
}

#[test]
fn written_accounts_load_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = sample(dir.path());
    let accounts = load(&path, &table()).unwrap();
    assert_eq!(accounts.len(), 2);
    assert_eq!(accounts[0].wallet(), Money::from_int(500));
    assert_eq!(accounts[1].id(), 2);
    let p = accounts[1].positions()[0];
    assert_eq!(
        (p.instrument(), p.qty(), p.mode()),
        (InstrumentId(1), Qty(-500), MarginMode::Isolated)
    );
    assert_eq!(p.isolated_margin(), Money::from_int(1000));
    assert_eq!(accounts[1].positions()[1].cost(), 1000 * 5_000_000);
    assert!(heap_bytes(&accounts) >= 3 * std::mem::size_of::<Position>());
}

fn expect(b: &[u8], words: &[&str]) {
    let e = parse(b, Path::new("x.bin"), &table())
        .expect_err("must be refused")
        .to_string();
    assert!(e.starts_with("x.bin: "), "{e}");
    for w in words {
        assert!(e.contains(w), "`{e}` lacks `{w}`");
    }
}

#[test]
fn damaged_files_are_refused_with_record_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let (_, good) = sample(dir.path());
    let acct = first_account(&good);
    let pos0 = acct + ACCOUNT_LEN;

    expect(&good[..20], &["length"]);
    let mut b = good.clone();
    b[0] = b'X';
    expect(&b, &["magic"]);
    let mut b = good.clone();
    b[pos0 + 10] ^= 1;
    expect(&b, &["crc32", "damaged"]);
    expect(&good[..good.len() - 8], &["crc32"]);

    // Negative entry price in account 0, position 0.
    let mut b = good.clone();
    b[pos0 + 16..pos0 + 24].copy_from_slice(&(-5i64).to_le_bytes());
    fix_crc(&mut b);
    expect(
        &b,
        &["account record 0 position 0", "entry", "positive price"],
    );

    // Bad mode.
    let mut b = good.clone();
    b[pos0 + 4] = 7;
    fix_crc(&mut b);
    expect(&b, &["position 0", "mode", "0 (cross) or 1 (isolated)"]);

    // Symbol index out of the table.
    let mut b = good.clone();
    b[pos0..pos0 + 4].copy_from_slice(&9u32.to_le_bytes());
    fix_crc(&mut b);
    expect(&b, &["symbol", "outside the symbol table"]);

    // Unknown symbol in the symbol table.
    let mut b = good.clone();
    b[HEADER_LEN + 3] = b'Z';
    fix_crc(&mut b);
    expect(&b, &["unknown symbol `ZTCUSDT`"]);

    // Descending ids: account 1 gets id 1.
    let mut b = good.clone();
    let acct1 = pos0 + POSITION_LEN;
    b[acct1..acct1 + 8].copy_from_slice(&1u64.to_le_bytes());
    fix_crc(&mut b);
    expect(&b, &["account record 1", "id", "ascend"]);

    // Counts that disagree with the length.
    let mut b = good.clone();
    b[16..24].copy_from_slice(&3u64.to_le_bytes());
    expect(&b, &["account_count"]);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Any damage behind a valid CRC is a typed error or a valid file, never a panic.
    #[test]
    fn damaged_records_never_panic(edits in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut b) = sample(dir.path());
        for (at, v) in edits {
            let i = HEADER_LEN + at % (b.len() - HEADER_LEN);
            b[i] = v;
        }
        fix_crc(&mut b);
        let _ = parse(&b, Path::new("x.bin"), &table());
        // Header damage too (counts), and truncation.
        let mut h = b.clone();
        h[16] = h[16].wrapping_add(1);
        let _ = parse(&h, Path::new("x.bin"), &table());
        let _ = parse(&b[..b.len() / 2], Path::new("x.bin"), &table());
    }
}

//! Source tests on small generated files, plus the real files in ../shared/data when present.

use std::io::Write;
use std::path::PathBuf;

use super::*;
use crate::shm::Tick;

fn marks(src: FileSource) -> Vec<Result<i64, String>> {
    src.map(|r| match r {
        Ok(Input::Tick(t)) => Ok(t.mark_px),
        Ok(other) => Err(format!("unexpected {other:?}")),
        Err(e) => Err(e.to_string()),
    })
    .collect()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write");
    path
}

#[test]
fn tardis_trades_plain_and_gzip() {
    let dir = tempfile::tempdir().expect("dir");
    let text = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n\
                x,BCH,1,2,10,buy,579.8,3\n\
                x,BCH,2,3,11,sell,abc,3\n\
                x,BCH,3,4,12,sell,579.75,1\n";
    let plain = write(&dir, "t.csv", text);
    let gz = dir.path().join("t.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("gz"),
        flate2::Compression::fast(),
    );
    enc.write_all(text.as_bytes()).expect("write gz");
    enc.finish().expect("finish");
    for path in [plain, gz] {
        let src = FileSource::open(&path, Scaling::default()).expect("open");
        assert_eq!(src.format(), Format::TardisTrades);
        let got = marks(src);
        assert_eq!(got[0], Ok(57_980));
        assert!(
            got[1]
                .as_ref()
                .is_err_and(|e| e.contains("line 3") && e.contains("price")),
            "{got:?}"
        );
        assert_eq!(got[2], Ok(57_975));
        assert_eq!(got.len(), 3);
    }
}

#[test]
fn tardis_quotes_carry_the_book() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(
        &dir,
        "q.csv",
        "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount\n\
         x,BTC,1,2,0.84,9682,9681.92,0.67\n",
    );
    let mut src = FileSource::open(
        &path,
        Scaling {
            instrument: 3,
            ..Scaling::default()
        },
    )
    .expect("open");
    assert_eq!(src.format(), Format::TardisQuotes);
    let tick = src.next().expect("one").expect("ok");
    assert_eq!(
        tick,
        Input::Tick(Tick {
            instrument: 3,
            mark_px: 968_196,
            index_px: 0,
            bid_px: 968_192,
            ask_px: 968_200,
            bid_qty: 670,
            ask_qty: 840,
        })
    );
    assert!(src.next().is_none());
}

#[test]
fn klines_expand_to_four_ticks_nearest_extreme_first() {
    let dir = tempfile::tempdir().expect("dir");
    // Bar 1: open 100, high 101 (1 away), low 90 (10 away): high first.
    // Bar 2 (no header file): open 100, high 120, low 99: low first.
    let path = write(
        &dir,
        "k.csv",
        "1,100,101,90,95,0,2,0,60,0,0,0\n3,100,120,99.999,110,0,4,0,60,0,0,0\n",
    );
    let src = FileSource::open(&path, Scaling::default()).expect("open");
    assert_eq!(src.format(), Format::BinanceKlines);
    let got: Vec<i64> = marks(src).into_iter().map(|r| r.expect("ok")).collect();
    assert_eq!(
        got,
        vec![10_000, 10_100, 9_000, 9_500, 10_000, 10_000, 12_000, 11_000]
    );
    assert_eq!(bar_path(10, 12, 9, 11), [10, 9, 12, 11]);
}

#[test]
fn unknown_format_names_the_first_line() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(&dir, "x.csv", "hello,world\n");
    let err = FileSource::open(&path, Scaling::default())
        .err()
        .expect("error");
    assert!(err.to_string().contains("hello,world"), "{err}");
}

#[test]
fn synthetic_is_seeded_and_valid() {
    let cfg = SyntheticConfig {
        instruments: 3,
        seed: 42,
        ..SyntheticConfig::default()
    };
    let a: Vec<Input> = Synthetic::new(cfg).take(3_000).collect();
    let b: Vec<Input> = Synthetic::new(cfg).take(3_000).collect();
    assert_eq!(a, b);
    let c: Vec<Input> = Synthetic::new(SyntheticConfig { seed: 43, ..cfg })
        .take(3_000)
        .collect();
    assert_ne!(a, c);
    for (i, input) in a.iter().enumerate() {
        let Input::Tick(t) = input else {
            panic!("not a tick")
        };
        assert_eq!(t.instrument, (i % 3) as u32);
        assert!(
            t.mark_px > 0 && t.bid_px > 0 && t.bid_px < t.ask_px,
            "{t:?}"
        );
    }
}

#[test]
fn real_files_replay_when_present() {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data"));
    if !dir.is_dir() {
        println!("skipped: {} is absent", dir.display());
        return;
    }
    let cases = [
        (
            "binance-futures_BTCUSDT_trades_2020-02-22.csv",
            Format::TardisTrades,
            9_999,
        ),
        (
            "binance-futures_BTCUSDT_quotes_2020-02-22.csv",
            Format::TardisQuotes,
            9_999,
        ),
        (
            "binance-um_BTCUSDT_markprice_5m_2025-10-10.zip",
            Format::BinanceKlines,
            288 * 4,
        ),
    ];
    for (name, format, records) in cases {
        let path = dir.join(name);
        if !path.exists() {
            println!("skipped: {} is absent", path.display());
            continue;
        }
        let src = FileSource::open(&path, Scaling::default()).expect("open");
        assert_eq!(src.format(), format);
        let got = marks(src);
        assert_eq!(got.len(), records, "{name}");
        assert!(
            got.iter().all(|r| r.as_ref().is_ok_and(|m| *m > 0)),
            "{name}"
        );
    }
}

#[test]
fn a_corrupt_gzip_ends_the_stream_with_one_error() {
    let dir = tempfile::tempdir().expect("dir");
    let gz = dir.path().join("t.csv.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut text = String::from("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n");
    for i in 0..5_000 {
        text.push_str(&format!("x,B,{i},{i},{i},buy,{}.5,1\n", 100 + i % 7));
    }
    enc.write_all(text.as_bytes()).expect("write");
    let mut bytes = enc.finish().expect("finish");
    let n = bytes.len();
    for b in &mut bytes[n / 2..n / 2 + 64] {
        *b = !*b;
    }
    std::fs::write(&gz, bytes).expect("write gz");
    let results: Vec<Result<Input, FeedError>> = match FileSource::open(&gz, Scaling::default()) {
        Ok(src) => src.take(10_000).collect(),
        Err(e) => vec![Err(e)],
    };
    let errors = results.iter().filter(|r| r.is_err()).count();
    assert!(results.len() < 5_000, "read past the corruption");
    assert!((1..=2).contains(&errors), "{errors} errors");
}

#[test]
fn rows_expose_their_exchange_time_symbol_and_size() {
    let dir = tempfile::tempdir().expect("dir");
    let trades = write(
        &dir,
        "t.csv",
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n\
         x,BCHUSD_PERP,1760054408590000,2,10,buy,579.8,3\n\
         x,BCHUSD_PERP,oops,3,11,sell,579.7,1\n",
    );
    let mut src = FileSource::open(&trades, Scaling::default()).expect("open");
    assert_eq!(src.exchange_ns(), None);
    assert!(src.next().is_some_and(|r| r.is_ok()));
    assert_eq!(src.exchange_ns(), Some(1_760_054_408_590_000_000));
    assert_eq!(src.symbol(), Some("BCHUSD_PERP"));
    assert_eq!(src.trade_qty(), Some(3_000));
    // An unreadable time is reported as absent, not guessed.
    assert!(src.next().is_some_and(|r| r.is_ok()));
    assert_eq!(src.exchange_ns(), None);
    assert_eq!(src.trade_qty(), Some(1_000));

    let klines = write(
        &dir,
        "k.csv",
        "1760054400000,100,110,95,105,0,1760054699999,0,60,0,0,0\n",
    );
    let src = FileSource::open(&klines, Scaling::default()).expect("open");
    assert_eq!(src.symbol(), None);
    let mut src = src;
    let mut times = Vec::new();
    while let Some(r) = src.next() {
        r.expect("tick");
        times.push(src.exchange_ns().expect("time"));
    }
    let open = 1_760_054_400_000_000_000u64;
    let close = 1_760_054_699_999_000_000u64;
    let third = (close - open) / 3;
    assert_eq!(times, [open, open + third, open + 2 * third, close]);
}

/// Marks read from a Tardis trades file holding these rows under its header.
fn trade_marks(rows: &str) -> Vec<Result<i64, String>> {
    let dir = tempfile::tempdir().expect("dir");
    let header = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n";
    let path = write(&dir, "t.csv", &format!("{header}{rows}"));
    marks(FileSource::open(&path, Scaling::default()).expect("open"))
}

#[test]
fn values_beyond_the_wire_range_or_malformed_name_their_field() {
    // 2^63 / 100 with two decimals is i64::MAX + 1 units: beyond the wire's i64.
    let got = trade_marks(
        "x,BTC,1,2,10,buy,92233720368547758.08,3\n\
         x,BTC,2,3,11,buy,92233720368547758.07,3\n\
         x,BTC,3,4,12,buy,1e5,3\n\
         x,BTC,4,5,13,buy,100.005,3\n",
    );
    let err_at = |i: usize, needles: &[&str]| {
        got[i]
            .as_ref()
            .is_err_and(|e| needles.iter().all(|n| e.contains(n)))
    };
    assert!(err_at(0, &["line 2", "price", "too large"]), "{got:?}");
    assert_eq!(got[1], Ok(i64::MAX));
    assert!(err_at(2, &["line 4", "price", "not a decimal"]), "{got:?}");
    assert_eq!(got[3], Ok(10_001));
}

//! Replay of each real market-data file in ../shared/data through `brink-feed publish` in one
//! process and the engine's ingest (`brink-feed consume`) in another. Skipped when absent.

mod feed_support;

use std::process::{Command, Stdio};

use anyhow::Result;
use feed_support::{brink_feed, last_json, ring_dir, run, run_json, s, u};

struct Case {
    file: &'static str,
    price_decimals: &'static str,
    qty_decimals: &'static str,
    /// Data records the file must yield: one per trade or quote, four per kline bar.
    records: u64,
}

const CASES: [Case; 7] = [
    Case {
        file: "binance-futures_BTCUSDT_trades_2020-02-22.csv",
        price_decimals: "2",
        qty_decimals: "3",
        records: 9_999,
    },
    Case {
        file: "binance-futures_BTCUSDT_quotes_2020-02-22.csv",
        price_decimals: "2",
        qty_decimals: "3",
        records: 9_999,
    },
    Case {
        file: "binance-cm_BCHUSD_PERP_trades_2025-10-10.csv.gz",
        price_decimals: "2",
        qty_decimals: "0",
        records: 206_692,
    },
    Case {
        file: "binance-um_BTCUSDT_markprice_5m_2025-10-09.zip",
        price_decimals: "2",
        qty_decimals: "3",
        records: 288 * 4,
    },
    Case {
        file: "binance-um_BTCUSDT_markprice_5m_2025-10-10.zip",
        price_decimals: "2",
        qty_decimals: "3",
        records: 288 * 4,
    },
    Case {
        file: "binance-um_BTCUSDT_markprice_5m_2025-10-11.zip",
        price_decimals: "2",
        qty_decimals: "3",
        records: 288 * 4,
    },
    Case {
        file: "binance-cm_BTCUSD_PERP_markprice_1m_2025-10-09.zip",
        price_decimals: "1",
        qty_decimals: "0",
        records: 1_440 * 4,
    },
];

#[test]
fn every_real_file_replays_across_processes() -> Result<()> {
    let Some(data) = brink_tests::shared_data() else {
        return Ok(());
    };
    let mut replayed = 0;
    for case in CASES {
        let path = data.join(case.file);
        if !path.exists() {
            println!("skipped: {} is absent", path.display());
            continue;
        }
        let dir = ring_dir();
        let feed = dir.path().join("feed");
        // Instrument id 2 of 3: the id given on the command line is the one on the wire.
        let publisher = Command::new(brink_feed())
            .args([
                "publish",
                "--feed",
                s(&feed),
                "--create",
                "--capacity",
                "4096",
            ])
            .args(["--file", s(&path), "--instrument-id", "2"])
            .args([
                "--price-decimals",
                case.price_decimals,
                "--qty-decimals",
                case.qty_decimals,
            ])
            .args(["--heartbeat-ms", "0", "--json"])
            .stdout(Stdio::piped())
            .spawn()?;
        let consumed = run_json(&[
            "consume",
            "--feed",
            s(&feed),
            "--instruments",
            "3",
            "--json",
        ])?;
        let out = publisher.wait_with_output()?;
        assert!(out.status.success(), "{}: publisher failed", case.file);
        let published = last_json(&out.stdout)?;
        println!(
            "{}: sent {} records ({} values rounded to {} decimals), accepted {}, rejected {} {}",
            case.file,
            u(&published, "sent"),
            u(&published, "rounded"),
            case.price_decimals,
            u(&consumed, "accepted"),
            u(&consumed, "rejected_total"),
            consumed["rejected"],
        );
        assert_eq!(u(&published, "data"), case.records, "{}", case.file);
        assert_eq!(u(&published, "source_errors"), 0, "{}", case.file);
        assert_eq!(
            u(&consumed, "accepted") + u(&consumed, "rejected_total"),
            u(&published, "sent"),
            "{}: records lost",
            case.file
        );
        assert_eq!(
            u(&consumed, "rejected_total"),
            0,
            "{}: {consumed}",
            case.file
        );
        assert_eq!(consumed["digest"], published["digest"], "{}", case.file);
        assert_eq!(u(&consumed, "duplicates") + u(&consumed, "seq_jumps"), 0);

        // The last record in the ring is a tick for instrument 2 with a positive mark.
        let last = run(&[
            "dump",
            "--ring",
            s(&feed),
            "--json",
            "--from",
            &(u(&published, "sent") - 1).to_string(),
        ])?;
        let last = last_json(&last.stdout)?;
        assert_eq!(last["kind"], "tick");
        assert_eq!(u(&last, "instrument"), 2);
        assert!(last["mark_px"].as_i64().is_some_and(|m| m > 0), "{last}");
        replayed += 1;
    }
    println!("replayed {replayed} of {} files", CASES.len());
    Ok(())
}

#[test]
fn the_book_depth_file_is_refused_as_an_unknown_format() -> Result<()> {
    let Some(data) = brink_tests::shared_data() else {
        return Ok(());
    };
    let path = data.join("binance-um_BTCUSDT_bookDepth_2025-10-10.csv");
    if !path.exists() {
        println!("skipped: {} is absent", path.display());
        return Ok(());
    }
    let dir = ring_dir();
    let feed = dir.path().join("feed");
    let out = run(&[
        "publish",
        "--feed",
        s(&feed),
        "--create",
        "--file",
        s(&path),
    ])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("unknown format") && err.contains("timestamp,percentage"),
        "{err}"
    );
    assert!(
        !feed.exists(),
        "a ring was created for a file that cannot be read"
    );
    Ok(())
}
